"""The pixel convention: the ONE place that maps input pixels to heatmap cells and back.

Every codec, transform and flip in the package goes through these functions; nothing else re-derives
them. Coordinates are always ``(..., 2)`` tensors holding ``x`` then ``y``.

Three conventions are supported. Write ``W`` for the input width in pixels, ``w`` for the heatmap width
in cells and ``s = W / w`` for the stride (the same formulas hold for the height):

``"pixel_center"`` (the default)
    Pixel centres sit at integer coordinates, so input pixel ``i`` covers ``[i - 0.5, i + 0.5)`` and
    heatmap cell ``j`` covers the input interval ``[j*s - 0.5, (j+1)*s - 0.5)``. The map is the one of
    ``align_corners=False`` resampling::

        u = (x + 0.5) / s - 0.5            x = (u + 0.5) * s - 0.5

    The image covers ``x in [-0.5, W - 0.5)`` and the heatmap covers ``u in [-0.5, w - 0.5)``: the two
    boxes coincide, and horizontal flip (``x -> W - 1 - x``, ``u -> w - 1 - u``) commutes with the map
    exactly, so no "shift the flipped heatmap by one pixel" correction is ever needed.

``"msra"``
    ``u = x / s``, as in the MSRA SimpleBaselines / HRNet code. The heatmap box is shifted by
    ``(s - 1) / (2 s)`` cells against the image, so the flipped heatmap is off by ``(s - 1) / s`` cells
    (:func:`heatmap_flip_offset` returns it); that is the origin of the well-known flip "shift" hack.

``"udp"``
    ``u = x * (w - 1) / (W - 1)``, the unbiased data processing of Huang et al. (CVPR 2020): the first
    and last pixel centres map onto the first and last cell centres. Flip is exact, like the default.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

Convention = Literal["pixel_center", "msra", "udp"]
CONVENTIONS: tuple[str, ...] = ("pixel_center", "msra", "udp")

Size = Sequence[int]  # (width, height), like the codec API


def check_convention(convention: str) -> str:
    """Return ``convention`` unchanged, or raise ``ValueError`` listing the valid names."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    return convention


def check_size(size: Size, name: str) -> tuple[int, int]:
    """Validate a ``(width, height)`` pair of positive ints; ``name`` is used in the error message."""
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (width, height) pair of positive ints, got {size!r}") from None
    if width <= 0 or height <= 0 or (width, height) != tuple(size):
        raise ValueError(f"{name} must be a (width, height) pair of positive ints, got {size!r}")
    return width, height


