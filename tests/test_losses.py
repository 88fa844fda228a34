"""Codec-matched losses: values on hand-computed cases, weights, and that each default loss trains its codec."""

from __future__ import annotations

import math

import pytest
import torch

from h3r_theory import codecs, losses


def test_cross_entropy_with_indices_equals_dense_one_hot():
    logits = torch.randn(3, 5, 4, 6, generator=torch.Generator().manual_seed(0))
    index = torch.randint(0, 24, (3, 5), generator=torch.Generator().manual_seed(1))
    dense = torch.nn.functional.one_hot(index, 24).float().view(3, 5, 4, 6)
    weights = torch.ones(3, 5)
    a = losses.spatial_softmax_cross_entropy(logits, index, weights)
    b = losses.spatial_softmax_cross_entropy(logits, dense, weights)
    torch.testing.assert_close(a, b)
    # hand value: uniform logits -> log(24) per keypoint
    assert losses.spatial_softmax_cross_entropy(
        torch.zeros(1, 1, 4, 6), index[:1, :1], torch.ones(1, 1)
    ).item() == (pytest.approx(math.log(24)))


@pytest.mark.parametrize(
    "loss", [losses.spatial_softmax_cross_entropy, losses.binary_cross_entropy, losses.mse]
)
def test_zero_weight_keypoints_contribute_nothing(loss):
    logits = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0), requires_grad=True)
    target = torch.softmax(torch.randn(2, 3, 16), -1).view(2, 3, 4, 4)
    weights = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    value = loss(logits, target, weights)
    value.backward()
    assert (logits.grad[weights == 0] == 0).all() and (logits.grad[weights > 0] != 0).any()
    # changing an ignored keypoint's output does not change the loss
    other = logits.detach().clone()
    other[0, 1] += 5
    torch.testing.assert_close(loss(other, target, weights), value.detach())
    assert loss(logits, target, torch.zeros(2, 3)).item() == 0.0


def test_binary_cross_entropy_two_channel_head_uses_the_complement():
    target = torch.tensor([[[[0.25, 1.0]]]])  # (1, 1, 1, 2)
    one = losses.binary_cross_entropy(torch.zeros(1, 1, 1, 2), target, torch.ones(1, 1))
    assert one.item() == pytest.approx(math.log(2))
    two = losses.binary_cross_entropy(torch.zeros(1, 1, 2, 1, 2), target, torch.ones(1, 1))
    assert two.item() == pytest.approx(math.log(2))


def test_binary_cross_entropy_two_channels_are_two_sigmoids_not_a_softmax_pair():
    """The (B, K, 2, h, w) loss is the mean of two independent BCEs (channel 1 vs t, channel 0 vs 1 - t);
    adding the same constant to both channels, which a 2-class softmax would not see, changes it."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 2, 4, 5, generator=g, dtype=torch.float64)
    target = torch.rand(2, 3, 4, 5, generator=g, dtype=torch.float64)
    weights = torch.ones(2, 3, dtype=torch.float64)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    two_sigmoids = (
        bce(logits[:, :, 1], target, reduction="none") + bce(logits[:, :, 0], 1 - target, reduction="none")
    ).mean() / 2
    torch.testing.assert_close(losses.binary_cross_entropy(logits, target, weights), two_sigmoids)
    shifted = losses.binary_cross_entropy(logits + 1.0, target, weights)
    assert abs(shifted.item() - two_sigmoids.item()) > 1e-3


def test_mse_and_coordinate_l1_hand_values():
    assert losses.mse(torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), torch.ones(1, 1)).item() == 1.0
    l1 = losses.coordinate_l1(
        torch.tensor([[[1.0, 2.0], [0.0, 0.0]]]), torch.zeros(1, 2, 2), torch.ones(1, 2)
    )
    assert l1.item() == pytest.approx(1.5)


@pytest.mark.parametrize("name", codecs.available())
def test_default_loss_fits_free_logits_to_a_decodable_optimum(name):
    """Fit a free output map by gradient descent on the codec's default loss; decode it at the keypoint.

    For randomized rounding the targets are resampled every step, so the fit must find the expectation.
    """
    codec = codecs.build(name, input_size=(64, 64), heatmap_size=(16, 16))
    kp = torch.tensor([[[21.3, 40.8], [30.0, 17.6]]], dtype=torch.float64)
    _, loss_fn = losses.default_loss(codec)
    output = torch.zeros(1, 2, 16, 16, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([output], lr=0.1)
    generator = torch.Generator().manual_seed(0)
    for _ in range(600):
        enc = codec.encode(kp.expand(32, 2, 2), generator=generator)
        loss = loss_fn(output.expand(32, 2, 16, 16), enc)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    decoded, _ = codec.decode(output.detach(), activation=codec.default_activation)
    error = (decoded - kp).norm(dim=-1).max().item()
    if name in ("argmax", "gaussian"):  # vanilla quantization: the optimum is the rounded cell
        assert error <= 0.5 * math.sqrt(2) * 4 + 1e-6
    else:
        assert error < 0.25, f"{name} decoded its own optimum {error:.3f} px away"
