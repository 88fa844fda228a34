# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 7. Human pose with randomized rounding: MPII and COCO
#
# Notebook 6 trained a face-landmark model with randomized-rounding targets (Yu & Tao, *Heatmap
# Regression via Randomized Rounding*, IEEE TPAMI 2021, [arXiv:2009.00225](https://arxiv.org/abs/2009.00225)).
# Human pose estimation uses **the same machinery**: the same engine, codec, loss and decoder; what changes
# is the data (persons cropped from their boxes, often non-square inputs such as 192 x 256), the
# left/right pairs for flipping, and the metrics: **PCKh** on MPII and **OKS / AP** on COCO.
#
# **Learning goals.** After this notebook you can
#
# 1. say what a pose configuration changes with respect to a face one (crop, heatmap size, backbone, flip
#    pairs, metric), and check that the flip test is exact on real persons' heatmaps;
# 2. state and compute PCKh@t (MPII) and OKS and keypoint AP (COCO) from predictions in original pixels;
# 3. measure, on real MPII and COCO annotations, what the heatmap grid alone costs a perfect network in
#    PCKh and AP, and how much of the AP loss is rounding and how much keypoints that fall off the grid.
#
# **What runs by default.** Pose datasets cannot be downloaded at run time and a pose model does not
# learn in a CPU minute, so by default nothing is trained: the notebook runs the pose pipeline (crops,
# augmentation, flip pairs, codec, metrics) on the project's real MPII and COCO annotations, and with
# `DATA_ROOT` set it also trains the bundled MPII or COCO config with the same `engine.train` call as
# notebook 6.

# %% tags=["parameters"]
# H3R_NOTEBOOK_FULL=1 in the environment selects the long run (more steps, the whole held-out split).
import os

FULL = os.environ.get("H3R_NOTEBOOK_FULL", "0") == "1"
DATA_ROOT = None  # folder with the ORIGINAL MPII or COCO files; None = no training, real samples only
DATASET = "mpii"  # with DATA_ROOT: "mpii" (PCKh, needs annot/gt_valid.mat) or "coco" (AP via pycocotools)
STEPS = 3000 if FULL else 250  # optimisation steps with DATA_ROOT (the bundled configs train 210 epochs)
BATCH_SIZE = 32
DEVICE = "auto"  # "auto" = CUDA when present, else CPU
MODEL = None  # None = the config's model ("hrnet_w32" for MPII and COCO)
EVAL_SAMPLES = None if FULL else 128  # held-out samples to evaluate (None = the whole split)
SEED = 0
REAL_SAMPLES = "../../shared/data/real_samples"  # the project's real annotated samples, if present

# %%
# %matplotlib inline
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

from h3r_theory import codecs, conventions, metrics
from h3r_theory.theory.quantization import mean_quantization_error
from trainers import engine
from trainers import plotting as pt
from trainers.build import build_datasets, heatmap_size_for
from trainers.config import load_config
from trainers.data.flip_pairs import FLIP_PAIRS
from trainers.data.records import make_record
from trainers.data.specs import SPECS
from trainers.data.transforms import invert, transform_points
from trainers.evaluate import dataset_metrics, evaluate, summary

plt.rcParams.update({"figure.dpi": 80, "savefig.dpi": 80})
REPO_ROOT = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
device = torch.device(
    "cuda" if DEVICE == "auto" and torch.cuda.is_available() else ("cpu" if DEVICE == "auto" else DEVICE)
)
FLOOR_CELLS = float(mean_quantization_error("round", 2))  # (sqrt(2) + asinh(1)) / 6, exact
POSE_SETS = ("mpii", "coco")
print(f"torch {torch.__version__}, device {device}; vanilla floor {FLOOR_CELLS:.4f} cells")


