"""Property tests for heatmap codecs, yours or this package's: the codec invariants as a library.

>>> from h3r_theory import codecs
>>> from h3r_theory.testing import Claims, check_codec
>>> report = check_codec(codecs.Argmax, Claims(round_trip_cells=0.5), only=["round_trip"])
>>> report.holds  # print(report.card()) shows one line per invariant
True

Pass your own codec class (or any factory ``(input_size, heatmap_size) -> codec``) in place of
``codecs.Argmax``, and leave out ``only`` to run every invariant.

* :mod:`~h3r_theory.testing.invariants`: one function per invariant, each returning an
  :class:`InvariantResult` (holds or not, the worst error in cells and pixels, a shrunk counterexample).
* :mod:`~h3r_theory.testing.strategies`: the hypothesis strategies they draw from.
* :mod:`~h3r_theory.testing.adapters`: plain functions and the per-instance numpy protocol.
* :mod:`~h3r_theory.testing.diagnose`: what kind of error a codec makes (scale and offset, the consistent
  convention, the quantization and stochastic profiles).
* :data:`PROFILES`: ``"math"`` (the mathematical invariants), ``"protocol"`` (this package's protocol), ``"all"``.
* :func:`codec_test_suite`: a pytest test in one line; ``h3r-check-codec`` on the command line.

Needs hypothesis (``pip install "hypothesis>=6.100"``), which the extras ``[testing]`` and ``[dev]`` install.
"""

from __future__ import annotations

try:
    import hypothesis  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without hypothesis installed
    raise ImportError(
        'h3r_theory.testing needs hypothesis: pip install "hypothesis>=6.100" (or h3r-theory[testing])'
    ) from exc

from .adapters import function_codec, numpy_codec
from .claims import Claims
from .diagnose import Diagnosis, diagnose, infer_convention
from .invariants import (
    bad_input,
    constant_heatmaps,
    dtype_device_shape,
    edge_semantics,
    flip_equivariance,
    float32_matches_float64,
    reproducible,
    round_trip,
    round_trip_logits,
    rounding_frequency,
    shift_equivariance,
    unbiased,
)
from .pytest_helpers import codec_test_suite
from .result import Counterexample, InvariantResult, Report
from .strategies import SearchSpace
from .subject import CodecFactory, NotAHeatmapCodec, Subject, as_factory
from .suite import INVARIANTS, MATH, PROFILES, PROTOCOL, check_codec, check_invariant

__all__ = [
    "INVARIANTS",
    "MATH",
    "PROFILES",
    "PROTOCOL",
    "Claims",
    "CodecFactory",
    "Counterexample",
    "Diagnosis",
    "InvariantResult",
    "NotAHeatmapCodec",
    "Report",
    "SearchSpace",
    "Subject",
    "as_factory",
    "bad_input",
    "check_codec",
    "check_invariant",
    "codec_test_suite",
    "diagnose",
    "infer_convention",
    "constant_heatmaps",
    "dtype_device_shape",
    "edge_semantics",
    "flip_equivariance",
    "float32_matches_float64",
    "function_codec",
    "numpy_codec",
    "reproducible",
    "round_trip",
    "round_trip_logits",
    "rounding_frequency",
    "shift_equivariance",
    "unbiased",
]
