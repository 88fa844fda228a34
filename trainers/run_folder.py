"""The output folder of a run: one run at a time, no run overwritten by accident, no orphaned temp files.

:func:`open_run_folder` is called by the engine before anything is written there. It

* refuses a path that is a file, or a folder it cannot create or write, naming it;
* takes the folder's lock (``.lock``, holding the owner's pid and host): a second run into the same folder
  fails at once; a lock whose process is gone (a run killed with ``kill -9``) is taken over with a note;
* refuses to start over a folder that already holds a run (``config.json``, ``metrics.jsonl`` or
  ``last.pt``) unless the run resumes (from a checkpoint that is there) or the caller asked to overwrite;
* then removes the temporary files that killed atomic writes of this program left behind: only those whose
  name is one :func:`temp_path` gives to a file a run writes, and whose first bytes are what that file
  holds (safe: the lock says no other run is writing here; any other file is left alone).

Every file a run writes goes through :func:`temp_path` and ``os.replace`` (:func:`write_bytes_atomic`): the
temporary file is created exclusively (never through an existing file or link) and the rename replaces a
link at the target's name instead of writing through it.

:func:`config_differences` lists the settings that differ between the config stored in a checkpoint and the
one a resume is given; settings that cannot change the trained parameters (where to log, how often to
evaluate, the number of loader workers, the evaluation options) are not compared.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import socket
import sys
from pathlib import Path

LOCK_NAME = ".lock"
RUN_FILES = ("config.json", "metrics.jsonl", "last.pt")
# Every file a run writes into its folder, and how each starts (the temp file of a killed write is empty or
# holds a prefix of it): a zip archive (torch.save), a PNG, JSON text.
WRITTEN_FILES = {
    "last.pt": (b"PK\x03\x04",),
    "curves.png": (b"\x89PNG",),
    "config.json": (b"{",),
    "metrics.jsonl": (b"{",),
    "coco_results.json": (b"[",),
}
TEMP_SUFFIX = ".h3r.tmp"

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
    """One line on stderr: something the user should know that is not an error, under the name of the
    command that runs (``h3r-sweep``, ``h3r-train``; h3r-train from Python)."""
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    print(f"{program if program.startswith('h3r-') else 'h3r-train'}: note: {message}", file=sys.stderr)


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


def temp_path(path: Path) -> Path:
    """A fresh temporary name beside ``path``: ``.<name>.<pid>-<8 hex><TEMP_SUFFIX>``."""
    return path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{TEMP_SUFFIX}"


def write_bytes_atomic(path: Path, data: bytes, fsync: bool = False) -> Path:
    """Replace ``path`` by ``data`` through an exclusively created temp file and ``os.replace``: a kill
    leaves the old file or the new one, and a symlink at ``path`` is replaced, never written through."""
    path = Path(path)
    tmp = temp_path(path)
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _orphan_of(path: Path) -> bool:
    """Whether ``path`` is the temp file of a killed write of ours: its name (see :func:`temp_path`), a
    regular file (not a link), and empty or starting as the file it was to replace starts."""
    name = path.name
    if not (name.startswith(".") and name.endswith(TEMP_SUFFIX)) or path.is_symlink() or not path.is_file():
        return False
    target, _, token = name[1 : -len(TEMP_SUFFIX)].rpartition(".")
    pid, _, tag = token.partition("-")
    if target not in WRITTEN_FILES or not pid.isdigit() or len(tag) != 8:
        return False
    with path.open("rb") as f:
        head = f.read(8)
    return not head or any(head.startswith(m) or m.startswith(head) for m in WRITTEN_FILES[target])


def clean_orphans(folder: Path) -> list[Path]:
    """Delete the temp files of this program's atomic writes that were killed mid-way (:func:`_orphan_of`);
    returns what was removed. Other ``.tmp`` files, the user's, are left alone."""
    removed = [p for p in folder.glob(f".*{TEMP_SUFFIX}") if _orphan_of(p)]
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
        existing = [name for name in RUN_FILES if (folder / name).exists()]
        if existing and not resuming and not overwrite:
            resumable = "resume it with train.resume=auto, " if "last.pt" in existing else ""
            raise ValueError(
                f"output folder {folder} already holds a run ({', '.join(existing)}"
                f"{'' if resumable else '; no last.pt to resume from'}); {resumable}start over with "
                "--overwrite, or choose another train.out_dir"
            )
        removed = clean_orphans(folder)  # only once the run is accepted: a refused run changes nothing
        if removed:
            note(f"removed {len(removed)} temporary file(s) left by a killed write in {folder}")
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
    "temp_path",
    "write_bytes_atomic",
]
