"""The grader's worker process: runs a solution's setup, then each exercise's answer and checks.

Started by :func:`h3r_theory.course.grading.grade_file` as ``python -m h3r_theory.course._child JOB
EVENTS``: ``JOB`` is a JSON file (the setup, the solution's path, the exercises to run), ``EVENTS`` a file
to which one JSON line per event is appended and flushed (``setup``, ``start``, ``check``), so that the
parent knows how far it got if a student's code ends or hangs the process. The student's prints go to
this process's stdout, which the parent keeps apart from the events.
"""

from __future__ import annotations

import json
import sys
import traceback


def _where(error: BaseException, filename: str, source: str) -> str:
    """`` (line N: code)`` for the deepest frame of ``error`` in the cell compiled as ``filename``."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == filename]
    if not frames:
        return ""
    line = frames[-1].lineno
    lines = source.splitlines()
    code = lines[line - 1].strip() if 0 < line <= len(lines) else ""
    return f" (line {line}: {code})" if code else f" (line {line})"


def describe(error: BaseException, filename: str, source: str) -> str:
    """One line a student can act on: the exception, its message, and the cell line that raised it."""
    if isinstance(error, SystemExit):
        return f"the code called sys.exit({error.code!r}), which ends the program: remove it"
    if isinstance(error, SyntaxError) and error.filename == filename:
        return f"syntax error at line {error.lineno}: {error.msg}"
    message = str(error).strip()
    text = type(error).__name__ + (f": {message}" if message else "")
    if isinstance(error, NameError):
        text += " (define it in your answer cell)"
    if isinstance(error, AssertionError) and message:
        return text  # the check's own message says what is wrong; the line would repeat it
    return text + _where(error, filename, source)


def _run(source: str, filename: str, namespace: dict) -> str | None:
    """Execute ``source`` in ``namespace``; None when it ran, else the one-line description of the failure."""
    try:
        exec(compile(source, filename, "exec"), namespace)
    except BaseException as error:  # noqa: BLE001 - student code may raise anything, SystemExit included
        if isinstance(error, KeyboardInterrupt):
            raise
        return describe(error, filename, source)
    return None


def main(job_path: str, events_path: str) -> None:
    job = json.loads(open(job_path, encoding="utf-8").read())
    events = open(events_path, "a", encoding="utf-8")

    def emit(**event) -> None:
        events.write(json.dumps(event) + "\n")
        events.flush()

    sys.argv = [job["solution"], *job.get("argv", [])]
    namespace = {"__name__": "__main__", "__file__": job["solution"]}
    failure = _run(job["setup"], "<setup>", namespace)
    emit(event="setup", error=failure)
    if failure:
        return
    for exercise in job["exercises"]:
        number = exercise["number"]
        emit(event="start", exercise=number)
        local = dict(namespace)  # one exercise's names do not leak into the next
        filename = f"<answer to exercise {number}>"
        failure = exercise.get("error") or _run(exercise["answer"], filename, local)
        if failure and "NotImplementedError" in failure and "write your answer here" in failure:
            failure = "not answered (the handout's stub still raises NotImplementedError)"
        for index, check in enumerate(exercise["checks"]):
            if failure:
                emit(event="check", exercise=number, index=index, ok=False, message=f"answer: {failure}")
                continue
            message = _run(check, f"<check {index + 1} of exercise {number}>", dict(local))
            emit(event="check", exercise=number, index=index, ok=message is None, message=message or "")
    emit(event="done")


if __name__ == "__main__":
    main(*sys.argv[1:3])
