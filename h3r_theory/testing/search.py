"""Run one invariant's check over hypothesis-drawn examples; keep the worst error and the shrunk failure.

Each check maps an example to an :class:`Observation`. A violated observation raises inside hypothesis,
which then shrinks the example and replays the smallest failing one last, so the last failure recorded
is the shrunk counterexample. An exception raised by the codec itself is a finding too (a crash is a
counterexample), reported with its type and message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import hypothesis
from hypothesis import HealthCheck, Phase, Verbosity, given, settings

from .result import FAILS, HOLDS, NOT_APPLICABLE, Counterexample, InvariantResult


@dataclass
class Observation:
    """The outcome of one example.

    Attributes:
        ok: the invariant held on it.
        worst: its largest error (in the invariant's unit), or ``None``.
        worst_px: the same in input pixels, or ``None``.
        inputs: the example in words, for a counterexample.
        finding: what broke, in words (empty when ``ok``).
    """

    ok: bool
    worst: float | None = None
    worst_px: float | None = None
    inputs: str = ""
    finding: str = ""


class _Violation(Exception):
    """Raised inside hypothesis to mark an example as failing."""


def run_search(
    name: str,
    strategy,
    check: Callable[[Any], Observation],
    *,
    max_examples: int,
    seed: int,
    unit: str = "cells",
    tolerance: float | None = None,
) -> InvariantResult:
    """Evaluate ``check`` on up to ``max_examples`` examples of ``strategy`` and summarise.

    Reproducible: the search is seeded with ``seed`` and never reads or writes an example database.
    """
    state: dict[str, Any] = {"n": 0, "worst": None, "worst_px": None, "failure": None}

    def body(example):
        try:
            obs = check(example)
        except Exception as exc:  # the codec under test raised: that is a finding, not a kit error
            inputs = example.describe() if hasattr(example, "describe") else repr(example)
            obs = Observation(False, inputs=inputs, finding=_crash(exc))
        state["n"] += 1
        if obs.worst is not None and (state["worst"] is None or obs.worst > state["worst"]):
            state["worst"], state["worst_px"] = obs.worst, obs.worst_px
        if not obs.ok:
            state["failure"] = obs
            raise _Violation(obs.finding)

    test = settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=False,
        report_multiple_bugs=False,
        verbosity=Verbosity.quiet,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
    )(given(strategy)(body))
    test = hypothesis.seed(seed)(test)
    note = ""
    try:
        test()
    except _Violation:
        pass
    except hypothesis.errors.HypothesisException as exc:  # e.g. Flaky: an unseeded random codec
        note = f"hypothesis: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    failure = state["failure"]
    if failure is None and note:  # the search itself could not run: nothing was shown to hold
        return InvariantResult(name=name, status=NOT_APPLICABLE, examples=state["n"], note=note)
    return InvariantResult(
        name=name,
        status=FAILS if failure is not None else HOLDS,
        worst=state["worst"],
        unit=unit,
        worst_px=state["worst_px"],
        tolerance=tolerance,
        examples=state["n"],
        counterexample=Counterexample(failure.inputs, failure.finding) if failure is not None else None,
        note=note,
    )


def _crash(exc: Exception) -> str:
    message = str(exc).splitlines()[0] if str(exc) else ""
    return f"raised {type(exc).__name__}: {message}"
