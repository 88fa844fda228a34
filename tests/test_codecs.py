"""Codec property tests.

The protocol invariants (round trip, unbiasedness, equivariance, dtype/device/shape, edges, bad input) run
through :mod:`h3r_theory.testing`, the same code a user runs on their own codec, so each invariant exists
once. What each codec claims is stated in :data:`CLAIMS`. The tests below the suite check properties of one
codec only: the vanilla error constants, randomized rounding's expected map and sample variance, DARK's
border behaviour, and option validation.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch

from h3r_theory import codecs
from h3r_theory.testing import INVARIANTS, Claims, check_invariant

# Published constants, typed here (the library derives them in h3r_theory.theory).
ROUND_2D = (math.sqrt(2) + math.asinh(1)) / 6  # 0.38259785...
FLOOR_2D = 2 * ROUND_2D

# DARK and UDP: the decoding blur (sigma = 2 cells) reaches about 2 sigma + 1 = 5 cells, within which the
# border may change the refinement (test_dark_is_within_its_claim_beyond_the_claimed_margin).
DARK_CLAIMS = Claims(margin_cells=5, round_trip_cells=0.01, equivariance_cells=0.01, border_band_cells=0.5)

#: What every codec of codecs.available() claims; a new codec must state its claims here.
CLAIMS: dict[str, Claims] = {
    "randomized_rounding": Claims(logits_round_trip=True),  # lossless, exact, clamps the border band
    "argmax": Claims(round_trip_cells=0.5),  # round to nearest: |error| <= 1/2 cell per axis
    "gaussian": Claims(round_trip_cells=0.5),  # a Gaussian on the rounded cell, decoded by argmax
    "dark": DARK_CLAIMS,
    "udp": DARK_CLAIMS,
    # the mean of a Gaussian truncated by the border is pulled inside: exact only 5 sigma from it
    "soft_argmax": Claims(
        margin_cells=5, round_trip_cells=1e-5, logits_round_trip=True, border_band_cells=None
    ),
}

STATISTICAL = ("unbiased", "rounding_frequency")
EXAMPLES = 25  # per invariant and codec; the statistical ones decode 1000 samples per example
STAT_EXAMPLES = 12


def expected_status(name: str, invariant: str) -> str:
    codec = codecs.CODECS[name]
    if invariant in STATISTICAL and not codec.stochastic:
        return "n/a"
    if invariant == "round_trip_logits" and not CLAIMS[name].logits_round_trip:
        return "n/a"
    return "holds"


def test_every_codec_states_its_claims():
    assert set(CLAIMS) == set(codecs.available()), "state the claims of each new codec in CLAIMS"


@pytest.mark.parametrize("invariant", list(INVARIANTS))
@pytest.mark.parametrize("name", codecs.available())
def test_codec_invariants(name, invariant):
    if name not in CLAIMS:
        pytest.fail(f"codec {name!r} has no entry in CLAIMS")
    examples = STAT_EXAMPLES if invariant in STATISTICAL else EXAMPLES
    result = check_invariant(invariant, codecs.CODECS[name], CLAIMS[name], max_examples=examples)
    assert result.status == expected_status(name, invariant), result.line()
    if result.status == "holds" and invariant not in ("reproducible", "constant_heatmaps", "bad_input"):
        assert result.examples >= examples  # the search ran, it did not stop at the first example


@pytest.mark.parametrize(
    "options,claims",
    [
        ({"method": "topk", "k": 4}, Claims()),  # k = 4 holds the whole 2 x 2 bilinear support
        ({"method": "topk", "k": 9}, Claims()),  # the authors' release
        ({"method": "window", "radius": 2}, Claims()),
    ],
    ids=["topk4", "topk9", "window5x5"],
)
def test_randomized_rounding_decoders_are_lossless(options, claims):
    codec = functools.partial(codecs.RandomizedRounding, **options)
    result = check_invariant("round_trip", codec, claims, max_examples=EXAMPLES)
    assert result.status == "holds", result.line()


def test_dark_without_blur_is_exact_one_cell_from_the_border():
    codec = functools.partial(codecs.DARK, blur_sigma=0.0)
    result = check_invariant("round_trip", codec, Claims(margin_cells=1), max_examples=EXAMPLES)
    assert result.status == "holds", result.line()


# -- helpers of the codec-specific tests ---------------------------------------------------------------


def make(name, w, h, sx, sy, **options):
    return codecs.build(name, input_size=(w * sx, h * sy), heatmap_size=(w, h), **options)


def random_keypoints(codec, n, dtype, generator, low=0.0, high=None, batch=None):
    """Keypoints in input pixels whose heatmap coordinates lie in [low, high] cells on both axes."""
    w, h = codec.heatmap_size
    hi = torch.tensor([w - 1.0 if high is None else high(w), h - 1.0 if high is None else high(h)])
    uv = low + torch.rand(*(batch or (1,)), n, 2, generator=generator, dtype=torch.float64) * (hi - low)
    return codec.to_input(uv).to(dtype)


def uniform_subcell_keypoints(codec, n, generator):
    return random_keypoints(codec, n, torch.float64, generator, low=1.0, high=lambda size: size - 2.0)


def decode_targets(codec, maps, **options):
    """Decode target maps (probabilities), whatever the codec's default activation."""
    return codec.decode(maps, activation="probabilities", **options)


