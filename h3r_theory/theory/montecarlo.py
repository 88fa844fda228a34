"""Seeded Monte Carlo counterparts of the closed forms, run through the real codecs and losses.

Every simulation places keypoints, encodes them with :mod:`h3r_theory.codecs`, decodes with the same codec,
and measures the error in heatmap cells (``(decoded - keypoint) / stride``). Results are plain floats and
numpy arrays, plus an :class:`Estimate` (mean, sample sd, N) wherever a closed form is an expectation, so
that a test can check ``|mean - exact| <= 5 sd / sqrt(N)`` and a notebook can plot error bars.

All simulations take a ``seed`` (a ``torch.Generator`` is seeded with it: same numbers on every run) and
``dtype``/``device``; they are batched over keypoints (no Python loop per keypoint) and chunked so that dense
heatmaps never exceed a few tens of MB. They run on one intra-op thread (:func:`single_thread`): their
tensors are small, and on a shared 2-core machine thread synchronisation made them 20-30x slower.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from .. import codecs, losses

#: Keypoints per encode/decode call; 8 x 8 float64 maps of this many keypoints take 16 MB.
CHUNK = 32_768


class Estimate(NamedTuple):
    """A Monte Carlo mean with its sample standard deviation and sample count."""

    mean: float
    sd: float
    n: int

    @property
    def stderr(self) -> float:
        """Standard error of the mean, ``sd / sqrt(n)``."""
        return self.sd / math.sqrt(self.n)

    def z_score(self, exact: float) -> float:
        """``(mean - exact) / stderr`` (``inf`` if they differ with zero spread, 0 if equal)."""
        gap = self.mean - float(exact)
        if self.stderr == 0:
            return 0.0 if gap == 0 else math.copysign(math.inf, gap)
        return gap / self.stderr

    def agrees(self, exact: float, z: float = 5.0, atol: float = 1e-9) -> bool:
        """``|mean - exact| <= z * sd / sqrt(n) + atol`` (``atol`` absorbs float round-off of exact cases)."""
        return abs(self.mean - float(exact)) <= z * self.stderr + atol


def estimate(values: Tensor) -> Estimate:
    """Mean and unbiased sample sd of the flattened ``values``, computed in float64."""
    flat = values.detach().reshape(-1).to(torch.float64)
    n = flat.numel()
    if n < 2:
        raise ValueError(f"estimate needs at least 2 values, got {n}")
    return Estimate(float(flat.mean()), float(flat.std(correction=1)), n)


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run tiny-tensor loops on one intra-op thread, then restore the previous setting.

    Hundreds of optimiser steps on a few hundred numbers are dominated by thread synchronisation: on a
    busy 2-core machine a 144-element ``log_softmax`` took ~5 ms with 2 threads and ~0.05 ms with one.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _generator(seed: int, device: torch.device | str) -> torch.Generator:
    return torch.Generator(device=torch.device(device).type).manual_seed(int(seed))


def _chunks(n: int, size: int = CHUNK) -> Iterator[tuple[int, int]]:
    for start in range(0, n, size):
        yield start, min(n, start + size)


def make_codec(
    name: str, heatmap_size: tuple[int, int] = (8, 8), stride: int = 4, **options
) -> codecs.HeatmapCodec:
    """A codec by name with ``input_size = stride * heatmap_size``."""
    w, h = heatmap_size
    return codecs.build(name, input_size=(w * stride, h * stride), heatmap_size=(w, h), **options)


def uniform_cells(
    n: int,
    heatmap_size: tuple[int, int],
    generator: torch.Generator,
    margin: int = 0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> Tensor:
    """``n`` heatmap positions (n, 2) uniform on ``[margin, w - 1 - margin)`` x (same in y), in cells.

    The range spans whole cells, so the fractional parts are uniform on ``[0, 1)``: the "keypoint placed at
    random with respect to the cell grid" that every averaged closed form assumes. ``margin = 1`` keeps a
    3 x 3 window around the rounded cell on the map.
    """
    w, h = heatmap_size
    if min(w, h) - 1 - 2 * margin < 1:
        raise ValueError(f"heatmap_size {heatmap_size} is too small for margin {margin}")
    span = torch.tensor([w - 1 - 2 * margin, h - 1 - 2 * margin], dtype=dtype, device=device)
    return margin + torch.rand(n, 2, generator=generator, dtype=dtype, device=device) * span


def cells_with_fractions(fractions: Tensor, base_cell: Sequence[int] = (2, 2)) -> Tensor:
    """Heatmap positions ``base_cell + fractions`` for given fractional parts ``fractions`` (..., 2)."""
    return fractions + fractions.new_tensor(list(base_cell))


def _errors(codec: codecs.HeatmapCodec, keypoints: Tensor, decoded: Tensor) -> Tensor:
    """(decoded - keypoints) in cells (per axis, divided by the stride)."""
    return (decoded - keypoints) / keypoints.new_tensor(codec.stride)


def _summary(errors: Tensor) -> dict:
    """The statistics every closed form is compared with, from per-keypoint errors (n, 2) in cells.

    Keys without an axis pool x and y (valid when both axes are identically distributed, e.g. uniform
    placement); ``_x``/``_y`` keys are per axis (use them for keypoints at fixed fractions).
    """
    distance = errors.norm(dim=-1)
    return {
        "bias": estimate(errors),  # both axes pooled: they are identically distributed
        "bias_x": estimate(errors[:, 0]),
        "bias_y": estimate(errors[:, 1]),
        "mean_abs_1d": estimate(errors.abs()),
        "mean_abs_x": estimate(errors[:, 0].abs()),
        "mean_abs_y": estimate(errors[:, 1].abs()),
        "mse_1d": estimate(errors**2),
        "mse_x": estimate(errors[:, 0] ** 2),
        "mse_y": estimate(errors[:, 1] ** 2),
        "mean_2d": estimate(distance),
        "mse_2d": estimate((errors**2).sum(-1)),
        "max_abs_1d": float(errors.abs().max()),
        "max_2d": float(distance.max()),
        "errors": errors.detach().cpu().numpy(),
    }


# -- item 1: vanilla quantization --------------------------------------------------------------------------
@single_thread()
def simulate_quantization(
    rounding: str = "round",
    n: int = 100_000,
    seed: int = 0,
    heatmap_size: tuple[int, int] = (8, 8),
    stride: int = 4,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> dict:
    """Encode uniformly placed keypoints with :class:`codecs.Argmax` (``rounding``) and decode by argmax.

    Returns the :func:`_summary` statistics (Estimates of bias, mean ``|error|``, MSE per axis and in 2-D, the
    observed maxima, and the raw ``errors`` (n, 2) in cells).
    """
    codec = make_codec("argmax", heatmap_size, stride, rounding=rounding)
    generator = _generator(seed, device)
    uv = uniform_cells(n, heatmap_size, generator, dtype=dtype, device=device)
    errors = []
    for a, b in _chunks(n):
        keypoints = codec.to_input(uv[a:b])[:, None, :]
        decoded, _ = codec.decode(codec.encode(keypoints).heatmaps, activation="probabilities")
        errors.append(_errors(codec, keypoints, decoded)[:, 0])
    return _summary(torch.cat(errors))


# -- item 2: randomized rounding ---------------------------------------------------------------------------
@single_thread()
def simulate_randomized_rounding(
    fractions: Sequence[float] | None = None,
    n: int = 100_000,
    seed: int = 0,
    heatmap_size: tuple[int, int] = (8, 8),
    stride: int = 4,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> dict:
    """Draw one :class:`codecs.RandomizedRounding` sample per keypoint and decode its one-hot map.

    ``fractions=(ex, ey)``: every keypoint sits at the same sub-cell position (conditional moments);
    ``None``: keypoints uniform over the map (averaged moments). The one-hot map is decoded with the codec's
    own decoder (``activation="probabilities"``), which returns the sampled cell. Returns :func:`_summary`;
    its ``bias_x``/``bias_y`` (the average sample minus the keypoint) measure the unbiasedness and
    ``mse_x``/``mse_y`` (mean squared deviation from the known mean) the variance ``e (1 - e)``.
    """
    codec = make_codec("randomized_rounding", heatmap_size, stride)
    generator = _generator(seed, device)
    if fractions is None:
        uv = uniform_cells(n, heatmap_size, generator, dtype=dtype, device=device)
    else:
        uv = cells_with_fractions(torch.tensor([list(fractions)], dtype=dtype, device=device)).expand(n, 2)
    errors = []
    for a, b in _chunks(n):
        keypoints = codec.to_input(uv[a:b])[:, None, :]
        enc = codec.encode(keypoints, generator=generator)
        decoded, _ = codec.decode(enc.heatmaps, activation="probabilities")
        errors.append(_errors(codec, keypoints, decoded)[:, 0])
    return _summary(torch.cat(errors))


# -- item 3: losslessness ----------------------------------------------------------------------------------
@single_thread()
def simulate_expected_decode(
    fractions: Tensor | None = None,
    n: int = 20_000,
    seed: int = 0,
    method: str = "topk",
    k: int = 9,
    radius: int = 1,
    delta: float = 0.0,
    heatmap_size: tuple[int, int] = (8, 8),
    stride: int = 4,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> dict:
    """Decode the expected map ``codec.expected(...)``, plus a uniform floor ``delta`` on every cell.

    ``fractions`` (n, 2): sub-cell positions to place the keypoints at (around cell (2, 2)); ``None``: uniform
    over the map, one cell away from the border so that a 3 x 3 window stays on the map. Returns
    :func:`_summary` of the decoding errors (cells).
    """
    codec = make_codec("randomized_rounding", heatmap_size, stride)
    generator = _generator(seed, device)
    if fractions is None:
        uv = uniform_cells(n, heatmap_size, generator, margin=1, dtype=dtype, device=device)
    else:
        uv = cells_with_fractions(fractions.to(dtype=dtype, device=device))
    errors = []
    for a, b in _chunks(uv.shape[0]):
        keypoints = codec.to_input(uv[a:b])[:, None, :]
        maps = codec.expected(keypoints).heatmaps + delta
        decoded, _ = codec.decode(maps, activation="probabilities", method=method, k=k, radius=radius)
        errors.append(_errors(codec, keypoints, decoded)[:, 0])
    return _summary(torch.cat(errors))


# -- item 4: loss / decoder consistency ---------------------------------------------------------------------
def empirical_distribution(
    codec: codecs.RandomizedRounding, keypoints: Tensor, num_samples: int, generator: torch.Generator
) -> Tensor:
    """Frequencies (1, K, h, w) of the cells hit by ``num_samples`` randomized-rounding draws of each keypoint.

    The draws come from ``codec.encode``; their one-hot cells are counted, which is the mean of the dense
    one-hot targets without building ``num_samples`` dense maps.
    """
    w, h = codec.heatmap_size
    K = keypoints.shape[1]
    counts = keypoints.new_zeros(K, h * w)
    with single_thread():
        for a, b in _chunks(num_samples, max(1, CHUNK // max(K, 1))):
            enc = codec.encode(keypoints.expand(b - a, K, 2), generator=generator)
            counts.scatter_add_(1, enc.indices.T, enc.weights.T)
    return (counts / num_samples).view(1, K, h, w)


def fit_cell_logits(
    target: Tensor, loss: str, steps: int = 400, lr: float = 0.5, final_lr: float = 5e-4
) -> Tensor:
    """Fit free per-cell logits (no network) to a target distribution with Adam.

    ``loss="softmax_ce"`` uses :func:`losses.spatial_softmax_cross_entropy`, ``"bce"`` uses
    :func:`losses.binary_cross_entropy`. Both losses are linear in the target, so the loss against the
    empirical mean of N one-hot samples equals the mean of the N per-sample losses: this *is* gradient
    descent on the N samples, full-batch.

    Why Adam with a short second-moment memory (``beta2 = 0.9``) and a decaying step: the optimum of a
    never-hit cell is ``-inf``, and plain gradient descent approaches it only logarithmically (its gradient
    is its own vanishing probability). Adam's normalised steps keep pushing those logits down, and the decay
    from ``lr`` to ``final_lr`` settles the hit cells at their optimum. With the defaults the fitted
    probabilities are within ~1e-5 of the target frequencies (checked by the tests).
    """
    if loss not in ("softmax_ce", "bce"):
        raise ValueError(f"loss must be 'softmax_ce' or 'bce', got {loss!r}")
    if int(steps) < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    fn = losses.spatial_softmax_cross_entropy if loss == "softmax_ce" else losses.binary_cross_entropy
    logits = torch.zeros_like(target, requires_grad=True)
    weights = target.new_ones(target.shape[:2])
    optimizer = torch.optim.Adam([logits], lr=lr, betas=(0.9, 0.9))
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, (final_lr / lr) ** (1.0 / int(steps)))
    with single_thread():
        for _ in range(int(steps)):
            optimizer.zero_grad()
            fn(logits, target, weights).backward()
            optimizer.step()
            schedule.step()
    return logits.detach()


@single_thread()
def simulate_loss_consistency(
    fractions: Sequence[Sequence[float]],
    num_samples: int = 100_000,
    seed: int = 0,
    steps: int = 400,
    heatmap_size: tuple[int, int] = (6, 6),
    stride: int = 4,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> dict:
    """Items 4(a)/(b): fit per-cell logits to randomized-rounding samples, then decode them three ways.

    Keypoints sit at cell (2, 2) + ``fractions`` (K, 2). Returns arrays (K, 2) of errors in cells:
    ``"ce_logits"`` (softmax-CE fit, ``activation="logits"``: consistent), ``"bce_probabilities"`` (BCE fit,
    sigmoid then ``"probabilities"``: consistent), ``"bce_logits"`` (BCE fit decoded as ``"logits"``: the odds
    bias); the samples' own statistics ``"sample_mean"`` (mean draw minus truth) and ``"sample_sd"`` (per-axis
    sd of the draws); the empirical cell frequencies ``"frequencies"`` (K, h, w); and ``num_samples``.
    """
    codec = make_codec("randomized_rounding", heatmap_size, stride)
    frac = torch.tensor([list(f) for f in fractions], dtype=dtype, device=device)
    keypoints = codec.to_input(cells_with_fractions(frac))[None]  # (1, K, 2)
    target = empirical_distribution(codec, keypoints, num_samples, _generator(seed, device))
    w, h = codec.heatmap_size
    grid_x = torch.arange(w, dtype=dtype, device=device)
    grid_y = torch.arange(h, dtype=dtype, device=device)
    mean_uv = torch.stack(((target.sum(-2) * grid_x).sum(-1), (target.sum(-1) * grid_y).sum(-1)), -1)[0]
    second = torch.stack(((target.sum(-2) * grid_x**2).sum(-1), (target.sum(-1) * grid_y**2).sum(-1)), -1)[0]
    true_uv = codec.to_heatmap(keypoints)[0]
    ce = fit_cell_logits(target, "softmax_ce", steps)
    bce = fit_cell_logits(target, "bce", steps)

    def error(maps: Tensor, activation: str) -> np.ndarray:
        decoded, _ = codec.decode(maps, activation=activation)
        return _errors(codec, keypoints, decoded)[0].cpu().numpy()

    return {
        "ce_logits": error(ce, "logits"),
        "bce_probabilities": error(torch.sigmoid(bce), "probabilities"),
        "bce_logits": error(bce, "logits"),
        "sample_mean": (mean_uv - true_uv).cpu().numpy(),
        "sample_sd": (second - mean_uv**2).clamp(min=0).sqrt().cpu().numpy(),
        "frequencies": target[0].cpu().numpy(),
        "num_samples": int(num_samples),
    }


@single_thread()
def simulate_gaussian_argmax(
    n: int = 20_000,
    seed: int = 0,
    sigma: float = 2.0,
    steps: int = 150,
    lr: float = 0.05,
    heatmap_size: tuple[int, int] = (8, 8),
    stride: int = 4,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> dict:
    """Item 4(c): fit free maps to MSRA Gaussian targets with :func:`losses.mse`, decode by argmax.

    ``steps=0`` decodes the targets themselves (the MSE optimum). Returns :func:`_summary` of the errors plus
    ``"fit_gap"``, the largest ``|fitted - target|`` (how close the fit came to its optimum).
    """
    codec = make_codec("gaussian", heatmap_size, stride, sigma=sigma)
    generator = _generator(seed, device)
    uv = uniform_cells(n, heatmap_size, generator, dtype=dtype, device=device)
    keypoints = codec.to_input(uv)[:, None, :]
    enc = codec.encode(keypoints)
    maps = torch.zeros_like(enc.heatmaps, requires_grad=True)
    optimizer = torch.optim.Adam([maps], lr=lr)
    for _ in range(int(steps)):
        optimizer.zero_grad()
        losses.mse(maps, enc.heatmaps, enc.weights).backward()
        optimizer.step()
    fitted = maps.detach() if steps else enc.heatmaps
    decoded, _ = codec.decode(fitted, activation="probabilities")
    out = _summary(_errors(codec, keypoints, decoded)[:, 0])
    out["fit_gap"] = float((fitted - enc.heatmaps).abs().max())
    return out


# -- item 5: resolution -------------------------------------------------------------------------------------
@single_thread()
def simulate_resolution(
    strides: Sequence[int] = (1, 2, 4, 8),
    input_size: tuple[int, int] = (64, 64),
    normaliser: float = 32.0,
    n: int = 20_000,
    seed: int = 0,
    num_keypoints: int = 1,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> dict:
    """NME of plain rounding and of the expected randomized-rounding map at several strides.

    For each stride, keypoints uniform over the map are encoded by :class:`codecs.Argmax` (round) and decoded
    by argmax, and the expected randomized-rounding map is decoded (top-9); errors are in input pixels
    divided by ``normaliser``. ``"head_outputs"`` is the number of values in the dense heatmaps the codec
    produces for one image of ``num_keypoints`` keypoints (the head's output size).

    Returns float64 arrays over the strides: ``"stride"``, ``"nme_round"``, ``"nme_round_sd"``,
    ``"nme_randomized_rounding"``, ``"head_outputs"``, and ``"n"``.
    """
    W, H = input_size
    out = {
        key: [] for key in ("stride", "nme_round", "nme_round_sd", "nme_randomized_rounding", "head_outputs")
    }
    for s in strides:
        if W % s or H % s:
            raise ValueError(f"stride {s} does not divide input_size {input_size}")
        size = (W // s, H // s)
        generator = _generator(seed, device)
        uv = uniform_cells(n, size, generator, margin=1 if min(size) > 3 else 0, dtype=dtype, device=device)
        distances = {"round": [], "rr": []}
        argmax = codecs.build("argmax", input_size, size)
        rr = codecs.build("randomized_rounding", input_size, size)
        for a, b in _chunks(n, max(1, CHUNK * 64 // (size[0] * size[1]))):
            keypoints = argmax.to_input(uv[a:b])[:, None, :]
            decoded, _ = argmax.decode(argmax.encode(keypoints).heatmaps, activation="probabilities")
            distances["round"].append((decoded - keypoints)[:, 0].norm(dim=-1))
            decoded, _ = rr.decode(rr.expected(keypoints).heatmaps, activation="probabilities")
            distances["rr"].append((decoded - keypoints)[:, 0].norm(dim=-1))
        nme = estimate(torch.cat(distances["round"]) / normaliser)
        out["stride"].append(float(s))
        out["nme_round"].append(nme.mean)
        out["nme_round_sd"].append(nme.sd)
        out["nme_randomized_rounding"].append(float((torch.cat(distances["rr"]) / normaliser).mean()))
        one_image = torch.zeros(1, num_keypoints, 2, dtype=dtype, device=device)
        out["head_outputs"].append(float(argmax.encode(one_image).heatmaps.numel()))
    result = {key: np.asarray(value, dtype=np.float64) for key, value in out.items()}
    result["n"] = int(n)
    return result
