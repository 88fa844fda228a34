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
# # 07 · Human pose with randomized rounding: MPII and COCO
#
# Notebook 06 trained a face-landmark model with randomized-rounding targets (Yu & Tao, *Heatmap
# Regression via Randomized Rounding*, IEEE TPAMI 2021, [arXiv:2009.00225](https://arxiv.org/abs/2009.00225)).
# Human pose estimation uses **the same machinery**: the same engine, codec, loss and decoder; what changes
# is the data (persons cropped from their boxes, often non-square inputs such as 192 x 256), the
# left/right pairs for flipping, and the metrics: **PCKh** on MPII and **OKS / AP** on COCO.
#
# **Learning goals.** After this notebook you can
#
# 1. run the pose configuration of the trainer (`DATA_ROOT` pointing at MPII or COCO) and know that it is
#    the face pipeline with another dataset and metric;
# 2. state and compute PCKh@t (MPII) and OKS and keypoint AP (COCO) from predictions in original pixels;
# 3. measure, on real MPII and COCO annotations, what the heatmap grid alone costs a perfect network in
#    PCKh and AP, and what randomized rounding's expectation gives back.
#
# **An honest note on the default run.** Pose datasets cannot be downloaded at run time and are too
# large for a CPU test, so with the default parameters the training part runs on the embedded synthetic
# set, which is **face-like** (the landmarks of a synthetic face), not a body. It is there to show the
# training path runs end to end; the code path for MPII or COCO is the same `engine.train` call with
# another config. The real pose annotations enter in section 4, through the project's loaders and metrics.

# %% tags=["parameters"]
# H3R_NOTEBOOK_FULL=1 in the environment selects the long run (more steps, the whole held-out split).
import os

FULL = os.environ.get("H3R_NOTEBOOK_FULL", "0") == "1"
DATA_ROOT = None  # folder with the ORIGINAL MPII or COCO files; None = embedded synthetic (face-like) set
DATASET = "mpii"  # with DATA_ROOT: "mpii" (PCKh, needs annot/gt_valid.mat) or "coco" (AP via pycocotools)
STEPS = 3000 if FULL else 250  # optimisation steps (the bundled pose configs train for 210 epochs)
BATCH_SIZE = 32
DEVICE = "auto"  # "auto" = CUDA when present, else CPU
MODEL = None  # None = the config's model ("tiny" for synthetic, "hrnet_w32" for MPII/COCO)
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

from h3r_theory import codecs, metrics
from h3r_theory.theory.quantization import mean_quantization_error
from trainers import engine
from trainers import plotting as pt
from trainers.build import build_codec, build_datasets
from trainers.config import load_config
from trainers.data.transforms import invert, transform_points
from trainers.evaluate import dataset_metrics, evaluate, summary
from trainers.runtime import get_batch

plt.rcParams.update({"figure.dpi": 80, "savefig.dpi": 80})
REPO_ROOT = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
device = torch.device(
    "cuda" if DEVICE == "auto" and torch.cuda.is_available() else ("cpu" if DEVICE == "auto" else DEVICE)
)
FLOOR_CELLS = float(mean_quantization_error("round", 2))  # (sqrt(2) + asinh(1)) / 6, exact
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


# %% [markdown]
# ## 1 · The metrics of pose estimation
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
# ## 2 · Training (synthetic by default; MPII or COCO with `DATA_ROOT`)

# %%
overrides = [
    f"train.max_steps={STEPS}",
    f"train.batch_size={BATCH_SIZE}",
    f"train.device={DEVICE}",
    f"train.seed={SEED}",
    "train.progress=false",
    f"train.eval_every={max(1, STEPS // 5)}",
    "train.checkpoint_every=0",
    f"eval.max_samples={'null' if EVAL_SAMPLES is None else EVAL_SAMPLES}",
]
if DATA_ROOT is None:
    config_name = "synthetic"
    overrides += ["data.options.num_train=2048", "data.options.num_eval=256"]
else:
    config_name = DATASET
    overrides += [f"data.root={DATA_ROOT}"]
if MODEL is not None:
    overrides += [f"model.name={MODEL}"]
