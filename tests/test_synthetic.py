"""The embedded synthetic landmark dataset: contract, determinism, features at the labels, flip symmetry."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from h3r_theory.conventions import flip_keypoints
from trainers.data import synthetic as syn
from trainers.data.synthetic import FLIP_PAIRS, MAX_KEYPOINTS, SyntheticLandmarks, render_batch


def centroid(weights: torch.Tensor) -> torch.Tensor:
    """Intensity centroid (..., 2) in pixels (x, y) of non-negative maps (..., H, W)."""
    H, W = weights.shape[-2:]
    xs = torch.arange(W, dtype=weights.dtype)
    ys = torch.arange(H, dtype=weights.dtype)
    total = weights.sum((-2, -1))
    return torch.stack([(weights.sum(-2) * xs).sum(-1) / total, (weights.sum(-1) * ys).sum(-1) / total], -1)


def markers_alone(params: syn.FaceParams, k: int, size, dtype=torch.float64) -> torch.Tensor:
    """Render landmark k's marker only (no background, context, clutter or noise): (B, 3, H, W), unclipped.

    The scene keeps the single primitive k, so this is the renderer's own output for that feature.
    """
    scene = syn.build_scene(params)
    B = scene.colours.shape[0]
    scene = syn.Scene(
        scene.centres[:, k : k + 1], scene.sigmas[:, k : k + 1], scene.colours[:, k : k + 1],
        background=torch.zeros(B, 3), gradient=torch.zeros(B, 2), noise=None,
    )  # fmt: skip
    return syn.render_scene(scene, size, dtype, clip=False)


# ---------------------------------------------------------------- contract, shapes, dtypes


def test_item_follows_the_sample_contract():
    data = SyntheticLandmarks(10, image_size=(96, 80), num_keypoints=12, seed=3)
    item = data[4]
    assert set(item) == {"image", "keypoints", "visible", "matrix", "index"}
    assert item["image"].shape == (3, 80, 96) and item["image"].dtype == torch.float32
    assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
    assert item["keypoints"].shape == (12, 2) and item["keypoints"].dtype == torch.float32
    assert item["visible"].shape == (12,) and item["visible"].dtype == torch.float32
    assert torch.equal(item["visible"], torch.ones(12))
    assert item["matrix"].dtype == torch.float64 and torch.equal(
        item["matrix"], torch.eye(2, 3, dtype=torch.float64)
    )
    assert item["index"] == 4 and isinstance(item["index"], int)
    assert data.num_keypoints == 12 and data.input_size == (96, 80) and len(data) == 10
    assert data.flip_pairs == [(2, 3), (4, 5), (6, 7), (8, 9)]
    assert len(data.records) == 10 and data.records[7]["id"] == 7
    assert data.normalizer(0) == data.normalizer(9) > 0


def test_batch_equals_stacked_items_in_any_order():
    data = SyntheticLandmarks(50, image_size=(64, 64), seed=1)
    indices = [17, 3, 42, 3]
    batch = data.batch(indices)
    assert batch["image"].shape == (4, 3, 64, 64) and batch["index"].tolist() == indices
    for row, i in enumerate(indices):
        item = data[i]
        for key in ("image", "keypoints", "visible", "matrix"):
            assert torch.equal(batch[key][row], item[key]), (key, i)
    # An item does not depend on the batch it is drawn in.
    assert torch.equal(data.batch([3])["image"][0], data.batch(range(10))["image"][3])


def test_dataloader_workers_give_the_same_items():
    data = SyntheticLandmarks(12, image_size=(48, 48), seed=5)
    loader = torch.utils.data.DataLoader(data, batch_size=4, num_workers=2)
    images = torch.cat([b["image"] for b in loader])
    assert torch.equal(images, data.batch(range(12))["image"])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_render_batch_shapes_and_dtype(dtype):
    g = torch.Generator().manual_seed(0)
    images, keypoints, visible = render_batch(5, (72, 56), 10, g, dtype=dtype)
    assert images.shape == (5, 3, 56, 72) and images.dtype == dtype
    assert keypoints.shape == (5, 10, 2) and keypoints.dtype == dtype
    assert visible.shape == (5, 10) and visible.dtype == dtype
    assert 0.0 <= images.min() and images.max() <= 1.0


def test_float32_and_float64_rendering_agree():
    params = SyntheticLandmarks(4, (64, 64)).params(range(4))
    scene = syn.build_scene(params)
    a = syn.render_scene(scene, (64, 64), torch.float32)
    b = syn.render_scene(scene, (64, 64), torch.float64)
    assert a.dtype == torch.float32 and b.dtype == torch.float64
    torch.testing.assert_close(a.double(), b, atol=2e-5, rtol=0)


@given(
    width=st.integers(27, 160), height=st.integers(27, 160), seed=st.integers(0, 2**31),
    k=st.sampled_from(syn.VALID_NUM_KEYPOINTS),
)  # fmt: skip
def test_keypoints_stay_inside_the_image_with_a_margin(width, height, seed, k):
    g = torch.Generator().manual_seed(seed)
    uniforms = torch.rand(64, syn.num_uniforms(0), generator=g, dtype=torch.float64)
    keypoints = syn.sample_params(uniforms, (width, height), clutter=0).keypoints[:, :k]
    margin = 4.0 - 1e-9
    assert (keypoints[..., 0] >= margin).all() and (keypoints[..., 0] <= width - 1 - margin).all()
    assert (keypoints[..., 1] >= margin).all() and (keypoints[..., 1] <= height - 1 - margin).all()


# ---------------------------------------------------------------- determinism and splits


def test_same_seed_same_tensors_different_seed_different():
    a = SyntheticLandmarks(8, (64, 64), seed=11).batch(range(8))
    b = SyntheticLandmarks(8, (64, 64), seed=11).batch(range(8))
    c = SyntheticLandmarks(8, (64, 64), seed=12).batch(range(8))
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert (a["keypoints"] - c["keypoints"]).abs().amax(dim=(1, 2)).min() > 0.1
    assert not torch.equal(a["image"], c["image"])
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    for x, y in zip(render_batch(3, (64, 64), generator=g1), render_batch(3, (64, 64), generator=g2)):
        assert torch.equal(x, y)


def test_splits_are_disjoint_streams():
    n = 200
    keypoints = {
        split: SyntheticLandmarks(n, (64, 64), seed=0, split=split).params(range(n)).keypoints.flatten(1)
        for split in ("train", "val", "test")
    }
    for a, b in [("train", "val"), ("train", "test"), ("val", "test")]:
        # No item of one split reappears anywhere in another (closest pair still far apart).
        assert torch.cdist(keypoints[a], keypoints[b]).min() > 1.0, (a, b)
    seeds = {syn.item_seed(0, s, i) for s in ("train", "val", "test") for i in range(n)}
    assert len(seeds) == 3 * n


def test_the_drawn_faces_vary_in_pose_scale_and_shape():
    params = SyntheticLandmarks(300, (128, 128)).params(range(300))
    degrees = torch.rad2deg(params.angle)
    assert degrees.min() < -20 and degrees.max() > 20 and abs(degrees.mean()) < 4
    assert params.scale.max() / params.scale.min() > 1.4
    # Shape, not only pose: the eye distance relative to the face scale varies.
    eye_gap = (params.keypoints[:, 3] - params.keypoints[:, 2]).norm(dim=-1) / params.scale
    assert eye_gap.std() > 0.02
    # Image-left stays image-left: the "_l" landmark of every pair has the smaller rotated x.
    cos, sin = torch.cos(params.angle)[:, None], torch.sin(params.angle)[:, None]
    for a, b in FLIP_PAIRS:
        d = params.keypoints[:, b] - params.keypoints[:, a]
        assert (cos[:, 0] * d[:, 0] + sin[:, 0] * d[:, 1] > 0).all(), (a, b)


# ---------------------------------------------------------------- the features sit at the labels


@given(centre=st.floats(30.0, 50.0), sigma=st.floats(syn.MIN_SIGMA_PX, 4.0))
def test_pixel_gaussian_has_unit_mass_and_its_mean_at_the_centre(centre, sigma):
    c = torch.tensor([centre], dtype=torch.float64)
    g = syn.pixel_gaussian(c, torch.tensor([sigma], dtype=torch.float64), 81)  # >= 7.5 sigma inside
    assert abs(g.sum().item() - 1.0) < 1e-9
    assert abs((g * torch.arange(81.0, dtype=torch.float64)).sum().item() - centre) < 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rendered_landmark_features_sit_at_the_labels(dtype):
    """Every marker of 32 random faces, rendered alone: its intensity centroid is the label (< 0.05 px).

    Labels may sit 4 px from the border, where the image cuts off part of a marker and would bias a
    centroid; so the markers are also rendered on a canvas padded by P px on each side, whose centre
    crop is checked to BE the image, and the centroid is taken there.
    """
    size, P = (96, 96), 16
    data = SyntheticLandmarks(32, size, num_keypoints=MAX_KEYPOINTS, seed=2)
    params = data.params(range(32))
    padded = replace(params, keypoints=params.keypoints + P)
    # Sub-pixel positions are spread over the whole pixel (not all near a centre).
    frac = params.keypoints - params.keypoints.round()
    assert frac.min() < -0.4 and frac.max() > 0.4
    worst = 0.0
    for k in range(MAX_KEYPOINTS):
        alone = markers_alone(padded, k, (96 + 2 * P, 96 + 2 * P), dtype)
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        torch.testing.assert_close(
            alone[..., P:-P, P:-P], markers_alone(params, k, size, dtype), atol=tol, rtol=0
        )
        found = centroid(alone.abs().sum(1).double()) - P
        worst = max(worst, (found - params.keypoints[:, k]).norm(dim=-1).max().item())
    assert worst < (1e-4 if dtype == torch.float32 else 1e-5), worst  # aliasing of 0.8 px sigmas: ~1e-6
    assert worst < 0.05


def test_sub_pixel_shifts_are_visible_in_the_pixels():
    """Moving every landmark by 0.1 px changes the image, and the marker centroid follows by 0.1 px."""
    size = (64, 64)
    params = SyntheticLandmarks(8, size, seed=4).params(range(8))
    shifted = replace(params, keypoints=params.keypoints + torch.tensor([0.1, -0.05], dtype=torch.float64))
    a = syn.render_scene(syn.build_scene(params), size, torch.float64)
    b = syn.render_scene(syn.build_scene(shifted), size, torch.float64)
    assert (a - b).abs().amax() > 5e-3
    moved = centroid(markers_alone(shifted, 0, size).abs().sum(1)) - centroid(
        markers_alone(params, 0, size).abs().sum(1)
    )
    torch.testing.assert_close(
        moved, torch.tensor([[0.1, -0.05]], dtype=torch.float64).expand(8, 2), atol=1e-6, rtol=0
    )


def test_landmarks_are_locally_distinct_but_pairs_look_alike():
    colours = torch.tensor(syn._MARKER_COLOUR)
    sigmas = torch.tensor(syn._MARKER_SIGMA)
    template = torch.tensor(syn._TEMPLATE)
    paired = {i for pair in FLIP_PAIRS for i in pair}
    for a, b in FLIP_PAIRS:
        assert torch.equal(colours[a], colours[b]) and sigmas[a] == sigmas[b]
        assert template[a, 0] == -template[b, 0] < 0 and template[a, 1] == template[b, 1]
    for i in set(range(MAX_KEYPOINTS)) - paired:
        assert template[i, 0] == 0.0, syn.LANDMARK_NAMES[i]
    # One appearance per landmark type: the (colour, width) of different types differ.
    types = {(tuple(colours[i].tolist()), float(sigmas[i])) for i in range(MAX_KEYPOINTS)}
    assert len(types) == MAX_KEYPOINTS - len(FLIP_PAIRS)


# ---------------------------------------------------------------- horizontal flip


@pytest.mark.parametrize("size", [(64, 64), (75, 60)])
def test_flipped_image_is_the_render_of_the_mirrored_face(size):
    W, H = size
    g = torch.Generator().manual_seed(9)
    n = syn.num_uniforms(6)
    noise = torch.rand(6, 3, H, W, generator=g, dtype=torch.float64) * 0.1 - 0.05
    params = syn.sample_params(torch.rand(6, n, generator=g, dtype=torch.float64), size, noise=noise)
    mirrored = syn.mirror_params(params, W)
    image = syn.render_scene(syn.build_scene(params), size, torch.float64)
    image_of_mirror = syn.render_scene(syn.build_scene(mirrored), size, torch.float64)
    torch.testing.assert_close(image_of_mirror, torch.flip(image, dims=(-1,)), atol=1e-10, rtol=0)
    torch.testing.assert_close(mirrored.keypoints, flip_keypoints(params.keypoints, W, FLIP_PAIRS))
    # Each landmark's marker, flipped, is the marker of its twin (itself on the centre line) in the mirrored
    # face; with the features-at-labels test this puts every flipped feature at its flip_keypoints label.
    perm = syn.flip_permutation(MAX_KEYPOINTS, FLIP_PAIRS)
    for k in range(MAX_KEYPOINTS):
        torch.testing.assert_close(
            markers_alone(mirrored, perm[k], size), torch.flip(markers_alone(params, k, size), dims=(-1,)),
            atol=1e-10, rtol=0,
        )  # fmt: skip


def test_mirrored_faces_are_in_distribution():
    """The mirror of a drawn face is a face the sampler can draw: same ranges of pose, inside the margin."""
    params = SyntheticLandmarks(200, (64, 64)).params(range(200))
    mirrored = syn.mirror_params(params, 64)
    assert (mirrored.angle.abs() <= math.radians(25) + 1e-12).all()
    kp = mirrored.keypoints
    assert (kp >= 4 - 1e-9).all() and (kp <= 59 + 1e-9).all()
    # Left/right convention still holds after the mirror (left has the smaller x, up to rotation).
    cos, sin = torch.cos(mirrored.angle), torch.sin(mirrored.angle)
    d = kp[:, 3] - kp[:, 2]
    assert (cos * d[:, 0] + sin * d[:, 1] > 0).all()


# ---------------------------------------------------------------- options and bad input


def test_occlusion_hides_markers_and_clears_visibility():
    data = SyntheticLandmarks(100, (64, 64), num_keypoints=MAX_KEYPOINTS, occlusion=0.3)
    params = data.params(range(100))
    rate = 1.0 - params.visible.mean().item()
    assert 0.2 < rate < 0.4
    scene = syn.build_scene(params)
    hidden = params.visible == 0
    assert (scene.colours[:, :MAX_KEYPOINTS][hidden] == 0).all()
    assert (scene.colours[:, :MAX_KEYPOINTS][~hidden].abs().sum(-1) > 0).all()
    assert torch.equal(data.batch(range(100))["visible"], params.visible.float())


def test_noise_and_clutter_options_change_the_image_not_the_labels():
    clean = SyntheticLandmarks(4, (64, 64), noise=0.0, clutter=0).batch(range(4))
    busy = SyntheticLandmarks(4, (64, 64), noise=0.05, clutter=0).batch(range(4))
    assert torch.equal(clean["keypoints"], busy["keypoints"])
    residual = busy["image"] - clean["image"]
    assert 0.03 < residual.std().item() < 0.06
    with_clutter = SyntheticLandmarks(4, (64, 64), noise=0.0, clutter=10).batch(range(4))
    assert (with_clutter["image"] - clean["image"]).abs().amax() > 0.05


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_samples=0), "num_samples"),
        (dict(num_samples=5, num_keypoints=9), "num_keypoints must be one of"),
        (dict(num_samples=5, num_keypoints=19), "num_keypoints"),
        (dict(num_samples=5, split="dev"), "split must be one of"),
        (dict(num_samples=5, seed=-1), "seed"),
        (dict(num_samples=5, image_size=(0, 64)), "image_size"),
        (dict(num_samples=5, image_size=(64,)), "image_size"),
        (dict(num_samples=5, image_size=(16, 16)), "too small"),
        (dict(num_samples=5, noise=-0.1), "noise"),
        (dict(num_samples=5, clutter=-1), "clutter"),
        (dict(num_samples=5, max_rotation=120), "max_rotation"),
        (dict(num_samples=5, occlusion=1.0), "occlusion"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data = SyntheticLandmarks(**kwargs)
        data[0]  # some checks (the face fitting the image) run when sampling


def test_bad_indices_and_uniforms():
    data = SyntheticLandmarks(5, (64, 64))
    with pytest.raises(IndexError, match="out of range"):
        data[5]
    with pytest.raises(ValueError, match="must not be empty"):
        data.batch([])
    with pytest.raises(ValueError, match=r"uniforms must have shape \(B, "):
        syn.sample_params(torch.rand(2, 7), (64, 64))
    with pytest.raises(ValueError, match="batch_size"):
        render_batch(0)
    assert torch.equal(data[-1]["image"], data[4]["image"])


# ---------------------------------------------------------------- Gaussian noise and exact translations


def test_gaussian_noise_is_white_gaussian_and_uniform_stays_the_default():
    assert SyntheticLandmarks(2, (64, 64)).noise_distribution == "uniform"
    clean = SyntheticLandmarks(8, (64, 64), noise=0.0, split="val").batch(range(8))["image"]
    for law, kurtosis in (("gaussian", 3.0), ("uniform", 1.8)):
        noisy = SyntheticLandmarks(8, (64, 64), noise=0.05, split="val", noise_distribution=law)
        n = (noisy.batch(range(8))["image"] - clean).double()
        inside = (clean > 0.3) & (clean < 0.7)  # no clipping of the noise there (6 sd away)
        r = n[inside]
        assert r.std().item() == pytest.approx(0.05, rel=0.03)
        assert abs(r.mean().item()) < 0.003
        assert ((r - r.mean()) ** 4).mean().item() / r.var().item() ** 2 == pytest.approx(kurtosis, abs=0.15)
    # White: neighbouring pixels of the Gaussian bank are uncorrelated.
    bank = SyntheticLandmarks(1, (64, 64), noise=0.05, noise_distribution="gaussian")._noise_bank().double()
    lag = (bank[..., 1:] * bank[..., :-1]).mean() / bank.var()
    assert abs(lag.item()) < 0.01
    images, _, _ = render_batch(2, (64, 64), noise_distribution="gaussian")
    assert images.shape == (2, 3, 64, 64)


def test_a_zero_shift_is_the_item_itself_and_an_integer_shift_moves_the_pixels():
    data = SyntheticLandmarks(6, (64, 56), seed=2, split="val", noise=0.0)
    plain = data.batch(range(6))
    zero = data.batch(range(6), shift=(0.0, 0.0))
    assert all(torch.equal(plain[k], zero[k]) for k in ("image", "keypoints", "visible"))
    moved = data.batch(range(6), shift=(1.0, -2.0))
    torch.testing.assert_close(moved["keypoints"], plain["keypoints"] + torch.tensor([1.0, -2.0]))
    # The whole scene (ramp included) moves: one pixel right, two up, exactly (the borders excepted).
    torch.testing.assert_close(moved["image"][..., :-2, 1:], plain["image"][..., 2:, :-1], atol=2e-6, rtol=0)


def test_a_sub_pixel_shift_moves_each_marker_exactly_and_keeps_the_noise_on_the_pixel_grid():
    data = SyntheticLandmarks(4, (64, 64), seed=3, split="val", noise=0.02, noise_distribution="gaussian")
    params = data.params(range(4))
    shift = torch.tensor([[0.25, 0.5], [0.75, 0.0], [-0.3, 0.1], [0.5, 0.5]], dtype=torch.float64)
    moved = syn.translate_params(params, shift, (64, 64))
    for k in (0, 3, 10):
        before = centroid(markers_alone(params, k, (64, 64))[:, 0].abs())
        after = centroid(markers_alone(moved, k, (64, 64))[:, 0].abs())
        torch.testing.assert_close(after - before, shift, atol=1e-5, rtol=0)  # aliasing of 0.8 px markers
    # The noise is the same realization in pixel coordinates (a sensor's noise does not move with the scene).
    clean = SyntheticLandmarks(4, (64, 64), seed=3, split="val", noise=0.0)
    a = data.batch(range(4), shift=shift)["image"] - clean.batch(range(4), shift=shift)["image"]
    b = data.batch(range(4))["image"] - clean.batch(range(4))["image"]
    c0, c1 = clean.batch(range(4))["image"], clean.batch(range(4), shift=shift)["image"]
    both = (c0 - 0.5).abs().lt(0.4) & (c1 - 0.5).abs().lt(0.4)  # 5 noise sd from clipping
    torch.testing.assert_close(a[both], b[both], atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="shift must be a finite"):
        data.batch(range(4), shift=(0.5,))
    with pytest.raises(ValueError, match="shift must be a finite"):
        data.batch(range(2), shift=(float("nan"), 0.0))


def test_bad_noise_distribution_is_named():
    with pytest.raises(ValueError, match="noise_distribution must be one of"):
        SyntheticLandmarks(2, (64, 64), noise_distribution="laplace")
    with pytest.raises(ValueError, match="noise_distribution must be one of"):
        render_batch(1, noise_distribution="poisson")
