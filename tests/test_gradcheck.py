"""``torch.autograd.gradcheck`` of the differentiable pieces: analytic gradients against finite differences.

In float64 on small random inputs: soft-argmax (the expectation of the cell coordinates), the spatial
softmax cross-entropy with dense and with index targets, and the randomized-rounding decode from logits
(a softmax over the points of a fixed window, differentiable in the logits once the window is chosen).
Each check also confirms it can fail: a deliberately wrong backward must be rejected.
"""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from h3r_theory import codecs, losses
from h3r_theory.codecs import soft_argmax_cells


def _logits(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_()


@pytest.mark.parametrize("activation", ["logits", "probabilities"])
def test_soft_argmax_gradients(activation):
    heatmaps = _logits(2, 3, 5, 4)
    if activation == "probabilities":  # positive mass everywhere: the clamp at 0 is not hit
        heatmaps = (heatmaps.detach().abs() + 0.1).requires_grad_()
    assert gradcheck(lambda m: soft_argmax_cells(m, activation), (heatmaps,), eps=1e-6, atol=1e-6)


def test_spatial_softmax_cross_entropy_gradients_dense_and_index_targets():
    logits = _logits(2, 3, 4, 5)
    g = torch.Generator().manual_seed(1)
    dense = torch.rand(2, 3, 4, 5, generator=g, dtype=torch.float64)
    dense = dense / dense.flatten(-2).sum(-1)[..., None, None]
    index = torch.randint(0, 20, (2, 3), generator=g)
    weights = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.5]], dtype=torch.float64)
    for target in (dense, index):
        assert gradcheck(
            lambda z, t=target: losses.spatial_softmax_cross_entropy(z, t, weights),
            (logits,),
            eps=1e-6,
            atol=1e-6,
        )


def test_randomized_rounding_decode_from_logits_gradients():
    codec = codecs.build("randomized_rounding", input_size=(32, 32), heatmap_size=(8, 8))
    logits = _logits(2, 3, 8, 8, seed=2)
    # Make the window choice (the argmax cell) unambiguous so that finite differences do not move it.
    with torch.no_grad():
        logits[:, :, 3, 4] += 6.0

    def coords(z):
        xy, _ = codec.decode(z, activation="logits")
        return xy

    assert gradcheck(coords, (logits,), eps=1e-6, atol=1e-5)


class _WrongBackward(torch.autograd.Function):
    """softmax forward, but twice its true gradient backward: gradcheck must reject it."""

    @staticmethod
    def forward(ctx, z):
        out = torch.softmax(z, dim=-1)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return 2.0 * out * (grad - (grad * out).sum(-1, keepdim=True))


def test_gradcheck_rejects_a_wrong_gradient():
    z = _logits(3, 6, seed=3)
    assert gradcheck(lambda t: torch.softmax(t, -1), (z,), eps=1e-6, atol=1e-6)
    assert not gradcheck(_WrongBackward.apply, (z,), eps=1e-6, atol=1e-6, raise_exception=False)
