"""Randomized rounding: every decoder lossless on the expected map, the 2 x 2 decoder, the temperature and
its fit, and the target option (a fresh one-hot sample, or its expectation) through the training loss."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from h3r_theory import codecs, losses

DECODERS = [
    {"method": "window", "radius": 1},
    {"method": "window", "radius": 2},
    {"method": "topk", "k": 4},
    {"method": "topk", "k": 9},
    {"method": "2x2"},
]
IDS = ["window-r1", "window-r2", "topk-4", "topk-9", "2x2"]


def make(w, h, s, **options):
    return codecs.RandomizedRounding((w * s, h * s), (w, h), **options)


def keypoints_on(codec, n, seed, low=-0.5, high=None):
    """n keypoints (1, n, 2) in input pixels, uniform over [low, w - 0.5) cells: the border band included."""
    w, h = codec.heatmap_size
    hi = torch.tensor([w - 0.5, h - 0.5], dtype=torch.float64) if high is None else high
    uv = low + torch.rand(1, n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * (
        hi - low
    )
    return codec.to_input(uv)


# -- every decoder is lossless on the expected map -----------------------------------------------------------


@pytest.mark.parametrize("decoder", DECODERS, ids=IDS)
@settings(max_examples=20)
@given(w=st.integers(2, 40), h=st.integers(2, 40), s=st.integers(1, 16), seed=st.integers(0, 2**31 - 1))
def test_every_decoder_is_lossless_on_the_expected_map(decoder, w, h, s, seed):
    codec = make(w, h, s, **decoder)
    kp = keypoints_on(codec, 12, seed, low=0.0, high=torch.tensor([w - 1.0, h - 1.0], dtype=torch.float64))
    maps = codec.expected(kp).heatmaps
    as_probabilities, _ = codec.decode(maps, activation="probabilities")
    as_logits, _ = codec.decode(torch.log(maps + 1e-30))  # the optimum of the CE; logits is the default
    torch.testing.assert_close(as_probabilities, kp, rtol=0, atol=1e-9)
    torch.testing.assert_close(as_logits, kp, rtol=0, atol=1e-9)


def test_the_2x2_decoder_picks_the_larger_neighbour_on_each_axis():
    codec = make(6, 5, 1, method="2x2")
    maps = torch.zeros(1, 1, 5, 6)
    maps[0, 0, 2, 3] = 4.0  # the peak at (x, y) = (3, 2)
    maps[0, 0, 2, 2], maps[0, 0, 2, 4] = 1.0, 2.0  # right neighbour larger
    maps[0, 0, 1, 3], maps[0, 0, 3, 3] = 3.0, 0.5  # upper neighbour larger
    maps[0, 0, 1, 4] = 1.0  # the diagonal of the chosen pair
    maps[0, 0, 0, 0] = 3.9  # far away: the 2 x 2 decoder does not see it
    coords, _ = codec.decode(maps, activation="probabilities")
    cells = {(3, 2): 4.0, (4, 2): 2.0, (3, 1): 3.0, (4, 1): 1.0}
    total = sum(cells.values())
    expected = [
        sum(v * x for (x, _), v in cells.items()) / total,
        sum(v * y for (_, y), v in cells.items()) / total,
    ]
    torch.testing.assert_close(coords[0, 0], torch.tensor(expected))


def test_the_2x2_decoder_at_the_corner_uses_only_cells_on_the_map():
    codec = make(4, 4, 1, method="2x2")
    maps = torch.full((1, 1, 4, 4), -5.0)
    maps[0, 0, 0, 0] = 0.0  # the peak in the corner; its only neighbours are (1, 0) and (0, 1)
    coords, _ = codec.decode(maps)
    # softmax weights 1 on the peak, e^-5 on (1, 0), (0, 1) and (1, 1): no weight beyond the border
    side = torch.exp(torch.tensor(-5.0))
    torch.testing.assert_close(coords[0, 0], (2 * side / (1 + 3 * side)).repeat(2))


# -- temperature ---------------------------------------------------------------------------------------------


def test_temperature_divides_the_logits_and_is_refused_on_probabilities():
    codec = make(16, 12, 4)
    logits = 4 * torch.randn(3, 5, 12, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for method in ("window", "topk", "2x2"):
        a = codec.decode(logits, method=method, temperature=1.7)
        b = codec.decode(logits / 1.7, method=method)
        torch.testing.assert_close(a[0], b[0]) and torch.testing.assert_close(a[1], b[1])
    assert not torch.allclose(codec.decode(logits, temperature=1.7)[0], codec.decode(logits)[0])
    hot = make(16, 12, 4, temperature=1.7)  # the codec's own default temperature
    torch.testing.assert_close(hot.decode(logits)[0], codec.decode(logits, temperature=1.7)[0])
    with pytest.raises(ValueError, match="temperature applies to logits"):
        codec.decode(logits.softmax(-1), activation="probabilities", temperature=2.0)


@settings(max_examples=10)
@given(w=st.integers(4, 24), s=st.integers(1, 8), scale=st.floats(0.4, 3.0), seed=st.integers(0, 2**31 - 1))
def test_fit_temperature_recovers_the_scale_of_scaled_optimal_logits(w, s, scale, seed):
    codec = make(w, w, s)
    kp = keypoints_on(codec, 20, seed)
    optimal = torch.log(codec.expected(kp).heatmaps + 1e-6)  # a near-optimal network: T = 1 fits it
    fitted_one = codecs.fit_temperature(optimal, kp, codec)
    fitted = codecs.fit_temperature(optimal * scale, kp, codec)  # over-confident when scale > 1
    assert abs(fitted - scale * fitted_one) < 1e-6 * scale
    assert abs(fitted_one - 1) < 0.05
    # with the fitted temperature the decode of the scaled logits is the calibrated decode of the optimal ones
    calibrated = codec.decode(optimal, temperature=fitted_one)[0]
    torch.testing.assert_close(codec.decode(optimal * scale, temperature=fitted)[0], calibrated)


def test_fit_temperature_returns_a_bound_and_refuses_empty_or_bad_input():
    codec = make(8, 8, 2)
    kp = keypoints_on(codec, 4, 0)
    flat = torch.zeros(1, 4, 8, 8)
    timid = 0.2 * torch.log(codec.expected(kp).heatmaps + 1e-6)  # under-confident: its T is about 0.2
    assert (
        codecs.fit_temperature(timid, kp, codec, bounds=(0.5, 2.0)) == 0.5
    )  # the optimum is below the range
    with pytest.raises(ValueError, match="at least one visible keypoint"):
        codecs.fit_temperature(flat, kp, codec, visible=torch.zeros(1, 4))
    with pytest.raises(ValueError, match="bounds must be"):
        codecs.fit_temperature(flat, kp, codec, bounds=(2.0, 1.0))
    with pytest.raises(ValueError, match=r"logits must have shape"):
        codecs.fit_temperature(torch.zeros(1, 4, 8, 7), kp, codec)


# -- the target: a fresh sample per call, or its expectation -------------------------------------------------


def test_sample_target_is_the_default_and_draws_fresh_one_hot_targets():
    codec = make(16, 16, 4)
    assert codec.target == "sample" and codec.stochastic
    kp = keypoints_on(codec, 200, 0)
    g = torch.Generator().manual_seed(0)
    a, b = codec.encode(kp, generator=g), codec.encode(kp, generator=g)
    assert a.indices is not None and not torch.equal(a.indices, b.indices)


def test_expected_target_is_the_bilinear_distribution_and_deterministic():
    codec = make(16, 16, 4, target="expected")
    assert not codec.stochastic
    kp = keypoints_on(codec, 50, 1)
    enc = codec.encode(kp, generator=torch.Generator().manual_seed(0))
    again = codec.encode(kp, generator=torch.Generator().manual_seed(1))
    reference = make(16, 16, 4).expected(kp)
    assert torch.equal(enc.heatmaps, again.heatmaps) and torch.equal(enc.heatmaps, reference.heatmaps)
    torch.testing.assert_close(enc.heatmaps.flatten(-2).sum(-1), torch.ones(1, 50, dtype=torch.float64))


def test_the_training_loss_takes_the_expected_target_and_equals_the_mean_over_samples():
    sample, expected = make(8, 8, 4), make(8, 8, 4, target="expected")
    kp = keypoints_on(sample, 6, 2)
    logits = torch.randn(1, 6, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    logits.requires_grad_(True)
    _, loss_fn = losses.default_loss(expected)
    soft = loss_fn(logits, expected.encode(kp))
    (grad_soft,) = torch.autograd.grad(soft, logits)
    # the CE is linear in the target: the mean over the 4 one-hot outcomes, weighted by their probability
    enc = expected.encode(kp)
    log_p = torch.log_softmax(logits.detach().flatten(-2), -1)
    exact = -(enc.values * log_p.gather(-1, enc.cells)).sum(-1).mean()
    torch.testing.assert_close(soft.detach(), exact)
    # and the average of many sampled targets' losses converges to it
    g = torch.Generator().manual_seed(4)
    _, sample_fn = losses.default_loss(sample)
    draws = torch.stack([sample_fn(logits.detach(), sample.encode(kp, generator=g)) for _ in range(4000)])
    assert abs(draws.mean() - exact) < 4 * draws.std() / 4000**0.5
    assert grad_soft.abs().sum() > 0
