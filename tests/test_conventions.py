"""The pixel convention: round trips, heatmap extent, and exact flips."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from h3r_theory import conventions as cv

sizes = st.integers(min_value=2, max_value=96)
strides = st.integers(min_value=1, max_value=16)


@pytest.mark.parametrize("convention", cv.CONVENTIONS)
@given(w=sizes, h=sizes, sx=strides, sy=strides, seed=st.integers(0, 2**31 - 1))
def test_round_trip_is_identity(convention, w, h, sx, sy, seed):
    input_size, heatmap_size = (w * sx, h * sy), (w, h)
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(5, 3, 2, generator=g, dtype=torch.float64) * torch.tensor([w * sx, h * sy]) - 0.5
    uv = cv.input_to_heatmap(xy, input_size, heatmap_size, convention)
    back = cv.heatmap_to_input(uv, input_size, heatmap_size, convention)
    torch.testing.assert_close(back, xy, rtol=0, atol=1e-9)


def test_pixel_center_formula_and_extent():
    # stride 4: input pixel centre 1.5 (between pixels 1 and 2) is the centre of cell 0
    uv = cv.input_to_heatmap(torch.tensor([[1.5, 5.5]]), (16, 16), (4, 4))
    assert uv.tolist() == [[0.0, 1.0]]
    # the image box [-0.5, W - 0.5) maps onto the heatmap box [-0.5, w - 0.5)
    corners = cv.input_to_heatmap(torch.tensor([[-0.5, -0.5], [15.5, 15.5]]), (16, 16), (4, 4))
    assert corners.tolist() == [[-0.5, -0.5], [3.5, 3.5]]
    assert cv.heatmap_extent((4, 3)) == ((-0.5, 3.5), (-0.5, 2.5))
    inside = cv.on_heatmap(torch.tensor([[-0.5, 0.0], [3.5, 0.0], [-0.51, 0.0], [0.0, 2.49]]), (4, 3))
    assert inside.tolist() == [True, False, False, True]


def test_msra_and_udp_formulas():
    x = torch.tensor([[8.0, 0.0]])
    assert cv.input_to_heatmap(x, (16, 16), (4, 4), "msra").tolist() == [[2.0, 0.0]]
    # udp: the last pixel centre (15) maps onto the last cell centre (3)
    last = cv.input_to_heatmap(torch.tensor([[15.0, 15.0]]), (16, 16), (4, 4), "udp")
    assert last.tolist() == [[3.0, 3.0]]


@pytest.mark.parametrize("convention", ["pixel_center", "udp"])
@given(w=sizes, s=strides, x=st.floats(-0.5, 1.0, exclude_max=True))
def test_flip_commutes_with_the_map(convention, w, s, x):
    W = w * s
    xy = torch.tensor([[x * (W - 1), 3.0]], dtype=torch.float64)
    via_input = cv.input_to_heatmap(cv.flip_x(xy, W), (W, W), (w, w), convention)
    via_heatmap = cv.flip_x(cv.input_to_heatmap(xy, (W, W), (w, w), convention), w)
    torch.testing.assert_close(via_input, via_heatmap, rtol=0, atol=1e-9)
    assert cv.heatmap_flip_offset((W, W), (w, w), convention) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("s", [1, 2, 4, 8])
def test_msra_flip_is_off_by_s_minus_1_over_s(s):
    assert cv.heatmap_flip_offset((16 * s, 16 * s), (16, 16), "msra") == pytest.approx((s - 1) / s)


def test_flip_of_pixels_matches_flip_of_coordinates():
    image = torch.zeros(1, 1, 5, 7)
    image[0, 0, 2, 1] = 1.0  # a bright pixel at x = 1, y = 2
    flipped = torch.flip(image, dims=(-1,))
    y, x = (flipped[0, 0] == 1).nonzero()[0].tolist()
    assert cv.flip_x(torch.tensor([[1.0, 2.0]]), 7).tolist() == [[float(x), float(y)]]


def test_flip_keypoints_swaps_pairs_and_is_an_involution():
    kp = torch.tensor([[[1.0, 1.0], [5.0, 2.0], [3.0, 3.0]]])
    once = cv.flip_keypoints(kp, 7, [(0, 1)])
    assert once.tolist() == [[[1.0, 2.0], [5.0, 1.0], [3.0, 3.0]]]
    torch.testing.assert_close(cv.flip_keypoints(once, 7, [(0, 1)]), kp)
    maps = torch.rand(2, 3, 4, 5)
    torch.testing.assert_close(cv.flip_heatmaps(cv.flip_heatmaps(maps, [(0, 2)]), [(0, 2)]), maps)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="convention must be one of"):
        cv.input_to_heatmap(torch.zeros(1, 2), (4, 4), (2, 2), "center")
    with pytest.raises(ValueError, match="heatmap_size must be a \\(width, height\\)"):
        cv.input_to_heatmap(torch.zeros(1, 2), (4, 4), (0, 2))
    with pytest.raises(ValueError, match="input_size"):
        cv.stride((4.5, 4), (2, 2))
    with pytest.raises(ValueError, match="more than one flip pair"):
        cv.flip_permutation(4, [(0, 1), (1, 2)])
    with pytest.raises(ValueError, match="out of range"):
        cv.flip_permutation(2, [(0, 2)])
