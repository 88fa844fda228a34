"""The teaching notebooks: each .ipynb agrees with its jupytext .py pair, is stored executed with outputs, and
follows the conventions of notebooks/README.md. The notebooks themselves run under nbval
(``pytest --nbval-lax notebooks``); the exercise solutions run here, the training ones with cheap settings.

These checks read files only (no kernel), so they take about a second, plus the solutions.
"""

from __future__ import annotations

import copy
import re
import runpy
from pathlib import Path

import jupytext  # a hard dependency of the tests (the "notebooks" extra): a missing one must fail, not skip
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
#: The theory notebooks (pure theory and small simulations): their numbers are deterministic.
THEORY_NOTEBOOKS = (
    "01_quantization_error",
    "02_randomized_rounding",
    "03_proofs",
    "04_codec_zoo",
    "05_loss_decoder_consistency",
)
#: The notebooks whose exercise solutions this file runs.
SOLUTIONS_RUN_HERE = (
    *THEORY_NOTEBOOKS,
    "06_train_face_landmarks",
    "07_human_pose",
    "08_resolution_sweep",
    "09_authors_release",
    "10_theory_vs_benchmarks",
    "11_why_the_residual_grows",
)
#: Environment of the solutions that train: few steps, enough for their assertions to hold (06's solution
#: asserts that randomized rounding beats argmax: after 60 steps of the tiny CNN its mean error is about
#: 12 % lower, measured with torch 2.13 on CPU). 08's runs its tiny sweep (one seed) at 10 and at 60 steps
#: and asserts that the longer run has the lower stride-8 error of randomized rounding (8.14 px against
#: 2.11 px, same machine; about 35 s in all); its other answers read the committed docs/sweep/sweep.json.
CHEAP_SETTINGS = {
    "06_train_face_landmarks": {"H3R_SOLUTION_STEPS": "60"},
    "08_resolution_sweep": {"H3R_SOLUTION_STEPS": "10,60"},
}
#: Teaching notebooks whose deterministic numbers must be held by nbval (at least this many checked cells).
MIN_CHECKED_CELLS = {stem: 2 for stem in THEORY_NOTEBOOKS}
MAX_BYTES = 1_000_000
CHECK_MARKER = "# NBVAL_CHECK_OUTPUT"
# Things whose output changes from run to run; a checked cell must not print them. Regular expressions:
# ``\bid\(`` is the builtin id(), not the end of meshgrid( or sigmoid(.
NONDETERMINISTIC_CODE = tuple(
    re.compile(p) for p in (r"perf_counter", r"time\.time\(", r"timeit", r"datetime\.now", r"\bid\(")
)
MEMORY_ADDRESS = re.compile(r"at 0x[0-9a-fA-F]{6,}")


def _ids(paths):
    return [p.stem for p in paths]


def _cells(notebook) -> list[tuple[str, str, tuple]]:
    """What must agree between the pair: each cell's type, source and tags (outputs live only in the .ipynb)."""
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", ()))) for c in notebook.cells]


def pair_mismatch(ipynb, py) -> str | None:
    """A description of the first difference between the two notebooks' cells, or ``None`` if they agree."""
    a, b = _cells(ipynb), _cells(py)
    for index, (x, y) in enumerate(zip(a, b)):
        if x[0] != y[0] or x[2] != y[2]:
            return f"cell {index} differs: .ipynb is a {x[0]} cell tagged {x[2]}, .py a {y[0]} cell tagged {y[2]}"
        if x[1] != y[1]:
            lines_a, lines_b = x[1].splitlines(), y[1].splitlines()
            line = next(
                (i for i, (la, lb) in enumerate(zip(lines_a, lines_b)) if la != lb),
                min(len(lines_a), len(lines_b)),
            )
            got_a = lines_a[line] if line < len(lines_a) else "<end of cell>"
            got_b = lines_b[line] if line < len(lines_b) else "<end of cell>"
            return f"cell {index}, line {line + 1} differs:\n  .ipynb: {got_a!r}\n  .py:    {got_b!r}"
    if len(a) != len(b):
        return f".ipynb has {len(a)} cells but .py has {len(b)}"
    return None


