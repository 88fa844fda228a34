"""The ``binary`` head: it starts at the prior log-odds of a cell, and so trains through ``engine.train``.

From bias 0 (every cell at probability 1/2 instead of 1/(h w)) ``engine.train`` with ``model.head=binary``
stayed above 10 px on the synthetic set; the reduction of the loss (mean or sum over cells) and its form
(BCE or a 2-class softmax per cell) made no difference, the prior did (see ``KeypointHead``'s docstring).
"""

from __future__ import annotations

import math

import pytest
import torch

from trainers import engine
from trainers.config import load_config
from trainers.models import build_model
from trainers.models.layers import KeypointHead, binary_prior_logit

pytestmark = pytest.mark.usefixtures("one_thread")


def head_of(model: torch.nn.Module) -> KeypointHead:
    return next(m for m in model.modules() if isinstance(m, KeypointHead))


def test_prior_logit_is_the_log_odds_of_one_cell():
    assert binary_prior_logit(256) == pytest.approx(-math.log(255))
    assert torch.sigmoid(torch.tensor(binary_prior_logit(256), dtype=torch.float64)).item() == pytest.approx(
        1 / 256
    )
    with pytest.raises(ValueError, match="num_cells"):
        binary_prior_logit(1)


def test_first_training_forward_sets_the_prior_per_channel():
    head = KeypointHead(4, 3, kind="binary")
    head.eval()
    head(torch.randn(1, 4, 8, 16))
    assert not head.conv.bias.any() and head.prior_pending  # eval mode: untouched
    head.train()
    out = head(torch.randn(2, 4, 8, 16))  # (B, K, 2, h, w), h w = 128 cells
    prior = binary_prior_logit(128)
    bias = head.conv.bias.detach().view(3, 2)  # keypoint-major: channel 2k + c
    torch.testing.assert_close(bias, torch.tensor([[-prior, prior]] * 3))
    assert not head.prior_pending
    # the output starts at the prior: sigmoid(channel 1) ~ 1 / (h w), sigmoid(channel 0) ~ 1 - 1 / (h w)
    torch.testing.assert_close(
        torch.sigmoid(out[:, :, 1]), torch.full((2, 3, 8, 16), 1 / 128), atol=1e-4, rtol=0
    )
    torch.testing.assert_close(
        torch.sigmoid(out[:, :, 0]), torch.full((2, 3, 8, 16), 127 / 128), atol=1e-4, rtol=0
    )
    head.conv.bias.data.zero_()
    head(torch.randn(1, 4, 4, 4))  # once only: a later input of another size changes nothing
    assert not head.conv.bias.any()


def test_loaded_or_hand_set_bias_is_kept_and_heatmap_head_keeps_zero():
    source = build_model("tiny", 3, head="binary")
    head_of(source).conv.bias.data.copy_(torch.arange(6.0))
    loaded = build_model("tiny", 3, head="binary")
    loaded.load_state_dict(source.state_dict())
    loaded.train()(torch.rand(1, 3, 32, 32))
    torch.testing.assert_close(head_of(loaded).conv.bias.detach(), torch.arange(6.0))

    by_hand = KeypointHead(4, 1, kind="binary")
    by_hand.conv.bias.data.copy_(torch.tensor([2.0, -2.0]))
    by_hand.train()(torch.randn(1, 4, 8, 8))
    torch.testing.assert_close(by_hand.conv.bias.detach(), torch.tensor([2.0, -2.0]))

    heatmap = KeypointHead(4, 2)
    heatmap.train()(torch.randn(1, 4, 8, 8))
    assert not heatmap.conv.bias.any() and not heatmap.prior_pending
    with pytest.raises(ValueError, match="binary head only"):
        heatmap.init_prior(64)


def synthetic_run(tmp_path, head: str):
    """60 steps of ``engine.train`` on the synthetic set, 6 keypoints at 16 x 16 cells (about 8 CPU-seconds)."""
    config = load_config(
        "synthetic",
        [
            f"model.head={head}",
            "data.input_size=[64, 64]",
            "data.options={num_train: 2048, num_eval: 64, num_keypoints: 6}",
            "train.batch_size=16",
            "train.max_steps=60",
            "train.log_every=10",
            "train.eval_every=0",
            "train.checkpoint_every=0",
            "train.progress=false",
            "train.device=cpu",
            "optim.lr=3e-3",
            "optim.warmup_steps=10",
            f"train.out_dir={tmp_path / head}",
        ],
    )
    return engine.train(config)


def test_binary_head_trains_through_the_engine(tmp_path):
    """Measured with this setting on one thread (commit 78f1b02): 1.58 px from the prior, and 15.35 px
    when this test runs against the parent commit, whose head started at bias 0. The same 60 steps with
    the heatmap head gave 4.13 px; ``engine.train`` on the synthetic config with ``train.max_steps=200``
    gave 0.78 px (binary) and 0.81 px (heatmap). The bound is about 2x from either side."""
    result = synthetic_run(tmp_path, "binary")
    assert result.final["mean_error_px"] < 3.0, result.final
