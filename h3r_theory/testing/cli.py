"""``h3r-check-codec module:factory``: run the invariant suite on a codec and print its report card.

Exit status: 0 when every invariant holds, 1 when one fails, 2 (with one line on stderr) when the
arguments are wrong, e.g. a module that does not import or a factory that is not callable.

The module is imported with the current directory on ``sys.path`` (as ``python -m`` does), so a codec in
``./my_codec.py`` is ``my_codec:MyCodec``. The factory is called as ``factory(input_size, heatmap_size)``
(plus ``convention=`` when it accepts one and ``--convention`` is given).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time

from . import frames
from .claims import Claims
from .result import FAILS, Counterexample, InvariantResult, Report
from .strategies import SearchSpace, probe_geometry
from .subject import NotAHeatmapCodec, as_factory
from .suite import INVARIANTS, PROFILES, check_codec

PROG = "h3r-check-codec"


class BadArguments(Exception):
    """An argument the suite cannot run with; reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + message
        raise BadArguments(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Property-test a heatmap codec: one report-card line per invariant.")
    p.add_argument(
        "target", help="module:factory, a codec class or a function (input_size, heatmap_size) -> codec"
    )
    p.add_argument(
        "--convention",
        choices=frames.CONVENTIONS,
        help="the pixel convention the codec claims (default: the codec's convention attribute, else the "
        "convention its encode and decode agree under, and the report says so)",
    )
    p.add_argument(
        "--profile",
        choices=tuple(PROFILES),
        default=None,
        help="math: the mathematical invariants; protocol: this package's protocol; all (default: all for "
        "this package's codecs, math for others)",
    )
    p.add_argument("--input-size", type=int, nargs=2, metavar=("W", "H"), help="fix the input size, pixels")
    p.add_argument(
        "--heatmap-size", type=int, nargs=2, metavar=("w", "h"), help="fix the heatmap size, cells"
    )
    p.add_argument("--protocol", choices=("auto", "torch", "numpy"), default="auto", help="codec protocol")
    p.add_argument(
        "--round-trip-cells",
        type=float,
        default=None,
        help="claimed round-trip error per axis (default: 0 for this package's codecs, 0.001 for others)",
    )
    p.add_argument("--margin-cells", type=float, default=0.0, help="claims hold this far inside the border")
    p.add_argument(
        "--equivariance-cells",
        type=float,
        default=None,
        help="claimed shift/flip error (default: 1e-6 for this package's codecs, 0.001 for others)",
    )
    p.add_argument("--border-band-cells", default="0", help="claimed band error from the clamp, or 'none'")
    p.add_argument("--logits", action="store_true", help="also claim the round trip of log(target) as logits")
    p.add_argument("--examples", type=int, default=None, help="hypothesis examples per invariant")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", default=None, help=f"comma-separated invariants out of {','.join(INVARIANTS)}")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--deadline",
        type=float,
        default=120.0,
        help="seconds each invariant may take before it is reported as hanging (default 120)",
    )
    p.add_argument(
        "--in-process",
        action="store_true",
        help="run the codec in this process (faster; an exit or a hang of the codec then ends the run)",
    )
    return p


