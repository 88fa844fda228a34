"""The grading command (h3r_theory.course), tested both ways on the real solution scripts.

Every solution, handed in as a student's answers, gets full marks; a planted wrong answer (generated here:
the answer cell of one exercise, followed by lines that turn each name its checks read into a wrong but
running value) loses exactly that exercise's points, with a message that names it. Answers that call
sys.exit, loop forever or do not parse lose only their own points. Grading runs each solution's setup and
answers in a worker process, so the solutions' own run time dominates: 01, 02 and 09 (about 5 s each per
grading run on the 2-core CI machine) are graded on every run; the other seven are marked slow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from h3r_theory.course import cells, cli, grading

SOLUTIONS = Path(__file__).resolve().parents[1] / "notebooks" / "solutions"
STEMS = sorted(p.stem for p in SOLUTIONS.glob("[0-9][0-9]_*.py"))
FAST = ("01_quantization_error", "02_randomized_rounding", "09_authors_release")
#: The cheap settings of tests/test_notebooks.py for the solutions that train.
CHEAP = {"06_train_face_landmarks": {"H3R_SOLUTION_STEPS": "60"}}

TOY_SOLUTION = '''"""A toy solution."""
import math

# %% [answer] exercise 1
root = math.sqrt(2)
# %% [check] exercise 1, 2 points: root is the square root of 2
assert abs(root**2 - 2) < 1e-12, f"root = {root}"
# %% [answer] exercise 2
squares = [k * k for k in range(4)]
# %% [check] exercise 2, 1 point: squares holds 0, 1, 4, 9
assert squares == [0, 1, 4, 9], f"squares = {squares}"
# %% [check] exercise 2, 1 point: there are four of them
assert len(squares) == 4
# %% [answer] exercise 3, needs no/such/folder
x = 1
# %% [check] exercise 3, 5 points: x is 1
assert x == 1
'''


def _params(stems):
    return [s if s in FAST else pytest.param(s, marks=pytest.mark.slow) for s in stems]


def _grade(student: Path, solution: Path, **options) -> list[grading.Row]:
    return grading.grade_file(student, solution, **options)


def _graded(rows):
    return [r for r in rows if r.got is not None]


def planted_wrong(text: str, number: int) -> str:
    """``text`` with the answer cell of exercise ``number`` followed by lines that make its contract wrong.

    Numbers, arrays, tensors and sympy values v become 1 - f v, with a factor f = 3, 4, ... of its own for
    each name and each item of a list or tuple (so that two values a check compares differ); booleans flip;
    dicts change value by value; a function returns the wrong value of what it returned; anything else
    becomes None.
    """
    exercises = cells.parse(text)
    names = cells.contract(exercises, number)
    assert names, f"exercise {number} defines nothing its checks read"
    helper = (
        "def _wrong(v, f):\n"
        "    if isinstance(v, bool):\n        return not v\n"
        "    if isinstance(v, dict):\n        return {k: _wrong(x, f) for k, x in v.items()}\n"
        "    if isinstance(v, (list, tuple)):\n        return type(v)(_wrong(x, f + i) for i, x in enumerate(v))\n"
        "    if callable(v) and not isinstance(v, type):\n        return lambda *a, **k: _wrong(v(*a, **k), f)\n"
        "    try:\n        return 1 - f * v\n    except TypeError:\n        return None\n"
    )
    lines = [helper, *(f"{name} = _wrong({name}, {3 + k})\n" for k, name in enumerate(names))]
    marker = next(
        line for line in text.splitlines(keepends=True) if line.startswith(f"# %% [answer] exercise {number}")
    )
    answer = exercises.answers[number].source
    start = text.index(marker) + len(marker)
    assert text[start : start + len(answer)] == answer
    return text[: start + len(answer)] + "\n" + "".join(lines) + text[start + len(answer) :]


def first_graded(rows) -> int:
    return next(r.exercise for r in rows if r.got is not None)


# --- the cells and the handout (pure text) -------------------------------------------------------------------


def test_every_solution_is_split_into_graded_cells():
    for stem in STEMS:
        exercises = cells.parse((SOLUTIONS / f"{stem}.py").read_text(), stem)
        assert exercises.checks, f"{stem}.py has no '# %% [check] exercise N, P points: ...' cells"
        for number, checks in exercises.checks.items():
            assert number in exercises.answers, f"{stem}.py: exercise {number} has checks but no answer cell"
            assert all(c.points > 0 for c in checks)
        ast.parse(exercises.setup)  # the setup alone is valid Python


def test_parse_toy_solution():
    exercises = cells.parse(TOY_SOLUTION)
    assert exercises.numbers == [1, 2, 3]
    assert [exercises.points(n) for n in (1, 2, 3)] == [2, 2, 5]
    assert exercises.answers[3].needs == "no/such/folder"
    assert cells.contract(exercises, 1) == ["root"]
    assert cells.contract(exercises, 2) == ["squares"]
    assert exercises.setup.startswith('"""A toy solution."""\nimport math')


@pytest.mark.parametrize(
    "bad, words",
    [
        ("# %% [check] exercise 1: no points\nassert 1\n", "P points"),
        ("# %% [answer] exercise 1, fast\nx = 1\n", "unknown answer option"),
        ("# %% [answer] exercise 1\n# %% [answer] exercise 1\n", "second answer"),
        ("# %% [check] exercise 1, 1 point: a\n# %% [answer] exercise 1\n", "after its check"),
    ],
)
def test_bad_markers_name_their_line(bad, words):
    with pytest.raises(cells.CellError, match=words) as caught:
        cells.parse(bad, "f.py")
    assert "f.py, line " in str(caught.value)


@pytest.mark.parametrize("keep_checks", [True, False])
def test_handout_takes_the_answers_out(keep_checks):
    for stem in STEMS:
        text = (SOLUTIONS / f"{stem}.py").read_text()
        out = cells.handout(text, stem, f"notebooks/solutions/{stem}.py", keep_checks=keep_checks)
        solution, handout = cells.parse(text), cells.parse(out)
        assert handout.numbers == solution.numbers
        for number, answer in handout.answers.items():
            assert "raise NotImplementedError" in answer.source
            for name in cells.contract(solution, number):
                assert name in answer.source, f"{stem} exercise {number}: the stub does not name {name}"
        for number, checks in solution.checks.items():
            kept = [c.source for c in handout.checks[number]]
            assert [c.points for c in handout.checks[number]] == [c.points for c in checks]
            if keep_checks:
                assert kept == [c.source for c in checks]
            else:
                assert not any("assert" in k for k in kept)
        assert "Solutions to" not in out.split("\n\n", 1)[0]
        ast.parse(out)


# --- the command line: bad input is one line and exit code 2 ---------------------------------------------------


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda d: d / "missing.py", "no such file"),
        (lambda d: _write(d / "99_nothing.py", "x = 1\n"), "unknown notebook"),
        (lambda d: _write(d / "01_quantization_error.txt", "x = 1\n"), "not a Python file"),
        (lambda d: _write(d / "01_quantization_error.py", "x = 1\n"), "no '# %% [answer]"),
        (lambda d: _write_bytes(d / "01_quantization_error.py", b"\xff\xfe\x00x"), "not a text file"),
        (lambda d: d, "no NN_name.py"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, make, words):
    path = make(tmp_path)
    assert cli.main(["grade", str(path)]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1, err


def test_bad_argument_is_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["grade"])
    assert caught.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --- grading: the toy solution, then students who exit, loop or do not parse -----------------------------------


def test_toy_grading_and_skip(tmp_path):
    (tmp_path / "sol").mkdir()
    solution = _write(tmp_path / "sol" / "01_toy.py", TOY_SOLUTION)
    rows = _grade(solution, solution)
    assert [(r.exercise, r.got) for r in rows] == [(1, 2), (2, 1), (2, 1), (3, None)]
    assert "skipped: needs" in rows[-1].message
    table = grading.format_table("toy", rows)
    assert "total       4    4  (1 check skipped, not counted)" in table


def test_a_long_exercise_is_graded_only_with_long(tmp_path):
    (tmp_path / "sol").mkdir()
    # The setup reads the flag the way the training solutions do (sys.argv), so a long answer can use it.
    text = TOY_SOLUTION.replace(
        '"""A toy solution."""\nimport math\n',
        '"""A toy solution."""\nimport math\nimport sys\n\nLONG = "--long" in sys.argv\n',
    )
    text = text.replace(", needs no/such/folder", ", long").replace("x = 1\n", "x = 1 if LONG else 0\n")
    solution = _write(tmp_path / "sol" / "01_toy.py", text)
    rows = _grade(solution, solution)
    assert rows[-1].got is None and "skipped: a long exercise (grade with --long)" in rows[-1].message
    assert [r.got for r in _grade(solution, solution, long=True)] == [2, 1, 1, 5]
    wrong = _write(tmp_path / "01_toy.py", text.replace("x = 1 if LONG else 0\n", "x = 2\n"))
    rows = _grade(wrong, solution, long=True)
    assert rows[-1].got == 0 and "exercise 3" in rows[-1].message


def test_exit_loop_and_syntax_error_lose_only_their_points(tmp_path):
    (tmp_path / "sol").mkdir()
    solution = _write(tmp_path / "sol" / "01_toy.py", TOY_SOLUTION.replace(", needs no/such/folder", ""))
    student = TOY_SOLUTION.replace(", needs no/such/folder", "")
    student = student.replace("root = math.sqrt(2)\n", "import sys\nsys.exit(3)\n")
    student = student.replace("squares = [k * k for k in range(4)]\n", "while True:\n    pass\n")
    student = student.replace("x = 1\n", "x = (1\n")
    rows = _grade(_write(tmp_path / "01_toy.py", student), solution, time_limit=3)
    assert [r.got for r in rows] == [0, 0, 0, 0]
    messages = [r.message for r in rows]
    assert "exercise 1" in messages[0] and "sys.exit(3)" in messages[0]
    assert all("exercise 2" in m and "time limit" in m for m in messages[1:3])
    assert "exercise 3" in messages[3] and "syntax error" in messages[3]
    # The same three failures with the other answers right: each loses only its own points.
    for broken in (1, 2, 3):
        text = TOY_SOLUTION.replace(", needs no/such/folder", "")
        replaced = {
            1: ("root = math.sqrt(2)\n", "import os\nos._exit(5)\n"),
            2: ("squares = [k * k for k in range(4)]\n", "while True:\n    pass\n"),
            3: ("x = 1\n", "x = (1\n"),
        }[broken]
        rows = _grade(_write(tmp_path / "01_toy.py", text.replace(*replaced)), solution, time_limit=3)
        assert {r.exercise for r in rows if r.got == 0} == {broken}
        assert all(r.got == r.points for r in rows if r.exercise != broken)


def test_os_exit_restarts_the_worker(tmp_path):
    (tmp_path / "sol").mkdir()
    text = TOY_SOLUTION.replace(", needs no/such/folder", "")
    solution = _write(tmp_path / "sol" / "01_toy.py", text)
    rows = _grade(
        _write(tmp_path / "01_toy.py", text.replace("root = math.sqrt(2)\n", "import os\nos._exit(5)\n")),
        solution,
    )
    assert rows[0].got == 0 and "exit code 5" in rows[0].message
    assert [r.got for r in rows[1:]] == [1, 1, 5]


# --- both ways, on the real solutions ---------------------------------------------------------------------------


@pytest.mark.parametrize("stem", _params(STEMS))
def test_solutions_get_full_marks_and_a_planted_error_loses_its_points(stem, tmp_path, monkeypatch):
    for key, value in CHEAP.get(stem, {}).items():
        monkeypatch.setenv(key, value)
    solution = SOLUTIONS / f"{stem}.py"
    rows = _grade(solution, solution)
    graded = _graded(rows)
    assert graded, f"{stem}: nothing graded"
    assert all(r.got == r.points for r in graded), grading.format_table(stem, rows)
    number = first_graded(rows)
    student = _write(tmp_path / f"{stem}.py", planted_wrong(solution.read_text(), number))
    wrong = _grade(student, solution)
    lost = {r.exercise for r in wrong if r.got is not None and r.got < r.points}
    assert lost == {number}, grading.format_table(stem, wrong)
    assert all(r.got == 0 and f"exercise {number}" in r.message for r in wrong if r.exercise == number)
    assert sum(r.got for r in _graded(wrong)) == sum(r.points for r in graded) - sum(
        r.points for r in graded if r.exercise == number
    )
