"""The whole invariant suite on one codec: :func:`check_codec` returns the report card."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from . import invariants as inv
from .claims import DEFAULT_CLAIMS, Claims
from .result import Report
from .strategies import DEFAULT_SPACE, SearchSpace, probe_geometry
from .subject import as_factory

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
) -> Report:
    """Run every invariant (or those in ``only``) on ``codec`` and return the :class:`Report`.

    Args:
        codec: a codec class or factory ``(input_size, heatmap_size) -> codec`` of this package's protocol or
            of the per-instance numpy protocol (``protocol`` says which; ``"auto"`` guesses), or an adapter.
        claims: the bounds the codec claims, see :class:`Claims`.
        space: the geometries to explore.
        max_examples: hypothesis examples per invariant (``None``: each invariant's default, 10 to 50).
        seed: makes the whole run reproducible.
    """
    factory = as_factory(codec, claims.convention, protocol, probe=probe_geometry(space))
    names = list(INVARIANTS) if only is None else list(only)
    results = [
        check_invariant(n, factory, claims, space=space, max_examples=max_examples, seed=seed) for n in names
    ]
    return Report(factory.label, factory.convention, results)