overrides += [f"train.out_dir={REPO_ROOT / 'runs' / 'notebook_07' / config_name}"]
config = load_config(config_name, overrides)
train_set, eval_set = build_datasets(config)
codec = build_codec(config, train_set.input_size)
stride = config.model.output_stride
edges = {"mpii": pt.MPII_SKELETON, "coco": pt.COCO_SKELETON}.get(config.data.name, ())
print(
    f"data: {config.data.name} ({'face-like synthetic set' if DATA_ROOT is None else 'real'}), "
    f"{len(train_set)} training / {len(eval_set)} held-out samples, {train_set.num_keypoints} keypoints, "
    f"input {tuple(train_set.input_size)} px, flip pairs {train_set.flip_pairs}"
)
print(f"model {config.model.name}, stride {stride}, heatmaps {codec.heatmap_size}, codec {codec.name}")

t0 = time.perf_counter()
result = engine.train(config, train_set=train_set, eval_set=eval_set)
train_seconds = time.perf_counter() - t0
print(f"{result.steps} steps in {train_seconds:.1f} s; final evaluation: {summary(result.final)}")

# %%
floor_px = FLOOR_CELLS * stride
fig = pt.plot_training_history(
    result.history,
    "mean_error_px",
    "mean error on held-out data (input px)",
    floor=floor_px,
    floor_label=f"vanilla floor at stride {stride}",
)
pt.show(fig)

# %%
evaluation = evaluate(
    result.model,
    codec,
    eval_set,
    device=device,
    max_samples=EVAL_SAMPLES,
    flip_test=bool(train_set.flip_pairs),
    return_predictions=True,
)
pred = evaluation.pop("predictions")
keys = [
    k
    for k in ("num_samples", "mean_error_px", "mean_error_orig_px", "nme", "pckh", "ap", "ap50", "ap75")
    if k in evaluation
]
display(Markdown(markdown_table([{"quantity": k, "value": evaluation[k]} for k in keys])))
n_show = min(8, len(pred["index"]))
shown = get_batch(eval_set, pred["index"][:n_show].tolist())
fig = pt.prediction_grid(
    shown["image"],
    pred["gt_input"][:n_show],
    pred["pred_input"][:n_show],
    pred["visible"][:n_show],
    edges=edges,
    ncols=4,
    size=2.3,
    suptitle="held-out predictions with the flip test (red x) against the labels (green o)",
)
pt.show(fig, "jpeg")

# %% [markdown]
# The flip test above averages the maps of the image and of its mirror, mirrored back with the left/right
# pairs swapped. Under the pixel-centre convention of this project the mirrored map lies *exactly* on the
# direct one (`conventions.heatmap_flip_offset` is 0), so no one-pixel "shift" hack is needed.
#
# ## 3 · What does the grid cost a pose model?
#
# Before real annotations, the arithmetic. A vanilla heatmap at stride $s$ rounds each joint, costing on
# average $0.3826\,s$ input pixels; a person crop of height $H$ pixels mapped to a 256-pixel input has
# $H/256$ original pixels per input pixel. The next section measures the consequences on real
# annotations with **ideal heatmaps** (encode the ground truth, decode it) instead of a network: a
# perfect network can do no better than these.

# %% [markdown]
# ## 4 · Real MPII and COCO annotations through the loaders
#
# Four experiments, each run only when `../shared/data/real_samples` is present (the tables count the
# persons):
#
# * **MPII with images** (mmpose's test sample, the first persons of the validation split): crops of
#   256 x 256, ideal maps at 64 x 64, PCKh@0.5 and PCKh@0.1 with the head boxes of `gt_valid.mat`;
# * **MPII, the whole validation split** (the `gt_valid.mat` structure, annotations only): the PCKh table
#   of the reference method whose predictions that file ships, and of ground truth plus noise;
# * **COCO with images** (mmpose's val2017 sample): crops of 192 x 256, ideal maps at 48 x 64, OKS and AP;
# * **COCO, a val2017 annotation subset** (annotations only): the same, where AP has enough instances to
#   be meaningful. The crops are computed from the boxes, no image is needed.

# %%
from trainers.data import coco, mpii
from trainers.data.dataset import LandmarkDataset
from trainers.data.flip_pairs import FLIP_PAIRS

