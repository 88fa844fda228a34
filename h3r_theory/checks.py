"""Input validation shared by codecs, losses and metrics.

Every check raises ``ValueError`` with a message that names the argument, the expected shape and what was
found, and for non-finite values the first offending ``(batch, keypoint)`` index, so that a bad sample in a
batch of thousands can be found.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _first_index(mask: Tensor) -> tuple[int, ...]:
    return tuple(int(i) for i in mask.nonzero()[0].tolist())


def check_keypoints(keypoints: Tensor, visible: Tensor | None = None, name: str = "keypoints") -> Tensor:
    """Check ``keypoints`` is a floating (B, K, 2) tensor, finite wherever it is visible.

    Invisible keypoints may hold anything (datasets fill them with 0, -1 or NaN): their coordinates are
    never used. Returns ``keypoints`` unchanged.
    """
    if not isinstance(keypoints, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (B, K, 2), got {type(keypoints).__name__}")
    if keypoints.dim() != 3 or keypoints.shape[-1] != 2:
        raise ValueError(f"{name} must have shape (B, K, 2) (x then y), got {tuple(keypoints.shape)}")
    if not keypoints.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor (float32 or float64), got {keypoints.dtype}")
    bad = ~torch.isfinite(keypoints).all(dim=-1)
    if visible is not None:
        bad &= check_visible(visible, keypoints) > 0  # shape and device first: no raw broadcasting error
    if bad.any():
        b, k = _first_index(bad)
        raise ValueError(
            f"{name} has a non-finite value at (batch, keypoint) = ({b}, {k}): {keypoints[b, k].tolist()}"
        )
    return keypoints


def check_visible(visible: Tensor | None, keypoints: Tensor, name: str = "visible") -> Tensor:
    """Return visibility as a float mask (B, K) on the keypoints' device and dtype (1 = use, 0 = ignore).

    Accepts ``None`` (all visible), a bool tensor, or numbers (COCO's 0/1/2 count as ``> 0``).
    """
    B, K = keypoints.shape[:2]
    if visible is None:
        return torch.ones(B, K, dtype=keypoints.dtype, device=keypoints.device)
    if not isinstance(visible, Tensor):
        raise ValueError(
            f"{name} must be a torch.Tensor of shape ({B}, {K}) or None, got {type(visible).__name__}"
        )
    if tuple(visible.shape) != (B, K):
        raise ValueError(f"{name} must have shape (B, K) = ({B}, {K}), got {tuple(visible.shape)}")
    if visible.device != keypoints.device:
        raise ValueError(f"{name} is on {visible.device} but keypoints are on {keypoints.device}")
    if visible.is_floating_point() and not torch.isfinite(visible).all():
        b, k = _first_index(~torch.isfinite(visible))
        raise ValueError(f"{name} has a non-finite value at (batch, keypoint) = ({b}, {k})")
    return (visible > 0).to(keypoints.dtype)


def check_generator(generator: object, device: torch.device, name: str = "generator") -> None:
    """Check ``generator`` is ``None`` or a ``torch.Generator`` on ``device``'s type (CPU or CUDA)."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise ValueError(
            f"{name} must be a torch.Generator or None, got {type(generator).__name__} {generator!r}; "
            "use torch.Generator().manual_seed(seed) for a seed"
        )
    if generator.device.type != device.type:
        raise ValueError(f"{name} is on {generator.device} but keypoints are on {device}")


def check_heatmaps(
    heatmaps: Tensor, heatmap_size: tuple[int, int], name: str = "heatmaps", finite: bool = True
) -> Tensor:
    """Check ``heatmaps`` is a finite floating (B, K, h, w) tensor with ``(w, h) == heatmap_size``.

    ``finite=False`` checks only the type, shape and dtype: for a caller that reduces the maps anyway and
    checks the result with :func:`check_heatmap_peaks` instead of reading every cell a second time.
    """
    w, h = heatmap_size
    if not isinstance(heatmaps, Tensor):
        raise ValueError(
            f"{name} must be a torch.Tensor of shape (B, K, {h}, {w}), got {type(heatmaps).__name__}"
        )
    if heatmaps.dim() != 4 or tuple(heatmaps.shape[-2:]) != (h, w):
        raise ValueError(
            f"{name} must have shape (B, K, h, w) = (B, K, {h}, {w}) for heatmap_size (w, h) = ({w}, {h}), "
            f"got {tuple(heatmaps.shape)}"
        )
    if not heatmaps.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor (float32 or float64), got {heatmaps.dtype}")
    if not finite:
        return heatmaps
    # Fast path: a sum is finite iff every term is (a 50M-cell isfinite() mask costs ~50x more). A finite
    # map whose sum overflows falls through to the exact per-map scan, which then finds nothing.
    if not torch.isfinite(heatmaps.sum()):
        finite_maps = torch.isfinite(heatmaps).flatten(-2).all(dim=-1)
        if not finite_maps.all():
            b, k = _first_index(~finite_maps)
            raise ValueError(f"{name} has a non-finite value in the map at (batch, keypoint) = ({b}, {k})")
    return heatmaps


