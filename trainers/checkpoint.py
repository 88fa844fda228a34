"""Atomic checkpoints and the random-number state needed for an exact resume.

Atomic: a checkpoint is written to a temporary file in the SAME directory, flushed and fsync'ed, then moved
over the old one with ``os.replace`` (atomic on POSIX and Windows when source and target share a file
system, which is why the temporary file must not live in /tmp). A crash at any moment leaves either the old
checkpoint or the new one, never a truncated file.

Safe to load: everything stored is tensors, numbers, strings, lists, tuples and dicts, so checkpoints are
read with ``torch.load(weights_only=True)``, which refuses to unpickle arbitrary objects.

Verified on load: a checkpoint stores a checksum of its contents (every tensor's bytes, every value), checked
by :func:`load`. A bit flipped inside a tensor leaves a file that unpickles fine and evaluates to a wrong
number; the checksum turns that into a refusal naming the file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .distributed import unwrap
from .run_folder import temp_path

PathLike = str | Path


def save_atomic(obj: Any, path: PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (temp file in the same dir, fsync, ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Serialised in memory first: torch.save writing to a full disk fails with a RuntimeError ("unexpected
    # pos ..." from its zip writer) that says nothing of the disk, while a plain write raises OSError(ENOSPC).
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    tmp_name = temp_path(path)
    try:
        with _create(tmp_name) as f:
            f.write(buffer.getbuffer())
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


def _create(path: Path):
    """A new file opened for binary writing, created exclusively: never written through an existing file or
    link at that name."""
    return os.fdopen(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644), "wb")


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
    if path.is_dir():
        raise ValueError(f"checkpoint {path} is a folder, not a file (h3r-train writes OUT_DIR/last.pt)")
    if not path.is_file():
        raise ValueError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" not in str(exc):  # not a pickle of objects: a damaged or foreign file
            raise ValueError(
                f"cannot read checkpoint {path}: not a torch checkpoint ({_first_line(exc)})"
            ) from None
        # torch's text suggests retrying with weights_only=False, which would run whatever the file holds.
        raise ValueError(
            f"refused checkpoint {path}: it holds objects other than tensors, numbers and strings, and "
            f"loading those could run code ({_first_line(exc)})"
        ) from None
    except Exception as exc:  # corrupted, truncated or not a torch file
        raise ValueError(f"cannot read checkpoint {path}: {type(exc).__name__}: {_first_line(exc)}") from None
    verify_checksum(state, path)
    return state


# format 1: no checksum (written before checksums existed, still accepted); format 2: "checksum" verified.
FORMAT = 2
CHECKSUM_KEY = "checksum"


def contents_digest(state: dict) -> str:
    """A BLAKE2b digest (64 hex characters) of every entry of ``state`` but its checksum.

    It reads each tensor's dtype, shape and bytes (on the CPU) and each other value's type and ``repr``, in
    the dicts' own order, which ``torch.save`` and ``torch.load`` keep; the same contents give the same
    digest on any device.
    """
    digest = hashlib.blake2b(digest_size=32)
    _feed(digest, {k: v for k, v in state.items() if k != CHECKSUM_KEY})
    return digest.hexdigest()


def _feed(digest, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        data = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"T{data.dtype}{tuple(value.shape)}:".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}:".encode())
        for key, item in value.items():
            _feed(digest, key)
            _feed(digest, item)
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__[0]}{len(value)}:".encode())
        for item in value:
            _feed(digest, item)
    else:  # str, int, float, bool, None: repr is exact (floats round-trip)
        digest.update(f"{type(value).__name__}:{value!r};".encode())


def verify_checksum(state: Any, path: PathLike) -> None:
    """Raise ``ValueError`` naming ``path`` when ``state`` does not match its stored checksum, or when a
    checkpoint of a format that has one lost it. Older checkpoints (format 1, no checksum) pass."""
    if not isinstance(state, dict):
        return
    stored = state.get(CHECKSUM_KEY)
    if stored is None:
        if isinstance(state.get("format"), int) and state["format"] >= 2:
            raise ValueError(
                f"checkpoint {path} is damaged: its format stores a checksum and this one has none"
            )
        return
    if stored != contents_digest(state):
        raise ValueError(
            f"checkpoint {path} is damaged: its contents do not match the checksum stored with them (bytes "
            "changed on disk or in a copy); use another checkpoint or train again"
        )


def _first_line(exc: BaseException) -> str:
    """What went wrong in one line, without torch's advice on how to load the file unsafely.

    For a refused pickle that is the name of the refused object ("Unsupported global: GLOBAL x.Y ...",
    cut before torch's suggestion to allow-list it); otherwise the first line that gives no advice.
    """
    text = str(exc)
    if "Unsupported global:" in text:
        return "Unsupported global:" + text.split("Unsupported global:", 1)[1].split(" was not")[0]
    advice = ("weights_only", "can still be loaded", "trusted source", "safe_globals")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not any(a in line for a in advice)]
    return lines[0] if lines else type(exc).__name__


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
    RNG state. The config goes along as JSON text (a resume and an evaluation compare it with theirs), and a
    checksum of all of it (:func:`contents_digest`), verified by :func:`load`."""
    state = {
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "step": int(step),
        "rng": rng_state(),
        "config": config.to_json(),
        "format": FORMAT,
        # Bit-for-bit resume holds for a fixed thread count and torch version; a resume warns when they differ.
        "threads": torch.get_num_threads(),
        "torch_version": str(torch.__version__),
    }
    state[CHECKSUM_KEY] = contents_digest(state)
    return save_atomic(state, path)


# The settings a checkpoint's stored config must share with the config that reads it (h3r-eval,
# h3r-predict): what fixes the network's shape and what the codec reads from its maps. Weights alone cannot
# tell two codecs, two strides of the same network or two pixel conventions apart.
MATCHED_SETTINGS = (
    ("model", "name"),
    ("model", "output_stride"),
    ("model", "head"),
    ("codec", "name"),
    ("codec", "options"),
    ("data", "name"),
    ("data", "input_size"),
)


def check_settings(state: dict, config, path: PathLike, override: str = "") -> None:
    """Raise ``ValueError`` when the config stored in checkpoint ``state`` differs from ``config`` (a
    :class:`~trainers.config.Config`) in one of :data:`MATCHED_SETTINGS`; ``override`` is how the command
    line sets a key (``"--set "`` for h3r-predict), for the message. A checkpoint without a stored config
    (written by hand) is checked by its weights' shapes only."""
    try:
        stored = json.loads(state.get("config") or "{}")
    except (TypeError, ValueError):
        stored = {}
    stored = stored if isinstance(stored, dict) else {}
    given = config.to_dict()
    for section, key in MATCHED_SETTINGS:
        if not isinstance(stored.get(section), dict) or key not in stored[section]:
            continue
        theirs, ours = stored[section][key], given[section][key]
        if json.dumps(theirs, sort_keys=True) != json.dumps(ours, sort_keys=True):
            raise ValueError(
                f"checkpoint {path} was trained with {section}.{key}={json.dumps(theirs)}, the config has "
                f"{json.dumps(ours)} (pass the training config, or {override}{section}.{key}=...)"
            )


def load_weights(model: torch.nn.Module, path: PathLike, config=None) -> dict:
    """Load the model parameters of a checkpoint (``weights_only=True``); returns the checkpoint dict.

    With ``config`` given, the checkpoint's stored settings are checked against it first
    (:func:`check_settings`): a model evaluated under another stride, codec or convention would load
    and report a wrong number.
    """
    state = load(path)
    if not isinstance(state, dict) or "model" not in state:
        keys = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"{path} is not an h3r-train checkpoint (no 'model' entry; keys: {keys})")
    if config is not None:
        check_settings(state, config, path)
    problems = state_dict_mismatch(unwrap(model).state_dict(), state["model"])
    if problems:
        raise ValueError(f"checkpoint {path} does not fit this model ({problems}); same config as training?")
    unwrap(model).load_state_dict(state["model"])
    return state


