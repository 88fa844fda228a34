"""Statistics and figures of the resolution sweep, as pure functions (no I/O, no pyplot state).

* :func:`mean_interval` / :func:`summarize`: the mean over seeds and its 95 % confidence interval from
  Student's t distribution with ``n - 1`` degrees of freedom (``mean +- t * sd / sqrt(n)``, ``sd`` the
  sample standard deviation): the seeds are few (3) and their spread is estimated from them, so a normal
  quantile (1.96) would understate the interval (t = 4.30 for n = 3).
* :func:`conditional_error`: the signed and absolute error per axis, in heatmap CELLS, binned by the
  fractional part of the true position in cells (cell centres at integers, so fraction 0.5 is a cell
  border). A pull towards the nearest cell centre averages to zero over uniformly spread fractions; here
  it shows as negative signed error below 0.5 and positive above.
* :func:`bound_ratio`: the RMS Euclidean error against the RMS Cramer-Rao bound of the same keypoints
  (:mod:`trainers.bound`), both root-mean-square so that their ratio compares like with like (the bound
  is on the mean squared error).
* ``figure_*``: :class:`matplotlib.figure.Figure` objects built directly (never pyplot), to be saved by
  the caller with ``fig.savefig(path)``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import torch
from matplotlib.figure import Figure
from scipy import stats
from torch import Tensor

from h3r_theory.conventions import input_to_heatmap


def mean_interval(values: Iterable[float], confidence: float = 0.95) -> dict:
    """Mean and Student-t confidence interval of independent values (one per seed).

    Returns ``{"mean", "low", "high", "half_width", "sd", "n"}``; with a single value the interval is
    undefined (``nan``), not zero.
    """
    v = [float(x) for x in values]
    if not v:
        raise ValueError("mean_interval needs at least one value")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    n = len(v)
    mean = math.fsum(v) / n
    if n == 1:
        return {
            "mean": mean,
            "low": math.nan,
            "high": math.nan,
            "half_width": math.nan,
            "sd": math.nan,
            "n": 1,
        }
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in v) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2.0, n - 1)) * sd / math.sqrt(n)
    return {"mean": mean, "low": mean - half, "high": mean + half, "half_width": half, "sd": sd, "n": n}


def summarize(
    rows: Iterable[Mapping], keys: Sequence[str] = ("codec", "stride"), value: str = "mean_error_px", **kw
) -> list[dict]:
    """Group ``rows`` (one per run, e.g. per seed) by ``keys`` and give :func:`mean_interval` of ``value``.

    Each output row holds the keys, then ``mean, low, high, half_width, sd, n``; groups keep the order
    of their first row. Extra keyword arguments go to :func:`mean_interval`.
    """
    groups: dict[tuple, list[float]] = defaultdict(list)
    for row in rows:
        missing = [k for k in (*keys, value) if k not in row]
        if missing:
            raise ValueError(f"summarize: row {dict(row)!r} has no {missing}")
        groups[tuple(row[k] for k in keys)].append(row[value])
    return [{**dict(zip(keys, group)), **mean_interval(vals, **kw)} for group, vals in groups.items()]


# ---------------------------------------------------------------------------------------------------------
# Errors against the truth


def conditional_error(
    pred: Tensor,
    gt: Tensor,
    visible: Tensor,
    input_size: Sequence[int],
    heatmap_size: Sequence[int],
    convention: str = "pixel_center",
    bins: int = 10,
) -> dict:
    """Signed and absolute error per axis (cells) conditional on the true fractional cell position.

    ``pred``, ``gt`` (N, K, 2) input pixels; ``visible`` (N, K), only labelled keypoints count. Both are
    mapped to heatmap cells (:func:`h3r_theory.conventions.input_to_heatmap`), the fraction of the truth
    is ``u - floor(u)`` in [0, 1), split in ``bins`` equal bins. Returns tensors (float64):
    ``edges`` (bins + 1,), ``signed``, ``absolute`` (2, bins) mean ``pred - gt`` and ``|pred - gt|`` in
    cells per axis (x then y; ``nan`` for an empty bin) and ``count`` (2, bins) keypoints per bin.
    """
    if not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be a positive int, got {bins!r}")
    if pred.shape != gt.shape or pred.shape[-1] != 2 or visible.shape != gt.shape[:-1]:
        raise ValueError(
            f"pred and gt must be (N, K, 2) and visible (N, K); got {tuple(pred.shape)}, {tuple(gt.shape)}, "
            f"{tuple(visible.shape)}"
        )
    uv_pred = input_to_heatmap(pred.to(torch.float64), input_size, heatmap_size, convention)
    uv_gt = input_to_heatmap(gt.to(torch.float64), input_size, heatmap_size, convention)
    labelled = visible > 0
    err = (uv_pred - uv_gt)[labelled]  # (M, 2)
    frac = (uv_gt - torch.floor(uv_gt))[labelled]
    which = (frac * bins).long().clamp(0, bins - 1)  # (M, 2)
    signed = torch.full((2, bins), math.nan, dtype=torch.float64)
    absolute = signed.clone()
    count = torch.zeros(2, bins, dtype=torch.long)
    for axis in (0, 1):
        n = torch.bincount(which[:, axis], minlength=bins)
        s = torch.bincount(which[:, axis], weights=err[:, axis], minlength=bins)
        a = torch.bincount(which[:, axis], weights=err[:, axis].abs(), minlength=bins)
        count[axis] = n
        has = n > 0
        signed[axis, has] = s[has] / n[has]
        absolute[axis, has] = a[has] / n[has]
    edges = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64)
    return {"edges": edges, "signed": signed, "absolute": absolute, "count": count}


def conditional_error_rows(table: Mapping, **labels) -> list[dict]:
    """Flat rows (one per axis and bin) of a :func:`conditional_error` result, for a CSV or markdown table;
    ``labels`` (e.g. ``codec=..., stride=...``) are copied into every row."""
    edges = table["edges"].tolist()
    rows = []
    for axis, name in enumerate("xy"):
        for b in range(len(edges) - 1):
            rows.append(
                {
                    **labels,
                    "axis": name,
                    "fraction_low": edges[b],
                    "fraction_high": edges[b + 1],
                    "signed_error_cells": float(table["signed"][axis, b]),
                    "abs_error_cells": float(table["absolute"][axis, b]),
                    "count": int(table["count"][axis, b]),
                }
            )
    return rows


def bound_ratio(pred: Tensor, gt: Tensor, visible: Tensor, bound: Tensor) -> dict:
    """Error as a multiple of the Cramer-Rao bound over the labelled keypoints.

    ``pred``, ``gt`` (N, K, 2) px; ``visible`` (N, K); ``bound`` (N, K) the per-keypoint RMS 2-D bound px
    (:func:`trainers.bound.dataset_bound`). Returns ``rms_error_px`` = ``sqrt(mean |e|^2)``, ``rms_bound_px`` =
    sqrt(mean bound^2), their ratio ``error_over_bound`` (>= 1 for any unbiased estimator, in expectation),
    and ``mean_error_px`` / ``mean_bound_px`` for reference.
    """
    if bound.shape != visible.shape:
        raise ValueError(
            f"bound must be (N, K) like visible {tuple(visible.shape)}, got {tuple(bound.shape)}"
        )
    labelled = visible > 0
    if not labelled.any():
        raise ValueError("bound_ratio: no labelled keypoint")
    e2 = (pred.to(torch.float64) - gt.to(torch.float64)).pow(2).sum(-1)[labelled]
    b = bound.to(torch.float64)[labelled]
    rms_error, rms_bound = e2.mean().sqrt().item(), b.pow(2).mean().sqrt().item()
    return {
        "rms_error_px": rms_error,
        "rms_bound_px": rms_bound,
        "error_over_bound": rms_error / rms_bound,
        "mean_error_px": e2.sqrt().mean().item(),
        "mean_bound_px": b.mean().item(),
    }


# ---------------------------------------------------------------------------------------------------------
# Figures


def vanilla_floor(stride: float) -> float:
    """Mean 2-D error of rounding a uniformly placed keypoint to its cell, input px:
    ``(sqrt(2) + asinh(1)) / 6 x stride`` (exact derivation in :mod:`h3r_theory.theory.quantization`)."""
    from h3r_theory.theory.quantization import mean_quantization_error

    return float(mean_quantization_error("round", 2)) * float(stride)


def _by(rows: Iterable[Mapping], key: str) -> dict[str, list[Mapping]]:
    out: dict[str, list[Mapping]] = defaultdict(list)
    for row in rows:
        out[str(row[key])].append(row)
    return out


def _band(ax, x, rows, label):
    mean = [r["mean"] for r in rows]
    (line,) = ax.plot(x, mean, marker="o", label=label)
    low, high = [r["low"] for r in rows], [r["high"] for r in rows]
    if not any(math.isnan(v) for v in low + high):
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    return line


def figure_error_vs_stride(
    summary: Iterable[Mapping],
    *,
    codec_key: str = "codec",
    bound_px: float | None = None,
    ylabel: str = "mean error (input px)",
    title: str | None = None,
) -> Figure:
    """Error against heatmap stride: one line per codec (mean over seeds) with its 95 % interval as a
    band, the vanilla quantization floor, and the Cramer-Rao bound (RMS, px) when given. ``summary``:
    rows of :func:`summarize` with ``stride``, ``mean``, ``low``, ``high``. Log-2 stride axis, log error."""
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    strides: set[float] = set()
    for codec, rows in _by(summary, codec_key).items():
        rows = sorted(rows, key=lambda r: r["stride"])
        x = [r["stride"] for r in rows]
        strides.update(x)
        _band(ax, x, rows, codec)
    xs = sorted(strides)
    ax.plot(xs, [vanilla_floor(s) for s in xs], "k--", label="vanilla floor 0.383 x stride")
    if bound_px is not None:
        ax.axhline(bound_px, color="k", linestyle=":", label=f"Cramer-Rao bound (RMS) {bound_px:.3g} px")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(xs, [str(int(s)) if float(s).is_integer() else str(s) for s in xs])
    ax.set_xlabel("heatmap stride (input px per cell)")
    ax.set_ylabel(ylabel)
    ax.set_title(title or "error vs stride (mean over seeds, 95 % t interval)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def figure_error_vs_flops(
    summary: Iterable[Mapping],
    *,
    codec_key: str = "codec",
    label_key: str | None = "stride",
    ylabel: str = "mean error (input px)",
    title: str | None = None,
) -> Figure:
    """Error against forward GFLOPs, one line per codec, 95 % intervals as error bars. ``summary`` rows
    hold ``gflops``, ``mean``, ``low``, ``high`` and, when ``label_key`` is set, a label per point (e.g.
    the stride or the input size) written next to it. Log-log axes."""
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    for codec, rows in _by(summary, codec_key).items():
        rows = sorted(rows, key=lambda r: r["gflops"])
        x, y = [r["gflops"] for r in rows], [r["mean"] for r in rows]
        err = [[0.0 if math.isnan(r["low"]) else r["mean"] - r["low"] for r in rows],
               [0.0 if math.isnan(r["high"]) else r["high"] - r["mean"] for r in rows]]  # fmt: skip
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=codec)
        if label_key is not None:
            for r in rows:
                ax.annotate(str(r[label_key]), (r["gflops"], r["mean"]), textcoords="offset points",
                            xytext=(4, 4), fontsize="x-small")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("forward GFLOPs per image")
    ax.set_ylabel(ylabel)
    ax.set_title(title or "error vs compute (mean over seeds, 95 % t interval)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def figure_conditional_error(tables: Mapping[str, Mapping], title: str | None = None) -> Figure:
    """Signed (top) and absolute (bottom) error in cells against the true fractional cell position, x
    (left) and y (right); one line per entry of ``tables`` (name -> :func:`conditional_error` result)."""
    fig = Figure(figsize=(9.6, 6.4), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True)
    for name, table in tables.items():
        edges = table["edges"]
        centres = ((edges[:-1] + edges[1:]) / 2).tolist()
        for axis in (0, 1):
            axes[0, axis].plot(centres, table["signed"][axis].tolist(), marker="o", label=name)
            axes[1, axis].plot(centres, table["absolute"][axis].tolist(), marker="o", label=name)
    for axis, name in enumerate("xy"):
        axes[0, axis].axhline(0.0, color="k", linewidth=0.8)
        axes[0, axis].axvline(0.5, color="k", linewidth=0.5, linestyle=":")
        axes[0, axis].set_title(f"signed error along {name} (cells)")
        axes[1, axis].set_title(f"|error| along {name} (cells)")
        axes[1, axis].set_xlabel(f"true fractional cell position along {name} (0 = cell centre)")
        for row in (0, 1):
            axes[row, axis].grid(True, alpha=0.3)
    axes[0, 0].legend(fontsize="small")
    fig.suptitle(title or "error conditional on the true sub-cell position")
    return fig


__all__ = [
    "mean_interval", "summarize", "conditional_error", "conditional_error_rows", "bound_ratio",
    "vanilla_floor", "figure_error_vs_stride", "figure_error_vs_flops", "figure_conditional_error",
]  # fmt: skip
