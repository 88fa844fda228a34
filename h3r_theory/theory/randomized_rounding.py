"""Randomized rounding: unbiased quantization, its noise, and why the network must learn the mean (item 2).

A coordinate ``u = i + e`` is rounded up to ``i + 1`` with probability ``e`` and down to ``i`` with
probability ``1 - e``: ``q = i + B`` with ``B ~ Bernoulli(e)``. In 2-D the two axes are drawn independently
(:meth:`h3r_theory.codecs.RandomizedRounding.encode`). All quantities are in heatmap cells.
"""

from __future__ import annotations

from typing import NamedTuple

import sympy as sp

from .derivation import Derivation, claim, fraction_symbol, uniform_mean


class Moments(NamedTuple):
    """Mean, bias and covariance of a randomized-rounding sample ``q`` (column vectors of length ``dim``)."""

    statement: tuple
    mean: sp.Matrix
    bias: sp.Matrix
    covariance: sp.Matrix
    steps: tuple
    symbols: dict


def _axis(name: str) -> tuple[sp.Symbol, sp.Symbol]:
    """The integer part and the fraction of one axis, ``i`` and ``e``."""
    return sp.Symbol(f"i_{name}", integer=True), fraction_symbol(f"e_{name}")


def _axis_moments(i: sp.Symbol, e: sp.Symbol) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """Mean (unsimplified and simplified) and variance of one axis of the sample."""
    outcomes = ((i, 1 - e), (i + 1, e))  # (value, probability)
    mean_sum = sp.Add(*(value * prob for value, prob in outcomes), evaluate=False)
    mean = sp.expand(sum(value * prob for value, prob in outcomes))
    variance = sp.factor(sp.expand(sum(prob * (value - (i + e)) ** 2 for value, prob in outcomes)))
    return mean_sum, mean, variance


def randomized_rounding_moments(dim: int = 1) -> Moments:
    """``E[q] = u`` and ``Cov[q] = diag(e_k (1 - e_k))`` for a ``dim``-D randomized-rounding sample.

    The variance is largest, 1/4 cell^2, half-way between cells, and vanishes on cell centres; its mean over
    a uniform fraction is 1/6 per axis. Independence of the axes makes the covariance diagonal.
    """
    if dim not in (1, 2):
        raise ValueError(f"dim must be 1 or 2, got {dim!r}")
    axes = [_axis(name) for name in "xy"[:dim]]
    symbols = {}
    means, variances, steps = [], [], []
    for name, (i, e) in zip("xy", axes):
        symbols[f"i_{name}"], symbols[f"e_{name}"] = i, e
        mean_sum, mean, variance = _axis_moments(i, e)
        steps.append((f"E[q_{name}] = i (1 - e) + (i + 1) e", mean_sum))
        steps.append((f"E[q_{name}] simplifies to u_{name} = i + e", mean))
        steps.append((f"Var[q_{name}] = (1 - e) e^2 + e (1 - e)^2", variance))
        means.append(mean)
        variances.append(variance)
    u = sp.Matrix([i + e for i, e in axes])
    mean = sp.Matrix(means)
    bias = sp.simplify(mean - u)
    covariance = sp.diag(*variances)
    steps.append(("independent axes: covariance is diagonal", covariance))
    statement = (
        claim("E[q]", mean, r"\mathbb{E}[q]"),
        claim("E[q] - u", bias, r"\mathbb{E}[q] - u"),
        claim("Cov[q]", covariance, r"\operatorname{Cov}[q]"),
    )
    return Moments(statement, mean, bias, covariance, tuple(steps), symbols)


