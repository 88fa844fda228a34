"""Measuring one trained model: every decoder on the held-out faces, re-rendered at sub-pixel shifts."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path

import torch

from h3r_theory import codecs
from h3r_theory.codecs import HeatmapCodec
from h3r_theory.codecs.randomized_rounding import RandomizedRounding, fit_temperature

from .. import checkpoint as ckpt
from .. import sweep_stats
from ..data import transforms
from ..evaluate import dataset_metrics, to_maps, translate_images
from ..runtime import batches
from .config import ModelRun


def quantization_floor(stride: float) -> float:
    """Mean 2-D error of vanilla rounding for a uniformly placed keypoint, in input pixels:
    ``(sqrt(2) + asinh(1)) / 6 x stride`` from the exact derivation in :mod:`h3r_theory.theory`."""
    return sweep_stats.vanilla_floor(stride)


def shift_grid(shifts: Sequence[float]) -> list[tuple[float, float]]:
    """All ``(dx, dy)`` pairs of the per-axis shifts, ``(0, 0)`` first when present."""
    return [(float(dx), float(dy)) for dy in shifts for dx in shifts]


def build_decoders(
    run: ModelRun, train_codec: HeatmapCodec, temperature: float | None = None
) -> dict[str, tuple[HeatmapCodec, dict]]:
    """``{decoder name: (codec, decode options)}`` for the maps of a model trained with ``train_codec``;
    ``temperature`` (fitted on training maps) goes to every ``calibrated`` decoder."""
    out = {}
    for d in run.decoders:
        if d.codec is None or (d.codec == train_codec.name and d.options is None):
            codec = train_codec
        else:
            options = dict(run.options if d.options is None else d.options)
            codec = codecs.build(
                d.codec, input_size=train_codec.input_size, heatmap_size=train_codec.heatmap_size, **options
            )
            if codec.convention != train_codec.convention:
                raise ValueError(
                    f"decoder {d.name!r}: codec {d.codec!r} uses the {codec.convention!r} "
                    f"convention but the model was trained under {train_codec.convention!r}"
                )
        options = dict(d.decode)
        if d.calibrated:
            if temperature is None:
                raise ValueError(f"decoder {d.name!r} is calibrated but no temperature was fitted")
            options["temperature"] = float(temperature)
        out[d.name] = (codec, options)
    return out


def _shifted_batch(dataset, indices: list[int], shift: tuple[float, float], base: dict) -> tuple:
    """Images and labels of ``indices`` moved by ``shift`` px: re-rendered exactly when the dataset can
    (the synthetic set), else ``base``'s images resampled bilinearly with the labels moved by ``shift``."""
    if shift == (0.0, 0.0):
        return base["image"], torch.as_tensor(base["keypoints"])
    if hasattr(dataset, "batch") and "shift" in inspect.signature(dataset.batch).parameters:
        moved = dataset.batch(indices, shift=shift)
        return moved["image"], moved["keypoints"]
    offset = torch.tensor(shift, dtype=torch.float32)
    return translate_images(base["image"], shift), torch.as_tensor(base["keypoints"]) + offset


@torch.no_grad()
def predict_shifted(
    model: torch.nn.Module,
    train_codec: HeatmapCodec,
    decoders: dict[str, tuple[HeatmapCodec, dict]],
    dataset,
    shifts: Sequence[tuple[float, float]],
    *,
    batch_size: int = 64,
    device: torch.device | None = None,
    max_samples: int | None = None,
) -> dict:
    """Predictions of every decoder on the held-out split moved by each shift; one forward per shift.

    Returns ``{"pred": {decoder: (S, N, K, 2)}, "labels": (S, N, K, 2), "gt": (N, K, 2), "visible": (N, K),
    "matrix": (N, 2, 3), "index": (N,)}``, float64 on the CPU, INPUT pixels; ``pred[d][s]`` and
    ``labels[s]`` belong to the faces moved by ``shifts[s]`` (``gt`` = the unmoved labels).
    """
    device = device or next(model.parameters()).device
    model.eval()
    n = len(dataset) if max_samples is None else min(len(dataset), int(max_samples))
    index_lists = [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]
    preds: dict[str, list] = {name: [[] for _ in shifts] for name in decoders}
    labels: list[list] = [[] for _ in shifts]
    gts, vis, mats, idx = [], [], [], []
    for indices, batch in zip(index_lists, batches(dataset, index_lists, num_workers=0, seed=0)):
        for s, shift in enumerate(shifts):
            images, keypoints = _shifted_batch(dataset, indices, shift, batch)
            # The activation is a property of how the network was trained (its training codec's loss, or
            # the binary head's sigmoid), not of the decoder that reads the maps.
            maps, activation = to_maps(model(images.to(device)), train_codec)
            for name, (codec, options) in decoders.items():
                coords, _ = codec.decode(maps, activation=activation, **options)
                preds[name][s].append(coords.to("cpu", torch.float64))
            labels[s].append(keypoints.to(torch.float64))
        gts.append(torch.as_tensor(batch["keypoints"]).to(torch.float64))
        vis.append(torch.as_tensor(batch["visible"]).to(torch.float64))
        mats.append(torch.as_tensor(batch["matrix"]).to(torch.float64))
        idx.append(torch.as_tensor(batch["index"]).long())
    return {
        "pred": {name: torch.stack([torch.cat(p) for p in per_shift]) for name, per_shift in preds.items()},
        "labels": torch.stack([torch.cat(x) for x in labels]),
        "gt": torch.cat(gts),
        "visible": torch.cat(vis),
        "matrix": torch.cat(mats),
        "index": torch.cat(idx),
    }


