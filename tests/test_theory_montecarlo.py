"""Each closed form of h3r_theory.theory against its seeded Monte Carlo through the real codecs.

Agreement bound: ``|mean - exact| <= 5 sd / sqrt(N)`` with ``sd`` the sample standard deviation (a false
alarm has probability ~6e-7 per check); the simulations are seeded, so a run is reproducible.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from h3r_theory.theory import consistency, losslessness, quantization, randomized_rounding, resolution
from h3r_theory.theory import montecarlo as mc

Z = 5.0


def exact(expr) -> float:
    return float(sp.N(expr))


def evaluate(expr, symbols, *arrays) -> np.ndarray:
    """A scalar closed form at arrays of points (constants broadcast to the arrays' shape)."""
    return np.broadcast_to(
        np.asarray(sp.lambdify(symbols, expr, "numpy")(*arrays), dtype=np.float64), arrays[0].shape
    )


# -- the Estimate helper ------------------------------------------------------------------------------------
def test_estimate_and_agreement_bound():
    values = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64)
    est = mc.estimate(values)
    assert est.mean == 1.5 and est.n == 4
    assert est.sd == pytest.approx(math.sqrt(5 / 3))
    assert est.agrees(1.5 + 4.9 * est.stderr) and not est.agrees(1.5 + 5.1 * est.stderr)
    assert mc.Estimate(1.0, 0.0, 10).z_score(2.0) == -math.inf
    with pytest.raises(ValueError, match="at least 2"):
        mc.estimate(torch.zeros(1))


# -- item 1: vanilla quantization ---------------------------------------------------------------------------
@pytest.mark.parametrize("rounding", ["round", "floor"])
def test_quantization_matches_closed_forms(rounding):
    sim = mc.simulate_quantization(rounding, n=100_000, seed=1)
    assert sim["bias"].agrees(exact(quantization.quantization_bias(rounding).closed_form), Z)
    assert sim["mean_abs_1d"].agrees(exact(quantization.mean_quantization_error(rounding, 1)), Z)
    assert sim["mse_1d"].agrees(exact(quantization.quantization_mse(rounding, 1).closed_form), Z)
    assert sim["mean_2d"].agrees(exact(quantization.mean_quantization_error(rounding, 2)), Z)
    assert sim["mse_2d"].agrees(exact(quantization.quantization_mse(rounding, 2).closed_form), Z)
    for dim, key in ((1, "max_abs_1d"), (2, "max_2d")):
        sup = exact(quantization.max_quantization_error(rounding, dim).closed_form)
        # Never beyond the supremum; with 1e5 uniform draws the largest error is within 1e-2 of it.
        assert sup - 1e-2 <= sim[key] <= sup + 1e-9


def test_quantization_dtypes_and_devices(dtype, device):
    sim = mc.simulate_quantization("round", n=30_000, seed=2, dtype=dtype, device=device)
    assert sim["errors"].dtype == (np.float32 if dtype == torch.float32 else np.float64)
    assert sim["mean_2d"].agrees(exact(quantization.mean_quantization_error("round", 2)), Z)
    assert sim["max_abs_1d"] <= 0.5 + 1e-5


# -- item 2: randomized rounding ----------------------------------------------------------------------------
@pytest.mark.parametrize("fractions", [(0.25, 0.7), (0.5, 0.1)])
def test_randomized_rounding_conditional_moments(fractions, device):
    sim = mc.simulate_randomized_rounding(fractions, n=100_000, seed=3)
    on_device = mc.simulate_randomized_rounding(fractions, n=1_000, seed=3, device=device)
    assert np.isin(on_device["errors"][:, 0], [-fractions[0], 1 - fractions[0]]).all()
    moments = randomized_rounding.randomized_rounding_moments(2)
    ex, ey = moments.symbols["e_x"], moments.symbols["e_y"]
    at = {ex: fractions[0], ey: fractions[1]}
    # Unbiased: the average sample is the keypoint.
    assert sim["bias_x"].agrees(0.0, Z) and sim["bias_y"].agrees(0.0, Z)
    # Per-axis variance e (1 - e) (the mean squared deviation from the known mean u).
    assert sim["mse_x"].agrees(exact(moments.covariance[0, 0].subs(at)), Z)
    assert sim["mse_y"].agrees(exact(moments.covariance[1, 1].subs(at)), Z)
    one = randomized_rounding.single_sample_error(1)
    assert sim["mean_abs_x"].agrees(exact(one.steps[0][1].subs(one.symbols["e_x"], fractions[0])), Z)
    two = randomized_rounding.single_sample_error(2)
    conditional = two.steps[0][1].subs({two.symbols["e_x"]: fractions[0], two.symbols["e_y"]: fractions[1]})
    assert sim["mean_2d"].agrees(exact(conditional), Z)


