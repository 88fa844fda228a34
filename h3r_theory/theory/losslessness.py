"""Losslessness: decoding the *expected* randomized-rounding heatmap returns the keypoint exactly (item 3).

The expected target (:meth:`h3r_theory.codecs.RandomizedRounding.expected`) puts the bilinear weights
``(1 - ex)(1 - ey), ex (1 - ey), (1 - ex) ey, ex ey`` on the four cells around ``u = (i + ex, j + ey)``. The
decoder averages the cell coordinates of a set of *activation points* weighted by their (normalised)
values. Whether that is exact depends only on whether the set contains the whole support:

* any set containing the 2 x 2 support: exact, for every fraction (cells outside the support weigh 0);
* ``top-k`` with ``k >= 4`` (2-D; ``k >= 2`` in 1-D) and the ``(2r+1)^2`` window around the maximum with
  ``r >= 1``: always contain the support, hence exact (the authors' release uses ``k = 9``);
* ``top-k`` with ``k < 4`` or the window ``r = 0``: drop positive weights, biased (closed forms below);
* a uniform floor ``delta`` on the activation cells (a trained network is never exactly zero off the
  support) pulls the estimate toward the set's centroid by ``n delta (c - u) / (1 + n delta)``.

Everything is in cells, written in the canonical region ``1/2 <= ey <= ex < 1`` where the order of the
four weights is fixed; the other regions are mirror images of it.
"""

from __future__ import annotations

import sympy as sp

from .derivation import Derivation, claim, fraction_symbol
from .quantization import mean_quantization_error


def bilinear_support(dim: int = 2) -> list[tuple[tuple[int, ...], sp.Expr]]:
    """The cells (offsets from ``floor(u)``) and expected-target weights of a ``dim``-D keypoint.

    Listed in decreasing weight order for the canonical region (``1/2 <= e`` in 1-D,
    ``1/2 <= ey <= ex < 1`` in 2-D), which is the order ``top-k`` takes them.
    """
    ex, ey = fraction_symbol("e_x"), fraction_symbol("e_y")
    if dim == 1:
        return [((1,), ex), ((0,), 1 - ex)]
    if dim == 2:
        return [
            ((1, 1), ex * ey),
            ((1, 0), ex * (1 - ey)),
            ((0, 1), (1 - ex) * ey),
            ((0, 0), (1 - ex) * (1 - ey)),
        ]
    raise ValueError(f"dim must be 1 or 2, got {dim!r}")


def _symbols(dim: int) -> dict[str, sp.Symbol]:
    names = ["e_x", "e_y"][:dim]
    return {name: fraction_symbol(name) for name in names}


def _weighted_mean_error(
    cells: list[tuple[tuple[int, ...], sp.Expr]], dim: int
) -> tuple[sp.Matrix, sp.Matrix]:
    """Decoded position (offset from ``floor(u)``) of the normalised weighted mean of ``cells``, and its error."""
    fractions = sp.Matrix(list(_symbols(dim).values()))
    mass = sum(weight for _, weight in cells)
    decoded = sp.Matrix(
        [sp.factor(sum(weight * cell[axis] for cell, weight in cells) / mass) for axis in range(dim)]
    )
    return decoded, sp.simplify(decoded - fractions)


def decode_expected(dim: int = 2) -> Derivation:
    """Weighted mean of the whole bilinear support = ``u`` exactly, symbolically in the fractions."""
    cells = bilinear_support(dim)
    decoded, error = _weighted_mean_error(cells, dim)
    steps = (
        ("expected target: weights on the cells around floor(u)", sp.Matrix([w for _, w in cells])),
        ("total mass", sp.simplify(sum(w for _, w in cells))),
        ("weighted mean of the cell offsets", decoded),
        ("decoded - u", error),
    )
    return Derivation(
        claim("decode(E[target]) - u", error, r"\operatorname{decode}(\mathbb{E}[\text{target}]) - u"),
        error,
        steps,
        _symbols(dim),
    )


def topk_decode(k: int, dim: int = 2) -> Derivation:
    """Error of the top-``k`` decoder on the expected heatmap, in the canonical region.

    Cells outside the support hold 0, so ``k`` beyond the support size adds nothing; below it the smallest
    weights are dropped. 2-D: ``k = 1`` is plain rounding, error ``(1 - ex, 1 - ey)``; ``k = 2`` recovers ``ey``
    but not ``ex``; ``k = 3`` biases both; ``k >= 4`` is exact. Ties between equal weights (e.g. ``ex = ey``)
    make the set, and so the error, depend on the tie-break.
    """
    if int(k) < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    cells = bilinear_support(dim)
    kept = cells[: int(k)]
    _, error = _weighted_mean_error(kept, dim)
    region = "1/2 <= e_x < 1" if dim == 1 else "1/2 <= e_y <= e_x < 1"
    steps = (
        (f"weights in decreasing order on {region}", sp.Matrix([w for _, w in cells])),
        (f"top-{k} keeps", sp.Matrix([w for _, w in kept])),
        ("decoded - u", error),
    )
    return Derivation(
        claim(f"top-{k} decode - u ({dim}-D)", error, rf"\text{{top-{k} decode}} - u \;\text{{({dim}-D)}}"),
        error,
        steps,
        _symbols(dim),
    )


