"""Landmark metrics: NME with its normalisers, FR@t and AUC@t, PCKh on MPII, OKS and COCO keypoint AP.

All functions are batched over images and accept torch tensors or numpy arrays (numpy is converted with
its dtype kept; results are torch tensors on the input's device and in its floating dtype). Coordinates
are ``x`` then ``y`` in pixels; ``pred`` and ``gt`` must be in the SAME pixel convention and the same
image frame (metrics are reported in ORIGINAL image pixels, so map predictions back through the inverse
of the dataset's affine ``matrix`` first). A constant offset between conventions (e.g. MATLAB's 1-based
MPII ground truth against 0-based predictions) does NOT cancel: add it before calling.

Units at a glance:

==========================  =====================================================================
``nme``                     fraction of the normaliser (multiply by 100 for the usual "NME (%)")
``failure_rate``            fraction of images in [0, 1]
``auc``                     fraction in [0, 1] (area under the CED curve divided by the threshold)
``pckh`` / ``pckh_table``   percent in [0, 100], as MPII tables are printed
``oks``                     similarity in [0, 1]
``coco_keypoint_ap``        fractions in [0, 1], exactly what pycocotools' ``COCOeval.stats`` holds
==========================  =====================================================================
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

ArrayLike = Tensor | np.ndarray

# --------------------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------------------


def _as_tensor(value: ArrayLike, name: str, like: Tensor | None = None) -> Tensor:
    """Convert numpy to torch keeping the dtype; cast to ``like``'s dtype when given (not bool masks).

    Host data (numpy, lists, numbers) is moved to ``like``'s device; a tensor on another device than
    ``like`` is an error rather than a silent copy.
    """
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
        value = value.to(like.device) if like is not None else value
    elif isinstance(value, (list, tuple, float, int)):
        value = torch.as_tensor(
            value,
            dtype=like.dtype if like is not None else torch.float64,
            device=like.device if like is not None else None,
        )
    if not isinstance(value, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")
    if like is not None:
        if value.device != like.device:
            raise ValueError(f"{name} is on {value.device} but the keypoints are on {like.device}")
        if value.dtype != torch.bool:
            value = value.to(like.dtype)
    return value


def _points(value: ArrayLike, name: str) -> Tensor:
    """Check a floating (..., K, 2) coordinate array."""
    value = _as_tensor(value, name)
    if value.dim() < 2 or value.shape[-1] != 2:
        raise ValueError(f"{name} must have shape (..., K, 2) (x then y), got {tuple(value.shape)}")
    if not value.is_floating_point():
        raise ValueError(f"{name} must be float32 or float64, got {value.dtype}")
    return value


def _pair(pred: ArrayLike, gt: ArrayLike) -> tuple[Tensor, Tensor]:
    pred, gt = _points(pred, "pred"), _points(gt, "gt")
    if pred.shape != gt.shape:
        raise ValueError(
            f"pred and gt must have the same shape, got {tuple(pred.shape)} and {tuple(gt.shape)}"
        )
    if pred.device != gt.device:
        raise ValueError(f"pred is on {pred.device} but gt is on {gt.device}")
    if pred.dtype != gt.dtype:
        raise ValueError(f"pred and gt must share a dtype, got {pred.dtype} and {gt.dtype}")
    return pred, gt


def _visible(visible: ArrayLike | None, gt: Tensor) -> Tensor:
    """Visibility as a bool mask (..., K); None means every keypoint counts. COCO's 1 and 2 both count."""
    if visible is None:
        return torch.ones(gt.shape[:-1], dtype=torch.bool, device=gt.device)
    visible = _as_tensor(visible, "visible")
    if tuple(visible.shape) != tuple(gt.shape[:-1]):
        raise ValueError(
            f"visible must have shape {tuple(gt.shape[:-1])} (one flag per keypoint), "
            f"got {tuple(visible.shape)}"
        )
    return visible.to(gt.device) > 0