def test_randomized_rounding_averaged_over_positions():
    sim = mc.simulate_randomized_rounding(None, n=100_000, seed=4)
    assert sim["bias"].agrees(0.0, Z)
    assert sim["mse_1d"].agrees(exact(randomized_rounding.single_sample_mse(1).closed_form), Z)
    assert sim["mse_2d"].agrees(exact(randomized_rounding.single_sample_mse(2).closed_form), Z)
    assert sim["mean_abs_1d"].agrees(exact(randomized_rounding.single_sample_error(1).closed_form), Z)
    assert sim["mean_2d"].agrees(exact(randomized_rounding.single_sample_error(2).closed_form), Z)
    # One sample is a noisier target than the rounded cell (0.52 vs 0.38 cells): detectable by far.
    rounded = mc.simulate_quantization("round", n=100_000, seed=4)["mean_2d"]
    gap = sim["mean_2d"].mean - rounded.mean
    assert gap > 10 * math.hypot(sim["mean_2d"].stderr, rounded.stderr)


def test_learning_one_sample_doubles_the_squared_error():
    # learn_the_expectation: predicting c costs (c - u)^2 + e (1 - e). Predicting u (the mean) costs the noise
    # e (1 - e); predicting a single earlier draw (a network that memorised one target) costs twice that.
    d = randomized_rounding.learn_the_expectation()
    i, e, c = d.symbols["i"], d.symbols["e"], d.symbols["c"]
    risk = dict(d.steps)["= squared bias + sample variance"]
    one_draw = sp.expand((1 - e) * risk.subs(c, i) + e * risk.subs(c, i + 1))
    at = {e: 0.3}
    first = mc.simulate_randomized_rounding((0.3, 0.0), n=100_000, seed=5)["errors"][:, 0]
    second = mc.simulate_randomized_rounding((0.3, 0.0), n=100_000, seed=6)["errors"][:, 0]
    against_mean = mc.estimate(torch.from_numpy(second) ** 2)
    against_draw = mc.estimate(torch.from_numpy(second - first) ** 2)
    assert against_mean.agrees(exact(risk.subs(c, i + e).subs(at)), Z)
    assert against_draw.agrees(exact(one_draw.subs(at)), Z)
    assert against_draw.mean > against_mean.mean + 10 * math.hypot(against_draw.stderr, against_mean.stderr)


# -- item 3: losslessness -----------------------------------------------------------------------------------
@pytest.mark.parametrize("method, option", [("topk", 4), ("topk", 9), ("window", 1), ("window", 2)])
def test_expected_map_decodes_exactly(method, option, dtype, device):
    kwargs = {"k": option} if method == "topk" else {"radius": option}
    sim = mc.simulate_expected_decode(
        None, n=20_000, seed=6, method=method, dtype=dtype, device=device, **kwargs
    )
    tolerance = 1e-9 if dtype == torch.float64 else 2e-5
    assert sim["max_abs_1d"] <= tolerance


def _canonical_fractions(n: int, seed: int) -> torch.Tensor:
    """Fractions in the canonical region 1/2 <= ey <= ex < 1 (where the closed forms are written)."""
    g = torch.Generator().manual_seed(seed)
    a = 0.5 + 0.5 * torch.rand(n, 2, generator=g, dtype=torch.float64)
    return torch.stack((a.max(-1).values, a.min(-1).values), -1)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_truncated_topk_matches_closed_form(k):
    fractions = _canonical_fractions(2_000, seed=7)
    sim = mc.simulate_expected_decode(fractions, method="topk", k=k)
    d = losslessness.topk_decode(k)
    ex, ey = fractions[:, 0].numpy(), fractions[:, 1].numpy()
    predicted = np.stack(
        [evaluate(entry, (d.symbols["e_x"], d.symbols["e_y"]), ex, ey) for entry in d.closed_form], -1
    )
    np.testing.assert_allclose(sim["errors"], predicted, atol=1e-9)


def test_window_radius_zero_is_rounding():
    fractions = _canonical_fractions(2_000, seed=8)
    sim = mc.simulate_expected_decode(fractions, method="window", radius=0)
    np.testing.assert_allclose(sim["errors"], 1 - fractions.numpy(), atol=1e-9)


