"""Vanilla heatmap quantization: a one-hot target at the rounded (or floored) cell, decoded by argmax.

This is the baseline whose error randomized rounding removes. Rounding to the nearest cell leaves a
per-axis error uniform on [-1/2, 1/2) cells (bias 0, MSE 1/12, mean 2-D distance (sqrt(2) + asinh(1))/6
~ 0.3826 cells); flooring leaves an error uniform on [0, 1) (bias 1/2, MSE 1/3, mean 2-D distance twice
that, ~ 0.7652 cells). Both are lost for good: no decoder can recover them from a one-hot map.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Encoded, HeatmapCodec
from .peaks import Peak

ROUNDINGS = ("round", "floor")


def quantize(uv: Tensor, rounding: str) -> Tensor:
    """Cell indices (long) of heatmap coordinates ``uv``.

    ``"round"`` is round-half-up, ``floor(u + 1/2)``, not ``torch.round`` (half-to-even), so that the
    error is the same on every cell.
    """
    if rounding == "round":
        return torch.floor(uv + 0.5).long()
    if rounding == "floor":
        return torch.floor(uv).long()
    raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")


class Argmax(HeatmapCodec):
    """One-hot targets at the quantized cell; decode by argmax (the cell index is the coordinate)."""

    name = "argmax"
    default_activation = "logits"  # trained with spatial-softmax cross-entropy; argmax ignores it anyway
    default_loss = "spatial_softmax_cross_entropy"

    def __init__(
        self,
        input_size: tuple[int, int],
        heatmap_size: tuple[int, int],
        convention: str = "pixel_center",
        rounding: str = "round",
    ) -> None:
        super().__init__(input_size, heatmap_size, convention)
        if rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
        self.rounding = rounding

    def encode(
        self, keypoints: Tensor, visible: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Encoded:
        """One-hot target per keypoint at its quantized cell (``generator`` is unused: deterministic)."""
        uv, weights = self._prepare(keypoints, visible, generator)
        cell = self._clamp_to_cells(quantize(self._clamp_to_cells(uv), self.rounding).to(uv.dtype)).long()
        flat = (cell[..., 1] * self.heatmap_size[0] + cell[..., 0])[..., None]
        return Encoded(weights, uv, self.heatmap_size, cells=flat, values=weights[..., None].clone())

    def _decode_cells(self, heatmaps: Tensor, activation: str, peak: Peak) -> Tensor:
        """The argmax cell (the ``"mass"`` score is the peak cell's: :meth:`HeatmapCodec.point_mass`)."""
        return torch.stack((peak.ix, peak.iy), dim=-1).to(heatmaps.dtype)
