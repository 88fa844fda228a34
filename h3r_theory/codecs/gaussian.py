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

import math

import torch
from torch import Tensor

from ..checks import SIGMA_MAX, check_positive, check_sigma
from .argmax import quantize
from .base import Encoded, HeatmapCodec
from .peaks import (
    Peak,
    _indexed_patch,
    gather_patch,
    gather_window,
    gaussian_kernel_1d,
    gaussian_maps,
    onmap_patch,
)


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
        self.sigma = check_sigma(sigma)
        self.quarter_offset = bool(quarter_offset)

    def _centers(self, uv: Tensor) -> Tensor:
        """Where the target Gaussian is centred: the rounded cell (MSRA)."""
        return quantize(uv, "round").to(uv.dtype)

    def encode(
        self, keypoints: Tensor, visible: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Encoded:
        """Gaussian maps (B, K, h, w) of peak 1 (``generator`` is unused: deterministic)."""
        uv, weights = self._prepare(keypoints, visible, generator)
        heatmaps = gaussian_maps(self._centers(uv), self.heatmap_size, self.sigma, weights)
        return Encoded(weights, uv, self.heatmap_size, heatmaps=heatmaps)

    def _decode_cells(self, heatmaps: Tensor, activation: str, peak: Peak) -> Tensor:
        ix, iy = peak.ix, peak.iy
        uv = torch.stack((ix, iy), dim=-1).to(heatmaps.dtype)
        if self.quarter_offset:
            # Neighbours (left, right, up, down) from the 3 x 3 window; off-map neighbours are not used.
            values, _, _, inside = gather_window(heatmaps, ix, iy, 1)
            step_x = torch.sign(values[..., 5] - values[..., 3]) * (inside[..., 5] & inside[..., 3])
            step_y = torch.sign(values[..., 7] - values[..., 1]) * (inside[..., 7] & inside[..., 1])
            uv = uv + 0.25 * torch.stack((step_x, step_y), dim=-1).to(uv.dtype)
        return uv


DARK_BORDERS = ("zero", "reflect", "replicate", "normalized", "skip", "unblurred")


def taylor_refine(
    heatmaps: Tensor,
    ix: Tensor,
    iy: Tensor,
    blur_sigma: float,
    border: str = "unblurred",
    max_step: float = math.inf,
    margin: int = 3,
) -> Tensor:
    """DARK's sub-cell refinement of the argmax cells, batched: (B, K) cells -> (B, K, 2) coordinates in cells.

    Blurs each map with a Gaussian of ``blur_sigma`` cells (only on the window the step needs), takes the
    log and moves ``(ix, iy)`` by one Newton step of its second-order Taylor expansion, ``-H^-1 grad``. The
    step is taken only where the log-map is locally concave (``det H > 0``, ``H_xx < 0``) and the 3 x 3
    neighbourhood of the argmax lies on the map; elsewhere the argmax cell is returned.

    Args:
        heatmaps: (B, K, h, w) probability-like maps (values <= 0 are treated as the smallest positive float).
        ix, iy: (B, K) long argmax cells.
        blur_sigma: decoding blur in cells; 0 disables it.
        border: what the blur sees beyond the map: ``"zero"`` (zero padding), ``"reflect"``, ``"replicate"``
            (the outermost cell repeated), ``"normalized"`` (zero padding divided by the blurred on-map
            mask), ``"skip"`` (no refinement within ``margin`` cells of the border, the peer toolbox's rule
            for ``margin = 2``), or ``"unblurred"`` (zero padding, but within ``margin`` cells of the border
            the step is taken on the unblurred map, whose log is exactly quadratic for a Gaussian).
        max_step: largest step per axis, in cells (``math.inf``: the plain Newton step).
        margin: the border distance in cells, from the argmax cell, of the ``"skip"`` and ``"unblurred"`` rules.
    """
    if border not in DARK_BORDERS:
        raise ValueError(f"border must be one of {DARK_BORDERS}, got {border!r}")
    h, w = heatmaps.shape[-2:]
    peak_uv = torch.stack((ix, iy), dim=-1).to(heatmaps.dtype)
    if ix.numel() == 0:  # an empty batch (B = 0 or K = 0): the patch views below need at least one map
        return peak_uv
    near = (ix < margin) | (ix > w - 1 - margin) | (iy < margin) | (iy > h - 1 - margin)
    if border == "unblurred":
        # Centre the 3 x 3 stencil on the map: on an outermost cell this is a one-sided fit of the
        # parabola through that cell and the next two inward, exact for the log of a Gaussian.
        # (A map under 3 cells wide has no such stencil: the argmax is kept, unrefined, below.)
        ix = ix.clamp(1, w - 2) if w >= 3 else ix
        iy = iy.clamp(1, h - 2) if h >= 3 else iy
    # (B, K, 3, 3), rows y - 1, y, y + 1; under "unblurred" the peaks near the border take the raw cells below
    unused = near if border == "unblurred" and blur_sigma > 0 else None
    local = _blurred_3x3(heatmaps, ix, iy, blur_sigma, border, unused)
    if border == "unblurred" and blur_sigma > 0 and near.any():
        # The unblurred 3 x 3 cells (0 beyond the border) of the peaks near the border, and only theirs.
        which = near.reshape(-1).nonzero()[:, 0]
        span = torch.arange(-1, 2, device=heatmaps.device)
        x, y = ix.reshape(-1)[which, None] + span, iy.reshape(-1)[which, None] + span  # (M, 3)
        raw = _indexed_patch(heatmaps.reshape(-1, h, w), x, y, "zero", which)
        inside = ((y >= 0) & (y < h))[:, :, None] & ((x >= 0) & (x < w))[:, None, :]
        raw = torch.where(inside, raw, torch.zeros((), dtype=raw.dtype, device=raw.device))
        local = local.reshape(-1, 3, 3).index_put((which,), raw).view(local.shape)
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
    edge = margin if border == "skip" else 1  # the 3 x 3 neighbourhood must lie on the map
    ok = (det > 0) & (hxx < 0) & (ix >= edge) & (ix <= w - 1 - edge) & (iy >= edge) & (iy <= h - 1 - edge)
    step = torch.stack((dx, dy), dim=-1)
    if math.isfinite(max_step):
        step = step.clamp(-max_step, max_step)
    uv = torch.where(ok[..., None], torch.stack((ix, iy), dim=-1).to(heatmaps.dtype) + step, peak_uv)
    if border == "unblurred":
        # The unblurred step is noisy (its curvature can come out near 0): near the border it may move the
        # estimate at most one cell from the argmax, the reach of a noiseless map's step.
        bounded = torch.minimum(torch.maximum(uv, peak_uv - 1), peak_uv + 1)
        uv = torch.where(near[..., None], bounded, uv)
    # Every codec decodes inside the cell-centre box [0, w - 1] x [0, h - 1] (the package's edge semantics:
    # a keypoint in the half-cell border band decodes onto the outermost cell centre, not beyond it).
    return torch.stack((uv[..., 0].clamp(0, w - 1), uv[..., 1].clamp(0, h - 1)), dim=-1)


def _blurred_3x3(
    heatmaps: Tensor, ix: Tensor, iy: Tensor, blur_sigma: float, border: str, unused: Tensor | None = None
) -> Tensor:
    """The Gaussian-blurred map on the 3 x 3 cells around (ix, iy), from a local window only.

    ``unused`` (B, K) bool marks peaks whose result the caller replaces: under zero padding their blur may
    be left wrong when getting it right costs more (a patch moved onto the map).
    """
    pad = border if border in ("reflect", "replicate") else "zero"
    if blur_sigma == 0:
        values, _, _, _ = gather_window(heatmaps, ix, iy, 1, pad)
        return values.unflatten(-1, (3, 3))
    h, w = heatmaps.shape[-2:]
    kernel_radius = max(1, int(3 * blur_sigma + 0.5))  # taps beyond 3 sigma weigh < 1 %
    window = kernel_radius + 1
    size = 2 * window + 1
    kernel = gaussian_kernel_1d(blur_sigma, kernel_radius, heatmaps)
    # M[o, t] = kernel[t - o] maps the patch rows t to the blurred rows o = -1, 0, 1 (offset by window).
    taps = torch.arange(size, device=heatmaps.device) - window
    rel = taps[None, :] - torch.arange(-1, 2, device=heatmaps.device)[:, None] + kernel_radius
    valid = (rel >= 0) & (rel <= 2 * kernel_radius)
    M = torch.where(valid, kernel[rel.clamp(0, 2 * kernel_radius)], torch.zeros((), dtype=kernel.dtype))
    if pad == "zero" and size <= h and size <= w:
        # Zero padding: the on-map patch nearest to the centred one holds all of its on-map cells, the rest
        # being zeros. Where the patch is the centred one (all but the peaks near the border), the 3 x 3 blur
        # M P M^T is the same linear map of the size^2 cells for every patch: blurred[o, p] =
        # sum_ts M[o, t] P[t, s] M[p, s], one (n, size^2) x (size^2, 9) product over the batch (faster than
        # a batch of small products, or than two products of a (n size, size) matrix by (size, 3): these
        # skinny shapes run far below the memory speed). Where the patch had to move d = x0 - (ix - window)
        # cells onto the map, blur it with the kernel shifted by d, its taps beyond the patch dropped (they
        # would meet the zeros): shifted[d + window][o, t] = M[o, t + d]. This reads no cell twice and needs
        # no cell-by-cell gather at the border.
        patch, x0, y0 = onmap_patch(heatmaps, ix, iy, window)  # (B, K, size, size)
        n = ix.numel()
        flat = patch.reshape(n, size, size)
        blur_map = torch.einsum("ot,ps->opts", M, M).reshape(9, size * size)  # (9, size^2), row o * 3 + p
        blurred = torch.nn.functional.linear(flat.reshape(n, size * size), blur_map).view(n, 3, 3)
        moved = (x0 != ix - window) | (y0 != iy - window)
        moved = (moved if unused is None else moved & ~unused).reshape(-1).nonzero()[:, 0]
        if moved.numel():
            wide = M.new_zeros(3, 3 * size)
            wide[:, size : 2 * size] = M
            columns = torch.arange(size, device=heatmaps.device)
            shifted = torch.stack([wide[:, size + d + columns] for d in range(-window, window + 1)])
            dy = (y0 - (iy - window) + window).reshape(-1)[moved]
            dx = (x0 - (ix - window) + window).reshape(-1)[moved]
            blurred = blurred.index_put((moved,), shifted[dy] @ flat[moved] @ shifted[dx].transpose(-1, -2))
        blurred = blurred.reshape(*ix.shape, 3, 3)
    else:
        patch, inside_x, inside_y = gather_patch(heatmaps, ix, iy, window, pad)  # (B, K, size, size)
        if pad == "zero":
            # The patch holds the nearest on-map cell beyond the border: zero those cells.
            inside = inside_y[..., :, None] & inside_x[..., None, :]
            patch = torch.where(inside, patch, torch.zeros((), dtype=patch.dtype))
        blurred = torch.einsum("ot,bkts,ps->bkop", M, patch, M)
    if border == "normalized":
        # The on-map mask of a window is separable (a box): blur its row and column profiles separately.
        span = torch.arange(-window, window + 1, device=heatmaps.device)
        inside_x = (ix[..., None] + span >= 0) & (ix[..., None] + span < w)  # (B, K, size): on-map columns
        inside_y = (iy[..., None] + span >= 0) & (iy[..., None] + span < h)
        rows, cols = inside_y.to(patch.dtype), inside_x.to(patch.dtype)  # (B, K, size): y profile, x profile
        weight = (
            torch.einsum("ot,bkt->bko", M, rows)[..., :, None]
            * torch.einsum("ps,bks->bkp", M, cols)[..., None, :]
        )
        blurred = blurred / weight.clamp(min=torch.finfo(weight.dtype).tiny)
    return blurred


class DARK(Gaussian):
    """Gaussian target at the unquantized centre; decode by blur + log + one Taylor (Newton) step.

    Args:
        sigma: target standard deviation in cells.
        blur_sigma: standard deviation of the decoding blur, in cells (``None``: same as ``sigma``, as in
            DARK; ``0``: no blur). The blur is applied only on the window the Taylor step needs.

    Decode rules (:func:`taylor_refine`), chosen by measurement: ``python benchmarks/dark_rules.py`` prints the
    tables the numbers below come from (output in ``benchmarks/results/dark_rules.txt``; sigma = blur = 2
    cells, 64 x 48 maps, 20,000 keypoints per row, additive noise of sd 0, 0.02, 0.05, 0.1 on unit-peak maps).

    * The Newton step is not clamped. Under noise the argmax can land more than a cell from the mode (1.1 %
      of keypoints at sd 0.05, 10.5 % at 0.1), and a +-1-cell clamp then cuts a correct step short: worst
      error 0.48 vs 0.18 cells at sd 0.05, 1.03 vs 0.37 at 0.1 (identical at sd 0 and 0.02). The result
      is only kept inside the cell-centre box ``[0, w - 1] x [0, h - 1]``, as for every codec (see
      :mod:`~h3r_theory.codecs.base`: a keypoint in the half-cell border band decodes onto the outermost
      cell centre), which never moves it away from a keypoint inside that box.
    * Near the border (argmax fewer than ``margin = 3`` cells from an edge cell) the step is taken on the
      *unblurred* map, whose log is exactly quadratic for a Gaussian, with the 3 x 3 stencil moved onto
      the map when the argmax is an outermost cell (a one-sided fit), bounded to one cell from the argmax.
      A blur there sees zeros beyond the border and pulls the estimate inward; reflect, replicate and
      normalised padding of the blur are worse still (table 2 of the script). Keypoints within 2 cells of the edge (the half-cell
      border band included), mean error in cells at sd 0 / 0.02 / 0.05 / 0.1: no refinement
      0.38 / 0.40 / 0.49 / 0.65, zero padding 0.44 / 0.45 / 0.48 / 0.56, skipping refinement within 2 cells
      (the peer toolbox's rule) 0.38 / 0.40 / 0.49 / 0.64, this rule 0.05 / 0.16 / 0.34 / 0.53 (at sd 0 all
      of it from the border band, whose keypoints decode onto the outermost cell centre). Its worst case
      under noise is larger (2.2 vs 1.5 cells at sd 0.05): the price of the unblurred step.
    * Farther in, the zero-padded blur's inward pull is what is left on a noiseless map: up to 0.11 cell
      with the argmax 3 cells from the edge, under 0.02 from 4 cells. A larger margin removes it but costs
      more under noise (table 3 of the script: margin 3 is the best mean at sd 0.02, margins 4-6 are worse
      at every sd > 0).
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
        self.blur_sigma = (
            self.sigma if blur_sigma is None else check_positive(blur_sigma, "blur_sigma", zero=True)
        )
        if (
            self.blur_sigma > SIGMA_MAX
        ):  # as for sigma; the blur's patch also grows with it (1e300 overflowed)
            raise ValueError(
                f"blur_sigma must be <= {SIGMA_MAX:.4g} cells, got {blur_sigma!r}: a wider blur's neighbouring "
                "cells equal its peak in float32"
            )

    def _centers(self, uv: Tensor) -> Tensor:
        return uv

    def _decode_cells(self, heatmaps: Tensor, activation: str, peak: Peak) -> Tensor:
        return taylor_refine(heatmaps, peak.ix, peak.iy, self.blur_sigma)


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