@pytest.mark.parametrize("delta", [0.003, 0.05])
def test_uniform_floor_pulls_toward_the_peak(delta):
    sim = mc.simulate_expected_decode(None, n=40_000, seed=9, method="window", radius=1, delta=delta)
    closed = {key: d.evaluate(delta=delta) for key, d in losslessness.window_floor_error(1).items()}
    assert sim["mean_abs_1d"].agrees(closed["mean_abs_1d"], Z)
    assert sim["mean_2d"].agrees(closed["mean_2d"], Z)
    assert sim["max_abs_1d"] <= closed["max_abs_1d"] + 1e-12


# -- item 4: loss / decoder consistency ---------------------------------------------------------------------
FRACTIONS = [(0.7429341, 0.0), (0.25, 0.0), (0.5, 0.0), (0.3, 0.6), (0.8, 0.35), (0.5, 0.5)]
N_SAMPLES = 100_000
FIT_TOL = 5e-4  # optimisation error of the fitted decoder, in cells (measured: ~5e-5)


@pytest.fixture(scope="module")
def fitted():
    return mc.simulate_loss_consistency(FRACTIONS, num_samples=N_SAMPLES, seed=10)


def _noise_bound(sim) -> np.ndarray:
    """5 sd / sqrt(N) per keypoint and axis, from the sample sd of the draws."""
    return Z * sim["sample_sd"] / math.sqrt(sim["num_samples"])


def test_sample_mean_is_unbiased(fitted):
    assert (np.abs(fitted["sample_mean"]) <= _noise_bound(fitted) + 1e-12).all()


@pytest.mark.parametrize("key", ["ce_logits", "bce_probabilities"])
def test_consistent_pairs_decode_the_keypoint(fitted, key):
    # The fit reaches the empirical distribution, whose mean is the sample mean: the decoder returns it ...
    np.testing.assert_allclose(fitted[key], fitted["sample_mean"], atol=FIT_TOL)
    # ... and the sample mean is the keypoint up to sampling noise (item 4a / 4b: consistent).
    assert (np.abs(fitted[key]) <= _noise_bound(fitted) + FIT_TOL).all()


def test_softmax_over_bce_logits_has_the_odds_bias_1d(fitted):
    d = consistency.bce_logits_softmax_bias()
    bias = sp.lambdify(d.symbols["e_x"], d.closed_form, "numpy")
    _, slope = consistency.odds_weighted_decode_max_slope()
    for row, (ex, ey) in enumerate(FRACTIONS):
        if ey != 0.0:
            continue
        # The decoded position is a function of the sampled fraction with slope <= 2, so sampling noise
        # of 5 sd / sqrt(N) in the fraction moves it by at most 2 x that.
        bound = float(slope) * _noise_bound(fitted)[row, 0] + FIT_TOL
        assert abs(fitted["bce_logits"][row, 0] - bias(ex)) <= bound
    # The bias at the worst fraction is far beyond the noise: 0.150 cells.
    e_star, peak = consistency.bce_logits_softmax_max_bias()
    assert FRACTIONS[0][0] == pytest.approx(float(e_star), abs=1e-6)
    assert fitted["bce_logits"][0, 0] == pytest.approx(float(peak), abs=0.01)


def test_softmax_over_bce_logits_has_the_odds_bias_2d(fitted):
    joint = consistency.odds_weighted_decode_joint(2)
    p = joint.symbols
    plug_in = sp.lambdify([p["p_11"], p["p_10"], p["p_01"], p["p_00"]], joint.closed_form, "numpy")
    two = consistency.bce_logits_softmax_bias_2d()
    closed = sp.lambdify([two.symbols["e_x"], two.symbols["e_y"]], two.closed_form, "numpy")
    for row, (ex, ey) in enumerate(FRACTIONS):
        if ey == 0.0:
            continue
        freq = fitted["frequencies"][row]  # cells (2..3, 2..3) around the keypoint at cell (2, 2)
        cells = {"p_11": freq[3, 3], "p_10": freq[2, 3], "p_01": freq[3, 2], "p_00": freq[2, 2]}
        bilinear = {
            "p_11": ex * ey,
            "p_10": ex * (1 - ey),
            "p_01": (1 - ex) * ey,
            "p_00": (1 - ex) * (1 - ey),
        }
        # Sampled frequencies agree with the bilinear probabilities (multinomial sd sqrt(p (1 - p) / N)).
        for name, value in cells.items():
            q = bilinear[name]
            assert abs(value - q) <= Z * math.sqrt(q * (1 - q) / N_SAMPLES)
        # The fitted decoder is the odds-weighted mean of the sampled frequencies ...
        decoded = np.ravel(plug_in(cells["p_11"], cells["p_10"], cells["p_01"], cells["p_00"]))
        np.testing.assert_allclose(fitted["bce_logits"][row], decoded - [ex, ey], atol=FIT_TOL)
        # ... which is the closed-form bias at the true fractions up to sampling noise (delta method: the
        # multinomial noise of the frequencies pushed through the decoder's gradient).
        sd = np.array(consistency.odds_decode_sampling_sd(ex, ey, N_SAMPLES))
        closed_bias = np.ravel(closed(ex, ey))
        assert (np.abs(fitted["bce_logits"][row] - closed_bias) <= Z * sd + FIT_TOL).all()
        # The bias is real, not noise, wherever the closed form says it is large.
        assert (np.sign(fitted["bce_logits"][row]) == np.sign(closed_bias))[
            np.abs(closed_bias) > 10 * sd
        ].all()


