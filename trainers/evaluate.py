"""Prediction and evaluation: network outputs -> decoded keypoints -> ORIGINAL pixels -> the dataset's metrics.

* :func:`predict` ``(model, codec, images) -> (coords, scores)`` in input pixels, with an optional exact
  flip test;
* :func:`evaluate` ``(model, codec, dataset, settings) -> dict``: every sample predicted, mapped back
  through the inverse of its affine ``matrix``, and scored by the metric family of the dataset's
  :class:`~trainers.data.specs.DatasetSpec` (:func:`dataset_metrics`); an optional sub-pixel translation
  of the inputs (``shift``) is how the resolution sweep probes sub-pixel behaviour;
* :func:`evaluate_checkpoint`: ``h3r-eval``, a saved model on the config's eval split.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from h3r_theory import conventions, metrics
from h3r_theory.codecs import HeatmapCodec

from . import distributed as dist_utils
from .build import build_codec, build_datasets, build_network, check_evaluation, report_skips
from .checkpoint import load_weights
from .config import Config, EvalConfig
from .data import transforms
from .data.specs import spec_of
from .distributed import DistInfo
from .runtime import amp_dtype, autocast, batches


def to_maps(output: Tensor, codec: HeatmapCodec) -> tuple[Tensor, str]:
    """Network output -> (heatmaps (B, K, h, w), activation for ``codec.decode``).

    A binary head (B, K, 2, h, w) trained with per-cell BCE gives probabilities ``sigmoid(channel 1)``.
    """
    if output.dim() == 5:
        return torch.sigmoid(output[:, :, 1].float()), "probabilities"
    return output.float(), codec.default_activation


def _eval_settings(settings: EvalConfig | None, overrides: dict) -> EvalConfig:
    """``settings`` (default: ``EvalConfig()``) with single fields replaced; ``decode_options`` is ``decode``."""
    if "decode_options" in overrides:
        overrides["decode"] = overrides.pop("decode_options") or {}
    unknown = set(overrides) - {f.name for f in dataclasses.fields(EvalConfig)}
    if unknown:
        raise TypeError(f"evaluate() got unknown settings {sorted(unknown)}; EvalConfig fields only")
    return dataclasses.replace(settings or EvalConfig(), **overrides)


def translate_images(images: Tensor, shift: Sequence[float]) -> Tensor:
    """Move image content by ``shift = (dx, dy)`` input pixels (sub-pixel, bilinear, border padding).

    Under the pixel-centre convention output pixel ``x`` samples the input at ``x - dx``; with
    ``align_corners=False`` that is a translation of ``-2 dx / W`` in normalised coordinates.
    """
    dx, dy = float(shift[0]), float(shift[1])
    if dx == 0.0 and dy == 0.0:
        return images
    B, _, H, W = images.shape
    theta = images.new_zeros(B, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = -2.0 * dx / W
    theta[:, 1, 2] = -2.0 * dy / H
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


@torch.no_grad()
def predict(
    model: nn.Module,
    codec: HeatmapCodec,
    images: Tensor,
    flip_pairs: Sequence[tuple[int, int]] | None = None,
    flip_test: bool = False,
    decode_options: dict | None = None,
    amp: torch.dtype | None = None,
) -> tuple[Tensor, Tensor]:
    """Keypoints (B, K, 2) in INPUT pixels and scores (B, K) for images (B, 3, H, W) on the model's device.

    Flip test: run the mirrored images too, mirror their maps back with
    :func:`h3r_theory.conventions.flip_heatmaps` (left/right channels swapped by ``flip_pairs``) and
    average with the direct maps before decoding. Under the pixel-centre (and udp) convention the mirrored
    map lies exactly on the direct one, so no one-cell shift is applied; under ``msra`` it would be off by
    ``(s - 1) / s`` cells, which is refused rather than silently biased.

    The scores are ``score="mass"`` (see :meth:`~h3r_theory.codecs.HeatmapCodec.decode`) unless
    ``decode_options`` names another: they rank the predictions of different images.
    """
    model.eval()
    with autocast(images.device, amp):
        maps, activation = to_maps(model(images), codec)
    if flip_test:
        offset = conventions.heatmap_flip_offset(codec.input_size, codec.heatmap_size, codec.convention)
        if offset != 0.0:
            raise ValueError(
                f"flip test is exact only under the pixel_center/udp conventions; codec convention "
                f"{codec.convention!r} puts the flipped heatmap {offset:.3f} cells off"
            )
        with autocast(images.device, amp):
            flipped, _ = to_maps(model(torch.flip(images, dims=(-1,))), codec)
        maps = 0.5 * (maps + conventions.flip_heatmaps(flipped, flip_pairs or ()))
    # The scores rank predictions (COCO AP sorts persons by them): the softmax mass, unless told otherwise.
    return codec.decode(maps, activation=activation, **{"score": "mass", **(decode_options or {})})


@torch.no_grad()
def evaluate(
    model: nn.Module,
    codec: HeatmapCodec,
    dataset,
    settings: EvalConfig | None = None,
    *,
    device: torch.device | None = None,
    shift: Sequence[float] = (0.0, 0.0),
    amp: torch.dtype | None = None,
    channels_last: bool = False,
    num_workers: int = 0,
    info: DistInfo | None = None,
    out_dir: Path | None = None,
    return_predictions: bool = False,
    **overrides,
) -> dict:
    """Metrics of ``model`` on ``dataset`` (every process gets the same dict under DDP).

    Predictions are decoded in input pixels, then mapped back to ORIGINAL image pixels through the inverse
    of each sample's ``matrix``. Always reported: ``mean_error_px`` (input pixels, over labelled keypoints),
    ``mean_error_orig_px`` (original pixels) and ``num_samples``; then per dataset (see
    :func:`dataset_metrics`): faces NME / FR / AUC, MPII PCKh, COCO AP through a results JSON.

    ``shift = (dx, dy)`` translates every input image by a sub-pixel amount (and its keypoints and matrix
    with it) before prediction: the probe of sub-pixel accuracy the resolution sweep uses.

    ``settings`` is the run's :class:`~trainers.config.EvalConfig` (batch size, flip test, decoder options,
    sample limit, metric thresholds); keyword ``overrides`` replace single fields of it (``batch_size=8``,
    ``flip_test=True``, ``decode_options={...}`` for its ``decode`` field, ...).
    With ``return_predictions`` the dict also holds ``"predictions"``: arrays ``pred`` / ``gt`` (N, K, 2)
    in original pixels, ``pred_input`` / ``gt_input`` in input pixels, ``visible``, ``scores`` and ``index``.
    """
    e = _eval_settings(settings, overrides)
    batch_size, max_samples = e.batch_size, e.max_samples
    info = info or DistInfo()
    device = device or next(model.parameters()).device
    n = len(dataset) if max_samples is None else min(len(dataset), int(max_samples))
    if n == 0:
        raise ValueError("cannot evaluate on an empty dataset")
    mine = dist_utils.eval_shard(n, info)
    flip_pairs = list(getattr(dataset, "flip_pairs", []) or [])
    shift_t = torch.tensor([float(shift[0]), float(shift[1])])
    parts = []
    index_lists = [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]
    for batch in batches(dataset, index_lists, num_workers, seed=0):
        images = batch["image"].to(device, non_blocking=device.type == "cuda")
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        images = translate_images(images, shift)
        coords, scores = predict(model, codec, images, flip_pairs, e.flip_test, e.decode, amp)
        keypoints = batch["keypoints"].to(torch.float64) + shift_t.to(torch.float64)
        matrix = torch.as_tensor(batch["matrix"], dtype=torch.float64).clone()
        matrix[:, :, 2] += shift_t.to(torch.float64)  # the translation is part of the original -> input map
        parts.append(
            {
                "pred_input": coords.detach().to("cpu", torch.float64),
                "gt_input": keypoints,
                "visible": torch.as_tensor(batch["visible"]).to(torch.float64),
                "scores": scores.detach().to("cpu", torch.float64),
                "matrix": matrix,
                "index": torch.as_tensor(batch["index"]).long(),
            }
        )
    local = {k: torch.cat([p[k] for p in parts]) for k in parts[0]} if parts else None
    gathered = [g for g in dist_utils.gather_objects(local, info) if g is not None]
    allp = {k: torch.cat([g[k] for g in gathered]) for k in gathered[0]}
    order = torch.argsort(allp["index"])  # rank order -> dataset order, for stable outputs
    allp = {k: v[order] for k, v in allp.items()}

    inverse = transforms.invert(allp["matrix"])
    pred = transforms.transform_points(allp["pred_input"], inverse)
    gt = transforms.transform_points(allp["gt_input"], inverse)
    vis = allp["visible"]
    labelled = vis > 0
    if not labelled.any():
        raise ValueError("no labelled keypoint among the evaluated samples: nothing to measure")
    err_in = torch.linalg.vector_norm(allp["pred_input"] - allp["gt_input"], dim=-1)
    err_orig = torch.linalg.vector_norm(pred - gt, dim=-1)
    result: dict[str, Any] = {
        "num_samples": int(len(allp["index"])),
        "num_keypoints": int(labelled.sum()),
        "mean_error_px": float(err_in[labelled].mean()),
        "mean_error_orig_px": float(err_orig[labelled].mean()),
    }
    result.update(
        dataset_metrics(
            dataset,
            allp["index"].tolist(),
            pred,
            gt,
            vis,
            allp["scores"],
            failure_threshold=e.failure_threshold,
            pckh_threshold=e.pckh_threshold,
            out_dir=out_dir if info.is_main else None,
        )
    )
    if return_predictions:
        result["predictions"] = {
            "pred": pred.numpy(),
            "gt": gt.numpy(),
            "pred_input": allp["pred_input"].numpy(),
            "gt_input": allp["gt_input"].numpy(),
            "visible": vis.numpy(),
            "scores": allp["scores"].numpy(),
            "index": allp["index"].numpy(),
        }
    return result


def _record_field(record: Any, name: str) -> Any:
    """``record.name``, ``record.extras[name]`` or ``record[name]`` (records are dataclasses or dicts)."""
    if isinstance(record, dict):
        return record.get(name, (record.get("extras") or {}).get(name))
    if hasattr(record, name):
        return getattr(record, name)
    return (getattr(record, "extras", None) or {}).get(name)


def dataset_metrics(
    dataset,
    indices: list,
    pred: Tensor,
    gt: Tensor,
    visible: Tensor,
    scores: Tensor,
    *,
    failure_threshold: float = 0.1,
    pckh_threshold: float = 0.5,
    out_dir: Path | None = None,
) -> dict:
    """The dataset's own metrics from predictions and ground truth in ORIGINAL pixels (N, K, 2).

    The metric family is the dataset's :class:`~trainers.data.specs.DatasetSpec` ``metric``:

    * ``"nme"`` (faces and the synthetic set): ``nme``, ``fr@t``, ``auc@t`` with ``dataset.normalizer(i)``;
    * ``"pckh"`` (MPII): ``pckh`` (mean PCKh@t in percent) with ``dataset.normalizer(i)`` = the head size
      (0.6 x head-box diagonal, original pixels);
    * ``"ap"`` (COCO): ``ap`` and the other COCOeval stats, from a results JSON written to ``out_dir`` (or a
      temporary folder) against ``dataset.annotation_file``; instance score = mean keypoint score.

    A dataset without a spec (a test stub) gets no dataset metric: ``{}``.
    """
    spec = spec_of(dataset)
    kind = spec.metric if spec is not None else None
    if kind == "nme":
        norms = torch.tensor([float(dataset.normalizer(i)) for i in indices], dtype=torch.float64)
        has_kp = (visible > 0).any(-1)
        skipped = int((~has_kp).sum())  # an image with no labelled point has no NME: counted, not hidden
        out = metrics.face_metrics(
            pred[has_kp], gt[has_kp], norms[has_kp], visible[has_kp], failure_threshold
        )
        out = {k.replace(f"@{failure_threshold:g}", ""): v for k, v in out.items()}
        out.update({"failure_threshold": failure_threshold, "skipped_no_keypoint": skipped})
        return out
    if kind == "pckh":
        norms = torch.tensor([float(dataset.normalizer(i)) for i in indices], dtype=torch.float64)
        correct, valid = metrics.pck_correct(pred, gt, norms, pckh_threshold, visible)
        keep = torch.ones(correct.shape[-1], dtype=torch.bool)
        if correct.shape[-1] == spec.num_keypoints:
            keep[list(spec.excluded_from_mean)] = False
        pck = 100.0 * correct[:, keep].sum() / valid[:, keep].sum().clamp(min=1)
        return {"pckh": float(pck), "pckh_threshold": pckh_threshold}
    if kind == "ap":
        gt_file = getattr(dataset, "annotation_file", None)
        if gt_file is None:
            raise ValueError("COCO evaluation needs dataset.annotation_file (the person_keypoints JSON)")
        image_ids = [int(_record_field(dataset.records[i], "image_id")) for i in indices]
        if out_dir is not None:  # a training run keeps its results file
            return _coco_ap(gt_file, image_ids, pred, scores, Path(out_dir))
        with tempfile.TemporaryDirectory(prefix="h3r_coco_") as folder:  # nothing left behind
            return _coco_ap(gt_file, image_ids, pred, scores, Path(folder))
    return {}


def _coco_ap(gt_file, image_ids: list, pred: Tensor, scores: Tensor, folder: Path) -> dict:
    """COCO AP through ``folder/coco_results.json``; pred (N, K, 2), scores (N, K)."""
    folder.mkdir(parents=True, exist_ok=True)
    results = metrics.write_coco_results(
        folder / "coco_results.json", image_ids, pred, scores.mean(-1), keypoint_scores=scores
    )
    stats = metrics.coco_keypoint_ap(gt_file, results, image_ids=sorted(set(image_ids)))
    return {"ap": stats["AP"], **{k.lower(): v for k, v in stats.items() if k != "AP"}}


def evaluate_checkpoint(
    config: Config, checkpoint_path: Path, *, shift: Sequence[float] = (0.0, 0.0)
) -> dict:
    """``h3r-eval``: build the model of ``config``, load ``checkpoint_path`` and evaluate on the eval split."""
    info = dist_utils.setup("cuda" if torch.cuda.is_available() and config.train.device != "cpu" else "cpu")
    device = dist_utils.local_device(config.train.device, info)
    (eval_set,) = build_datasets(config, ["eval"])
    report_skips("h3r-eval", [eval_set])
    codec = build_codec(config, eval_set.input_size)
    check_evaluation(config, codec, eval_set.num_keypoints)  # a bad eval.decode fails before any work
    torch.manual_seed(config.train.seed)
    model = build_network(config, eval_set.num_keypoints)
    load_weights(model, Path(checkpoint_path), config)  # refuses another stride, codec or convention
    model.to(device)
    return evaluate(
        model,
        codec,
        eval_set,
        config.eval,
        device=device,
        shift=shift,
        amp=amp_dtype(device, config.train.amp),
        num_workers=config.data.num_workers,
        info=info,
        out_dir=None,  # h3r-eval writes only its --output: COCO results go to a temporary folder
    )


def summary(result: dict) -> str:
    """A one-line human summary of an evaluation dict (the numbers it holds, rounded)."""
    keys = [k for k in ("mean_error_px", "nme", "fr", "auc", "pckh", "ap") if k in result]
    return ", ".join(f"{k}={result[k]:.4g}" for k in keys) + f" ({result.get('num_samples', 0)} samples)"
