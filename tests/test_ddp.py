"""Multi-process training (DDP) on CPU with the gloo backend and 2 processes, as CI runs it.

The two spawned processes get the environment torchrun gives its workers (RANK, LOCAL_RANK, WORLD_SIZE,
MASTER_ADDR, MASTER_PORT) and run, in the same processes to pay the start-up once: (1) ``engine.train`` with a
BatchNorm-free net, whose parameters must match 1 process with the same global batch (the data shards
partition each global batch and DDP averages the gradients), then (2) the command ``python -m trainers.cli
train synthetic ...`` exactly as ``torchrun --nproc_per_node 2 -m trainers.cli train ...`` would run it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from trainers import distributed as dist_utils
from trainers import engine
from trainers.config import load_config
from trainers.run_folder import LOCK_NAME

OPTIONS = [
    "data.input_size=[32, 32]",
    "data.options={num_train: 64, num_eval: 10, num_keypoints: 6}",
    "train.batch_size=16",
    "train.max_steps=4",
    "train.progress=false",
    "train.device=cpu",
    "train.log_every=1",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _net(num_keypoints: int) -> nn.Module:
    # No BatchNorm: per-process batch statistics would make 2 x B/2 differ from 1 x B by design.
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, num_keypoints, 3, stride=2, padding=1),
    )


def _config(out_dir):
    # gaussian targets are deterministic, so both runs see the same targets (randomized rounding draws
    # per process on purpose)
    return load_config("synthetic", [*OPTIONS, "codec.name=gaussian", f"train.out_dir={out_dir}"])


def _as_torchrun_worker(rank: int, world_size: int, port: int) -> None:
    """The environment torchrun gives worker ``rank`` of ``world_size``, and one torch thread."""
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        OMP_NUM_THREADS="1",
    )
    torch.set_num_threads(1)


def _worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    _as_torchrun_worker(rank, world_size, port)
    result = engine.train(_config(out_dir), model=_net(6))
    params = {k: v.detach().clone() for k, v in result.model.state_dict().items()}
    torch.save({"params": params, "final": result.final}, Path(out_dir) / f"rank{rank}.pt")
    from trainers import cli

    code = cli.main(["train", "synthetic", *OPTIONS, f"train.out_dir={Path(out_dir) / 'cli'}"])
    assert code == 0, f"rank {rank}: exit status {code}"
    assert not torch.distributed.is_initialized()  # the CLI leaves the process group at exit


@pytest.mark.slow
def test_two_processes_match_one_process_and_run_the_cli(tmp_path):
    # (1) DDP == one process with the same global batch
    single = engine.train(_config(tmp_path / "single"), model=_net(6))
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path / "ddp")), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / "ddp" / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for key, value in single.model.state_dict().items():
        assert torch.equal(ranks[0]["params"][key], ranks[1]["params"][key]), key  # DDP keeps ranks in sync
        torch.testing.assert_close(ranks[0]["params"][key], value, atol=2e-5, rtol=1e-4)
    # evaluation gathers both shards: every sample once, the same metrics as one process
    assert ranks[0]["final"]["num_samples"] == ranks[1]["final"]["num_samples"] == 10
    assert ranks[0]["final"]["nme"] == pytest.approx(single.final["nme"], rel=1e-3)
    # (2) the CLI run: logged once (rank 0 only), evaluated on both shards, checkpointed
    cli_out = tmp_path / "ddp" / "cli"
    records = [json.loads(line) for line in (cli_out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4]
    assert [r for r in records if r["kind"] == "eval"][-1]["num_samples"] == 10
    assert torch.load(cli_out / "last.pt", weights_only=True)["step"] == 4


def _busy_folder_worker(rank: int, world_size: int, port: int, out_dir: str, codes: str) -> None:
    _as_torchrun_worker(rank, world_size, port)
    from trainers import cli

    code = cli.main(["train", "synthetic", *OPTIONS, f"train.out_dir={out_dir}"])
    (Path(codes) / f"rank{rank}").write_text(str(code))


@pytest.mark.slow
def test_a_run_folder_in_use_stops_every_process_with_the_same_line(tmp_path, capfd):
    # Rank 0 alone checks the folder; rank 1 must stop too, not wait for rank 0 at its next collective.
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / LOCK_NAME).write_text(f"{os.getpid()} {socket.gethostname()}\n")  # held by this live process
    context = mp.start_processes(
        _busy_folder_worker,
        args=(2, _free_port(), str(busy), str(tmp_path)),
        nprocs=2,
        join=False,
        start_method="spawn",
    )
    deadline = time.monotonic() + 120
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("a process still ran 120 s after the other stopped on the busy folder")
    assert [(tmp_path / f"rank{r}").read_text() for r in range(2)] == ["2", "2"]
    err = capfd.readouterr().err
    assert err.count("is in use by another run") == 2 and "Traceback" not in err
    assert sorted(p.name for p in busy.iterdir()) == [LOCK_NAME]  # nothing written into the busy folder


def test_data_shards_partition_each_global_batch():
    one = dist_utils.train_batches(50, 8, seed=3, epoch=2, info=dist_utils.DistInfo(0, 1, 0))
    two = [
        dist_utils.train_batches(50, 8, seed=3, epoch=2, info=dist_utils.DistInfo(r, 2, r)) for r in range(2)
    ]
    assert len(one) == 6 and all(len(b) == 8 for b in one)  # 50 // 8 full batches; the rest is dropped
    for step, batch in enumerate(one):
        assert two[0][step] + two[1][step] == batch
    assert len(set(sum(one, []))) == 48
    resumed = dist_utils.train_batches(50, 8, seed=3, epoch=2, info=dist_utils.DistInfo(0, 1, 0), start=4)
    assert resumed == one[4:]
    assert dist_utils.train_batches(50, 8, seed=3, epoch=3, info=dist_utils.DistInfo(0, 1, 0)) != one
    with pytest.raises(ValueError, match="divisible by the number of processes"):
        dist_utils.train_batches(50, 9, seed=0, epoch=0, info=dist_utils.DistInfo(0, 2, 0))
