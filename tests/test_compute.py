"""Compute measurement: FLOPs against closed forms, parameter counts, latency."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainers import compute
from trainers.models import build_model


@pytest.mark.parametrize("stride, groups", [(1, 1), (2, 1), (1, 4)])
def test_conv_flops_match_the_closed_form(stride, groups):
    cin, cout, k, (W, H) = 8, 16, 3, (40, 24)
    conv = nn.Conv2d(cin, cout, k, stride=stride, padding=1, groups=groups)
    h_out, w_out = (H + 2 - k) // stride + 1, (W + 2 - k) // stride + 1
    # 2 FLOPs per multiply-add: every output value is a dot product of cin / groups * k * k terms.
    closed = 2 * cout * h_out * w_out * (cin // groups) * k * k
    assert compute.forward_flops(conv, (W, H), channels=cin) == closed


def test_linear_flops_and_parameter_count():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10), nn.ReLU(), nn.Linear(10, 4))
    assert compute.forward_flops(model, (8, 8)) == 2 * (192 * 10 + 10 * 4)
    assert compute.parameter_count(model) == 192 * 10 + 10 + 10 * 4 + 4


def test_tiny_model_flops_grow_with_the_input_and_keep_the_mode():
    model = build_model("tiny", num_keypoints=12, output_stride=4)
    model.train()
    small, large = compute.forward_flops(model, (64, 64)), compute.forward_flops(model, (128, 128))
    assert model.training  # restored
    # Convolutions dominate and scale with the pixel count, so 4x the pixels is close to 4x the FLOPs.
    assert 3.8 < large / small <= 4.0
    assert compute.parameter_count(model) == sum(p.numel() for p in model.parameters()) > 0


def test_latency_is_positive_and_measure_compute_has_every_column():
    model = nn.Conv2d(3, 4, 3, padding=1)
    seconds = compute.latency_per_image(model, (32, 32), batch_size=4, repeats=3, warmup=1)
    assert 0 < seconds < 1.0
    row = compute.measure_compute(model, (32, 32), devices=("cpu",), repeats=2, warmup=0)
    assert set(row) == {"gflops", "params", "latency_batch_size", "latency_ms_cpu", "device_cpu"}
    assert row["gflops"] == pytest.approx(2 * 4 * 32 * 32 * 3 * 9 / 1e9)
    assert row["params"] == 4 * 3 * 9 + 4 and row["latency_ms_cpu"] > 0
    assert row["device_cpu"].startswith("cpu (")


def test_bad_arguments_are_named():
    model = nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match="image_size"):
        compute.forward_flops(model, (0, 8))
    with pytest.raises(ValueError, match="batch_size"):
        compute.latency_per_image(model, (8, 8), batch_size=0)
    with pytest.raises(ValueError, match="repeats"):
        compute.latency_per_image(model, (8, 8), repeats=0)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda"):
            compute.latency_per_image(model, (8, 8), "cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_latency_is_measured_and_the_model_returns_home():
    model = nn.Conv2d(3, 4, 3, padding=1)
    row = compute.measure_compute(model, (64, 64), repeats=3, warmup=1)
    assert row["latency_ms_cuda"] > 0 and row["device_cuda"].startswith("cuda:")
    assert next(model.parameters()).device.type == "cpu"
