"""What a model costs: forward FLOPs, parameters and latency per image, measured (not estimated).

* FLOPs: :class:`torch.utils.flop_counter.FlopCounterMode` over one forward pass of a single image. It
  counts the matrix-like operators (convolutions, matmuls, their batched forms) as 2 FLOPs per
  multiply-add and nothing else (no BatchNorm, activations, additions or resampling), the usual convention
  of papers' "GFLOPs" (which are often MACs: divide by 2 to compare with those).
* Parameters: the number of elements of ``model.parameters()`` (buffers such as BatchNorm statistics are
  not parameters).
* Latency: wall time of ``model(x)`` per image at a given batch size, the median over repeats after a
  warm-up, in eval mode without autograd; on CUDA bracketed by synchronisation so that the asynchronous
  kernels are inside the measurement. It depends on the machine and its load: report it with the machine
  (:func:`describe_device`) and prefer ratios measured in one process.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from h3r_theory.conventions import check_size


def _example(
    model: nn.Module, image_size: Sequence[int], batch_size: int, device=None, channels: int = 3
) -> torch.Tensor:
    W, H = check_size(image_size, "image_size")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    return torch.rand(batch_size, channels, H, W, device=device)


def forward_flops(model: nn.Module, image_size: Sequence[int], channels: int = 3) -> int:
    """FLOPs (2 per multiply-add) of one forward pass of ONE image (channels, H, W), eval mode;
    ``image_size = (W, H)``."""
    x = _example(model, image_size, 1, channels=channels)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def parameter_count(model: nn.Module) -> int:
    """Number of trainable and frozen parameter elements (buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def latency_per_image(
    model: nn.Module,
    image_size: Sequence[int],
    device: str | torch.device = "cpu",
    *,
    batch_size: int = 1,
    repeats: int = 10,
    warmup: int = 3,
) -> float:
    """Median seconds per image of ``model(x)`` for a batch of ``batch_size`` images on ``device``.

    The model is moved to ``device`` for the measurement and back afterwards; eval mode, no autograd.
    """
    if not isinstance(repeats, int) or repeats < 1 or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0 (ints), got {repeats!r}, {warmup!r}")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch.cuda.is_available() is False")
    first = next(model.parameters(), None)
    home = first.device if first is not None else torch.device("cpu")
    was_training = model.training
    model.to(device).eval()
    x = _example(model, image_size, batch_size, device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    times = []
    try:
        with torch.no_grad():
            for i in range(warmup + repeats):
                sync()
                start = time.perf_counter()
                model(x)
                sync()
                if i >= warmup:
                    times.append(time.perf_counter() - start)
    finally:
        model.to(home).train(was_training)
    return statistics.median(times) / batch_size


def describe_device(device: str | torch.device = "cpu") -> str:
    """A short name of the device a latency was measured on (CPU threads, or the CUDA device name)."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu ({torch.get_num_threads()} threads)"


def measure_compute(
    model: nn.Module,
    image_size: Sequence[int],
    *,
    devices: Sequence[str] | None = None,
    batch_size: int = 1,
    repeats: int = 10,
    warmup: int = 3,
) -> dict:
    """FLOPs, parameters and latency of ``model`` at ``image_size``, as one flat row.

    ``devices`` defaults to ``("cpu",)`` plus ``"cuda"`` when available. Keys: ``gflops`` (forward, one
    image), ``params``, and per device ``latency_ms_<type>`` (ms per image at ``batch_size``) and
    ``device_<type>`` (:func:`describe_device`).
    """
    if devices is None:
        devices = ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)
    row: dict = {
        "gflops": forward_flops(model, image_size) / 1e9,
        "params": parameter_count(model),
        "latency_batch_size": batch_size,
    }
    for d in devices:
        kind = torch.device(d).type
        seconds = latency_per_image(
            model, image_size, d, batch_size=batch_size, repeats=repeats, warmup=warmup
        )
        row[f"latency_ms_{kind}"] = 1e3 * seconds
        row[f"device_{kind}"] = describe_device(d)
    return row


__all__ = ["forward_flops", "parameter_count", "latency_per_image", "describe_device", "measure_compute"]


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what :mod:`platform` knows: for the records that
    state where a measurement ran."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
