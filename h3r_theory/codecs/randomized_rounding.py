"""Randomized rounding (H3R): an unbiased, lossless heatmap quantization (Yu & Tao, TPAMI 2021).

Idea. A keypoint at heatmap coordinate ``u = i + e`` (``i = floor(u)``, ``e`` its fractional part) is
rounded *up* with probability ``e`` and *down* with probability ``1 - e``, independently per axis, and a
one-hot target is placed at the sampled cell. A fresh sample is drawn for every batch.

* Unbiased: ``E[q(u)] = i (1 - e) + (i + 1) e = u``; per-axis variance ``e (1 - e)``.
* The expectation over samples is the bilinear distribution over the 4 neighbouring cells,
  ``p(i, j) = (1 - ex)(1 - ey)``, ``p(i+1, j) = ex (1 - ey)``, ``p(i, j+1) = (1 - ex) ey``,
  ``p(i+1, j+1) = ex ey`` (see :meth:`RandomizedRounding.expected`).
* Lossless: the mean cell under that distribution is exactly ``u``, so a decoder that takes the
  probability-weighted mean of the activation points recovers the sub-cell position.

Which pairing is lossless (derived in :mod:`h3r_theory.theory`):

* network trained with spatial-softmax cross-entropy on the samples -> its softmax converges to the bilinear
  distribution -> ``decode(logits, activation="logits")`` (softmax over the activation points' logits);
* heatmaps that already hold probabilities (the ``expected`` targets, or sigmoid outputs of a per-pixel
  BCE head) -> ``decode(probs, activation="probabilities")`` (normalise the activation points' mass).
  Passing per-pixel BCE *logits* as ``"logits"`` weights cells by the odds ``p / (1 - p)`` and is biased.

Activation points are the (2r+1)^2 window around the maximum (``method="window"``, the default) or the
``k`` largest cells (``method="topk"``; the authors' release uses ``k = 9``). Both contain the whole 2 x 2
support of the bilinear distribution whenever ``r >= 1`` or ``k >= 4``. The window is the default because
it is local, so a secondary peak elsewhere in a trained network's map cannot pull the estimate toward it,
and because it is cheaper: measured on a 2-core CPU, decoding 1024 x 17 maps of 64 x 48 took 24 ms with
the 3 x 3 window and 56 ms with top-9 (``torch.topk`` alone costs ~24 ms there).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Encoded, HeatmapCodec
from .peaks import argmax_cells, gather_window

DECODE_METHODS = ("topk", "window")


def _floor_and_fraction(uv: Tensor) -> tuple[Tensor, Tensor]:
    floor = torch.floor(uv)
    return floor.long(), uv - floor


class RandomizedRounding(HeatmapCodec):
    """Randomized-rounding codec.

    Args:
        input_size, heatmap_size: (width, height) in pixels and cells.
        convention: pixel convention, see :mod:`h3r_theory.conventions`.
        method: default decoder, ``"window"`` or ``"topk"``.
        k: number of activation points for ``"topk"`` (>= 4 for losslessness; 9 in the authors' release);
            capped at the number of cells.
        radius: half-size of the ``"window"`` decoder (1 -> 3 x 3).
    """

    name = "randomized_rounding"
    default_activation = "logits"
    default_loss = "spatial_softmax_cross_entropy"
    stochastic = True

    def __init__(
        self,
        input_size: tuple[int, int],
        heatmap_size: tuple[int, int],
        convention: str = "pixel_center",
        method: str = "window",
        k: int = 9,
        radius: int = 1,
    ) -> None:
        super().__init__(input_size, heatmap_size, convention)
        self.method, self.k, self.radius = _check_decoder(method, k, radius, self.heatmap_size)

    def encode(
        self, keypoints: Tensor, visible: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Encoded:
        """Draw one one-hot target per keypoint: each axis rounds up with probability ``frac(u)``.

        Args:
            keypoints: (B, K, 2) input pixels; visible: (B, K) or None; generator: a ``torch.Generator`` on
                the keypoints' device, for reproducible samples.
        Returns:
            :class:`Encoded` with one cell per keypoint (``indices`` (B, K)); dense ``heatmaps`` on demand.
        """
        uv, weights = self._prepare(keypoints, visible)
        if generator is not None and generator.device.type != uv.device.type:
            raise ValueError(f"generator is on {generator.device} but keypoints are on {uv.device}")
        floor, frac = _floor_and_fraction(self._clamp_to_cells(uv))
        draw = torch.rand(frac.shape, generator=generator, device=uv.device, dtype=uv.dtype)
        cell = floor + (draw < frac).long()  # frac == 0 never rounds up, so cell stays inside the map
        w, _ = self.heatmap_size
        flat = (cell[..., 1] * w + cell[..., 0])[..., None]
        return Encoded(weights, uv, self.heatmap_size, cells=flat, values=weights[..., None].clone())

    def expected(self, keypoints: Tensor, visible: Tensor | None = None) -> Encoded:
        """E[encode]: the bilinear weights on the 4 cells around each keypoint (they sum to 1)."""
        uv, weights = self._prepare(keypoints, visible)
        floor, frac = _floor_and_fraction(self._clamp_to_cells(uv))
        w, h = self.heatmap_size
        ex, ey = frac[..., 0], frac[..., 1]
        x0, y0 = floor[..., 0], floor[..., 1]
        # On the last row/column frac is 0, so the "+1" neighbour has weight 0; clamp only its index.
        x1, y1 = (x0 + 1).clamp(max=w - 1), (y0 + 1).clamp(max=h - 1)
        cells = torch.stack((y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1), dim=-1)
        values = torch.stack(((1 - ex) * (1 - ey), ex * (1 - ey), (1 - ex) * ey, ex * ey), dim=-1)
        return Encoded(weights, uv, self.heatmap_size, cells=cells, values=values * weights[..., None])

    def decode(
        self,
        heatmaps: Tensor,
        activation: str | None = None,
        method: str | None = None,
        k: int | None = None,
        radius: int | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Weighted mean of the activation points, in input pixels (B, K, 2), and scores (B, K).

        ``activation="logits"``: weights = softmax over the points' logits; score = the softmax mass (over
        the whole map) that the points hold. ``"probabilities"``: weights = the points' values (negatives
        count as 0), normalised; score = the peak value. ``method``, ``k`` and ``radius`` override the
        codec's settings for this call only.
        """
        return super().decode(heatmaps, activation, method=method, k=k, radius=radius)

    def _decode_cells(
        self,
        heatmaps: Tensor,
        activation: str,
        method: str | None = None,
        k: int | None = None,
        radius: int | None = None,
    ) -> tuple[Tensor, Tensor]:
        method, k, radius = _check_decoder(
            method or self.method,
            self.k if k is None else k,
            self.radius if radius is None else radius,
            self.heatmap_size,
        )
        if method == "topk":
            values, flat = heatmaps.flatten(-2).topk(k, dim=-1)
            w = self.heatmap_size[0]
            x, y = flat % w, flat // w
            inside = torch.ones_like(values, dtype=torch.bool)
            peak_x, peak_y, peak = x[..., 0], y[..., 0], values[..., 0]
        else:
            peak_x, peak_y, peak = argmax_cells(heatmaps)
            values, x, y, inside = gather_window(heatmaps, peak_x, peak_y, radius)

        if activation == "logits":
            logits = values.masked_fill(~inside, float("-inf"))
            weights = torch.softmax(logits, dim=-1)
            scores = torch.exp(torch.logsumexp(logits, -1) - torch.logsumexp(heatmaps.flatten(-2), -1))
        else:
            weights = values.clamp(min=0)  # cells outside the map were gathered as 0
            mass = weights.sum(-1, keepdim=True)
            weights = weights / mass.clamp(min=torch.finfo(mass.dtype).tiny)
            scores = peak
        uv = torch.stack(((weights * x).sum(-1), (weights * y).sum(-1)), dim=-1)
        # No positive mass among the points (e.g. an all-negative probability map): use the peak cell.
        no_mass = weights.sum(-1) == 0
        peak_uv = torch.stack((peak_x, peak_y), dim=-1).to(uv.dtype)
        return torch.where(no_mass[..., None], peak_uv, uv), scores


def _check_decoder(method: str, k: int, radius: int, heatmap_size: tuple[int, int]) -> tuple[str, int, int]:
    """Validate decoder settings; returns them with ``k`` and ``radius`` as ints."""
    if method not in DECODE_METHODS:
        raise ValueError(f"method must be one of {DECODE_METHODS}, got {method!r}")
    if int(k) < 1:
        raise ValueError(f"k must be >= 1 (4 or more for a lossless decode), got {k}")
    if int(radius) < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    w, h = heatmap_size
    return method, min(int(k), w * h), int(radius)  # a k beyond the map's size uses every cell
