"""Command-line entry points ``h3r-train`` and ``h3r-eval``.

    h3r-train CONFIG [key=value ...]                  # e.g. h3r-train synthetic train.max_steps=200
    h3r-eval  CONFIG --checkpoint PATH [key=value ...]
    torchrun --nproc_per_node 4 -m trainers.cli train CONFIG [key=value ...]   # multi-GPU (DDP)

CONFIG is a YAML file or the name of a bundled config (``synthetic``, ``wflw``, ``300w``, ``cofw``, ``aflw``,
``mpii``, ``coco``); ``key=value`` overrides any setting by its dotted path (``codec.name=gaussian``).
Exit status: 0 done; 2 a user error (bad config, option or path, missing data, a checkpoint that is
missing, unreadable or of another model, an output folder in use or holding another run), printed as one
line without a traceback; 1 the disk filled up (the last checkpoint is intact); 130 Ctrl-C, after the
checkpoint of the last completed step was written (resume with ``train.resume=auto``).
``h3r-train --overwrite`` starts afresh in a folder that holds another run.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import math
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from .config import load_config, valid_keys


def _parser(prog: str, with_checkpoint: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Evaluate a checkpoint" if with_checkpoint else "Train a heatmap landmark model",
        epilog="valid keys: " + " ".join(valid_keys()),
    )
    p.add_argument("config", help="YAML config file, or a bundled config name (synthetic, wflw, 300w, ...)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. codec.name=gaussian")
    if not with_checkpoint:
        p.add_argument(
            "--overwrite",
            action="store_true",
            help="start afresh even if train.out_dir holds another run (its files are replaced)",
        )
    if with_checkpoint:
        p.add_argument("--checkpoint", required=True, help="checkpoint written by h3r-train (last.pt)")
        p.add_argument(
            "--shift",
            type=float,
            nargs=2,
            default=(0.0, 0.0),
            metavar=("DX", "DY"),
            help="translate every input image by (DX, DY) input pixels before prediction",
        )
        p.add_argument("--output", help="write the metrics as JSON to this file")
    return p


@contextlib.contextmanager
def exit_at_once_on_ctrl_c(prog: str):
    """While the block runs (the imports of torch and the engine), a Ctrl-C ends the process at once with
    one line and status 130.

    A KeyboardInterrupt raised inside torch's import leaves the module half-initialised: the next import
    fails with an unrelated error (a 40-80 line traceback) or the interpreter crashes at exit (SIGSEGV).
    Nothing has been written yet, so there is nothing to save: ``os._exit`` skips the clean-up that crashes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        os.write(2, f"{prog}: interrupted\n".encode())
        os._exit(130)

    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _leave_process_group() -> None:
    """Under torchrun, leave the process group cleanly (avoids gloo/nccl warnings at exit)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _failure(prog: str, exc: BaseException) -> int | None:
    """One line on stderr and the exit status for an error a user can act on; None for a bug (re-raise)."""
    from .guards import TrainingInterrupted

    if isinstance(exc, TrainingInterrupted):
        saved = (
            f"checkpoint of step {exc.step} saved to {exc.checkpoint}" if exc.checkpoint else "no checkpoint"
        )
        print(
            f"{prog}: interrupted at step {exc.step}; {saved} (resume with train.resume=auto)",
            file=sys.stderr,
        )
        return 130
    if isinstance(exc, KeyboardInterrupt):
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        where = f" writing {exc.filename}" if exc.filename else ""
        print(
            f"{prog}: error: disk full{where}; free space, then resume (the last checkpoint is intact)",
            file=sys.stderr,
        )
        return 1
    if isinstance(exc, OSError):  # a path that cannot be read or written: the user's to fix
        where = f": {exc.filename}" if exc.filename else ""
        print(f"{prog}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    if isinstance(exc, ValueError):
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    return None


def train_main(argv: Sequence[str] | None = None) -> int:
    """``h3r-train CONFIG [key=value ...] [--overwrite]``: train, then print the final metrics as JSON."""
    args = _parser("h3r-train", with_checkpoint=False).parse_intermixed_args(argv)
    try:
        with exit_at_once_on_ctrl_c("h3r-train"):
            from .engine import train
        config = load_config(args.config, args.overrides)

        result = train(config, overwrite=args.overwrite)
    except (ValueError, OSError, KeyboardInterrupt) as exc:
        status = _failure("h3r-train", exc)
        if status is None:
            raise
        return status
    finally:
        _leave_process_group()
    final = {k: v for k, v in result.final.items() if k != "predictions"}
    print(
        json.dumps(
            {
                "out_dir": str(result.out_dir),
                "steps": result.steps,
                "seconds": round(result.seconds, 2),
                **final,
            },
            indent=2,
        )
    )
    return 0


def eval_main(argv: Sequence[str] | None = None) -> int:
    """``h3r-eval CONFIG --checkpoint PATH [key=value ...]``: print (and optionally save) the metrics."""
    args = _parser("h3r-eval", with_checkpoint=True).parse_intermixed_args(argv)
    try:
        if not all(math.isfinite(v) for v in args.shift):  # argparse's float() reads "nan" and "inf"
            raise ValueError(
                "--shift DX DY must be finite numbers of input pixels, got "
                + " ".join(f"{v:g}" for v in args.shift)
            )
        with exit_at_once_on_ctrl_c("h3r-eval"):
            from .evaluate import evaluate_checkpoint
        config = load_config(args.config, args.overrides)

        result = evaluate_checkpoint(config, Path(args.checkpoint), shift=tuple(args.shift))
    except (ValueError, OSError, KeyboardInterrupt) as exc:
        status = _failure("h3r-eval", exc)
        if status is None:
            raise
        return status
    finally:
        _leave_process_group()
    text = json.dumps(result, indent=2)
    print(text, flush=True)  # printed first: an unwritable --output must not lose the metrics
    if args.output:
        try:
            Path(args.output).write_text(text + "\n")
        except OSError as exc:
            print(
                f"h3r-eval: error: cannot write --output {args.output}: {exc.strerror or exc}",
                file=sys.stderr,
            )
            return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m trainers.cli {train,eval} ...`` (the form torchrun launches)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("train", "eval"):
        print("usage: python -m trainers.cli {train,eval} CONFIG [...]", file=sys.stderr)
        return 2
    return (train_main if argv[0] == "train" else eval_main)(argv[1:])


if __name__ == "__main__":
    sys.exit(main())


def predict_main(argv: Sequence[str] | None = None) -> int:
    """``h3r-predict``: :func:`trainers.predict.main`, imported under :func:`exit_at_once_on_ctrl_c` (the
    module imports torch, and a Ctrl-C during that import would leave a traceback or a crash at exit)."""
    with exit_at_once_on_ctrl_c("h3r-predict"):
        from .predict import main as predict

    return predict(argv)