def _scale_and_offset(
    input_size: Size, heatmap_size: Size, convention: str
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Per-axis ``(a, b)`` such that ``u = a * x + b`` (input pixels -> heatmap cells).

    All three conventions are affine, per axis, which is what makes the round trips exact.
    """
    check_convention(convention)
    W, H = check_size(input_size, "input_size")
    w, h = check_size(heatmap_size, "heatmap_size")
    if convention == "pixel_center":
        ax, ay = w / W, h / H
        return (ax, ay), (0.5 * ax - 0.5, 0.5 * ay - 0.5)
    if convention == "msra":
        return (w / W, h / H), (0.0, 0.0)
    # udp: a single pixel/cell axis has no spacing to preserve; map it onto cell 0.
    ax = (w - 1) / (W - 1) if W > 1 else 0.0
    ay = (h - 1) / (H - 1) if H > 1 else 0.0
    return (ax, ay), (0.0, 0.0)


def _affine(points: Tensor, scale: tuple[float, float], offset: tuple[float, float]) -> Tensor:
    """``points * scale + offset`` per axis, computed in float64 and rounded once to ``points.dtype``.

    Rounding once matters in float32: a 1000-pixel coordinate has a spacing of 6e-5 px, and two roundings
    per map would already spend the 1e-4 px budget of a lossless round trip.
    """
    wide = torch.float64 if points.device.type != "mps" else points.dtype  # MPS has no float64
    a = torch.tensor(scale, dtype=wide, device=points.device)
    b = torch.tensor(offset, dtype=wide, device=points.device)
    return (points.to(wide) * a + b).to(points.dtype)


def input_to_heatmap(
    xy: Tensor, input_size: Size, heatmap_size: Size, convention: Convention = "pixel_center"
) -> Tensor:
    """Map input-pixel coordinates ``xy`` (..., 2) to heatmap-cell coordinates ``uv`` (..., 2).

    Cell ``j`` has its centre at ``u = j``. Same dtype and device as ``xy``.
    """
    scale, offset = _scale_and_offset(input_size, heatmap_size, convention)
    return _affine(xy, scale, offset)


def heatmap_to_input(
    uv: Tensor, input_size: Size, heatmap_size: Size, convention: Convention = "pixel_center"
) -> Tensor:
    """Inverse of :func:`input_to_heatmap`: heatmap cells ``uv`` (..., 2) -> input pixels (..., 2)."""
    (ax, ay), (bx, by) = _scale_and_offset(input_size, heatmap_size, convention)
    if ax == 0.0 or ay == 0.0:
        raise ValueError("the udp convention cannot invert a 1-pixel-wide input axis")
    return _affine(uv, (1.0 / ax, 1.0 / ay), (-bx / ax, -by / ay))


def stride(input_size: Size, heatmap_size: Size) -> tuple[float, float]:
    """Input pixels per heatmap cell along x and y, ``(W / w, H / h)``."""
    W, H = check_size(input_size, "input_size")
    w, h = check_size(heatmap_size, "heatmap_size")
    return W / w, H / h


def heatmap_extent(
    heatmap_size: Size, input_size: Size | None = None, convention: Convention = "pixel_center"
) -> tuple[tuple[float, float], tuple[float, float]]:
    """The half-open box ``[u0, u1) x [v0, v1)``, in cells, of the keypoints that a heatmap can hold.

    The rule, the same for every convention: a keypoint is on the heatmap iff it lies in the input image,
    ``x in [-0.5, W - 0.5)`` and ``y in [-0.5, H - 0.5)`` (pixel ``i`` covers ``[i - 0.5, i + 0.5)``). Mapped
    through each convention (stride ``s = W / w``):

    * ``pixel_center``: ``[-0.5, w - 0.5)``, the heatmap's own cells, whatever the input size;
    * ``msra``: ``[-1 / (2 s), w - 1 / (2 s))``. The image reaches almost a whole cell beyond the last cell
      centre, so the last ``s / 2`` pixels of the image are kept (they are kept by MSRA-style training too),
      and a keypoint there lies up to ``1 - 1 / (2 s)`` cells beyond the last cell centre;
    * ``udp``: ``[-a / 2, w - 1 + a / 2)`` with ``a = (w - 1) / (W - 1)``: half an input pixel beyond the
      first and last cell centres.

    Inside the box but outside ``[0, w - 1] x [0, h - 1]`` a keypoint is in the border band, where
    cell-based codecs clamp it onto the outermost cell centres. ``input_size`` may be omitted only for
    ``pixel_center``, whose box does not depend on it.
    """
    w, h = check_size(heatmap_size, "heatmap_size")
    if check_convention(convention) == "pixel_center":
        return (-0.5, w - 0.5), (-0.5, h - 0.5)  # exact, rather than through a rounded affine map
    if input_size is None:
        raise ValueError(f"heatmap_extent needs input_size under the {convention!r} convention")
    W, H = check_size(input_size, "input_size")
    (ax, ay), (bx, by) = _scale_and_offset(input_size, heatmap_size, convention)
    # A 1-pixel udp axis maps every x onto cell 0 (scale 0): keep the heatmap's own cells there.
    x_box = (ax * -0.5 + bx, ax * (W - 0.5) + bx) if ax > 0 else (-0.5, w - 0.5)
    y_box = (ay * -0.5 + by, ay * (H - 0.5) + by) if ay > 0 else (-0.5, h - 0.5)
    return x_box, y_box


def in_image(xy: Tensor, input_size: Size) -> Tensor:
    """Boolean mask (...) of the points ``xy`` (..., 2), in input pixels, inside the image box
    ``[-0.5, W - 0.5) x [-0.5, H - 0.5)``: the points that are on the heatmap, under every convention.

    Tested in input pixels, so a point exactly on the image's edge is classified exactly (through the
    rounded affine map of :func:`input_to_heatmap` it could land an ulp on either side of the cell box).
    """
    W, H = check_size(input_size, "input_size")
    x, y = xy[..., 0], xy[..., 1]
    return (x >= -0.5) & (x < W - 0.5) & (y >= -0.5) & (y < H - 0.5)


def on_heatmap(
    uv: Tensor, heatmap_size: Size, input_size: Size | None = None, convention: Convention = "pixel_center"
) -> Tensor:
    """Boolean mask (...) of the points ``uv`` (..., 2) that lie inside :func:`heatmap_extent`."""
    (u0, u1), (v0, v1) = heatmap_extent(heatmap_size, input_size, convention)
    u, v = uv[..., 0], uv[..., 1]
    return (u >= u0) & (u < u1) & (v >= v0) & (v < v1)


def flip_x(xy: Tensor, width: int) -> Tensor:
    """Mirror points ``xy`` (..., 2) about the vertical centre line of an image ``width`` pixels wide.

    Under the pixel-centre (and udp) convention pixel ``i`` goes to ``width - 1 - i``; this is the exact
    mirror of the pixels that :func:`torch.flip` produces, for input pixels and heatmap cells alike.
    """
    flipped = xy.clone()
    flipped[..., 0] = (width - 1) - xy[..., 0]
    return flipped


def heatmap_flip_offset(
    input_size: Size, heatmap_size: Size, convention: Convention = "pixel_center"
) -> float:
    """How many cells to the right a flipped heatmap must be shifted to match the flipped image's heatmap.

    ``0`` for ``pixel_center`` and ``udp`` (flip is exact); ``(s - 1) / s`` for ``msra``, which is the
    correction the MSRA code approximates by shifting the flipped heatmap one whole cell to the right.
    """
    W, _ = check_size(input_size, "input_size")
    w, _ = check_size(heatmap_size, "heatmap_size")
    x = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    # Map (flip in input, then to heatmap) and (to heatmap, then flip in heatmap); report their gap.
    via_input = input_to_heatmap(flip_x(x, W), input_size, heatmap_size, convention)
    via_heatmap = flip_x(input_to_heatmap(x, input_size, heatmap_size, convention), w)
    return float(via_input[0, 0] - via_heatmap[0, 0])


def swap_pairs(values: Tensor, flip_pairs: Sequence[tuple[int, int]], dim: int) -> Tensor:
    """Swap the entries of each left/right pair along ``dim`` (keypoints or heatmap channels).

    ``flip_pairs`` lists each pair once, e.g. ``[(0, 1), (2, 3)]``; the permutation it defines must be an
    involution, which :func:`flip_permutation` checks.
    """
    perm = flip_permutation(values.shape[dim], flip_pairs)
    return values.index_select(dim, torch.as_tensor(perm, device=values.device))


def flip_permutation(num_keypoints: int, flip_pairs: Sequence[tuple[int, int]]) -> list[int]:
    """The keypoint permutation of a horizontal flip; raises if the pairs overlap or are out of range."""
    perm = list(range(num_keypoints))
    seen: set[int] = set()
    for a, b in flip_pairs:
        for i in (a, b):
            if not 0 <= i < num_keypoints:
                raise ValueError(f"flip pair ({a}, {b}) is out of range for {num_keypoints} keypoints")
            if i in seen:
                raise ValueError(f"keypoint {i} appears in more than one flip pair: {list(flip_pairs)}")
            seen.add(i)
        perm[a], perm[b] = b, a
    return perm


def flip_keypoints(xy: Tensor, width: int, flip_pairs: Sequence[tuple[int, int]] = ()) -> Tensor:
    """Keypoints ``xy`` (B, K, 2) of the horizontally flipped image: mirrored, with left/right swapped."""
    return swap_pairs(flip_x(xy, width), flip_pairs, dim=-2)


def flip_heatmaps(heatmaps: Tensor, flip_pairs: Sequence[tuple[int, int]] = ()) -> Tensor:
    """Heatmaps (B, K, h, w) of the horizontally flipped image (exact under ``pixel_center``/``udp``)."""
    return swap_pairs(torch.flip(heatmaps, dims=(-1,)), flip_pairs, dim=-3)
