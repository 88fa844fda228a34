"""Vanilla quantization: what rounding or flooring a coordinate to a heatmap cell costs (item 1).

Everything is in heatmap cells; multiply by the stride ``s`` for input pixels. A keypoint sits at
``u = i + e`` with ``i`` an integer and ``e`` its fractional part, uniform on ``[0, 1)`` for a keypoint
placed at random (the image content does not know where the cell grid is). The quantizer returns the cell
``q = i + o(e)`` where the offset ``o`` is ``0`` for ``"floor"`` and ``[e >= 1/2]`` for ``"round"``; the
error is the signed ``d = q - u = o(e) - e`` (decoded minus true), so a positive bias means "too far right".

Results (per axis unless 2-D):

=========  ======  ====================  ======  ==========================  ======================
rounding   bias    mean abs error        MSE     2-D mean Euclidean error    max error (1-D, 2-D)
=========  ======  ====================  ======  ==========================  ======================
round      0       1/4                   1/12    (sqrt(2) + asinh(1)) / 6    1/2, sqrt(2)/2
floor      -1/2    1/2                   1/3     (sqrt(2) + asinh(1)) / 3    1, sqrt(2) (suprema)
=========  ======  ====================  ======  ==========================  ======================
"""

from __future__ import annotations

import sympy as sp

from .derivation import Derivation, claim, fraction_symbol, uniform_mean

ROUNDINGS = ("round", "floor")


def _check(rounding: str, dim: int) -> None:
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
    if dim not in (1, 2):
        raise ValueError(f"dim must be 1 or 2, got {dim!r}")


def rounding_offset(rounding: str, e: sp.Symbol) -> sp.Expr:
    """The cell offset ``o(e)`` the quantizer adds to ``floor(u)``: a Piecewise in the fraction ``e``.

    ``round`` is round-half-up (``floor(u + 1/2)``), as in :func:`h3r_theory.codecs.quantize`.
    """
    _check(rounding, 1)
    if rounding == "floor":
        return sp.Integer(0)
    return sp.Piecewise((0, e < sp.Rational(1, 2)), (1, True))


def error_support(rounding: str) -> tuple[sp.Expr, sp.Expr]:
    """The interval ``[lo, hi)`` (cells) over which the per-axis error ``d`` is uniform."""
    _check(rounding, 1)
    half = sp.Rational(1, 2)
    return (-half, half) if rounding == "round" else (sp.Integer(-1), sp.Integer(0))


def quantization_bias(rounding: str) -> Derivation:
    """``E[q(u) - u]`` per axis for a uniform fraction: 0 for round, -1/2 for floor (cells)."""
    e = fraction_symbol()
    d = rounding_offset(rounding, e) - e
    bias = uniform_mean(d, e)
    steps = (
        ("error as a function of the fraction e", d),
        ("average over e uniform on [0, 1)", sp.Integral(d, (e, 0, 1))),
        ("bias", bias),
    )
    return Derivation(claim("E[q(u) - u]", bias, r"\mathbb{E}[q(u) - u]"), bias, steps, {"e": e})


def quantization_mse(rounding: str, dim: int = 1) -> Derivation:
    """``E|q(u) - u|^2`` in cells^2: 1/12 (round) and 1/3 (floor) per axis, doubled in 2-D.

    In 2-D the two axes are quantized independently, so the squared distance is the sum of the two
    per-axis squared errors and its mean is ``dim`` times the 1-D mean.
    """
    _check(rounding, dim)
    e = fraction_symbol()
    d = rounding_offset(rounding, e) - e
    per_axis = uniform_mean(d**2, e)
    mse = dim * per_axis
    steps = (
        ("squared error per axis", d**2),
        ("per-axis MSE, e uniform on [0, 1)", per_axis),
        (f"sum over {dim} independent axes", mse),
    )
    return Derivation(
        claim(
            f"E|q(u) - u|^2 ({dim}-D)", mse, rf"\mathbb{{E}}\,\lVert q(u) - u \rVert^2 \;\text{{({dim}-D)}}"
        ),
        mse,
        steps,
        {"e": e},
    )