def check_heatmap_peaks(peaks: Tensor, name: str = "heatmaps") -> Tensor:
    """Check the maxima (B, K) of heatmaps are finite, naming the first map whose maximum is not.

    A NaN or +inf anywhere in a map makes its maximum NaN or +inf (NaN propagates through ``max``), so this
    refuses the same maps as :func:`check_heatmaps` from B x K values instead of every cell. The one
    difference: a map whose maximum is finite may hold -inf cells (masked logits: ``exp(-inf) = 0``, and
    probability decoders clamp negatives to 0); a map that is -inf everywhere is refused.
    """
    if not torch.isfinite(peaks).all():  # the mask of offenders only when there is one
        b, k = _first_index(~torch.isfinite(peaks))
        raise ValueError(f"{name} has a non-finite value in the map at (batch, keypoint) = ({b}, {k})")
    return peaks


def check_positive(value: object, name: str = "sigma", zero: bool = False, unit: str = "cells") -> float:
    """``value`` as a float, or ``ValueError`` naming ``name`` unless it is finite and > 0 (>= 0 if ``zero``)."""
    rule = f"{name} must be {'>=' if zero else '>'} 0 and finite ({unit}), got {value!r}"
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(rule) from None
    if not math.isfinite(number) or number < 0 or (number == 0 and not zero):
        raise ValueError(rule)
    return number


FLOAT32 = torch.finfo(torch.float32)
# A Gaussian's nearest cells lie up to (0.5, 0.5) cells from an off-grid centre: exp(-0.25 / sigma^2) must
# stay above float32's smallest normal number, or the target is all zeros (a 1e-320 sigma gave NaN cells,
# 0 / 0 at the centre). About 0.05355 cells (a hair above the exact bound, for the rounding of float32 exp).
SIGMA_MIN = math.sqrt(0.25 / -math.log(FLOAT32.tiny)) * (1 + 2**-10)
# Above this, exp(-1 / (2 sigma^2)) rounds to 1 in float32: the peak's neighbours equal it and argmax reads
# the first of them. About 2896 cells.
SIGMA_MAX = 1.0 / math.sqrt(FLOAT32.eps)
# The logits decode divides by the temperature: 1 / T must be a finite float32.
TEMPERATURE_MIN = 1.0 / FLOAT32.max


def check_sigma(value: object, name: str = "sigma") -> float:
    """``value`` as a float in [:data:`SIGMA_MIN`, :data:`SIGMA_MAX`] cells, or ``ValueError`` naming it and
    saying which end the arithmetic cannot hold."""
    number = check_positive(value, name)
    if number < SIGMA_MIN:
        raise ValueError(
            f"{name} must be >= {SIGMA_MIN:.4g} cells, got {value!r}: a narrower Gaussian underflows to 0 "
            "in float32 at the cells nearest its centre"
        )
    if number > SIGMA_MAX:
        raise ValueError(
            f"{name} must be <= {SIGMA_MAX:.4g} cells, got {value!r}: a wider Gaussian's neighbouring cells "
            "equal its peak in float32"
        )
    return number


def check_temperature(value: object, name: str = "temperature") -> float:
    """``value`` as a float >= :data:`TEMPERATURE_MIN` and finite, or ``ValueError`` naming it."""
    number = check_positive(value, name, unit="logit scale")
    if number < TEMPERATURE_MIN:
        raise ValueError(
            f"{name} must be >= {TEMPERATURE_MIN:.4g} (logit scale), got {value!r}: the decode divides the "
            "logits by it, and 1 / temperature overflows float32"
        )
    return number


def check_int(value: object, name: str, minimum: int) -> int:
    """``value`` as an int, or ``ValueError`` naming ``name`` unless it is an integer >= ``minimum``.

    A float such as ``2.7`` is refused rather than truncated; ``4.0`` and numpy integers are accepted.
    """
    try:
        number = int(value)
        exact = number == value
    except (TypeError, ValueError, OverflowError):
        exact = False
    if not exact or isinstance(value, bool) or number < minimum:
        raise ValueError(f"{name} must be >= {minimum} and an integer, got {value!r}")
    return number