def _check_finite(points: Tensor, mask: Tensor, name: str) -> None:
    bad = ~torch.isfinite(points).all(dim=-1) & mask
    if bad.any():
        index = tuple(int(i) for i in bad.nonzero()[0].tolist())
        raise ValueError(
            f"{name} has a non-finite value at (image, keypoint) = {index}: {points[index].tolist()}"
        )


def _distances(pred: Tensor, gt: Tensor, mask: Tensor) -> Tensor:
    """Euclidean distances (..., K); entries outside ``mask`` are 0 so NaN placeholders never leak."""
    _check_finite(pred, mask, "pred")
    _check_finite(gt, mask, "gt")
    diff = torch.where(mask[..., None], pred - gt, torch.zeros_like(pred))
    return torch.linalg.vector_norm(diff, dim=-1)


# --------------------------------------------------------------------------------------------------------
# Face alignment: normalisers, NME, failure rate, AUC
# --------------------------------------------------------------------------------------------------------

# 0-based keypoint pairs whose distance normalises the NME ("inter-ocular": the outer eye corners), as used
# by HRNet-Facial (Wang et al., TPAMI 2020) and most papers since: WFLW 98 points 60/72, 300W 68 points
# 36/45, COFW 29 points 8/9 (the benchmark's inter-ocular pair). The 68-point COFW re-annotation uses
# the 300W indices. AFLW has no eye pair in common use: it is normalised by the face box size.
INTEROCULAR_INDICES: dict[str, tuple[int, int]] = {
    "wflw": (60, 72),
    "300w": (36, 45),
    "cofw": (8, 9),
    "cofw68": (36, 45),
}
NUM_FACE_KEYPOINTS: dict[str, int] = {"wflw": 98, "300w": 68, "cofw": 29, "cofw68": 68, "aflw": 19}


def normalizer(
    keypoints: ArrayLike,
    dataset: str | tuple[int, int],
    box_size: ArrayLike | None = None,
) -> Tensor:
    """NME normaliser per image, in the units of ``keypoints`` (pixels).

    Args:
        keypoints: (B, K, 2) ground-truth keypoints.
        dataset: ``"wflw"``, ``"300w"``, ``"cofw"``, ``"cofw68"`` (inter-ocular distance between the
            outer eye corners, see :data:`INTEROCULAR_INDICES`), ``"aflw"`` (the face box size, which
            must be given as ``box_size``), or an explicit pair ``(i, j)`` of 0-based keypoint indices.
        box_size: (B,) box sizes for ``"aflw"`` (the ``box_size`` field of the AFLW annotations, i.e.
            HRNet's ``scale * 200``); ignored otherwise.

    Returns:
        (B,) normalisers, same dtype and device as ``keypoints``.
    """
    keypoints = _points(keypoints, "keypoints")
    if keypoints.dim() != 3:
        raise ValueError(f"keypoints must have shape (B, K, 2), got {tuple(keypoints.shape)}")
    K = keypoints.shape[1]
    if isinstance(dataset, str):
        name = dataset.lower()
        if name in NUM_FACE_KEYPOINTS and NUM_FACE_KEYPOINTS[name] != K:
            raise ValueError(
                f"dataset {dataset!r} has {NUM_FACE_KEYPOINTS[name]} keypoints, but keypoints has K = {K}"
            )
        if name == "aflw":
            if box_size is None:
                raise ValueError("the AFLW normaliser is the face box size: pass box_size (B,)")
            size = _as_tensor(box_size, "box_size", like=keypoints).reshape(-1)
            if size.shape[0] != keypoints.shape[0]:
                raise ValueError(f"box_size must have shape ({keypoints.shape[0]},), got {tuple(size.shape)}")
            return size
        if name not in INTEROCULAR_INDICES:
            raise ValueError(
                f"dataset must be one of {sorted(NUM_FACE_KEYPOINTS)} or an (i, j) pair, got {dataset!r}"
            )
        i, j = INTEROCULAR_INDICES[name]
    else:
        try:
            i, j = (int(v) for v in dataset)
        except (TypeError, ValueError):
            raise ValueError(f"dataset must be a name or an (i, j) index pair, got {dataset!r}") from None
        if not (0 <= i < K and 0 <= j < K):
            raise ValueError(f"normaliser indices {(i, j)} are out of range for K = {K} keypoints")
    return torch.linalg.vector_norm(keypoints[:, i] - keypoints[:, j], dim=-1)