def single_sample_error(dim: int = 2) -> Derivation:
    """Expected distance between one randomized-rounding sample and the keypoint, ``E|q - u|``.

    Given the fractions, the sample is one of the ``2^dim`` surrounding cells; weigh each cell's distance by
    its probability. In 1-D that is ``2 e (1 - e)``; in 2-D the four corner terms are mirror images of
    ``(1 - ex)(1 - ey) sqrt(ex^2 + ey^2)`` under ``e -> 1 - e``, so the mean over uniform fractions is four
    times that term's mean. The same ``y = t x`` substitution as :func:`mean_distance_on_square` makes
    the integral a product. Results: 1/3 cell (1-D) and ``(2 + sqrt(2))/15 + asinh(1)/3 ~ 0.5214`` cell (2-D),
    *worse* than plain rounding (1/4 and 0.3826): a single sample is a noisier target than the rounded cell.
    What randomized rounding gains is that the noise averages out (:func:`learn_the_expectation`).
    """
    if dim not in (1, 2):
        raise ValueError(f"dim must be 1 or 2, got {dim!r}")
    ex, ey = fraction_symbol("e_x"), fraction_symbol("e_y")
    if dim == 1:
        conditional = sp.factor((1 - ex) * ex + ex * (1 - ex))
        mean = uniform_mean(conditional, ex)
        steps = (
            ("given e: |i - u| w.p. 1 - e, |i + 1 - u| w.p. e", conditional),
            ("mean over e uniform on [0, 1)", mean),
        )
        return Derivation(
            claim("E|q - u| (1-D)", mean, r"\mathbb{E}\,|q - u| \;\text{(1-D)}"), mean, steps, {"e_x": ex}
        )
    corners = [
        ((1 - ex) * (1 - ey), sp.sqrt(ex**2 + ey**2)),
        (ex * (1 - ey), sp.sqrt((1 - ex) ** 2 + ey**2)),
        ((1 - ex) * ey, sp.sqrt(ex**2 + (1 - ey) ** 2)),
        (ex * ey, sp.sqrt((1 - ex) ** 2 + (1 - ey) ** 2)),
    ]
    conditional = sum(p * dist for p, dist in corners)
    # One corner term, on the triangle 0 <= y <= x <= 1 with y = t x, doubled for the mirror triangle.
    x, t = sp.symbols("x t", nonnegative=True)
    in_x = sp.integrate(sp.expand((1 - x) * (1 - t * x) * x * x), (x, 0, 1))
    one_corner = 2 * sp.integrate(sp.expand(in_x * sp.sqrt(1 + t**2)), (t, 0, 1))
    mean = sp.simplify(4 * one_corner)
    steps = (
        ("given (e_x, e_y): sum over the 4 cells of probability * distance", conditional),
        ("one corner term after y = t x on the triangle y <= x: integral over x", in_x),
        ("... times sqrt(1 + t^2), integrated over t in [0, 1], two triangles", sp.simplify(one_corner)),
        ("four mirror-image corners", mean),
    )
    return Derivation(
        claim("E|q - u| (2-D)", mean, r"\mathbb{E}\,\lVert q - u \rVert \;\text{(2-D)}"),
        mean,
        steps,
        {"e_x": ex, "e_y": ey},
    )


def single_sample_mse(dim: int = 2) -> Derivation:
    """``E|q - u|^2``: the trace of the covariance, ``sum_k e_k (1 - e_k)``; mean ``dim / 6`` cell^2."""
    moments = randomized_rounding_moments(dim)
    conditional = moments.covariance.trace()
    mean = conditional
    for name in "xy"[:dim]:
        mean = uniform_mean(mean, moments.symbols[f"e_{name}"])
    steps = (("trace of the covariance", conditional), ("mean over uniform fractions", mean))
    return Derivation(
        claim(f"E|q - u|^2 ({dim}-D)", mean, rf"\mathbb{{E}}\,\lVert q - u \rVert^2 \;\text{{({dim}-D)}}"),
        mean,
        steps,
        moments.symbols,
    )


def learn_the_expectation() -> Derivation:
    """Why the network must predict the *distribution* (its mean), never one sample.

    The image does not determine which way the coin fell, so any prediction ``c`` is a function of the
    image alone. Its expected squared error against the random target is ``(c - u)^2 + e (1 - e)``: the
    noise term is irreducible and the minimiser is ``c = u = E[q]``. Fitting one sample per image would need
    the network to guess coin flips; fitting the mean over the resampled targets (fresh each epoch) removes
    the bias of rounding *and* the noise. The cross-entropy version of the same fact, with the whole
    distribution as optimum, is :func:`h3r_theory.theory.consistency.softmax_cross_entropy_optimum`.
    """
    i, e = _axis("x")
    c = sp.Symbol("c", real=True)
    risk = sp.factor((1 - e) * (i - c) ** 2) + sp.factor(e * (i + 1 - c) ** 2)
    u = i + e
    decomposed = (c - u) ** 2 + e * (1 - e)
    minimiser = sp.solve(sp.diff(risk, c), c)[0]
    steps = (
        ("risk of predicting c against the random target", risk),
        ("= squared bias + sample variance", decomposed),
        ("check: risk - decomposition", sp.simplify(risk - decomposed)),
        ("d risk / dc = 0 at", minimiser),
        ("second derivative (> 0: a minimum)", sp.diff(risk, c, 2)),
    )
    return Derivation(
        claim("argmin_c E[(q - c)^2]", minimiser, r"\operatorname{argmin}_c \mathbb{E}[(q - c)^2]"),
        minimiser,
        steps,
        {"i": i, "e": e, "c": c},
    )
