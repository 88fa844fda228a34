"""pytest in three lines::

    from h3r_theory.testing import codec_test_suite
    from my_codecs import MyCodec
    test_my_codec = codec_test_suite(MyCodec, round_trip_cells=0.5)

The returned function is a test parametrised over the invariants: pytest reports one test per invariant,
failing with the shrunk counterexample, skipping (with the reason) the ones that do not apply.
"""

from __future__ import annotations

from collections.abc import Sequence

from .claims import Claims
from .result import FAILS, NOT_APPLICABLE
from .strategies import SearchSpace, probe_geometry
from .subject import as_factory
from .suite import _names, check_invariant


def codec_test_suite(
    codec,
    *,
    protocol: str = "auto",
    input_size: tuple[int, int] | None = None,
    heatmap_size: tuple[int, int] | None = None,
    max_examples: int | None = None,
    seed: int = 0,
    only: Sequence[str] | None = None,
    profile: str | None = None,
    **claims,
):
    """A pytest test function running a profile of invariants on ``codec`` (see :func:`check_codec`):
    ``profile=None`` checks every invariant on this package's codecs and the mathematical ones on others.

    ``claims`` are the fields of :class:`Claims` (``convention=``, ``round_trip_cells=``, ...).
    """
    import pytest  # only the test suite needs pytest

    stated = Claims(**claims)
    space = SearchSpace(input_size=input_size, heatmap_size=heatmap_size)
    factory = as_factory(codec, stated.convention, protocol, probe=probe_geometry(space))
    names, _ = _names(factory, only, profile)

    @pytest.mark.parametrize("invariant", names)
    def test_codec_invariant(invariant):
        result = check_invariant(
            invariant, factory, stated, space=space, max_examples=max_examples, seed=seed
        )
        if result.status == NOT_APPLICABLE:
            pytest.skip(f"{invariant}: {result.note}")
        assert result.status != FAILS, result.line()

    test_codec_invariant.__doc__ = f"The h3r_theory.testing invariants on {factory.label}."
    return test_codec_invariant
