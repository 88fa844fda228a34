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
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from .. import conventions
from . import frames

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
    output_dtype: torch.dtype | None = None  # the coarsest float dtype the codec itself computed in, if known

    def precision(self, dtype: torch.dtype) -> torch.dtype:
        """The dtype whose round-off the codec's results carry for inputs of ``dtype``: ``dtype``, or the
        codec's own output dtype when that is coarser (a numpy codec that returns float32 targets)."""
        own = self.output_dtype
        if own is not None and torch.finfo(own).eps > torch.finfo(dtype).eps:
            return own
        return dtype

    def __init__(self, input_size: Size, heatmap_size: Size, convention: str) -> None:
        self.input_size = conventions.check_size(input_size, "input_size")
        self.heatmap_size = conventions.check_size(heatmap_size, "heatmap_size")
        self.convention = frames.check_convention(convention)

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
        return frames.heatmap_to_input(uv, self.input_size, self.heatmap_size, self.convention)

    def to_heatmap(self, xy: Tensor) -> Tensor:
        return frames.input_to_heatmap(xy, self.input_size, self.heatmap_size, self.convention)

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


@dataclass(frozen=True)
class CodecFactory:
    """Builds a :class:`Subject` for a geometry: ``factory(input_size, heatmap_size) -> Subject``.

    Attributes:
        build: ``build(input_size, heatmap_size, convention) -> Subject``.
        convention: the pixel convention the subjects are checked under (the strategies need it before any
            codec is built); ``None`` until it is known (:func:`as_factory` then infers it).
        label: a name for reports.
        convention_source: where ``convention`` comes from: ``"claimed"`` (the caller said so), ``"codec"``
            (the codec's ``convention`` attribute), ``"inferred"`` (the convention under which the codec's
            encode and decode agree, see :func:`h3r_theory.testing.diagnose.infer_convention`) or
            ``"assumed"`` (none of these: ``pixel_center``).
        native: the codec is one of this package's protocol (a :class:`~h3r_theory.codecs.HeatmapCodec`),
            judged on every profile by default; other codecs are judged on the mathematical invariants.
    """

    build: Callable[[Size, Size, str], Subject]
    convention: str | None
    label: str
    convention_source: str = "claimed"
    native: bool = False

    def __call__(self, input_size: Size, heatmap_size: Size) -> Subject:
        return self.build(tuple(input_size), tuple(heatmap_size), self.convention or "pixel_center")

    def under(self, convention: str) -> Callable[[Size, Size], Subject]:
        """A builder of subjects under another convention: ``factory.under(c)(input_size, heatmap_size)``."""
        return lambda i, h: self.build(tuple(i), tuple(h), convention)

    def with_convention(self, convention: str, source: str = "claimed") -> CodecFactory:
        return replace(self, convention=frames.check_convention(convention), convention_source=source)

    def convention_note(self) -> str:
        """How the convention was chosen, in words (empty when the caller or the codec stated it)."""
        if self.convention_source == "inferred":
            return "inferred: the codec states none, and its encode and decode agree under it; pass --convention to claim one"
        if self.convention_source == "assumed":
            return "assumed: the codec states none, and no convention makes its encode and decode agree; pass --convention"
        return ""


def label_of(obj: Any) -> str:
    """``module:qualname`` of a class or function; a ``functools.partial`` shows its keywords."""
    if isinstance(obj, functools.partial):
        options = ", ".join(f"{k}={v!r}" for k, v in obj.keywords.items())
        return f"{label_of(obj.func)}({options})"
    module = getattr(obj, "__module__", None)
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or type(obj).__name__
    return f"{module}:{name}" if module else str(name)


def _anonymous(label: str) -> bool:
    """A label that names no factory a reader could find: a lambda or a function defined inside another."""
    return "<lambda>" in label or "<locals>" in label


def built_label(factory: Any, built: Any) -> str:
    """The label of ``factory``, or of the class it built when the factory is a lambda or a local function
    (``MSRAHeatmap, built by a lambda in __main__`` rather than ``__main__:<lambda>``)."""
    label = label_of(factory)
    if not _anonymous(label):
        return label
    kind = "a lambda" if "<lambda>" in label else "a local function"
    return f"{label_of(type(built))}, built by {kind} in {getattr(factory, '__module__', '?')}"