def markdown_table(rows, floats="{:.4f}"):
    """A list of dicts as a Markdown table (floats formatted, everything else as str)."""
    cols = list(rows[0])
    cell = lambda v: floats.format(v) if isinstance(v, float) else str(v)
    return (
        "| "
        + " | ".join(cols)
        + " |\n|"
        + "---|" * len(cols)
        + "\n"
        + "\n".join("| " + " | ".join(cell(r[c]) for c in cols) + " |" for r in rows)
    )


def ideal_predictions(keypoints, visible, input_size, heatmap_size, generator):
    """Decoded ideal heatmaps (input pixels) of the ground truth: argmax, one RR sample, RR expectation."""
    am = codecs.build("argmax", input_size=input_size, heatmap_size=heatmap_size)
    rr = codecs.build("randomized_rounding", input_size=input_size, heatmap_size=heatmap_size)
    return {
        "argmax": am.decode(am.encode(keypoints, visible).heatmaps, activation="probabilities")[0],
        "RR one sample": rr.decode(
            rr.encode(keypoints, visible, generator=generator).heatmaps, activation="probabilities"
        )[0],
        "RR expectation": rr.decode(rr.expected(keypoints, visible).heatmaps, activation="probabilities")[0],
    }


# %% [markdown]
# ## 7.1 The metrics of pose estimation
#
# **PCKh@t (MPII).** A joint is correct when its error is at most $t$ times the person's head size
# $h = 0.6\,\lVert \text{head-box diagonal} \rVert$; PCKh is the percentage of correct labelled joints,
# pooled over the 14 joints other than pelvis and thorax (the benchmark centres persons on those).
# The usual thresholds are $t = 0.5$ (lenient) and $t = 0.1$ (a few pixels: sensitive to quantization).
#
# **OKS and AP (COCO).** The object keypoint similarity of one person is
#
# $$ \mathrm{OKS} = \frac{\sum_k \exp\!\left(-d_k^2 / (2\, s^2 k_k^2)\right) [v_k > 0]}{\sum_k [v_k > 0]},
#    \qquad k_k = 2\sigma_k , $$
#
# with $d_k$ the error of keypoint $k$, $s^2$ the person's segment area and $\sigma_k$ per-keypoint
# constants (from 0.025 for the eyes to 0.107 for the hips). AP averages the precision over OKS thresholds
# 0.50, 0.55, ..., 0.95, so it rewards sub-pixel accuracy at the strict end. Both are in
# `h3r_theory.metrics`; `trainers.evaluate.evaluate` applies them after mapping predictions back to original pixels.

# %% [markdown]
# ## 7.2 The pose pipeline, on real persons
#
# What a pose run changes with respect to the face run of notebook 6 is in its config and its dataset
# spec: the crop, the heatmap size, the backbone, the flip pairs and the metric. The bundled configs are
# read here without their data (`data.root` is only needed to load files).

# %%
pose_configs = {
    name: load_config(name, [f"data.root={DATA_ROOT or '/path/to/' + name}"]) for name in POSE_SETS
}
rows = []
for name, cfg in pose_configs.items():
    in_size = tuple(cfg.data.input_size)
    rows.append(
        {
            "config": name,
            "input (w x h)": f"{in_size[0]} x {in_size[1]}",
            "heatmaps (w x h)": "{} x {}".format(*heatmap_size_for(in_size, cfg.model.output_stride)),
            "model": cfg.model.name,
            "codec": cfg.codec.name,
            "keypoints": SPECS[name].num_keypoints,
            "left/right pairs": len(FLIP_PAIRS[name]),
            "metric": SPECS[name].metric,
            "flip test": str(cfg.eval.flip_test),
        }
    )
display(Markdown(markdown_table(rows)))

# %% [markdown]
# A person is cropped from its annotated centre and scale (MPII) or its box (COCO), padded by 1.25, and
# during training the crop is randomly scaled, rotated and mirrored. Mirroring a body is not just a flip of
# the pixels: the left wrist becomes the right wrist, so the heatmap channels of each left/right pair swap.
# Below, the five real MPII persons with images go through the training transform (two draws each), then a
# check that the flip is exact on their heatmaps: the expected randomized-rounding maps of the mirrored
# person, mirrored back with the pairs swapped, equal the maps of the person itself.