def jitter_sd(errors: torch.Tensor, visible: torch.Tensor) -> float:
    """Mean over labelled keypoints of the sd of the 2-D error vector across shifts.

    ``errors`` (S, N, K, 2): prediction minus (shifted) label per shift; ``visible`` (N, K). The sd of a
    vector is ``sqrt(var(ex) + var(ey))`` with the population variance over the S shifts (S = 1 -> 0).
    """
    if errors.shape[0] < 2:
        return 0.0
    var = errors.var(dim=0, unbiased=False).sum(-1)  # (N, K)
    labelled = visible > 0
    return float(var.sqrt()[labelled].mean())


@torch.no_grad()
def predict_noise_draws(
    model: torch.nn.Module,
    train_codec: HeatmapCodec,
    decoders: dict[str, tuple[HeatmapCodec, dict]],
    dataset,
    draws: int,
    *,
    batch_size: int = 64,
    device: torch.device | None = None,
    max_samples: int | None = None,
) -> dict[str, torch.Tensor]:
    """Every decoder's predictions (draws, N, K, 2) px on the held-out faces re-rendered with fresh pixel
    noise (:func:`trainers.studies.budget.noise_draws`, seeded by the set's seed): the same scenes, other
    noise, for the noise-induced variance of the error budget."""
    from ..studies.budget import noise_draws

    device = device or next(model.parameters()).device
    model.eval()
    n = len(dataset) if max_samples is None else min(len(dataset), int(max_samples))
    preds: dict[str, list] = {name: [[] for _ in range(draws)] for name in decoders}
    for start in range(0, n, batch_size):
        indices = list(range(start, min(start + batch_size, n)))
        for r, images in enumerate(noise_draws(dataset, indices, draws, seed=getattr(dataset, "seed", 0))):
            maps, activation = to_maps(model(images.to(device)), train_codec)
            for name, (codec, options) in decoders.items():
                preds[name][r].append(
                    codec.decode(maps, activation=activation, **options)[0].to("cpu", torch.float64)
                )
    return {name: torch.stack([torch.cat(p) for p in per_draw]) for name, per_draw in preds.items()}


def can_draw_noise(dataset) -> bool:
    """True for a synthetic set with Gaussian pixel noise (whose scenes can be re-rendered with fresh noise)."""
    return getattr(dataset, "noise_distribution", None) == "gaussian" and hasattr(dataset, "params")


