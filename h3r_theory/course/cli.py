"""``h3r-grade``: make the exercise handouts, or grade a student's answers.

    h3r-grade handout OUTDIR [--withhold-checks]        the ten exercise files, answers taken out
    h3r-grade grade PATH [--time-limit S] [--long]      PATH: one NN_name.py, or a folder of them

Bad input (a missing file, a notebook that does not exist, a file that is not a Python exercise script)
prints one line naming it and exits with code 2; a graded run exits 0, whatever the score.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from h3r_theory.course import cells, grading

EXERCISE_FILE = re.compile(r"^(\d\d)_\w+$")


class BadInput(Exception):
    """Input the user must fix; its message is the one line printed."""


def solution_files(folder: Path) -> dict[str, Path]:
    """The solution scripts by stem (``01_quantization_error``), from ``folder``."""
    if not folder.is_dir():
        raise BadInput(f"{folder}: the solutions folder does not exist (pass --solutions DIR)")
    return {p.stem: p for p in sorted(folder.glob("[0-9][0-9]_*.py"))}


def _match(path: Path, solutions: dict[str, Path]) -> Path:
    """The solution a student's file answers: same stem, or else the same two-digit number."""
    if path.suffix != ".py":
        raise BadInput(f"{path}: not a Python file (grade the NN_name.py files of the handout)")
    if path.stem in solutions:
        return solutions[path.stem]
    match = EXERCISE_FILE.match(path.stem)
    same_number = [p for stem, p in solutions.items() if match and stem[:2] == match.group(1)]
    if len(same_number) == 1:
        return same_number[0]
    raise BadInput(f"{path}: unknown notebook {path.stem!r} (expected one of {', '.join(sorted(solutions))})")


def student_files(path: Path, solutions: dict[str, Path]) -> list[tuple[Path, Path]]:
    """(student file, solution) pairs for ``path``: one file, or every ``NN_*.py`` in a folder."""
    if path.is_dir():
        found = sorted(path.glob("[0-9][0-9]_*.py"))
        if not found:
            raise BadInput(f"{path}: no NN_name.py exercise files in this folder")
        return [(p, _match(p, solutions)) for p in found]
    if not path.exists():
        raise BadInput(f"{path}: no such file or folder")
    return [(path, _match(path, solutions))]


def _read_script(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not a text file (a Python script is UTF-8 text)") from None
    if "\0" in text:
        raise BadInput(f"{path}: not a text file (it holds NUL bytes)")
    try:
        exercises = cells.parse(text, str(path))
    except cells.CellError as error:
        raise BadInput(str(error)) from None
    if not exercises.answers:
        raise BadInput(f"{path}: no '# %% [answer] exercise N' cells (start from h3r-grade handout)")
    return text


def handout_command(args) -> int:
    out = Path(args.outdir)
    if out.exists() and not out.is_dir():
        raise BadInput(f"{out}: exists and is not a folder")
    solutions = solution_files(Path(args.solutions))
    out.mkdir(parents=True, exist_ok=True)
    for stem, path in solutions.items():
        source = f"notebooks/solutions/{path.name}"
        text = cells.handout(
            path.read_text(encoding="utf-8"), stem, source, keep_checks=not args.withhold_checks
        )
        (out / path.name).write_text(text, encoding="utf-8")
        print(f"wrote {out / path.name}")
    return 0


def grade_command(args) -> int:
    if args.time_limit <= 0:
        raise BadInput(f"--time-limit: must be a positive number of seconds, got {args.time_limit:g}")
    pairs = student_files(Path(args.path), solution_files(Path(args.solutions)))
    for student, _ in pairs:
        _read_script(student)
    total, earned = 0, 0
    for student, solution in pairs:
        rows = grading.grade_file(student, solution, time_limit=args.time_limit, long=args.long)
        print(grading.format_table(f"{student}  (graded with {solution.name})", rows))
        print()
        total += sum(r.points for r in rows if r.got is not None)
        earned += sum(r.got for r in rows if r.got is not None)
    if len(pairs) > 1:
        print(f"all notebooks: {earned} / {total} points")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (no usage block), exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see h3r-grade --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="h3r-grade", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--solutions", default=str(grading.SOLUTIONS), help="the solution scripts (default: %(default)s)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    handout = commands.add_parser("handout", help="write the exercise files without their answers")
    handout.add_argument("outdir")
    handout.add_argument(
        "--withhold-checks",
        action="store_true",
        help="leave the check cells out (their markers, with points and what they check, stay)",
    )
    grade = commands.add_parser("grade", help="grade a student's NN_name.py file, or a folder of them")
    grade.add_argument("path")
    grade.add_argument(
        "--time-limit", type=float, default=grading.TIME_LIMIT, help="seconds per exercise (%(default)g)"
    )
    grade.add_argument("--long", action="store_true", help="also grade the exercises marked long")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return handout_command(args) if args.command == "handout" else grade_command(args)
    except BadInput as error:
        print(f"h3r-grade: {error}", file=sys.stderr)
        return 2


def console_main() -> None:
    """Entry point of the ``h3r-grade`` console script."""
    sys.exit(main())


if __name__ == "__main__":
    console_main()