# %%
from trainers.data import coco, mpii
from trainers.data.dataset import LandmarkDataset

real_root = Path(REAL_SAMPLES)
HAVE_REAL = (real_root / "mmpose" / "mpii").is_dir() and (real_root / "mpii_eval_bearpaw").is_dir()
if not HAVE_REAL:
    message = f"real samples not found at {real_root.resolve()}: sections 7.2 and 7.4 are skipped"
    if os.environ.get("H3R_REQUIRE_REAL_SAMPLES") == "1":
        raise FileNotFoundError(message + " (H3R_REQUIRE_REAL_SAMPLES=1)")
    print(message + " (they need the project's ../shared/data/real_samples folder)")
else:
    folder = real_root / "mmpose" / "mpii"
    people = mpii.load_mpii_json(folder / "test_mpii.json", folder)
    gt_valid = mpii.load_mpii_gt_valid(real_root / "mpii_eval_bearpaw" / "detections_our_format.mat")
    matched = mpii.attach_head_boxes(people, gt_valid)
    print(f"{len(people)} MPII persons with images ({people.summary()}); head boxes matched: {matched}")
    torch.manual_seed(SEED)  # the augmentation draws from the global RNG, as in a training run
    augmented = LandmarkDataset(people, input_size=(256, 256), train=True, flip_pairs=FLIP_PAIRS["mpii"])
    draws = [augmented[i] for _ in range(2) for i in range(len(people))]
    fig = pt.prediction_grid(
        [d["image"] for d in draws],
        [d["keypoints"] for d in draws],
        visible=[d["visible"] for d in draws],
        edges=pt.MPII_SKELETON,
        ncols=5,
        size=2.0,
        suptitle="five real MPII persons through the training transform, two random draws each (256 x 256)",
    )
    pt.show(fig, "jpeg")

    plain = LandmarkDataset(people, input_size=(256, 256), train=False, flip_pairs=FLIP_PAIRS["mpii"])
    items = torch.utils.data.default_collate([plain[i] for i in range(len(plain))])
    kp, vis = items["keypoints"].double(), items["visible"].double()
    rr64 = codecs.build("randomized_rounding", input_size=(256, 256), heatmap_size=(64, 64))
    direct = rr64.expected(kp, vis).heatmaps
    mirrored_kp = conventions.swap_pairs(conventions.flip_x(kp, 256), FLIP_PAIRS["mpii"], dim=-2)
    mirrored_vis = conventions.swap_pairs(vis, FLIP_PAIRS["mpii"], dim=-1)
    back = conventions.flip_heatmaps(rr64.expected(mirrored_kp, mirrored_vis).heatmaps, FLIP_PAIRS["mpii"])
    print(
        f"mirror, encode, mirror back with the pairs swapped: largest map difference {float((back - direct).abs().max()):.1e}"
    )
    for convention in ("pixel_center", "msra"):
        offset = conventions.heatmap_flip_offset((256, 256), (64, 64), convention)
        print(f"heatmap flip offset under {convention!r}: {offset:.4f} cells")

# %% [markdown]
# With `DATA_ROOT` pointing at the original MPII or COCO files, the next cell trains the bundled config
# of `DATASET` (HRNet-W32, randomized rounding) with the same `engine.train` call as notebook 6 and
# evaluates it with the flip test. Without it, nothing is trained here: a pose model does not learn in a
# CPU minute, and the face-like synthetic set of notebook 6 would teach nothing about bodies.

