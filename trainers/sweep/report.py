"""The sweep's numbers over seeds, its targets as measured checks, and its tables (text and markdown)."""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .. import sweep_stats
from .measure import quantization_floor

COLUMNS = [
    "sweep",
    "codec",
    "model",
    "trained_as",
    "target",
    "seed",
    "stride",
    "input",
    "heatmap",
    "nme",
    "mean_error_px",
    "rms_error_px",
    "mean_error_shifted_px",
    "jitter_sd_px",
    "floor_px",
    "error_over_floor",
    "rms_bound_px",
    "error_over_bound",
    "temperature",
    "gflops",
    "params",
    "latency_ms_cpu",
    "train_seconds",
    "train_cpu_seconds",
    "steps",
    "val_mean_error_px",
    "slope",
    "wobble_px",
    "noise_var_px2",
    "offset_px2",
    "phase_px2",
    "per_face_px2",
    "budget_closure",
    "noise_sd_over_bound",
]

SUMMARY_VALUES = (
    "mean_error_px", "nme", "jitter_sd_px", "error_over_floor", "error_over_bound", "rms_bound_px", "temperature",
    "val_mean_error_px", "slope", "wobble_px", "noise_var_px2", "offset_px2", "phase_px2", "per_face_px2",
    "budget_closure", "noise_sd_over_bound", "rms_error_px",
)  # fmt: skip


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def summarize_rows(rows: Sequence[dict]) -> list[dict]:
    """One row per (codec, stride, input): the mean and 95 % interval over seeds of every
    :data:`SUMMARY_VALUES` (``<value>``, ``<value>_low``, ``<value>_high``), FLOPs, parameters, the mean
    CPU latency, the seeds, and the error and FLOPs as ratios to argmax at the largest input, stride 4
    (``error_vs_ref``, ``gflops_vs_ref``) when that run exists."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["codec"], r["stride"], r["input"])].append(r)
    out = []
    for group in groups.values():
        first = group[0]
        item = {k: first[k] for k in ("sweep", "codec", "model", "trained_as", "target", "stride", "input")}
        item.update(heatmap=first["heatmap"], floor_px=first["floor_px"], gflops=first["gflops"])
        item.update(params=first["params"], n=len(group), seeds=[r["seed"] for r in group])
        item["sweep"] = "+".join(sorted({s for r in group for s in r["sweep"].split("+") if s}))
        item["latency_ms_cpu"] = math.fsum(r["latency_ms_cpu"] for r in group) / len(group)
        for value in SUMMARY_VALUES:
            values = [
                r[value] for r in group if not math.isnan(r.get(value, math.nan))
            ]  # older records: no val
            if not values:
                item.update({value: math.nan, f"{value}_low": math.nan, f"{value}_high": math.nan})
                continue
            stats = sweep_stats.mean_interval(values)
            item.update({value: stats["mean"], f"{value}_low": stats["low"], f"{value}_high": stats["high"]})
        out.append(item)
    largest = max((r["input"] for r in out), default=0)
    ref = [r for r in out if r["codec"] == "argmax" and r["stride"] == min(r2["stride"] for r2 in out)]
    ref = [r for r in ref if r["input"] == largest]
    for r in out:
        r["error_vs_ref"] = r["mean_error_px"] / ref[0]["mean_error_px"] if ref else math.nan
        r["gflops_vs_ref"] = r["gflops"] / ref[0]["gflops"] if ref else math.nan
    return out


def _per_seed(rows: Sequence[dict], codec: str, stride: int, size: int) -> dict[int, float]:
    return {
        r["seed"]: r["mean_error_px"]
        for r in rows
        if r["codec"] == codec and r["stride"] == stride and r["input"] == size
    }


def _interval_text(stats: dict, digits: int = 3) -> str:
    if math.isnan(stats["half_width"]):
        return f"{stats['mean']:.{digits}f} (one seed, no interval)"
    return f"{stats['mean']:.{digits}f} [{stats['low']:.{digits}f}, {stats['high']:.{digits}f}]"


def targets(summary: Sequence[dict], rows: Sequence[dict], base_input: int, vanilla: str = "argmax") -> list:
    """The four targets of the default CPU sweep as measured checks, each ``{name, target, measured,
    met}`` (``met`` None when the sweep lacks the codecs or strides it needs). Means over seeds decide;
    the 95 % intervals are given with them. "RR" is every decoder of a ``randomized_rounding`` model
    (both targets); "best" is the lowest mean error at the stride in question.

    1. at every stride the best RR variant <= 0.3 x the vanilla floor;
    2. the best RR variant at stride 8 below argmax at stride 4;
    3. the RR variant best at the coarsest stride: coarsest / finest error <= 3.0 (ratio per seed, then
       its mean and interval);
    4. the best codec at the finest stride within 5 x the Cramer-Rao bound (RMS error / RMS bound).
    """
    base = [s for s in summary if s["input"] == base_input and "stride" in s["sweep"]]
    strides = sorted({s["stride"] for s in base})
    rr = [s for s in base if s["trained_as"] == "randomized_rounding"]
    out = []

    def best(candidates, stride):
        # Selected on the validation faces when the sweep has them, reported on the held-out ones.
        at = [s for s in candidates if s["stride"] == stride]
        key = (
            "val_mean_error_px"
            if all(math.isfinite(s.get("val_mean_error_px", math.nan)) for s in at)
            else "mean_error_px"
        )
        return min(at, key=lambda s: s[key]) if at else None

    def stats_of(s):
        return sweep_stats.mean_interval(
            [
                r["mean_error_px"]
                for r in rows
                if (r["codec"], r["stride"], r["input"]) == (s["codec"], s["stride"], s["input"])
            ]
        )

    checks = []
    for stride in strides:
        b = best(rr, stride)
        if b is None:
            continue
        st = stats_of(b)
        ratio = {k: st[k] / b["floor_px"] for k in ("mean", "low", "high")} | {"half_width": st["half_width"]}
        checks.append(
            {
                "name": f"best RR at stride {stride} / vanilla floor",
                "target": "<= 0.3",
                "measured": f"{b['codec']}: {_interval_text(ratio)}",
                "value": ratio["mean"],
                "met": ratio["mean"] <= 0.3,
            }
        )
    out += checks
    if 8 in strides and 4 in strides:
        b, am = best(rr, 8), best([s for s in base if s["codec"] == vanilla], 4)
        if b is not None and am is not None:
            out.append(
                {
                    "name": "best RR at stride 8 vs argmax at stride 4 (px)",
                    "target": "RR < argmax",
                    "measured": f"{b['codec']} {_interval_text(stats_of(b))} vs argmax {_interval_text(stats_of(am))}",
                    "value": b["mean_error_px"] / am["mean_error_px"],
                    "met": b["mean_error_px"] < am["mean_error_px"],
                }
            )
    if len(strides) >= 2:
        lo, hi = strides[0], strides[-1]
        b = best(rr, hi)
        if b is not None:
            fine, coarse = (
                _per_seed(rows, b["codec"], lo, base_input),
                _per_seed(rows, b["codec"], hi, base_input),
            )
            ratios = [coarse[s] / fine[s] for s in sorted(set(fine) & set(coarse))]
            if ratios:
                st = sweep_stats.mean_interval(ratios)
                out.append(
                    {
                        "name": f"RR stride {hi} / stride {lo} error ratio ({b['codec']})",
                        "target": "<= 3.0",
                        "measured": _interval_text(st),
                        "value": st["mean"],
                        "met": st["mean"] <= 3.0,
                    }
                )
    if strides:
        b = best(base, strides[0])
        if b is not None and not math.isnan(b["error_over_bound"]):
            st = {
                "mean": b["error_over_bound"],
                "low": b["error_over_bound_low"],
                "high": b["error_over_bound_high"],
                "half_width": (b["error_over_bound_high"] - b["error_over_bound_low"]) / 2,
            }
            out.append(
                {
                    "name": f"best codec at stride {strides[0]} ({b['codec']}): RMS error / Cramer-Rao bound",
                    "target": "<= 5",
                    "measured": _interval_text(st, 2),
                    "value": st["mean"],
                    "met": st["mean"] <= 5.0,
                }
            )
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else (f"{value:.4f}" if abs(value) < 1 else f"{value:.3f}")
    return str(value)


def _with_interval(row: dict, key: str, digits: int = 3) -> str:
    mean, low, high = row[key], row[f"{key}_low"], row[f"{key}_high"]
    if math.isnan(mean):
        return "-"
    if math.isnan(low):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


SUMMARY_HEADER = [
    "codec / decoder", "stride", "input", "error (px) [95 %]", "x argmax@ref", "jitter sd (px)", "x bound",
    "floor (px)", "GFLOPs", "x FLOPs", "CPU ms/img", "T", "seeds",
]  # fmt: skip


def _summary_line(r: dict) -> list[str]:
    return [
        r["codec"],
        str(r["stride"]),
        str(r["input"]),
        _with_interval(r, "mean_error_px"),
        _fmt(r["error_vs_ref"]),
        _with_interval(r, "jitter_sd_px"),
        _with_interval(r, "error_over_bound", 1),
        f"{r['floor_px']:.2f}",
        f"{r['gflops']:.3f}",
        _fmt(r["gflops_vs_ref"]),
        f"{r['latency_ms_cpu']:.2f}",
        "-" if math.isnan(r["temperature"]) else f"{r['temperature']:.2f}",
        str(r["n"]),
    ]


def _table(header: list[str], body: list[list[str]], markdown: bool) -> list[str]:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        return lines + ["| " + " | ".join(b) + " |" for b in body]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
    return lines + ["  ".join(c.rjust(w) for c, w in zip(b, widths)) for b in body]


def pooled_conditional(conditional: Sequence[dict], codec: str, stride: int, size: int) -> dict:
    """Signed and absolute error per axis and bin of one (codec, stride, input) pooled over seeds (means
    weighted by the keypoint counts), as :func:`trainers.sweep_stats.conditional_error` returns them."""
    picked = [c for c in conditional if (c["codec"], c["stride"], c["input"]) == (codec, stride, size)]
    edges = sorted({c["fraction_low"] for c in picked} | {c["fraction_high"] for c in picked})
    bins = len(edges) - 1
    signed = torch.full((2, bins), math.nan, dtype=torch.float64)
    absolute, count = signed.clone(), torch.zeros(2, bins, dtype=torch.long)
    for axis, name in enumerate("xy"):
        for b in range(bins):
            cells = [c for c in picked if c["axis"] == name and c["fraction_low"] == edges[b] and c["count"]]
            n = sum(c["count"] for c in cells)
            count[axis, b] = n
            if n:
                signed[axis, b] = math.fsum(c["signed_error_cells"] * c["count"] for c in cells) / n
                absolute[axis, b] = math.fsum(c["abs_error_cells"] * c["count"] for c in cells) / n
    return {
        "edges": torch.tensor(edges, dtype=torch.float64),
        "signed": signed,
        "absolute": absolute,
        "count": count,
    }


def conditional_lines(record: dict, markdown: bool = False) -> list[str]:
    """The conditional-error table of the coarsest stride at the base input: per randomized-rounding
    decoder and axis, the signed error (cells) in each bin of the true sub-cell fraction, pooled over seeds."""
    rows = [r for r in record["summary"] if r["input"] == record["base_input"] and "stride" in r["sweep"]]
    if not rows or not record.get("conditional"):
        return []
    stride = max(r["stride"] for r in rows)
    names = [r["codec"] for r in rows if r["stride"] == stride]
    header = None
    body = []
    for name in names:
        table = pooled_conditional(record["conditional"], name, stride, record["base_input"])
        edges = table["edges"].tolist()
        if header is None:
            header = ["codec / decoder", "axis"] + [
                f"{edges[b]:.1f}-{edges[b + 1]:.1f}" for b in range(len(edges) - 1)
            ]
            header += ["mean abs (cells)"]
        for axis, axis_name in enumerate("xy"):
            counts = table["count"][axis].double()
            mean_abs = float(
                (table["absolute"][axis].nan_to_num() * counts).sum() / counts.sum().clamp(min=1)
            )
            body.append(
                [name, axis_name]
                + [("nan" if math.isnan(v) else f"{v:+.3f}") for v in table["signed"][axis].tolist()]
                + [f"{mean_abs:.3f}"]
            )
    title = (
        f"Signed error (cells, prediction - truth) by true sub-cell fraction (0 = cell centre) at stride "
        f"{stride}, input {record['base_input']}, pooled over seeds:"
    )
    return ["", title, ""] + _table(header, body, markdown)


def main_decoders(record: dict) -> set[str]:
    """The decoder that reads each model in the headline and the stride figure: its first listed decoder,
    plus the vanilla reading of the Gaussian maps (``gaussian_argmax``) when the sweep has it."""
    return {m["decoders"][0]["name"] for m in record["sweep"]["models"]} | {"gaussian_argmax"}


def headline_lines(record: dict, markdown: bool = False) -> list[str]:
    """The stride sweep in one table: per model's main decoder (:func:`main_decoders`) the mean error and
    95 % interval at every stride (base input), the jitter and the multiple of the floor at the coarsest
    stride; then the vanilla floor. Every figure is one of the summary's."""
    rows = [
        r
        for r in record["summary"]
        if "stride" in r["sweep"]
        and r["input"] == record["base_input"]
        and r["codec"] in main_decoders(record)
    ]
    if not rows:
        return []
    strides = sorted({r["stride"] for r in rows})
    coarsest = strides[-1]
    names = list(dict.fromkeys(r["codec"] for r in rows))  # the summary's (config) order
    by_key = {(r["codec"], r["stride"]): r for r in rows}
    header = ["codec / decoder"] + [f"stride {s}" for s in strides]
    header += [f"jitter sd at {coarsest} (px)", f"x floor at {coarsest}"]
    body = []
    for name in names:
        cells = [
            _with_interval(by_key[(name, s)], "mean_error_px") if (name, s) in by_key else "-"
            for s in strides
        ]
        last = by_key.get((name, coarsest))
        cells += (
            [_with_interval(last, "jitter_sd_px"), _with_interval(last, "error_over_floor")]
            if last
            else ["-", "-"]
        )
        body.append([name] + cells)
    body.append(
        ["vanilla floor 0.3826 x stride"] + [f"{quantization_floor(s):.2f}" for s in strides] + ["", ""]
    )
    title = (
        f"Headline: the stride sweep at input {record['base_input']} px, each model read by its main decoder "
        "(mean error in px [95 % interval over seeds]):"
    )
    return [title, ""] + _table(header, body, markdown) + [""]