def accepts_keyword(fn: Callable, name: str) -> bool:
    """True if ``fn`` can be called with the keyword ``name`` (or takes ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


class NotAHeatmapCodec(TypeError):
    """The object builds codecs, but not heatmap codecs (e.g. a coordinate codec such as SimCC)."""


def refuse_non_heatmap(built: Any, protocol: str, input_size: Size, heatmap_size: Size, label: str) -> None:
    """Raise :class:`NotAHeatmapCodec` when one keypoint's ``encode`` returns no heatmaps.

    A codec that raises on that call is not refused (the invariants report what it raises).
    """
    import numpy as np

    W, H = input_size
    try:
        if protocol == "numpy":
            out = built.encode(np.array([[[W / 2.0, H / 2.0]]]), np.ones((1, 1), dtype=np.float32))
        else:
            out = built.encode(torch.tensor([[[W / 2.0, H / 2.0]]], dtype=torch.float64), None)
    except (Exception, SystemExit):  # noqa: BLE001 - the invariants report a codec's own failures
        return
    if isinstance(out, dict):
        if "heatmaps" in out:
            return
        keys = ", ".join(repr(k) for k in list(out)[:6])
        raise NotAHeatmapCodec(
            f"{label} is not a heatmap codec: its encode returned a dict of {keys} with no 'heatmaps' "
            "(a coordinate codec such as SimCC has no heatmap for the kit to check)"
        )
    if hasattr(out, "heatmaps") or isinstance(out, tuple):
        return
    if isinstance(out, (torch.Tensor, np.ndarray)) and out.ndim >= 3:
        return
    raise NotAHeatmapCodec(
        f"{label} is not a heatmap codec: its encode returned {type(out).__name__}, not heatmaps"
    )


def as_factory(
    codec: Any,
    convention: str | None = None,
    protocol: str = "auto",
    probe: tuple[Size, Size] | None = None,
    *,
    label: str | None = None,
) -> CodecFactory:
    """Turn what the user passes into a :class:`CodecFactory`.

    Args:
        codec: a :class:`CodecFactory` (returned as is, under ``convention`` when one is given), or a
            callable ``(input_size, heatmap_size) -> codec``, e.g. a codec class of this package or a user's
            factory function. When the callable accepts a ``convention`` keyword and ``convention`` is given,
            it is passed on.
        convention: the convention the codec claims; ``None`` reads the built codec's ``convention``
            attribute, else infers the convention under which the codec's encode and decode agree (the
            report says so), else assumes ``"pixel_center"`` (the report says that too).
        protocol: ``"torch"`` (this package's protocol), ``"numpy"`` (the per-instance numpy protocol, see
            :func:`h3r_theory.testing.adapters.numpy_codec`) or ``"auto"`` (``numpy`` unless the codec has
            an ``expected`` method or is a :class:`~h3r_theory.codecs.HeatmapCodec`).
        probe: the ``(input_size, heatmap_size)`` the factory is first tried on.
        label: the codec's name in reports (default: the factory's ``module:name``, or the class it builds
            when the factory is a lambda).
    Raises:
        TypeError: ``codec`` is not callable, or builds something without ``encode``/``decode``;
            :class:`NotAHeatmapCodec` (a TypeError) when its ``encode`` returns no heatmaps.
    """
    if convention is not None:
        frames.check_convention(convention)
    if isinstance(codec, CodecFactory):
        factory = codec.with_convention(convention) if convention is not None else codec
        if label is not None:
            factory = replace(factory, label=label)
        return _resolve_convention(factory, probe)
    if not callable(codec):
        raise TypeError(
            f"the codec factory must be callable (input_size, heatmap_size) -> codec, got {codec!r}"
        )
    if protocol not in ("auto", "torch", "numpy"):
        raise ValueError(f"protocol must be 'auto', 'torch' or 'numpy', got {protocol!r}")
    pass_convention = convention is not None and accepts_keyword(codec, "convention")

    def make(input_size: Size, heatmap_size: Size) -> Any:
        if pass_convention:
            return codec(input_size, heatmap_size, convention=convention)
        return codec(input_size, heatmap_size)

    probe = probe or PROBE_SIZES
    built = make(*probe)
    name = label or built_label(codec, built)
    if not (hasattr(built, "encode") and hasattr(built, "decode")):
        raise TypeError(f"{name}(input_size, heatmap_size) built {built!r}, which has no encode/decode")
    from ..codecs import HeatmapCodec

    native = isinstance(built, HeatmapCodec)
    if protocol == "auto":
        protocol = "torch" if native or hasattr(built, "expected") else "numpy"
    refuse_non_heatmap(built, protocol, *probe, name)
    stated = getattr(built, "convention", None)
    if convention is not None:
        claimed, source = convention, "claimed"
    elif isinstance(stated, str) and stated in frames.CONVENTIONS:
        claimed, source = stated, "codec"
    else:
        claimed, source = None, "claimed"
    if protocol == "numpy":
        from .adapters import NumpyInstanceCodec

        def build(i: Size, h: Size, c: str) -> Subject:
            return NumpyInstanceCodec(make(i, h), i, h, c)
    else:

        def build(i: Size, h: Size, c: str) -> Subject:
            return TorchCodec(make(i, h), i, h, c)

    return _resolve_convention(CodecFactory(build, claimed, name, source, native), probe)


def _resolve_convention(factory: CodecFactory, probe: tuple[Size, Size] | None) -> CodecFactory:
    """``factory`` with a convention: its own, else the inferred one, else ``pixel_center`` (assumed)."""
    if factory.convention is not None:
        return factory
    from .diagnose import infer_convention

    inferred = infer_convention(factory, probe)
    if inferred.consistent is not None:
        return factory.with_convention(inferred.consistent, "inferred")
    return factory.with_convention("pixel_center", "assumed")
