"""Property tests of the codec protocol: lossless, unbiased, equivariant, vanilla error constants, edges."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from h3r_theory import codecs
from h3r_theory.conventions import flip_heatmaps, flip_x

# Published constants, typed here (the library derives them in h3r_theory.theory).
ROUND_2D = (math.sqrt(2) + math.asinh(1)) / 6  # 0.38259785...
FLOOR_2D = 2 * ROUND_2D

heatmap_sizes = st.integers(min_value=2, max_value=64)
strides = st.integers(min_value=1, max_value=16)
seeds = st.integers(min_value=0, max_value=2**31 - 1)


def random_keypoints(codec, n, dtype, generator, low=0.0, high=None, batch=None):
    """Keypoints in input pixels whose heatmap coordinates lie in [low, high] cells on both axes."""
    w, h = codec.heatmap_size
    hi = torch.tensor([w - 1.0 if high is None else high(w), h - 1.0 if high is None else high(h)])
    uv = low + torch.rand(*(batch or (1,)), n, 2, generator=generator, dtype=torch.float64) * (hi - low)
    return codec.to_input(uv).to(dtype)


def make(name, w, h, sx, sy, **options):
    return codecs.build(name, input_size=(w * sx, h * sy), heatmap_size=(w, h), **options)


# -- 1. lossless --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("method,k", [("topk", 4), ("topk", 9), ("window", None)])
@given(w=heatmap_sizes, h=heatmap_sizes, sx=strides, sy=strides, seed=seeds)
def test_expected_heatmap_decodes_losslessly(dtype, method, k, w, h, sx, sy, seed):
    codec = make("randomized_rounding", w, h, sx, sy, method=method, k=k or 9)
    kp = random_keypoints(codec, 16, dtype, torch.Generator().manual_seed(seed))
    decoded, scores = codec.decode(codec.expected(kp).heatmaps, activation="probabilities")
    tol = 1e-4 if dtype == torch.float32 else 1e-9
    assert decoded.dtype == dtype
    torch.testing.assert_close(decoded, kp, rtol=0, atol=tol)
    assert (scores > 0).all()


@given(w=heatmap_sizes, h=heatmap_sizes, s=strides, seed=seeds)
def test_log_of_expected_heatmap_decodes_losslessly_as_logits(w, h, s, seed):
    # The optimum of softmax cross-entropy: softmax(logits) = bilinear weights. Cells with weight 0 get a
    # logit ~ -69 (log 1e-30), i.e. a softmax weight ~ 1e-30 relative to the support.
    codec = make("randomized_rounding", w, h, s, s)
    kp = random_keypoints(codec, 16, torch.float64, torch.Generator().manual_seed(seed))
    logits = torch.log(codec.expected(kp).heatmaps + 1e-30)
    decoded, scores = codec.decode(logits, activation="logits")
    torch.testing.assert_close(decoded, kp, rtol=0, atol=1e-9)
    torch.testing.assert_close(scores, torch.ones_like(scores), rtol=0, atol=1e-9)


def test_expected_heatmap_is_a_distribution_with_mean_at_the_keypoint():
    codec = make("randomized_rounding", 16, 12, 4, 4)
    kp = random_keypoints(codec, 50, torch.float64, torch.Generator().manual_seed(0))
    maps = codec.expected(kp).heatmaps
    torch.testing.assert_close(maps.sum((-1, -2)), torch.ones(1, 50, dtype=torch.float64))
    assert ((maps > 0).sum((-1, -2)) <= 4).all()
    mean_u = (maps.sum(-2) * torch.arange(16.0, dtype=torch.float64)).sum(-1)
    torch.testing.assert_close(mean_u, codec.to_heatmap(kp)[..., 0])


# -- 2. unbiased ----------------------------------------------------------------------------------------


@settings(max_examples=25)
@given(w=st.integers(2, 32), h=st.integers(2, 32), s=strides, seed=seeds)
def test_randomized_rounding_is_unbiased(w, h, s, seed):
    codec = make("randomized_rounding", w, h, s, s)
    g = torch.Generator().manual_seed(seed)
    kp = random_keypoints(codec, 3, torch.float64, g)  # (1, 3, 2)
    n = 4000
    enc = codec.encode(kp.expand(n, 3, 2), generator=g)
    cells = torch.stack((enc.indices % w, enc.indices // w), dim=-1).double()  # (n, 3, 2)
    uv = codec.to_heatmap(kp)[0]
    frac = uv - torch.floor(uv)
    sd = torch.sqrt(frac * (1 - frac))  # per-axis sd of one sample, in cells
    # mean cell within 6 sd / sqrt(n) of u; exact where the fractional part is 0
    assert ((cells.mean(0) - uv).abs() <= 6 * sd / math.sqrt(n) + 1e-12).all()
    # per-axis frequency of rounding up equals the fractional part (a binomial proportion)
    up = (cells - torch.floor(uv)).mean(0)
    assert ((up - frac).abs() <= 6 * sd / math.sqrt(n) + 1e-12).all()
    # decoding every one-hot sample and averaging gives the keypoint, in input pixels
    decoded, _ = codec.decode(enc.heatmaps, activation="probabilities")
    assert ((decoded.mean(0) - kp[0]).abs() <= 6 * s * sd / math.sqrt(n) + 1e-9).all()


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


def test_samples_are_reproducible_with_a_generator_and_fresh_without():
    codec = make("randomized_rounding", 16, 16, 4, 4)
    kp = random_keypoints(codec, 98, torch.float32, torch.Generator().manual_seed(0), batch=(8,))
    a = codec.encode(kp, generator=torch.Generator().manual_seed(5)).indices
    b = codec.encode(kp, generator=torch.Generator().manual_seed(5)).indices
    c = codec.encode(kp, generator=torch.Generator().manual_seed(6)).indices
    assert torch.equal(a, b) and not torch.equal(a, c)


# -- 3. equivariance ------------------------------------------------------------------------------------


@given(w=st.integers(8, 32), s=st.sampled_from([1, 2, 4, 8, 16]), shift=st.integers(-3, 3), seed=seeds)
def test_integer_cell_shift_shifts_targets_and_decodes(w, s, shift, seed):
    codec = make("randomized_rounding", w, w, s, s)
    g = torch.Generator().manual_seed(seed)
    # heatmap coordinates on a 1/256 grid, 3 cells from the border, so all arithmetic is exact
    uv = (torch.randint(0, 256 * (w - 1 - 2 * 3) + 1, (1, 5, 2), generator=g).double() / 256) + 3
    kp, moved = codec.to_input(uv), codec.to_input(uv + shift)
    # the shift in input pixels is exactly shift * s
    torch.testing.assert_close(moved - kp, torch.full_like(kp, float(shift * s)), rtol=0, atol=0)
    a = codec.expected(kp).heatmaps
    b = codec.expected(moved).heatmaps
    torch.testing.assert_close(b, torch.roll(a, shifts=(shift, shift), dims=(-2, -1)), rtol=0, atol=1e-12)
    ia = codec.encode(kp, generator=torch.Generator().manual_seed(seed)).indices
    ib = codec.encode(moved, generator=torch.Generator().manual_seed(seed)).indices
    assert torch.equal(ib, ia + shift * w + shift)
    torch.testing.assert_close(codec.decode(b)[0], codec.decode(a)[0] + shift * s, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", ["randomized_rounding", "dark", "soft_argmax", "gaussian"])
@given(w=st.integers(8, 40), h=st.integers(8, 40), s=strides, seed=seeds)
def test_horizontal_flip_is_exact_under_the_default_convention(name, w, h, s, seed):
    codec = make(name, w, h, s, s)
    kp = random_keypoints(codec, 6, torch.float64, torch.Generator().manual_seed(seed), low=0.0)
    W = w * s
    if name == "gaussian":  # round-half-up breaks the mirror symmetry only at exact ties
        frac = codec.to_heatmap(kp)[..., 0] % 1
        kp = torch.where(((frac - 0.5).abs() < 1e-6)[..., None], kp + 0.01, kp)
    maps = codec.expected(kp).heatmaps
    flipped_kp = flip_x(kp, W)
    torch.testing.assert_close(codec.expected(flipped_kp).heatmaps, flip_heatmaps(maps), rtol=0, atol=1e-12)
    torch.testing.assert_close(
        codec.decode(flip_heatmaps(maps))[0], flip_x(codec.decode(maps)[0], W), rtol=0, atol=1e-9
    )


# -- 4. vanilla quantization constants ------------------------------------------------------------------


def uniform_subcell_keypoints(codec, n, generator):
    return random_keypoints(codec, n, torch.float64, generator, low=1.0, high=lambda size: size - 2.0)


def test_argmax_round_error_constants():
    codec = make("argmax", 32, 32, 4, 4, rounding="round")
    kp = uniform_subcell_keypoints(codec, 200_000, torch.Generator().manual_seed(0))
    decoded, _ = codec.decode(codec.encode(kp).heatmaps)
    err_cells = (decoded - kp) / 4
    assert err_cells.abs().max() <= 0.5 + 1e-12
    assert abs(err_cells.norm(dim=-1).mean().item() / ROUND_2D - 1) < 0.02


def test_argmax_floor_error_constants():
    codec = make("argmax", 32, 32, 4, 4, rounding="floor")
    kp = uniform_subcell_keypoints(codec, 200_000, torch.Generator().manual_seed(1))
    decoded, _ = codec.decode(codec.encode(kp).heatmaps)
    err_cells = (kp - decoded) / 4
    assert (err_cells >= 0).all() and (err_cells < 1).all()
    assert abs(err_cells.norm(dim=-1).mean().item() / FLOOR_2D - 1) < 0.02


def test_gaussian_keeps_the_rounding_error_and_quarter_offset_halves_the_worst_case():
    plain = make("gaussian", 32, 32, 4, 4)
    quarter = make("gaussian", 32, 32, 4, 4, quarter_offset=True)
    kp = uniform_subcell_keypoints(plain, 50_000, torch.Generator().manual_seed(2))
    err = (plain.decode(plain.encode(kp).heatmaps)[0] - kp) / 4
    assert abs(err.norm(dim=-1).mean().item() / ROUND_2D - 1) < 0.02
    # a target centred on the rounded cell is symmetric, so the quarter offset does nothing on targets
    torch.testing.assert_close(
        quarter.decode(plain.encode(kp).heatmaps)[0], plain.decode(plain.encode(kp).heatmaps)[0]
    )
    # on the bilinear (unquantized) map the quarter step moves toward the keypoint: |err| <= 1/4 + 1/4
    rr = make("randomized_rounding", 32, 32, 4, 4)
    q_err = (quarter.decode(rr.expected(kp).heatmaps)[0] - kp) / 4
    assert q_err.abs().max() <= 0.5 + 1e-9
    assert q_err.abs().mean() < err.abs().mean()


# -- 5. DARK / UDP / SoftArgmax on noiseless targets ------------------------------------------------------


@pytest.mark.parametrize("name", ["dark", "udp"])
@given(w=st.integers(12, 64), h=st.integers(12, 64), s=st.integers(1, 8), seed=seeds)
def test_dark_and_udp_recover_noiseless_targets(name, w, h, s, seed):
    # "away from borders": 2 sigma + 1 = 5 cells, where the zero-padded blur no longer flattens the map
    codec = make(name, w, h, s, s)
    kp = random_keypoints(
        codec, 8, torch.float32, torch.Generator().manual_seed(seed), low=5.0, high=lambda size: size - 6.0
    )
    decoded, _ = codec.decode(codec.encode(kp).heatmaps)
    assert (decoded - kp).abs().max() < 0.05


@given(w=st.integers(4, 64), s=st.integers(1, 8), seed=seeds)
def test_dark_without_blur_is_exact_up_to_one_cell_from_the_border(w, s, seed):
    codec = make("dark", w, w, s, s, blur_sigma=0.0)
    kp = random_keypoints(
        codec, 8, torch.float64, torch.Generator().manual_seed(seed), low=1.0, high=lambda size: size - 2.0
    )
    decoded, _ = codec.decode(codec.encode(kp).heatmaps)
    torch.testing.assert_close(decoded, kp, rtol=0, atol=1e-9)


def test_dark_blur_bias_near_the_border_is_toward_the_inside():
    codec = make("dark", 32, 32, 1, 1)
    kp = torch.tensor([[[2.3, 16.0], [29.7, 16.0]]], dtype=torch.float64)
    decoded, _ = codec.decode(codec.encode(kp).heatmaps)
    assert decoded[0, 0, 0] > kp[0, 0, 0] + 0.05 and decoded[0, 1, 0] < kp[0, 1, 0] - 0.05


def test_dark_refines_where_argmax_cannot():
    dark, gauss = make("dark", 48, 48, 4, 4), make("gaussian", 48, 48, 4, 4)
    kp = random_keypoints(
        dark, 2000, torch.float64, torch.Generator().manual_seed(3), low=5.0, high=lambda size: size - 6.0
    )
    maps = dark.encode(kp).heatmaps
    assert (dark.decode(maps)[0] - kp).norm(dim=-1).mean() < 0.01
    assert (gauss.decode(maps)[0] - kp).norm(dim=-1).mean() > 1.0  # ~0.38 cells x 4 px


@given(w=st.integers(10, 48), s=strides, seed=seeds)
def test_soft_argmax_recovers_its_target(w, s, seed):
    codec = make("soft_argmax", w, w, s, s)
    kp = random_keypoints(
        codec, 8, torch.float64, torch.Generator().manual_seed(seed), low=5.0, high=lambda size: size - 6.0
    )
    enc = codec.encode(kp)
    torch.testing.assert_close(enc.heatmaps.sum((-1, -2)), torch.ones(1, 8, dtype=torch.float64))
    decoded, _ = codec.decode(enc.heatmaps, activation="probabilities")
    torch.testing.assert_close(decoded, kp, rtol=0, atol=1e-5 * s)
    decoded_logits, _ = codec.decode(torch.log(enc.heatmaps + 1e-300), activation="logits")
    torch.testing.assert_close(decoded_logits, kp, rtol=0, atol=1e-5 * s)


# -- 6. dtype, device, shapes, edges and errors ---------------------------------------------------------

ALL = codecs.available()


@pytest.mark.parametrize("name", ALL)
def test_dtype_device_and_shapes_are_preserved(name, dtype, device):
    codec = make(name, 16, 12, 4, 4)
    kp = random_keypoints(codec, 7, dtype, torch.Generator().manual_seed(0), batch=(3,)).to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    enc = codec.encode(kp, generator=gen)
    exp = codec.expected(kp)
    for e in (enc, exp):
        assert (
            e.heatmaps.shape == (3, 7, 12, 16) and e.heatmaps.dtype == dtype and e.heatmaps.device == device
        )
        assert e.weights.shape == (3, 7) and e.weights.dtype == dtype and e.weights.device == device
    coords, scores = codec.decode(exp.heatmaps)
    assert coords.shape == (3, 7, 2) and coords.dtype == dtype and coords.device == device
    assert scores.shape == (3, 7) and scores.dtype == dtype and scores.device == device


@pytest.mark.parametrize("name", ALL)
def test_float32_and_float64_agree(name):
    codec = make(name, 32, 24, 4, 4)
    kp = random_keypoints(
        codec,
        17,
        torch.float64,
        torch.Generator().manual_seed(0),
        batch=(4,),
        low=1.0,
        high=lambda size: size - 2.0,
    )
    maps64 = codec.expected(kp).heatmaps
    maps32 = codec.expected(kp.float()).heatmaps
    torch.testing.assert_close(maps32.double(), maps64, rtol=0, atol=1e-5)
    torch.testing.assert_close(codec.decode(maps32)[0].double(), codec.decode(maps64)[0], rtol=0, atol=2e-3)


@pytest.mark.parametrize("name", ALL)
def test_invisible_and_off_heatmap_keypoints_get_zero_weight_and_zero_maps(name):
    codec = make(name, 8, 8, 4, 4)  # input 32 x 32
    kp = torch.tensor(
        [[[10.0, 10.0], [10.0, 10.0], [-4.0, 10.0], [36.0, 3.0], [5.0, 40.0], [float("nan"), 0.0]]]
    )
    visible = torch.tensor([[1, 0, 1, 1, 1, 0]])
    for enc in (codec.encode(kp, visible), codec.expected(kp, visible)):
        assert enc.weights.tolist() == [[1, 0, 0, 0, 0, 0]]
        assert enc.heatmaps[0, 0].sum() > 0
        assert (enc.heatmaps[0, 1:] == 0).all()
        assert torch.isfinite(enc.heatmaps).all()


def test_border_band_keypoints_are_clamped_onto_the_outermost_cells():
    codec = make("randomized_rounding", 8, 8, 4, 4)  # the heatmap covers x, y in [-0.5, 31.5)
    edges = torch.tensor([[[-0.5, 3.0], [-0.51, 3.0], [31.49, 3.0], [31.5, 3.0]]])
    assert codec.expected(edges).weights.tolist() == [[1.0, 0.0, 1.0, 0.0]]
    kp = torch.tensor([[[-0.4, 0.0], [31.4, 31.4]]])  # u = -0.475 and 7.475: inside the map, in the band
    enc = codec.expected(kp)
    assert enc.weights.tolist() == [[1.0, 1.0]]
    decoded, _ = codec.decode(enc.heatmaps)
    # the clamp moves them onto the cell centres 0 and 7 (input pixels 1.5 and 29.5): a bias < half a cell
    torch.testing.assert_close(decoded, torch.tensor([[[1.5, 1.5], [29.5, 29.5]]]))


@pytest.mark.parametrize("name", ALL)
def test_constant_and_zero_heatmaps_decode_to_the_centre_with_score_zero(name):
    codec = make(name, 8, 6, 2, 2)
    maps = torch.stack((torch.zeros(6, 8), torch.full((6, 8), 0.3)))[None]
    for activation in ("probabilities", "logits"):
        coords, scores = codec.decode(maps, activation=activation)
        assert scores.tolist() == [[0.0, 0.0]]
        assert torch.isfinite(coords).all()
        torch.testing.assert_close(coords, codec.to_input(torch.tensor([[[3.5, 2.5], [3.5, 2.5]]])))


@pytest.mark.parametrize("name", ALL)
def test_bad_inputs_raise_value_errors_that_say_what_and_where(name):
    codec = make(name, 8, 6, 4, 4)
    kp = torch.full((2, 3, 2), 5.0)
    kp[1, 2, 0] = float("nan")
    with pytest.raises(ValueError, match=r"\(batch, keypoint\) = \(1, 2\)"):
        codec.encode(kp)
    kp[1, 2, 0] = float("inf")
    with pytest.raises(ValueError, match=r"\(1, 2\)"):
        codec.expected(kp)
    with pytest.raises(ValueError, match=r"shape \(B, K, 2\)"):
        codec.encode(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="floating"):
        codec.encode(torch.zeros(1, 3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B, K\) = \(1, 3\)"):
        codec.encode(torch.zeros(1, 3, 2), visible=torch.ones(3))
    with pytest.raises(ValueError, match=r"\(B, K, 6, 8\)"):
        codec.decode(torch.zeros(1, 3, 8, 6))
    maps = torch.zeros(2, 3, 6, 8)
    maps[0, 1, 2, 2] = float("nan")
    with pytest.raises(ValueError, match=r"\(batch, keypoint\) = \(0, 1\)"):
        codec.decode(maps)
    with pytest.raises(ValueError, match="activation must be one of"):
        codec.decode(torch.zeros(1, 1, 6, 8), activation="softmax")


def test_codec_options_are_validated_and_build_knows_every_codec():
    assert set(codecs.available()) == {
        "randomized_rounding",
        "argmax",
        "gaussian",
        "dark",
        "udp",
        "soft_argmax",
    }
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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device to mismatch the CPU generator")
def test_generator_on_another_device_is_refused():
    rr = codecs.RandomizedRounding((8, 8), (2, 2))
    with pytest.raises(ValueError, match="generator is on"):
        rr.encode(torch.zeros(1, 1, 2, device="cuda"), generator=torch.Generator())


def test_topk_and_window_decoders_agree_on_concentrated_maps_and_per_call_overrides_work():
    codec = make("randomized_rounding", 32, 32, 4, 4)
    kp = random_keypoints(codec, 50, torch.float64, torch.Generator().manual_seed(0), batch=(2,))
    maps = codec.expected(kp).heatmaps
    a = codec.decode(maps, method="topk", k=4)[0]
    b = codec.decode(maps, method="window", radius=2)[0]
    torch.testing.assert_close(a, b)
    # k = 1 is plain argmax: the vanilla rounding error comes back
    c = codec.decode(maps, method="topk", k=1)[0]
    assert (c - kp).norm(dim=-1).mean() > 1.0
