"""Sampled or expected target: how much of randomized rounding's error is the sampling noise of its target?

Randomized rounding trains on ONE random one-hot sample per keypoint and step; its mean over samples is the
bilinear distribution on the 4 cells around the keypoint (``codec.expected``). The sample's per-axis variance
is ``e (1 - e)`` cells^2, i.e. ``e (1 - e) s^2`` px^2 at stride ``s``. ``RandomizedRounding(target="expected")``
trains with that expectation instead: the same loss, the same expected gradient, no sampling noise. This
script trains both at one stride, for each number of steps given, with the sweep's data and schedule, and
prints the two errors (mean and 95 % interval over the seeds) and their ratio:

* sampled error / expected error > 1 (outside the intervals): the sampling noise costs that much at that
  budget; a ratio that falls towards 1 with more steps says the cost is one of training time;
* the expected target's own error: what the network, data and schedule resolve without that noise.

    python docs/sweep/diagnose_rr.py --stride 16 --steps 300 600 --seeds 0 1 2 --out runs/diagnose_rr16

Extra sweep overrides go after ``--``, e.g. ``-- base.data.input_size=[64,64]``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from trainers import sweep as sw

MODELS = (
    "models=[{name: rr_sample, codec: randomized_rounding}, "
    "{name: rr_expected, codec: randomized_rounding, options: {target: expected}}]"
)


def diagnose(stride: int, steps: Sequence[int], seeds: Sequence[int], out: str, extra: Sequence[str] = ()):
    """``{steps: {"sample": summary row, "expected": summary row}}`` from one sweep per number of steps."""
    results = {}
    for n in steps:
        config = sw.load_sweep(
            overrides=[
                f"strides=[{stride}]",
                f"seeds={list(seeds)}",
                "input_sizes=[]",
                MODELS,
                f"base.train.max_steps={n}",
                f"out_dir={out}/steps{n}",
                *extra,
            ]
        )
        record = sw.run_sweep(config, progress=False, log=lambda text: None, command="diagnose_rr.py")
        by_name = {r["codec"]: r for r in record["summary"]}
        results[n] = {"sample": by_name["rr_sample"], "expected": by_name["rr_expected"]}
    return results


def _interval(row: dict) -> str:
    if row["mean_error_px_low"] != row["mean_error_px_low"]:
        return f"{row['mean_error_px']:.3f} px (one seed)"
    return f"{row['mean_error_px']:.3f} px [{row['mean_error_px_low']:.3f}, {row['mean_error_px_high']:.3f}]"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stride", type=int, default=16)
    p.add_argument("--steps", type=int, nargs="+", default=[300, 600])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", default="runs/diagnose_rr")
    args = p.parse_args(argv)
    try:
        results = diagnose(args.stride, args.steps, args.seeds, args.out, extra)
    except ValueError as exc:
        print(f"diagnose_rr: error: {exc}", file=sys.stderr)
        return 2
    for n, pair in results.items():
        s, e = pair["sample"], pair["expected"]
        apart = (
            s["mean_error_px_low"] > e["mean_error_px_high"]
            or e["mean_error_px_low"] > s["mean_error_px_high"]
        )
        print(
            f"stride {args.stride}, {n} steps: sampled target {_interval(s)}, expected target {_interval(e)}, "
            f"ratio {s['mean_error_px'] / e['mean_error_px']:.3f} "
            f"({'intervals apart' if apart else 'intervals overlap: within the seed noise'})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