# -- randomized rounding ------------------------------------------------------------------------------


def test_expected_heatmap_is_a_distribution_with_mean_at_the_keypoint():
    codec = make("randomized_rounding", 16, 12, 4, 4)
    kp = random_keypoints(codec, 50, torch.float64, torch.Generator().manual_seed(0))
    maps = codec.expected(kp).heatmaps
    torch.testing.assert_close(maps.sum((-1, -2)), torch.ones(1, 50, dtype=torch.float64))
    assert ((maps > 0).sum((-1, -2)) <= 4).all()
    mean_u = (maps.sum(-2) * torch.arange(16.0, dtype=torch.float64)).sum(-1)
    torch.testing.assert_close(mean_u, codec.to_heatmap(kp)[..., 0])


def test_sample_variance_is_e_times_one_minus_e():
    codec = make("randomized_rounding", 8, 8, 1, 1)
    kp = torch.tensor([[[2.3, 5.75]]], dtype=torch.float64).expand(200_000, 1, 2)
    enc = codec.encode(kp, generator=torch.Generator().manual_seed(1))
    x = (enc.indices % 8).double()
    e = 0.3
    # var of the sample variance of a Bernoulli(e): (mu4 - sigma^4)/n, mu4 = e(1-e)(1 - 3e(1-e))
    var = e * (1 - e)
    mu4 = var * (1 - 3 * var)
    assert abs(x.var().item() - var) <= 6 * math.sqrt((mu4 - var**2) / x.numel())


@pytest.mark.parametrize("shift", [-3, 1, 2])
def test_same_seed_samples_move_with_the_keypoints(shift):
    # one uniform draw per keypoint and axis, compared with frac(u): a whole-cell shift moves every sample
    codec = make("randomized_rounding", 16, 16, 4, 4)
    uv = (
        torch.randint(0, 256 * 9 + 1, (1, 5, 2), generator=torch.Generator().manual_seed(0)).double() / 256
    ) + 3
    kp, moved = codec.to_input(uv), codec.to_input(uv + shift)
    ia = codec.encode(kp, generator=torch.Generator().manual_seed(7)).indices
    ib = codec.encode(moved, generator=torch.Generator().manual_seed(7)).indices
    assert torch.equal(ib, ia + shift * 16 + shift)


def test_border_band_edges_are_half_open():
    codec = make("randomized_rounding", 8, 8, 4, 4)  # the heatmap covers x, y in [-0.5, 31.5)
    edges = torch.tensor([[[-0.5, 3.0], [-0.51, 3.0], [31.49, 3.0], [31.5, 3.0]]])
    assert codec.expected(edges).weights.tolist() == [[1.0, 0.0, 1.0, 0.0]]


def test_topk_and_window_decoders_agree_on_concentrated_maps_and_per_call_overrides_work():
    codec = make("randomized_rounding", 32, 32, 4, 4)
    kp = random_keypoints(codec, 50, torch.float64, torch.Generator().manual_seed(0), batch=(2,))
    maps = codec.expected(kp).heatmaps
    a = decode_targets(codec, maps, method="topk", k=4)[0]
    b = decode_targets(codec, maps, method="window", radius=2)[0]
    torch.testing.assert_close(a, b)
    # k = 1 is plain argmax: the vanilla rounding error comes back
    c = decode_targets(codec, maps, method="topk", k=1)[0]
    assert (c - kp).norm(dim=-1).mean() > 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device to mismatch the CPU generator")
def test_generator_on_another_device_is_refused():
    rr = codecs.RandomizedRounding((8, 8), (2, 2))
    with pytest.raises(ValueError, match="generator is on"):
        rr.encode(torch.zeros(1, 1, 2, device="cuda"), generator=torch.Generator())


# -- vanilla quantization constants --------------------------------------------------------------------


def test_argmax_round_error_constants():
    codec = make("argmax", 32, 32, 4, 4, rounding="round")
    kp = uniform_subcell_keypoints(codec, 200_000, torch.Generator().manual_seed(0))
    decoded, _ = decode_targets(codec, codec.encode(kp).heatmaps)
    err_cells = (decoded - kp) / 4
    assert err_cells.abs().max() <= 0.5 + 1e-12
    assert abs(err_cells.norm(dim=-1).mean().item() / ROUND_2D - 1) < 0.02


def test_argmax_floor_error_constants():
    codec = make("argmax", 32, 32, 4, 4, rounding="floor")
    kp = uniform_subcell_keypoints(codec, 200_000, torch.Generator().manual_seed(1))
    decoded, _ = decode_targets(codec, codec.encode(kp).heatmaps)
    err_cells = (kp - decoded) / 4
    assert (err_cells >= 0).all() and (err_cells < 1).all()
    assert abs(err_cells.norm(dim=-1).mean().item() / FLOOR_2D - 1) < 0.02