def statue_jitter(shifts_per_cell: int) -> float:
    """The jitter sd, in strides, of a predictor that ignores a motion of ``j s / n`` px along both axes
    (j < n): the population sd of the moves, times sqrt(2) for the two axes."""
    n = shifts_per_cell
    return math.sqrt(2.0) * math.sqrt((n * n - 1) / 12.0) / n


def _statue_text(record: dict) -> str:
    design = record["sweep"]
    if design.get("motion") != "cell":
        return ""
    n = design["shifts_per_cell"]
    return (f" (motion 'cell': 0 to {n - 1}/{n} of a cell along both axes, where a predictor that ignores the "
            f"motion scores {statue_jitter(n):.3f} x the stride)")  # fmt: skip


def budget_lines(record: dict, markdown: bool = False) -> list[str]:
    """The error budget of the stride sweep's main decoders (means over seeds): the MSE (px^2) and the
    shares of its parts, the closure, the noise-induced sd over the Cramer-Rao bound, the displacement
    slope and the wobble. Empty for a sweep measured without noise draws."""
    rows = [r for r in record["summary"] if "stride" in r["sweep"] and r["input"] == record["base_input"]
            and r["codec"] in main_decoders(record) and math.isfinite(r.get("budget_closure", math.nan))]  # fmt: skip
    if not rows:
        return []
    header = ["codec / decoder", "stride", "MSE (px^2)", "noise", "offset", "phase", "per face", "closure",
              "noise sd / CRB", "slope", "wobble (px)"]  # fmt: skip
    body = []
    for r in rows:
        parts = [r[k] for k in ("noise_var_px2", "offset_px2", "phase_px2", "per_face_px2")]
        total = sum(parts)
        body.append([r["codec"], str(r["stride"]), f"{total:.4f}", *(f"{100 * p / total:.1f} %" for p in parts),
                     f"{r['budget_closure']:.4f}", _with_interval(r, "noise_sd_over_bound", 2),
                     _with_interval(r, "slope", 3), _with_interval(r, "wobble_px", 3)])  # fmt: skip
    draws = record["sweep"].get("noise_draws")
    return ["", f"Error budget (trainers.studies.budget; the set's own image + {draws - 1} fresh noise draw(s) "
            "per face; shares of the MSE over the draws, means over seeds):", ""] + _table(header, body, markdown)  # fmt: skip


