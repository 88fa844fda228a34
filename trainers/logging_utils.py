"""Per-run records: one JSON object per line (``metrics.jsonl``); the curves are drawn by
:func:`trainers.plotting.save_curves`.

Each line is ``{"kind": "train" | "eval", "step": int, "epoch": int, ...numbers}``; a resumed run appends to
the same file after dropping the lines logged past the checkpoint it resumed from, so the file always
describes one uninterrupted history.
"""

from __future__ import annotations

import json
import math
from pathlib import Path


class JsonlLogger:
    """Append records to ``path``; only the main process should hold one."""

    def __init__(self, path: str | Path, resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        elif self.path.exists():
            kept = [r for r in read_jsonl(self.path) if r.get("step", 0) <= resume_step]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))

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


def read_jsonl(path: str | Path) -> list[dict]:
    """All records of a metrics file; a malformed line fails with its line number."""
    records = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not a JSON line: {exc}") from None
    return records
