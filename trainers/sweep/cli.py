"""``h3r-sweep``: the command line (and ``h3r-sweep --study NAME``: :mod:`trainers.studies`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .config import SWEEP_KEYS, load_sweep
from .run import run_sweep


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a == "--study" or a.startswith("--study=") for a in argv):  # the studies: trainers.studies
        from ..studies.runner import main as study_main

        return study_main(argv)
    p = argparse.ArgumentParser(
        prog="h3r-sweep",
        description="Train the same model at several heatmap strides and input sizes with several codecs "
        "and seeds; tables with intervals, the targets, figures.",
        epilog="overrides: any sweep key, dotted, e.g. strides=[4,16] seeds=[0] base.train.max_steps=100 "
        "base.data.name=wflw base.data.root=~/data/WFLW; valid top-level keys: " + " ".join(SWEEP_KEYS),
    )
    p.add_argument("overrides", nargs="*", help="key=value overrides of the sweep config")
    p.add_argument("--config", help="sweep YAML (default: bundled sweep.yaml; sweep_full.yaml with --full)")
    p.add_argument("--full", action="store_true", help="the full-size sweep (sweep_full.yaml, for a GPU)")
    p.add_argument("--out", help="output folder (default: the config's out_dir, runs/sweep)")
    p.add_argument("--no-progress", action="store_true", help="no progress lines or bars")
    p.add_argument("--workers", type=int, help="trainings in parallel, one torch thread each (default: one per "
                   "core; 0 = in this process, with the step bar)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="write into a folder that is not a sweep's, and train "
                   "again every finished run whose settings changed")  # fmt: skip
    p.add_argument("--study", help="run a study instead (convergence, representation): see trainers.studies")
    args = p.parse_args(argv)
    overrides = list(args.overrides) + ([f"out_dir={args.out}"] if args.out else [])
    try:
        if args.workers is not None and args.workers < 0:
            raise ValueError(f"--workers must be >= 0 (0 = in this process), got {args.workers}")
        sweep = load_sweep(args.config, overrides, full=args.full)
        command = " ".join(["h3r-sweep", *argv])
        run_sweep(sweep, progress=not args.no_progress, command=command, workers=args.workers,
                  overwrite=args.overwrite)  # fmt: skip
        if not args.no_progress:
            print("why the residual error grows with the stride: docs/studies/README.md; the studies run with "
                  "h3r-sweep --study convergence,representation (about 3.5 CPU-hours, resumable)", file=sys.stderr)  # fmt: skip
    except (ValueError, OSError) as exc:
        print(f"h3r-sweep: error: {exc}", file=sys.stderr)
        return 2
    return 0