def nme_per_image(
    pred: ArrayLike, gt: ArrayLike, normalizer: ArrayLike, visible: ArrayLike | None = None
) -> Tensor:
    """Normalised mean error of each image: mean over its valid keypoints of ``||pred - gt|| / norm``.

    Args:
        pred, gt: (B, K, 2) keypoints in the same pixel frame.
        normalizer: (B,) per-image normaliser (:func:`normalizer`), or a scalar.
        visible: (B, K) flags, > 0 = counts (COFW occluded points are labelled: keep them unless the
            protocol says otherwise); None = all keypoints count.

    Returns:
        (B,) NME as a fraction of the normaliser; NaN for an image with no valid keypoint.
    """
    pred, gt = _pair(pred, gt)
    if gt.dim() != 3:
        raise ValueError(f"pred and gt must have shape (B, K, 2), got {tuple(gt.shape)}")
    mask = _visible(visible, gt)
    norm = _as_tensor(normalizer, "normalizer", like=gt)
    norm = norm.expand(gt.shape[0]) if norm.dim() == 0 else norm
    if tuple(norm.shape) != (gt.shape[0],):
        raise ValueError(
            f"normalizer must have shape ({gt.shape[0]},) or be a scalar, got {tuple(norm.shape)}"
        )
    if not (torch.isfinite(norm) & (norm > 0)).all():
        b = int((~(torch.isfinite(norm) & (norm > 0))).nonzero()[0])
        raise ValueError(f"normalizer must be finite and > 0; image {b} has {float(norm[b])}")
    dist = _distances(pred, gt, mask)
    count = mask.sum(dim=-1)
    # 0/0 -> NaN on purpose: an image with nothing to measure must not look like a perfect prediction.
    return dist.sum(dim=-1) / count.to(gt.dtype) / norm


def nme(pred: ArrayLike, gt: ArrayLike, normalizer: ArrayLike, visible: ArrayLike | None = None) -> Tensor:
    """Dataset NME: :func:`nme_per_image`, then the mean over images (a 0-dim tensor, a fraction).

    Raises ``ValueError`` naming the first image that has no valid keypoint rather than dropping it.
    """
    per_image = nme_per_image(pred, gt, normalizer, visible)
    empty = torch.isnan(per_image)
    if empty.any():
        raise ValueError(
            f"image {int(empty.nonzero()[0])} has no visible keypoint, so no NME "
            f"({int(empty.sum())} such images); drop them explicitly before calling nme"
        )
    return per_image.mean()


def failure_rate(errors: ArrayLike, threshold: float = 0.1) -> Tensor:
    """FR@threshold: the fraction of images whose error (e.g. per-image NME) is strictly above it."""
    errors = _errors(errors)
    return (errors > threshold).to(errors.dtype).mean()


def auc(errors: ArrayLike, threshold: float = 0.1) -> Tensor:
    """AUC@threshold of the cumulative error distribution (CED), normalised to [0, 1].

    Integration rule: the CED ``F(e) = #{i : e_i <= e} / N`` is a step function, and its EXACT integral
    over ``[0, t]`` is ``(1/N) sum_i max(0, t - e_i)``; dividing by ``t`` gives
    ``mean_i clip(1 - e_i / t, 0, 1)``. The trapezoid rule on a fine threshold grid, as many evaluation
    scripts do it, converges to this value as the grid step goes to 0 (the error is at most one step / t).
    """
    errors = _errors(errors)
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    return (1.0 - errors / threshold).clamp(0.0, 1.0).mean()