def paired_differences(record: dict, reference: str = "rr_expected") -> list[dict]:
    """Every main decoder (:func:`main_decoders`) against ``reference`` at every stride of the stride sweep:
    per seed the difference of mean errors (px), then its mean and 95 % t interval. The seeds share data and
    initial parameters across models, so the paired interval is the one that answers "which is better"."""
    rows = record["rows"]
    base = record["base_input"]
    names = [
        n for n in dict.fromkeys(r["codec"] for r in rows) if n in main_decoders(record) and n != reference
    ]
    out = []
    for stride in sorted({r["stride"] for r in rows if "stride" in r["sweep"]}):
        ref = _per_seed(rows, reference, stride, base)
        for name in names:
            other = _per_seed(rows, name, stride, base)
            seeds = sorted(set(ref) & set(other))
            if len(seeds) < 2:
                continue
            diffs = [other[s] - ref[s] for s in seeds]
            out.append({"codec": name, "reference": reference, "stride": stride, "per_seed": diffs,
                        **sweep_stats.mean_interval(diffs)})  # fmt: skip
    return out


def paired_lines(record: dict, markdown: bool = False) -> list[str]:
    """The table of :func:`paired_differences` (empty when the sweep has fewer than 2 seeds)."""
    pairs = paired_differences(record)
    if not pairs:
        return []
    body = []
    for p in pairs:
        verdict = (
            f"{p['codec']} lower"
            if p["high"] < 0
            else f"{p['codec']} higher"
            if p["low"] > 0
            else "not established"
        )
        body.append([p["codec"], str(p["stride"]), _interval_text(p), ", ".join(f"{d:+.3f}" for d in p["per_seed"]),
                     verdict])  # fmt: skip
    header = [
        "codec / decoder",
        "stride",
        f"minus {pairs[0]['reference']} (px)",
        "per seed",
        "paired verdict",
    ]
    return ["", f"Paired differences to {pairs[0]['reference']} (per seed, same data and initial parameters; "
            "mean [95 % t interval]):", ""] + _table(header, body, markdown)  # fmt: skip


