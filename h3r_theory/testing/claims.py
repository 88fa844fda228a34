"""What a codec claims: the bounds its invariants are checked against.

The defaults are the strict claims of a lossless, exactly equivariant codec with this package's edge
semantics. A quantizing codec states its error (``round_trip_cells=0.5`` for rounding to the nearest cell),
a codec that is exact only away from the border states a margin, and so on.

Two bounds left unstated (``None``) take a default that depends on whose codec it is
(:meth:`Claims.resolved`): this package's codecs are exact by construction and are held to 0 cells for the
round trip and 1e-6 cells for shift and flip; another toolbox's codec is held to a millicell
(:data:`FOREIGN_CELLS` = 0.001 cells, 1/383 of the rounding floor 0.3826 cells) for both, so that a
method that is right up to its own approximation (DARK's Taylor step after its blur: a few 1e-4 cells)
passes, and every error a user could see (a decode scale of ``W / (W - 1)``, a half-cell offset, a
rounding) still fails. Stating ``round_trip_cells=0`` (``--round-trip-cells 0``) claims exactness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Claims:
    """Bounds, in heatmap cells per axis, that a codec claims.

    Attributes:
        convention: the pixel convention; ``None`` reads the codec's ``convention`` attribute, else
            ``"pixel_center"``.
        round_trip_cells: ``decode(expected(x))`` is within this many cells of ``x`` (0 = lossless; 0.5 for
            round-to-nearest; 1 for floor); ``None``: the default of :meth:`resolved`.
        margin_cells: the round trip, the equivariances and the float32 check are claimed only for keypoints
            at least this many cells inside the cell-centre box ``[0, w - 1] x [0, h - 1]``.
        equivariance_cells: decoded shift and flip are exact within this many cells; ``None``: the default
            of :meth:`resolved`.
        float32_cells: float32 and float64 decodes agree within this many cells.
        border_band_cells: a keypoint in the border band (on the heatmap, beyond the outermost cell centre)
            decodes inside the cell-centre box, within this many cells (plus ``round_trip_cells``) of its
            clamp onto that box (0: exactly the clamp, as cell-based codecs do); ``None`` claims only that it
            gets weight 1.
        logits_round_trip: ``decode(log(expected(x)), activation="logits")`` also returns ``x`` (the optimum
            of a softmax cross-entropy loss decodes losslessly).
        error_location: format of the ``(batch, keypoint)`` index that a ValueError for a non-finite value
            must contain, e.g. ``"({b}, {k})"``; ``None`` requires only a ValueError.
        samples: seeded samples per example for the statistical checks of stochastic encoders.
    """

    convention: str | None = None
    round_trip_cells: float | None = None
    margin_cells: float = 0.0
    equivariance_cells: float | None = None
    float32_cells: float = 1e-3
    border_band_cells: float | None = 0.0
    logits_round_trip: bool = False
    error_location: str | None = "({b}, {k})"
    samples: int = 1000

    def __post_init__(self) -> None:
        # finite: an infinite bound would let any codec, one decoding to NaN included, pass
        for name in ("round_trip_cells", "margin_cells", "equivariance_cells", "float32_cells"):
            if name in DEFAULTED and getattr(self, name) is None:
                continue
            if not 0 <= getattr(self, name) < math.inf:
                raise ValueError(
                    f"Claims.{name} must be a finite number >= 0 cells, got {getattr(self, name)!r}"
                )
        if self.border_band_cells is not None and not 0 <= self.border_band_cells < math.inf:
            raise ValueError(
                f"Claims.border_band_cells must be a finite number >= 0 cells or None, got {self.border_band_cells!r}"
            )
        if int(self.samples) < 10:
            raise ValueError(f"Claims.samples must be >= 10, got {self.samples!r}")

    def resolved(self, native: bool) -> Claims:
        """These claims with every unstated bound (``None``) set to its default for this package's codecs
        (``native``) or for another toolbox's."""
        defaults = NATIVE_DEFAULTS if native else FOREIGN_DEFAULTS
        return replace(self, **{k: v for k, v in defaults.items() if getattr(self, k) is None})

    def describe(self, native: bool) -> str:
        """The round-trip and equivariance bounds in force, in words, saying which are defaults."""
        done = self.resolved(native)
        whose = "this package's codecs" if native else "a foreign codec"
        parts = []
        for key, what, flag in (
            ("round_trip_cells", "round trip", "--round-trip-cells"),
            ("equivariance_cells", "shift and flip", "--equivariance-cells"),
        ):
            value = getattr(done, key)
            if getattr(self, key) is not None:
                parts.append(f"{what} {value:g} cells")
            elif native:
                parts.append(f"{what} {value:g} cells (the default for {whose})")
            else:
                parts.append(f"{what} {value:g} cells (the default for {whose}; {flag} 0 claims exactness)")
        if self.margin_cells:
            parts.append(f"{self.margin_cells:g} cells inside the border")
        return ", ".join(parts)


#: Bounds left unstated never reach an invariant: they are resolved first (:meth:`Claims.resolved`).
DEFAULTED = ("round_trip_cells", "equivariance_cells")
#: This package's codecs: lossless and exactly equivariant (plus float round-off).
NATIVE_DEFAULTS = {"round_trip_cells": 0.0, "equivariance_cells": 1e-6}
#: Another toolbox's codec: a millicell, for the round trip and for shift and flip.
FOREIGN_CELLS = 1e-3
FOREIGN_DEFAULTS = {"round_trip_cells": FOREIGN_CELLS, "equivariance_cells": FOREIGN_CELLS}

#: The claims with every bound at its default; frozen, so safe as a default argument.
DEFAULT_CLAIMS = Claims()
