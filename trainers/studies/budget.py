"""The error budget of a trained model: where its mean squared error comes from, in parts that add up.

For each held-out face the same scene is seen under ``R`` pixel-noise draws (draw 0: the set's own image,
draws 1..R-1: the clean render plus fresh white Gaussian noise of the set's sd). With ``p_r`` the prediction
under draw ``r`` (input px), ``x`` the truth, ``p_bar`` the mean over draws and ``s^2`` the unbiased sample
variance over draws (summed over x and y), the mean squared error over the draws splits exactly::

    mean_r |p_r - x|^2 = (R-1)/R s^2 + |p_bar - x|^2
                       =     s^2              (noise-induced variance, estimated without bias)
                         + |p_bar - x|^2 - s^2/R   (the squared bias, estimated without bias)

and the squared bias, per axis, by the keypoint's true sub-cell fraction ``f`` (``bins`` equal bins of
[0, 1)): ``b = m(f) + (b - m(f))`` with ``m`` the bin's mean bias, whose cross term averages to zero over
each bin. ``m`` itself is a constant offset (the mean bias of the axis) plus the cell-periodic rest::

    mse = noise_var + offset^2 + phase^2 + per_face^2                                   (exact, tested)

* ``noise_var_px2``: how much the prediction moves when only the pixel noise changes; compared with the
  Cramer-Rao bound on the same variance (``bound_px2``, :mod:`trainers.bound`): like with like.
* ``offset_px2``: a shift common to every keypoint (per axis, over all faces).
* ``phase_px2``: the error that depends on where in its cell the keypoint lies (a pull towards or away
  from the cell centre): what a quantizing target leaves.
* ``per_face_px2``: the rest of the bias: per face and keypoint, the same under every noise draw and not
  explained by the sub-cell position: the network's systematic misreading of that face.

Two more readings of the same model: the **displacement slope** (the faces re-rendered moved by ``t`` px
along both axes for ``t`` spanning one cell; the least-squares slope of the predicted displacement against
``t``, 1 for a predictor that follows the motion, 0 for one that ignores it; and the RMS of what the slope
leaves, the cell-periodic wobble), and the **KL divergence** of the expected randomized-rounding target
(the bilinear weights, the optimum of the cross-entropy) to the predicted distribution over cells, where
the design predicts one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..data.synthetic import build_scene, render_scene


def noise_draws(dataset, indices: Sequence[int], draws: int, seed: int) -> list[Tensor]:
    """``draws`` images (B, 3, H, W) of the faces ``indices`` of a synthetic set, each its clean render
    plus fresh white Gaussian noise of the set's sd (``dataset.noise``), clipped to [0, 1] like the set's
    own; the noise of draw ``r`` comes from a generator seeded by ``(seed, r)``: reproducible."""
    if getattr(dataset, "noise_distribution", None) != "gaussian":
        raise ValueError(
            "noise draws need a synthetic set with Gaussian pixel noise (noise_distribution: gaussian)"
        )
    clean = render_scene(
        build_scene(dataset.params(list(indices))), dataset.input_size, torch.float32, clip=False
    )
    out = []
    for r in range(draws):
        g = torch.Generator().manual_seed(1_000_003 * (seed + 1) + 7919 * (r + 1) + int(indices[0]))
        noise = torch.randn(clean.shape, generator=g, dtype=torch.float32) * float(dataset.noise)
        out.append((clean + noise).clamp_(0.0, 1.0))
    return out


def sub_cell_fraction(keypoints: Tensor, codec) -> Tensor:
    """The true position within its cell, per axis, in [0, 1) (N, K, 2): ``u - floor(u)`` in cells."""
    uv = codec.to_heatmap(keypoints.to(torch.float64))
    return uv - uv.floor()


def error_budget(
    predictions: Tensor,
    truth: Tensor,
    visible: Tensor,
    fraction: Tensor,
    bins: int = 8,
    bound: Tensor | None = None,
) -> dict:
    """The exact split of the mean squared error over noise draws (see the module docstring).

    Args:
        predictions: (R, N, K, 2) input px, draw ``r`` of face ``n``; R >= 2.
        truth: (N, K, 2) input px. visible: (N, K), > 0 where labelled.
        fraction: (N, K, 2) the true sub-cell position in [0, 1) (:func:`sub_cell_fraction`).
        bound: optional (N, K) per-keypoint RMS 2-D Cramer-Rao bound, px.

    Returns a dict of floats, px^2 unless named otherwise: ``mse_px2`` (over all draws), ``noise_var_px2``,
    ``bias2_px2``, ``offset_px2``, ``phase_px2``, ``per_face_px2``, ``sum_px2`` (the four parts), the
    per-bin mean bias ``phase_curve_px`` (bins x 2) and, with a bound, ``bound_px2`` and
    ``noise_var_over_bound``.
    """
    R = predictions.shape[0]
    if R < 2:
        raise ValueError(f"error_budget needs at least 2 noise draws, got {R}")
    if not (bins >= 1 and isinstance(bins, int)):
        raise ValueError(f"bins must be an int >= 1, got {bins!r}")
    p = predictions.to(torch.float64)
    labelled = visible > 0
    if not labelled.any():
        raise ValueError("error_budget: no labelled keypoint")
    p, x, f = (
        p[:, labelled],
        truth.to(torch.float64)[labelled],
        fraction.to(torch.float64)[labelled],
    )  # (R,M,2)...
    mse = (p - x).pow(2).sum(-1).mean()
    mean = p.mean(0)  # (M, 2)
    var = p.var(0, unbiased=True)  # (M, 2) per axis, unbiased over the draws
    noise_var = var.sum(-1).mean()
    bias = mean - x  # (M, 2)
    which = (f * bins).long().clamp_(0, bins - 1)  # (M, 2) the bin of each axis
    curve = torch.zeros(bins, 2, dtype=torch.float64)
    fitted = torch.zeros_like(bias)
    for axis in range(2):
        total = torch.zeros(bins, dtype=torch.float64).index_add_(0, which[:, axis], bias[:, axis])
        count = torch.zeros(bins, dtype=torch.float64).index_add_(
            0, which[:, axis], torch.ones_like(bias[:, axis])
        )
        curve[:, axis] = total / count.clamp(min=1)
        fitted[:, axis] = curve[which[:, axis], axis]
    offset = bias.mean(0)  # (2,) the constant part of the bin means (their count-weighted mean)
    offset2 = offset.pow(2).sum()
    phase2 = (fitted - offset).pow(2).sum(-1).mean()
    within = (bias - fitted).pow(2).sum(-1).mean()
    per_face = within - noise_var / R  # |p_bar - x|^2 holds s^2 / R of noise: removed from the face part
    out = {
        "draws": int(R),
        "keypoints": int(x.shape[0]),
        "mse_px2": float(mse),
        "noise_var_px2": float(noise_var),
        "bias2_px2": float((bias.pow(2).sum(-1).mean()) - noise_var / R),
        "offset_px2": float(offset2),
        "phase_px2": float(phase2),
        "per_face_px2": float(per_face),
        "sum_px2": float(noise_var + offset2 + phase2 + per_face),
        # The MSE of each draw alone: how far one draw (the set's own images, say) may fall from their mean.
        "mse_per_draw_px2": (p - x).pow(2).sum(-1).mean(-1).tolist(),
        "phase_curve_px": curve.tolist(),
    }
    if bound is not None:
        b2 = bound.to(torch.float64)[labelled].pow(2).mean()
        out.update(bound_px2=float(b2), noise_var_over_bound=float(noise_var / b2))
    return out


def displacement_slope(predictions: Tensor, shifts: Sequence[float], visible: Tensor) -> dict:
    """How predictions follow a motion: ``predictions`` (J, N, K, 2) px of the faces moved by ``shifts[j]``
    px along both axes (``shifts[0] == 0``). The predicted displacement ``d = p_j - p_0`` is fitted by
    ``slope * t`` (least squares through 0, pooled over axes and keypoints); ``wobble_px`` is the RMS of
    ``d - t`` per axis, what a perfect follower (slope 1) would not show, and ``residual_px`` the RMS of
    ``d - slope t``."""
    t = torch.as_tensor([float(s) for s in shifts], dtype=torch.float64)
    if t.numel() < 2 or t[0] != 0 or not bool((t[1:] != 0).all()):
        raise ValueError(f"shifts must start with 0 and hold at least one non-zero shift, got {list(shifts)}")
    labelled = visible > 0
    d = (predictions.to(torch.float64) - predictions[:1].to(torch.float64))[:, labelled]  # (J, M, 2)
    tt = t[:, None, None].expand_as(d)
    slope = float((d * tt).sum() / (tt * tt).sum())
    return {
        "slope": slope,
        "wobble_px": float((d - tt)[1:].pow(2).mean().sqrt()),
        "residual_px": float((d - slope * tt)[1:].pow(2).mean().sqrt()),
        "shifts_px": t.tolist(),
    }


def kl_to_expected(probabilities: Tensor, expected: Tensor, weights: Tensor) -> float:
    """Mean over weighted keypoints of KL(expected || predicted) in nats: ``expected`` (N, K, h, w) the
    bilinear target (sums to 1 per map), ``probabilities`` (N, K, h, w) the predicted distribution."""
    q = expected.flatten(-2).to(torch.float64)
    logp = probabilities.flatten(-2).to(torch.float64).clamp(min=1e-300).log()
    logq = torch.where(q > 0, q.clamp(min=1e-300).log(), torch.zeros_like(q))
    per_keypoint = (q * (logq - logp)).sum(-1)
    w = weights.to(torch.float64)
    return float((per_keypoint * w).sum() / w.sum().clamp(min=1))
