"""Losses matched to codecs, so that each codec's decoder reads the optimum of its loss without bias.

Which pairing is consistent, and why (derived in :mod:`h3r_theory.theory.consistency`):

* randomized rounding / one-hot targets -> spatial softmax cross-entropy. Its population optimum over the
  random targets is softmax(logits) = E[target] (the bilinear distribution), whose mean is the keypoint.
* per-pixel targets with a sigmoid head -> binary cross-entropy; the optimum is sigmoid(logit) = target per
  cell, so decode the *probabilities*, never a softmax of these logits.
* Gaussian targets -> mean squared error; the optimum is the target map itself.
* soft-argmax (integral regression) -> L1 between the differentiable expectation and the keypoint.

Every loss takes per-keypoint ``weights`` (B, K) and averages over the keypoints with positive weight,
so invisible or off-heatmap keypoints contribute nothing (and an all-invisible batch gives loss 0).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .codecs import Encoded, HeatmapCodec, soft_argmax_cells

LossFn = Callable[[Tensor, Encoded], Tensor]


def _weighted_mean(per_keypoint: Tensor, weights: Tensor) -> Tensor:
    """Mean of ``per_keypoint`` (B, K) over keypoints, weighted by ``weights`` (B, K); 0 if all weights are 0."""
    return (per_keypoint * weights).sum() / weights.sum().clamp(min=1.0)


def spatial_softmax_cross_entropy(logits: Tensor, target: Tensor, weights: Tensor) -> Tensor:
    """Cross-entropy between softmax over each map and a target distribution over its cells.

    Args:
        logits: (B, K, h, w) raw network outputs.
        target: (B, K, h, w) distributions (each map sums to 1), or (B, K) long flat cell indices of one-hot
            targets (cheaper: no dense target is built).
        weights: (B, K) keypoint weights.
    """
    # At least float32 (a half-precision log-softmax loses the small probabilities), never less than the
    # input: a float64 input stays float64 (torch.autograd.gradcheck of this loss found the old downcast).
    work = torch.promote_types(logits.dtype, torch.float32)
    log_probs = torch.log_softmax(logits.flatten(-2).to(work), dim=-1).to(logits.dtype)
    if target.dtype == torch.long:
        per_keypoint = -log_probs.gather(-1, target[..., None])[..., 0]
    else:
        per_keypoint = -(target.flatten(-2) * log_probs).sum(-1)
    return _weighted_mean(per_keypoint, weights)


def binary_cross_entropy(logits: Tensor, target: Tensor, weights: Tensor) -> Tensor:
    """Per-cell binary cross-entropy with logits, averaged over cells then over weighted keypoints.

    Args:
        logits: (B, K, h, w) one sigmoid per cell, or (B, K, 2, h, w) for this package's two-channel
            ``binary`` head (``trainers.models.layers.KeypointHead``, keypoint-major), whose channel 1 is
            "keypoint here" and channel 0 its complement: there channel 0's target is ``1 - target``. The
            two channels are two independent sigmoids, not a softmax pair. (The authors' H3R release has a
            head of the same 2K outputs, class-major, but ships no training code: its loss is not known.)
        target: (B, K, h, w) per-cell targets in [0, 1] (a randomized-rounding sample, or its expectation).
        weights: (B, K) keypoint weights.

    The optimum is ``sigmoid(channel 1) = E[target]`` per cell. It is only reached in practice when the
    logits start near the prior of a cell (about ``log(1 / (h w))``, not 0): the binary head starts there
    (``KeypointHead``; why, and the measurement, in its docstring and tests/test_binary_head.py).
    """
    if logits.dim() == 5:
        target = torch.stack((1 - target, target), dim=2)
    per_cell = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return _weighted_mean(per_cell.flatten(2).mean(-1), weights)


def mse(pred: Tensor, target: Tensor, weights: Tensor) -> Tensor:
    """Mean squared error per map (averaged over cells), then over weighted keypoints."""
    return _weighted_mean(((pred - target) ** 2).flatten(-2).mean(-1), weights)


def coordinate_l1(pred_uv: Tensor, target_uv: Tensor, weights: Tensor) -> Tensor:
    """L1 distance (summed over x and y, in cells) between (B, K, 2) coordinates, over weighted keypoints."""
    return _weighted_mean((pred_uv - target_uv).abs().sum(-1), weights)


def _cross_entropy_to_target(output: Tensor, enc: Encoded) -> Tensor:
    target = enc.indices if enc.indices is not None else enc.heatmaps  # flat indices when one-hot: cheaper
    return spatial_softmax_cross_entropy(output, target, enc.weights)


def _mse_to_target(output: Tensor, enc: Encoded) -> Tensor:
    return mse(output, enc.heatmaps, enc.weights)


def _l1_of_soft_argmax(output: Tensor, enc: Encoded) -> Tensor:
    return coordinate_l1(soft_argmax_cells(output, "logits"), enc.centers, enc.weights)


def _binary_cross_entropy_to_target(output: Tensor, enc: Encoded) -> Tensor:
    return binary_cross_entropy(output, enc.heatmaps, enc.weights)


#: Loss name -> ``fn(output, enc) -> scalar`` on a network output and a codec's :class:`Encoded` targets.
#: A codec names its loss in its ``default_loss`` class attribute.
LOSSES: dict[str, LossFn] = {
    "spatial_softmax_cross_entropy": _cross_entropy_to_target,
    "mse": _mse_to_target,
    "coordinate_l1": _l1_of_soft_argmax,
    "binary_cross_entropy": _binary_cross_entropy_to_target,
}


def default_loss(codec: HeatmapCodec) -> tuple[str, LossFn]:
    """The loss that makes ``codec.decode(output, activation=codec.default_activation)`` consistent: the
    one the codec names in ``codec.default_loss``. Returns ``(name, fn)`` with
    ``fn(output (B, K, h, w), enc) -> scalar``.
    """
    name = getattr(codec, "default_loss", None)
    if name not in LOSSES:
        raise ValueError(f"codec {codec.name!r} names loss {name!r}; known losses: {sorted(LOSSES)}")
    return name, LOSSES[name]
