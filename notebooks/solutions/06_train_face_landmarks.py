"""Solutions to the exercises of notebook 06 (training a facial-landmark model with randomized rounding).

Run from the repository root:  python notebooks/solutions/06_train_face_landmarks.py [--long]
(about a minute on a 2-core CPU; ``--long`` adds exercise 3, two more trainings). Every number printed is
measured by this script, and each solution asserts its answer, so the solutions cannot silently go wrong.
The ``# %% [answer]`` and ``# %% [check]`` lines split it into the cells that ``h3r-grade`` grades.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from h3r_theory import codecs, metrics
from h3r_theory.theory.quantization import mean_quantization_error
from trainers import engine
from trainers.build import build_datasets
from trainers.config import load_config
from trainers.data.transforms import invert, transform_points
from trainers.runtime import amp_dtype, get_batch

STEPS = int(os.environ.get("H3R_SOLUTION_STEPS", "150"))
FLOOR_CELLS = float(mean_quantization_error("round", 2))  # (sqrt(2) + asinh(1)) / 6
REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real_samples"
LONG = "--long" in sys.argv  # exercise 3 trains twice more


def train(*overrides: str):
    """The notebook's synthetic configuration plus ``overrides``; returns (RunResult, eval set, codec)."""
    config = load_config(
        "synthetic",
        [
            f"train.max_steps={STEPS}",
            "train.progress=false",
            "train.eval_every=0",
            "train.checkpoint_every=0",
            "data.options.num_train=2048",
            "data.options.num_eval=128",
            f"train.out_dir={tempfile.mkdtemp()}",
            *overrides,
        ],
    )
    train_set, eval_set = build_datasets(config)
    result = engine.train(config, train_set=train_set, eval_set=eval_set)
    return result, eval_set, result.codec


np.set_printoptions(precision=4)
trained = train()  # one randomized-rounding run, shared by exercises 1 and 2: (RunResult, eval set, codec)

# %% [answer] exercise 1
# Vanilla baseline: the argmax codec's error cannot go below ~0.3826 x stride on average. Its decoder returns
# a cell centre, so for keypoints spread uniformly within cells the mean error of even a perfect network is
# the rounding error; more training only makes the right cell win more often.
errors = {}  # codec name -> mean error (px) of its trained model
for name, result in (("argmax", train("codec.name=argmax")[0]), ("randomized_rounding", trained[0])):
    s = result.codec.stride[0]
    errors[name] = result.final["mean_error_px"]
    print(
        f"[1] {name:>20s}: mean error {errors[name]:.3f} px, floor {FLOOR_CELLS * s:.3f} px "
        f"(ratio {errors[name] / (FLOOR_CELLS * s):.2f})"
    )

# %% [check] exercise 1, 2 points: the argmax model stays above 0.8 x the rounding floor (errors, px)
assert errors["argmax"] > 0.8 * FLOOR_CELLS * 4, "argmax should not beat the rounding floor by much"

# %% [check] exercise 1, 2 points: the randomized-rounding model errs less than the argmax one
assert errors["randomized_rounding"] < errors["argmax"], f"errors = {errors}"


# %% [answer] exercise 2
def decoder_errors(trained) -> dict:
    """Decoders. Unbiased when the activation points contain the 2 x 2 bilinear support: top-k with k >= 4
    (once the 4 support cells are the 4 largest) or a window of radius >= 1. k = 1 is the peak cell = argmax.
    Larger k / radius add cells with small softmax mass that pull the mean toward the window centre a
    little on a trained (not ideal) map. Returns {(method, k or radius): mean error in px}."""
    result, eval_set, codec = trained
    batch = get_batch(eval_set, range(len(eval_set)))
    with torch.no_grad():
        logits = result.model.eval()(batch["image"]).float()
    labelled = batch["visible"] > 0
    errors = {}
    for options in (
        {"method": "topk", "k": 1},
        {"method": "topk", "k": 4},
        {"method": "topk", "k": 9},
        {"method": "topk", "k": 25},
        {"method": "window", "radius": 1},
        {"method": "window", "radius": 2},
    ):
        xy, _ = codec.decode(logits, activation="logits", **options)
        err = torch.linalg.vector_norm(xy.double() - batch["keypoints"].double(), dim=-1)[labelled]
        errors[tuple(options.values())] = float(err.mean())
        print(f"[2] {options}: mean error {float(err.mean()):.3f} px")
    return errors


by_decoder = decoder_errors(trained)

# %% [check] exercise 2, 2 points: the peak cell alone (top-1) errs more than the 3 x 3 window (by_decoder)
assert by_decoder[("topk", 1)] > by_decoder[("window", 1)], (
    f"the peak cell alone must lose the sub-cell information: {by_decoder}"
)