# %%
evaluation = None
if DATA_ROOT is not None:
    overrides = [
        f"data.root={DATA_ROOT}",
        f"train.max_steps={STEPS}",
        f"train.batch_size={BATCH_SIZE}",
        f"train.device={DEVICE}",
        f"train.seed={SEED}",
        "train.progress=false",
        f"train.eval_every={max(1, STEPS // 5)}",
        f"eval.max_samples={'null' if EVAL_SAMPLES is None else EVAL_SAMPLES}",
        f"train.out_dir={REPO_ROOT / 'runs' / 'notebook_07' / DATASET}",
    ] + ([f"model.name={MODEL}"] if MODEL is not None else [])
    config = load_config(DATASET, overrides)
    train_set, eval_set = build_datasets(config)
    t0 = time.perf_counter()
    result = engine.train(config, train_set=train_set, eval_set=eval_set, overwrite=True)
    train_seconds = time.perf_counter() - t0
    print(f"{result.steps} steps in {train_seconds:.1f} s; final evaluation: {summary(result.final)}")
    evaluation = evaluate(
        result.model, result.codec, eval_set, device=device, max_samples=EVAL_SAMPLES, flip_test=True
    )
    keys = [
        k for k in ("num_samples", "mean_error_px", "mean_error_orig_px", "pckh", "ap") if k in evaluation
    ]
    display(Markdown(markdown_table([{"quantity": k, "value": evaluation[k]} for k in keys])))
else:
    print("DATA_ROOT is None: no pose model trained (set it to the original MPII or COCO files)")

# %% [markdown]
# ## 7.3 What does the grid cost a pose model?
#
# A vanilla heatmap at stride $s$ rounds each joint to a cell centre, costing on average $0.3826\,s$ input
# pixels; a crop of side $L$ original pixels mapped to a 256-pixel input has $L/256$ original pixels per
# input pixel. The next section measures the consequences on real annotations with **ideal heatmaps**
# (encode the ground truth, decode it) instead of a network: a perfect network can do no better.
#
# ## 7.4 Real MPII and COCO annotations
#
# * **MPII, the whole validation split** (`gt_valid.mat`, 2,958 persons in the structure HRNet evaluates
#   with, annotations only): 256 x 256 crops, ideal maps at 64 x 64, PCKh@0.5 and PCKh@0.1 with the head
#   boxes of the file. The file has no person centre or scale, so each crop is the square around the
#   labelled joints, padded by 1.25; the five persons that have an annotated crop say how far that is
#   from the annotated one.
# * **COCO, a val2017 annotation subset** (annotations only; crops from the boxes): crops of 192 x 256,
#   ideal maps at 48 x 64, OKS and AP with pycocotools.

# %%
mpii_rows, crop_ratio = [], None
if HAVE_REAL:
    g = torch.Generator().manual_seed(SEED)
    gt_all = torch.from_numpy(gt_valid.joints)  # (N, 16, 2) original px, 0-based
    vis_all = torch.from_numpy(~gt_valid.missing).double()
    boxes = torch.from_numpy(gt_valid.head_boxes)

    def joint_box_record(i):
        """Person ``i`` of gt_valid.mat, cropped on the square around its labelled joints."""
        joints, labelled_i = gt_valid.joints[i], ~gt_valid.missing[i]
        lo, hi = joints[labelled_i].min(0), joints[labelled_i].max(0)
        return make_record(
            image=Path("not-read"),  # the crop matrix needs no image
            keypoints=joints,
            visibility=np.where(labelled_i, 2, 0),
            dataset="mpii",
            source=f"gt_valid person {i}",
            center=0.5 * (lo + hi),
            size=float((hi - lo).max()),
        )

    joint_crops = [joint_box_record(i) for i in range(len(gt_valid))]
    ds_full = LandmarkDataset(joint_crops, input_size=(256, 256), train=False, flip_pairs=FLIP_PAIRS["mpii"])
    matrix = torch.stack([ds_full.matrix_for(i)[0][:2] for i in range(len(ds_full))])
    kp_all, inverse = transform_points(gt_all, matrix), invert(matrix)
    # The five persons with an annotated crop are the first five of the split (mpii_eval_bearpaw/README.txt).
    annotated = np.array([r.crop_center_and_size()[1][0] for r in people])
    from_joints = np.array([r.crop_center_and_size()[1][0] for r in joint_crops[: len(people)]])
    crop_ratio = from_joints / annotated
    print("crop side from the joints / annotated crop side, first five persons:", np.round(crop_ratio, 2))
    candidates = {"ground truth itself": gt_all.clone()}
    candidates.update(
        {
            k: transform_points(v, inverse)
            for k, v in ideal_predictions(kp_all, vis_all, (256, 256), (64, 64), g).items()
        }
    )
    for name, p in candidates.items():
        row = {"prediction": name, "persons": len(gt_all)}
        for t in (0.5, 0.1):
            row[f"PCKh@{t} (%)"] = metrics.pckh_table(p, gt_all, vis_all, boxes, t)["Mean"]
        row["mean error (orig px)"] = float(torch.linalg.vector_norm(p - gt_all, dim=-1)[vis_all > 0].mean())
        mpii_rows.append(row)
    joints_counted = metrics.pckh_table(gt_all, gt_all, vis_all, boxes, 0.5)["count"]
    print(f"{joints_counted} labelled joints enter the mean (pelvis and thorax excluded)")
    display(Markdown(markdown_table(mpii_rows, "{:.3f}")))

