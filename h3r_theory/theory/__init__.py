"""Exact (sympy) derivations of the quantization claims, and their seeded Monte Carlo counterparts.

Modules, one claim family each (all positions in heatmap cells unless said otherwise):

* :mod:`.quantization` (item 1): floor/round bias, MSE, maximum and mean 2-D error.
* :mod:`.randomized_rounding` (item 2): ``E[q] = u``, variance ``e (1 - e)``, one-sample error, and why the
  network must learn the expectation.
* :mod:`.losslessness` (item 3): exact decoding of the expected map; top-k / window activation sets;
  the pull of a non-zero floor.
* :mod:`.consistency` (item 4): softmax-CE and BCE optima, the odds bias of a softmax over BCE logits,
  MSE-to-Gaussian + argmax.
* :mod:`.resolution` (item 5): NME term linear in the stride, head cost ~ 1/stride^2.
* :mod:`.curvature`: the cross-entropy to the expected target near its optimum, KL ~ delta^2 / (2 f (1 - f)):
  its curvature in pixels falls as 1 / stride^2, and the RMS error at a given KL is sqrt(KL / 3) cells.
* :mod:`.montecarlo`: the seeded simulations through :mod:`h3r_theory.codecs` and :mod:`h3r_theory.losses`.
* :mod:`.table`: every closed form beside its simulated value.

Every derivation returns a :class:`Derivation` (statement, closed_form, steps, symbols).
"""

from .derivation import Derivation
from .quantization import mean_quantization_error
from .randomized_rounding import randomized_rounding_moments

__all__ = ["Derivation", "mean_quantization_error", "randomized_rounding_moments"]
