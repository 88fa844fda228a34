"""Exact geometric transforms (torch, batched, CPU or GPU) and photometric jitter.

Everything is built as 3x3 homogeneous matrices acting on pixel-centre coordinates (pixel ``i`` has its
centre at ``i``, see :mod:`h3r_theory.conventions`). The SAME matrix maps the keypoints
(:func:`transform_points`) and resamples the pixels (:func:`warp_image`), so a keypoint stays on the image
feature it marks, to floating-point accuracy, whatever the crop, scale, rotation or flip.

Resampling uses ``affine_grid`` / ``grid_sample`` with ``align_corners=False``, whose normalised
coordinate of pixel centre ``x`` in an image ``W`` pixels wide is ``x_norm = (2 x + 1) / W - 1``
(:func:`pixel_to_normalized`). Matrices are float64 (composition and inversion stay exact to ~1e-12);
images and points keep their own dtype and device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from h3r_theory.conventions import check_size


def _as_batch(value, batch: int, dtype=torch.float64, device=None, width: int = 1) -> Tensor:
    t = torch.as_tensor(value, dtype=dtype, device=device)
    if width == 1:
        return t.expand(batch).clone() if t.dim() == 0 else t.reshape(batch)
    return t.expand(batch, width).clone() if t.dim() == 1 else t.reshape(batch, width)


def pixel_to_normalized(size: Sequence[int], dtype=torch.float64, device=None) -> Tensor:
    """(3, 3) matrix from pixel-centre coordinates to ``align_corners=False`` normalised ones.

    ``x_norm = (2 x + 1) / W - 1``: pixel centre 0 -> ``-1 + 1/W``, the image edge ``-0.5`` -> ``-1``.
    """
    W, H = check_size(size, "size")
    return torch.tensor(
        [[2.0 / W, 0.0, 1.0 / W - 1.0], [0.0, 2.0 / H, 1.0 / H - 1.0], [0.0, 0.0, 1.0]],
        dtype=dtype,
        device=device,
    )


def crop_matrix(
    center: Tensor,
    size: Tensor,
    input_size: Sequence[int],
    rotation: Tensor | None = None,
    flip: Tensor | None = None,
) -> Tensor:
    """Matrices (B, 3, 3) float64 from ORIGINAL image pixels to network-input pixels.

    The box of ``size`` (B, 2) ``(width, height)`` original pixels centred on ``center`` (B, 2) is scaled
    isotropically so that it fits the input (the shorter fit wins, the other axis shows more context),
    rotated counter-clockwise on screen by ``rotation`` (B,) degrees about its centre, and placed with its
    centre on the input centre ``((W - 1) / 2, (H - 1) / 2)``. ``flip`` (B,) bool mirrors the result,
    ``x -> W - 1 - x`` (:func:`h3r_theory.conventions.flip_x`).
    """
    W, H = check_size(input_size, "input_size")
    center = torch.as_tensor(center, dtype=torch.float64)
    device = center.device
    B = center.shape[0]
    center = center.reshape(B, 2)
    size = _as_batch(size, B, device=device, width=2)
    if not (size > 0).all():
        raise ValueError(f"crop size must be positive, found {size[~(size > 0).all(-1)][0].tolist()}")
    k = torch.minimum(W / size[:, 0], H / size[:, 1])  # input pixels per original pixel
    theta = (
        torch.zeros(B, dtype=torch.float64, device=device)
        if rotation is None
        else _as_batch(rotation, B, device=device)
    )
    theta = theta * (math.pi / 180.0)
    # y points down on screen, so a counter-clockwise turn on screen is the matrix [[c, s], [-s, c]].
    cos, sin = torch.cos(theta) * k, torch.sin(theta) * k
    M = torch.zeros(B, 3, 3, dtype=torch.float64, device=device)
    M[:, 0, 0], M[:, 0, 1] = cos, sin
    M[:, 1, 0], M[:, 1, 1] = -sin, cos
    M[:, 2, 2] = 1.0
    M[:, :2, 2] = torch.tensor([(W - 1) / 2.0, (H - 1) / 2.0], dtype=torch.float64, device=device) - (
        M[:, :2, :2] @ center.unsqueeze(-1)
    ).squeeze(-1)
    if flip is not None:
        M = torch.where(
            _as_batch(flip, B, dtype=torch.bool, device=device)[:, None, None], flip_matrix(W, device) @ M, M
        )
    return M


def flip_matrix(width: int, device=None) -> Tensor:
    """(3, 3) float64 horizontal mirror ``x -> width - 1 - x`` of an image ``width`` pixels wide."""
    return torch.tensor(
        [[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64, device=device
    )


def resize_matrix(from_size: Sequence[int], to_size: Sequence[int], device=None) -> Tensor:
    """(3, 3) float64 pixel-centre map of a plain resize: ``x' = (x + 0.5) W'/W - 0.5`` per axis."""
    W, H = check_size(from_size, "from_size")
    W2, H2 = check_size(to_size, "to_size")
    ax, ay = W2 / W, H2 / H
    return torch.tensor(
        [[ax, 0.0, 0.5 * ax - 0.5], [0.0, ay, 0.5 * ay - 0.5], [0.0, 0.0, 1.0]],
        dtype=torch.float64,
        device=device,
    )


def transform_points(points: Tensor, matrix: Tensor) -> Tensor:
    """Apply ``matrix`` (B, 3, 3) or (B, 2, 3) to ``points`` (B, K, 2); same dtype/device as ``points``."""
    A = matrix[..., :2, :2].to(points.dtype)
    t = matrix[..., :2, 2].to(points.dtype)
    return points @ A.transpose(-1, -2) + t.unsqueeze(-2)


def invert(matrix: Tensor) -> Tensor:
    """Inverse of (B, 3, 3) affine matrices, or of (B, 2, 3) ones (returned as (B, 2, 3))."""
    if matrix.shape[-2] == 2:
        full = torch.cat(
            [matrix, matrix.new_tensor([0.0, 0.0, 1.0]).expand(*matrix.shape[:-2], 1, 3)], dim=-2
        )
        return torch.linalg.inv(full)[..., :2, :]
    return torch.linalg.inv(matrix)


def warp_image(
    image: Tensor, matrix: Tensor, output_size: Sequence[int], mode: str = "bilinear", antialias: bool = True
) -> Tensor:
    """Resample ``image`` (B, C, H, W) so that output pixel ``q`` shows source point ``matrix^-1 q``.

    ``matrix`` (B, 3, 3) maps source pixels to output pixels (e.g. :func:`crop_matrix`). Outside the source
    the output is 0. With ``antialias``, a strong minification (< 1/2) first resizes the source with an
    antialiasing filter by the exact pixel-centre map of :func:`resize_matrix`, composed into ``matrix``,
    so keypoints stay exact while the crop does not alias. Returns (B, C, H_out, W_out), image dtype.
    """
    W, H = check_size(output_size, "output_size")
    if image.dim() != 4:
        raise ValueError(f"image must have shape (B, C, H, W), got {tuple(image.shape)}")
    B, _, h, w = image.shape
    matrix = matrix.to(device=image.device, dtype=torch.float64)
    if matrix.shape != (B, 3, 3):
        raise ValueError(f"matrix must have shape ({B}, 3, 3), got {tuple(matrix.shape)}")
    if antialias and mode == "bilinear":
        # linear magnification of the batch: sqrt(|det|) of the 2x2 part, smallest over the batch
        k = float(torch.linalg.det(matrix[:, :2, :2]).abs().sqrt().min())
        if k < 0.5:
            w2, h2 = max(1, round(w * k * 2)), max(1, round(h * k * 2))
            image = F.interpolate(image, size=(h2, w2), mode="bilinear", align_corners=False, antialias=True)
            matrix = matrix @ torch.linalg.inv(resize_matrix((w, h), (w2, h2), device=matrix.device))
            h, w = h2, w2
    # theta maps output-normalised to source-normalised: N_src . M^-1 . N_out^-1
    theta = (
        pixel_to_normalized((w, h), device=matrix.device)
        @ torch.linalg.inv(matrix)
        @ torch.linalg.inv(pixel_to_normalized((W, H), device=matrix.device))
    )
    grid = F.affine_grid(theta[:, :2, :].to(image.dtype), [B, image.shape[1], H, W], align_corners=False)
    return F.grid_sample(image, grid, mode=mode, padding_mode="zeros", align_corners=False)


def random_affine_params(
    batch: int,
    scale_range: tuple[float, float] = (0.75, 1.25),
    rotation: float = 30.0,
    rotation_prob: float = 0.6,
    translation: float = 0.05,
    flip_prob: float = 0.5,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Random crop perturbations (all float64 / bool, on CPU).

    ``scale`` (B,) multiplies the crop size (> 1 zooms out), ``rotation`` (B,) degrees uniform in
    ``[-rotation, rotation]`` applied with ``rotation_prob`` (else 0, as HRNet does), ``shift`` (B, 2) as a
    fraction of the crop size, uniform in ``[-translation, translation]``, ``flip`` (B,) bool.
    """
    u = torch.rand(batch, 5, dtype=torch.float64, generator=generator)
    lo, hi = scale_range
    scale = lo + (hi - lo) * u[:, 0]
    angle = rotation * (2 * u[:, 1] - 1) * (u[:, 2] < rotation_prob)
    shift = translation * (2 * torch.rand(batch, 2, dtype=torch.float64, generator=generator) - 1)
    flip = u[:, 3] < flip_prob
    return {"scale": scale, "rotation": angle, "shift": shift, "flip": flip}


def color_jitter(
    image: Tensor,
    brightness: float = 0.2,
    contrast: float = 0.2,
    saturation: float = 0.2,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Random brightness, contrast and saturation factors in ``[1 - a, 1 + a]`` per image (B, 3, H, W),
    clamped to [0, 1]. Geometry is untouched, so keypoints need no update."""
    B = image.shape[0]
    f = 1 + (2 * torch.rand(B, 3, generator=generator, dtype=torch.float64) - 1) * torch.tensor(
        [brightness, contrast, saturation], dtype=torch.float64
    )
    f = f.to(device=image.device, dtype=image.dtype)
    out = image * f[:, 0, None, None, None]
    gray = (0.299 * out[:, 0] + 0.587 * out[:, 1] + 0.114 * out[:, 2]).unsqueeze(1)
    out = (out - gray.mean(dim=(2, 3), keepdim=True)) * f[:, 1, None, None, None] + gray.mean(
        dim=(2, 3), keepdim=True
    )
    gray = (0.299 * out[:, 0] + 0.587 * out[:, 1] + 0.114 * out[:, 2]).unsqueeze(1)
    out = (out - gray) * f[:, 2, None, None, None] + gray
    return out.clamp(0.0, 1.0)
