"""The codec under test, as the invariants see it: one geometry, torch tensors in and out.

A :class:`Subject` is a codec built for one ``(input_size, heatmap_size)``. Its methods return plain
tensors, whatever the wrapped codec returns (an :class:`~h3r_theory.codecs.Encoded`, a dict of numpy
arrays, a tuple), so that every invariant is written once. A :class:`CodecFactory` builds subjects for the
geometries that the strategies draw; :func:`as_factory` makes one from whatever a user passes (a codec
class, a factory function, or an adapter from :mod:`h3r_theory.testing.adapters`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .. import conventions

Size = tuple[int, int]
PROBE_SIZES: tuple[Size, Size] = ((64, 64), (16, 16))  # the geometry a factory is tried on first


class Subject:
    """A codec of one geometry behind the protocol the invariants use.

    Attributes:
        input_size, heatmap_size: (width, height) in pixels and cells.
        convention: the pixel convention the codec claims (see :mod:`h3r_theory.conventions`).
        stochastic: ``encode`` draws random targets; ``expected`` gives their mean.
        torch_native: the codec takes and returns torch tensors itself, so dtype, device and generator
            semantics can be checked (adapters that go through numpy are not).
        has_expected: ``expected`` exists (required for the round trip of a stochastic codec).
        has_activation: ``decode`` takes ``activation="probabilities" | "logits"``.
    """

    stochastic = False
    torch_native = True
    has_expected = True
    has_activation = False

    def __init__(self, input_size: Size, heatmap_size: Size, convention: str) -> None:
        self.input_size = conventions.check_size(input_size, "input_size")
        self.heatmap_size = conventions.check_size(heatmap_size, "heatmap_size")
        self.convention = conventions.check_convention(convention)

    def encode(
        self, keypoints: Tensor, visible: Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """(B, K, 2) input pixels -> targets (B, K, h, w) and loss weights (B, K)."""
        raise NotImplementedError

    def expected(self, keypoints: Tensor, visible: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """E[encode]; ``encode`` itself for a deterministic codec."""
        return self.encode(keypoints, visible)

    def targets(self, keypoints: Tensor, visible: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The deterministic target: ``expected`` for a stochastic codec, ``encode`` otherwise."""
        return self.expected(keypoints, visible) if self.stochastic else self.encode(keypoints, visible)

    def decode(self, heatmaps: Tensor, activation: str = "probabilities") -> tuple[Tensor, Tensor]:
        """(B, K, h, w) -> keypoints (B, K, 2) in input pixels and scores (B, K)."""
        raise NotImplementedError

    # -- coordinates, through the claimed convention -------------------------------------------------
    def to_input(self, uv: Tensor) -> Tensor:
        return conventions.heatmap_to_input(uv, self.input_size, self.heatmap_size, self.convention)

    def to_heatmap(self, xy: Tensor) -> Tensor:
        return conventions.input_to_heatmap(xy, self.input_size, self.heatmap_size, self.convention)

    def cell_px(self) -> Tensor:
        """Input pixels per heatmap cell along x and y, (2,) float64, under the claimed convention."""
        corners = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
        xy = self.to_input(corners)
        return xy[1] - xy[0]

    def describe(self) -> str:
        (W, H), (w, h) = self.input_size, self.heatmap_size
        sx, sy = self.cell_px().tolist()
        return f"heatmap {w}x{h}, input {W}x{H} (cell {sx:.4g}x{sy:.4g} px, {self.convention})"


class TorchCodec(Subject):
    """A codec of this package's protocol: ``encode``/``expected`` return an object with ``heatmaps``
    and ``weights``; ``decode(heatmaps, activation=...)`` returns ``(keypoints, scores)``."""

    def __init__(self, codec: Any, input_size: Size, heatmap_size: Size, convention: str) -> None:
        super().__init__(input_size, heatmap_size, convention)
        self.codec = codec
        self.stochastic = bool(getattr(codec, "stochastic", False))
        self.has_expected = hasattr(codec, "expected")
        try:
            self.has_activation = "activation" in inspect.signature(codec.decode).parameters
        except (TypeError, ValueError):
            self.has_activation = False

    def encode(self, keypoints, visible=None, generator=None):
        return _unpack_targets(self.codec.encode(keypoints, visible, generator=generator))

    def expected(self, keypoints, visible=None):
        if not self.has_expected:
            return self.encode(keypoints, visible)
        return _unpack_targets(self.codec.expected(keypoints, visible))

    def decode(self, heatmaps, activation="probabilities"):
        if self.has_activation:
            return _unpack_decoded(self.codec.decode(heatmaps, activation=activation), heatmaps)
        return _unpack_decoded(self.codec.decode(heatmaps), heatmaps)


