"""What ``decode``'s scores are, checked against a brute-force softmax; and the window decode's fast path.

``score="peak"`` is the map's value at its first maximum; ``score="mass"`` the probability that the cells the
decoder reads hold: for logits, their share of ``softmax(map / T)`` over the whole map. The coordinates do not
depend on the score. :func:`window_mean` (the on-map patch, reduced one axis at a time) equals the general
cell-by-cell gather path, on every border and with gradients.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from h3r_theory import codecs
from h3r_theory.codecs.peaks import argmax_cells, scan_maps
from h3r_theory.codecs.randomized_rounding import _point_weights, activation_points, window_mean

SIZE = (13, 11)  # (w, h) cells
SINGLE_CELL = ("argmax", "gaussian", "dark", "udp", "soft_argmax")  # decoders whose mass is the peak cell's


def _codec(name: str, **options) -> codecs.HeatmapCodec:
    return codecs.build(name, input_size=(4 * SIZE[0], 4 * SIZE[1]), heatmap_size=SIZE, **options)


def _logits(seed: int, b: int = 3, k: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    w, h = SIZE
    maps = 3 * torch.randn(b, k, h, w, generator=g, dtype=torch.float64)
    maps[0, 0, 0, 0] = maps[0, 0].max() + 2  # peaks in corners and on edges: windows that cross the border
    maps[1, 1, h - 1, w - 1] = maps[1, 1].max() + 2
    maps[2, 2, 5, 0] = maps[2, 2].max() + 2
    return maps


def _window_cells(maps: torch.Tensor, radius: int) -> torch.Tensor:
    """(B, K, h, w) bool: the on-map cells within ``radius`` (Chebyshev) of each map's first maximum."""
    ix, iy, _ = argmax_cells(maps)
    h, w = maps.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return ((xs - ix[..., None, None]).abs() <= radius) & ((ys - iy[..., None, None]).abs() <= radius)


@pytest.mark.parametrize("name", SINGLE_CELL + ("randomized_rounding",))
@pytest.mark.parametrize("activation", ["logits", "probabilities"])
def test_peak_score_is_the_maps_maximum_and_the_coordinates_do_not_depend_on_the_score(name, activation):
    codec = _codec(name)
    maps = _logits(1)
    if activation == "probabilities":
        maps = maps.flatten(-2).softmax(-1).view_as(maps)
    coords, peak = codec.decode(maps, activation=activation)
    assert torch.equal(peak, maps.flatten(-2).amax(-1))
    coords_mass, mass = codec.decode(maps, activation=activation, score="mass")
    assert torch.equal(coords, coords_mass)
    assert ((mass > 0) & (mass <= 1)).all()


@pytest.mark.parametrize("name", SINGLE_CELL)
def test_mass_of_a_single_cell_decoder_is_the_softmax_probability_of_the_peak(name):
    maps = _logits(2)
    _, mass = _codec(name).decode(maps, activation="logits", score="mass")
    softmax = maps.flatten(-2).softmax(-1)
    torch.testing.assert_close(mass, softmax.amax(-1), rtol=1e-12, atol=0)
    probabilities = softmax.view_as(maps)
    _, value = _codec(name).decode(probabilities, activation="probabilities", score="mass")
    assert torch.equal(value, softmax.amax(-1))  # a probability map's peak cell holds its value


@pytest.mark.parametrize("radius", [1, 2, 3])
@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.5])
def test_window_mass_is_the_softmax_mass_of_the_window_at_the_temperature(radius, temperature):
    maps = _logits(3 + radius)
    codec = _codec("randomized_rounding", radius=radius, temperature=temperature)
    _, mass = codec.decode(maps, score="mass")
    softmax = (maps / temperature).flatten(-2).softmax(-1).view_as(maps)
    expected = (softmax * _window_cells(maps, radius)).flatten(-2).sum(-1)
    torch.testing.assert_close(mass, expected, rtol=1e-12, atol=0)
    probabilities = softmax.clone()
    probabilities[0, 3, 4, 4] = -0.5  # a negative cell counts as 0
    _, held = _codec("randomized_rounding", radius=radius).decode(
        probabilities, activation="probabilities", score="mass"
    )
    expected = (probabilities.clamp(min=0) * _window_cells(probabilities, radius)).flatten(-2).sum(-1)
    torch.testing.assert_close(held, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("method,points", [("topk", 9), ("2x2", 4)])
def test_mass_of_the_other_point_sets_is_the_softmax_mass_of_those_points(method, points):
    maps = _logits(7)
    codec = _codec("randomized_rounding", method=method)
    _, mass = codec.decode(maps, score="mass")
    peak = scan_maps(maps)
    values, x, y, inside = activation_points(maps, peak, method, 9, 1)
    softmax = maps.flatten(-2).softmax(-1)
    w = maps.shape[-1]
    cells = (y.clamp(min=0) * w + x.clamp(min=0)).clamp(max=softmax.shape[-1] - 1)
    expected = (softmax.gather(-1, cells) * inside).sum(-1)
    assert values.shape[-1] == points
    torch.testing.assert_close(mass, expected, rtol=1e-12, atol=0)


def test_an_unknown_score_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match=r"score must be one of \('peak', 'mass'\), got 'masss'"):
        _codec("argmax").decode(_logits(0), score="masss")


def _general_window(maps, radius, activation, temperature):
    """The window decode by the general path: every window cell gathered, weighted, averaged."""
    peak = scan_maps(maps)
    values, x, y, inside = activation_points(maps, peak, "window", 9, radius)
    weights = _point_weights(values, inside, peak, activation, temperature)
    weights = weights / weights.sum(-1, keepdim=True)
    return torch.stack(((weights * x).sum(-1), (weights * y).sum(-1)), dim=-1)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    radius=st.integers(0, 3),
    w=st.integers(7, 20),
    h=st.integers(7, 20),
    activation=st.sampled_from(["logits", "probabilities"]),
    temperature=st.sampled_from([1.0, 0.7]),
)
def test_window_mean_equals_the_cell_by_cell_window(seed, radius, w, h, activation, temperature):
    g = torch.Generator().manual_seed(seed)
    maps = 2 * torch.randn(2, 6, h, w, generator=g, dtype=torch.float64)
    # Peaks on every edge and corner, where the window crosses the border and the patch is moved inward.
    spots = [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1), (h // 2, 0), (0, w // 2)]
    for k, (y, x) in enumerate(spots):
        maps[0, k, y, x] = maps[0, k].max() + 1
    if activation == "probabilities":
        maps = maps.flatten(-2).softmax(-1).view_as(maps)
        temperature = 1.0
    peak = scan_maps(maps)
    fast = window_mean(maps, peak, radius, activation, temperature)
    torch.testing.assert_close(
        fast, _general_window(maps, radius, activation, temperature), rtol=0, atol=1e-12
    )


def test_window_mean_carries_gradients_and_falls_back_to_the_peak_without_mass():
    maps = _logits(11).requires_grad_()
    peak = scan_maps(maps)
    assert torch.autograd.gradcheck(lambda m: window_mean(m, peak, 1, "logits"), (maps,))
    negative = -torch.rand(1, 2, 9, 9, dtype=torch.float64) - 0.1  # no positive mass anywhere
    negative[0, 1, 8, 3] = -0.01
    peak = scan_maps(negative)
    uv = window_mean(negative, peak, 2, "probabilities")
    assert torch.equal(uv, torch.stack((peak.ix, peak.iy), dim=-1).double())
