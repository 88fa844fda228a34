"""Heatmap codecs behind one protocol: swap a codec by name.

>>> from h3r_theory import codecs
>>> codec = codecs.build("randomized_rounding", input_size=(256, 256), heatmap_size=(64, 64))
>>> enc = codec.encode(keypoints)            # keypoints (B, K, 2) in input pixels
>>> coords, scores = codec.decode(heatmaps)  # (B, K, 2) input pixels, (B, K)
"""

from __future__ import annotations

from .argmax import Argmax, quantize
from .base import Encoded, HeatmapCodec
from .gaussian import DARK, UDP, Gaussian
from .randomized_rounding import RandomizedRounding, fit_temperature
from .soft_argmax import SoftArgmax, soft_argmax_cells

CODECS: dict[str, type[HeatmapCodec]] = {
    cls.name: cls for cls in (RandomizedRounding, Argmax, Gaussian, DARK, UDP, SoftArgmax)
}


def available() -> list[str]:
    """Names accepted by :func:`build`."""
    return sorted(CODECS)


def build(name: str, input_size: tuple[int, int], heatmap_size: tuple[int, int], **options) -> HeatmapCodec:
    """Construct a codec by name (``"randomized_rounding"``, ``"argmax"``, ``"gaussian"``, ``"dark"``,
    ``"udp"``, ``"soft_argmax"``) with its options, e.g. ``build("argmax", ..., rounding="floor")``."""
    if name not in CODECS:
        raise ValueError(f"unknown codec {name!r}; available: {available()}")
    return CODECS[name](input_size, heatmap_size, **options)


__all__ = [
    "Argmax",
    "CODECS",
    "DARK",
    "Encoded",
    "Gaussian",
    "HeatmapCodec",
    "RandomizedRounding",
    "SoftArgmax",
    "UDP",
    "available",
    "build",
    "fit_temperature",
    "quantize",
    "soft_argmax_cells",
]
