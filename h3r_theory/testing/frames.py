"""The pixel conventions the kit can claim for a codec: this package's three, plus ``corner``.

:mod:`h3r_theory.conventions` holds the package's conventions (``pixel_center``, ``msra``, ``udp``); the kit
also checks codecs that follow none of them. ``corner`` puts pixel *corners* at integer coordinates, so input
pixel ``i`` covers ``[i, i + 1)`` and cell ``j`` covers ``[j s, (j + 1) s)``, centred at ``(j + 0.5) s``::

    u = x / s - 0.5            x = (u + 0.5) s

It is the convention of a codec that encodes with ``floor(x / s)`` and decodes a cell ``j`` at its centre
``(j + 0.5) s`` (``floor(x / s) = round(u)``: under ``corner`` such a codec rounds to the nearest cell). The
image covers ``[0, W)`` and its horizontal flip is ``x -> W - x``, which maps ``u`` to ``w - 1 - u``: the flip
is exact, as under ``pixel_center``.

Every function here takes the same arguments as its namesake in :mod:`h3r_theory.conventions` plus the
convention, and defers to it for the package's conventions.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import conventions

CORNER = "corner"
#: Every convention a claim may name.
CONVENTIONS: tuple[str, ...] = tuple(conventions.CONVENTIONS) + (CORNER,)

#: One line per convention, for reports: how it maps input pixels ``x`` to cells ``u`` (stride ``s``).
FORMULAS = {
    "pixel_center": "u = (x + 0.5) / s - 0.5",
    "msra": "u = x / s",
    "udp": "u = x (w - 1) / (W - 1)",
    CORNER: "u = x / s - 0.5",
}


def check_convention(convention: str) -> str:
    """``convention`` unchanged, or ``ValueError`` listing the names the kit knows."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    return convention


def scale_and_offset(
    input_size, heatmap_size, convention: str
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Per-axis ``(a, b)`` with ``u = a x + b`` (input pixels -> cells)."""
    check_convention(convention)
    if convention != CORNER:
        return conventions._scale_and_offset(input_size, heatmap_size, convention)
    (W, H), (w, h) = (
        conventions.check_size(input_size, "input_size"),
        conventions.check_size(heatmap_size, "heatmap_size"),
    )
    return (w / W, h / H), (-0.5, -0.5)


def _affine(points: Tensor, scale, offset) -> Tensor:
    wide = torch.float64 if points.device.type != "mps" else points.dtype
    a = torch.tensor(scale, dtype=wide, device=points.device)
    b = torch.tensor(offset, dtype=wide, device=points.device)
    return (points.to(wide) * a + b).to(points.dtype)


def input_to_heatmap(xy: Tensor, input_size, heatmap_size, convention: str) -> Tensor:
    """Input pixels ``xy`` (..., 2) -> cells ``uv`` (..., 2) under ``convention``."""
    if convention != CORNER:
        return conventions.input_to_heatmap(xy, input_size, heatmap_size, check_convention(convention))
    return _affine(xy, *scale_and_offset(input_size, heatmap_size, convention))


def heatmap_to_input(uv: Tensor, input_size, heatmap_size, convention: str) -> Tensor:
    """Cells ``uv`` (..., 2) -> input pixels (..., 2) under ``convention``."""
    if convention != CORNER:
        return conventions.heatmap_to_input(uv, input_size, heatmap_size, check_convention(convention))
    (ax, ay), (bx, by) = scale_and_offset(input_size, heatmap_size, convention)
    return _affine(uv, (1.0 / ax, 1.0 / ay), (-bx / ax, -by / ay))


def heatmap_extent(heatmap_size, input_size, convention: str):
    """The half-open box, in cells, of the keypoints inside the input image (see
    :func:`h3r_theory.conventions.heatmap_extent`); ``corner``: ``[-0.5, w - 0.5)``, the image ``[0, W)``."""
    if convention != CORNER:
        try:
            return conventions.heatmap_extent(heatmap_size, input_size, check_convention(convention))
        except TypeError:  # a conventions module whose extent is the heatmap's own cells
            return conventions.heatmap_extent(heatmap_size)
    w, h = conventions.check_size(heatmap_size, "heatmap_size")
    return (-0.5, w - 0.5), (-0.5, h - 0.5)


def flip_x(xy: Tensor, width: int, convention: str) -> Tensor:
    """The horizontal mirror of points ``xy`` (..., 2) in an image ``width`` pixels wide: ``W - 1 - x`` when
    pixel centres are integers, ``W - x`` under ``corner`` (pixel corners are integers)."""
    if convention != CORNER:
        return conventions.flip_x(xy, width)
    flipped = xy.clone()
    flipped[..., 0] = width - xy[..., 0]
    return flipped


def heatmap_flip_offset(input_size, heatmap_size, convention: str) -> float:
    """Cells to shift a flipped heatmap by to match the flipped image's heatmap: ``(s - 1) / s`` for
    ``msra``, 0 for the others (``corner`` included)."""
    if convention != CORNER:
        return conventions.heatmap_flip_offset(input_size, heatmap_size, check_convention(convention))
    return 0.0


def in_image(xy: Tensor, input_size, convention: str) -> Tensor:
    """Mask of the points ``xy`` (..., 2) inside the input image under ``convention``."""
    if convention != CORNER:
        return conventions.in_image(xy, input_size)
    W, H = conventions.check_size(input_size, "input_size")
    x, y = xy[..., 0], xy[..., 1]
    return (x >= 0) & (x < W) & (y >= 0) & (y < H)
