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
        allowance: the float round-off allowed on top of the claim for this example, in the invariant's
            unit (it depends on the example's geometry and dtype), or ``None`` when none was added.
    """

    ok: bool
    worst: float | None = None
    worst_px: float | None = None
    inputs: str = ""
    finding: str = ""
    allowance: float | None = None


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
    sample: Callable[[], dict[str, list]] | None = None,
) -> InvariantResult:
    """Evaluate ``check`` on up to ``max_examples`` examples of ``strategy`` and summarise.

    Reproducible: the search is seeded with ``seed`` and never reads or writes an example database. When it
    fails and ``sample`` is given, ``check`` is also measured on the fixed cases ``sample()`` returns
    (``{"interior": [...], "border": [...]}``, one keypoint each): the worst and the median error there,
    beside the shrunk counterexample, whose error is only the smallest failing one.
    """
    state: dict[str, Any] = {
        "n": 0,
        "worst": None,
        "worst_px": None,
        "worst_inputs": "",
        "allowance": None,
        "failure": None,
    }

    def body(example):
        inputs = example.describe() if hasattr(example, "describe") else repr(example)
        if PROGRESS is not None:
            PROGRESS(name, inputs)
        try:
            obs = check(example)
        except Exception as exc:  # the codec under test raised: that is a finding, not a kit error
            obs = Observation(False, inputs=inputs, finding=_crash(exc))
        except SystemExit as exc:  # sys.exit() inside the codec ends no run: it is this example's failure
            obs = Observation(False, inputs=inputs, finding=f"called sys.exit({exc.code!r})")
        state["n"] += 1
        if obs.worst is not None and (state["worst"] is None or obs.worst > state["worst"]):
            state["worst"], state["worst_px"] = obs.worst, obs.worst_px
            state["worst_inputs"], state["allowance"] = obs.inputs or inputs, obs.allowance
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
    sampled = measure(check, sample()) if failure is not None and sample is not None else None
    return InvariantResult(
        name=name,
        status=FAILS if failure is not None else HOLDS,
        worst=state["worst"],
        unit=unit,
        worst_px=state["worst_px"],
        tolerance=tolerance,
        examples=state["n"],
        counterexample=(
            Counterexample(failure.inputs, failure.finding, failure.worst) if failure is not None else None
        ),
        note=note,
        sampled=sampled,
        allowance=state["allowance"],
        worst_inputs=state["worst_inputs"],
    )


#: ``PROGRESS(invariant, example)`` is called before every example when set (the CLI's worker sets it, so
#: that an example that hangs or ends the process can be named).
PROGRESS: Callable[[str, str], None] | None = None


def measure(check: Callable[[Any], Observation], groups: dict[str, list]) -> dict:
    """The worst and median error of ``check`` over each group of fixed cases (``None`` errors skipped)."""
    out = {}
    for group, cases in groups.items():
        errors, crashed = [], 0
        for j, case in enumerate(cases):
            try:
                obs = check(case)
            except (Exception, SystemExit):  # noqa: BLE001 - counted, the search reported the crash itself
                crashed += 1
                continue
            if obs.worst is not None:
                errors.append((obs.worst, obs.worst_px if obs.worst_px is not None else float("nan"), j))
        if not errors:
            continue
        errors.sort()
        worst, median = errors[-1], errors[len(errors) // 2]
        where = cases[worst[2]]
        out[group] = {
            "keypoints": len(errors),
            "worst": worst[0],
            "worst_px": worst[1],
            "median": median[0],
            "median_px": median[1],
            "crashed": crashed,
            # where the worst is: a reader can tell a border effect from an error everywhere
            "worst_at": where.describe() if hasattr(where, "describe") else repr(where),
            "worst_depth_cells": _depth(where),
        }
    return out


def _depth(case) -> float | None:
    """Cells from a one-keypoint case's keypoint to the nearest side of the cell-centre box
    ``[0, w - 1] x [0, h - 1]`` (negative outside it), or ``None`` for other cases."""
    cells, geometry = getattr(case, "cells", ()), getattr(case, "geometry", None)
    if geometry is None or len(cells) != 1:
        return None
    (u, v), (w, h) = cells[0], geometry.heatmap_size
    return float(min(u, w - 1 - u, v, h - 1 - v))


def _crash(exc: Exception) -> str:
    message = str(exc).splitlines()[0] if str(exc) else ""
    return f"raised {type(exc).__name__}: {message}"
