"""Grade a student's answers with the solutions' own checks, each answer in a worker process.

:func:`grade_file` takes a student's ``NN_name.py`` (a handout with the answers written in) and the
solution script of the same name. It runs, in a fresh Python process, the SOLUTION's setup, then for each
exercise the STUDENT's answer cell followed by each of the solution's check cells, each check on its own
copy of the answer's names, so that one failure does not hide the others. A check that passes earns its
points; one that fails, or whose answer raised, earns 0 with a one-line reason. Student code runs in the
worker: if it ends the process (``os._exit``) or runs past the time limit of its exercise, the worker is
killed, that exercise loses its points, and a new worker grades the remaining exercises.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from h3r_theory.course import cells

#: The repository's solution scripts (an editable install or a clone: the package sits beside notebooks/).
SOLUTIONS = Path(__file__).resolve().parents[2] / "notebooks" / "solutions"
#: Where the ``needs PATH`` of an answer marker is looked up (the solution scripts use the same folder).
REAL_SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "real_samples"
#: Seconds an exercise (its answer and its checks) may run; the setup gets SETUP_LIMIT.
TIME_LIMIT = 120.0
SETUP_LIMIT = 300.0


@dataclass(frozen=True)
class Row:
    """One line of the grade table: a check of an exercise, its points and what it earned.

    ``got`` is None for a check that was not run (skipped: its data is absent, or a long exercise), and
    such a row does not count in the total.
    """

    exercise: int
    what: str
    points: int
    got: int | None
    message: str


def _kill(process: subprocess.Popen) -> None:
    """Kill the worker and anything it started (it leads its own process group)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _run_worker(job: dict, time_limit: float, log) -> tuple[list[dict], str | None]:
    """Run one worker on ``job`` until it finishes, dies or overruns; return its events and, if it did not
    finish, why (one line naming the exercise it was in)."""
    with tempfile.TemporaryDirectory(prefix="h3r-grade-") as folder:
        job_path, events_path = Path(folder, "job.json"), Path(folder, "events.jsonl")
        job_path.write_text(json.dumps(job), encoding="utf-8")
        events_path.touch()
        process = subprocess.Popen(
            [sys.executable, "-m", "h3r_theory.course._child", str(job_path), str(events_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        events: list[dict] = []
        started, limit, current = time.monotonic(), SETUP_LIMIT, None
        with events_path.open(encoding="utf-8") as stream:
            while True:
                code = process.poll()
                for line in stream.readlines():
                    event = json.loads(line)
                    events.append(event)
                    if event["event"] == "start":
                        started, limit, current = time.monotonic(), time_limit, event["exercise"]
                if code is not None:
                    events += [json.loads(line) for line in stream.readlines()]
                    break
                if time.monotonic() - started > limit:
                    _kill(process)
                    where = "the answer and its checks" if current is not None else "the setup"
                    return events, f"time limit: {where} ran past {limit:g} s (an endless loop?)"
                time.sleep(0.05)
    if events and events[-1]["event"] == "done":
        return events, None
    where = "the answer or its checks" if current is not None else "the setup"
    return events, f"the process ended with exit code {code} during {where} (os._exit or a crash)"


def _answer_job(student: cells.Exercises, number: int) -> dict:
    answer = student.answers.get(number)
    if answer is None:
        return {"error": f"no '# %% [answer] exercise {number}' cell in your file"}
    try:
        compile(answer.source, f"<answer to exercise {number}>", "exec")
    except SyntaxError as error:
        return {"error": f"syntax error at line {error.lineno} of your answer: {error.msg}"}
    return {"answer": answer.source}


def grade_file(
    student_path: Path,
    solution_path: Path,
    time_limit: float = TIME_LIMIT,
    long: bool = False,
    log=subprocess.DEVNULL,
) -> list[Row]:
    """Grade ``student_path`` against ``solution_path``: one :class:`Row` per check of the solution.

    Args:
        student_path: the student's script (cells as in :mod:`h3r_theory.course.cells`); it is parsed, never
            imported here.
        solution_path: the solution script; its setup and checks are what runs.
        time_limit: seconds per exercise (answer and checks together).
        long: also grade the exercises marked ``long``.
        log: where the student's prints go (a file object, or ``subprocess.DEVNULL``).

    Raises:
        cells.CellError: a marker of the student's file does not parse.
    """
    solution = cells.parse(solution_path.read_text(encoding="utf-8"), str(solution_path))
    student = cells.parse(student_path.read_text(encoding="utf-8"), str(student_path))
    rows: dict[tuple[int, int], Row] = {}
    pending = []
    for number in solution.numbers:
        answer, checks = solution.answers.get(number), solution.checks.get(number, [])
        skip = None
        if answer is not None and answer.needs and not (REAL_SAMPLES / answer.needs).exists():
            skip = f"skipped: needs {REAL_SAMPLES / answer.needs}"
        elif answer is not None and answer.long and not long:
            skip = "skipped: a long exercise (grade with --long)"
        if skip:
            for index, check in enumerate(checks):
                rows[number, index] = Row(number, check.what, check.points, None, skip)
        elif checks:
            pending.append(
                {"number": number, "checks": [c.source for c in checks], **_answer_job(student, number)}
            )
    job = {
        "setup": solution.setup,
        "solution": str(solution_path.resolve()),
        "argv": ["--long"] if long else [],
    }
    while pending:
        events, stopped = _run_worker({**job, "exercises": pending}, time_limit, log)
        setup = next((e for e in events if e["event"] == "setup"), None)
        if setup is None or setup["error"]:
            reason = f"the solution's setup failed: {setup['error']}" if setup else f"setup: {stopped}"
            for exercise in pending:
                for index, check in enumerate(solution.checks[exercise["number"]]):
                    rows[exercise["number"], index] = Row(
                        exercise["number"], check.what, check.points, 0, reason
                    )
            break
        for event in events:
            if event["event"] == "check":
                check = solution.checks[event["exercise"]][event["index"]]
                got = check.points if event["ok"] else 0
                message = "" if event["ok"] else f"exercise {event['exercise']}: {event['message']}"
                rows[event["exercise"], event["index"]] = Row(
                    event["exercise"], check.what, check.points, got, message
                )
        started = [e["exercise"] for e in events if e["event"] == "start"]
        if stopped and started:  # the exercise in progress loses the checks it did not finish
            number = started[-1]
            for index, check in enumerate(solution.checks[number]):
                rows.setdefault(
                    (number, index), Row(number, check.what, check.points, 0, f"exercise {number}: {stopped}")
                )
        done = {number for (number, _) in rows}
        pending = [e for e in pending if e["number"] not in done]
        if stopped and not started:
            break
    return [rows[key] for key in sorted(rows)]


def format_table(title: str, rows: list[Row]) -> str:
    """The grade table of one notebook: exercise, points, got, message; and its total."""
    lines = [title, f"{'exercise':>8}  {'points':>6}  {'got':>3}  check / message"]
    for row in rows:
        got = "-" if row.got is None else str(row.got)
        lines.append(f"{row.exercise:>8}  {row.points:>6}  {got:>3}  {row.what}")
        if row.message:
            lines.append(f"{'':>25}{row.message}")
    graded = [r for r in rows if r.got is not None]
    skipped = len(rows) - len(graded)
    lines.append(
        f"{'total':>8}  {sum(r.points for r in graded):>6}  {sum(r.got for r in graded):>3}"
        + (f"  ({skipped} check{'s' if skipped != 1 else ''} skipped, not counted)" if skipped else "")
    )
    return "\n".join(lines)