def ced(errors: ArrayLike, thresholds: ArrayLike) -> Tensor:
    """The CED curve: for each threshold (T,), the fraction of images with error <= it."""
    errors = _errors(errors)
    thresholds = _as_tensor(thresholds, "thresholds", like=errors).reshape(-1)
    return (errors[None, :] <= thresholds[:, None]).to(errors.dtype).mean(dim=1)


def _errors(errors: ArrayLike) -> Tensor:
    errors = _as_tensor(errors, "errors")
    if errors.dim() != 1 or errors.numel() == 0 or not errors.is_floating_point():
        raise ValueError(
            f"errors must be a non-empty float vector (N,), got {tuple(errors.shape)} {errors.dtype}"
        )
    if torch.isnan(errors).any():
        raise ValueError(f"errors has NaN at image {int(torch.isnan(errors).nonzero()[0])}")
    return errors


def face_metrics(
    pred: ArrayLike,
    gt: ArrayLike,
    normalizer: ArrayLike,
    visible: ArrayLike | None = None,
    threshold: float = 0.1,
) -> dict[str, float]:
    """NME, FR@threshold and AUC@threshold in one call, as Python floats (fractions, not percent)."""
    per_image = nme_per_image(pred, gt, normalizer, visible)
    mean = nme(pred, gt, normalizer, visible)
    return {
        "nme": float(mean),
        f"fr@{threshold:g}": float(failure_rate(per_image, threshold)),
        f"auc@{threshold:g}": float(auc(per_image, threshold)),
    }


# --------------------------------------------------------------------------------------------------------
# MPII: PCKh
# --------------------------------------------------------------------------------------------------------

MPII_JOINTS: tuple[str, ...] = (
    "r_ankle",
    "r_knee",
    "r_hip",
    "l_hip",
    "l_knee",
    "l_ankle",
    "pelvis",
    "thorax",
    "upper_neck",
    "head_top",
    "r_wrist",
    "r_elbow",
    "r_shoulder",
    "l_shoulder",
    "l_elbow",
    "l_wrist",
)
# The MPII head size is 0.6 times the diagonal of the annotated head box (the "SC_BIAS" of the official
# MATLAB evaluation, reproduced by the HRNet / pytorch-pose evaluators).
MPII_HEAD_SIZE_FACTOR = 0.6
# Pelvis and thorax are excluded from the mean: the single-person benchmark centres persons there.
MPII_EXCLUDED_FROM_MEAN: tuple[int, ...] = (6, 7)
# Columns of the usual MPII table; left/right pairs are averaged with equal weight. "Head" is the head top
# joint alone, as in the HRNet and pytorch-pose evaluators (the upper neck enters only the mean).
MPII_TABLE: dict[str, tuple[int, ...]] = {
    "Head": (9,),
    "Shoulder": (12, 13),
    "Elbow": (11, 14),
    "Wrist": (10, 15),
    "Hip": (2, 3),
    "Knee": (1, 4),
    "Ankle": (0, 5),
}


def mpii_head_size(head_boxes: ArrayLike) -> Tensor:
    """Head sizes (B,) from head boxes (B, 2, 2) ``[[x1, y1], [x2, y2]]``: ``0.6 * ||(x2-x1, y2-y1)||``."""
    boxes = _as_tensor(head_boxes, "head_boxes")
    if boxes.dim() != 3 or tuple(boxes.shape[1:]) != (2, 2):
        raise ValueError(
            f"head_boxes must have shape (B, 2, 2) = [[x1, y1], [x2, y2]], got {tuple(boxes.shape)}"
        )
    return MPII_HEAD_SIZE_FACTOR * torch.linalg.vector_norm(boxes[:, 1] - boxes[:, 0], dim=-1)