def _text_outputs(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        for mime in ("text/plain", "text/markdown"):
            value = output.get("data", {}).get(mime, "")
            parts.append(value if isinstance(value, str) else "".join(value))
    return "\n".join(parts)


def test_there_are_teaching_notebooks():
    stems = set(_ids(NOTEBOOKS))
    assert set(SOLUTIONS_RUN_HERE) <= stems, f"missing notebooks: {set(SOLUTIONS_RUN_HERE) - stems}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_and_py_pair_agree(path: Path):
    py_path = path.with_suffix(".py")
    assert py_path.exists(), (
        f"{path.name} has no jupytext pair {py_path.name} (run: jupytext --sync {path.name})"
    )
    ipynb, py = jupytext.read(path), jupytext.read(py_path)
    mismatch = pair_mismatch(ipynb, py)
    assert mismatch is None, f"{path.name} and {py_path.name} disagree ({mismatch}); run jupytext --sync"
    for name, nb in ((path.name, ipynb), (py_path.name, py)):
        formats = nb.metadata.get("jupytext", {}).get("formats")
        assert formats == "ipynb,py:percent", (
            f"{name}: jupytext formats {formats!r}, expected 'ipynb,py:percent'"
        )


def test_pair_check_detects_a_difference():
    """The comparison above is not vacuous: a one-character edit, a dropped cell or a lost tag is reported."""
    original = jupytext.read(NOTEBOOKS[0])
    edited = copy.deepcopy(original)
    edited.cells[1].source += " "
    edited.cells[2].source += "x"
    assert pair_mismatch(original, edited).startswith("cell 2, line")
    shorter = copy.deepcopy(original)
    shorter.cells.pop()
    assert "cells" in pair_mismatch(original, shorter)
    untagged = copy.deepcopy(original)
    for cell in untagged.cells:
        cell.metadata.pop("tags", None)
    assert pair_mismatch(original, untagged) is not None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_stored_executed_with_outputs(path: Path):
    assert path.stat().st_size < MAX_BYTES, f"{path.name} is {path.stat().st_size} bytes (limit {MAX_BYTES})"
    nb = jupytext.read(path)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    counts = [c.get("execution_count") for c in code]
    assert None not in counts, f"{path.name}: code cell {counts.index(None)} was never executed"
    # One top-to-bottom run: counts 1, 2, 3, ... (re-running a cell by hand breaks the sequence).
    assert counts == list(range(1, len(code) + 1)), (
        f"{path.name}: execution counts {counts} are not 1..{len(code)}"
    )
    assert any(c.get("outputs") for c in code), f"{path.name} has no stored outputs"
    for index, cell in enumerate(code):
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{path.name}: code cell {index} stored an error: {errors[0].get('ename')}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_structure(path: Path):
    """Learning goals first, a parameters cell as the first code cell, exercises last, solutions kept apart."""
    nb = jupytext.read(path)
    markdown = [c for c in nb.cells if c.cell_type == "markdown"]
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert markdown and "learning goals" in markdown[0].source.lower(), (
        f"{path.name}: no learning goals up front"
    )
    assert re.search(r"^#+ .*exercises", markdown[-1].source, re.IGNORECASE | re.MULTILINE), (
        f"{path.name}: must end with Exercises"
    )
    assert "parameters" in code[0].metadata.get("tags", []), (
        f"{path.name}: first code cell must be tagged parameters"
    )
    solutions = [NOTEBOOK_DIR / "solutions" / f"{path.stem}{ext}" for ext in (".py", ".ipynb")]
    assert any(s.exists() for s in solutions), (
        f"{path.name}: no solutions in notebooks/solutions/{path.stem}.py"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_checked_cells_are_deterministic(path: Path):
    nb = jupytext.read(path)
    checked = [c for c in nb.cells if c.cell_type == "code" and c.source.lstrip().startswith(CHECK_MARKER)]
    assert len(checked) >= MIN_CHECKED_CELLS.get(path.stem, 0), (
        f"{path.name}: {len(checked)} cells marked {CHECK_MARKER!r}, expected at least "
        f"{MIN_CHECKED_CELLS.get(path.stem, 0)}"
    )
    for cell in checked:
        for token in NONDETERMINISTIC_CODE:
            assert not token.search(cell.source), (
                f"{path.name}: a checked cell uses {token.pattern!r}: {cell.source[:120]!r}"
            )
        match = MEMORY_ADDRESS.search(_text_outputs(cell))
        assert match is None, f"{path.name}: a checked cell prints a memory address {match.group(0)!r}"
    # Markers must be the first line: nbval ignores them anywhere else.
    for cell in nb.cells:
        if cell.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in cell.source:
            assert cell.source.lstrip().startswith(CHECK_MARKER), f"{path.name}: marker not on the first line"


def notebook_title(nb) -> str:
    """The title of a notebook: its first Markdown line, which must read ``# N. Title``."""
    return nb.cells[0].source.strip().splitlines()[0]


TITLE = re.compile(r"^# (\d+)\. (\S.*)$")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_title_style_and_readmes(path: Path):
    """One title style, ``# N. Title`` with N the file's number; both READMEs name the notebook by that title
    (the course website and the README's teaching path quote it)."""
    first = notebook_title(jupytext.read(path))
    match = TITLE.match(first)
    assert match, f"{path.name}: title {first!r} is not '# N. Title'"
    assert int(match.group(1)) == int(path.stem[:2]), (
        f"{path.name}: title number {match.group(1)} is not its own"
    )
    title = f"{match.group(1)}. {match.group(2)}"
    notebooks_readme = (NOTEBOOK_DIR / "README.md").read_text(encoding="utf-8")
    assert f"**{title}** (`{path.stem}`)" in notebooks_readme, f"notebooks/README.md does not list {title!r}"
    readme = (NOTEBOOK_DIR.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## The teaching path", 1)[-1].split("\n## ", 1)[0]
    # The README's list may shorten a title after its colon; what it names must be the title's start.
    listed = re.search(rf"\*\*([^*]+)\*\* \(`{path.stem}`\)", section)
    assert listed, f"README.md's teaching path does not list `{path.stem}` with its title"
    assert match.group(2).startswith(listed.group(1)), (
        f"README.md lists `{path.stem}` as {listed.group(1)!r}, its title is {match.group(2)!r}"
    )


#: Numbers a notebook quotes (does not compute), with the file that must hold them: a regenerated source
#: that no longer says so fails here instead of leaving the notebook quoting what is not there.
QUOTED = {
    "10_theory_vs_benchmarks": (
        "../shared/notes/h3r-release.md",
        (
            "3.81",
            "4.45",
            "4.72",
            "70.7",
            "66.9",
            "75.6",
            "74.4",
            "75.3",
            "56.4",
            "45.8",
            "34.6",
            "42.0",
            "37.7",
        ),
    ),
}


@pytest.mark.parametrize("stem", sorted(QUOTED))
def test_quoted_numbers_are_in_their_source(stem: str):
    source, numbers = QUOTED[stem]
    path = NOTEBOOK_DIR.parent / source
    if not path.is_file() and source.startswith("../"):
        pytest.skip(f"{source} is outside the repository and absent here")
    text = path.read_text(encoding="utf-8")
    notebook = (NOTEBOOK_DIR / f"{stem}.py").read_text(encoding="utf-8")
    for number in numbers:
        assert number in notebook, f"{stem}.py no longer quotes {number}: update QUOTED"
        assert number in text, f"{stem} quotes {number} from {source}, which no longer contains it"


def test_title_pattern():
    """The title check is not vacuous: the old '06 · Title' style and a missing number fail it."""
    assert (
        TITLE.match("# 6. Training") and not TITLE.match("# 06 · Training") and not TITLE.match("# Training")
    )


def test_nondeterminism_patterns():
    """The patterns catch what they name and nothing that merely ends like it."""
    fired = lambda code: [p.pattern for p in NONDETERMINISTIC_CODE if p.search(code)]
    assert fired("print(id(x))") == [r"\bid\("]
    assert fired("t = time.perf_counter()") == ["perf_counter"]
    assert fired("u, v = torch.meshgrid(a, b); y = torch.sigmoid(z); w = grid(3)") == []


@pytest.mark.parametrize("stem", SOLUTIONS_RUN_HERE)
def test_solutions_run(stem: str, capsys, monkeypatch, one_thread):
    """Each solution script asserts its own answers; running it checks that they still hold."""
    for key, value in CHEAP_SETTINGS.get(stem, {}).items():
        monkeypatch.setenv(key, value)
    runpy.run_path(str(NOTEBOOK_DIR / "solutions" / f"{stem}.py"), run_name="__main__")
    assert capsys.readouterr().out.strip(), f"solutions/{stem}.py printed no answers"
