"""Gaussian heatmaps: the MSRA/SimpleBaselines target, DARK and UDP.

``Gaussian`` (Xiao et al., ECCV 2018): a Gaussian of peak 1 centred on the *rounded* cell, decoded by
argmax, optionally moved a quarter cell toward the higher neighbour. It keeps the vanilla quantization
error of rounding (the quarter offset only halves the worst case).

``DARK`` (Zhang et al., CVPR 2020, "Distribution-Aware coordinate Representation"): the Gaussian is
centred on the *unquantized* coordinate; decoding blurs the map with a Gaussian (to make a trained
network's output closer to a Gaussian), takes the log, and refines the argmax by one Newton step of its
second-order Taylor expansion, ``u* = m - H^-1 grad`` at the maximum ``m``. The log of a Gaussian is
exactly quadratic, so on a noiseless target the step lands on the centre.

``UDP`` (Huang et al., CVPR 2020, "Unbiased Data Processing"): the same Gaussian target and refinement in
UDP's coordinate system ``u = x (w - 1)/(W - 1)``, in which flipping is exact and no half-pixel bias
arises from resizing.

The targets are untruncated Gaussians (MSRA truncates at 3 sigma; the difference is below exp(-4.5)).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .argmax import quantize
from .base import Encoded, HeatmapCodec
from .peaks import argmax_cells, gather_window, gaussian_kernel_1d, gaussian_maps


def _check_sigma(sigma: float, name: str = "sigma") -> float:
    if not sigma > 0:
        raise ValueError(f"{name} must be > 0 cells, got {sigma}")
    return float(sigma)


class Gaussian(HeatmapCodec):
    """MSRA Gaussian target at the rounded cell, decoded by argmax (+ optional quarter offset).

    Args:
        sigma: Gaussian standard deviation in heatmap cells (2 in the MSRA code at 64 x 48).
        quarter_offset: move the argmax 0.25 cell toward the larger of its two neighbours per axis.
    """

    name = "gaussian"
    default_loss = "mse"  # the optimum of MSE is the Gaussian target map itself

    def __init__(
        self,
        input_size: tuple[int, int],
        heatmap_size: tuple[int, int],
        convention: str = "pixel_center",
        sigma: float = 2.0,
        quarter_offset: bool = False,
    ) -> None:
        super().__init__(input_size, heatmap_size, convention)
        self.sigma = _check_sigma(sigma)
        self.quarter_offset = bool(quarter_offset)

    def _centers(self, uv: Tensor) -> Tensor:
        """Where the target Gaussian is centred: the rounded cell (MSRA)."""
        return quantize(uv, "round").to(uv.dtype)

    def encode(
        self, keypoints: Tensor, visible: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Encoded:
        """Gaussian maps (B, K, h, w) of peak 1 (``generator`` is unused: deterministic)."""
        uv, weights = self._prepare(keypoints, visible)
        heatmaps = gaussian_maps(self._centers(uv), self.heatmap_size, self.sigma, weights)
        return Encoded(weights, uv, self.heatmap_size, heatmaps=heatmaps)

    def _decode_cells(self, heatmaps: Tensor, activation: str) -> tuple[Tensor, Tensor]:
        ix, iy, peak = argmax_cells(heatmaps)
        uv = torch.stack((ix, iy), dim=-1).to(heatmaps.dtype)
        if self.quarter_offset:
            # Neighbours (left, right, up, down) from the 3 x 3 window; off-map neighbours are not used.
            values, _, _, inside = gather_window(heatmaps, ix, iy, 1)
            step_x = torch.sign(values[..., 5] - values[..., 3]) * (inside[..., 5] & inside[..., 3])
            step_y = torch.sign(values[..., 7] - values[..., 1]) * (inside[..., 7] & inside[..., 1])
            uv = uv + 0.25 * torch.stack((step_x, step_y), dim=-1).to(uv.dtype)
        return uv, peak


class DARK(Gaussian):
    """Gaussian target at the unquantized centre; decode by blur + log + one Taylor (Newton) step.

    Args:
        sigma: target standard deviation in cells.
        blur_sigma: standard deviation of the decoding blur, in cells (``None``: same as ``sigma``, as in
            DARK; ``0``: no blur). The blur is applied only on the window the Taylor step needs, with zero
            padding beyond the map border, which is the same as blurring the whole map.

    Border bias: the blur sees zeros beyond the border, which flattens the log-map on that side, so within
    about ``2 sigma`` of the border the step is biased toward the inside (measured with ``sigma = 2``:
    0.21 cells at 2 cells from the border, 0.05 at 3, 0.007 at 4, 6e-4 at 5). Without blur a noiseless
    target is decoded exactly wherever the 3 x 3 neighbourhood of its maximum lies on the map.
    """

    name = "dark"

    def __init__(
        self,
        input_size: tuple[int, int],
        heatmap_size: tuple[int, int],
        convention: str = "pixel_center",
        sigma: float = 2.0,
        blur_sigma: float | None = None,
    ) -> None:
        super().__init__(input_size, heatmap_size, convention, sigma=sigma)
        self.blur_sigma = self.sigma if blur_sigma is None else float(blur_sigma)
        if self.blur_sigma < 0:
            raise ValueError(f"blur_sigma must be >= 0 cells, got {blur_sigma}")

    def _centers(self, uv: Tensor) -> Tensor:
        return uv

    def _decode_cells(self, heatmaps: Tensor, activation: str) -> tuple[Tensor, Tensor]:
        ix, iy, peak = argmax_cells(heatmaps)
        local = self._blurred_3x3(heatmaps, ix, iy)  # (B, K, 3, 3), rows = y - 1, y, y + 1
        log_h = torch.log(local.clamp(min=torch.finfo(local.dtype).tiny))
        gx = (log_h[..., 1, 2] - log_h[..., 1, 0]) / 2
        gy = (log_h[..., 2, 1] - log_h[..., 0, 1]) / 2
        hxx = log_h[..., 1, 2] - 2 * log_h[..., 1, 1] + log_h[..., 1, 0]
        hyy = log_h[..., 2, 1] - 2 * log_h[..., 1, 1] + log_h[..., 0, 1]
        hxy = (log_h[..., 2, 2] - log_h[..., 2, 0] - log_h[..., 0, 2] + log_h[..., 0, 0]) / 4
        det = hxx * hyy - hxy**2
        # Newton step -H^-1 g, with H^-1 = [[hyy, -hxy], [-hxy, hxx]] / det.
        safe_det = torch.where(det > 0, det, torch.ones_like(det))
        dx = -(hyy * gx - hxy * gy) / safe_det
        dy = -(-hxy * gx + hxx * gy) / safe_det
        # Refine only where the log-map is locally concave (a true maximum) and the 3 x 3 neighbourhood lies
        # on the map; the true mode is then within a cell of the argmax, so larger steps are noise.
        w, h = self.heatmap_size
        ok = (det > 0) & (hxx < 0) & (ix > 0) & (ix < w - 1) & (iy > 0) & (iy < h - 1)
        step = torch.stack((dx, dy), dim=-1).clamp(-1, 1) * ok[..., None]
        return torch.stack((ix, iy), dim=-1).to(heatmaps.dtype) + step, peak

    def _blurred_3x3(self, heatmaps: Tensor, ix: Tensor, iy: Tensor) -> Tensor:
        """The Gaussian-blurred map on the 3 x 3 cells around (ix, iy), from a local window only."""
        if self.blur_sigma == 0:
            values, _, _, _ = gather_window(heatmaps, ix, iy, 1)
            return values.unflatten(-1, (3, 3))
        kernel_radius = max(1, int(3 * self.blur_sigma + 0.5))  # taps beyond 3 sigma weigh < 1 %
        window = kernel_radius + 1
        values, _, _, _ = gather_window(heatmaps, ix, iy, window)
        size = 2 * window + 1
        patch = values.unflatten(-1, (size, size))  # (B, K, size, size), zero beyond the border
        kernel = gaussian_kernel_1d(self.blur_sigma, kernel_radius, heatmaps)
        # M[o, t] = kernel[t - o] maps the patch rows t to the blurred rows o = -1, 0, 1 (offset by window).
        taps = torch.arange(size, device=heatmaps.device) - window
        rel = taps[None, :] - torch.arange(-1, 2, device=heatmaps.device)[:, None] + kernel_radius
        valid = (rel >= 0) & (rel <= 2 * kernel_radius)
        M = torch.where(valid, kernel[rel.clamp(0, 2 * kernel_radius)], torch.zeros((), dtype=kernel.dtype))
        return torch.einsum("ot,bkts,ps->bkop", M, patch, M)


class UDP(DARK):
    """UDP's Gaussian variant: DARK's target and refinement in the ``"udp"`` coordinate convention."""

    name = "udp"

    def __init__(
        self,
        input_size: tuple[int, int],
        heatmap_size: tuple[int, int],
        convention: str = "udp",
        sigma: float = 2.0,
        blur_sigma: float | None = None,
    ) -> None:
        super().__init__(input_size, heatmap_size, convention, sigma=sigma, blur_sigma=blur_sigma)
