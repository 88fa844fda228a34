"""Hypothesis strategies for codec inputs: geometries, keypoints (inside, border band, off the map),
visibility masks, conventions, dtypes and devices.

Keypoints are drawn in heatmap *cells* (``u = j`` is the centre of cell ``j``) and mapped to input pixels
through the claimed convention, so one strategy serves every convention and a shrunk example reads in
cells (``u = 0.5`` is "half a cell right of the first centre").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from hypothesis import strategies as st

from .. import conventions
from . import frames

#: Keypoints of the equivariance checks sit on odd multiples of 1/512 cell: exact in binary floating point,
#: and never on a cell centre nor on a rounding tie (x.5), where rounding codecs break symmetry by design.
GRID = 512


@dataclass(frozen=True)
class Geometry:
    """``input_size`` (W, H) pixels and ``heatmap_size`` (w, h) cells."""

    input_size: tuple[int, int]
    heatmap_size: tuple[int, int]


@dataclass(frozen=True)
class SearchSpace:
    """Which geometries the invariants explore.

    Attributes:
        input_size, heatmap_size: fix the geometry (both), fix one and draw the other through an integer
            stride, or leave both ``None`` to draw heatmaps of ``min_cells..max_cells`` cells per side and
            strides ``1..max_stride`` per axis.
    """

    input_size: tuple[int, int] | None = None
    heatmap_size: tuple[int, int] | None = None
    max_cells: int = 64
    max_stride: int = 16

    def __post_init__(self) -> None:
        if self.input_size is not None:
            conventions.check_size(self.input_size, "input_size")
        if self.heatmap_size is not None:
            conventions.check_size(self.heatmap_size, "heatmap_size")


#: Draw everything (frozen, so safe as a default argument).
DEFAULT_SPACE = SearchSpace()


def strides(max_stride: int = 16) -> st.SearchStrategy[int]:
    """Integer strides (input pixels per cell) ``1..max_stride``."""
    return st.integers(1, max_stride)


def conventions_() -> st.SearchStrategy[str]:
    return st.sampled_from(frames.CONVENTIONS)


def dtypes() -> st.SearchStrategy[torch.dtype]:
    return st.sampled_from([torch.float32, torch.float64])


def devices() -> st.SearchStrategy[torch.device]:
    """``cpu``, plus ``cuda`` where a CUDA device is present."""
    names = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    return st.sampled_from([torch.device(n) for n in names])


def geometries(space: SearchSpace = DEFAULT_SPACE, min_cells: int = 2, max_cells: int | None = None):
    """Geometries with at least ``min_cells`` (and at most ``max_cells``) heatmap cells per side.

    A fixed geometry smaller than ``min_cells`` yields nothing: callers check :func:`fits` first.
    """
    max_cells = min(space.max_cells, max_cells or space.max_cells)
    if space.input_size is not None and space.heatmap_size is not None:
        return st.just(Geometry(tuple(space.input_size), tuple(space.heatmap_size)))
    if space.input_size is not None:
        W, H = space.input_size
        xs = _divisor_cells(W, min_cells, space.max_stride)
        ys = _divisor_cells(H, min_cells, space.max_stride)
        return st.tuples(st.sampled_from(xs), st.sampled_from(ys)).map(lambda wh: Geometry((W, H), wh))
    if space.heatmap_size is not None:
        w, h = space.heatmap_size
        s = strides(space.max_stride)
        return st.tuples(s, s).map(lambda ss: Geometry((w * ss[0], h * ss[1]), (w, h)))
    cells = st.integers(min_cells, max(min_cells, max_cells))
    s = strides(space.max_stride)
    return st.tuples(cells, cells, s, s).map(lambda t: Geometry((t[0] * t[2], t[1] * t[3]), (t[0], t[1])))


def _divisor_cells(pixels: int, min_cells: int, max_stride: int) -> list[int]:
    """Heatmap sizes ``pixels / s`` for integer strides ``s <= max_stride``, largest stride first."""
    sizes = [pixels // s for s in range(max_stride, 0, -1) if pixels % s == 0 and pixels // s >= min_cells]
    return sizes or [pixels]  # no integer stride fits: the identity geometry (filtered by fits())


def probe_geometry(space: SearchSpace) -> tuple[tuple[int, int], tuple[int, int]]:
    """One fixed ``(input_size, heatmap_size)`` of ``space``, to build a codec once before the search."""
    if space.input_size is not None and space.heatmap_size is not None:
        return tuple(space.input_size), tuple(space.heatmap_size)
    if space.input_size is not None:
        W, H = space.input_size
        xs, ys = _divisor_cells(W, 2, space.max_stride), _divisor_cells(H, 2, space.max_stride)
        return (W, H), (xs[len(xs) // 2], ys[len(ys) // 2])
    if space.heatmap_size is not None:
        w, h = space.heatmap_size
        return (4 * w, 4 * h), (w, h)
    return (64, 64), (16, 16)


def fits(space: SearchSpace, min_cells: int) -> bool:
    """Whether ``space`` has any geometry with ``min_cells`` cells per side (False for a too-small fixed one)."""
    if space.heatmap_size is not None:
        return min(space.heatmap_size) >= min_cells
    if space.input_size is not None:
        return min(space.input_size) >= min_cells
    return space.max_cells >= min_cells


def min_cells_for(margin: float, extra: float = 0.0) -> int:
    """Smallest heatmap side with room for keypoints ``margin + extra`` cells from each border."""
    return max(2, int(math.ceil(2 * (margin + extra))) + 1)


@st.composite
def cell_coordinates(draw, size: int, margin: float = 0.0, count: int | None = None, max_count: int = 6):
    """A list of coordinates in ``[margin, size - 1 - margin]`` cells along one axis."""
    lo, hi = float(margin), float(size - 1 - margin)
    n = count if count is not None else draw(st.integers(1, max_count))
    coord = st.floats(lo, hi, allow_nan=False, allow_infinity=False) if hi > lo else st.just(lo)
    return [draw(coord) for _ in range(n)]


@st.composite
def keypoints_inside(draw, geometry: Geometry, margin: float = 0.0, max_keypoints: int = 6, count=None):
    """``[(u, v), ...]`` cells inside the cell-centre box shrunk by ``margin`` cells on every side."""
    w, h = geometry.heatmap_size
    n = count if count is not None else draw(st.integers(1, max_keypoints))
    us = draw(cell_coordinates(w, margin, count=n))
    vs = draw(cell_coordinates(h, margin, count=n))
    return list(zip(us, vs))


@st.composite
def grid_keypoints(draw, geometry: Geometry, margin: float = 0.0, max_keypoints: int = 4):
    """Like :func:`keypoints_inside` but on odd multiples of ``1 / GRID`` cell (see :data:`GRID`)."""
    w, h = geometry.heatmap_size

    def axis(size: int):
        lo = math.ceil(margin * GRID)
        hi = math.floor((size - 1 - margin) * GRID)
        odd = st.integers(lo // 2, max(lo // 2, (hi - 1) // 2)).map(lambda j: (2 * j + 1) / GRID)
        return odd.filter(lambda u: margin <= u <= size - 1 - margin)

    n = draw(st.integers(1, max_keypoints))
    return [(draw(axis(w)), draw(axis(h))) for _ in range(n)]


def heatmap_box(geometry: Geometry, convention: str) -> tuple[tuple[float, float], tuple[float, float]]:
    """The half-open box, in cells, of the keypoints the heatmap holds (those inside the input image):
    :func:`h3r_theory.conventions.heatmap_extent` for ``convention``."""
    return frames.heatmap_extent(geometry.heatmap_size, geometry.input_size, convention)


@st.composite
def keypoints_in_border_band(draw, geometry: Geometry, convention: str = "pixel_center"):
    """One keypoint in each border band (on the heatmap, beyond the outermost cell centre), the other axis
    inside: ``[(u, v)] * 4`` for the left, right, top and bottom bands."""
    w, h = geometry.heatmap_size
    (u0, u1), (v0, v1) = heatmap_box(geometry, convention)
    depth = st.floats(1e-6, 1 - 1e-6)  # the fraction of the band's width past the outermost centre
    u_in = draw(st.floats(0, w - 1))
    v_in = draw(st.floats(0, h - 1))
    return [
        (u0 * draw(depth), v_in),
        (w - 1 + draw(depth) * (u1 - (w - 1)), v_in),
        (u_in, v0 * draw(depth)),
        (u_in, h - 1 + draw(depth) * (v1 - (h - 1))),
    ]


@st.composite
def keypoints_off_heatmap(draw, geometry: Geometry, convention: str = "pixel_center"):
    """Keypoints just or far beyond each side of :func:`heatmap_box`: left, right, top, bottom."""
    w, h = geometry.heatmap_size
    (u0, u1), (v0, v1) = heatmap_box(geometry, convention)
    beyond = st.floats(1e-6, 8.0)
    u_in = draw(st.floats(0, w - 1))
    v_in = draw(st.floats(0, h - 1))
    return [
        (u0 - draw(beyond), v_in),
        (u1 + draw(beyond), v_in),
        (u_in, v0 - draw(beyond)),
        (u_in, v1 + draw(beyond)),
    ]


def visibility_masks(num_keypoints: int) -> st.SearchStrategy[list[bool]]:
    """Visibility flags for ``num_keypoints`` keypoints, at least one visible."""
    return st.lists(st.booleans(), min_size=num_keypoints, max_size=num_keypoints).filter(any)
