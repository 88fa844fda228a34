"""Per-run records: one JSON object per line (``metrics.jsonl``); the curves are drawn by
:func:`trainers.plotting.save_curves`.

Each line is ``{"kind": "train" | "eval", "step": int, "epoch": int, ...numbers}``; a resumed run appends to
the same file after dropping the lines logged past the checkpoint it resumed from, so the file always
describes one uninterrupted history. A last line torn by a kill during its write is one of those lines (it
was logged after the checkpoint, or the checkpoint would have been written after it): a resume drops it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from .run_folder import write_bytes_atomic


class JsonlLogger:
    """Append records to ``path``; only the main process should hold one."""

    def __init__(self, path: str | Path, resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if resume_step is not None and self.path.is_file():
            kept = [r for r in read_jsonl(self.path, drop_torn_tail=True) if r.get("step", 0) <= resume_step]
        # Always rewritten (a resume into a new folder starts an empty log): the appends below then go to a
        # regular file of ours, never through a link left at this name.
        write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def log(self, record: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(_plain(record)) + "\n")


def _plain(record: dict) -> dict:
    """Numbers as Python floats/ints (tensors and numpy scalars are not JSON); NaN/inf as strings."""
    out = {}
    for key, value in record.items():
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)
        out[key] = value
    return out


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` through a temporary file in the same folder (never half-written, never
    written through a link: :func:`trainers.run_folder.write_bytes_atomic`)."""
    write_bytes_atomic(Path(path), text.encode("utf-8"))


def read_jsonl(path: str | Path, drop_torn_tail: bool = False) -> list[dict]:
    """All records of a metrics file; a malformed line fails with its line number.

    ``drop_torn_tail``: a malformed LAST line (a write cut short by a kill) is dropped instead; a malformed
    line anywhere else still fails.
    """
    records = []
    lines = Path(path).read_text().splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if drop_torn_tail and number == len(lines):
                break
            raise ValueError(f"{path}:{number}: not a JSON line: {exc}") from None
    return records
