"""Adapters: check codecs that were not written for this package's protocol, without rewriting them.

* :func:`function_codec`: a pair of plain functions ``encode_fn`` / ``decode_fn`` on torch tensors.
* :func:`numpy_codec`: the per-instance numpy protocol of the most widely used pose toolbox's codecs,
  ``encode(keypoints (N, K, D), keypoints_visible (N, K)) -> {"heatmaps": (K, H, W),
  "keypoint_weights": (N, K), ...}`` and ``decode(heatmaps (K, H, W)) -> (keypoints (N, K, D),
  scores (N, K))``, with keypoints in input pixels. That toolbox is never imported: any object with
  these two methods works.

Both return a :class:`~h3r_theory.testing.subject.CodecFactory`, which every invariant accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import frames
from .subject import (
    PROBE_SIZES,
    CodecFactory,
    Size,
    Subject,
    _unpack_decoded,
    _unpack_targets,
    built_label,
    label_of,
    refuse_non_heatmap,
)


class NumpyInstanceCodec(Subject):
    """A per-instance numpy codec seen as a batched torch one.

    Each batch element is one call with ``N = 1`` instance. Results come back as float64 CPU tensors, so
    the dtype/device invariants do not apply (``torch_native = False``); a stochastic numpy codec draws
    from its own random state, so the kit cannot seed it.
    """

    torch_native = False
    has_expected = False

    def __init__(self, codec: Any, input_size: Size, heatmap_size: Size, convention: str, stochastic=False):
        super().__init__(input_size, heatmap_size, convention)
        self.codec = codec
        self.stochastic = bool(stochastic)
        self.output_dtype = None

    def _saw(self, array: Any) -> np.ndarray:
        """``array`` as float64, noting its own float precision (float32 targets are compared as such)."""
        array = np.asarray(array)
        if array.dtype.kind == "f" and array.dtype.itemsize < 8:
            own = {2: torch.float16, 4: torch.float32}[array.dtype.itemsize]
            if self.output_dtype is None or torch.finfo(own).eps > torch.finfo(self.output_dtype).eps:
                self.output_dtype = own
        return array.astype(np.float64)

    def encode(self, keypoints, visible=None, generator=None):
        kp = keypoints.detach().cpu().numpy()
        B, K = kp.shape[:2]
        vis = (
            np.ones((B, K), np.float32)
            if visible is None
            else visible.detach().cpu().numpy().astype(np.float32)
        )
        maps, weights = [], []
        for b in range(B):
            out = self.codec.encode(kp[b : b + 1], vis[b : b + 1])
            maps.append(self._saw(out["heatmaps"]))
            weights.append(np.asarray(out["keypoint_weights"], dtype=np.float64).reshape(K))
        return torch.from_numpy(np.stack(maps)), torch.from_numpy(np.stack(weights))

    def decode(self, heatmaps, activation="probabilities"):
        maps = heatmaps.detach().cpu().numpy()
        coords, scores = [], []
        for b in range(maps.shape[0]):
            kp, sc = self.codec.decode(maps[b])
            coords.append(self._saw(kp)[0, :, :2])
            scores.append(np.asarray(sc, dtype=np.float64).reshape(-1))
        return torch.from_numpy(np.stack(coords)), torch.from_numpy(np.stack(scores))


def numpy_codec(
    factory: Callable[[Size, Size], Any],
    convention: str | None = None,
    stochastic: bool = False,
    *,
    label: str | None = None,
) -> CodecFactory:
    """Wrap ``factory(input_size, heatmap_size) -> codec`` whose codecs speak the per-instance numpy protocol.

    Args:
        factory: e.g. ``lambda i, h: MSRAHeatmap(input_size=i, heatmap_size=h, sigma=2)``.
        convention: the pixel convention the codec uses (``"msra"``, ``u = x / s``, for the toolbox's
            MSRA-style heatmaps; ``"udp"`` for its UDP codec; ``"corner"`` for floor-on-encode codecs). As
            everywhere in the kit, ``None`` reads the codec's ``convention`` attribute, else infers the
            convention under which its encode and decode agree, and the report says which.
        stochastic: the codec's ``encode`` draws random targets.
        label: the codec's name in reports (default: the factory's, or the class it builds when the factory
            is a lambda).
    """
    if convention is not None:
        frames.check_convention(convention)
    try:  # built once, to name it and to refuse a codec that makes no heatmaps
        built = factory(*PROBE_SIZES)
    except Exception:  # noqa: BLE001 - a factory for other geometries only: built when checked
        built = None
    name = label or (built_label(factory, built) if built is not None else label_of(factory))
    if built is not None:
        refuse_non_heatmap(built, "numpy", *PROBE_SIZES, name)

    def build(input_size: Size, heatmap_size: Size, convention: str) -> Subject:
        return NumpyInstanceCodec(
            factory(input_size, heatmap_size), input_size, heatmap_size, convention, stochastic
        )

    stated = getattr(built, "convention", None)
    if convention is None and isinstance(stated, str) and stated in frames.CONVENTIONS:
        return CodecFactory(build, stated, name, "codec")
    return CodecFactory(build, convention, name)


class FunctionCodec(Subject):
    """Plain functions behind the subject protocol (they receive the geometry as keywords)."""

    def __init__(self, encode_fn, decode_fn, expected_fn, input_size, heatmap_size, convention, stochastic):
        super().__init__(input_size, heatmap_size, convention)
        self.encode_fn, self.decode_fn, self.expected_fn = encode_fn, decode_fn, expected_fn
        self.stochastic = bool(stochastic)
        self.has_expected = expected_fn is not None or not stochastic

    def _sizes(self) -> dict:
        return {"input_size": self.input_size, "heatmap_size": self.heatmap_size}

    def encode(self, keypoints, visible=None, generator=None):
        extra = {"generator": generator} if self.stochastic else {}
        return _unpack_targets(self.encode_fn(keypoints, visible, **self._sizes(), **extra))

    def expected(self, keypoints, visible=None):
        if self.expected_fn is None:
            return self.encode(keypoints, visible)
        return _unpack_targets(self.expected_fn(keypoints, visible, **self._sizes()))

    def decode(self, heatmaps: Tensor, activation="probabilities"):
        return _unpack_decoded(self.decode_fn(heatmaps, **self._sizes()), heatmaps)


def function_codec(
    encode_fn: Callable,
    decode_fn: Callable,
    *,
    convention: str | None = None,
    expected_fn: Callable | None = None,
    stochastic: bool = False,
    label: str | None = None,
) -> CodecFactory:
    """Wrap plain functions into a codec the invariants accept.

    Args:
        encode_fn: ``encode_fn(keypoints (B, K, 2) px, visible (B, K) or None, *, input_size, heatmap_size
            [, generator]) -> heatmaps (B, K, h, w)`` or ``(heatmaps, weights (B, K))``; ``generator`` (a
            ``torch.Generator``) is passed only when ``stochastic``. Without weights, a keypoint's weight
            is 1 where its map has any non-zero cell.
        decode_fn: ``decode_fn(heatmaps, *, input_size, heatmap_size) -> keypoints (B, K, 2) px`` or
            ``(keypoints, scores (B, K))``.
        convention: the pixel convention the functions use (``None``: inferred, as for every entry point).
        expected_fn: for a stochastic encoder, ``E[encode_fn]`` with ``encode_fn``'s signature minus
            ``generator``; without it the round trip of a stochastic codec is not applicable.
        stochastic: ``encode_fn`` draws random targets.
        label: the codec's name in reports (default: the encode function's ``module:name``).
    """
    if convention is not None:
        frames.check_convention(convention)

    def build(input_size: Size, heatmap_size: Size, convention: str) -> Subject:
        return FunctionCodec(
            encode_fn, decode_fn, expected_fn, input_size, heatmap_size, convention, stochastic
        )

    return CodecFactory(build, convention, label or label_of(encode_fn))
