# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
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
# **Real data.** Sections 7.2 and 7.4 read real annotations from the project's sample folder
# `../shared/data/real_samples` (parameter `REAL_SAMPLES`): MPII (`mmpose/mpii/test_mpii.json` with its five
# images, and `mpii_eval_bearpaw/detections_our_format.mat`, the 2,958 validation persons of `gt_valid.mat`)
# and COCO val2017 (`coco_val2017_subset/person_keypoints_val2017.json`, annotations only). Without that
# folder the notebook still runs: it prints which folder it did not find and skips those sections. Training
# needs the original MPII or COCO files at `DATA_ROOT`.
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
REAL_SAMPLES = None  # None = <repository>/../shared/data/real_samples, the project's real annotated samples

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


def clamp_to_grid(points, input_size, heatmap_size):
    """Points (..., 2) in input px -> the nearest point of the heatmap's cell-centre grid, in input px.

    No heatmap represents a point beyond its outermost cell centres; the nearest one is the best a perfect
    network can predict for it (notebook 10 clamps the same way).
    """
    codec = codecs.build("argmax", input_size=input_size, heatmap_size=heatmap_size)
    w, h = heatmap_size
    uv = codec.to_heatmap(points.double())
    return codec.to_input(torch.stack((uv[..., 0].clamp(0, w - 1), uv[..., 1].clamp(0, h - 1)), -1))


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
# $h = 0.6\,\lVert \text{head-box diagonal} \rVert$ (`SC_BIAS = 0.6` in HRNet's MPII loader
# `lib/dataset/mpii.py`, as kept in leeyegy/SimCC at commit `ff129bd0`); PCKh is the percentage of correct
# labelled joints, pooled over the 14 joints other than pelvis and thorax (the same `lib/dataset/mpii.py`
# masks them out of its mean: `jnt_count.mask[6:8] = True`).
# The usual thresholds are $t = 0.5$ (lenient) and $t = 0.1$ (a few pixels: sensitive to quantization).
#
# **OKS and AP (COCO).** The object keypoint similarity of one person is
#
# $$ \mathrm{OKS} = \frac{\sum_k \exp\!\left(-d_k^2 / (2\, s^2 k_k^2)\right) [v_k > 0]}{\sum_k [v_k > 0]},
#    \qquad k_k = 2\sigma_k , $$
#
# with $d_k$ the error of keypoint $k$, $s^2$ the person's segment area and $\sigma_k$ per-keypoint
# constants (from 0.025 for the eyes to 0.107 for the hips: `kpt_oks_sigmas` of pycocotools' `cocoeval.py`,
# `metrics.COCO_SIGMAS` here). AP averages the precision over OKS thresholds
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

real_root = Path(REAL_SAMPLES) if REAL_SAMPLES else REPO_ROOT.parent / "shared" / "data" / "real_samples"
needed = [real_root / "mmpose" / "mpii", real_root / "mpii_eval_bearpaw", real_root / "coco_val2017_subset"]
HAVE_REAL = all(folder.is_dir() for folder in needed)
if not HAVE_REAL:
    missing = ", ".join(str(folder) for folder in needed if not folder.is_dir())
    message = f"real samples not found ({missing}): sections 7.2 and 7.4 are skipped"
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
#   boxes of the file. The published models crop each person by its annotated scale, `scale x 200 x 1.25`,
#   into 256 x 256 (HRNet's MPII loader `lib/dataset/mpii.py`, `s = s * 1.25` with a pixel_std of 200, kept
#   as is in [leeyegy/SimCC](https://github.com/leeyegy/SimCC) at commit `ff129bd0`; DarkPose README,
#   "Results on MPII val": "Input size is 256x256"). The same loader also moves the centre down before
#   cropping, `c[1] = c[1] + 15 * s[1]`. `gt_valid.mat` has no person centre or scale, so the crop is
#   approximated as notebook 10 does: the square around the labelled joints (centred on them, so HRNet's
#   centre shift is not reproduced), scaled by the median ratio of `scale x 200` to that square on the five
#   persons of the sample that have both (printed), then padded by 1.25. The crop's size sets what a cell
#   costs in original pixels, and the PCKh@0.1 cost is very sensitive to it: five persons give only a rough
#   ratio, so the cell also prices the smallest and the largest of the five ratios, the range that the
#   median's number rests on. A square of at least 1.1 x 1.25 times the joints' square, centred on them, puts
#   every labelled joint well inside the grid: no MPII joint is clamped here (printed), so MPII has no
#   clamping part by construction.
# * **COCO, a val2017 annotation subset** (annotations only; crops from the boxes): crops of 192 x 256,
#   ideal maps at 48 x 64, OKS and AP with pycocotools.

