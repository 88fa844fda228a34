"""The sympy derivations of h3r_theory.theory against the published closed forms.

The expected constants are typed here, in the test (never in the library), so that a derivation that
drifts is caught rather than compared with itself.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp

from h3r_theory.theory import consistency, losslessness, quantization, randomized_rounding, resolution
from h3r_theory.theory.derivation import Derivation, Quantity, claim, text_latex

SQRT2, ASINH1 = sp.sqrt(2), sp.asinh(1)
ROUND_2D = (SQRT2 + ASINH1) / 6  # Yu & Tao (2021); mean distance to the nearest lattice point


def same(derived, expected) -> bool:
    """Exact symbolic equality (matrices elementwise)."""
    difference = sp.simplify(sp.sympify(derived) - sp.sympify(expected))
    if isinstance(difference, sp.MatrixBase):
        return all(sp.simplify(entry) == 0 for entry in difference)
    return difference == 0


# -- item 1 -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "rounding, dim, expected",
    [
        ("round", 1, sp.Rational(1, 4)),
        ("floor", 1, sp.Rational(1, 2)),
        ("round", 2, ROUND_2D),
        ("floor", 2, 2 * ROUND_2D),
    ],
)
def test_mean_quantization_error(rounding, dim, expected):
    derived = quantization.mean_quantization_error(rounding, dim)
    assert same(derived, expected)


def test_mean_quantization_error_numeric_values():
    assert float(quantization.mean_quantization_error("round", 2)) == pytest.approx(
        0.38259785823210635, abs=1e-15
    )
    assert float(quantization.mean_quantization_error("floor", 2)) == pytest.approx(
        0.7651957164642127, abs=1e-15
    )


def test_mean_quantization_error_is_integrated_not_typed():
    # The derivation must go through the integral: the steps hold the t-integral of sqrt(1 + t^2).
    derivation = quantization.mean_quantization_error_derivation("round", 2)
    steps = dict(derivation.steps)
    assert same(steps["integral over t in [0, 1]"], (SQRT2 + ASINH1) / 2)
    assert same(steps["integral over x in [0, side]"], sp.Rational(1, 24))
    assert isinstance(derivation.statement, sp.Eq)


@pytest.mark.parametrize("rounding, expected", [("round", 0), ("floor", sp.Rational(-1, 2))])
def test_bias(rounding, expected):
    assert same(quantization.quantization_bias(rounding).closed_form, expected)


@pytest.mark.parametrize(
    "rounding, dim, expected",
    [
        ("round", 1, sp.Rational(1, 12)),
        ("floor", 1, sp.Rational(1, 3)),
        ("round", 2, sp.Rational(1, 6)),
        ("floor", 2, sp.Rational(2, 3)),
    ],
)
def test_mse(rounding, dim, expected):
    assert same(quantization.quantization_mse(rounding, dim).closed_form, expected)


@pytest.mark.parametrize(
    "rounding, dim, expected",
    [("round", 1, sp.Rational(1, 2)), ("floor", 1, 1), ("round", 2, SQRT2 / 2), ("floor", 2, SQRT2)],
)
def test_max_error(rounding, dim, expected):
    assert same(quantization.max_quantization_error(rounding, dim).closed_form, expected)


def test_mean_distance_on_square_scales_linearly():
    a = sp.Symbol("a", positive=True)
    assert same(quantization.mean_distance_on_square(a).closed_form, a * (SQRT2 + ASINH1) / 3)


@pytest.mark.parametrize("bad", [{"rounding": "ceil", "dim": 1}, {"rounding": "round", "dim": 3}])
def test_quantization_rejects_bad_arguments(bad):
    with pytest.raises(ValueError, match="rounding|dim"):
        quantization.mean_quantization_error(**bad)


# -- item 2 -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [1, 2])
def test_randomized_rounding_moments(dim):
    moments = randomized_rounding.randomized_rounding_moments(dim)
    fractions = [moments.symbols[f"e_{a}"] for a in "xy"[:dim]]
    integers = [moments.symbols[f"i_{a}"] for a in "xy"[:dim]]
    assert same(moments.mean, sp.Matrix([i + e for i, e in zip(integers, fractions)]))
    assert same(moments.bias, sp.zeros(dim, 1))
    assert same(moments.covariance, sp.diag(*[e * (1 - e) for e in fractions]))


def test_single_sample_error_and_mse():
    one = randomized_rounding.single_sample_error(1)
    e = one.symbols["e_x"]
    assert same(dict(one.steps)["given e: |i - u| w.p. 1 - e, |i + 1 - u| w.p. e"], 2 * e * (1 - e))
    assert same(one.closed_form, sp.Rational(1, 3))
    two = randomized_rounding.single_sample_error(2).closed_form
    assert same(two, (2 + SQRT2) / 15 + ASINH1 / 3)
    assert float(two) == pytest.approx(0.5214054331647207, abs=1e-14)
    # One sample is a worse target than the rounded cell: the gain of randomized rounding is in the mean.
    assert float(two) > float(quantization.mean_quantization_error("round", 2))
    assert same(randomized_rounding.single_sample_mse(1).closed_form, sp.Rational(1, 6))
    assert same(randomized_rounding.single_sample_mse(2).closed_form, sp.Rational(1, 3))


def test_single_sample_error_2d_conditional_matches_its_mean():
    derivation = randomized_rounding.single_sample_error(2)
    conditional = derivation.steps[0][1]
    f = sp.lambdify((derivation.symbols["e_x"], derivation.symbols["e_y"]), conditional, "numpy")
    # Midpoint rule on a 400 x 400 grid: O(h^2) accurate for this smooth-but-for-a-corner integrand.
    grid = (np.arange(400) + 0.5) / 400
    ex, ey = np.meshgrid(grid, grid)
    assert f(ex, ey).mean() == pytest.approx(float(derivation.closed_form), abs=1e-5)


def test_learn_the_expectation():
    derivation = randomized_rounding.learn_the_expectation()
    s = derivation.symbols
    assert same(derivation.closed_form, s["i"] + s["e"])
    assert dict(derivation.steps)["check: risk - decomposition"] == 0


# -- item 3 -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [1, 2])
def test_decode_expected_is_exact(dim):
    assert same(losslessness.decode_expected(dim).closed_form, sp.zeros(dim, 1))


def test_topk_decode():
    ex, ey = sp.Symbol("e_x", nonnegative=True), sp.Symbol("e_y", nonnegative=True)
    assert same(losslessness.topk_decode(1).closed_form, sp.Matrix([1 - ex, 1 - ey]))
    assert same(losslessness.topk_decode(2).closed_form, sp.Matrix([1 - ex, 0]))
    three = losslessness.topk_decode(3).closed_form
    mass = 1 - (1 - ex) * (1 - ey)
    assert same(three, sp.Matrix([ex / mass - ex, ey / mass - ey]))
    for k in (4, 9):
        assert same(losslessness.topk_decode(k).closed_form, sp.zeros(2, 1))
    assert same(losslessness.topk_decode(1, dim=1).closed_form, sp.Matrix([1 - ex]))
    assert same(losslessness.topk_decode(2, dim=1).closed_form, sp.zeros(1, 1))


def test_window_decode():
    ex, ey = sp.Symbol("e_x", nonnegative=True), sp.Symbol("e_y", nonnegative=True)
    assert same(losslessness.window_decode(0).closed_form, sp.Matrix([1 - ex, 1 - ey]))
    for r in (1, 2):
        assert same(losslessness.window_decode(r).closed_form, sp.zeros(2, 1))


def test_uniform_floor_bias():
    d = losslessness.uniform_floor_bias()
    s = d.symbols
    assert same(d.closed_form, s["n"] * s["delta"] * (s["c"] - s["u"]) / (1 + s["n"] * s["delta"]))
    window = losslessness.window_floor_error(1)
    delta = window["mean_abs_1d"].symbols["delta"]
    assert same(window["mean_abs_1d"].closed_form, 9 * delta / (4 * (1 + 9 * delta)))
    assert same(window["max_abs_1d"].closed_form, 9 * delta / (2 * (1 + 9 * delta)))
    assert same(window["mean_2d"].closed_form, 9 * delta / (1 + 9 * delta) * ROUND_2D)


def test_losslessness_rejects_bad_arguments():
    with pytest.raises(ValueError, match="k must be"):
        losslessness.topk_decode(0)
    with pytest.raises(ValueError, match="radius"):
        losslessness.window_floor_error(0)


# -- item 4 -------------------------------------------------------------------------------------------------
def test_softmax_cross_entropy_optimum_is_the_expected_distribution():
    d = consistency.softmax_cross_entropy_optimum(4)
    assert same(d.closed_form, sp.Matrix([d.symbols[f"p{j}"] for j in range(1, 5)]))


def test_bce_optimum():
    d = consistency.bce_optimum()
    p = d.symbols["p"]
    assert same(sp.exp(d.closed_form), p / (1 - p))


def test_odds_bias_closed_form_and_maximum():
    d = consistency.bce_logits_softmax_bias()
    e = d.symbols["e_x"]
    assert same(d.closed_form, e * (1 - e) * (2 * e - 1) / (2 * e**2 - 2 * e + 1))
    e_star, peak = consistency.bce_logits_softmax_max_bias()
    root = sp.sqrt(sp.sqrt(5) - 2)
    assert same(e_star, sp.Rational(1, 2) + root / 2)
    assert same(peak, (sp.sqrt(5) - 1) * root / 4)
    assert float(peak) == pytest.approx(0.15014155300038, abs=1e-12)
    # Cross-check the maximum on a dense grid.
    grid = np.linspace(1e-6, 1 - 1e-6, 200_001)
    values = sp.lambdify(e, d.closed_form, "numpy")(grid)
    assert np.abs(values).max() == pytest.approx(float(peak), abs=1e-9)
    assert consistency.odds_weighted_decode_max_slope() == (sp.Rational(1, 2), 2)


def test_odds_bias_2d_reduces_to_1d_and_matches_the_joint_form():
    two = consistency.bce_logits_softmax_bias_2d()
    ex, ey = two.symbols["e_x"], two.symbols["e_y"]
    one = consistency.bce_logits_softmax_bias().closed_form.subs(sp.Symbol("e_x", nonnegative=True), ex)
    assert same(two.closed_form.subs(ey, 0), sp.Matrix([one, 0]))
    assert same(two.closed_form.subs({ex: sp.Rational(1, 2), ey: sp.Rational(1, 2)}), sp.zeros(2, 1))
    joint = consistency.odds_weighted_decode_joint(2)
    p = joint.symbols
    f_joint = sp.lambdify([p["p_11"], p["p_10"], p["p_01"], p["p_00"]], joint.closed_form, "numpy")
    f_two = sp.lambdify([ex, ey], two.closed_form, "numpy")
    for a, b in [(0.3, 0.6), (0.8, 0.35), (0.1, 0.9)]:
        probs = [a * b, a * (1 - b), (1 - a) * b, (1 - a) * (1 - b)]
        np.testing.assert_allclose(np.ravel(f_joint(*probs)) - [a, b], np.ravel(f_two(a, b)), atol=1e-12)


def test_mse_gaussian_argmax_keeps_rounding_error():
    assert same(consistency.mse_gaussian_argmax_error().closed_form, ROUND_2D)


# -- item 5 -------------------------------------------------------------------------------------------------
def test_resolution_scaling_laws():
    nme = resolution.quantization_nme("round")
    s, d = nme.symbols["s"], nme.symbols["d"]
    assert same(nme.closed_form, ROUND_2D * s / d)
    assert sp.diff(nme.closed_form, s, 2) == 0
    costs = resolution.head_cost()
    for derivation in costs.values():
        assert same(dict(derivation.steps)["elasticity s/f df/ds"], -2)
    W, H, K, C = (costs["flops"].symbols[n] for n in "WHKC")
    assert same(costs["flops"].closed_form, 2 * C * K * W * H / s**2)


def test_resolution_tradeoff_numbers():
    out = resolution.resolution_tradeoff(
        (256, 256), [2, 4, 8], normaliser=50.0, num_keypoints=98, in_channels=32
    )
    m = 0.38259785823210635
    np.testing.assert_allclose(out["nme_quantization"], m * np.array([2, 4, 8]) / 50.0, rtol=1e-12)
    np.testing.assert_allclose(out["head_outputs"], 98 * 256 * 256 / np.array([4.0, 16.0, 64.0]), rtol=1e-12)
    np.testing.assert_allclose(out["head_flops"], 2 * 32 * out["head_outputs"], rtol=1e-12)
    with pytest.raises(ValueError, match="normaliser"):
        resolution.resolution_tradeoff((256, 256), [4], normaliser=0.0, num_keypoints=1)
    with pytest.raises(ValueError, match="strides"):
        resolution.resolution_tradeoff((256, 256), [0, 4], normaliser=1.0, num_keypoints=1)


# -- the record type ----------------------------------------------------------------------------------------
def test_derivation_helpers():
    d = randomized_rounding.single_sample_error(1)
    assert isinstance(d, Derivation)
    assert "=>" in d.show()
    topk = losslessness.topk_decode(1, dim=1)
    assert float(topk.closed_form[0].subs(topk.symbols["e_x"], 0.75)) == pytest.approx(0.25)
    assert quantization.quantization_bias("floor").evaluate() == -0.5
    assert math.isclose(consistency.bce_logits_softmax_bias().evaluate(e_x=0.25), -0.15)


def test_odds_bias_2d_maximum_is_the_1d_one_on_the_edges():
    out = consistency.bce_logits_softmax_max_bias_2d(points=801)
    _, peak = consistency.bce_logits_softmax_max_bias()
    # Approached (from below) as e_y -> 0 or 1; the grid stops 1/800 short of the edge.
    assert float(peak) - 1e-3 <= out["max_abs_axis"] <= float(peak) + 1e-12
    assert out["max_norm"] <= float(peak) + 1e-12
    assert min(out["e_y"], 1 - out["e_y"]) < 0.01
    # Strictly inside, the mixed odds give a smaller bias (at e_y = 1/2 the x bias peaks at 0.058).
    two = consistency.bce_logits_softmax_bias_2d()
    inner = sp.lambdify(two.symbols["e_x"], two.closed_form[0].subs(two.symbols["e_y"], sp.Rational(1, 2)))
    assert np.abs(inner(np.linspace(0.01, 0.99, 99))).max() < 0.06


# -- how the statements typeset ------------------------------------------------------------------------------
def _all_statements():
    """Every claim the library makes, as (where, sympy.Eq)."""
    derivations = {
        "bias": quantization.quantization_bias("round"),
        "mse": quantization.quantization_mse("round", 1),
        "max": quantization.max_quantization_error("round", 2),
        "square": quantization.mean_distance_on_square(sp.Rational(1, 2)),
        "mean 2-D": quantization.mean_quantization_error_derivation("floor", 2),
        "rr one 1-D": randomized_rounding.single_sample_error(1),
        "rr one 2-D": randomized_rounding.single_sample_error(2),
        "rr mse": randomized_rounding.single_sample_mse(2),
        "learn": randomized_rounding.learn_the_expectation(),
        "expected": losslessness.decode_expected(2),
        "top-3": losslessness.topk_decode(3, 2),
        "window": losslessness.window_decode(0, 2),
        "floor": losslessness.uniform_floor_bias(),
        **{f"window floor {k}": d for k, d in losslessness.window_floor_error(1).items()},
        "ce": consistency.softmax_cross_entropy_optimum(3),
        "bce": consistency.bce_optimum(),
        "odds": consistency.bce_logits_softmax_bias(),
        "odds 2-D": consistency.bce_logits_softmax_bias_2d(),
        "mse gauss": consistency.mse_gaussian_argmax_error(),
        "joint": consistency.odds_weighted_decode_joint(2),
        "nme": resolution.quantization_nme("round"),
        **{f"head {k}": d for k, d in resolution.head_cost().items()},
    }
    out = [(name, d.statement) for name, d in derivations.items()]
    out += [
        (f"moments {i}", s)
        for i, s in enumerate(randomized_rounding.randomized_rounding_moments(2).statement)
    ]
    return out


@pytest.mark.parametrize("name, statement", _all_statements(), ids=[n for n, _ in _all_statements()])
def test_statements_typeset_as_written(name, statement):
    """A claim's left side is typeset from its own LaTeX, never from a symbol name parsed for ``_`` and ``^``
    (which gave e.g. ``argmin^{2]}_{c E[(q - c)}``); the plain-text name still prints as written."""
    lhs = statement.lhs
    assert isinstance(lhs, Quantity), f"{name}: left side is a {type(lhs).__name__}, not a Quantity"
    assert not lhs._latex_form.startswith(r"\text{" + lhs.name), f"{name}: no LaTeX given for {lhs.name!r}"
    latex = sp.latex(statement)
    assert latex.startswith(lhs._latex_form)
    assert latex.count("{") == latex.count("}"), f"{name}: unbalanced braces in {latex!r}"
    assert sp.sstr(statement).startswith(f"Eq({lhs.name}, ")


def test_claim_without_latex_is_escaped_text():
    statement = claim("E|d|^2_x (50%)", sp.Integer(1))
    assert sp.latex(statement.lhs) == r"\text{E|d|\^{}2\_x (50\%)}"
    assert sp.latex(sp.Symbol("E|d|^2_x")) != sp.latex(statement.lhs)  # what the plain symbol would garble
    assert text_latex("{a}") == r"\text{\{a\}}"


def test_quantity_survives_pickling():
    import pickle

    statement = claim("argmin_c E[(q - c)^2]", sp.Integer(0), r"\operatorname{argmin}_c")
    again = pickle.loads(pickle.dumps(statement))
    assert sp.latex(again.lhs) == r"\operatorname{argmin}_c" and again.lhs.name == statement.lhs.name
