"""Multi-process training with torchrun (DDP) and the seeded, resumable data order.

``torchrun --nproc_per_node N -m trainers.cli train CONFIG`` (or ``h3r-train``) sets ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`setup` reads them and joins the process group (``nccl`` on CUDA,
``gloo`` on CPU, which is what CI tests with two processes). Without them everything runs in one process
and the helpers below are no-ops.

Data order. Each epoch's order is ``randperm(n)`` of a generator seeded with ``(seed, epoch)``: it is a pure
function of the epoch, so a resumed run needs only the epoch and the number of batches already done, and
all processes agree on it without communicating. Each global batch is split into contiguous per-process
chunks, so N processes with a global batch B see exactly the samples one process with batch B would see.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from .seeding import mix_seed

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device_type: str) -> DistInfo:
    """Join the process group when launched by torchrun; returns this process's rank info."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    return DistInfo(rank, world_size, local_rank)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of ``value`` over processes (a copy; the input is left alone)."""
    if not info.enabled:
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / info.world_size


def gather_objects(obj: Any, info: DistInfo) -> list:
    """Every process's ``obj`` in rank order (on every process)."""
    if not info.enabled:
        return [obj]
    out: list = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def on_main(fn: Callable[[], T], info: DistInfo) -> T | None:
    """``fn()`` on rank 0 (``None`` elsewhere); a ``ValueError`` it raises is raised on every rank, same text.

    Why: a check that rank 0 alone makes (the run folder's) must stop every rank. If only rank 0 raised, the
    others would go on to their next collective operation and wait there for it: until the process group's
    timeout (30 minutes) under NCCL, or into an unrelated connection error under gloo.
    """
    result, error = None, None
    if info.is_main:
        try:
            result = fn()
        except ValueError as exc:
            error = str(exc)
    errors = gather_objects(error, info)
    first = next((e for e in errors if e is not None), None)
    if first is not None:
        raise ValueError(first)
    return result


def epoch_order(num_samples: int, seed: int, epoch: int) -> torch.Tensor:
    """The sample order of ``epoch``: a permutation that depends only on ``(seed, epoch)``."""
    g = torch.Generator().manual_seed(mix_seed(seed, epoch))
    return torch.randperm(num_samples, generator=g)


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """Seed of the per-step generator that draws this process's random targets (randomized rounding)."""
    return mix_seed(seed, step, 1_000 + rank)


def train_batches(
    num_samples: int, global_batch: int, seed: int, epoch: int, info: DistInfo, start: int = 0
) -> list[list[int]]:
    """This process's share of the full global batches of ``epoch``, from batch ``start`` on.

    The incomplete last batch is dropped so that every step sees ``global_batch`` samples and all processes
    run the same number of steps (DDP would hang otherwise).
    """
    if global_batch % info.world_size:
        raise ValueError(
            f"train.batch_size ({global_batch}) must be divisible by the number of processes ({info.world_size})"
        )
    steps = num_samples // global_batch
    if steps == 0:
        raise ValueError(
            f"train.batch_size ({global_batch}) is larger than the training set ({num_samples} samples)"
        )
    order = epoch_order(num_samples, seed, epoch)[: steps * global_batch].view(steps, global_batch)
    per = global_batch // info.world_size
    mine = order[start:, info.rank * per : (info.rank + 1) * per]
    return mine.tolist()


def eval_shard(num_samples: int, info: DistInfo) -> list[int]:
    """The sample indices this process evaluates (strided, so shards differ by at most one sample)."""
    return list(range(info.rank, num_samples, info.world_size))


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DDP wrapper (for saving and evaluation)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def local_device(requested: str, info: DistInfo | None = None) -> torch.device:
    """Resolve ``train.device``: ``"auto"`` = this process's CUDA device when present, else CPU."""
    info = info or DistInfo()
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(requested)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"train.device={requested!r} but CUDA is not available; use train.device=cpu")
        if device.index is None:
            device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    return device