def window_decode(radius: int, dim: int = 2) -> Derivation:
    """Error of the ``(2r+1)^dim`` window around the maximum, on the expected heatmap.

    The maximum of the separable weights is the rounded cell ``m`` (offset 1 per axis in the canonical
    region), and every support cell is within one cell of ``m`` per axis: ``r >= 1`` always covers the
    support (exact); ``r = 0`` keeps only ``m``, which is plain rounding.
    """
    if int(radius) < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    cells = bilinear_support(dim)
    peak = cells[0][0]
    kept = [(cell, w) for cell, w in cells if all(abs(c - p) <= int(radius) for c, p in zip(cell, peak))]
    _, error = _weighted_mean_error(kept, dim)
    steps = (
        ("the maximum is the rounded cell, offset", sp.Matrix(peak)),
        (f"support cells within {radius} of it per axis", sp.Matrix([w for _, w in kept])),
        ("decoded - u", error),
    )
    return Derivation(
        claim(
            f"window r={radius} decode - u ({dim}-D)",
            error,
            rf"\text{{window decode}}_{{r={radius}}} - u \;\text{{({dim}-D)}}",
        ),
        error,
        steps,
        _symbols(dim),
    )


def uniform_floor_bias() -> Derivation:
    """Error when every one of the ``n`` activation cells carries an extra ``delta`` (per axis, cells).

    The support still sums to 1 and has mean ``u``; the ``n`` cells add mass ``n delta`` at their centroid
    ``c``. The decoder returns ``(u + n delta c) / (1 + n delta)``: a pull toward the centroid by the
    fraction ``n delta / (1 + n delta)`` of the distance. For the window around the maximum, ``c`` is the
    rounded cell, so the decoder slides from exact (``delta = 0``) toward plain rounding (``delta -> inf``).
    With ``activation="logits"`` the same holds with ``delta`` = the softmax mass of each off-support cell
    relative to the support's mass. For ``top-k`` with ``k`` above the support size, a *uniform* floor makes
    the extra ``k - 4`` cells ties, picked by the tie-break: the formula holds with ``c`` the centroid of the
    cells actually picked, which is why the window (whose centroid is always the peak) is the cleaner
    decoder when the background is not exactly zero.
    """
    u, c = sp.symbols("u c", real=True)
    delta, n = sp.symbols("delta n", nonnegative=True)
    decoded = (u + n * delta * c) / (1 + n * delta)
    error = sp.factor(sp.simplify(decoded - u))
    steps = (
        (
            "support: mass 1, first moment u; n cells of delta at centroid c",
            sp.Tuple(1 + n * delta, u + n * delta * c),
        ),
        ("normalised weighted mean", decoded),
        ("decoded - u", error),
    )
    symbols = {"u": u, "c": c, "delta": delta, "n": n}
    return Derivation(claim("decoded - u", error, r"\text{decoded} - u"), error, steps, symbols)


#: How each statistic of :func:`window_floor_error` is typeset.
_ERROR_LATEX = {
    "mean_abs_1d": r"\mathbb{E}\,|\text{error}| \;\text{(1-D)}",
    "max_abs_1d": r"\max |\text{error}| \;\text{(1-D)}",
    "mean_2d": r"\mathbb{E}\,\lVert \text{error} \rVert \;\text{(2-D)}",
}


def window_floor_error(radius: int = 1) -> dict[str, Derivation]:
    """Mean and worst error of the window decoder on ``E[target] + delta``, for a uniformly placed keypoint.

    Per axis the error is ``f (m - u)`` with ``f = n delta / (1 + n delta)``, ``n = (2r+1)^2`` and ``m - u`` the
    rounding error, so: mean ``|error|`` per axis ``f / 4``, worst ``f / 2``, 2-D mean distance
    ``f (sqrt(2) + asinh(1)) / 6``. Returns ``{"mean_abs_1d", "max_abs_1d", "mean_2d"}``.
    """
    if int(radius) < 1:
        raise ValueError(f"radius must be >= 1 (r = 0 is plain rounding), got {radius}")
    delta = sp.Symbol("delta", nonnegative=True)
    n = (2 * int(radius) + 1) ** 2
    factor = n * delta / (1 + n * delta)
    out = {}
    for key, base in (
        ("mean_abs_1d", mean_quantization_error("round", 1)),
        ("max_abs_1d", sp.Rational(1, 2)),
        ("mean_2d", mean_quantization_error("round", 2)),
    ):
        value = sp.simplify(factor * base)
        steps = (
            ("pull fraction n delta / (1 + n delta), n", sp.Integer(n)),
            ("times the rounding error", value),
        )
        out[key] = Derivation(
            claim(
                f"{key} (window r={radius}, floor delta)",
                value,
                rf"{_ERROR_LATEX[key]} \;(\text{{window }} r={radius},\ \text{{floor }} \delta)",
            ),
            value,
            steps,
            {"delta": delta},
        )
    return out
