"""Batched building blocks shared by the decoders: peaks, local windows, separable Gaussians.

All functions work on (B, K, h, w) maps without any Python loop over keypoints.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class Peak(NamedTuple):
    """The first maximum of every map: cells ``ix``, ``iy`` (B, K) long and the peak ``value`` (B, K)."""

    ix: Tensor
    iy: Tensor
    value: Tensor


def argmax_cells(heatmaps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Location of the maximum of each map.

    Args:
        heatmaps: (B, K, h, w).
    Returns:
        ``ix`` and ``iy`` (B, K) long cell indices, and the peak values (B, K). Ties go to the first cell
        in row-major order, the same on CPU and CUDA. A NaN counts as the maximum (its map's peak value is
        NaN), so a map holding NaN or +inf anywhere has a non-finite peak: :meth:`HeatmapCodec.decode
        <h3r_theory.codecs.base.HeatmapCodec.decode>` checks the input's finiteness on the peaks alone.

    On CPU (float32, float64) this is numpy's ``argmax`` over the flattened maps: a single read of every
    cell, where torch's reductions over a short last axis (``amax(-1)`` over 48 cells, ``max(dim=-1)``)
    take more than one memory pass (``benchmarks/codecs.py`` prints them side by side). Elsewhere: the row
    maxima (``amax``), the first row holding the largest of them, then the first column of that row.
    """
    h, w = heatmaps.shape[-2:]
    lead = heatmaps.shape[:-2]
    if heatmaps.device.type == "cpu" and heatmaps.dtype in (torch.float32, torch.float64):
        flat = heatmaps.reshape(-1, h * w)  # a view for contiguous maps
        index = torch.from_numpy(flat.detach().numpy().argmax(-1))  # first maximum; NaN wins, as in torch
        peak = flat.gather(-1, index[:, None])[:, 0]
        ix, iy = index % w, torch.div(index, w, rounding_mode="floor")
        return ix.reshape(lead), iy.reshape(lead), peak.reshape(lead)
    maps = heatmaps.reshape(-1, h, w)
    row_max = maps.amax(-1)  # (N, h)
    iy = row_max.argmax(-1)  # first row that holds the peak
    rows = maps[torch.arange(maps.shape[0], device=maps.device), iy]  # (N, w)
    ix = rows.argmax(-1)  # first column of that row
    peak = rows.gather(-1, ix[:, None])[:, 0]
    return ix.reshape(lead), iy.reshape(lead), peak.reshape(lead)


def constant_maps(heatmaps: Tensor, ix: Tensor, iy: Tensor) -> Tensor:
    """(B, K) bool, True where a map holds one value everywhere (it then has no location).

    ``ix, iy`` are the maps' first-maximum cells from :func:`argmax_cells`: a constant map has its first
    maximum at cell (0, 0), so only those maps are scanned (usually none), not the whole batch.
    """
    candidates = (ix == 0) & (iy == 0)
    constant = torch.zeros_like(candidates)
    if candidates.any():
        flat = heatmaps.flatten(-2)[candidates]
        constant[candidates] = flat.amax(-1) == flat.amin(-1)
    return constant


