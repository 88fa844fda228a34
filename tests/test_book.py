"""The course website (``make book``): built from the repository, then read in a real, offline browser.

The build runs the same command as ``make book`` (warnings are errors), into a temporary folder. The HTML is
then checked twice: as files (no script or stylesheet from another host), and as rendered pages in headless
Chromium driven by Selenium, served from 127.0.0.1 while every other host name fails to resolve, so that
MathJax and the figures can only come from the built folder.

``H3R_BOOK_HTML=build/book`` reuses a site built by ``make book`` instead of building one (faster while
editing; the no-warnings check is then the build's own). Chromium is Debian's ``chromium`` +
``chromium-driver`` (installed by ``.ci/run``). Without them the browser tests skip with the reason; with
``H3R_REQUIRE_BROWSER=1`` (CI) they fail instead. Set ``H3R_BOOK_SCREENSHOTS=docs/book/screenshots`` to
refresh the screenshots the README shows.
"""

from __future__ import annotations

import functools
import http.server
import inspect
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
REQUIRE_BROWSER = os.environ.get("H3R_REQUIRE_BROWSER") == "1"
HOME = "docs/book/index.html"
# The notebook page of the README's screenshot (its first screen has typeset equations).
SCREENSHOT_NOTEBOOK = "01_quantization_error"

pytestmark = pytest.mark.slow


