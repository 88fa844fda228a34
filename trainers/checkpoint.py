"""Atomic checkpoints and the random-number state needed for an exact resume.

Atomic: a checkpoint is written to a temporary file in the SAME directory, flushed and fsync'ed, then moved
over the old one with ``os.replace`` (atomic on POSIX and Windows when source and target share a file
system, which is why the temporary file must not live in /tmp). A crash at any moment leaves either the old
checkpoint or the new one, never a truncated file.

Safe to load: everything stored is tensors, numbers, strings, lists, tuples and dicts, so checkpoints are
read with ``torch.load(weights_only=True)``, which refuses to unpickle arbitrary objects.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .distributed import unwrap

PathLike = str | Path


def save_atomic(obj: Any, path: PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (temp file in the same dir, fsync, ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        # Whatever went wrong (disk full, KeyboardInterrupt), the previous checkpoint at ``path`` is untouched.
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)  # make the rename itself durable
    return path


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load(path: PathLike, map_location: str | torch.device | None = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; a missing or unreadable file gets a clear error."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupted, truncated or not a torch file
        raise ValueError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}") from exc


# -- random-number state ---------------------------------------------------------------------------------
def rng_state() -> dict:
    """The state of every global RNG (python, numpy, torch CPU, all CUDA devices) as weights_only-safe data."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)
    state = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [
            np_name,
            torch.from_numpy(np_keys.astype(np.int64)),
            int(np_pos),
            int(np_has_gauss),
            float(np_gauss),
        ],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` captured."""
    py_version, py_state, py_gauss = state["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state((np_name, np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- training checkpoints ----------------------------------------------------------------------------------
def save_checkpoint(
    path: PathLike, *, model, optimizer, scheduler, scaler, step: int, config, best: dict | None = None
) -> Path:
    """Everything an exact resume needs: parameters, optimizer/scheduler/scaler state, the step and every
    RNG state. The config goes along as JSON text, for the record (a resume uses the config it is given)."""
    state = {
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "step": int(step),
        "rng": rng_state(),
        "config": config.to_json(),
        "format": 1,
    }
    return save_atomic(state, path)


def load_weights(model: torch.nn.Module, path: PathLike) -> dict:
    """Load the model parameters of a checkpoint (``weights_only=True``); returns the checkpoint dict."""
    state = load(path)
    if "model" not in state:
        raise ValueError(f"{path} is not an h3r-train checkpoint (no 'model' entry; keys: {sorted(state)})")
    unwrap(model).load_state_dict(state["model"])
    return state