def pck_correct(
    pred: ArrayLike,
    gt: ArrayLike,
    normalizer: ArrayLike,
    threshold: float,
    visible: ArrayLike | None = None,
) -> tuple[Tensor, Tensor]:
    """Per keypoint: is ``||pred - gt|| / normalizer <= threshold``? Returns (correct, valid), bool (B, K).

    ``correct`` is False wherever ``valid`` is False, so sums over it count only labelled keypoints.
    """
    pred, gt = _pair(pred, gt)
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    mask = _visible(visible, gt)
    norm = _as_tensor(normalizer, "normalizer", like=gt)
    if tuple(norm.shape) != tuple(gt.shape[:-2]):
        raise ValueError(f"normalizer must have shape {tuple(gt.shape[:-2])}, got {tuple(norm.shape)}")
    bad = ~(torch.isfinite(norm) & (norm > 0)) & mask.any(-1)
    if bad.any():
        index = tuple(int(i) for i in bad.nonzero()[0].tolist())
        raise ValueError(f"normalizer must be finite and > 0; image {index} has {float(norm[index])}")
    dist = _distances(pred, gt, mask)
    # Divide, then compare with "<=", exactly as the MPII evaluators do, so that a joint on the threshold
    # is correct and rounding at the boundary matches theirs.
    correct = (dist / norm[..., None] <= threshold) & mask
    return correct, mask


def _mpii_counts(pred, gt, visible, head_boxes, threshold) -> tuple[Tensor, Tensor]:
    """Correct and labelled counts per joint (K,), float64."""
    gt = _points(gt, "gt")
    if gt.dim() != 3 or gt.shape[1] != len(MPII_JOINTS):
        raise ValueError(f"MPII joints must have shape (B, {len(MPII_JOINTS)}, 2), got {tuple(gt.shape)}")
    correct, valid = pck_correct(pred, gt, mpii_head_size(head_boxes).to(gt.dtype), threshold, visible)
    return correct.sum(0).to(torch.float64), valid.sum(0).to(torch.float64)


def pckh(
    pred: ArrayLike,
    gt: ArrayLike,
    visible: ArrayLike,
    head_boxes: ArrayLike,
    threshold: float = 0.5,
) -> Tensor:
    """Per-joint PCKh@threshold in percent (K,): correct / labelled, over the images of the batch.

    Args:
        pred, gt: (B, 16, 2) joints in the same pixel convention (MPII ``.mat`` ground truth is 1-based:
            add 1 to 0-based predictions first). Missing joints may hold anything.
        visible: (B, 16) 1 = annotated (``1 - jnt_missing``), 0 = missing (excluded everywhere).
        head_boxes: (B, 2, 2) head boxes ``[[x1, y1], [x2, y2]]`` (``headboxes_src`` transposed).
        threshold: fraction of the head size; use exactly 0.5 or 0.1.

    Returns:
        (K,) percentages; NaN for a joint that is never labelled.
    """
    hits, counts = _mpii_counts(pred, gt, visible, head_boxes, threshold)
    return 100.0 * hits / counts


def pckh_table(
    pred: ArrayLike,
    gt: ArrayLike,
    visible: ArrayLike,
    head_boxes: ArrayLike,
    threshold: float = 0.5,
) -> dict[str, float]:
    """The MPII table at one threshold: Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle and Mean (percent).

    "Mean" pools all labelled joints except pelvis and thorax (equivalently: the per-joint PCKh averaged
    with weights proportional to each joint's count of labelled instances), as the MPII evaluators do.
    Also returns ``"count"``: the number of labelled joints entering the mean. A column is NaN only when
    none of its joints is labelled in the batch.
    """
    hits, counts = _mpii_counts(pred, gt, visible, head_boxes, threshold)
    per_joint = 100.0 * hits / counts
    # nanmean: a side never labelled in this batch leaves the column to the other side, not NaN.
    table = {name: float(per_joint[list(joints)].nanmean()) for name, joints in MPII_TABLE.items()}
    keep = torch.ones(len(MPII_JOINTS), dtype=torch.bool)
    keep[list(MPII_EXCLUDED_FROM_MEAN)] = False
    table["Mean"] = float(100.0 * hits[keep].sum() / counts[keep].sum())
    table["count"] = int(counts[keep].sum())
    return table


