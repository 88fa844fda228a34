"""Solutions to the exercises of notebook 08 (the resolution sweep).

Run from the repository root:  python notebooks/solutions/08_resolution_sweep.py [--long] [--full]
The default answers exercises 3-5 (it reuses the notebook's tiny sweep from runs/notebook_08 when present,
else runs it: about a minute on a 2-core CPU). ``--long`` adds exercise 1 (the tiny sweep at 150 and 600
steps, about 5 minutes); ``--full`` adds exercise 2 (the default sweep, 10+ minutes on a CPU).
Each solution asserts its answer.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

from h3r_theory.theory.quantization import mean_quantization_error
from trainers import sweep as sweep_module

FLOOR_CELLS = float(mean_quantization_error("round", 2))
NOTEBOOK_SWEEP = (
    Path(__file__).resolve().parents[2] / "runs" / "notebook_08" / "tiny_sweep" / "results" / "sweep.json"
)


def tiny_sweep(steps: int) -> dict:
    """The notebook's tiny sweep (argmax and randomized rounding, strides 4/8/16, 64 x 64 input)."""
    overrides = [
        "strides=[4, 8, 16]",
        "jitter_shifts=[0.0, 0.5]",
        "base.data.input_size=[64, 64]",
        "base.train.batch_size=16",
        "base.data.options={num_train: 2048, num_eval: 128, num_keypoints: 12}",
        f"base.train.max_steps={steps}",
        "base.train.log_every=10",
        "base.optim.warmup_steps=10",
        f"out_dir={tempfile.mkdtemp()}",
        "models=[{name: argmax, codec: argmax}, {name: randomized_rounding, codec: randomized_rounding}]",
    ]
    return sweep_module.run_sweep(
        sweep_module.load_sweep(None, overrides), progress=False, log=lambda t: None
    )


def exercise_1() -> None:
    """Longer training. With more steps the randomized-rounding errors drop at every stride, most at the
    coarse strides, where learning a sub-cell distribution from random one-hot samples needs the most steps;
    argmax stays pinned near its floor. Failed 'flatness' checks of a short run are an under-training effect
    when they turn into passes (or shrink) with more steps, which is what this prints."""
    coarse = {}
    for steps in (150, 600):
        record = tiny_sweep(steps)
        t = record["targets"]
        coarse[steps] = next(
            r["mean_error_px"]
            for r in record["rows"]
            if r["codec"] == "randomized_rounding" and r["stride"] == 16
        )
        print(
            f"[1] {steps} steps: RR coarse/fine {t.get('rr_ratio_coarse_to_fine', float('nan')):.2f} "
            f"(flat: {t.get('rr_flat')}), RR/argmax at the coarsest "
            f"{t.get('rr_over_argmax_coarse', float('nan')):.2f} "
            f"(<= 0.5: {t.get('rr_vs_argmax')})"
        )
        for r in record["rows"]:
            print(
                f"      {r['codec']:>20s} stride {r['stride']:2d}: {r['mean_error_px']:.3f} px "
                f"(floor {FLOOR_CELLS * r['stride']:.3f}), jitter {r['jitter_sd_px']:.3f} px"
            )
    assert coarse[600] < coarse[150], "longer training must lower randomized rounding's coarse-stride error"


def exercise_2() -> None:
    """The full default sweep. The Gaussian target of the 'gaussian' model is centred at the UNQUANTIZED
    position (DARK's target), so the map itself holds the sub-cell position: decoded by DARK's Taylor step it
    behaves like randomized rounding (flat), decoded by plain argmax it behaves like vanilla (the floor)."""
    record = sweep_module.run_sweep(
        sweep_module.load_sweep(None, [f"out_dir={tempfile.mkdtemp()}"]), progress=True
    )
    print(json.dumps(record["targets"], indent=2))


def exercise_3() -> None:
    """Jitter of a predictor snapped to a cell: its error vector is (p - x - dx, p - y - dy), so over the
    shift grid each axis varies like -dx. The population sd of {0, 0.5} is 0.25 px per axis, of
    {0, 0.25, 0.5, 0.75} it is sqrt(5/64) = 0.2795 px; in 2-D, sqrt(var_x + var_y) = sd * sqrt(2):
    0.354 px and 0.395 px. An equivariant predictor moves with the label: its error vector is constant,
    sd 0. The measured argmax jitter is larger than this bound: whenever a shift moves a keypoint across a
    cell border (or tips the network's choice between two cells) its prediction jumps a whole cell, s px,
    which adds far more variance than the smooth -dx drift."""
    for shifts in ([0.0, 0.5], [0.0, 0.25, 0.5, 0.75]):
        grid = np.array(sweep_module.shift_grid(shifts))  # (S, 2) = (dx, dy)
        sd = math.sqrt(grid.var(axis=0).sum())
        print(f"[3] shifts {shifts}: jitter sd of a cell-snapped predictor = {sd:.4f} px (2-D)")
        per_axis = {2: 0.25, 4: math.sqrt(5 / 64)}[len(shifts)]
        assert abs(sd - per_axis * math.sqrt(2)) < 1e-12


def exercise_4() -> None:
    """Where would the trends cross the floor? Fit error (cells) = a / stride + b per codec (a lossless
    code has a pixel error independent of the stride, i.e. b ~ 0) and solve a / s + b = 0.3826: argmax sits
    on the floor at every stride (b ~ 0.38); randomized rounding is below it beyond a small stride, and
    the further below the coarser the grid."""
    record = json.loads(NOTEBOOK_SWEEP.read_text()) if NOTEBOOK_SWEEP.is_file() else tiny_sweep(150)
    for name in dict.fromkeys(r["codec"] for r in record["rows"]):
        pts = sorted(
            (r["stride"], r["mean_error_px"] / r["stride"]) for r in record["rows"] if r["codec"] == name
        )
        s = np.array([p[0] for p in pts], float)
        e = np.array([p[1] for p in pts])
        a, b = np.linalg.lstsq(np.stack([1 / s, np.ones_like(s)], 1), e, rcond=None)[0]
        if b >= FLOOR_CELLS:
            reading = f"never below the floor: its error in cells tends to b = {b:.3f} >= {FLOOR_CELLS:.4f}"
        else:  # a / s + b < floor  <=>  s > a / (floor - b)
            reading = f"below the floor for every stride above {max(a, 0.0) / (FLOOR_CELLS - b):.2f}"
        print(f"[4] {name:>20s}: error ~ {a:.3f} / s + {b:.3f} cells; {reading}")
        if name == "argmax":  # vanilla stays pinned near the floor in cells, whatever the stride
            assert b > 0.8 * FLOOR_CELLS


def exercise_5() -> None:
    """Real data: report NME (the dataset's normalised metric, comparable across papers and resolutions);
    the pixel error depends on the crop size and is useful only for the floor comparison."""
    print(
        "[5] run: h3r-sweep --full base.data.name=wflw base.data.root=~/data/WFLW base.model.name=hrnet_w18"
    )


if __name__ == "__main__":
    if "--long" in sys.argv:
        exercise_1()
    if "--full" in sys.argv:
        exercise_2()
    exercise_3()
    exercise_4()
    exercise_5()
