"""Codecs at the edges: DARK under noise and near the border, the extent per convention, half precision,
options refused at construction, and the activation default."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from h3r_theory import checks, codecs, conventions
from h3r_theory.codecs.gaussian import taylor_refine
from h3r_theory.codecs.peaks import argmax_cells, gaussian_maps

SIZE = (64, 48)  # (w, h) of the DARK maps, as in benchmarks/dark_rules.py


def dark_maps(uv: torch.Tensor, noise: float, seed: int) -> torch.Tensor:
    """DARK targets (sigma 2, peak 1) at ``uv`` (1, n, 2) cells plus Gaussian noise of sd ``noise``."""
    g = torch.Generator().manual_seed(seed)
    maps = gaussian_maps(uv, SIZE, 2.0, torch.ones(uv.shape[:2], dtype=uv.dtype))
    return maps + noise * torch.randn(maps.shape, generator=g, dtype=maps.dtype)


def cell_errors(decoded_cells: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    return (decoded_cells - uv).norm(dim=-1)[0]


def dark_codec() -> codecs.DARK:
    return codecs.DARK(SIZE, SIZE)  # stride 1: input pixels are cells


# -- 1. DARK under noise: never worse than the unclamped Taylor step ---------------------------------------


@pytest.mark.parametrize("noise", [0.0, 0.02, 0.05, 0.1])
def test_dark_is_never_worse_than_the_unclamped_step_on_noisy_maps(noise):
    g = torch.Generator().manual_seed(1)
    uv = 6.0 + torch.rand(1, 3000, 2, generator=g, dtype=torch.float64) * torch.tensor([51.0, 35.0])
    maps = dark_maps(uv, noise, seed=2)
    ix, iy, _ = argmax_cells(maps)
    dark = cell_errors(dark_codec().decode(maps)[0], uv)
    unclamped = cell_errors(taylor_refine(maps, ix, iy, 2.0, border="zero"), uv)
    clamped = cell_errors(taylor_refine(maps, ix, iy, 2.0, border="zero", max_step=1.0), uv)
    assert dark.max() <= unclamped.max() + 1e-9 and dark.mean() <= unclamped.mean() + 1e-9
    if noise >= 0.05:  # there the argmax lands > 1 cell off for some keypoints, and the old +-1 clamp fails
        assert dark.max() < 0.6 * clamped.max()
    else:
        assert dark.max() < 0.1 + 5 * noise  # noiseless: exact; sd 0.02: measured max 0.07 cells


# -- 2. DARK near the border ---------------------------------------------------------------------------------


def border_keypoints(n: int, seed: int, near: float = -0.5, far: float = 2.5, axis: int = 0) -> torch.Tensor:
    """On ``axis``, [near, far) cells from the first or last cell (-0.5: the border band); interior on the other."""
    g = torch.Generator().manual_seed(seed)
    d = near + (far - near) * torch.rand(1, n, generator=g, dtype=torch.float64)
    edge = torch.where(torch.rand(1, n, generator=g) < 0.5, (SIZE[axis] - 1) - d, d)
    other = 6.0 + torch.rand(1, n, generator=g, dtype=torch.float64) * (SIZE[1 - axis] - 13.0)
    return torch.stack((edge, other) if axis == 0 else (other, edge), -1)


def test_dark_decodes_noiseless_targets_at_the_border_exactly():
    # argmax within 2 cells of the edge: the step on the unblurred map, exact for a Gaussian
    uv = torch.cat((border_keypoints(1000, 0, near=0.0), border_keypoints(1000, 1, near=0.0, axis=1)), dim=1)
    decoded = dark_codec().decode(dark_maps(uv, 0.0, seed=0))[0]
    assert cell_errors(decoded, uv).max() < 1e-6
    # in the half-cell border band: onto the outermost cell centre, like every codec
    band = border_keypoints(500, 2, near=-0.5, far=0.0)
    decoded = dark_codec().decode(dark_maps(band, 0.0, seed=0))[0]
    clamped = torch.stack((band[..., 0].clamp(0, SIZE[0] - 1), band[..., 1]), -1)
    assert cell_errors(decoded, clamped).max() < 1e-6
    # farther in (argmax 3 cells or more from the edge), the zero-padded blur's pull toward the inside is
    # what is left: it decays from about 0.1 cell with the argmax at 3 cells (benchmarks/dark_rules.py, table 3)
    uv = border_keypoints(2000, seed=1, near=2.5, far=8.0)
    errors = cell_errors(dark_codec().decode(dark_maps(uv, 0.0, seed=0))[0], uv)
    assert 0.01 < errors.max() < 0.12
    assert errors[(uv[0, :, 0] >= 4.5) & (uv[0, :, 0] <= SIZE[0] - 5.5)].max() < 0.02


@pytest.mark.parametrize("noise", [0.02, 0.05])
def test_dark_at_the_border_beats_no_refinement_zero_padding_and_skipping(noise):
    uv = border_keypoints(3000, seed=3)
    maps = dark_maps(uv, noise, seed=4)
    ix, iy, _ = argmax_cells(maps)
    dark = cell_errors(dark_codec().decode(maps)[0], uv).mean()
    none = cell_errors(torch.stack((ix, iy), -1).double(), uv).mean()
    zero = cell_errors(taylor_refine(maps, ix, iy, 2.0, border="zero"), uv).mean()
    skip = cell_errors(taylor_refine(maps, ix, iy, 2.0, border="skip", margin=2), uv).mean()
    assert dark < 0.9 * min(none, zero, skip)


def test_dark_border_rules_are_named_and_checked():
    maps = dark_maps(torch.tensor([[[10.0, 10.0]]], dtype=torch.float64), 0.0, 0)
    ix, iy, _ = argmax_cells(maps)
    with pytest.raises(ValueError, match="border must be one of"):
        taylor_refine(maps, ix, iy, 2.0, border="wrap")


# -- 3. the extent follows the convention --------------------------------------------------------------------


@settings(max_examples=40)
@given(
    w=st.integers(2, 40),
    s=st.integers(1, 16),
    frac=st.floats(0.0, 1.0, exclude_max=True),
    convention=st.sampled_from(conventions.CONVENTIONS),
)
def test_a_keypoint_is_on_the_heatmap_iff_it_lies_in_the_image(w, s, frac, convention):
    W = w * s
    codec = codecs.Argmax((W, W), (w, w), convention)
    # x across the image and one pixel either side of it; y fixed inside
    x = torch.linspace(-1.5, W + 0.5, 4 * W + 9, dtype=torch.float64) + frac / (4 * W)
    # the exact edges, and no point within rounding of them (the affine map may round it onto the edge)
    x = torch.cat(
        (x[((x + 0.5).abs() > 1e-9) & ((x - (W - 0.5)).abs() > 1e-9)], torch.tensor([-0.5, W - 0.5]))
    )
    kp = torch.stack((x, torch.full_like(x, W / 2)), -1)[None]
    inside = (x >= -0.5) & (x < W - 0.5)
    assert codec.expected(kp).weights[0].bool().tolist() == inside.tolist()


def test_msra_keeps_the_last_half_stride_of_the_image():
    codec = codecs.RandomizedRounding((64, 64), (16, 16), "msra")  # s = 4
    x = torch.tensor([61.4, 62.0, 63.0, 63.49, 63.5])  # u = x / 4 = 15.35 ... 15.875: beyond the last centre
    kp = torch.stack((x, torch.full_like(x, 30.0)), -1)[None]
    enc = codec.expected(kp)
    assert enc.weights.tolist() == [[1.0, 1.0, 1.0, 1.0, 0.0]]
    decoded = codec.decode(enc.heatmaps, activation="probabilities")[0]
    torch.testing.assert_close(decoded[0, :4, 0], torch.full((4,), 60.0))  # clamped onto cell 15 (x = 60)
    assert conventions.heatmap_extent((16, 16), (64, 64), "msra") == ((-0.125, 15.875), (-0.125, 15.875))
    assert conventions.heatmap_extent((16, 16), (64, 64), "pixel_center") == ((-0.5, 15.5), (-0.5, 15.5))
    (u0, u1), _ = conventions.heatmap_extent((16, 16), (64, 64), "udp")
    assert math.isclose(u0, -0.5 * 15 / 63) and math.isclose(u1, 15 + 0.5 * 15 / 63)
    with pytest.raises(ValueError, match="needs input_size"):
        conventions.heatmap_extent((16, 16), None, "msra")


# -- 4. half precision: computed in float32, and the coordinates stay float32 (issue 25, item 7) -------------

HALF = [torch.float16, torch.bfloat16]
#: The dtype decode returns for maps of each dtype: float32 for half precision, else the maps' own.
DECODED_DTYPE = {torch.float16: torch.float32, torch.bfloat16: torch.float32}


@pytest.mark.parametrize("dtype", HALF + [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("name", codecs.available())
def test_every_dtype_is_decoded_in_at_least_float32_and_half_precision_keeps_float32(name, dtype):
    input_size, heatmap_size = (192, 256), (48, 64)  # COCO's geometry: coordinates up to 255.5 px
    codec = codecs.build(name, input_size, heatmap_size)
    g = torch.Generator().manual_seed(0)
    kp = codec.to_input(4 + torch.rand(2, 5, 2, generator=g, dtype=torch.float64) * 40)
    maps = codec.expected(kp).heatmaps.to(dtype)
    coords, scores = codec.decode(maps, activation="probabilities")
    expected_dtype = DECODED_DTYPE.get(dtype, dtype)
    assert coords.dtype == expected_dtype and scores.dtype == expected_dtype
    if dtype in HALF:
        # the same maps, upcast by the caller: the half-precision decode must lose nothing beyond float32
        # round-off (a few float32 steps at 256 px; rounding to bfloat16 would be up to 0.5 px)
        ref_coords, ref_scores = codec.decode(maps.float(), activation="probabilities")
        tolerance = 8 * torch.finfo(torch.float32).eps * max(input_size)
        assert (coords - ref_coords).abs().max().item() <= tolerance
        assert (scores - ref_scores).abs().max().item() <= 8 * torch.finfo(torch.float32).eps
    if name not in ("argmax", "gaussian"):  # the sub-cell codecs: the maps' own rounding is all that is lost
        err = (coords.double() - kp).abs().max().item()
        assert err <= 0.05 + (0.1 if dtype in HALF else 0.0), err


def test_a_bfloat16_decode_keeps_its_sub_pixel_part_beyond_128_px():
    # bfloat16 spaces its values 1 px apart between 128 and 256: a coordinate returned in bfloat16 would be
    # a whole number there, 0.25 px off for this keypoint
    codec = codecs.DARK((192, 256), (48, 64))
    kp = torch.tensor([[[150.25, 200.25]]])
    coords, _ = codec.decode(codec.encode(kp).heatmaps.to(torch.bfloat16))
    assert coords.dtype == torch.float32
    assert (coords - kp).abs().max().item() < 0.1, coords
    assert (coords.frac() != 0).all()  # not on bfloat16's whole-pixel grid


def test_dark_in_bfloat16_decodes_y_50_75():
    codec = codecs.DARK((128, 128), (128, 128))
    kp = torch.tensor([[[40.0, 50.75]]])
    maps = codec.encode(kp).heatmaps.to(torch.bfloat16)
    coords, _ = codec.decode(maps)
    # decoded in float32: only the maps' own bfloat16 rounding moves it (a decode computed in bfloat16 is
    # off by a quarter pixel and more here)
    assert (coords - kp).abs().max().item() < 0.005, coords
    assert torch.allclose(coords, codec.decode(maps.float())[0], rtol=0, atol=1e-4)


# -- 5. options and inputs refused at once, with a clear message ---------------------------------------------


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: codecs.Gaussian((8, 8), (4, 4), sigma=math.inf), "sigma must be > 0 and finite"),
        (lambda: codecs.DARK((8, 8), (4, 4), sigma=math.nan), "sigma must be > 0 and finite"),
        (lambda: codecs.DARK((8, 8), (4, 4), blur_sigma=math.nan), "blur_sigma must be >= 0 and finite"),
        (lambda: codecs.SoftArgmax((8, 8), (4, 4), sigma=-1.0), "sigma must be > 0 and finite"),
        (lambda: codecs.Gaussian((8, 8), (4, 4), sigma="2"), None),  # a numeric string is a number
        (lambda: codecs.RandomizedRounding((8, 8), (4, 4), k=2.7), "k must be >= 1 and an integer, got 2.7"),
        (lambda: codecs.RandomizedRounding((8, 8), (4, 4), radius=1.5), "radius must be >= 0 and an integer"),
        (lambda: codecs.RandomizedRounding((8, 8), (4, 4), target="mean"), "target must be one of"),
        (lambda: codecs.RandomizedRounding((8, 8), (4, 4), temperature=0.0), "temperature must be > 0"),
        (lambda: codecs.RandomizedRounding((8, 8), (4, 4), method="3x3"), "method must be one of"),
    ],
)
def test_bad_options_fail_at_construction(build, match):
    if match is None:
        build()
        return
    with pytest.raises(ValueError, match=match):
        build()


# issue 24, point 10: finite, positive options the arithmetic cannot hold gave NaN or a raw OverflowError
@pytest.mark.parametrize(
    "build, match",
    [
        (
            lambda: codecs.Gaussian((8, 8), (4, 4), sigma=1e-320),
            r"sigma must be >= 0.05355 cells, got 1e-320",
        ),
        (lambda: codecs.Gaussian((8, 8), (4, 4), sigma=1e300), r"sigma must be <= 2896 cells, got 1e\+300"),
        (lambda: codecs.DARK((8, 8), (4, 4), sigma=0.01), r"sigma must be >= 0.05355 cells"),
        (lambda: codecs.DARK((8, 8), (4, 4), blur_sigma=1e300), r"blur_sigma must be <= 2896 cells"),
        (lambda: codecs.SoftArgmax((8, 8), (4, 4), sigma=1e-30), r"sigma must be >= 0.05355 cells"),
        (
            lambda: codecs.RandomizedRounding((8, 8), (4, 4), temperature=1e-300),
            r"temperature must be >= 2.939e-39",
        ),
    ],
)
def test_options_beyond_what_float32_can_hold_are_refused(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_the_bounds_are_where_the_arithmetic_breaks():
    finfo = torch.finfo(torch.float32)
    # at SIGMA_MIN the nearest cell of an off-grid centre is a normal float32, just below it 0 or subnormal
    assert torch.exp(torch.tensor(-0.25 / checks.SIGMA_MIN**2)) >= finfo.tiny
    assert torch.exp(torch.tensor(-0.25 / (0.9 * checks.SIGMA_MIN) ** 2)) < finfo.tiny
    # at SIGMA_MAX the neighbour is still below the peak in float32, at twice it equal
    assert torch.exp(torch.tensor(-0.5 / checks.SIGMA_MAX**2)) < 1
    assert torch.exp(torch.tensor(-0.5 / (2 * checks.SIGMA_MAX) ** 2)) == 1
    codec = codecs.DARK((256, 256), (64, 64), sigma=checks.SIGMA_MIN)
    xy, _ = codec.decode(codec.encode(torch.tensor([[[100.3, 57.8]]])).heatmaps, activation="probabilities")
    assert torch.isfinite(xy).all()


def test_a_temperature_that_overflows_the_logits_is_named_at_decode():
    codec = codecs.RandomizedRounding((64, 64), (16, 16))
    maps = 1e10 * torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    for method in ("window", "topk", "2x2"):
        with pytest.raises(ValueError, match=r"temperature=1e-30 makes the decode non-finite: logits up to"):
            codec.decode(maps, temperature=1e-30, method=method)
    assert torch.isfinite(codec.decode(maps / 1e10, temperature=1e-30)[0]).all()  # small logits: fine


def test_a_radius_beyond_the_map_is_capped_and_gives_the_same_decode():
    codec = codecs.RandomizedRounding((16, 16), (16, 16), radius=1500)
    assert codec.radius == 15
    maps = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    same = codecs.RandomizedRounding((16, 16), (16, 16), radius=15)
    torch.testing.assert_close(codec.decode(maps)[0], same.decode(maps)[0])


def test_a_seed_passed_as_generator_is_refused_with_a_hint():
    codec = codecs.RandomizedRounding((8, 8), (4, 4))
    with pytest.raises(
        ValueError, match=r"generator must be a torch.Generator or None, got int 123.*manual_seed"
    ):
        codec.encode(torch.zeros(1, 1, 2), generator=123)


@pytest.mark.parametrize("name", codecs.available())
def test_visible_of_the_wrong_shape_is_named(name):
    codec = codecs.build(name, (8, 8), (4, 4))
    kp = torch.zeros(2, 3, 2)
    kp[0, 0, 0] = math.nan
    with pytest.raises(ValueError, match=r"visible must have shape \(B, K\) = \(2, 3\), got \(3, 2\)"):
        codec.encode(kp, visible=torch.ones(3, 2))


def test_soft_argmax_of_probability_maps_near_the_float_maximum():
    codec = codecs.SoftArgmax((8, 8), (8, 8))
    maps = torch.zeros(1, 1, 8, 8)
    maps[0, 0, 5, 2] = maps[0, 0, 5, 3] = 3e38  # their sum overflows float32
    coords, _ = codec.decode(maps, activation="probabilities")
    torch.testing.assert_close(coords, torch.tensor([[[2.5, 5.0]]]))


# -- 6. decode defaults to the codec's own activation --------------------------------------------------------


@pytest.mark.parametrize("name", codecs.available())
def test_decode_defaults_to_the_codecs_default_activation(name):
    codec = codecs.build(name, (64, 64), (16, 16))
    logits = 3 * torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    default = codec.decode(logits)
    explicit = codec.decode(logits, activation=codec.default_activation)
    assert torch.equal(default[0], explicit[0]) and torch.equal(default[1], explicit[1])


def test_randomized_rounding_reads_network_logits_as_logits_by_default():
    codec = codecs.RandomizedRounding((64, 64), (16, 16))
    kp = codec.to_input(torch.tensor([[[5.3, 7.8]]], dtype=torch.float64))
    logits = torch.log(codec.expected(kp).heatmaps + 1e-30) + 2.0  # the optimum of the CE, up to a constant
    torch.testing.assert_close(codec.decode(logits)[0], kp)
    # read as probabilities the same map gives a different, wrong answer: the trap the default removes
    assert (codec.decode(logits, activation="probabilities")[0] - kp).abs().max() > 0.1


# issue 24, point 19: DARK and UDP raised "Storage size calculation overflowed" on an empty batch
@pytest.mark.parametrize("name", codecs.available())
@pytest.mark.parametrize("shape", [(0, 3, 16, 16), (2, 0, 16, 16)], ids=["B=0", "K=0"])
@pytest.mark.parametrize("score", ["peak", "mass"])
def test_every_codec_decodes_an_empty_batch_to_empty_tensors(name, shape, score):
    codec = codecs.build(name, input_size=(64, 64), heatmap_size=(16, 16))
    coords, scores = codec.decode(torch.zeros(shape), score=score)
    assert coords.shape == (*shape[:2], 2) and scores.shape == shape[:2]
    assert coords.dtype == scores.dtype == torch.float32