# %%
mpii_rows, crop_ratio = [], None
if HAVE_REAL:
    g = torch.Generator().manual_seed(SEED)
    gt_all = torch.from_numpy(gt_valid.joints)  # (N, 16, 2) original px, 0-based
    vis_all = torch.from_numpy(~gt_valid.missing).double()
    boxes = torch.from_numpy(gt_valid.head_boxes)

    def joint_side(joints, labelled_i):
        """Side (original px) of the square around the labelled joints, and its centre."""
        lo, hi = joints[labelled_i].min(0), joints[labelled_i].max(0)
        return float((hi - lo).max()), 0.5 * (lo + hi)

    # HRNet's crop side (scale x 200) over the joints' square, on the five persons that have both.
    crop_ratio = np.array([r.size / joint_side(r.keypoints, r.visibility > 0)[0] for r in people])
    ratio = float(np.median(crop_ratio))
    print(
        "HRNet crop side / joints' square side, the five persons with both:", np.round(crop_ratio, 2).tolist()
    )

    def hrnet_like_record(i, r):
        """Person ``i`` of gt_valid.mat, cropped like HRNet: the joints' square x the ratio ``r`` (x 1.25)."""
        joints, labelled_i = gt_valid.joints[i], ~gt_valid.missing[i]
        side, centre = joint_side(joints, labelled_i)
        return make_record(
            image=Path("not-read"),  # the crop matrix needs no image
            keypoints=joints,
            visibility=np.where(labelled_i, 2, 0),
            dataset="mpii",
            source=f"gt_valid person {i}",
            center=centre,
            size=r * side,
        )

    def crop_matrices(r):
        """The (N, 2, 3) crop matrices of every gt_valid person at crop ratio ``r``."""
        records = [hrnet_like_record(i, r) for i in range(len(gt_valid))]
        ds_r = LandmarkDataset(records, input_size=(256, 256), train=False, flip_pairs=FLIP_PAIRS["mpii"])
        return torch.stack([ds_r.matrix_for(i)[0][:2] for i in range(len(ds_r))])

    matrix = crop_matrices(ratio)
    kp_all, inverse = transform_points(gt_all, matrix), invert(matrix)
    labelled_all = vis_all > 0
    n_clamped = int(
        ((clamp_to_grid(kp_all, (256, 256), (64, 64)) - kp_all).abs().amax(-1) > 1e-9)[labelled_all].sum()
    )
    print(f"labelled MPII joints off the 64 x 64 grid (clamped) at the median ratio: {n_clamped}")
    # The argmax cost at PCKh@0.1 under the smallest, the median and the largest of the five ratios.
    ratio_cost = {}
    for name_r, r in (
        ("smallest", float(crop_ratio.min())),
        ("median", ratio),
        ("largest", float(crop_ratio.max())),
    ):
        m_r = crop_matrices(r)
        am_r = ideal_predictions(
            clamp_to_grid(transform_points(gt_all, m_r), (256, 256), (64, 64)),
            vis_all,
            (256, 256),
            (64, 64),
            torch.Generator().manual_seed(SEED),
        )["argmax"]
        ratio_cost[name_r] = (
            r,
            100
            - metrics.pckh_table(transform_points(am_r, invert(m_r)), gt_all, vis_all, boxes, 0.1)["Mean"],
        )
        print(
            f"crop ratio {r:.3f} ({name_r} of the five): argmax at 64 x 64 costs {ratio_cost[name_r][1]:.2f} points of PCKh@0.1"
        )
    candidates = {"ground truth itself": gt_all.clone()}
    candidates.update(
        {
            k: transform_points(v, inverse)
            for k, v in ideal_predictions(
                clamp_to_grid(kp_all, (256, 256), (64, 64)), vis_all, (256, 256), (64, 64), g
            ).items()
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
# AP is 1 for every ideal prediction.
#
# Some labelled keypoints lie **off the grid** of cell centres, in one of two places, and the codecs treat
# them differently:
#
# * **in the crop's outer half-cell band** (inside the image, beyond the outermost cell centre): the codecs
#   clamp the point onto the border cells themselves;
# * **outside the crop** (a person's box is padded by only 1.25, and a limb can reach beyond it): the codecs
#   give the keypoint weight 0 and an empty map, which decodes to no meaningful place. That is not a
#   clamping; the next cell shows where it lands.
#
# No heatmap represents either kind exactly, and the best a perfect network can predict for it is the nearest
# cell centre. So the ideal predictions below first **clamp** every keypoint onto the grid
# (`clamp_to_grid`, the same clamping as notebook 10's `round_trip`), then encode and decode. To tell the two
# sources of loss apart, two more predictions each keep one of them: **rounding only** (the argmax round
# trip on the grid, the exact ground truth off it) and **clamping only** (the exact ground truth on the grid,
# the clamped position off it).

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
    clamped = clamp_to_grid(kp, input_size, heatmap_size)
    labelled = vis > 0
    off_grid = labelled & ((clamped - kp).abs().amax(-1) > 1e-9)
    outside = labelled & ~conventions.in_image(kp, input_size)  # what the codecs give weight 0
    band = off_grid & ~outside
    on_grid = labelled & ~off_grid
    print(
        f"{n} persons, {int(labelled.sum())} labelled keypoints; off the grid: {int(off_grid.sum())} "
        f"({100 * float(off_grid.sum() / labelled.sum()):.2f} %), of which {int(outside.sum())} outside the "
        f"crop and {int(band.sum())} in its outer half-cell band"
    )

    # What the codec does on its own with a keypoint outside the crop: weight 0, an empty map, decoded at ...
    am = codecs.build("argmax", input_size=input_size, heatmap_size=heatmap_size)
    probe = torch.tensor([[[-20.0, 50.0]]], dtype=torch.float64)
    probe_enc = am.encode(probe, torch.ones(1, 1, dtype=torch.float64))
    probe_xy = am.decode(probe_enc.heatmaps, activation="probabilities")[0][0, 0]
    print(
        f"codec alone: a keypoint at ({probe[0, 0, 0]:.0f}, {probe[0, 0, 1]:.0f}) input px gets weight "
        f"{float(probe_enc.weights[0, 0]):.0f} and decodes to ({probe_xy[0]:.1f}, {probe_xy[1]:.1f}); "
        f"clamped, it is at ({float(clamp_to_grid(probe, input_size, heatmap_size)[0, 0, 0]):.1f}, "
        f"{float(clamp_to_grid(probe, input_size, heatmap_size)[0, 0, 1]):.1f})"
    )

    # Unlabelled keypoints are encoded too (at their clamped position), as notebook 10's round trip does:
    # they never enter their own person's OKS, but pycocotools matches each prediction against every person
    # of its image. So the deterministic rows (argmax, RR expectation) score the same predictions as notebook
    # 10's table 10.3; the RR one-sample row draws its own random samples, so its AP differs a little from
    # notebook 10's.
    every = torch.ones_like(vis)
    ideal = {
        k: transform_points(v, inverse)
        for k, v in ideal_predictions(clamped, every, input_size, heatmap_size, g).items()
    }
    out = {"ground truth itself": gt.clone(), **ideal}
    out["rounding only"] = torch.where(off_grid[..., None], gt, ideal["argmax"])
    out["clamping only"] = torch.where(on_grid[..., None], gt, transform_points(clamped, inverse))
    no_clamp = am.decode(am.encode(kp, every).heatmaps, activation="probabilities")[0]  # outside: weight 0
    out["argmax, codec alone (not clamped)"] = transform_points(no_clamp, inverse)
    for name, p in out.items():
        scored = dataset_metrics(ds, list(range(n)), p, gt, vis, torch.ones_like(vis))
        err = torch.linalg.vector_norm(p - gt, dim=-1)
        coco_rows.append(
            {
                "prediction": name,
                "persons": n,
                "error on the grid (orig px)": float(err[on_grid].mean()),
                "in the band": float(err[band].mean()),
                "outside the crop": float(err[outside].mean()),
                "mean OKS": float(metrics.oks(p, gt, vis, area).mean()),
                "AP": scored["ap"],
                "AP50": scored["ap50"],
                "AP75": scored["ap75"],
            }
        )
    scale = torch.linalg.det(matrix[:, :, :2]).abs().sqrt()  # input px per original px, per person
    to_clamped = torch.linalg.vector_norm(clamped - kp, dim=-1)  # input px
    coco_errors = {
        "argmax, on the grid (input px)": (
            torch.linalg.vector_norm(ideal["argmax"] - gt, dim=-1) * scale[:, None]
        )[on_grid],
        "in the band": to_clamped[band],
        "outside the crop": to_clamped[outside],
    }
    display(Markdown(markdown_table(coco_rows)))

# %%
if coco_errors:
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.0))
    on, in_band, out_crop = (v.numpy() for v in coco_errors.values())
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
    bins = np.logspace(-2, 3, 51)
    axes[1].hist(
        [in_band, out_crop],
        bins=bins,
        stacked=True,
        color=["tab:olive", "tab:purple"],
        label=[f"in the band ({len(in_band)})", f"outside the crop ({len(out_crop)})"],
    )
    axes[1].set_xscale("log")
    axes[1].set_xlabel("distance to the nearest cell centre (input px, log scale)")
    axes[1].set_ylabel("keypoints")
    axes[1].set_title(f"{len(in_band) + len(out_crop)} labelled keypoints off the grid, clamped", fontsize=9)
    axes[1].legend(fontsize=7)
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
        f"* MPII ({am_row['persons']} persons, HRNet's crop approximated: the joints' square x "
        f"{np.median(crop_ratio):.2f}, the median of {np.min(crop_ratio):.2f} to {np.max(crop_ratio):.2f} on the "
        f"five persons with both, x 1.25): the argmax round trip at 64 x 64 costs "
        f"{100 - am_row['PCKh@0.5 (%)']:.2f} points of PCKh@0.5 and **{100 - am_row['PCKh@0.1 (%)']:.2f} points "
        f"of PCKh@0.1** (PCKh@0.1 {am_row['PCKh@0.1 (%)']:.2f} %, mean error {am_row['mean error (orig px)']:.2f} "
        f"original px). That number rests on the five-person estimate of the crop ratio: at the smallest ratio "
        f"({ratio_cost['smallest'][0]:.3f}) the same round trip costs {ratio_cost['smallest'][1]:.2f} points, at "
        f"the largest ({ratio_cost['largest'][0]:.3f}) {ratio_cost['largest'][1]:.2f}. No labelled joint falls "
        f"off the grid under this crop ({n_clamped} clamped). The randomized-rounding expectation costs {100 - ex_row['PCKh@0.1 (%)']:.2f} points at "
        "0.1. Notebook 10 prices the same crop on every person (its line 'MPII 256, argmax at stride 4 ... on "
        "all 2958 instances'), so the two notebooks print one number for this quantity. For scale, DarkPose's "
        "README (github.com/ilovepose/DarkPose, README.md at commit 101e98db, table 'Results on MPII val', "
        f"input 256 x 256) reports HRNet-W32 at PCKh@0.1 37.7 without DARK and 42.0 with it: that network loses "
        f"{100 - 37.7:.1f} points at 0.1, against the {100 - am_row['PCKh@0.1 (%)']:.2f} that rounding costs a "
        "perfect one; how the two errors combine is the subject of notebook 10."
    )
