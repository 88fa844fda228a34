"""Atomic checkpoints, safe loading and the RNG state of an exact resume (trainers.checkpoint)."""

from __future__ import annotations

import errno
import os
import random

import numpy as np
import pytest
import torch

from trainers import checkpoint as ckpt


def _state(value: float) -> dict:
    return {"model": {"w": torch.full((3, 3), value)}, "step": int(value), "note": "h3r"}


def test_save_and_load_round_trip(tmp_path):
    path = ckpt.save_atomic(_state(1.0), tmp_path / "sub" / "last.pt")
    loaded = ckpt.load(path)
    assert torch.equal(loaded["model"]["w"], torch.full((3, 3), 1.0))
    assert loaded["step"] == 1 and loaded["note"] == "h3r"
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]  # no temp file left behind


def test_crash_mid_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    ckpt.save_atomic(_state(1.0), path)
    before = path.read_bytes()

    def dying_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")  # some bytes reach the disk, then the process "dies"
        raise KeyboardInterrupt("simulated kill during torch.save")

    monkeypatch.setattr(ckpt.torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_atomic(_state(2.0), path)
    assert path.read_bytes() == before
    assert ckpt.load(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_crash_before_rename_keeps_previous_checkpoint(tmp_path, monkeypatch):
    """A kill between the fsync and the rename leaves the old file; the new data only in a temp file."""
    path = tmp_path / "last.pt"
    ckpt.save_atomic(_state(1.0), path)

    def no_replace(src, dst):
        raise OSError("simulated power cut before os.replace")

    monkeypatch.setattr(ckpt.os, "replace", no_replace)
    with pytest.raises(OSError, match="power cut"):
        ckpt.save_atomic(_state(2.0), path)
    assert ckpt.load(path)["step"] == 1


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="checkpoint not found"):
        ckpt.load(tmp_path / "missing.pt")
    truncated = tmp_path / "truncated.pt"
    ckpt.save_atomic(_state(1.0), truncated)
    truncated.write_bytes(truncated.read_bytes()[:40])
    with pytest.raises(ValueError, match="truncated.pt"):
        ckpt.load(truncated)


class _Payload:  # an arbitrary object: a weights_only load must refuse to unpickle it
    def __reduce__(self):
        return (os.getcwd, ())


def test_load_is_weights_only(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": _Payload()}, path)
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        ckpt.load(path)


def test_rng_state_round_trip_through_a_checkpoint(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    torch.rand(5), np.random.rand(5), random.random()
    np.random.randn()  # leaves a cached gaussian in numpy's legacy state
    path = ckpt.save_atomic({"rng": ckpt.rng_state()}, tmp_path / "rng.pt")
    expected = (random.random(), np.random.randn(3).tolist(), torch.rand(4).tolist())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    ckpt.set_rng_state(ckpt.load(path)["rng"])
    assert (random.random(), np.random.randn(3).tolist(), torch.rand(4).tolist()) == expected


# -- the checksum (issue 24, point 5) ----------------------------------------------------------------------
def _training_checkpoint(path) -> dict:
    """A real ``save_checkpoint`` of a layer after one Adam step (so the optimizer holds tensors)."""
    from trainers.config import load_config

    torch.manual_seed(0)
    model = torch.nn.Linear(8, 8)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.ones(2, 8)).sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    ckpt.save_checkpoint(
        path,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        step=1,
        config=load_config(),
    )
    return ckpt.load(path)


def _flip_inside(path, tensor: torch.Tensor) -> None:
    data = bytearray(path.read_bytes())
    at = data.find(tensor.numpy().tobytes())
    assert at > 0  # the tensor's bytes are stored as they are (zip entries are not compressed)
    data[at + 6] ^= 0x08
    path.write_bytes(data)


@pytest.mark.parametrize("part", ["model", "optimizer"])
def test_a_flipped_bit_inside_a_tensor_is_refused(tmp_path, part):
    path = tmp_path / "last.pt"
    state = _training_checkpoint(path)
    assert state["format"] == 2 and len(state["checksum"]) == 64
    tensor = state["model"]["weight"] if part == "model" else state["optimizer"]["state"][0]["exp_avg"]
    _flip_inside(path, tensor)
    assert torch.load(path, weights_only=True)["step"] == 1  # the damage is invisible to torch.load
    with pytest.raises(ValueError, match=r"last.pt is damaged: its contents do not match the checksum"):
        ckpt.load(path)


def test_a_checksum_lost_or_absent(tmp_path):
    state = _training_checkpoint(tmp_path / "last.pt")
    torch.save({k: v for k, v in state.items() if k != "checksum"}, tmp_path / "lost.pt")
    with pytest.raises(
        ValueError, match="lost.pt is damaged: its format stores a checksum and this one has none"
    ):
        ckpt.load(tmp_path / "lost.pt")
    older = {k: v for k, v in state.items() if k != "checksum"} | {"format": 1}  # written before checksums
    torch.save(older, tmp_path / "older.pt")
    assert ckpt.load(tmp_path / "older.pt")["step"] == 1


def test_the_digest_reads_every_value_and_is_device_independent():
    state = {"a": torch.arange(6.0).reshape(2, 3), "b": [1, 2.5, "x", None, (True,)], "checksum": "ignored"}
    digest = ckpt.contents_digest(state)
    assert digest == ckpt.contents_digest(dict(state, checksum="other"))
    assert digest == ckpt.contents_digest(dict(state, a=state["a"].t().contiguous().t()))  # layout only
    for changed in (dict(state, a=state["a"].reshape(3, 2)), dict(state, b=[1, 2.5, "x", None, (False,)])):
        assert ckpt.contents_digest(changed) != digest
    assert ckpt.contents_digest(dict(state, a=state["a"].bfloat16())) != digest  # numpy has no bfloat16


# -- a full disk inside torch.save (issue 24, point 11) -----------------------------------------------------
class _NearlyFullDisk:
    """A checkpoint's temp file on a disk with a few KB left: small writes land, a large one fails with
    ENOSPC (the file's own close then succeeds, as on a real disk)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, data) -> int:
        size = memoryview(data).nbytes
        if size > 4096:
            raise OSError(errno.ENOSPC, "No space left on device")
        return size

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def full_disk_for_checkpoints(monkeypatch) -> None:
    """Open every checkpoint temp file on a :class:`_NearlyFullDisk`."""
    real = os.fdopen

    def fdopen(fd, mode="r", *args, **kwargs):
        if "w" in mode and ".last.pt." in os.readlink(f"/proc/self/fd/{fd}"):
            return _NearlyFullDisk(fd)
        return real(fd, mode, *args, **kwargs)

    monkeypatch.setattr(os, "fdopen", fdopen)


@pytest.mark.skipif(not os.path.exists("/proc/self/fd"), reason="needs /proc (Linux)")
def test_a_full_disk_during_the_write_is_oserror_enospc(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    ckpt.save_atomic(_state(1.0), path)
    before = path.read_bytes()
    full_disk_for_checkpoints(monkeypatch)
    big = {"model": {"w": torch.zeros(100_000)}}  # one write of 400 KB: more than the disk has left
    with pytest.raises(OSError) as info:  # inside torch.save it was RuntimeError("... unexpected pos ...")
        ckpt.save_atomic(big, path)
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
