"""Split an exercise script into its setup, answer and check cells, and write the handout (pure text work).

A solution script is an ordinary Python script whose exercises are marked by comment lines, in the cell
syntax of jupytext's percent format so that editors show them as cells::

    # %% [answer] exercise 2
    largest = max(s for s in strides if s < limit)
    # %% [check] exercise 2, 3 points: the largest stride with a rounding NME under 1 %
    assert largest == 2

Everything above the first marker is the **setup** (imports and the instructor's helpers): it is kept in
the handout and, when grading, the solution's own setup runs, never the student's copy. An **answer** cell
holds the student's work; a **check** cell holds the solution's assertions on the names the answer defines,
worth the stated points. A cell runs from its marker to the next marker or the end of the file. Options
after the exercise number of an answer marker, comma-separated:

``needs PATH``
    the exercise reads ``../shared/data/real_samples/PATH``; it is skipped (not counted) when that is absent.
``long``
    the exercise takes minutes (the solution runs it under ``--long``); graded only with ``--long``.

Run as a plain script, the file executes setup, answer, check, answer, check, ... top to bottom, so the
solutions stay scripts that assert their answers.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

MARKER = re.compile(r"^# %% \[(answer|check)\] exercise (\d+)(.*)$")
CHECK_OPTIONS = re.compile(r"^, (\d+) points?: (\S.*)$")
STUB_ERROR = "NotImplementedError"


class CellError(ValueError):
    """A marker line that does not parse, or cells in an impossible order (the message names the line)."""


@dataclass(frozen=True)
class Check:
    """One check cell: ``source`` (its lines, marker excluded), worth ``points``, described by ``what``."""

    exercise: int
    points: int
    what: str
    source: str
    line: int  # 1-based line of the first source line in the file


@dataclass(frozen=True)
class Answer:
    """One answer cell; ``needs`` is a path under the real samples, ``long`` marks a minutes-long one."""

    exercise: int
    source: str
    line: int
    needs: str | None = None
    long: bool = False


@dataclass
class Exercises:
    """A parsed script: the setup source, and per exercise number its answer and its checks (in order)."""

    setup: str
    answers: dict[int, Answer] = field(default_factory=dict)
    checks: dict[int, list[Check]] = field(default_factory=dict)

    @property
    def numbers(self) -> list[int]:
        """The exercise numbers that have an answer or a check, ascending."""
        return sorted(set(self.answers) | set(self.checks))

    def points(self, exercise: int) -> int:
        """The points of ``exercise`` (the sum over its checks)."""
        return sum(c.points for c in self.checks.get(exercise, []))


def _answer_options(rest: str, where: str) -> dict:
    options: dict = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        if part == "long":
            options["long"] = True
        elif part.startswith("needs "):
            options["needs"] = part[len("needs ") :].strip()
        else:
            raise CellError(f"{where}: unknown answer option {part!r} (expected 'needs PATH' or 'long')")
    return options


def parse(text: str, name: str = "<script>") -> Exercises:
    """Parse a script's ``text`` into :class:`Exercises`; ``name`` is used in the error messages.

    Raises :class:`CellError` for a marker that does not parse, a second answer cell for one exercise, or
    an answer cell placed after a check cell of the same exercise.
    """
    lines = text.splitlines(keepends=True)
    starts = [(i, MARKER.match(line.rstrip("\n"))) for i, line in enumerate(lines)]
    starts = [(i, m) for i, m in starts if m]
    bad = next(
        (i for i, line in enumerate(lines) if line.startswith("# %% [") and not MARKER.match(line.rstrip())),
        None,
    )
    if bad is not None and re.match(r"^# %% \[(answer|check)\]", lines[bad]):
        raise CellError(f"{name}, line {bad + 1}: marker does not parse: {lines[bad].rstrip()!r}")
    first = starts[0][0] if starts else len(lines)
    result = Exercises(setup="".join(lines[:first]))
    for k, (i, match) in enumerate(starts):
        end = starts[k + 1][0] if k + 1 < len(starts) else len(lines)
        kind, number, rest = match.group(1), int(match.group(2)), match.group(3)
        source, where = "".join(lines[i + 1 : end]), f"{name}, line {i + 1}"
        if kind == "answer":
            if number in result.answers:
                raise CellError(f"{where}: a second answer cell for exercise {number}")
            if number in result.checks:
                raise CellError(f"{where}: the answer of exercise {number} comes after its check")
            result.answers[number] = Answer(number, source, i + 2, **_answer_options(rest, where))
        else:
            options = CHECK_OPTIONS.match(rest)
            if not options:
                raise CellError(f"{where}: a check marker reads '# %% [check] exercise N, P points: what'")
            check = Check(number, int(options.group(1)), options.group(2).strip(), source, i + 2)
            result.checks.setdefault(number, []).append(check)
    return result


def _names(tree: ast.AST, context: type) -> set[str]:
    """Plain names used in ``context`` (ast.Load or ast.Store), function and class definitions as stores."""
    found = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, context)}
    if context is ast.Store:
        found |= {
            n.name
            for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        }
    return found


def contract(exercises: Exercises, number: int) -> list[str]:
    """The names the checks of exercise ``number`` read and its answer defines: what a student must define.

    Read from the solution's cells with ``ast``; names the setup defines are the instructor's, not part of
    the answer.
    """
    answer = exercises.answers.get(number)
    if answer is None:
        return []
    defined = _names(ast.parse(answer.source), ast.Store) - _names(ast.parse(exercises.setup), ast.Store)
    trees = [ast.parse(c.source) for c in exercises.checks.get(number, [])]
    read = set().union(*(_names(t, ast.Load) for t in trees)) - set().union(
        *(_names(t, ast.Store) for t in trees)
    )
    return sorted(defined & read)


def _marker(answer: Answer) -> str:
    options = (f", needs {answer.needs}" if answer.needs else "") + (", long" if answer.long else "")
    return f"# %% [answer] exercise {answer.exercise}{options}\n"


HANDOUT_HEADER = '''"""Exercises of notebook {stem}: {source} with the answers taken out.