# %% [markdown]
# Now COCO. The crops are 192 x 256 (width x height) and the ideal heatmaps 48 x 64, as in the
# HRNet-W32 COCO setting. Unlabelled keypoints never count; the instance score that ranks detections for
# AP is 1 for every ideal prediction. A labelled keypoint beyond the grid of cell centres (outside the
# crop, or in its outer half-cell band) is clamped to the border cells by every codec: no heatmap
# represents it exactly. To tell the two sources of loss apart, two more predictions each keep one of
# them: **rounding only** (the argmax round trip on the grid, the exact ground truth off it) and
# **clamping only** (the exact ground truth on the grid, the clamped position off it).

# %%
coco_rows, coco_errors = [], {}
if HAVE_REAL:
    input_size, heatmap_size = (192, 256), (48, 64)
    json_file = real_root / "coco_val2017_subset" / "person_keypoints_val2017.json"
    records = coco.load_coco_keypoints(json_file, json_file.parent)
    ds = LandmarkDataset(records, input_size=input_size, train=False, flip_pairs=FLIP_PAIRS["coco"])
    ds.annotation_file = json_file  # what trainers.evaluate.dataset_metrics evaluates COCO AP against
    n = len(ds)
    matrix = torch.stack([ds.matrix_for(i)[0][:2] for i in range(n)])  # no image needed for the crop
    gt = torch.from_numpy(np.stack([r.keypoints for r in records]))
    vis = torch.from_numpy(np.stack([r.visibility for r in records]) > 0).double()
    area = torch.tensor([float(r.extras["area"]) for r in records], dtype=torch.float64)
    kp, inverse = transform_points(gt, matrix), invert(matrix)
    uv = codecs.build("argmax", input_size=input_size, heatmap_size=heatmap_size).to_heatmap(kp)
    w, h = heatmap_size
    off_grid = (uv[..., 0] < 0) | (uv[..., 0] > w - 1) | (uv[..., 1] < 0) | (uv[..., 1] > h - 1)
    labelled, on_grid = vis > 0, (vis > 0) & ~off_grid
    ideal = {
        k: transform_points(v, inverse)
        for k, v in ideal_predictions(kp, vis, input_size, heatmap_size, g).items()
    }
    out = {"ground truth itself": gt.clone(), **ideal}
    out["rounding only"] = torch.where(off_grid[..., None], gt, ideal["argmax"])
    out["clamping only"] = torch.where(off_grid[..., None], ideal["RR expectation"], gt)
    for name, p in out.items():
        scored = dataset_metrics(ds, list(range(n)), p, gt, vis, torch.ones_like(vis))
        err = torch.linalg.vector_norm(p - gt, dim=-1)
        coco_rows.append(
            {
                "prediction": name,
                "persons": n,
                "error on the grid (orig px)": float(err[on_grid].mean()),
                "error off the grid (orig px)": float(err[labelled & off_grid].mean()),
                "mean OKS": float(metrics.oks(p, gt, vis, area).mean()),
                "AP": scored["ap"],
                "AP50": scored["ap50"],
                "AP75": scored["ap75"],
            }
        )
    scale = torch.linalg.det(matrix[:, :, :2]).abs().sqrt()  # input px per original px, per person
    coco_errors = {
        "argmax, on the grid (input px)": (
            torch.linalg.vector_norm(ideal["argmax"] - gt, dim=-1) * scale[:, None]
        )[on_grid],
        "clamped, off the grid (input px)": (
            torch.linalg.vector_norm(ideal["RR expectation"] - gt, dim=-1) * scale[:, None]
        )[labelled & off_grid],
    }
    coco_off_share = float((labelled & off_grid).sum() / labelled.sum())
    print(
        f"{n} persons, {int(labelled.sum())} labelled keypoints, of which {int((labelled & off_grid).sum())} "
        f"({100 * float((labelled & off_grid).sum() / labelled.sum()):.2f} %) lie off the grid"
    )
    display(Markdown(markdown_table(coco_rows)))