def test_gaussian_keeps_the_rounding_error_and_quarter_offset_halves_the_worst_case():
    plain = make("gaussian", 32, 32, 4, 4)
    quarter = make("gaussian", 32, 32, 4, 4, quarter_offset=True)
    kp = uniform_subcell_keypoints(plain, 50_000, torch.Generator().manual_seed(2))
    err = (decode_targets(plain, plain.encode(kp).heatmaps)[0] - kp) / 4
    assert abs(err.norm(dim=-1).mean().item() / ROUND_2D - 1) < 0.02
    # a target centred on the rounded cell is symmetric, so the quarter offset does nothing on targets
    torch.testing.assert_close(
        decode_targets(quarter, plain.encode(kp).heatmaps)[0],
        decode_targets(plain, plain.encode(kp).heatmaps)[0],
    )
    # on the bilinear (unquantized) map the quarter step moves toward the keypoint: |err| <= 1/4 + 1/4
    rr = make("randomized_rounding", 32, 32, 4, 4)
    q_err = (decode_targets(quarter, rr.expected(kp).heatmaps)[0] - kp) / 4
    assert q_err.abs().max() <= 0.5 + 1e-9
    assert q_err.abs().mean() < err.abs().mean()


# -- DARK / soft-argmax ---------------------------------------------------------------------------------


def test_dark_is_within_its_claim_beyond_the_claimed_margin():
    # DARK_CLAIMS: within 5 cells of the border the blur sees the border; from there on the claim holds, and
    # once the blur window (3 sigma + 1 cells) is inside the map the Newton step lands on the centre
    codec = make("dark", 32, 32, 1, 1)
    distance = torch.tensor([5.0, 5.5, 6.0, 8.0, 16.0], dtype=torch.float64)
    kp = torch.stack((distance, torch.full_like(distance, 16.0)), dim=-1)[None]
    bias = (decode_targets(codec, codec.encode(kp).heatmaps)[0] - kp)[0, :, 0].abs()
    assert (bias <= DARK_CLAIMS.round_trip_cells).all()
    assert (bias[-2:] < 1e-9).all()


def test_dark_refines_where_argmax_cannot():
    dark, gauss = make("dark", 48, 48, 4, 4), make("gaussian", 48, 48, 4, 4)
    kp = random_keypoints(
        dark, 2000, torch.float64, torch.Generator().manual_seed(3), low=5.0, high=lambda size: size - 6.0
    )
    maps = dark.encode(kp).heatmaps
    assert (decode_targets(dark, maps)[0] - kp).norm(dim=-1).mean() < 0.01
    assert (decode_targets(gauss, maps)[0] - kp).norm(dim=-1).mean() > 1.0  # ~0.38 cells x 4 px


def test_soft_argmax_targets_are_distributions():
    codec = make("soft_argmax", 24, 20, 4, 4)
    kp = random_keypoints(codec, 8, torch.float64, torch.Generator().manual_seed(0))
    sums = codec.encode(kp).heatmaps.sum((-1, -2))
    torch.testing.assert_close(sums, torch.ones(1, 8, dtype=torch.float64))


# -- options and errors specific to this package -------------------------------------------------------


@pytest.mark.parametrize("name", codecs.available())
def test_unknown_activation_is_refused(name):
    codec = make(name, 8, 6, 4, 4)
    with pytest.raises(ValueError, match="activation must be one of"):
        codec.decode(torch.zeros(1, 1, 6, 8), activation="softmax")


def test_codec_options_are_validated_and_build_knows_every_codec():
    assert {"randomized_rounding", "argmax", "gaussian", "dark", "udp", "soft_argmax"} <= set(
        codecs.available()
    )
    with pytest.raises(ValueError, match="unknown codec 'h3r'"):
        codecs.build("h3r", (8, 8), (2, 2))
    with pytest.raises(ValueError, match="k must be >= 1"):
        codecs.RandomizedRounding((8, 8), (2, 2), k=0)
    assert codecs.RandomizedRounding((8, 8), (2, 2), k=9).k == 4  # capped at the number of cells
    with pytest.raises(ValueError, match="method must be one of"):
        codecs.RandomizedRounding((8, 8), (2, 2), method="mean")
    with pytest.raises(ValueError, match="rounding must be one of"):
        codecs.Argmax((8, 8), (2, 2), rounding="ceil")
    with pytest.raises(ValueError, match="sigma must be > 0"):
        codecs.Gaussian((8, 8), (2, 2), sigma=0)


@pytest.mark.parametrize("name", codecs.available())
def test_bad_input_messages_say_what_was_expected(name):
    # the kit's bad_input invariant checks that these raise ValueError; here, what the message says
    codec = make(name, 8, 6, 4, 4)
    with pytest.raises(ValueError, match=r"shape \(B, K, 2\)"):
        codec.encode(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="floating"):
        codec.encode(torch.zeros(1, 3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B, K\) = \(1, 3\)"):
        codec.encode(torch.zeros(1, 3, 2), visible=torch.ones(3))
    with pytest.raises(ValueError, match=r"\(B, K, 6, 8\)"):
        codec.decode(torch.zeros(1, 3, 8, 6))