def max_quantization_error(rounding: str, dim: int = 1) -> Derivation:
    """Worst-case distance ``sup |q(u) - u|``: 1/2 (round) or 1 (floor, a supremum not attained) per axis;
    ``sqrt(dim)`` times that in 2-D, at the cell corner where both axes are worst at once."""
    _check(rounding, dim)
    lo, hi = error_support(rounding)
    per_axis = sp.Max(sp.Abs(lo), sp.Abs(hi))
    worst = sp.sqrt(dim) * per_axis
    steps = (
        ("per-axis error is uniform on", sp.Interval.Ropen(lo, hi)),
        ("per-axis supremum of |d|", per_axis),
        (f"both axes at their worst: sqrt({dim}) times that", worst),
    )
    return Derivation(
        claim(f"sup|q(u) - u| ({dim}-D)", worst, rf"\sup \lVert q(u) - u \rVert \;\text{{({dim}-D)}}"),
        worst,
        steps,
    )


def mean_distance_on_square(side: sp.Expr) -> Derivation:
    """Mean of ``sqrt(x^2 + y^2)`` for ``(x, y)`` uniform on the square ``[0, side]^2``.

    The square splits along its diagonal into two mirror triangles; on ``0 <= y <= x <= side`` substitute
    ``y = t x`` (``t = tan(theta)``, Jacobian ``x``), which turns the triangle into the rectangle
    ``0 <= x <= side, 0 <= t <= 1`` and the integrand into ``x^2 sqrt(1 + t^2)``: a product, so sympy
    integrates each factor exactly. The result is ``side * (sqrt(2) + asinh(1)) / 3``: linear in ``side``.
    """
    x, t = sp.symbols("x t", nonnegative=True)
    integrand = x * sp.sqrt(1 + t**2) * x  # sqrt(x^2 + (t x)^2) * Jacobian x
    in_x = sp.integrate(x**2, (x, 0, side))
    in_t = sp.integrate(sp.sqrt(1 + t**2), (t, 0, 1))
    triangle = sp.simplify(in_x * in_t)
    mean = sp.simplify(2 * triangle / side**2)
    steps = (
        ("integrand on the triangle 0<=y<=x<=side after y = t x (with Jacobian x)", integrand),
        ("integral over x in [0, side]", in_x),
        ("integral over t in [0, 1]", in_t),
        ("two triangles, divided by the area side^2", mean),
    )
    return Derivation(claim("E sqrt(x^2 + y^2)", mean, r"\mathbb{E}\sqrt{x^2 + y^2}"), mean, steps)


def mean_quantization_error(rounding: str, dim: int) -> sp.Expr:
    """Exact mean distance ``E|q(u) - u|`` in cells for a uniformly placed keypoint (a sympy expression).

    1-D: ``E|d|`` = 1/4 (round), 1/2 (floor). 2-D: the mean Euclidean distance,
    ``(sqrt(2) + asinh(1)) / 6 ~ 0.3826`` for round and twice that for floor. See
    :func:`mean_quantization_error_derivation` for the steps.
    """
    return mean_quantization_error_derivation(rounding, dim).closed_form


def mean_quantization_error_derivation(rounding: str, dim: int) -> Derivation:
    """The steps behind :func:`mean_quantization_error`.

    Per axis the error is uniform on an interval of length 1 (:func:`error_support`), so its absolute value
    ``|d|`` is uniform on ``[0, a]`` with ``a = 1/2`` for round (the two halves fold onto each other) and
    ``a = 1`` for floor. In 2-D the axes are independent, so ``(|dx|, |dy|)`` is uniform on ``[0, a]^2`` and
    the mean distance is :func:`mean_distance_on_square` at ``side = a``: floor is exactly twice round by
    scaling.
    """
    _check(rounding, dim)
    e = fraction_symbol()
    d = rounding_offset(rounding, e) - e
    lo, hi = error_support(rounding)
    fold = sp.Max(sp.Abs(lo), sp.Abs(hi))  # |d| is uniform on [0, fold]
    if dim == 1:
        mean = uniform_mean(sp.Abs(d), e)
        steps = (("absolute error per axis", sp.Abs(d)), ("mean over e uniform on [0, 1)", mean))
    else:
        square = mean_distance_on_square(fold)
        mean = square.closed_form
        steps = (
            ("|d| per axis is uniform on [0, a] with a", fold),
            *square.steps,
        )
    statement = claim(
        f"E|q(u) - u| ({dim}-D, {rounding})",
        mean,
        rf"\mathbb{{E}}\,\lVert q(u) - u \rVert \;\text{{({dim}-D, {rounding})}}",
    )
    return Derivation(statement, mean, steps, {"e": e})