# %%
if coco_errors:
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.0))
    on, off = (v.numpy() for v in coco_errors.values())
    axes[0].hist(on, bins=60, range=(0, 4 * np.sqrt(2) / 2 * 1.05), color="tab:red", alpha=0.8)
    axes[0].axvline(
        FLOOR_CELLS * 4, color="k", ls="--", lw=1, label=f"mean in theory, {FLOOR_CELLS * 4:.3f} px"
    )
    axes[0].axvline(
        float(on.mean()), color="tab:blue", lw=1, label=f"mean measured, {float(on.mean()):.3f} px"
    )
    axes[0].set_xlabel("argmax round-trip error (input px; at most 2 sqrt 2 at stride 4)")
    axes[0].set_ylabel("keypoints")
    axes[0].set_title(f"{len(on)} labelled keypoints on the grid", fontsize=9)
    axes[0].legend(fontsize=7, loc="upper left")
    axes[1].hist(off, bins=np.logspace(-2, 3, 51), color="tab:purple", alpha=0.8)
    axes[1].set_xscale("log")
    axes[1].set_xlabel("distance to the clamped position (input px, log scale)")
    axes[1].set_ylabel("keypoints")
    axes[1].set_title(f"{len(off)} labelled keypoints off the grid, clamped by every codec", fontsize=9)
    fig.suptitle("COCO val2017 subset, 192 x 256 crops, 48 x 64 heatmaps: where the AP goes", fontsize=9)
    fig.tight_layout()
    pt.show(fig)

# %% [markdown]
# ## 7.5 What we measured
#
# Generated from the numbers above.

# %%
lines = []
if evaluation is not None:
    lines.append(
        f"* Training ({config.data.name}, {config.model.name}, {result.steps} steps, {train_seconds:.0f} s on "
        f"{device}): mean error **{evaluation['mean_error_px']:.3f} input px**"
        + (f"; PCKh@0.5 {evaluation['pckh']:.2f} %" if "pckh" in evaluation else "")
        + (f"; AP {evaluation['ap']:.4f}" if "ap" in evaluation else "")
        + "."
    )