real_root = Path(REAL_SAMPLES)
HAVE_REAL = (real_root / "mmpose" / "mpii").is_dir() and (real_root / "mpii_eval_bearpaw").is_dir()
if not HAVE_REAL:
    print(
        f"real samples not found at {real_root.resolve()}: section 4 is skipped "
        "(it needs the project's ../shared/data/real_samples folder)"
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


# %%
mpii_rows = []
if HAVE_REAL:
    g = torch.Generator().manual_seed(SEED)
    folder = real_root / "mmpose" / "mpii"
    people = mpii.load_mpii_json(folder / "test_mpii.json", folder)
    gt_valid = mpii.load_mpii_gt_valid(real_root / "mpii_eval_bearpaw" / "detections_our_format.mat")
    matched = mpii.attach_head_boxes(people, gt_valid)
    print(f"{len(people)} MPII persons loaded ({people.summary()}); head boxes matched: {matched}")
    ds_mpii = LandmarkDataset(people, input_size=(256, 256), train=False, flip_pairs=FLIP_PAIRS["mpii"])
    items = torch.utils.data.default_collate([ds_mpii[i] for i in range(len(ds_mpii))])
    kp, vis = items["keypoints"].double(), items["visible"].double()
    inverse = invert(items["matrix"])
    gt = transform_points(kp, inverse)
    idx = list(range(len(ds_mpii)))
    heads = torch.tensor([ds_mpii.normalizer(i) for i in idx], dtype=torch.float64)
    noisy = gt + 0.1 * heads[:, None, None] * torch.randn(gt.shape, generator=g, dtype=torch.float64)
    candidates = {
        k: transform_points(v, inverse)
        for k, v in ideal_predictions(kp, vis, (256, 256), (64, 64), g).items()
    }
    candidates["GT + noise (sd 0.1 h)"] = noisy
    ones = torch.ones_like(vis)
    for name, p in candidates.items():
        row = {"prediction": name}
        for t in (0.5, 0.1):
            row[f"PCKh@{t} (%)"] = dataset_metrics(ds_mpii, idx, p, gt, vis, ones, pckh_threshold=t)["pckh"]
        row["mean error (orig px)"] = float(torch.linalg.vector_norm(p - gt, dim=-1)[vis > 0].mean())
        mpii_rows.append(row)
    display(Markdown(markdown_table(mpii_rows, "{:.2f}")))
    fig = pt.prediction_grid(
        items["image"],
        kp,
        transform_points(noisy, items["matrix"]),
        vis,
        edges=pt.MPII_SKELETON,
        titles=[f"head size {float(h):.0f} orig px" for h in heads],
        ncols=5,
        size=2.2,
        suptitle="MPII: ground truth (green) and GT + noise (red), 256 x 256 crops",
    )
    pt.show(fig, "jpeg")

# %% [markdown]
# A noise of standard deviation $0.1\,h$ per axis puts a joint beyond $0.5\,h$ only rarely, but beyond
# $0.1\,h$ most of the time: the two thresholds measure very different things. On the full validation
# split (1-based MATLAB coordinates converted to 0-based by the loader; "joints" counts the labelled ones):

# %%
mpii_full = []
if HAVE_REAL:
    import scipy.io

    mat = scipy.io.loadmat(real_root / "mpii_eval_bearpaw" / "detections_our_format.mat")
    # The reference predictions are stored like the ground truth: (16, 2, N), 1-based -> 0-based.
    reference = torch.from_numpy(
        mat["pos_pred_src"].transpose(2, 0, 1).astype(np.float64) - mpii.COORDINATE_OFFSET
    )
    gt_all = torch.from_numpy(gt_valid.joints)
    vis_all = torch.from_numpy(~gt_valid.missing).double()
    boxes = torch.from_numpy(gt_valid.head_boxes)
    h_all = torch.from_numpy(gt_valid.head_sizes)
    noisy_all = gt_all + 0.1 * h_all[:, None, None] * torch.randn(
        gt_all.shape, generator=g, dtype=torch.float64
    )
    for name, p in (("reference method (pos_pred_src)", reference), ("GT + noise (sd 0.1 h)", noisy_all)):
        for t in (0.5, 0.1):
            table = metrics.pckh_table(p, gt_all, vis_all, boxes, t)
            mpii_full.append(
                {
                    "prediction": name,
                    "threshold": t,
                    **{k: v for k, v in table.items() if k != "count"},
                    "joints": table["count"],
                }
            )
    display(Markdown(markdown_table(mpii_full, "{:.2f}")))

# %% [markdown]
# Now COCO. The crops are 192 x 256 (width x height) and the ideal heatmaps 48 x 64, as in the
# HRNet-W32 COCO setting. Unlabelled keypoints never count; the instance score that ranks detections for
# AP is 1 for every ideal prediction.

# %%
coco_rows, coco_examples = [], None
if HAVE_REAL:
    input_size, heatmap_size = (192, 256), (48, 64)

    def coco_experiment(json_file, image_root, with_images):
        records = coco.load_coco_keypoints(json_file, image_root)
        ds = LandmarkDataset(records, input_size=input_size, train=False, flip_pairs=FLIP_PAIRS["coco"])
        ds.annotation_file = json_file  # what trainers.evaluate.dataset_metrics evaluates COCO AP against
        n = len(ds)
        matrix = torch.stack([ds.matrix_for(i)[0][:2] for i in range(n)])  # no image needed for the crop
        gt = torch.from_numpy(np.stack([r.keypoints for r in records]))
        vis = torch.from_numpy(np.stack([r.visibility for r in records]) > 0).double()
        area = torch.tensor([float(r.extras["area"]) for r in records], dtype=torch.float64)
        kp = transform_points(gt, matrix)
        inverse = invert(matrix)
        # A labelled keypoint beyond the grid of cell centres (outside the crop, or in its outer half-cell
        # band) is clamped to the border cells by every codec: no heatmap represents it exactly.
        uv = codecs.build("argmax", input_size=input_size, heatmap_size=heatmap_size).to_heatmap(kp)
        w, h = heatmap_size
        outside = (uv[..., 0] < 0) | (uv[..., 0] > w - 1) | (uv[..., 1] < 0) | (uv[..., 1] > h - 1)
        outside_fraction = float((outside & (vis > 0)).sum() / (vis > 0).sum())
        out = {"ground truth itself": gt.clone()}
        out.update(
            {
                k: transform_points(v, inverse)
                for k, v in ideal_predictions(kp, vis, input_size, heatmap_size, g).items()
            }
        )
        # Noise of 5 % of the person's size sqrt(area), per axis.
        out["GT + noise (sd 0.05 sqrt(area))"] = gt + 0.05 * area.sqrt()[:, None, None] * torch.randn(
            gt.shape, generator=g, dtype=torch.float64
        )
        rows = []
        for name, p in out.items():
            scored = dataset_metrics(ds, list(range(n)), p, gt, vis, torch.ones_like(vis))
            inside = (vis > 0) & ~outside
            rows.append(
                {
                    "prediction": name,
                    "persons": n,
                    "labelled kpts off the grid": outside_fraction,
                    "error on the grid (orig px)": float(
                        torch.linalg.vector_norm(p - gt, dim=-1)[inside].mean()
                    ),
                    "mean OKS": float(metrics.oks(p, gt, vis, area).mean()),
                    "AP": scored["ap"],
                    "AP50": scored["ap50"],
                    "AP75": scored["ap75"],
                }
            )
        example = None
        if with_images:
            crops = torch.stack([ds[i]["image"] for i in range(min(n, 8))])
            example = (
                crops,
                kp[:8],
                transform_points(out["argmax"], matrix)[:8],
                vis[:8],
                records.summary(),
            )
        return rows, example

    small, coco_examples = coco_experiment(
        real_root / "mmpose" / "coco" / "test_coco.json", real_root / "mmpose" / "coco", with_images=True
    )
    subset_file = real_root / "coco_val2017_subset" / "person_keypoints_val2017.json"
    large, _ = coco_experiment(subset_file, subset_file.parent, with_images=False)
    coco_rows = [{"sample": "mmpose/coco (4 images)", **r} for r in small] + [
        {"sample": "val2017 subset (538 images)", **r} for r in large
    ]
    print("loader report:", coco_examples[4])
    display(Markdown(markdown_table(coco_rows)))

# %%
if coco_examples is not None:
    crops, kp8, am8, vis8, _ = coco_examples
    fig = pt.prediction_grid(
        crops,
        kp8,
        am8,
        vis8,
        edges=pt.COCO_SKELETON,
        ncols=4,
        size=2.2,
        suptitle="COCO: ground truth (green) and the argmax round trip at 48 x 64 (red), 192 x 256 crops",
    )
    pt.show(fig, "jpeg")

# %% [markdown]
# ## 5 · What we measured
#
# Generated from the numbers above.

# %%
lines = [
    f"* Training ({'synthetic face-like set' if DATA_ROOT is None else config.data.name}, "
    f"{config.model.name}, {result.steps} steps, {train_seconds:.0f} s on {device}): mean error "
    f"**{evaluation['mean_error_px']:.3f} input px** against a vanilla floor of {floor_px:.3f} px at stride "
    f"{stride}"
    + (f"; PCKh@0.5 {evaluation['pckh']:.2f} %" if "pckh" in evaluation else "")
    + (f"; AP {evaluation['ap']:.4f}" if "ap" in evaluation else "")
    + "."
]
if mpii_rows:
    am_row = next(r for r in mpii_rows if r["prediction"] == "argmax")
    ex_row = next(r for r in mpii_rows if r["prediction"] == "RR expectation")
    ref = next(r for r in mpii_full if r["prediction"].startswith("reference") and r["threshold"] == 0.5)
    ref01 = next(r for r in mpii_full if r["prediction"].startswith("reference") and r["threshold"] == 0.1)
    lines.append(
        f"* MPII (5 persons): the argmax round trip at 64 x 64 keeps PCKh@0.5 at {am_row['PCKh@0.5 (%)']:.1f} % "
        f"and PCKh@0.1 at {am_row['PCKh@0.1 (%)']:.1f} % (mean error {am_row['mean error (orig px)']:.2f} original px); "
        f"the randomized-rounding expectation gives {ex_row['PCKh@0.1 (%)']:.1f} % at 0.1 with "
        f"{ex_row['mean error (orig px)']:.1e} px. On all {ref['joints']} labelled joints of the validation split "
        f"the shipped reference predictions score PCKh@0.5 = {ref['Mean']:.2f} % and PCKh@0.1 = "
        f"{ref01['Mean']:.2f} %: the {100 - am_row['PCKh@0.1 (%)']:.1f} points that rounding alone costs at 0.1 "
        f"are {'small' if 100 - am_row['PCKh@0.1 (%)'] < 0.1 * (100 - ref01['Mean']) else 'not small'} next to "
        f"the {100 - ref01['Mean']:.1f} points such a model loses there; at 0.5 rounding costs "
        f"{100 - am_row['PCKh@0.5 (%)']:.1f} points."
    )
if coco_rows:
    big = {r["prediction"]: r for r in coco_rows if r["sample"].startswith("val2017")}
    ceiling, am_r, one_r, ex_r = (
        big[k] for k in ("ground truth itself", "argmax", "RR one sample", "RR expectation")
    )
    lost = lambda r: 100 * (ceiling["AP"] - r["AP"])
    lines.append(
        f"* COCO ({am_r['persons']} persons): the ground truth itself scores AP {ceiling['AP']:.4f}. Rounded to a "
        f"48 x 64 grid it loses **{lost(am_r):.2f} AP points** (AP75 {am_r['AP75']:.4f} vs {ceiling['AP75']:.4f}; "
        f"mean OKS {am_r['mean OKS']:.4f}); one randomized-rounding sample loses {lost(one_r):.2f} (noisy, as a "
        f"single sample must be), its expectation {lost(ex_r):.2f}. "
        + (
            f"The expectation is exact on the grid of cell centres (mean error "
            f"{ex_r['error on the grid (orig px)']:.1e} px there), so what it still loses comes from the "
            f"{100 * ex_r['labelled kpts off the grid']:.1f} % of labelled keypoints outside the crop or within "
            f"half a cell of its border, which every codec clamps to the border cells."
            if ex_r["error on the grid (orig px)"] < 1e-6
            else f"On the grid the expectation still errs by {ex_r['error on the grid (orig px)']:.3f} px on average."
        )
    )
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## Exercises
#
# Solutions: `notebooks/solutions/07_human_pose.py` (run it from the repository root).
#
# 1. **PCKh by hand.** For the MPII persons with images of section 4, compute PCKh@0.5 of the argmax round trip with
#    `metrics.pck_correct` directly (remember to exclude pelvis and thorax) and check it against the table.
# 2. **Coarser pose heatmaps.** Repeat the COCO experiment with heatmaps of 24 x 32 and 12 x 16 (strides 8
#    and 16). How many AP points does vanilla rounding lose, and how many does the randomized-rounding
#    expectation lose?
# 3. **OKS per keypoint type.** Using `metrics.COCO_SIGMAS`, which keypoint's OKS suffers most from a
#    fixed error of 2 px for a person of area 96²? Why?
# 4. **Flip test.** On the trained model of section 2, evaluate with and without `flip_test` and compare the
#    mean error. Why is the flip test exact here, and what would go wrong under the `msra` convention?
# 5. **Real training.** With MPII at `DATA_ROOT`, which keys of `trainers/configs/mpii.yaml` would you change
#    to train the paper's stride-8 or stride-16 setting?
