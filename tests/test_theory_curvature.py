"""The cross-entropy's curvature near its optimum (h3r_theory.theory.curvature): the closed forms, their
exact counterparts, the codec's own expected targets, and a seeded Monte Carlo check."""

from __future__ import annotations

import math

import pytest
import sympy as sp
import torch

from h3r_theory import codecs
from h3r_theory.theory import curvature


def test_the_kl_of_a_shift_is_delta_squared_over_2f1mf():
    d = curvature.kl_of_a_shift()
    f, delta = d.symbols["f"], d.symbols["delta"]
    assert sp.simplify(d.closed_form - delta**2 / (2 * f * (1 - f))) == 0
    value_slope = dict(d.steps)["its value and slope at delta = 0"]
    assert value_slope == sp.Matrix([0, 0])  # the expected target is the optimum


def test_the_quadratic_term_is_the_limit_of_the_exact_kl():
    f = torch.tensor([0.1, 0.3, 0.5, 0.8])
    quadratic = curvature.kl_of_a_shift()
    for delta in (1e-2, 1e-3):
        exact = curvature.kl_exact(f, torch.full_like(f, delta))
        approx = torch.tensor([quadratic.evaluate(f=float(x), delta=delta) for x in f], dtype=torch.float64)
        # The relative gap is the cubic term over the quadratic: O(delta / min(f, 1 - f)).
        assert torch.allclose(exact / approx, torch.ones_like(exact), atol=10 * delta)
    with pytest.raises(ValueError, match="same two cells"):
        curvature.kl_exact(torch.tensor([0.9]), torch.tensor([0.2]))


def test_the_kl_of_the_codecs_expected_targets_is_the_sum_of_the_axes():
    """2-D: the bilinear target is the product of the axes' targets, so its KL is the sum of theirs."""
    codec = codecs.build("randomized_rounding", input_size=(64, 64), heatmap_size=(16, 16), target="expected")
    g = torch.Generator().manual_seed(0)
    cells = 4 + 6 * torch.rand(20, 2, generator=g, dtype=torch.float64)  # heatmap cells, away from the edge
    frac = cells - cells.floor()
    shift = (torch.rand(20, 2, generator=g, dtype=torch.float64) - 0.5) * 0.2
    shift = torch.where(frac + shift < 0, -shift, shift).where(frac + shift <= 1, -shift)  # stay on 2 cells
    stride = torch.tensor(codec.stride, dtype=torch.float64)
    to_px = lambda c: (c + 0.5) * stride - 0.5  # noqa: E731  pixel_center: cell centre c <-> px (c + 0.5) s - 0.5
    p = codec.expected(to_px(cells)[None]).heatmaps[0].flatten(1)
    q = codec.expected(to_px(cells + shift)[None]).heatmaps[0].flatten(1)
    assert torch.allclose(p.sum(-1), torch.ones(20, dtype=p.dtype))
    kl_maps = torch.where(p > 0, p * (p.log() - q.clamp_min(1e-300).log()), torch.zeros_like(p)).sum(-1)
    kl_axes = curvature.kl_exact(frac[:, 0], shift[:, 0]) + curvature.kl_exact(frac[:, 1], shift[:, 1])
    assert torch.allclose(kl_maps, kl_axes, rtol=1e-9, atol=1e-12)


def test_the_curvature_in_pixels_falls_as_one_over_the_stride_squared():
    d = curvature.kl_in_pixels()
    f, s, px = d.symbols["f"], d.symbols["s"], d.symbols["d"]
    assert dict(d.steps)["elasticity of the curvature in the stride, (s / c) dc / ds"] == -2
    assert sp.simplify(d.closed_form - px**2 / (2 * s**2 * f * (1 - f))) == 0


def test_the_rms_error_at_equal_kl_is_sqrt_kl_over_3_by_monte_carlo():
    d = curvature.rms_error_at_equal_kl()
    assert sp.simplify(d.closed_form / sp.sqrt(d.symbols["KL"]) - 1 / sp.sqrt(3)) == 0
    g = torch.Generator().manual_seed(1)
    n, kappa = 200_000, 1e-4  # KL per axis, nats: small, so the shifts stay in the quadratic regime
    f = torch.rand(n, 2, generator=g, dtype=torch.float64)
    delta = (2 * kappa * f * (1 - f)).sqrt()
    delta = torch.where(
        f + delta <= 1, delta, -delta
    )  # toward the cell that keeps both on the same two cells
    kl = (curvature.kl_exact(f[:, 0], delta[:, 0]) + curvature.kl_exact(f[:, 1], delta[:, 1])).mean()
    rms = delta.square().sum(-1).mean().sqrt()
    assert float(kl) == pytest.approx(2 * kappa, rel=0.02)  # the cubic term, averaged, is small
    assert float(rms) / math.sqrt(float(kl)) == pytest.approx(1 / math.sqrt(3), rel=0.02)