def format_table(record: dict, markdown: bool = False) -> str:
    """The summary table (mean and 95 % interval over seeds), the targets as measured checks, the
    conditional error at the coarsest stride, the machine and the command, as text or Markdown."""
    summary = record["summary"]
    stride_rows = [r for r in summary if "stride" in r["sweep"]]
    input_rows = [r for r in summary if "input" in r["sweep"]]
    lines = headline_lines(record, markdown) + [f"Stride sweep (input {record['base_input']} px):", ""]
    lines += _table(SUMMARY_HEADER, [_summary_line(r) for r in stride_rows], markdown)
    if any(r["input"] != record["base_input"] for r in input_rows):
        stride = record["sweep"].get("input_stride", 4)
        lines += ["", f"Input sweep (stride {stride}):", ""]
        ordered = sorted(input_rows, key=lambda r: (-r["input"], r["codec"]))
        lines += _table(SUMMARY_HEADER, [_summary_line(r) for r in ordered], markdown)
    lines += ["", "Targets (means over seeds; 95 % Student-t intervals in brackets):", ""]
    body = [
        [t["name"], t["target"], t["measured"], {True: "met", False: "NOT met", None: "n/a"}[t["met"]]]
        for t in record["targets"]
    ]
    lines += _table(["check", "target", "measured", "verdict"], body, markdown)
    lines += paired_lines(record, markdown)
    lines += budget_lines(record, markdown)
    lines += conditional_lines(record, markdown)
    lines += [
        "",
        "Columns: error = mean Euclidean error (input px) on the unmoved held-out faces; x argmax@ref = that "
        "error / argmax's at the largest input and the finest stride; jitter sd = sd of the error vector over "
        f"the re-rendered moves{_statue_text(record)}; slope = predicted over true displacement; x bound = RMS error / RMS Cramer-Rao bound; floor = vanilla rounding "
        "floor 0.3826 x stride; GFLOPs = forward, one image (2 per multiply-add); CPU ms/img = median "
        "latency at batch 1 (depends on the load); T = temperature fitted on training maps.",
        "",
        f"machine: {record['machine']}; wall time {record['wall_seconds']:.0f} s, "
        f"process CPU time {record.get('cpu_seconds', float('nan')):.0f} s; "
        f"train set {record['train_size']}, held-out {record['eval_size']} per seed",
    ]
    if record.get("command"):
        lines.append(f"command: {record['command']}")
    return "\n".join(lines)