if mpii_rows:
    by = {r["prediction"]: r for r in mpii_rows}
    am_row, ex_row = by["argmax"], by["RR expectation"]
    lines.append(
        f"* MPII ({am_row['persons']} persons, crops from the joints, {np.min(crop_ratio):.2f} to "
        f"{np.max(crop_ratio):.2f} times the annotated crop side where one exists): the argmax round trip at "
        f"64 x 64 costs {100 - am_row['PCKh@0.5 (%)']:.2f} points of PCKh@0.5 and "
        f"**{100 - am_row['PCKh@0.1 (%)']:.2f} points of PCKh@0.1** (mean error "
        f"{am_row['mean error (orig px)']:.2f} original px); the randomized-rounding expectation costs "
        f"{100 - ex_row['PCKh@0.1 (%)']:.2f} points at 0.1. "
        + (
            "The crops from the joints are smaller than the annotated ones on all five persons that have both, so "
            "a grid cell spans fewer original pixels here and these costs are probably below those of the "
            "annotated crops. "
            if np.max(crop_ratio) < 1
            else ""
        )
        + f"For scale, the DarkPose README reports HRNet-W32 on MPII at PCKh@0.1 37.7 without DARK and 42.0 "
        f"with it (quoted in `../shared/notes/h3r-release.md`): that network loses {100 - 37.7:.1f} points "
        f"at 0.1, against the {100 - am_row['PCKh@0.1 (%)']:.2f} that rounding costs a perfect one; how the "
        f"two errors combine is the subject of notebook 10."
    )
if coco_rows:
    by = {r["prediction"]: r for r in coco_rows}
    ceiling = by["ground truth itself"]
    lost = lambda name: 100 * (ceiling["AP"] - by[name]["AP"])
    lines.append(
        f"* COCO ({ceiling['persons']} persons): the ground truth scores AP {ceiling['AP']:.4f}. The argmax "
        f"round trip at 48 x 64 loses {lost('argmax'):.2f} AP points, the exact randomized-rounding "
        f"expectation {lost('RR expectation'):.2f}, one randomized-rounding sample {lost('RR one sample'):.2f}. "
        f"Taken apart, rounding alone (off-grid keypoints left exact) costs {lost('rounding only'):.2f} points "
        f"and clamping alone {lost('clamping only'):.2f} "
        f"({100 * coco_off_share:.2f} % of the labelled keypoints, off the grid): the larger part is "
        f"{'the clamping, which no codec avoids' if lost('clamping only') > lost('rounding only') else 'rounding'}. "
        f"The two do not add ({lost('rounding only') + lost('clamping only'):.2f} for the sum): what a "
        f"sub-cell codec gives back here, argmax against the expectation, is "
        f"{lost('argmax') - lost('RR expectation'):.2f} of the {lost('argmax'):.2f} points."
    )
display(Markdown("\n".join(lines) if lines else "No real samples and no DATA_ROOT: nothing was measured."))

# %% [markdown]
# ## Exercises
#
# Solutions: `notebooks/solutions/07_human_pose.py` (run it from the repository root).
#
# 1. **PCKh by hand.** For the five MPII persons with images of section 7.2, compute PCKh@0.5 and PCKh@0.1 of
#    the argmax round trip with `metrics.pck_correct` directly (remember to exclude pelvis and thorax) and
#    check it against `trainers.evaluate.dataset_metrics`.
# 2. **Coarser pose heatmaps.** Repeat the COCO experiment with heatmaps of 24 x 32 and 12 x 16 (strides 8
#    and 16). How many AP points does vanilla rounding lose, and how many does the randomized-rounding
#    expectation lose?
# 3. **OKS per keypoint type.** Using `metrics.COCO_SIGMAS`, which keypoint's OKS suffers most from a
#    fixed error of 2 px for a person of area 96²? Why?
# 4. **Flip test.** Repeat the flip check of section 7.2 for COCO crops (192 x 256 input, 48 x 64 maps) with a
#    randomized-rounding codec built with `convention="pixel_center"` and with `convention="msra"`: decode
#    the maps of the persons and the mirrored-back maps of their mirror images. By how many input pixels do
#    they disagree under each convention, and how does that follow from `u = (x + 1/2)/s - 1/2` and `u = x/s`?
# 5. **Real training.** With MPII at `DATA_ROOT`, which keys of `trainers/configs/mpii.yaml` would you change
#    to train the paper's stride-8 or stride-16 setting?