def state_dict_mismatch(expected: dict, stored: dict, shown: int = 3) -> str:
    """A one-line account of missing keys, unexpected keys and shape mismatches ("" when they fit)."""
    if not isinstance(stored, dict):
        return f"'model' is a {type(stored).__name__}, not a state dict"
    missing = [k for k in expected if k not in stored]
    unexpected = [k for k in stored if k not in expected]
    shapes = [
        f"{k} {tuple(stored[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in stored and hasattr(stored[k], "shape") and tuple(stored[k].shape) != tuple(v.shape)
    ]

    def part(label: str, items: list) -> str:
        more = f" and {len(items) - shown} more" if len(items) > shown else ""
        return f"{len(items)} {label}: {', '.join(items[:shown])}{more}"

    return "; ".join(
        part(label, items)
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shapes differ", shapes))
        if items
    )


def environment_differences(state: dict) -> list[str]:
    """What differs from the thread count and torch version the checkpoint was written under."""
    diffs = []
    if "threads" in state and int(state["threads"]) != torch.get_num_threads():
        diffs.append(f"torch threads {state['threads']} -> {torch.get_num_threads()}")
    if "torch_version" in state and state["torch_version"] != str(torch.__version__):
        diffs.append(f"torch {state['torch_version']} -> {torch.__version__}")
    return diffs
