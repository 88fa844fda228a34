"""The whole invariant suite on one codec: :func:`check_codec` returns the report card."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from . import invariants as inv
from .claims import DEFAULT_CLAIMS, Claims
from .result import Report
from .strategies import DEFAULT_SPACE, SearchSpace, probe_geometry
from .subject import as_factory

#: The mathematical invariants: what any heatmap codec, of any toolbox, should satisfy.
MATH = (
    "round_trip",
    "round_trip_logits",
    "unbiased",
    "rounding_frequency",
    "shift_equivariance",
    "flip_equivariance",
)
#: This package's protocol: seeded generators, dtype and device, float32, edge semantics (weights of
#: off-map keypoints), constant maps and errors for bad input.
PROTOCOL = (
    "reproducible",
    "dtype_device_shape",
    "float32_matches_float64",
    "edge_semantics",
    "constant_heatmaps",
    "bad_input",
)

#: name -> invariant function, in report-card order.
INVARIANTS: dict[str, Callable] = {
    "round_trip": inv.round_trip,
    "round_trip_logits": inv.round_trip_logits,
    "unbiased": inv.unbiased,
    "rounding_frequency": inv.rounding_frequency,
    "reproducible": inv.reproducible,
    "shift_equivariance": inv.shift_equivariance,
    "flip_equivariance": inv.flip_equivariance,
    "dtype_device_shape": inv.dtype_device_shape,
    "float32_matches_float64": inv.float32_matches_float64,
    "edge_semantics": inv.edge_semantics,
    "constant_heatmaps": inv.constant_heatmaps,
    "bad_input": inv.bad_input,
}


#: profile -> the invariants it checks, in report-card order.
PROFILES: dict[str, tuple[str, ...]] = {
    "math": MATH,
    "protocol": PROTOCOL,
    "all": tuple(INVARIANTS),
}


def default_profile(factory) -> str:
    """``"all"`` for this package's codecs (:class:`~h3r_theory.codecs.HeatmapCodec`), ``"math"`` for others."""
    return "all" if getattr(factory, "native", False) else "math"


def check_invariant(
    name: str,
    codec,
    claims: Claims = DEFAULT_CLAIMS,
    *,
    space: SearchSpace = DEFAULT_SPACE,
    max_examples: int | None = None,
    seed: int = 0,
):
    """Run the invariant ``name`` (a key of :data:`INVARIANTS`); ``max_examples=None`` keeps its default."""
    if name not in INVARIANTS:
        raise ValueError(f"unknown invariant {name!r}; available: {list(INVARIANTS)}")
    kwargs = {"space": space, "seed": seed}
    if max_examples is not None:
        kwargs["max_examples"] = int(max_examples)
    return INVARIANTS[name](codec, claims, **kwargs)


def check_codec(
    codec,
    claims: Claims = DEFAULT_CLAIMS,
    *,
    protocol: str = "auto",
    space: SearchSpace = DEFAULT_SPACE,
    max_examples: int | None = None,
    seed: int = 0,
    only: Sequence[str] | None = None,
    profile: str | None = None,
    diagnose: bool = True,
    label: str | None = None,
) -> Report:
    """Run a profile of invariants (or those in ``only``) on ``codec`` and return the :class:`Report`.

    Args:
        codec: a codec class or factory ``(input_size, heatmap_size) -> codec`` of this package's protocol or
            of the per-instance numpy protocol (``protocol`` says which; ``"auto"`` guesses), or an adapter.
        claims: the bounds the codec claims, see :class:`Claims`.
        space: the geometries to explore.
        max_examples: hypothesis examples per invariant (``None``: each invariant's default, 10 to 50).
        seed: makes the whole run reproducible.
        only: run these invariants (the profile is then ``"only"``).
        profile: ``"math"`` (the mathematical invariants), ``"protocol"`` (this package's protocol) or
            ``"all"``; ``None``: ``"all"`` for this package's codecs, ``"math"`` for any other.
        diagnose: add the diagnosis (:func:`h3r_theory.testing.diagnose.diagnose`): scale and offset, the
            consistent convention, the quantization and stochastic profiles.
        label: the codec's name in the report (default: the factory's ``module:name``, or the class a
            lambda builds).
    """
    factory = as_factory(codec, claims.convention, protocol, probe=probe_geometry(space), label=label)
    names, profile = _names(factory, only, profile)
    results = [
        check_invariant(n, factory, claims, space=space, max_examples=max_examples, seed=seed) for n in names
    ]
    lines, data = ([], {})
    if diagnose:
        lines, data = run_diagnosis(factory, claims, space, seed)
    return Report(
        factory.label,
        factory.convention,
        results,
        profile,
        factory.convention_note(),
        lines,
        data,
        claims.describe(factory.native),
    )


def _names(factory, only, profile) -> tuple[list[str], str]:
    if only is not None:
        names = list(only)
        if not names:
            raise ValueError("only= names no invariant")
        unknown = [n for n in names if n not in INVARIANTS]
        if unknown:
            raise ValueError(f"unknown invariant(s) {unknown}; available: {list(INVARIANTS)}")
        return names, "only"
    profile = profile or default_profile(factory)
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {list(PROFILES)}, got {profile!r}")
    return list(PROFILES[profile]), profile


def run_diagnosis(factory, claims: Claims, space: SearchSpace, seed: int) -> tuple[list[str], dict]:
    """The diagnosis as ``(lines, data)``; a codec that breaks it gets one line saying so."""
    from .diagnose import diagnose

    try:
        found = diagnose(factory, claims, space, seed)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the invariants report the codec's failures
        return [f"not run: {type(exc).__name__}: {str(exc)[:160]}"], {}
    return found.lines, found.data
