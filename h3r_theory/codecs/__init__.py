"""Heatmap codecs behind one protocol: swap a codec by name.

>>> import torch
>>> from h3r_theory import codecs
>>> codec = codecs.build("randomized_rounding", input_size=(256, 256), heatmap_size=(64, 64))
>>> keypoints = torch.tensor([[[100.3, 57.8], [12.0, 200.5]]])  # (B, K, 2) input pixels
>>> enc = codec.encode(keypoints, generator=torch.Generator().manual_seed(0))
>>> enc.heatmaps.shape                                            # (B, K, h, w) one-hot targets
torch.Size([1, 2, 64, 64])
>>> expected = codec.expected(keypoints).heatmaps                 # E[target]: the bilinear distribution
>>> coords, scores = codec.decode(expected, activation="probabilities")  # (B, K, 2) px, (B, K)
>>> torch.allclose(coords, keypoints, atol=1e-4)                  # lossless in expectation
True
>>> codec.default_activation, codec.default_loss                  # how to decode, what to train with
('logits', 'spatial_softmax_cross_entropy')
"""

from __future__ import annotations

import importlib
import pkgutil

from .argmax import Argmax, quantize
from .base import Encoded, HeatmapCodec
from .gaussian import DARK, UDP, Gaussian
from .randomized_rounding import RandomizedRounding, fit_temperature
from .soft_argmax import SoftArgmax, soft_argmax_cells

# Every module of this package is imported, and every HeatmapCodec subclass defined in one that declares its
# own ``name`` is registered: adding a codec is one new module (and its test), with no list to edit here.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def _package_codecs(cls: type[HeatmapCodec]):
    for sub in cls.__subclasses__():
        if sub.__module__.startswith(f"{__name__}.") and "name" in vars(sub):
            yield sub
        yield from _package_codecs(sub)


CODECS: dict[str, type[HeatmapCodec]] = {}
for _cls in _package_codecs(HeatmapCodec):
    if CODECS.setdefault(_cls.name, _cls) is not _cls:
        raise ImportError(f"two codecs are named {_cls.name!r}: {CODECS[_cls.name]} and {_cls}")


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
