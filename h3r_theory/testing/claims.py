"""What a codec claims: the bounds its invariants are checked against.

The defaults are the strict claims of a lossless, exactly equivariant codec with this package's edge
semantics. A quantizing codec states its error (``round_trip_cells=0.5`` for rounding to the nearest cell),
a codec that is exact only away from the border states a margin, and so on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Claims:
    """Bounds, in heatmap cells per axis, that a codec claims.

    Attributes:
        convention: the pixel convention; ``None`` reads the codec's ``convention`` attribute, else
            ``"pixel_center"``.
        round_trip_cells: ``decode(expected(x))`` is within this many cells of ``x`` (0 = lossless; 0.5 for
            round-to-nearest; 1 for floor).
        margin_cells: the round trip, the equivariances and the float32 check are claimed only for keypoints
            at least this many cells inside the cell-centre box ``[0, w - 1] x [0, h - 1]``.
        equivariance_cells: decoded shift and flip are exact within this many cells.
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
    round_trip_cells: float = 0.0
    margin_cells: float = 0.0
    equivariance_cells: float = 1e-6
    float32_cells: float = 1e-3
    border_band_cells: float | None = 0.0
    logits_round_trip: bool = False
    error_location: str | None = "({b}, {k})"
    samples: int = 1000

    def __post_init__(self) -> None:
        # finite: an infinite bound would let any codec, one decoding to NaN included, pass
        for name in ("round_trip_cells", "margin_cells", "equivariance_cells", "float32_cells"):
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


#: The strict claims (a lossless, exactly equivariant codec); frozen, so safe as a default argument.
DEFAULT_CLAIMS = Claims()