if coco_rows:
    by = {r["prediction"]: r for r in coco_rows}
    ceiling, alone = by["ground truth itself"], by["argmax, codec alone (not clamped)"]
    lost = lambda name: 100 * (ceiling["AP"] - by[name]["AP"])  # noqa: E731
    n_off, n_out = int(off_grid.sum()), int(outside.sum())
    lines.append(
        f"* COCO ({ceiling['persons']} persons): the ground truth scores AP {ceiling['AP']:.4f}. "
        f"{n_off} labelled keypoints ({100 * n_off / int(labelled.sum()):.2f} %) lie off the grid: {n_out} "
        f"outside the crop, {n_off - n_out} in its outer half-cell band. Clamped onto the grid they move by "
        f"{float(torch.cat([coco_errors['in the band'], coco_errors['outside the crop']]).mean()):.1f} input px "
        f"on average; left to the codec, the ones outside the crop decode at the crop's middle instead (mean "
        f"error {alone['outside the crop']:.1f} original px against {by['argmax']['outside the crop']:.1f} "
        f"clamped), and the argmax AP drops from {100 * by['argmax']['AP']:.2f} to {100 * alone['AP']:.2f}. "
        f"With clamping, the argmax round trip at 48 x 64 loses {lost('argmax'):.2f} AP points, the exact "
        f"randomized-rounding expectation {lost('RR expectation'):.2f}, one randomized-rounding sample "
        f"{lost('RR one sample'):.2f}. Taken apart, rounding alone (off-grid keypoints left exact) costs "
        f"{lost('rounding only'):.2f} points and clamping alone {lost('clamping only'):.2f}: the larger part is "
        f"{'the clamping, which no heatmap avoids' if lost('clamping only') > lost('rounding only') else 'rounding'}. "
        f"The two do not add ({lost('rounding only') + lost('clamping only'):.2f} for the sum): what a "
        f"sub-cell codec gives back here, argmax against the expectation, is "
        f"{lost('argmax') - lost('RR expectation'):.2f} of the {lost('argmax'):.2f} points. The clamping is "
        "notebook 10's, so the argmax AP is its 'COCO 256x192, stride 4, argmax' entry of table 10.3."
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
#    and 16), clamping the keypoints onto each grid first as section 7.4 does. How many AP points does vanilla
#    rounding lose, and how many does the randomized-rounding expectation lose?
# 3. **OKS per keypoint type.** Using `metrics.COCO_SIGMAS`, which keypoint's OKS suffers most from a
#    fixed error of 2 px for a person of area 96²? Why?
# 4. **Flip test.** Repeat the flip check of section 7.2 for COCO crops (192 x 256 input, 48 x 64 maps) with a
#    randomized-rounding codec built with `convention="pixel_center"` and with `convention="msra"`: decode
#    the maps of the persons and the mirrored-back maps of their mirror images. By how many input pixels do
#    they disagree under each convention, and how does that follow from `u = (x + 1/2)/s - 1/2` and `u = x/s`?
# 5. **Real training.** With MPII at `DATA_ROOT`, which keys of `trainers/configs/mpii.yaml` would you change
#    to train the paper's stride-8 or stride-16 setting?