def measure(
    model: torch.nn.Module,
    train_codec: HeatmapCodec,
    decoders: dict[str, tuple[HeatmapCodec, dict]],
    dataset,
    shifts_per_axis: Sequence[float],
    *,
    batch_size: int = 64,
    device: torch.device | None = None,
    max_samples: int | None = None,
    bound: torch.Tensor | None = None,
    motion: Sequence[float] | None = None,
    noise_draws: int = 1,
    bins: int = 8,
) -> dict[str, dict]:
    """Per decoder: ``nme``, ``mean_error_px`` and ``rms_error_px`` on the unmoved split,
    ``mean_error_shifted_px`` (over every shift), ``jitter_sd_px`` (:func:`jitter_sd`), the conditional
    error (:func:`trainers.sweep_stats.conditional_error`, key ``conditional``) and, with ``bound`` (N, K)
    px, ``rms_bound_px`` and ``error_over_bound``. Input pixels except NME, which the dataset defines in
    ORIGINAL pixels (via :func:`trainers.evaluate.dataset_metrics`).

    ``motion``: shifts ``t`` (px, the first 0) along both axes that replace the grid of ``shifts_per_axis``;
    then also ``slope`` and ``wobble_px`` (:func:`trainers.studies.budget.displacement_slope`). With
    ``noise_draws >= 2`` on a set that :func:`can_draw_noise`: the error budget (``budget``, the parts of
    :func:`trainers.studies.budget.error_budget`, over the set's own image and ``noise_draws - 1`` fresh
    draws) and ``budget_closure``, the parts' sum over the MSE of the set's own images."""
    from ..studies import budget as budget_lib

    if motion is not None:
        shifts = [(float(t), float(t)) for t in motion]
        if shifts[0] != (0.0, 0.0):
            raise ValueError(f"motion must start with the unmoved shift 0, got {list(motion)}")
    else:
        shifts = shift_grid(shifts_per_axis)
        if (0.0, 0.0) not in shifts:
            shifts = [(0.0, 0.0)] + shifts  # the unmoved split is always measured
    out = predict_shifted(
        model,
        train_codec,
        decoders,
        dataset,
        shifts,
        batch_size=batch_size,
        device=device,
        max_samples=max_samples,
    )
    gt, vis = out["gt"], out["visible"]
    labelled = vis > 0
    if not labelled.any():
        raise ValueError("no labelled keypoint in the evaluated samples: nothing to measure")
    zero = shifts.index((0.0, 0.0))
    if motion is not None:
        jitter_rows = list(range(len(shifts)))
    else:
        jitter_rows = [i for i, s in enumerate(shifts) if s[0] in shifts_per_axis and s[1] in shifts_per_axis]
    fresh = None
    if noise_draws >= 2 and can_draw_noise(dataset):
        fresh = predict_noise_draws(model, train_codec, decoders, dataset, noise_draws - 1, batch_size=batch_size,
                                    device=device, max_samples=max_samples)  # fmt: skip
    inverse = transforms.invert(out["matrix"])
    results = {}
    for name, pred in out["pred"].items():
        codec = decoders[name][0]
        errors = pred - out["labels"]  # (S, N, K, 2)
        dist = torch.linalg.vector_norm(errors, dim=-1)
        row = {
            "mean_error_px": float(dist[zero][labelled].mean()),
            "rms_error_px": float(dist[zero][labelled].pow(2).mean().sqrt()),
            "mean_error_shifted_px": float(dist[:, labelled].mean()),
            "jitter_sd_px": jitter_sd(errors[jitter_rows], vis),
            "num_samples": int(gt.shape[0]),
            "num_shifts": len(jitter_rows),
            "conditional": sweep_stats.conditional_error(
                pred[zero], gt, vis, codec.input_size, codec.heatmap_size, codec.convention
            ),
        }
        if bound is not None:
            ratio = sweep_stats.bound_ratio(pred[zero], gt, vis, bound[: gt.shape[0]])
            row.update(rms_bound_px=ratio["rms_bound_px"], error_over_bound=ratio["error_over_bound"])
        if motion is not None:
            moved = budget_lib.displacement_slope(pred, [t for t, _ in shifts], vis)
            row.update(slope=moved["slope"], wobble_px=moved["wobble_px"])
        if fresh is not None:
            draws = torch.cat([pred[zero][None], fresh[name]])
            fraction = budget_lib.sub_cell_fraction(gt, codec)
            b = budget_lib.error_budget(
                draws, gt, vis, fraction, bins, None if bound is None else bound[: gt.shape[0]]
            )
            mse = float(dist[zero][labelled].pow(2).mean())
            row.update(budget=b, budget_closure=b["sum_px2"] / mse)
        metrics = dataset_metrics(
            dataset,
            out["index"].tolist(),
            transforms.transform_points(pred[zero], inverse),
            transforms.transform_points(gt, inverse),
            vis,
            torch.ones_like(vis),
        )
        row.update({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        results[name] = row
    return results


@torch.no_grad()
def fitted_temperature(model: torch.nn.Module, codec: HeatmapCodec, train_set, num: int, batch: int = 64):
    """The temperature of :func:`~h3r_theory.codecs.randomized_rounding.fit_temperature` on the maps of
    the first ``num`` TRAINING images (the held-out split never informs a decoder); ``None`` for a model
    whose maps are not logits of a randomized-rounding codec."""
    if not isinstance(codec, RandomizedRounding):
        return None
    device = next(model.parameters()).device
    model.eval()
    n = min(num, len(train_set))
    index_lists = [list(range(i, min(i + batch, n))) for i in range(0, n, batch)]
    maps, keypoints, visible = [], [], []
    for b in batches(train_set, index_lists, num_workers=0, seed=0):
        m, activation = to_maps(model(b["image"].to(device)), codec)
        if activation != "logits":
            return None
        maps.append(m.cpu())
        keypoints.append(torch.as_tensor(b["keypoints"]))
        visible.append(torch.as_tensor(b["visible"]))
    return fit_temperature(torch.cat(maps), torch.cat(keypoints), codec, torch.cat(visible))


def store_temperature(path: Path | None, temperature: float, num: int) -> float:
    """Write the fitted temperature into the run's checkpoint (key ``decode``) and read it back: the
    calibrated decoders use the value stored with the model. Without a checkpoint, returns it as is."""
    if path is None or not Path(path).is_file():
        return float(temperature)
    state = ckpt.load(path)
    state["decode"] = {"temperature": float(temperature), "fitted_on": f"train[:{num}], end of training"}
    if "checksum" in state:  # the checksum covers every entry (trainers.checkpoint): stamp it for the new one
        state["checksum"] = ckpt.contents_digest(state)
    ckpt.save_atomic(state, path)
    return float(ckpt.load(path)["decode"]["temperature"])
