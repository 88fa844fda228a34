"""Batched building blocks shared by the decoders: peaks, local windows, separable Gaussians.

All functions work on (B, K, h, w) maps without any Python loop over keypoints.
"""

from __future__ import annotations

import torch
from torch import Tensor


def argmax_cells(heatmaps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Location of the maximum of each map.

    Args:
        heatmaps: (B, K, h, w).
    Returns:
        ``ix`` and ``iy`` (B, K) long cell indices, and the peak values (B, K). Ties go to the first cell
        in row-major order, the same on CPU and CUDA.
    """
    w = heatmaps.shape[-1]
    peak, flat_index = heatmaps.flatten(-2).max(dim=-1)
    return flat_index % w, flat_index // w, peak


def window_offsets(radius: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Offsets (P,) in x and y of a (2r+1) x (2r+1) window, row-major (y outer, x inner)."""
    span = torch.arange(-radius, radius + 1, device=device)
    dy, dx = torch.meshgrid(span, span, indexing="ij")
    return dx.reshape(-1), dy.reshape(-1)


def gather_window(
    heatmaps: Tensor, ix: Tensor, iy: Tensor, radius: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The (2r+1)^2 cells around ``(ix, iy)`` of every map.

    Args:
        heatmaps: (B, K, h, w); ix, iy: (B, K) long centre cells.
    Returns:
        values (B, K, P), their cell coordinates x and y (B, K, P) as longs, and an ``inside`` mask (B, K, P)
        that is False for window cells beyond the map border (their values are returned as 0).
    """
    h, w = heatmaps.shape[-2:]
    dx, dy = window_offsets(radius, heatmaps.device)
    x = ix[..., None] + dx
    y = iy[..., None] + dy
    inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    flat = y.clamp(0, h - 1) * w + x.clamp(0, w - 1)
    values = heatmaps.flatten(-2).gather(-1, flat)
    values = torch.where(inside, values, torch.zeros_like(values))
    return values, x, y, inside


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
