"""Devices, mixed precision and batches: the plumbing shared by training and evaluation."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch


def amp_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """The autocast dtype: bfloat16 where the GPU supports it (no loss scaling needed), else float16;
    None (no autocast) on CPU or when disabled."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def get_batch(dataset, indices: Sequence[int]) -> dict:
    """Stack the samples ``indices``. Uses ``dataset.batch`` when the dataset has one (the synthetic set
    renders a whole batch in one matmul), else collates ``dataset[i]`` items."""
    if hasattr(dataset, "batch"):
        return dataset.batch(list(indices))
    return torch.utils.data.default_collate([dataset[int(i)] for i in indices])


def batches(dataset, index_lists: Sequence[Sequence[int]], num_workers: int, seed: int):
    """Iterate over the batches ``index_lists`` (in that order), in worker processes when asked.

    Each item of a real dataset is a pure function of its index and the (seed, epoch) generator handed to
    the DataLoader; with ``num_workers=0`` random augmentation draws from the global RNG, whose state is
    checkpointed, so a resumed run repeats it exactly.
    """
    if num_workers == 0 or hasattr(dataset, "batch"):
        for idx in index_lists:
            yield get_batch(dataset, idx)
        return
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=index_lists,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=False,
    )
    yield from loader


def to_device(batch: dict, device: torch.device, channels_last: bool) -> dict:
    """Move the tensors of a batch; images in channels_last when asked (faster convolutions on CUDA)."""
    out = dict(batch)
    non_blocking = device.type == "cuda"
    for key in ("image", "keypoints", "visible"):
        out[key] = batch[key].to(device, non_blocking=non_blocking)
    if channels_last:
        out["image"] = out["image"].contiguous(memory_format=torch.channels_last)
    return out


def one_thread_worker() -> None:
    """Initializer of the worker processes of a sweep or a study: one torch thread per training, so that the
    trainings, not their operations, run in parallel."""
    torch.set_num_threads(1)