Write each answer in its ``# %% [answer] exercise N`` cell, in place of the line that raises
NotImplementedError, and define the names that cell lists: the checks read them.
{checks}
Grade your answers with:  h3r-grade grade {stem}.py
"""
'''


def handout(text: str, stem: str, source: str, keep_checks: bool = True) -> str:
    """The handout of the solution script ``text``: the setup kept (its docstring replaced by a header),
    each answer cell replaced by a stub that raises NotImplementedError and names the answer's contract,
    and each check cell kept (``keep_checks``) or reduced to its marker line (what it checks and its points
    stay visible; the grader always runs the solution's checks, not the handout's).
    """
    exercises = parse(text, source)
    setup = exercises.setup
    tree = ast.parse(setup)
    body = tree.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        setup_lines = setup.splitlines(keepends=True)
        setup = "".join(setup_lines[body[0].end_lineno :]).lstrip("\n")
    checks = (
        "The check cells below each answer are the ones the grader runs."
        if keep_checks
        else "The grader's checks are withheld; each check marker says what it checks and its points."
    )
    out = [HANDOUT_HEADER.format(stem=stem, source=source, checks=checks), "\n", setup]
    for number in exercises.numbers:
        answer = exercises.answers.get(number)
        if answer is not None:
            names = contract(exercises, number)
            out.append(_marker(answer))
            if names:
                out.append(f"# Define: {', '.join(names)}\n")
            out.append(f'raise {STUB_ERROR}("exercise {number}: write your answer here")\n\n')
        for check in exercises.checks.get(number, []):
            unit = "point" if check.points == 1 else "points"
            out.append(f"# %% [check] exercise {number}, {check.points} {unit}: {check.what}\n")
            out.append(check.source if keep_checks else "# (withheld: the grader runs it)\n\n")
    return "".join(out).rstrip("\n") + "\n"