def map_logsumexp(heatmaps: Tensor, peak: Tensor, chunk_cells: int = 1 << 18) -> Tensor:
    """log(sum(exp(map))) of every map (B, K, h, w) -> (B, K), given its maximum ``peak`` (B, K).

    The softmax normaliser of a logit map, which the scores need. ``torch.logsumexp`` over a large batch
    builds full-size temporaries; here the maps are processed in chunks of about ``chunk_cells`` cells
    (1 MB of float32) through one reused buffer small enough to stay in cache. Each chunk costs three torch
    calls, so much smaller chunks pay the per-call overhead more often and much larger ones fall out of
    cache (``benchmarks/codecs.py`` times this part as a multiple of a memory pass).
    """
    h, w = heatmaps.shape[-2:]
    if torch.is_grad_enabled() and (heatmaps.requires_grad or peak.requires_grad):
        # The in-place buffer below cannot carry gradients; a differentiable decode takes torch's own.
        return torch.logsumexp(heatmaps.flatten(-2), dim=-1)
    flat = heatmaps.reshape(-1, h * w)
    top = peak.reshape(-1, 1)
    rows = max(1, chunk_cells // (h * w))
    out = flat.new_empty(flat.shape[0])
    buffer = flat.new_empty(min(rows, flat.shape[0]), h * w)
    for start in range(0, flat.shape[0], rows):
        stop = min(start + rows, flat.shape[0])
        part = buffer[: stop - start]
        torch.sub(flat[start:stop], top[start:stop], out=part)
        part.exp_()
        torch.sum(part, dim=-1, out=out[start:stop])
    return (out.log_() + top[:, 0]).reshape(peak.shape)


def window_offsets(radius: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Offsets (P,) in x and y of a (2r+1) x (2r+1) window, row-major (y outer, x inner)."""
    span = torch.arange(-radius, radius + 1, device=device)
    dy, dx = torch.meshgrid(span, span, indexing="ij")
    return dx.reshape(-1), dy.reshape(-1)


BORDERS = ("zero", "reflect", "replicate")


def gather_window(
    heatmaps: Tensor, ix: Tensor, iy: Tensor, radius: int, border: str = "zero"
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The (2r+1)^2 cells around ``(ix, iy)`` of every map.

    Args:
        heatmaps: (B, K, h, w); ix, iy: (B, K) long centre cells.
        border: what window cells beyond the map border hold: ``"zero"``, ``"reflect"`` (mirrored about the
            outermost cell, ``x[-1] = x[1]``) or ``"replicate"`` (the outermost cell repeated).
    Returns:
        values (B, K, P), their cell coordinates x and y (B, K, P) as longs, and an ``inside`` mask (B, K, P)
        that is False for window cells beyond the map border.
    """
    h, w = heatmaps.shape[-2:]
    dx, dy = window_offsets(radius, heatmaps.device)
    x = ix[..., None] + dx
    y = iy[..., None] + dy
    inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    if border == "reflect":
        rx, ry = _reflect(x, w), _reflect(y, h)
    else:
        rx, ry = x, y
    flat = ry.clamp(0, h - 1) * w + rx.clamp(0, w - 1)
    values = heatmaps.flatten(-2).gather(-1, flat)
    if border == "zero":
        values = torch.where(inside, values, torch.zeros_like(values))
    return values, x, y, inside


def gather_patch(
    heatmaps: Tensor, ix: Tensor, iy: Tensor, radius: int, border: str = "zero"
) -> tuple[Tensor, Tensor, Tensor]:
    """The (2r+1) x (2r+1) patch around ``(ix, iy)`` of every map: the cells of :func:`gather_window`.

    A patch that lies on the map is a strided view of it (``unfold``), copied out by one indexing with
    three (B K,) indices; only the patches that cross the border are gathered cell by cell, with a
    (B, K, 2r+1, 2r+1) index built one axis at a time, which costs several full-size integer operations
    per cell. Both copy the same values, so the result is the same bit for bit (``benchmarks/codecs.py``
    times this part).

    Args:
        heatmaps: (B, K, h, w); ix, iy: (B, K) long centre cells; border: ``"zero"``, ``"reflect"`` or
            ``"replicate"``, as in :func:`gather_window`.
    Returns:
        ``patch`` (B, K, 2r+1, 2r+1), rows y - r .. y + r, columns x - r .. x + r, and ``inside_x``,
        ``inside_y`` (B, K, 2r+1) bool, False for columns and rows beyond the border. Under ``"zero"`` the
        off-map cells of ``patch`` hold the nearest on-map cell's value, not 0: the caller applies the masks
        (their outer product is the window's ``inside`` mask).
    """
    h, w = heatmaps.shape[-2:]
    size = 2 * radius + 1
    span = torch.arange(-radius, radius + 1, device=heatmaps.device)
    x = ix[..., None] + span
    y = iy[..., None] + span
    inside_x, inside_y = (x >= 0) & (x < w), (y >= 0) & (y < h)
    if size > h or size > w:
        return _indexed_patch(heatmaps, x, y, border), inside_x, inside_y
    maps = heatmaps.reshape(-1, h, w)
    x0 = (ix - radius).clamp(0, w - size).reshape(-1)  # the on-map patch nearest to the wanted one
    y0 = (iy - radius).clamp(0, h - size).reshape(-1)
    windows = maps.unfold(1, size, 1).unfold(2, size, 1)  # (N, h - S + 1, w - S + 1, S, S), a view
    patch = windows[torch.arange(maps.shape[0], device=maps.device), y0, x0]  # (N, S, S)
    crosses = ((x0 != ix.reshape(-1) - radius) | (y0 != iy.reshape(-1) - radius)).nonzero()[:, 0]
    if crosses.numel():
        n = maps.shape[0]
        patch[crosses] = _indexed_patch(
            maps, x.reshape(n, size)[crosses], y.reshape(n, size)[crosses], border, crosses
        )
    return patch.reshape(*ix.shape, size, size), inside_x, inside_y


def _indexed_patch(heatmaps: Tensor, x: Tensor, y: Tensor, border: str, maps: Tensor | None = None) -> Tensor:
    """Cells at rows ``y`` and columns ``x`` (..., S), off-map ones mapped per ``border``: (..., S, S).

    Without ``maps``, ``heatmaps`` is (B, K, h, w) and ``x, y`` are (B, K, S); with ``maps`` (M,) long,
    ``heatmaps`` is (N, h, w), ``x, y`` are (M, S) and patch ``m`` is read from map ``maps[m]`` (no copy of
    those maps is made).
    """
    h, w = heatmaps.shape[-2:]
    if border == "reflect":
        x, y = _reflect(x, w), _reflect(y, h)
    x, y = x.clamp(0, w - 1), y.clamp(0, h - 1)
    index = (y * w)[..., :, None] + x[..., None, :]  # (..., S, S) cell indices within a map
    size = x.shape[-1]
    if maps is not None:
        return heatmaps.reshape(-1)[index + (maps * (h * w))[:, None, None]]
    return heatmaps.flatten(-2).gather(-1, index.flatten(-2)).unflatten(-1, (size, size))


def _reflect(t: Tensor, size: int) -> Tensor:
    """Indices mirrored about cells 0 and size - 1 (one reflection; farther ones are clamped by the caller)."""
    t = torch.where(t < 0, -t, t)
    return torch.where(t > size - 1, 2 * (size - 1) - t, t)


def cell_grid(size: int, like: Tensor) -> Tensor:
    """Cell-centre coordinates 0..size-1 with ``like``'s dtype and device."""
    return torch.arange(size, dtype=like.dtype, device=like.device)


def gaussian_profiles(centers: Tensor, heatmap_size: tuple[int, int], sigma: float) -> tuple[Tensor, Tensor]:
    """Unnormalised 1-D Gaussians exp(-(t - c)^2 / (2 sigma^2)) along x (B, K, w) and y (B, K, h).

    A 2-D isotropic Gaussian is their outer product, ``gy[..., :, None] * gx[..., None, :]``: building the
    two profiles costs O(w + h) per keypoint instead of O(w * h) exponentials.
    """
    w, h = heatmap_size
    gx = torch.exp(-((cell_grid(w, centers) - centers[..., 0:1]) ** 2) / (2 * sigma**2))
    gy = torch.exp(-((cell_grid(h, centers) - centers[..., 1:2]) ** 2) / (2 * sigma**2))
    return gx, gy


def gaussian_maps(centers: Tensor, heatmap_size: tuple[int, int], sigma: float, weights: Tensor) -> Tensor:
    """(B, K, h, w) Gaussians of peak 1 at ``centers`` (B, K, 2) cells, zeroed where ``weights`` is 0."""
    gx, gy = gaussian_profiles(centers, heatmap_size, sigma)
    gy = gy * weights[..., None]
    return gy[..., :, None] * gx[..., None, :]


def gaussian_kernel_1d(sigma: float, radius: int, like: Tensor) -> Tensor:
    """A normalised 1-D Gaussian kernel of 2r+1 taps, dtype/device of ``like``."""
    t = torch.arange(-radius, radius + 1, dtype=like.dtype, device=like.device)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    return kernel / kernel.sum()
