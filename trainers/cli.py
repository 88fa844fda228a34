"""Command-line entry points ``h3r-train`` and ``h3r-eval``.

    h3r-train CONFIG [key=value ...]                  # e.g. h3r-train synthetic train.max_steps=200
    h3r-eval  CONFIG --checkpoint PATH [key=value ...]
    torchrun --nproc_per_node 4 -m trainers.cli train CONFIG [key=value ...]   # multi-GPU (DDP)

CONFIG is a YAML file or the name of a bundled config (``synthetic``, ``wflw``, ``300w``, ``cofw``, ``aflw``,
``mpii``, ``coco``); ``key=value`` overrides any setting by its dotted path (``codec.name=gaussian``).
A bad config or missing data ends with the error message and exit status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
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


def _leave_process_group() -> None:
    """Under torchrun, leave the process group cleanly (avoids gloo/nccl warnings at exit)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def train_main(argv: Sequence[str] | None = None) -> int:
    """``h3r-train CONFIG [key=value ...]``: train, then print the final metrics as JSON."""
    args = _parser("h3r-train", with_checkpoint=False).parse_args(argv)
    try:
        config = load_config(args.config, args.overrides)
        from .engine import train

        result = train(config)
    except ValueError as exc:
        print(f"h3r-train: error: {exc}", file=sys.stderr)
        return 2
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
    args = _parser("h3r-eval", with_checkpoint=True).parse_args(argv)
    try:
        config = load_config(args.config, args.overrides)
        from .evaluate import evaluate_checkpoint

        result = evaluate_checkpoint(config, Path(args.checkpoint), shift=tuple(args.shift))
    except ValueError as exc:
        print(f"h3r-eval: error: {exc}", file=sys.stderr)
        return 2
    finally:
        _leave_process_group()
    text = json.dumps(result, indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n")
    print(text)
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