def _unpack_targets(out: Any) -> tuple[Tensor, Tensor]:
    """(heatmaps, weights) from an Encoded-like object, a dict, a (maps, weights) pair, or bare maps."""
    if hasattr(out, "heatmaps"):
        return out.heatmaps, out.weights
    if isinstance(out, dict):
        return out["heatmaps"], out["weights"]
    if isinstance(out, tuple):
        return out[0], out[1]
    # bare maps: a keypoint has weight where its map has any mass
    return out, (out.flatten(-2).abs().amax(-1) > 0).to(out.dtype)


def _unpack_decoded(out: Any, heatmaps: Tensor) -> tuple[Tensor, Tensor]:
    """(keypoints, scores) from a pair or bare keypoints (scores then default to the map maxima)."""
    if isinstance(out, tuple):
        return out[0], out[1]
    return out, heatmaps.flatten(-2).amax(-1)


@dataclass
class CodecFactory:
    """Builds a :class:`Subject` for a geometry: ``factory(input_size, heatmap_size) -> Subject``.

    Attributes:
        build: the function that does it.
        convention: the claimed pixel convention, known before any codec is built (the strategies need it).
        label: a name for reports.
    """

    build: Callable[[Size, Size], Subject]
    convention: str
    label: str

    def __call__(self, input_size: Size, heatmap_size: Size) -> Subject:
        return self.build(tuple(input_size), tuple(heatmap_size))


def label_of(obj: Any) -> str:
    """``module:qualname`` of a class or function; a ``functools.partial`` shows its keywords."""
    if isinstance(obj, functools.partial):
        options = ", ".join(f"{k}={v!r}" for k, v in obj.keywords.items())
        return f"{label_of(obj.func)}({options})"
    module = getattr(obj, "__module__", None)
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or type(obj).__name__
    return f"{module}:{name}" if module else str(name)


def accepts_keyword(fn: Callable, name: str) -> bool:
    """True if ``fn`` can be called with the keyword ``name`` (or takes ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def as_factory(
    codec: Any, convention: str | None = None, protocol: str = "auto", probe: tuple[Size, Size] | None = None
) -> CodecFactory:
    """Turn what the user passes into a :class:`CodecFactory`.

    Args:
        codec: a :class:`CodecFactory` (returned as is), or a callable ``(input_size, heatmap_size) ->
            codec``, e.g. a codec class of this package or a user's factory function. When the callable
            accepts a ``convention`` keyword and ``convention`` is given, it is passed on.
        convention: the convention the codec claims; ``None`` reads the built codec's ``convention``
            attribute, else assumes ``"pixel_center"``.
        protocol: ``"torch"`` (this package's protocol), ``"numpy"`` (the per-instance numpy protocol, see
            :func:`h3r_theory.testing.adapters.numpy_codec`) or ``"auto"`` (``numpy`` unless the codec has
            an ``expected`` method or is a :class:`~h3r_theory.codecs.HeatmapCodec`).
        probe: the ``(input_size, heatmap_size)`` the factory is first tried on.
    Raises:
        TypeError: ``codec`` is not callable, or builds something without ``encode``/``decode``.
    """
    if isinstance(codec, CodecFactory):
        return codec
    if not callable(codec):
        raise TypeError(
            f"the codec factory must be callable (input_size, heatmap_size) -> codec, got {codec!r}"
        )
    if protocol not in ("auto", "torch", "numpy"):
        raise ValueError(f"protocol must be 'auto', 'torch' or 'numpy', got {protocol!r}")
    if convention is not None:
        conventions.check_convention(convention)
    pass_convention = convention is not None and accepts_keyword(codec, "convention")

    def make(input_size: Size, heatmap_size: Size) -> Any:
        if pass_convention:
            return codec(input_size, heatmap_size, convention=convention)
        return codec(input_size, heatmap_size)

    built = make(*(probe or PROBE_SIZES))
    if not (hasattr(built, "encode") and hasattr(built, "decode")):
        raise TypeError(
            f"{label_of(codec)}(input_size, heatmap_size) built {built!r}, which has no encode/decode"
        )
    claimed = convention or getattr(built, "convention", None) or "pixel_center"
    conventions.check_convention(claimed)
    if protocol == "auto":
        from ..codecs import HeatmapCodec

        protocol = "torch" if isinstance(built, HeatmapCodec) or hasattr(built, "expected") else "numpy"
    if protocol == "numpy":
        from .adapters import NumpyInstanceCodec

        def build(i: Size, h: Size) -> Subject:
            return NumpyInstanceCodec(make(i, h), i, h, claimed)
    else:

        def build(i: Size, h: Size) -> Subject:
            return TorchCodec(make(i, h), i, h, claimed)

    return CodecFactory(build, claimed, label_of(codec))