def _missing(reason: str):
    """Skip with the reason, or fail when CI requires the browser test to run."""
    if REQUIRE_BROWSER:
        pytest.fail(f"{reason} (H3R_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


def _require_modules(*names: str) -> None:
    for name in names:
        try:
            __import__(name)
        except ImportError:
            _missing(f"{name} is not installed: pip install -e '.[docs]'")


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess | None]:
    """The website built like ``make book`` (warnings reported, the build kept going), or the folder that
    H3R_BOOK_HTML names (e.g. build/book; the no-warnings check is then the build's own, not done here)."""
    if os.environ.get("H3R_BOOK_HTML"):
        return Path(os.environ["H3R_BOOK_HTML"]).resolve(), None
    _require_modules("sphinx", "myst_nb", "sphinx_book_theme")
    out = tmp_path_factory.mktemp("book")
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-E", "-W", "--keep-going", "-q"]
    command += ["-c", "docs/book", "-d", str(out / "doctrees"), ".", str(out / "html")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    return out / "html", done


@pytest.fixture(scope="module")
def site(build) -> Path:
    folder, done = build
    detail = f":\n{done.stderr[-6000:]}" if done is not None else " (H3R_BOOK_HTML: run make book)"
    assert (folder / HOME).is_file(), f"no {HOME} in {folder}{detail}"
    return folder


def test_build_has_no_warnings(build):
    _, done = build
    if done is None:
        pytest.skip("H3R_BOOK_HTML names a site built elsewhere: make book checked its warnings")
    assert done.returncode == 0, f"make book failed (warnings are errors):\n{done.stderr[-6000:]}"


# --- the built files ----------------------------------------------------------------------------------------


def test_every_page_is_built(site):
    expected = [HOME, "index.html", "README.html", "docs/book/api/codecs.html"]
    expected += [f"notebooks/{name}.html" for name in NOTEBOOKS]
    missing = [page for page in expected if not (site / page).is_file()]
    assert not missing, f"pages not built: {missing}"
    assert len(NOTEBOOKS) >= 10, f"the teaching path has {len(NOTEBOOKS)} notebooks, expected 01-10"


EXTERNAL = re.compile(
    r"""<(script|link|img|iframe|source)\b[^>]*\b(src|href)\s*=\s*["']?(https?:)?//""", re.I
)


def test_no_script_stylesheet_or_image_from_another_host(site):
    offenders = []
    for page in sorted(site.rglob("*.html")):
        for match in EXTERNAL.finditer(page.read_text(encoding="utf-8")):
            tag = page.read_text(encoding="utf-8")[match.start() : match.start() + 160]
            offenders.append(f"{page.relative_to(site)}: {tag}")
    assert not offenders, "external resources:\n" + "\n".join(offenders[:20])


def test_mathjax_is_bundled(site):
    page = site / "notebooks" / f"{SCREENSHOT_NOTEBOOK}.html"  # Sphinx loads MathJax on pages with math only
    sources = re.findall(
        r"""<script[^>]*src=["']([^"']*mathjax[^"']*)["']""", page.read_text(encoding="utf-8")
    )
    assert sources, f"{page.name} loads no MathJax script"
    for source in sources:
        assert (page.parent / source.split("?")[0]).resolve().is_file(), f"{source} is not in the built site"


# --- the rendered pages -------------------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # one line per request would drown the test output
        pass


@pytest.fixture(scope="module")
def server(site):
    """The site over HTTP on 127.0.0.1 (a static host; file:// would block MathJax's web fonts)."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    _require_modules("selenium")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        _missing(
            "Debian's chromium and chromium-driver are not installed: "
            "apt-get install chromium chromium-driver"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument("--window-size=1280,900")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console errors: failed loads, JS errors
    # Offline: every host name but the local server's address fails, so nothing can come from a CDN.
    options.add_argument("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
    # Both paths are given, so Selenium Manager (which would download a driver) never runs.
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


def _open(browser, url: str) -> None:
    """Load a page and wait until MathJax has typeset it (pages without MathJax return at once)."""
    browser.get(url)
    error = browser.execute_async_script(
        """const done = arguments[arguments.length - 1];
        const wait = () => {
          if (!window.MathJax || !window.MathJax.startup || !window.MathJax.startup.promise) {
            return document.readyState === 'complete' && !document.querySelector('script[src*="mathjax"]')
              ? done(null) : setTimeout(wait, 50);
          }
          window.MathJax.startup.promise.then(() => done(null), (e) => done(String(e)));
        };
        wait();"""
    )
    assert error is None, f"MathJax failed on {url}: {error}"
    # A resource that failed to load (a CDN we cannot reach, a missing file) or an uncaught script error. The
    # browser's own favicon.ico request is no part of the site.
    console = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    failed = [
        m
        for m in console
        if ("Failed to load" in m or "net::" in m or "Uncaught" in m) and "favicon" not in m
    ]
    assert not failed, f"{url}: errors in the browser console: {failed[:5]}"


PROSE_TEXT = """
const article = document.querySelector('article') || document.body;
const copy = article.cloneNode(true);
copy.querySelectorAll('pre, code, script, style, mjx-container, .MathJax').forEach((n) => n.remove());
return copy.innerText;
"""

IMAGES = """
return Array.from(document.querySelectorAll('article img')).map((img) => ({
  src: img.getAttribute('src'), complete: img.complete, width: img.naturalWidth }));
"""


def test_every_notebook_is_in_the_navigation(browser, server):
    _open(browser, f"{server}/{HOME}")
    links = browser.execute_script(
        "return Array.from(document.querySelectorAll('nav.bd-docs-nav a')).map((a) => a.href);"
    )
    pages = {link.split("#")[0] for link in links}
    missing = [name for name in NOTEBOOKS if f"{server}/notebooks/{name}.html" not in pages]
    assert not missing, f"notebooks missing from the navigation: {missing}; nav has {sorted(pages)}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_page_math_and_figures(site, browser, server, name):
    assert (site / "notebooks" / f"{name}.html").is_file(), f"{name}: no page built (rebuild the site)"
    _open(browser, f"{server}/notebooks/{name}.html")
    typeset = browser.execute_script("return document.querySelectorAll('article mjx-container').length;")
    errors = browser.execute_script("return document.querySelectorAll('article mjx-merror').length;")
    source = (ROOT / "notebooks" / f"{name}.ipynb").read_text(encoding="utf-8")
    if "$" in source:  # the notebook writes math (in its Markdown or in Markdown outputs)
        assert typeset > 0, f"{name}: the notebook has $...$ math but nothing was typeset"
    assert errors == 0, f"{name}: {errors} equations failed to typeset (TeX errors)"
    prose = browser.execute_script(PROSE_TEXT)
    raw = re.findall(r"\$[^$\n]{1,80}\$|\\\(.{1,80}?\\\)|\\\[.{1,80}?\\\]", prose)
    assert not raw, f"{name}: math left as raw TeX: {raw[:5]}"
    images = browser.execute_script(IMAGES)
    if '"image/png"' in source or '"image/jpeg"' in source:
        assert images, f"{name}: the notebook stores figures but the page shows none"
    broken = [img["src"] for img in images if not img["complete"] or img["width"] == 0]
    assert not broken, f"{name}: figures that did not load: {broken}"


def test_root_redirects_to_the_home_page(browser, server):
    _open(browser, f"{server}/")  # what a static host serves for the site's address
    assert browser.current_url == f"{server}/{HOME}", browser.current_url
    assert browser.execute_script("return document.querySelectorAll('nav.bd-docs-nav a').length;") > 0


def test_readme_and_sweep_figures_load(browser, server):
    for page in ("README.html", "docs/sweep/README.html"):
        _open(browser, f"{server}/{page}")
        images = browser.execute_script(IMAGES)
        assert images, f"{page}: the sweep figure is missing"
        broken = [img["src"] for img in images if not img["complete"] or img["width"] == 0]
        assert not broken, f"{page}: figures that did not load: {broken}"


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z]{3,}", text)


def test_randomized_rounding_api_page(browser, server):
    from h3r_theory.codecs import RandomizedRounding

    _open(browser, f"{server}/docs/book/api/codecs.html")
    entry = browser.execute_script(
        """const dt = document.querySelector('dt[id$=".RandomizedRounding"]');
        if (!dt) return null;
        return {id: dt.id, signature: dt.innerText, doc: dt.nextElementSibling.innerText};"""
    )
    assert entry is not None, "no API entry for RandomizedRounding on the codecs page"
    assert "RandomizedRounding" in entry["signature"]
    parameters = [p for p in inspect.signature(RandomizedRounding).parameters if p not in ("args", "kwargs")]
    assert parameters, "RandomizedRounding takes no named parameters?"
    missing = [p for p in parameters if p not in entry["signature"]]
    assert not missing, f"signature shown: {entry['signature']!r}; parameters missing: {missing}"
    summary = inspect.getdoc(RandomizedRounding).split("\n\n")[0]
    shown = set(_words(entry["doc"]))
    absent = [w for w in _words(summary) if w not in shown]
    assert not absent, f"docstring summary not shown; words missing: {absent}"


def test_screenshots(browser, server, tmp_path):
    """One picture of the home page and one of a notebook; kept under H3R_BOOK_SCREENSHOTS when it is set."""
    folder = Path(os.environ.get("H3R_BOOK_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    shots = {"home.png": HOME, "notebook.png": f"notebooks/{SCREENSHOT_NOTEBOOK}.html"}
    for filename, page in shots.items():
        _open(browser, f"{server}/{page}")
        path = folder / filename
        assert browser.save_screenshot(str(path)), f"screenshot of {page} failed"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000, path
