"""The sweep's figures: error against stride, NME against FLOPs, the conditional error."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from .. import sweep_stats
from .report import main_decoders, pooled_conditional


def _figure_rows(summary: Sequence[dict], keep) -> list[dict]:
    return [
        {**r, "mean": r["mean_error_px"], "low": r["mean_error_px_low"], "high": r["mean_error_px_high"]}
        for r in summary
        if keep(r)
    ]


def plot_sweep(record: dict, paths: dict[str, Path]) -> dict[str, Path]:
    """The figures of :func:`write_results` from the record's summary (mean over seeds, 95 % bands)."""
    summary, base = record["summary"], record["base_input"]
    # One line per model, read by its own decoder (the first listed) plus the vanilla reading of the Gaussian
    # maps: every decoder of every model is in the tables and the conditional figure, 18 lines here are not.
    main = main_decoders(record)
    rows = _figure_rows(
        summary, lambda r: "stride" in r["sweep"] and r["input"] == base and r["codec"] in main
    )
    bounds = [r["rms_bound_px"] for r in rows if not math.isnan(r["rms_bound_px"])]
    bound = math.fsum(bounds) / len(bounds) if bounds else None
    title = f"{record.get('title', 'sweep')}\n{record.get('machine', '')}"
    fig = sweep_stats.figure_error_vs_stride(rows, bound_px=bound, title=title)
    fig.axes[0].title.set_fontsize("small")
    fig.savefig(paths["png"], dpi=90)
    # Error vs FLOPs: the main decoder of each model, one line per sweep (the shared point is on both). In
    # NME, not pixels: a pixel is a larger part of a smaller input's face, so only NME compares inputs.
    main = {m["decoders"][0]["name"] for m in record["sweep"]["models"]}
    flops_rows = []
    nme_rows = [
        {**r, "mean": r["nme"], "low": r["nme_low"], "high": r["nme_high"]}
        for r in summary
        if r["codec"] in main and not math.isnan(r["nme"])
    ]
    for r in nme_rows:
        if "stride" in r["sweep"] and r["input"] == base:
            flops_rows.append({**r, "codec": f"{r['codec']}, strides", "label": f"s{r['stride']}"})
        if "input" in r["sweep"]:
            flops_rows.append({**r, "codec": f"{r['codec']}, inputs", "label": f"{r['input']}px"})
    fig = sweep_stats.figure_error_vs_flops(
        flops_rows, label_key="label", ylabel="NME (error / eye distance)", title="NME vs forward FLOPs"
    )
    fig.savefig(paths["flops"], dpi=90)
    stride_rows = [r for r in summary if "stride" in r["sweep"] and r["input"] == base]
    if stride_rows and record.get("conditional"):
        coarsest = max(r["stride"] for r in stride_rows)
        tables = {
            r["codec"]: pooled_conditional(record["conditional"], r["codec"], coarsest, base)
            for r in stride_rows
            if r["stride"] == coarsest and r["trained_as"] in ("randomized_rounding", "argmax")
        }
        if tables:
            fig = sweep_stats.figure_conditional_error(
                tables, title=f"error conditional on the true sub-cell position, stride {coarsest}"
            )
            fig.savefig(paths["conditional_png"], dpi=80)
    return paths
