"""What the NME normaliser is in the network's input, and the quantization NME that follows (item 5, on data).

Item 5 gives the quantization term ``NME_q = m s / d`` for one normaliser ``d``. On a benchmark ``d`` varies
from face to face (the inter-ocular distance of a large face is several times that of a small one) and it is
measured *after* the crop that brings each face to the network's input size, so the question "how much of a
published NME is quantization?" needs the distribution of ``d`` in input pixels, not a typical value.

The crop modelled here is the one of the H3R release (``../shared/notes/h3r-release.md``, setting "P1"): the
box spanned by the ground-truth landmarks, enlarged ``box_scale`` times about its centre, made square on its
longer side, and resized to ``size x size`` input pixels. Coordinates are pixel indices (pixel centres at
integers), as in :mod:`h3r_theory.conventions`.
"""

from __future__ import annotations

from torch import Tensor

from .quantization import mean_quantization_error


def landmark_box_crop(keypoints: Tensor, box_scale: float = 1.25, size: int = 256) -> tuple[Tensor, Tensor]:
    """Map each face's landmarks into a square crop of its enlarged landmark box.

    Args:
        keypoints: (N, K, 2) image pixels, x then y.
        box_scale: the crop's side over the longer side of the landmarks' box (1.25 in the H3R release).
        size: the crop's side in input pixels after resizing.
    Returns:
        ``(points, scale)``: (N, K, 2) input pixels of the crop (the box centre lands on the crop's centre,
        ``(size - 1) / 2``), and (N,) input pixels per image pixel.
    """
    if keypoints.ndim != 3 or keypoints.shape[-1] != 2:
        raise ValueError(f"keypoints must have shape (N, K, 2), got {tuple(keypoints.shape)}")
    if box_scale <= 0 or size <= 0:
        raise ValueError(f"box_scale and size must be > 0, got box_scale={box_scale}, size={size}")
    low, high = keypoints.amin(dim=1), keypoints.amax(dim=1)  # (N, 2) each
    side = box_scale * (high - low).amax(dim=-1)  # (N,) image px
    if (side <= 0).any():
        raise ValueError("every face needs landmarks spanning a box of non-zero size")
    scale = size / side
    centre = (low + high) / 2
    points = (keypoints - centre[:, None, :]) * scale[:, None, None] + (size - 1) / 2
    return points, scale


def cropped_normalisers(
    keypoints: Tensor, pair: tuple[int, int], box_scale: float = 1.25, size: int = 256
) -> Tensor:
    """(N,) distance between landmarks ``pair`` (e.g. WFLW's outer eye corners 60, 72) in crop input pixels."""
    points, _ = landmark_box_crop(keypoints, box_scale, size)
    a, b = pair
    return (points[:, a] - points[:, b]).norm(dim=-1)


def expected_quantization_nme(normalisers: Tensor, stride: float, rounding: str = "round") -> float:
    """Mean over faces of ``m s / d_n``: the NME (a fraction, not %) of a perfect vanilla heatmap model.

    NME averages each face's error divided by *its own* normaliser, so the mean of ``1 / d`` enters, which
    is larger than ``1 / mean(d)`` (Jensen): small faces weigh more. Assumes uniformly placed fractions,
    the premise of item 1. ``normalisers``: (N,) input pixels; ``stride``: input pixels per cell.
    """
    if normalisers.ndim != 1 or (normalisers <= 0).any():
        raise ValueError("normalisers must be a 1-D tensor of positive distances (input px)")
    if stride <= 0:
        raise ValueError(f"stride must be > 0 input pixels per cell, got {stride}")
    m = float(mean_quantization_error(rounding, 2))
    return m * float(stride) * float((1.0 / normalisers.double()).mean())
