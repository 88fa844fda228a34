"""The output folder of a run: one run at a time, no run overwritten by accident, no orphaned temp files.

:func:`open_run_folder` is called by the engine before anything is written there. It

* refuses a path that is a file, or a folder it cannot create or write, naming it;
* takes the folder's lock (``.lock``, holding the owner's pid and host): a second run into the same folder
  fails at once; a lock whose process is gone (a run killed with ``kill -9``) is taken over with a note;
* removes the ``.*.tmp`` files that killed atomic writes left behind (safe: the lock says no other run is
  writing here);
* refuses to start over a folder that already holds a run (``config.json``, ``metrics.jsonl`` or
  ``last.pt``) unless the run resumes or the caller asked to overwrite.

:func:`config_differences` lists the settings that differ between the config stored in a checkpoint and the
one a resume is given; settings that cannot change the trained parameters (where to log, how often to
evaluate, the number of loader workers, the evaluation options) are not compared.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
from pathlib import Path

LOCK_NAME = ".lock"
RUN_FILES = ("config.json", "metrics.jsonl", "last.pt")

# Settings free to change between a run and its resume: none of them changes the trained parameters.
RESUME_FREE = {
    "train.out_dir",
    "train.resume",
    "train.progress",
    "train.log_every",
    "train.eval_every",
    "train.checkpoint_every",
    "train.device",
    "data.num_workers",
    "data.root",
}
RESUME_FREE_SECTIONS = {"eval"}


def note(message: str) -> None:
    """One line on stderr: something the user should know that is not an error."""
    print(f"h3r-train: note: {message}", file=sys.stderr)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    """The lock file of a run folder; :meth:`release` (or leaving the ``with`` block) removes it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def release(self) -> None:
        try:
            if self.path.read_text().split()[:1] == [str(os.getpid())]:
                self.path.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _owner(path: Path) -> tuple[int | None, str]:
    """(pid, host) written in a lock file; (None, "?") when it is empty or garbled."""
    fields = path.read_text().split()
    pid = int(fields[0]) if fields and fields[0].isdigit() else None
    return pid, fields[1] if len(fields) > 1 else "?"


def _in_use_message(folder: Path, path: Path, pid: int | None, host: str) -> str:
    return (
        f"output folder {folder} is in use by another run (pid {pid} on {host}, lock {path}); "
        "wait for it, use another train.out_dir, or delete the lock if that run is gone"
    )


def _alive(pid: int | None, host: str) -> bool:
    return pid is not None and (host != socket.gethostname() or _pid_alive(pid))


def refuse_if_in_use(folder: Path) -> None:
    """ValueError when a live run holds ``folder``'s lock (reads only; :func:`acquire_lock` takes it)."""
    path = folder / LOCK_NAME
    try:
        pid, host = _owner(path)
    except (FileNotFoundError, NotADirectoryError, PermissionError, IsADirectoryError):
        return
    if _alive(pid, host):
        raise ValueError(_in_use_message(folder, path, pid, host))


def acquire_lock(folder: Path) -> RunLock:
    """Create ``folder/.lock`` exclusively; a live owner -> ValueError, a dead one -> taken over (noted)."""
    path = folder / LOCK_NAME
    me = f"{os.getpid()} {socket.gethostname()}\n"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                pid, host = _owner(path)
            except FileNotFoundError:  # released between our open and read: try again
                continue
            if _alive(pid, host):
                raise ValueError(_in_use_message(folder, path, pid, host)) from None
            note(f"taking over the lock of a run that is no longer running (pid {pid}) in {folder}")
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(me)
        return RunLock(path)
    raise ValueError(f"could not take the lock {path} (another run keeps taking it)")


def clean_orphans(folder: Path) -> list[Path]:
    """Delete the ``.*.tmp`` files of atomic writes that were killed mid-way; returns what was removed."""
    removed = [p for p in folder.glob(".*.tmp") if p.is_file()]
    for p in removed:
        p.unlink(missing_ok=True)
    return removed


def open_run_folder(folder: Path, *, resuming: bool, overwrite: bool) -> RunLock:
    """Check and lock ``folder`` for a run (see the module docstring); nothing else is written."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"train.out_dir={folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = acquire_lock(folder)
    except PermissionError as exc:
        raise ValueError(
            f"cannot write to the output folder train.out_dir={folder}: {exc.strerror}"
        ) from None
    except NotADirectoryError:
        raise ValueError(f"train.out_dir={folder}: a parent of it is a file, not a folder") from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise
        raise ValueError(f"cannot use the output folder train.out_dir={folder}: {exc.strerror}") from None
    try:
        removed = clean_orphans(folder)
        if removed:
            note(f"removed {len(removed)} temporary file(s) left by a killed write in {folder}")
        existing = [name for name in RUN_FILES if (folder / name).exists()]
        if existing and not resuming and not overwrite:
            raise ValueError(
                f"output folder {folder} already holds a run ({', '.join(existing)}); resume it with "
                "train.resume=auto, start over with --overwrite, or choose another train.out_dir"
            )
    except BaseException:
        lock.release()
        raise
    return lock


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and prefix == "":
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def config_differences(stored: dict | str, current: dict) -> list[str]:
    """``"key: stored -> current"`` for every setting that matters to the trained parameters and differs."""
    if isinstance(stored, str):
        stored = json.loads(stored)
    a, b = _flatten(stored), _flatten(current)
    diffs = []
    for key in sorted(set(a) | set(b)):
        if key in RESUME_FREE or key.split(".")[0] in RESUME_FREE_SECTIONS:
            continue
        if a.get(key) != b.get(key):
            diffs.append(f"{key}: {json.dumps(a.get(key))} -> {json.dumps(b.get(key))}")
    return diffs


__all__ = [
    "RunLock",
    "acquire_lock",
    "clean_orphans",
    "config_differences",
    "note",
    "open_run_folder",
    "refuse_if_in_use",
]
