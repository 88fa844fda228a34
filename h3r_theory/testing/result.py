"""What an invariant check returns: holds or not, the worst error seen, and a shrunk counterexample.

Plain data (dataclasses of floats, strings and lists) so that a result prints as one report-card line,
serialises to JSON for machines, and can be asserted on in a test.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

HOLDS, FAILS, NOT_APPLICABLE = "holds", "fails", "n/a"

#: What each profile checks, for the report card's second line.
PROFILE_WORDS = {
    "math": "the mathematical invariants (round trip, unbiasedness, shift and flip); "
    "--profile all adds this package's protocol checks",
    "protocol": "this package's protocol (seeding, dtype and device, float32, edge semantics, constant maps, "
    "bad input)",
    "all": "the mathematical invariants and this package's protocol",
}


@dataclass(frozen=True)
class Counterexample:
    """The smallest input hypothesis found that breaks an invariant.

    Attributes:
        inputs: what was fed to the codec, in words (geometry, dtype, keypoints in px and cells, ...).
        finding: what came out and why that breaks the invariant.
        error: its error in the invariant's unit (``None`` when it measures none): the smallest failing
            one, often far below the worst the search saw.
    """

    inputs: str
    finding: str
    error: float | None = None

    def __str__(self) -> str:
        return f"{self.inputs}: {self.finding}"


@dataclass(frozen=True)
class InvariantResult:
    """Outcome of one invariant on one codec.

    Attributes:
        name: the invariant, e.g. ``"round_trip"``.
        status: ``"holds"``, ``"fails"`` or ``"n/a"`` (the invariant does not apply; ``note`` says why).
        worst: the largest error seen over every example tried (shrinking included), in ``unit``;
            ``None`` when the invariant measures no error (e.g. a shape check).
        unit: unit of ``worst`` and ``tolerance``: ``"cells"`` (heatmap cells, per axis) or ``"probability"``.
        worst_px: ``worst`` in input pixels when the unit is cells, else ``None``.
        tolerance: the bound claimed, in ``unit``; float round-off (``allowance``) is allowed on top of it.
        examples: how many examples were evaluated.
        counterexample: the shrunk failing example, or ``None`` when the invariant holds.
        note: why it does not apply, or what was checked.
        sampled: for a failure, the error measured on a fixed, seeded sample of realistic geometries (see
            :func:`h3r_theory.testing.diagnose.sample_geometries`): ``{"interior": {...}, "border": {...}}``,
            each with the ``worst`` and ``median`` error (in ``unit`` and in px) over its ``keypoints``, and
            where the worst is (``worst_at``, ``worst_depth_cells`` from the cell-centre box's nearest side).
        allowance: the float round-off allowed on top of ``tolerance`` at the example with the worst error
            (``16 eps max(w, h)`` cells at the codec's precision), or ``None`` when none was added.
        worst_inputs: the example with the worst error, in words (for a failure it is usually not the
            shrunk counterexample).
    """

    name: str
    status: str
    worst: float | None = None
    unit: str = "cells"
    worst_px: float | None = None
    tolerance: float | None = None
    examples: int = 0
    counterexample: Counterexample | None = None
    note: str = ""
    sampled: dict | None = None
    allowance: float | None = None
    worst_inputs: str = ""

    @property
    def holds(self) -> bool:
        """True unless the invariant fails (``"n/a"`` counts as holding: nothing was violated)."""
        return self.status != FAILS

    def line(self, name_width: int = 24) -> str:
        """One report-card line, plus an indented counterexample line when it fails."""
        status = {HOLDS: "holds", FAILS: "FAILS", NOT_APPLICABLE: "n/a"}[self.status]
        parts = [f"{self.name:<{name_width}s} {status:<6s}"]
        if self.status == NOT_APPLICABLE:
            parts.append(self.note)
        else:
            if self.worst is not None:
                searched = " of the examples searched" if self.counterexample is not None else ""
                worst = f"worst{searched} {_fmt(self.worst)} {self.unit}"
                if self.worst_px is not None:
                    worst += f" = {_fmt(self.worst_px)} px"
                if self.tolerance is not None:
                    worst += f" (allowed {self._allowed()})"
                parts.append(worst)
            parts.append(f"{self.examples} examples")
        text = "  ".join(parts)
        pad = f"\n{'':{name_width + 2}s}"
        if self.counterexample is not None:
            if self.worst_inputs and self.worst_inputs != self.counterexample.inputs:
                text += f"{pad}worst example searched: {self.worst_inputs}"
            error = self.counterexample.error
            size = f", {_fmt(error)} {self.unit}" if error is not None else ""
            text += f"{pad}shrunk counterexample (the smallest failing example{size}): {self.counterexample}"
        for group, m in (self.sampled or {}).items():
            px = self.unit == "cells"
            worst = f"{_fmt(m['worst'])} {self.unit}" + (f" = {_fmt(m['worst_px'])} px" if px else "")
            median = f"{_fmt(m['median'])} {self.unit}" + (f" = {_fmt(m['median_px'])} px" if px else "")
            where = "interior keypoints" if group == "interior" else "keypoints near the border"
            text += f"{pad}sampled, {m['keypoints']} {where} of realistic geometries: worst {worst}, median {median}"
            if m.get("worst_at") and m["worst"] > 0:  # where a zero error is largest says nothing
                depth = m.get("worst_depth_cells")
                inside = f", {_fmt(depth)} cells inside the cell-centre box" if depth is not None else ""
                text += f"{pad}  its worst at {m['worst_at']}{inside}"
        return text

    def _allowed(self) -> str:
        """The claim, plus the float round-off allowed on top of it where there was any."""
        if not self.allowance:
            return _fmt(self.tolerance)
        return f"{_fmt(self.tolerance)} claimed + {_fmt(self.allowance)} float round-off"

    def to_dict(self) -> dict:
        return asdict(self)


def _fmt(value: float) -> str:
    return f"{value:.3g}" if value != 0 else "0"


@dataclass(frozen=True)
class Report:
    """Every invariant's result for one codec: the report card."""

    codec: str
    convention: str
    results: list[InvariantResult] = field(default_factory=list)
    profile: str = "all"
    convention_note: str = ""
    diagnosis: list[str] = field(default_factory=list)
    diagnosis_data: dict = field(default_factory=dict)
    claims: str = ""  # the bounds in force, in words (:meth:`~h3r_theory.testing.Claims.describe`)

    @property
    def holds(self) -> bool:
        return all(r.holds for r in self.results)

    @property
    def failures(self) -> list[InvariantResult]:
        return [r for r in self.results if not r.holds]

    def __getitem__(self, name: str) -> InvariantResult:
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(f"no invariant named {name!r} in this report; have {[r.name for r in self.results]}")

    def card(self) -> str:
        """The human-readable report card: a header, one line per invariant, a verdict."""
        width = max([len(r.name) for r in self.results] + [10])
        note = f", {self.convention_note}" if self.convention_note else ""
        lines = [f"codec {self.codec} (convention {self.convention}{note})"]
        lines.append(f"profile {self.profile}: {PROFILE_WORDS.get(self.profile, 'the invariants asked for')}")
        if self.claims:
            lines.append(f"claims: {self.claims}")
        lines += ["  " + r.line(width).replace("\n", "\n  ") for r in self.results]
        if self.diagnosis:
            lines.append("diagnosis:")
            lines += [f"  {line}" for line in self.diagnosis]
        failed = len(self.failures)
        applicable = sum(r.status != NOT_APPLICABLE for r in self.results)
        verdict = "all hold" if not failed else f"{failed} FAIL"
        lines.append(f"{applicable} invariants of profile {self.profile} checked, {verdict}")
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(
            {
                "codec": self.codec,
                "convention": self.convention,
                "convention_note": self.convention_note,
                "profile": self.profile,
                "claims": self.claims,
                "holds": self.holds,
                "results": [r.to_dict() for r in self.results],
                "diagnosis": self.diagnosis,
                "diagnosis_data": self.diagnosis_data,
            },
            indent=2,
        )
