"""Why does randomized rounding's error still grow with the stride in the CPU sweep? A diagnostic.

Randomized rounding trains on ONE random one-hot sample per keypoint and step; its mean over samples is the
bilinear distribution on the 4 cells around the keypoint (``codec.expected``). The sample's per-axis variance
is ``e (1 - e)`` cells^2, i.e. ``e (1 - e) s^2`` px^2 at stride ``s``: at a fixed training budget the label
noise the network must average out grows with the stride. This script trains the sweep's model at one stride
with the *expected* target (the same loss, the same data and schedule, zero sampling noise) so that the
two sources of error can be told apart:

* sampled target error - expected target error  = the cost of the sampling noise at this budget;
* expected target error                          = what the network / schedule can resolve at all.

    python docs/sweep/diagnose_rr.py --stride 16 --steps 600 --out runs/diagnose_rr16

(Uses the bundled ``sweep.yaml``; the engine builds codecs by name, so the expected-target codec is
swapped in here for this diagnostic only.)
"""

from __future__ import annotations

import argparse

from h3r_theory import codecs
from trainers import engine
from trainers import sweep as sw


class ExpectedTarget(codecs.RandomizedRounding):
    """Randomized rounding whose training target is its expectation (the bilinear 4-cell distribution)."""

    def encode(self, keypoints, visible=None, generator=None):
        return self.expected(keypoints, visible)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stride", type=int, default=16)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--out", default="runs/diagnose_rr")
    args = p.parse_args()
    build = engine.build_codec

    def build_expected(config, input_size):
        codec = build(config, input_size)
        if codec.name != "randomized_rounding":
            return codec
        return ExpectedTarget(
            codec.input_size,
            codec.heatmap_size,
            codec.convention,
            method=codec.method,
            k=codec.k,
            radius=codec.radius,
        )

    engine.build_codec = build_expected
    config = sw.load_sweep(
        overrides=[
            f"strides=[{args.stride}]",
            "models=[{name: rr_expected_target, codec: randomized_rounding}]",
            f"base.train.max_steps={args.steps}",
            f"out_dir={args.out}",
        ]
    )
    sw.run_sweep(config, progress=True, command="python docs/sweep/diagnose_rr.py")


if __name__ == "__main__":
    main()
