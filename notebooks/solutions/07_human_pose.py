"""Solutions to the exercises of notebook 07 (human pose: MPII and COCO).

Run from the repository root:  python notebooks/solutions/07_human_pose.py   (no training; seconds of CPU).
Exercises 1-2 need ../shared/data/real_samples (they print a reason and skip without it). Each solution
asserts its answer. The ``# %% [answer]`` and ``# %% [check]`` lines split it into the cells that
``h3r-grade`` grades: each answer defines a function, its check calls it and asserts on what it returns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from h3r_theory import codecs, conventions, metrics
from trainers.build import heatmap_size_for
from trainers.config import load_config
from trainers.data.flip_pairs import FLIP_PAIRS
from trainers.data.transforms import invert, transform_points
from trainers.evaluate import dataset_metrics

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real_samples"
MPII = REAL / "mmpose" / "mpii"
COCO_SUBSET = REAL / "coco_val2017_subset" / "person_keypoints_val2017.json"


def round_trip(name, keypoints, visible, input_size, heatmap_size, expected=False):
    """Ideal heatmaps of ``keypoints`` (input px) decoded again: what a perfect network would predict."""
    codec = codecs.build(name, input_size=input_size, heatmap_size=heatmap_size)
    enc = codec.expected(keypoints, visible) if expected else codec.encode(keypoints, visible)
    return codec.decode(enc.heatmaps, activation="probabilities")[0]


# %% [answer] exercise 1, needs mmpose/mpii
def exercise_1() -> dict:
    """PCKh@0.5 by hand: correct = error / head size <= 0.5 on labelled joints, pelvis and thorax excluded.
    Returns {threshold: (by hand, trainers.evaluate.dataset_metrics)} in percent, at 0.5 and 0.1."""
    from trainers.data import mpii
    from trainers.data.dataset import LandmarkDataset

    folder = REAL / "mmpose" / "mpii"
    people = mpii.load_mpii_json(folder / "test_mpii.json", folder)
    mpii.attach_head_boxes(
        people, mpii.load_mpii_gt_valid(REAL / "mpii_eval_bearpaw" / "detections_our_format.mat")
    )
    ds = LandmarkDataset(people, input_size=(256, 256), train=False, flip_pairs=FLIP_PAIRS["mpii"])
    items = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])
    kp, vis = items["keypoints"].double(), items["visible"].double()
    inverse = invert(items["matrix"])
    gt = transform_points(kp, inverse)
    pred = transform_points(round_trip("argmax", kp, vis, (256, 256), (64, 64)), inverse)
    heads = torch.tensor([ds.normalizer(i) for i in range(len(ds))], dtype=torch.float64)
    pckh = {}
    for t in (0.5, 0.1):
        correct, valid = metrics.pck_correct(pred, gt, heads, t, vis)
        keep = [k for k in range(16) if k not in metrics.MPII_EXCLUDED_FROM_MEAN]
        by_hand = 100 * int(correct[:, keep].sum()) / int(valid[:, keep].sum())  # exact counts, float64
        engine_value = dataset_metrics(
            ds, list(range(len(ds))), pred, gt, vis, torch.ones_like(vis), pckh_threshold=t
        )["pckh"]
        print(
            f"[1] PCKh@{t}: by hand {by_hand:.2f} %, trainers.evaluate.dataset_metrics {engine_value:.2f} %"
        )
        pckh[t] = (by_hand, engine_value)
    return pckh


# %% [check] exercise 1, 2 points: exercise_1()'s PCKh by hand equals the engine's at 0.5 and at 0.1
if MPII.is_dir():
    pckh = exercise_1()
    assert set(pckh) == {0.5, 0.1}, f"thresholds {sorted(pckh)}"
    for t, (by_hand, engine_value) in pckh.items():
        # the engine divides the same counts in float32
        assert abs(by_hand - engine_value) < 1e-4, f"PCKh@{t}: by hand {by_hand}, engine {engine_value}"
else:
    print(f"[1] skipped: real samples not found at {MPII}")


# %% [answer] exercise 2, needs coco_val2017_subset/person_keypoints_val2017.json
def exercise_2() -> dict:
    """COCO at strides 4, 8, 16 (48x64, 24x32, 12x16 heatmaps for 192x256 crops): the AP that rounding alone
    costs grows quickly with the stride; the randomized-rounding expectation loses only what lies off the
    grid. As in section 7.4, every keypoint is first clamped onto the grid of cell centres (a keypoint outside
    the crop would otherwise get weight 0 and decode at the crop's middle), so the expectation's loss is
    exactly the clamping's. Returns {(stride, "argmax" | "RR expectation" | "clamping only"): AP}."""
    subset = COCO_SUBSET
    from trainers.data import coco
    from trainers.data.dataset import LandmarkDataset

    records = coco.load_coco_keypoints(subset, subset.parent)
    ds = LandmarkDataset(records, input_size=(192, 256), train=False, flip_pairs=FLIP_PAIRS["coco"])
    ds.annotation_file = subset
    n = len(ds)
    matrix = torch.stack([ds.matrix_for(i)[0][:2] for i in range(n)])
    gt = torch.from_numpy(np.stack([r.keypoints for r in records]))
    vis = torch.from_numpy(np.stack([r.visibility for r in records]) > 0).double()
    kp, inverse = transform_points(gt, matrix), invert(matrix)
    every = torch.ones_like(vis)  # unlabelled keypoints are decoded too, as in notebooks 7 and 10
    aps = {}
    for stride in (4, 8, 16):
        size = (192 // stride, 256 // stride)
        grid = codecs.build("argmax", input_size=(192, 256), heatmap_size=size)
        uv = grid.to_heatmap(kp)
        clamped = grid.to_input(
            torch.stack((uv[..., 0].clamp(0, size[0] - 1), uv[..., 1].clamp(0, size[1] - 1)), -1)
        )
        aps[stride, "clamping only"] = dataset_metrics(
            ds, list(range(n)), transform_points(clamped, inverse), gt, vis, every
        )["ap"]
        for label, name, expected in (
            ("argmax", "argmax", False),
            ("RR expectation", "randomized_rounding", True),
        ):
            pred = transform_points(round_trip(name, clamped, every, (192, 256), size, expected), inverse)
            ap = aps[stride, label] = dataset_metrics(ds, list(range(n)), pred, gt, vis, every)["ap"]
            print(
                f"[2] stride {stride:2d} ({size[0]}x{size[1]}), {label:>15s}: AP {ap:.4f} "
                f"({100 * (1 - ap):.2f} points lost)"
            )
    return aps


# %% [check] exercise 2, 3 points: exercise_2()'s argmax AP falls with the stride, the expectation beats it and scores as the clamped points
if COCO_SUBSET.is_file():
    aps = exercise_2()
    assert aps[4, "argmax"] > aps[8, "argmax"] > aps[16, "argmax"], f"argmax AP {aps}"
    assert all(aps[s, "RR expectation"] > aps[s, "argmax"] for s in (4, 8, 16)), f"AP {aps}"
    # The expectation decodes every clamped point exactly, so it scores what the clamped points score.
    assert all(abs(aps[s, "RR expectation"] - aps[s, "clamping only"]) < 1e-6 for s in (4, 8, 16)), (
        f"AP {aps}"
    )
else:
    print(f"[2] skipped: {COCO_SUBSET} not found")


# %% [answer] exercise 3
def exercise_3() -> str:
    """OKS of a 2 px error for a person of area 96^2, per keypoint: exp(-d^2 / (2 area (2 sigma)^2)).
    The smallest sigmas (nose 0.026, eyes 0.025) give the lowest OKS: COCO is strictest on the face points,
    where annotators agree best. Returns the name of the keypoint with the lowest OKS."""
    names = (
        "nose",
        "l_eye",
        "r_eye",
        "l_ear",
        "r_ear",
        "l_shoulder",
        "r_shoulder",
        "l_elbow",
        "r_elbow",
        "l_wrist",
        "r_wrist",
        "l_hip",
        "r_hip",
        "l_knee",
        "r_knee",
        "l_ankle",
        "r_ankle",
    )
    sig = torch.tensor(metrics.COCO_SIGMAS)
    per_kpt = torch.exp(-(2.0**2) / (2 * 96.0**2 * (2 * sig) ** 2))
    worst = int(per_kpt.argmin())
    print(
        f"[3] OKS per keypoint for 2 px at area 96^2: min {float(per_kpt[worst]):.4f} ({names[worst]}), "
        f"max {float(per_kpt.max()):.4f} ({names[int(per_kpt.argmax())]})"
    )
    return names[worst]


# %% [check] exercise 3, 1 point: exercise_3() names an eye as the keypoint with the lowest OKS
lowest = exercise_3()
assert lowest in ("l_eye", "r_eye"), f"exercise_3() = {lowest!r}"


# %% [answer] exercise 4
def exercise_4() -> dict:
    """Flip test. Under the pixel-centre convention the mirrored-back maps of the mirrored persons equal the
    direct maps, so averaging them needs no shift. Under ``msra`` (u = x / s) mirroring a point gives
    u' = (W - 1 - x) / s while mirroring its cell gives w - 1 - x / s: they differ by (s - 1) / s cells,
    (s - 1) input pixels, which is what trainers.evaluate.predict refuses to average. Returns
    {convention: largest x gap in input px}."""
    pairs = FLIP_PAIRS["coco"]
    g = torch.Generator().manual_seed(0)
    # Keypoints well inside the 192 x 256 crop, so that no codec clamps them to the border cells.
    kp = 16 + torch.rand(64, 17, 2, generator=g, dtype=torch.float64) * torch.tensor([160.0, 224.0])
    vis = torch.ones(64, 17, dtype=torch.float64)
    mirrored = conventions.swap_pairs(conventions.flip_x(kp, 192), pairs, dim=-2)
    gaps = {}
    for convention in ("pixel_center", "msra"):
        rr = codecs.build(
            "randomized_rounding", input_size=(192, 256), heatmap_size=(48, 64), convention=convention
        )
        direct = rr.decode(rr.expected(kp, vis).heatmaps, activation="probabilities")[0]
        back_maps = conventions.flip_heatmaps(rr.expected(mirrored, vis).heatmaps, pairs)
        back = rr.decode(back_maps, activation="probabilities")[0]
        gaps[convention] = float((back - direct)[..., 0].abs().max())
        offset = conventions.heatmap_flip_offset((192, 256), (48, 64), convention)
        print(
            f"[4] {convention:>12s}: mirrored-back decode off by {gaps[convention]:.4f} input px "
            f"(flip offset {offset:.3f} cells = {offset * 4:.3f} px at stride 4)"
        )
    return gaps


# %% [check] exercise 4, 2 points: exercise_4()'s flip gap is 0 under pixel_center and s - 1 = 3 px under msra
gaps = exercise_4()
assert gaps["pixel_center"] < 1e-9, f"gaps = {gaps}"
assert abs(gaps["msra"] - 3.0) < 1e-9, f"gaps = {gaps}"  # (s - 1) input px at s = 4


# %% [answer] exercise 5
def exercise_5() -> dict:
    """The paper's coarse settings keep the 256 x 256 input and change only the output stride:
    ``model.output_stride=8`` (32 x 32 heatmaps) or ``16`` (16 x 16); the codec stays randomized_rounding.
    Returns {output stride: heatmap size}."""
    sizes = {}
    for stride in (8, 16):
        config = load_config("mpii", ["data.root=/path/to/mpii", f"model.output_stride={stride}"])
        size = heatmap_size_for(config.data.input_size, config.model.output_stride)
        print(f"[5] mpii with model.output_stride={stride}: heatmaps {size}")
        sizes[stride] = size
    return sizes


# %% [check] exercise 5, 1 point: exercise_5()'s mpii configs at strides 8 and 16 give 32 x 32 and 16 x 16 maps
sizes = exercise_5()
assert all(sizes[s] == (256 // s, 256 // s) for s in (8, 16)), f"exercise_5() = {sizes}"