@pytest.mark.parametrize("steps", [0, 100])
def test_mse_gaussian_argmax_keeps_the_rounding_error(steps):
    sim = mc.simulate_gaussian_argmax(n=20_000 if steps == 0 else 4_000, seed=11, steps=steps)
    # Argmax is the fitted optimum's peak only if the fit is within half the peak-to-neighbour gap.
    assert sim["fit_gap"] < 0.5 * (1 - math.exp(-1 / 8))
    assert sim["mean_2d"].agrees(exact(consistency.mse_gaussian_argmax_error().closed_form), Z)
    assert sim["bias"].agrees(0.0, Z)


# -- item 5: resolution -------------------------------------------------------------------------------------
def test_resolution_linear_in_stride():
    strides, normaliser, size = (1, 2, 4, 8), 32.0, (64, 64)
    sim = mc.simulate_resolution(strides, input_size=size, normaliser=normaliser, n=20_000, seed=12)
    table = resolution.resolution_tradeoff(size, strides, normaliser, num_keypoints=1)
    for i in range(len(strides)):
        est = mc.Estimate(sim["nme_round"][i], sim["nme_round_sd"][i], sim["n"])
        assert est.agrees(table["nme_quantization"][i], Z)
    assert (np.abs(sim["nme_randomized_rounding"]) <= 1e-12).all()
    np.testing.assert_array_equal(sim["head_outputs"], table["head_outputs"])


@functools.lru_cache(maxsize=1)
def _odds_bias_2d():
    d = consistency.bce_logits_softmax_bias_2d()
    return sp.lambdify((d.symbols["e_x"], d.symbols["e_y"]), d.closed_form, "numpy")


# -- item 4 at the exact optimum (no fitting): the codec's decoder on the optimal logits -------------------
@settings(max_examples=40, deadline=None)
@given(st.floats(0.01, 0.99), st.floats(0.01, 0.99))
def test_decoders_at_the_exact_optima(ex, ey):
    codec = mc.make_codec("randomized_rounding", (6, 6), 4)
    uv = torch.tensor([[[2.0 + ex, 2.0 + ey]]], dtype=torch.float64)
    p = codec.expected(codec.to_input(uv)).heatmaps
    # Cells off the support have optimal logit -inf; -690 (exp = 1e-300) stands in for it.
    ce_logits = torch.log(p.clamp(min=1e-300))
    bce_logits = torch.log(p.clamp(min=1e-300) / (1 - p))
    stride = torch.tensor(codec.stride, dtype=torch.float64)
    truth = codec.to_input(uv)
    ce, _ = codec.decode(ce_logits, activation="logits")
    torch.testing.assert_close((ce - truth) / stride, torch.zeros_like(ce), atol=1e-9, rtol=0)
    bce_p, _ = codec.decode(torch.sigmoid(bce_logits), activation="probabilities")
    torch.testing.assert_close((bce_p - truth) / stride, torch.zeros_like(ce), atol=1e-9, rtol=0)
    bce_l, _ = codec.decode(bce_logits, activation="logits")
    closed = np.ravel(_odds_bias_2d()(ex, ey))
    np.testing.assert_allclose(((bce_l - truth) / stride)[0, 0].numpy(), closed, atol=1e-9)


def test_closed_form_table_rows_agree():
    from h3r_theory.theory.table import closed_form_table, format_table

    rows = closed_form_table(n=20_000, seed=13)
    assert len(rows) >= 25
    disagreeing = [row["quantity"] for row in rows if not row["agrees"]]
    assert disagreeing == []
    assert format_table(rows).count("\n") == len(rows) + 1