# %% [answer] exercise 3, long
def exercise_3() -> dict:
    """Stride 8 (8 x 8 heatmaps for 64 x 64 inputs): the floor doubles, randomized rounding need not."""
    errors = {}
    for name in ("argmax", "randomized_rounding"):
        result = train(f"codec.name={name}", "model.output_stride=8")[0]
        errors[name] = result.final["mean_error_px"]
        print(f"[3] stride 8, {name:>20s}: mean error {errors[name]:.3f} px, floor {FLOOR_CELLS * 8:.3f} px")
    return errors


# %% [check] exercise 3, 2 points: at stride 8, exercise_3()'s randomized-rounding model errs less than argmax
if LONG:
    errors_8 = exercise_3()
    assert errors_8["randomized_rounding"] < errors_8["argmax"], f"exercise_3() = {errors_8}"
else:
    print("[3] skipped (two more trainings): run with --long")


# %% [answer] exercise 4, needs mmpose
def exercise_4() -> dict:
    """Real faces at coarser heatmaps. The argmax NME grows about linearly with the stride and follows
    0.3826 x s / d_in, with d_in the normaliser in INPUT pixels (the crop rescales original pixels).
    Returns {dataset: [(heatmap size, argmax NME, 0.3826 s / d_in) at 64, 32, 16]}."""
    from trainers.data import coco
    from trainers.data.dataset import LandmarkDataset
    from trainers.data.flip_pairs import FLIP_PAIRS

    table = {}
    for name in ("wflw", "300w", "cofw", "aflw"):
        folder = REAL / "mmpose" / name
        records = coco.load_coco_keypoints(folder / f"test_{name}.json", folder, name)
        ds = LandmarkDataset(records, input_size=(256, 256), train=False, flip_pairs=FLIP_PAIRS[name])
        items = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])
        kp, vis = items["keypoints"].double(), items["visible"].double()
        inverse = invert(items["matrix"])
        gt = transform_points(kp, inverse)
        norms = torch.tensor([ds.normalizer(i) for i in range(len(ds))], dtype=torch.float64)
        scale = torch.linalg.det(items["matrix"][:, :, :2]).abs().sqrt()  # input px per original px
        table[name] = []
        for size in (64, 32, 16):
            am = codecs.build("argmax", input_size=(256, 256), heatmap_size=(size, size))
            xy = am.decode(am.encode(kp, vis).heatmaps, activation="probabilities")[0]
            nme = metrics.face_metrics(transform_points(xy, inverse), gt, norms, vis)["nme"]
            predicted = float((FLOOR_CELLS * 256 / size / (norms * scale)).mean())
            table[name].append((size, nme, predicted))
            print(
                f"[4] {name:>5s} {size:2d}x{size:<2d}: argmax NME {nme:.4f}, 0.3826 s / d_in = {predicted:.4f}"
            )
    return table


# %% [check] exercise 4, 2 points: exercise_4()'s argmax NME is within a factor 2 of 0.3826 s / d_in, and grows with s
if (REAL / "mmpose").is_dir():
    face_table = exercise_4()
    assert set(face_table) == {"wflw", "300w", "cofw", "aflw"}, f"datasets {sorted(face_table)}"
    for name, rows in face_table.items():
        for size, nme, predicted in rows:
            assert 0.5 < nme / predicted < 2.0, (
                f"{name} {size}x{size}: NME {nme:.4f}, formula {predicted:.4f}"
            )
        nmes = [nme for _, nme, _ in rows]
        assert nmes[0] < nmes[1] < nmes[2], f"{name}: NME at 64, 32, 16 is {nmes}, not growing"
else:
    print(f"[4] skipped: real samples not found at {REAL}")

# %% [answer] exercise 5
# GPU: ``train.device=auto`` picks CUDA; ``train.amp: true`` autocasts to bfloat16 (float16 with a GradScaler
# where bf16 is missing) and ``train.channels_last: true`` stores images and weights channels-last; both are
# ignored on a CPU. See ``trainers/config.py`` (TrainConfig) and ``trainers.runtime.amp_dtype``.
config = load_config("wflw", ["data.root=/nonexistent"])
print(
    f"[5] wflw config: device={config.train.device}, amp={config.train.amp}, "
    f"channels_last={config.train.channels_last}; amp dtype on this machine: "
    f"{amp_dtype(torch.device('cuda' if torch.cuda.is_available() else 'cpu'), config.train.amp)}"
)

# %% [check] exercise 5, 1 point: the wflw config (config) asks for amp, channels_last and device=auto
assert config.train.amp and config.train.channels_last and config.train.device == "auto", config.train