def write_results(record: dict, folder: Path) -> dict[str, Path]:
    """``sweep.csv`` (the summary: one row per codec, stride and input), ``runs.csv`` (one row per run
    and seed), ``conditional.csv``, ``sweep.json`` (everything), ``sweep.md`` (the tables and targets),
    ``sweep.png`` (error vs stride), ``flops.png`` (NME vs FLOPs) and ``conditional.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {k: folder / f"sweep.{k}" for k in ("csv", "json", "md", "png")}
    paths.update(
        runs=folder / "runs.csv",
        conditional=folder / "conditional.csv",
        flops=folder / "flops.png",
        conditional_png=folder / "conditional.png",
    )
    summary_columns = list(record["summary"][0]) if record["summary"] else []
    for path, rows, columns in (
        (paths["csv"], record["summary"], summary_columns),
        (paths["runs"], record["rows"], COLUMNS),
        (
            paths["conditional"],
            record["conditional"],
            list(record["conditional"][0]) if record["conditional"] else [],
        ),
    ):
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    paths["json"].write_text(json.dumps(_plain(record), indent=2) + "\n")
    paths["md"].write_text(format_table(record, markdown=True) + "\n")
    from .figures import plot_sweep  # here: the figures read this module's tables

    plot_sweep(record, paths)
    return paths
