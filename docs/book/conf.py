"""Sphinx configuration of the course website (``make book``).

The source directory is the repository root, so that the stored notebooks, the README and ``docs/`` are read
where they live (their relative links and figures keep working) and nothing is copied. This file sits in
``docs/book`` (``sphinx-build -c docs/book . build/book``); ``include_patterns`` picks the pages.

Offline by design: notebooks are rendered from their stored outputs (never executed), MathJax is served from
the ``sphinx-mathjax-offline`` package copied into ``_static``, ipywidgets' CDN scripts are not loaded (the
notebook's static figure stands in for the slider), and there is no intersphinx (it would fetch inventories).
"""

from __future__ import annotations

import importlib
import inspect
import re

from sphinx.util.nodes import make_refnode

project = "h3r-theory"
author = "h3r-theory developers"
copyright = "h3r-theory developers, MIT licence"
release = importlib.import_module("h3r_theory").__version__

# The home page; build/book/index.html redirects to it (see html_additional_pages).
root_doc = "docs/book/index"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    # Its import name has dashes. It ships MathJax 3, copies it into _static and points mathjax_path there.
    "sphinx-mathjax-offline",
]

# Pages: the teaching path, the READMEs, docs/ (sweep, studies, design notes, testing kit) and this site's own files.
include_patterns = [
    "README.md",
    "CONTRIBUTING.md",
    "notebooks/README.md",
    "notebooks/[0-9][0-9]_*.ipynb",
    "docs/*.md",
    "docs/course/*.md",
    "docs/sweep/README.md",
    "docs/studies/README.md",
    "docs/studies/*/study.md",
    "docs/book/**",
]
# Pruned while Sphinx walks the tree (include_patterns alone would still walk .venv and runs/).
exclude_patterns = [
    ".git",
    ".venv",
    "**/.ipynb_checkpoints",
    "build",
    "runs",
    "benchmarks",
    "h3r_theory*",
    "trainers",
    "tests",
    "notebooks/solutions",
    "docs/book/screenshots",
    "docs/book/_templates",
]


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


# The testing kit's API page is built only once the package exists (the API toctree is a glob).
if not _importable("h3r_theory.testing"):
    exclude_patterns.append("docs/book/api/testing.md")

# Warnings are errors (make book passes -W --keep-going); every cross-reference must resolve.
nitpicky = True
# Types of other libraries: without intersphinx (no network) Sphinx cannot link them, so they are not checked.
nitpick_ignore_regex = [
    (
        "py:class",
        r"(torch|numpy|np|sympy|sp|matplotlib|collections\.abc|typing|pathlib|argparse|os|yaml)\..*",
    ),
    ("py:class", r"(Tensor|Figure|Axes|Path|Sequence|Mapping|Iterable|Iterator|Callable|Any|Generator)"),
    ("py:class", r"(Expr|Symbol|Rational|Matrix|Basic|ndarray|ArrayLike|DTypeLike|dtype|device)"),
    ("py:(obj|func|meth|data|attr)", r"(torch|numpy|np|sympy|sp|matplotlib)\..*"),
    # The trainers' internals (datasets, records, specs, transforms, the bound) are named in the docstrings of
    # the entry points but are not on the API page, which documents the public entry points only.
    ("py:(class|func|meth)", r"trainers\.(data|bound)\..*"),
    # The codec kit's helpers (its sampled geometries, the diagnosis) are described on docs/testing.md; the
    # API page documents the kit's public entry points.
    ("py:(class|func)", r"h3r_theory\.testing\.(strategies|diagnose)\..*"),
]


# --- notebooks (MyST-NB) --------------------------------------------------------------------------------
nb_execution_mode = "off"  # the stored, executed outputs are the content
nb_render_markdown_format = "myst"  # Markdown outputs (computed prose, derivations) get $math$ too
nb_ipywidgets_js = {}  # no CDN scripts; the widget output is left empty, the static figure above shows it
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
myst_dmath_double_inline = True

# --- API reference (autodoc) ------------------------------------------------------------------------------
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # "Attributes:" as fields, so dataclass fields are not described twice

