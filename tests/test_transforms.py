"""Exact geometry of the data transforms: the same matrix moves pixels and keypoints."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from h3r_theory.conventions import flip_x, input_to_heatmap
from trainers.data.transforms import (
    color_jitter,
    crop_matrix,
    flip_matrix,
    invert,
    pixel_to_normalized,
    random_affine_params,
    resize_matrix,
    transform_points,
    warp_image,
)


def _dot_image(width, height, x0, y0, sigma, dtype, device):
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij"
    )
    img = torch.exp(-((xs - x0) ** 2 + (ys - y0) ** 2) / (2 * sigma**2))
    return img[None, None].to(dtype=dtype, device=device)


def _centroid(image):
    m = image[0, 0].double()
    ys, xs = torch.meshgrid(
        torch.arange(m.shape[0], dtype=torch.float64, device=m.device),
        torch.arange(m.shape[1], dtype=torch.float64, device=m.device),
        indexing="ij",
    )
    return torch.stack([(m * xs).sum() / m.sum(), (m * ys).sum() / m.sum()]).cpu()


def test_pixel_to_normalized_is_align_corners_false():
    N = pixel_to_normalized((8, 4))
    pts = torch.tensor([[-0.5, -0.5, 1.0], [7.5, 3.5, 1.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    out = pts @ N.T
    assert torch.allclose(out[0, :2], torch.tensor([-1.0, -1.0], dtype=torch.float64))  # image edges
    assert torch.allclose(out[1, :2], torch.tensor([1.0, 1.0], dtype=torch.float64))
    assert torch.allclose(out[2, :2], torch.tensor([2 * 0 + 1 / 8 - 1, 1 / 4 - 1], dtype=torch.float64))


def test_crop_matrix_maps_box_centre_to_input_centre_and_box_to_input():
    M = crop_matrix(torch.tensor([[100.0, 50.0]]), torch.tensor([[40.0, 20.0]]), (64, 32))
    corners = torch.tensor([[[100.0, 50.0], [80.0, 40.0], [120.0, 60.0]]], dtype=torch.float64)
    out = transform_points(corners, M)[0]
    # the box edges [c - s/2, c + s/2] map onto the input edges [-0.5, W - 0.5]
    expected = torch.tensor([[31.5, 15.5], [-0.5, -0.5], [63.5, 31.5]], dtype=torch.float64)
    assert torch.allclose(out, expected, atol=1e-12)


def test_crop_matrix_rotation_is_counter_clockwise_on_screen():
    M = crop_matrix(torch.zeros(1, 2), torch.tensor([[10.0, 10.0]]), (11, 11), rotation=torch.tensor([90.0]))
    # a point to the right of the centre goes to the top of the crop (smaller y) when turned CCW on screen
    out = transform_points(torch.tensor([[[1.0, 0.0]]], dtype=torch.float64), M)[0, 0]
    assert torch.allclose(out, torch.tensor([5.0, 5.0 - 1.1], dtype=torch.float64), atol=1e-12)


@given(
    cx=st.floats(-50, 500),
    cy=st.floats(-50, 500),
    w=st.floats(5, 400),
    h=st.floats(5, 400),
    rot=st.floats(-180, 180),
    flip=st.booleans(),
)
def test_forward_then_inverse_is_identity_on_keypoints(cx, cy, w, h, rot, flip):
    M = crop_matrix(
        torch.tensor([[cx, cy]]), torch.tensor([[w, h]]), (96, 128), torch.tensor([rot]), torch.tensor([flip])
    )
    pts = torch.rand(1, 20, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 600 - 50
    back = transform_points(transform_points(pts, M), invert(M))
    assert torch.allclose(back, pts, atol=1e-9)
    back23 = transform_points(transform_points(pts, M[:, :2]), invert(M[:, :2]))
    assert torch.allclose(back23, pts, atol=1e-9)


def test_transform_points_keeps_dtype_and_device(dtype, device):
    M = crop_matrix(torch.tensor([[10.0, 10.0]]), torch.tensor([[20.0, 20.0]]), (32, 32)).to(device)
    pts = torch.zeros(1, 3, 2, dtype=dtype, device=device)
    out = transform_points(pts, M)
    assert out.dtype == dtype and out.device == pts.device


@pytest.mark.parametrize(
    "rotation, size, flip, output",
    [
        (0.0, (120.0, 120.0), False, (128, 96)),
        (25.0, (100.0, 80.0), True, (128, 96)),
        (-40.0, (150.0, 150.0), False, (64, 64)),
        (10.0, (60.0, 60.0), False, (128, 128)),  # magnification x2
        (170.0, (500.0, 500.0), True, (64, 64)),  # minification x7.8: antialiased path
    ],
)
def test_subpixel_dot_lands_on_the_mapped_keypoint(rotation, size, flip, output, dtype, device):
    x0, y0 = 117.3, 93.7
    sigma = 3.0 if size[0] < 200 else 12.0  # the dot must stay wider than a pixel after the warp
    image = _dot_image(260, 220, x0, y0, sigma, dtype, device)
    M = crop_matrix(
        torch.tensor([[110.0, 100.0]]),
        torch.tensor([size]),
        output,
        torch.tensor([rotation]),
        torch.tensor([flip]),
    )
    warped = warp_image(image, M.to(device), output)
    assert (
        warped.dtype == dtype
        and warped.device == image.device
        and warped.shape == (1, 1, output[1], output[0])
    )
    target = transform_points(torch.tensor([[[x0, y0]]], dtype=torch.float64), M)[0, 0]
    tol = 0.05 if dtype == torch.float64 else 0.06
    assert (_centroid(warped) - target).abs().max() < tol


def test_identity_warp_returns_the_image(dtype):
    image = torch.rand(2, 3, 17, 23, dtype=dtype, generator=torch.Generator().manual_seed(1))
    out = warp_image(image, torch.eye(3, dtype=torch.float64).expand(2, 3, 3), (23, 17))
    assert torch.allclose(out, image, atol=1e-5 if dtype == torch.float32 else 1e-12)


def test_flip_matrix_warp_equals_torch_flip_and_flip_twice_is_identity(dtype):
    image = torch.rand(1, 3, 9, 14, dtype=dtype, generator=torch.Generator().manual_seed(2))
    F1 = flip_matrix(14)[None]
    once = warp_image(image, F1, (14, 9))
    assert torch.allclose(once, torch.flip(image, dims=(-1,)), atol=1e-5 if dtype == torch.float32 else 1e-12)
    twice = warp_image(once, F1, (14, 9))
    assert torch.allclose(twice, image, atol=1e-5 if dtype == torch.float32 else 1e-12)
    assert torch.equal(F1[0] @ F1[0], torch.eye(3, dtype=torch.float64))
    pts = torch.tensor([[[0.0, 1.0], [3.25, 4.0], [13.0, 8.0]]], dtype=dtype)
    assert torch.allclose(transform_points(pts, F1), flip_x(pts, 14))
    assert torch.allclose(transform_points(transform_points(pts, F1), F1), pts)


def test_crop_with_flip_is_mirror_of_crop_without():
    args = (torch.tensor([[40.0, 30.0]]), torch.tensor([[50.0, 50.0]]), (32, 32), torch.tensor([15.0]))
    M = crop_matrix(*args)
    Mf = crop_matrix(*args, flip=torch.tensor([True]))
    assert torch.allclose(Mf, flip_matrix(32)[None] @ M, atol=1e-12)


def test_resize_matrix_agrees_with_the_convention():
    M = resize_matrix((256, 192), (64, 48))[None]
    pts = torch.rand(1, 10, 2, dtype=torch.float64) * 200
    assert torch.allclose(transform_points(pts, M), input_to_heatmap(pts, (256, 192), (64, 48)), atol=1e-12)


def test_warp_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        warp_image(torch.zeros(3, 4, 4), torch.eye(3)[None], (4, 4))
    with pytest.raises(ValueError, match="matrix must have shape"):
        warp_image(torch.zeros(2, 3, 4, 4), torch.eye(3)[None], (4, 4))
    with pytest.raises(ValueError, match="crop size must be positive"):
        crop_matrix(torch.zeros(1, 2), torch.tensor([[0.0, 3.0]]), (4, 4))


def test_random_affine_params_ranges():
    p = random_affine_params(
        4000,
        scale_range=(0.8, 1.2),
        rotation=20,
        rotation_prob=0.5,
        translation=0.1,
        flip_prob=0.3,
        generator=torch.Generator().manual_seed(3),
    )
    assert p["scale"].min() >= 0.8 and p["scale"].max() <= 1.2
    assert p["rotation"].abs().max() <= 20 and 0.4 < (p["rotation"] == 0).double().mean() < 0.6
    assert p["shift"].abs().max() <= 0.1 and p["shift"].shape == (4000, 2)
    assert 0.25 < p["flip"].double().mean() < 0.35


def test_color_jitter_keeps_geometry_range_and_dtype(dtype):
    image = torch.rand(3, 3, 8, 8, dtype=dtype, generator=torch.Generator().manual_seed(4))
    out = color_jitter(image, 0.4, 0.4, 0.4, generator=torch.Generator().manual_seed(5))
    assert out.shape == image.shape and out.dtype == dtype
    assert out.min() >= 0 and out.max() <= 1 and not torch.allclose(out, image)
    assert torch.allclose(color_jitter(image, 0.0, 0.0, 0.0), image, atol=1e-6)  # zero amplitude = identity
