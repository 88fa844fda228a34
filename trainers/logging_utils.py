"""Per-run records: one JSON object per line (``metrics.jsonl``) and a PNG of the curves.

Each line is ``{"kind": "train" | "eval", "step": int, "epoch": int, ...numbers}``; a resumed run appends to
the same file after dropping the lines logged past the checkpoint it resumed from, so the file always
describes one uninterrupted history.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
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


def plot_curves(records: Iterable[dict], path: str | Path, title: str = "") -> Path:
    """Training loss (left) and evaluation metrics (right) against the step, saved as a PNG."""
    # A bare Figure renders without pyplot, so saving a curve never selects or switches the global backend
    # (a notebook that trains a model keeps showing its own figures inline).
    from matplotlib.figure import Figure

    records = list(records)
    train = [r for r in records if r.get("kind") == "train" and isinstance(r.get("loss"), (int, float))]
    evals = [r for r in records if r.get("kind") == "eval"]
    fig = Figure(figsize=(10, 3.6))
    ax_loss, ax_eval = fig.subplots(1, 2)
    if train:
        ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], lw=1.2)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("training loss")
    ax_loss.grid(alpha=0.3)
    # The dataset's own metric on the left axis, the mean error in input pixels on a twin right axis:
    # their scales differ by orders of magnitude (NME is a fraction, the error is in pixels).
    lines = []
    metric = next(
        (k for k in ("nme", "pckh", "ap") if any(isinstance(r.get(k), (int, float)) for r in evals)), None
    )
    if metric is not None:
        pts = [(r["step"], r[metric]) for r in evals if isinstance(r.get(metric), (int, float))]
        lines += ax_eval.plot(*zip(*pts), marker="o", lw=1.2, color="C0", label=metric)
        ax_eval.set_ylabel(metric)
    pts = [(r["step"], r["mean_error_px"]) for r in evals if isinstance(r.get("mean_error_px"), (int, float))]
    if pts:
        ax_px = ax_eval.twinx() if metric is not None else ax_eval
        lines += ax_px.plot(*zip(*pts), marker="s", lw=1.2, color="C1", label="mean error (input px)")
        ax_px.set_ylabel("mean error (input px)")
    ax_eval.set_xlabel("step")
    ax_eval.grid(alpha=0.3)
    if lines:
        ax_eval.legend(lines, [line.get_label() for line in lines])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path