# --- HTML --------------------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "h3r-theory"
html_theme_options = {
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
    "use_download_button": True,
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "use_issues_button": False,
    "use_edit_page_button": False,
    "navigation_with_keys": False,
}
templates_path = ["_templates"]  # relative to this folder
# A static host serves index.html at the root: a one-line redirect to the home page.
html_additional_pages = {"index": "redirect.html"}
html_copy_source = False
html_show_sourcelink = False


# --- cross-references written by import path -------------------------------------------------------------
def _python_object(dotted: str):
    """The object a dotted path names (``h3r_theory.codecs.quantize``), or None."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for attribute in parts[split:]:
                obj = getattr(obj, attribute)
        except AttributeError:
            return None
        return obj
    return None


def _existing_value(node, contnode):
    """A constant or module that exists in the code but has no entry of its own stays plain text.

    Classes and functions must be documented to be referenced; a ``:data:`` or ``:mod:`` reference only has
    to name something real (checked by importing it), else nitpicky reports it as broken.
    """
    if node["reftype"] not in ("data", "attr", "obj", "const", "mod"):
        return None
    target = node["reftarget"]
    candidates = [f"{node['py:module']}.{target}"] if node.get("py:module") else []
    if any(_python_object(name) is not None for name in [*candidates, target]):
        return contnode
    return None


def resolve_python_reference(app, env, node, contnode):
    """Resolve a Python reference that names an object by another path than the page documents it under.

    Docstrings write ``h3r_theory.codecs.quantize`` (the public re-export) or ``codecs.Argmax`` (relative to a
    parent package); the API pages document each object once, in its defining module. A reference is resolved
    when the documented names that end with ``.target`` are all one object, or when the object the target
    imports to is documented.
    Anything else stays unresolved, and nitpicky reports it.
    """
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"]
    domain = env.get_domain("py")
    matches = [name for name in domain.objects if name.endswith("." + target)]
    if len({id(_python_object(name)) for name in matches}) > 1:
        return None  # two different objects answer to this name: ambiguous, leave it to nitpicky
    if not matches:
        candidates = [target]
        if node.get("py:module"):
            candidates.insert(0, f"{node['py:module']}.{target}")
        obj = next((o for o in map(_python_object, candidates) if o is not None), None)
        if not (inspect.ismodule(obj) or inspect.isclass(obj) or inspect.isroutine(obj)):
            return _existing_value(node, contnode)  # numbers, strings, tables: no identity to match on
        matches = [name for name in domain.objects if _python_object(name) is obj]
    if not matches:
        return _existing_value(node, contnode)
    name = min(matches, key=len)  # one object documented under several names: the shortest path
    entry = domain.objects[name]
    return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, name)


# --- "a, b: text" in an Attributes section -----------------------------------------------------------------
_SHARED_IVAR = re.compile(r"^(\s*):ivar (\w+(?:\s*,\s*\w+)+):(.*)$")


def split_shared_attributes(app, what, name, obj, options, lines):
    """Give each name of ``a, b: text`` in an ``Attributes:`` section its own field, with the shared text.

    napoleon reads ``a, b: text`` in ``Args:`` as two parameters, but writes ``:ivar a, b: text`` for
    ``Attributes:``, which Sphinx parses as the name ``b`` of a type ``a,`` (a broken cross-reference).
    Runs after napoleon (conf.py's setup is called after the extensions').
    """
    out, i = [], 0
    while i < len(lines):
        match = _SHARED_IVAR.match(lines[i])
        if not match:
            out.append(lines[i])
            i += 1
            continue
        indent, names, text = match.groups()
        end = i + 1  # the field's continuation lines are indented deeper than the field
        while (
            end < len(lines)
            and lines[end].strip()
            and len(lines[end]) - len(lines[end].lstrip()) > len(indent)
        ):
            end += 1
        for attribute in (n.strip() for n in names.split(",")):
            out += [f"{indent}:ivar {attribute}:{text}", *lines[i + 1 : end]]
        i = end
    lines[:] = out


def setup(app):
    app.connect("missing-reference", resolve_python_reference)
    app.connect("autodoc-process-docstring", split_shared_attributes)