def load_target(target: str):
    """``"pkg.module:attr.path"`` -> the object; raises :class:`BadArguments` with the reason."""
    module_name, sep, attr_path = target.partition(":")
    if not sep or not module_name or not attr_path:
        raise BadArguments(f"target must be module:factory, got {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure is the user's module, reported in one line
        message = str(exc).splitlines()[0] if str(exc) else ""
        raise BadArguments(f"cannot import module {module_name!r}: {type(exc).__name__}: {message}") from None
    except SystemExit as exc:  # a module that calls sys.exit() at import is not a codec module
        raise BadArguments(
            f"cannot import module {module_name!r}: it called sys.exit({exc.code!r})"
        ) from None
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            raise BadArguments(f"{module_name!r} has no attribute {attr_path!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise BadArguments(
            f"{target} is not callable (it is a {type(obj).__name__}); pass a codec class or factory"
        )
    return obj


def _claims(args) -> Claims:
    band = (
        None
        if args.border_band_cells.lower() == "none"
        else _float(args.border_band_cells, "--border-band-cells")
    )
    try:
        return Claims(
            convention=args.convention,
            round_trip_cells=args.round_trip_cells,
            margin_cells=args.margin_cells,
            equivariance_cells=args.equivariance_cells,
            border_band_cells=band,
            logits_round_trip=args.logits,
        )
    except ValueError as exc:
        raise BadArguments(str(exc)) from None


def _float(text: str, flag: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise BadArguments(f"{flag} must be a number of cells or 'none', got {text!r}") from None


#: Largest map side the CLI accepts: the statistical checks hold ``samples`` maps of it in memory.
MAX_CELLS = 256
#: Largest input side, pixels.
MAX_PIXELS = 8192


def _parse(argv):
    """The arguments, checked without importing the user's module: everything that can be refused early."""
    args = _parser().parse_args(argv)
    module_name, sep, attr_path = args.target.partition(":")
    if not sep or not module_name or not attr_path:
        raise BadArguments(f"target must be module:factory, got {args.target!r}")
    claims = _claims(args)
    only = None
    if args.only is not None:
        only = [name.strip() for name in args.only.split(",") if name.strip()]
        if not only:
            raise BadArguments(f"--only names no invariant; choose from {list(INVARIANTS)}")
        unknown = [name for name in only if name not in INVARIANTS]
        if unknown:
            raise BadArguments(f"--only: unknown invariant(s) {unknown}; choose from {list(INVARIANTS)}")
        if args.profile is not None:
            raise BadArguments("--only and --profile exclude each other")
    if args.examples is not None and args.examples < 1:
        raise BadArguments(f"--examples must be >= 1, got {args.examples}")
    if not 0 <= args.seed < 2**63:
        raise BadArguments(f"--seed must be in [0, 2**63), got {args.seed}")
    if not 0 < args.deadline < float("inf"):
        raise BadArguments(f"--deadline must be a finite number > 0 of seconds, got {args.deadline}")
    for flag, size, limit, unit in (
        ("--input-size", args.input_size, MAX_PIXELS, "pixels"),
        ("--heatmap-size", args.heatmap_size, MAX_CELLS, "cells"),
    ):
        if size and max(size) > limit:
            raise BadArguments(f"{flag} {size[0]} {size[1]}: at most {limit} {unit} per side")
    try:
        space = SearchSpace(
            input_size=tuple(args.input_size) if args.input_size else None,
            heatmap_size=tuple(args.heatmap_size) if args.heatmap_size else None,
        )
    except ValueError as exc:
        raise BadArguments(str(exc)) from None
    return args, claims, space, only


def _setup(argv):
    args, claims, space, only = _parse(argv)
    codec = load_target(args.target)
    probe = probe_geometry(space)
    try:
        factory = as_factory(codec, claims.convention, args.protocol, probe=probe)
    except NotAHeatmapCodec as exc:
        raise BadArguments(str(exc)) from None
    except (Exception, SystemExit) as exc:  # the factory could not build a codec: nothing can be checked
        message = str(exc).splitlines()[0] if str(exc) else ""
        raise BadArguments(
            f"{args.target} could not build a codec: {type(exc).__name__}: {message}"
        ) from None
    return args, factory, claims, space, only


def _names(args, factory, only) -> tuple[list[str], str]:
    from .suite import _names as names_of

    return names_of(factory, only, args.profile)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns (and, as a console script, exits with) 0, 1 or 2 (130 when interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args, *_ = _parse(argv)
        isolate = not args.in_process and hasattr(os, "fork")  # pass_fds and select on pipes need POSIX
        report = _run_isolated(argv, args.deadline, args.target) if isolate else _run_in_process(argv)
    except BadArguments as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    print(report.to_json() if args.json else report.card())
    return 0 if report.holds else 1


@contextlib.contextmanager
def _hypothesis_home():
    """Hypothesis keeps caches under ``./.hypothesis``; the CLI writes nothing into the user's folder."""
    from hypothesis.configuration import set_hypothesis_home_dir

    with tempfile.TemporaryDirectory(prefix="h3r-check-codec-") as home:
        set_hypothesis_home_dir(home)
        try:
            yield
        finally:
            set_hypothesis_home_dir(None)


def _run_in_process(argv) -> Report:
    with _hypothesis_home():
        return _check_in_process(argv)


def _check_in_process(argv) -> Report:
    args, factory, claims, space, only = _setup(argv)
    return check_codec(
        factory,
        claims,
        space=space,
        max_examples=args.examples,
        seed=args.seed,
        only=only,
        profile=args.profile,
    )


# -- the isolated run: the codec runs in a worker process ----------------------------------------------


def _run_isolated(argv, deadline: float, target: str) -> Report:
    """Run the checks in a worker process, so that a codec that exits, hangs or crashes the interpreter
    costs the invariant it happened in (reported as that invariant's failure), not the whole run."""
    done: dict[str, InvariantResult] = {}
    header: dict | None = None
    diagnosis: dict | None = None
    names: list[str] | None = None
    for _ in range(len(INVARIANTS) + 2):  # at most one restart per invariant, plus the diagnosis
        if names is not None and diagnosis is not None and all(n in done for n in names):
            break
        outcome = _worker_run(argv, sorted(done), deadline, skip_diagnosis=diagnosis is not None)
        for event in outcome["events"]:
            kind = event["event"]
            if kind == "bad_arguments":
                raise BadArguments(event["message"])
            if kind == "header":
                header, names = event, event["names"]
            elif kind == "result":
                done[event["result"]["name"]] = _result_from(event["result"])
            elif kind == "diagnosis":
                diagnosis = event
        if outcome["complete"]:
            break
        if header is None:  # it ended before the codec was even built
            raise BadArguments(
                f"{argv[0]}: {outcome['why']} while importing the module or building the codec"
            )
        step = outcome["step"]
        if step == "diagnosis":
            diagnosis = {"lines": [f"not finished: {outcome['why']}"], "data": {}}
        elif step is not None:
            where = f"; the example running: {outcome['example']}" if outcome["example"] else ""
            done[step] = InvariantResult(
                name=step,
                status=FAILS,
                counterexample=Counterexample(
                    outcome["example"] or "(before the first example)", outcome["why"]
                ),
                note=f"{outcome['why']}{where}",
            )
    assert header is not None and names is not None
    diagnosis = diagnosis or {"lines": [], "data": {}}
    results = [done[n] for n in names if n in done]
    return Report(
        header["codec"],
        header["convention"],
        results,
        header["profile"],
        header["convention_note"],
        diagnosis["lines"],
        diagnosis["data"],
        header.get("claims_note", ""),
    )


def _result_from(data: dict) -> InvariantResult:
    data = dict(data)
    if data.get("counterexample") is not None:
        data["counterexample"] = Counterexample(**data["counterexample"])
    return InvariantResult(**data)


def _worker_run(argv, done: list[str], deadline: float, skip_diagnosis: bool) -> dict:
    """One worker process: its events, whether it finished, and if not, in which step and why."""
    read_fd, write_fd = os.pipe()
    job = json.dumps(
        {
            "argv": argv,
            "done": done,
            "fd": write_fd,
            "skip_diagnosis": skip_diagnosis,
            "path": [p for p in sys.path if isinstance(p, str)],  # the worker imports what this process can
        }
    )
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from h3r_theory.testing.cli import worker_main; worker_main()"],
        stdin=subprocess.PIPE,
        stdout=log,
        stderr=log,
        pass_fds=(write_fd,),
        cwd=os.getcwd(),
    )
    os.close(write_fd)
    proc.stdin.write(job.encode())
    proc.stdin.close()
    events, buffer, step, example = [], b"", "setup", ""
    started = time.monotonic()
    why = ""
    complete = False
    try:
        while True:
            limit = deadline if step != "setup" else max(deadline, 60.0)
            left = started + limit - time.monotonic()
            if left <= 0:
                why = f"no result within the deadline of {limit:g} s (the codec hangs, or is slower than --deadline)"
                proc.kill()
                break
            ready, _, _ = select.select([read_fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(read_fd, 1 << 16)
            if not chunk:  # the worker closed the pipe: it ended
                code = proc.wait()
                if not complete:
                    why = _ended(code, log)
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                event = json.loads(line)
                kind = event["event"]
                if kind == "start":
                    step, example, started = event["step"], "", time.monotonic()
                elif kind == "example":
                    example = event["inputs"]
                elif kind == "end":
                    complete = True
                else:
                    events.append(event)
                    if kind == "bad_arguments":
                        complete = True
    finally:
        os.close(read_fd)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        log.close()
    return {"events": events, "complete": complete, "step": step, "example": example, "why": why}


def _ended(code: int, log) -> str:
    log.seek(0)
    tail = [line for line in log.read().decode(errors="replace").splitlines() if line.strip()]
    last = f" ({tail[-1].strip()[:160]})" if tail else ""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the codec crashed the process ({name}){last}"
    return f"the codec ended the process (exit status {code}){last}"


def worker_main() -> None:
    """The worker: reads its job on stdin, runs each step and writes one JSON event per line to its pipe."""
    job = json.loads(sys.stdin.read())
    sys.path[:] = job["path"] + [p for p in sys.path if p not in job["path"]]
    out = os.fdopen(job["fd"], "w", buffering=1)
    with _hypothesis_home():
        _work(job, out)
    out.close()
    os._exit(0)  # nothing the codec registered (atexit, threads) runs after the report is sent


def _work(job: dict, out) -> None:

    def send(**event) -> None:
        out.write(json.dumps(event, default=str) + "\n")
        out.flush()

    def progress(name: str, inputs: str) -> None:
        send(event="example", inputs=inputs)

    try:
        args, factory, claims, space, only = _setup(job["argv"])
        names, profile = _names(args, factory, only)
    except BadArguments as exc:
        send(event="bad_arguments", message=str(exc))
        return
    except ValueError as exc:
        send(event="bad_arguments", message=str(exc))
        return
    send(
        event="header",
        codec=factory.label,
        convention=factory.convention,
        convention_note=factory.convention_note(),
        claims_note=claims.describe(factory.native),
        profile=profile,
        names=names,
    )
    from . import search
    from .suite import check_invariant, run_diagnosis

    search.PROGRESS = progress
    for name in names:
        if name in job["done"]:
            continue
        send(event="start", step=name)
        result = check_invariant(
            name, factory, claims, space=space, max_examples=args.examples, seed=args.seed
        )
        send(event="result", result=result.to_dict())
    search.PROGRESS = None
    if not job["skip_diagnosis"]:
        send(event="start", step="diagnosis")
        lines, data = run_diagnosis(factory, claims, space, args.seed)
        send(event="diagnosis", lines=lines, data=data)
    send(event="end")


def console_main() -> None:
    sys.exit(main())


if __name__ == "__main__":
    console_main()
