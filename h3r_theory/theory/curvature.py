"""The cross-entropy to the expected randomized-rounding target near its optimum: why equal fit means equal
error in CELLS, so that the error in pixels grows with the stride.

Write ``u = i + f`` for a coordinate in cells (``f`` its sub-cell fraction), ``s`` for the stride (input
pixels per cell). On one axis the expected target puts ``1 - f`` on cell ``i`` and ``f`` on cell ``i + 1``
(:meth:`h3r_theory.codecs.RandomizedRounding.expected`); in 2-D it is the product of the two axes'.

* A prediction that is the expected target of a point moved by ``delta`` cells, ``q = (1 - f - delta,
  f + delta)``, has ``KL(p || q) = delta^2 / (2 f (1 - f)) + O(delta^3)``. The spatial-softmax
  cross-entropy is ``H(p) + KL(p || q)``, so this KL is the loss above its minimum.
* In input pixels (``d = s delta``) the same KL is ``d^2 / (2 s^2 f (1 - f))``: its curvature in pixels
  falls as ``1 / s^2``. A fit that reaches a given KL leaves an error proportional to ``s``.
* If each axis of each keypoint carries the same KL ``kappa`` and ``f`` is uniform, ``E[delta^2] = 2 kappa
  E[f (1 - f)] = kappa / 3`` per axis; with ``KL = 2 kappa`` over both axes the RMS 2-D error is
  ``sqrt(KL / 3)`` cells, about ``0.577 sqrt(KL)``. A trained network's KL also holds mismatch that is not a
  shift (mass beyond the 2 x 2 cells, a wrong spread), so its RMS error per ``sqrt(KL)`` is lower
  (measured in notebook 11 from the studies' records).
"""

from __future__ import annotations

import sympy as sp
import torch
from torch import Tensor

from .derivation import Derivation, claim, fraction_symbol, uniform_mean

SYMBOLS = {
    "f": fraction_symbol("f"),
    "delta": sp.Symbol("delta", real=True),
    "d": sp.Symbol("d", real=True),
    "s": sp.Symbol("s", positive=True),
    "kappa": sp.Symbol("kappa", positive=True),
    "KL": sp.Symbol("KL", positive=True),
}


def kl_of_a_shift() -> Derivation:
    """``KL(p || q) = delta^2 / (2 f (1 - f)) + O(delta^3)`` on one axis, in cells (the quadratic term)."""
    f, delta = SYMBOLS["f"], SYMBOLS["delta"]
    p = (1 - f, f)
    q = (1 - f - delta, f + delta)
    kl = sum(pi * sp.log(pi / qi) for pi, qi in zip(p, q))
    series = sp.series(kl, delta, 0, 3).removeO()
    quadratic = sp.factor(sp.simplify(series))
    cubic = sp.factor(sp.simplify(sp.series(kl, delta, 0, 4).removeO() - series))
    steps = (
        ("the expected target on cells i, i + 1", sp.Matrix([p])),
        ("the expected target of the point moved by delta cells", sp.Matrix([q])),
        ("KL(p || q) = sum p log(p / q)", kl),
        (
            "its value and slope at delta = 0",
            sp.Matrix([sp.simplify(kl.subs(delta, 0)), sp.simplify(sp.diff(kl, delta).subs(delta, 0))]),
        ),  # fmt: skip
        ("Taylor series to second order", quadratic),
        ("the third-order term (small when delta << min(f, 1 - f))", cubic),
    )
    return Derivation(
        claim("KL(p || q) to 2nd order", quadratic, r"\mathrm{KL}(p\,\|\,q)"), quadratic, steps, dict(SYMBOLS)
    )


def kl_in_pixels() -> Derivation:
    """The same KL for an error of ``d`` input pixels at stride ``s``: ``d^2 / (2 s^2 f (1 - f))``; its
    curvature in pixels, ``1 / (s^2 f (1 - f))``, has elasticity -2 in ``s``."""
    d, s, delta = SYMBOLS["d"], SYMBOLS["s"], SYMBOLS["delta"]
    quadratic = kl_of_a_shift().closed_form
    in_px = sp.factor(quadratic.subs(delta, d / s))
    curvature = sp.factor(sp.diff(in_px, d, 2))
    steps = (
        ("KL in cells", quadratic),
        ("an error of d px is delta = d / s cells", in_px),
        ("curvature in px, d^2 KL / d d^2", curvature),
        (
            "elasticity of the curvature in the stride, (s / c) dc / ds",
            sp.simplify(s / curvature * sp.diff(curvature, s)),
        ),
        ("error in px at a given KL kappa (the root d >= 0 of KL(d) = kappa)", _positive_root(in_px, d)),
    )
    return Derivation(claim("KL of a d-px error", in_px, r"\mathrm{KL}(d)"), in_px, steps, dict(SYMBOLS))


def _positive_root(expr: sp.Expr, var: sp.Symbol) -> sp.Expr:
    """The root ``var >= 0`` of ``expr = kappa`` (``expr`` even in ``var``)."""
    roots = sp.solve(sp.Eq(expr, SYMBOLS["kappa"]), var)
    return next(r for r in roots if r.subs({SYMBOLS["f"]: sp.Rational(1, 2)}).is_nonnegative)


def rms_error_at_equal_kl() -> Derivation:
    """``RMS 2-D error = sqrt(KL / 3)`` cells when every axis of every keypoint carries the same KL and the
    fraction is uniform (the quadratic regime of :func:`kl_of_a_shift`)."""
    f, kappa, KL = SYMBOLS["f"], SYMBOLS["kappa"], SYMBOLS["KL"]
    delta2 = 2 * kappa * f * (1 - f)  # the squared shift whose KL is kappa at fraction f
    mean_delta2 = uniform_mean(delta2, f)
    rms = sp.sqrt(sp.simplify(2 * mean_delta2.subs(kappa, KL / 2)))
    steps = (
        ("the squared shift of KL kappa at fraction f", delta2),
        ("its mean over a uniform fraction (one axis)", mean_delta2),
        ("both axes, KL = 2 kappa: mean squared 2-D error", sp.simplify(2 * mean_delta2.subs(kappa, KL / 2))),
        ("RMS 2-D error in cells", rms),
        ("per sqrt(KL)", sp.simplify(rms / sp.sqrt(KL))),
    )
    return Derivation(claim("RMS error (cells) at KL", rms, r"\mathrm{RMS}"), rms, steps, dict(SYMBOLS))


def kl_exact(fraction: Tensor, delta: Tensor) -> Tensor:
    """The exact 1-D ``KL(p || q)`` (nats) of :func:`kl_of_a_shift`, elementwise, for ``|delta|`` small
    enough that ``q`` stays a distribution on the same two cells (``-f <= delta <= 1 - f``)."""
    f = fraction.to(torch.float64)
    delta = delta.to(f)
    if bool(((f + delta) < 0).any() or ((f + delta) > 1).any()):
        raise ValueError("delta must keep f + delta in [0, 1] (the shifted point on the same two cells)")
    p = torch.stack([1 - f, f], -1)
    q = torch.stack([1 - f - delta, f + delta], -1)
    terms = torch.where(p > 0, p * (p.log() - q.log()), torch.zeros_like(p))
    return terms.sum(-1)