# --------------------------------------------------------------------------------------------------------
# COCO: OKS and keypoint AP through pycocotools
# --------------------------------------------------------------------------------------------------------

# Per-keypoint standard deviations of the COCO keypoint challenge (nose, eyes, ears, shoulders, elbows,
# wrists, hips, knees, ankles), from the COCO keypoint evaluation (Ruggero Ronchi & Perona, ICCV 2017).
COCO_SIGMAS = (
    np.array(
        [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89]
    )
    / 10.0
)
COCO_STATS: tuple[str, ...] = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def oks(
    pred: ArrayLike,
    gt: ArrayLike,
    visible: ArrayLike,
    area: ArrayLike,
    sigmas: ArrayLike | None = None,
) -> Tensor:
    """Object keypoint similarity, broadcast over leading dims (e.g. (N, 1, K, 2) vs (1, M, K, 2)).

    ``OKS = mean over labelled keypoints of exp(-d^2 / (2 * area * (2 sigma)^2))``: the COCO definition,
    where ``area`` (the ground-truth segment area, pixels^2) plays the role of ``s^2`` and ``k = 2 sigma``.
    As in pycocotools, ``area`` gets ``np.spacing(1)`` added so that a zero area does not divide by 0.

    Args:
        pred, gt: (..., K, 2) keypoints (broadcastable against each other).
        visible: (..., K) ground-truth flags (COCO v), > 0 = labelled; broadcastable against ``gt``.
        area: (...) ground-truth areas.
        sigmas: (K,) per-keypoint sigmas; default :data:`COCO_SIGMAS` (K must then be 17).

    Returns:
        (...) OKS in [0, 1]; NaN where the ground truth has no labelled keypoint (pycocotools then falls
        back to a distance to the box, which needs the box and is not defined by this formula).
    """
    pred, gt = _points(pred, "pred"), _points(gt, "gt")
    pred, gt = torch.broadcast_tensors(pred, gt)
    K = gt.shape[-2]
    sig = _as_tensor(COCO_SIGMAS if sigmas is None else sigmas, "sigmas", like=gt).reshape(-1)
    if sig.shape[0] != K:
        raise ValueError(f"sigmas has {sig.shape[0]} entries but the keypoints have K = {K}")
    mask = torch.broadcast_to(_as_tensor(visible, "visible").to(gt.device) > 0, gt.shape[:-1])
    area = torch.broadcast_to(_as_tensor(area, "area", like=gt), gt.shape[:-2])
    d2 = _distances(pred, gt, mask).square()
    e = d2 / (2.0 * sig.square() * 4.0) / (area[..., None] + np.spacing(1))
    sim = torch.where(mask, torch.exp(-e), torch.zeros_like(e))
    return sim.sum(-1) / mask.sum(-1).to(gt.dtype)


def write_coco_results(
    path: str | Path,
    image_ids: Sequence[int],
    keypoints: ArrayLike,
    scores: ArrayLike,
    category_id: int = 1,
    keypoint_scores: ArrayLike | None = None,
) -> Path:
    """Write detections in the COCO keypoint results format (a JSON list) and return the path.

    Args:
        image_ids: N COCO image ids.
        keypoints: (N, K, 2) predictions in ORIGINAL image pixels, in the convention of the ground-truth
            file, or (N, K, 3) with a per-keypoint score in the last column.
        scores: (N,) instance scores (they rank detections for AP).
        keypoint_scores: optional (N, K) per-keypoint scores for the third column when ``keypoints`` is
            (N, K, 2); default 1. pycocotools ignores this column; other tools may read it.
    """
    kpts = _as_tensor(keypoints, "keypoints").detach().cpu().to(torch.float64)
    if kpts.dim() != 3 or kpts.shape[-1] not in (2, 3):
        raise ValueError(f"keypoints must have shape (N, K, 2) or (N, K, 3), got {tuple(kpts.shape)}")
    N = kpts.shape[0]
    ids = [int(i) for i in image_ids]
    score = _as_tensor(scores, "scores").detach().cpu().to(torch.float64).reshape(-1)
    if len(ids) != N or score.shape[0] != N:
        raise ValueError(
            f"image_ids ({len(ids)}), scores ({score.shape[0]}) and keypoints ({N}) must have the same length"
        )
    if kpts.shape[-1] == 2:
        third = (
            torch.ones(kpts.shape[:2], dtype=torch.float64)
            if keypoint_scores is None
            else _as_tensor(keypoint_scores, "keypoint_scores").detach().cpu().to(torch.float64)
        )
        if tuple(third.shape) != tuple(kpts.shape[:2]):
            raise ValueError(
                f"keypoint_scores must have shape {tuple(kpts.shape[:2])}, got {tuple(third.shape)}"
            )
        kpts = torch.cat([kpts, third[..., None]], dim=-1)
    if not torch.isfinite(kpts).all() or not torch.isfinite(score).all():
        bad = int((~torch.isfinite(kpts).flatten(1).all(1) | ~torch.isfinite(score)).nonzero()[0])
        raise ValueError(f"detection {bad} (image_id {ids[bad]}) has a non-finite keypoint or score")
    results = [
        {
            "image_id": ids[n],
            "category_id": int(category_id),
            "keypoints": kpts[n].reshape(-1).tolist(),
            "score": float(score[n]),
        }
        for n in range(N)
    ]
    path = Path(path)
    # Through a temp file created exclusively and a rename: a kill leaves no half-written file, and a link
    # at ``path`` is replaced instead of written through. (The name follows trainers.run_folder.temp_path,
    # so a run folder's clean-up recognises it.)
    tmp = path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.h3r.tmp"
    with os.fdopen(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644), "w") as f:
        f.write(json.dumps(results))
    os.replace(tmp, path)
    return path


def coco_keypoint_ap(
    gt_json_path: str | Path,
    results_json_path: str | Path,
    image_ids: Sequence[int] | None = None,
    sigmas: ArrayLike | None = None,
) -> dict[str, float]:
    """COCO keypoint AP/AR of a results file against a ground-truth file, through pycocotools' COCOeval.

    Returns ``{"AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"}`` as fractions,
    in the order of ``COCOeval.stats`` (-1 where pycocotools has no ground truth in an area range).
    ``image_ids`` restricts the evaluation (default: every image of the ground truth). pycocotools'
    console output is captured, not printed.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_json_path, results_json_path = Path(gt_json_path), Path(results_json_path)
    for p in (gt_json_path, results_json_path):
        if not p.is_file():
            raise ValueError(f"COCO file not found: {p}")
    try:
        results = json.loads(results_json_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{results_json_path} is not valid JSON: {err}") from None
    if not isinstance(results, list) or not results:
        raise ValueError(f"{results_json_path} must hold a non-empty JSON list of detections")
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_json_path))
    missing = sorted({int(r["image_id"]) for r in results} - set(coco_gt.getImgIds()))
    if missing:
        raise ValueError(
            f"{results_json_path}: {len(missing)} detection image_ids are not in {gt_json_path}, "
            f"e.g. {missing[:5]}"
        )
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        coco_dt = coco_gt.loadRes(results)
        evaluator = COCOeval(coco_gt, coco_dt, "keypoints")
        if sigmas is not None:
            evaluator.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        if image_ids is not None:
            evaluator.params.imgIds = sorted(int(i) for i in image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = [float(s) for s in evaluator.stats]
    if len(stats) != len(COCO_STATS) or any(math.isnan(s) for s in stats):
        raise ValueError(f"unexpected COCOeval stats {stats}; pycocotools said:\n{log.getvalue()}")
    return dict(zip(COCO_STATS, stats, strict=True))
