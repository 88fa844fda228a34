"""The committed record of a study: what its finished runs measured, with paired statistics over seeds.

Every seed of a study shares its data and initial backbone across designs and strides, so comparisons are
PAIRED: per seed the difference (or the stride-16 / stride-4 ratio), then the mean and Student-t interval
of those per-seed values (:func:`trainers.sweep_stats.mean_interval`). A run of the selection seed counts
at the learning rate chosen on the validation faces only; the other rate's run informs the choice and
nothing else. Written to ``record_dir``: ``study.json`` (every number, the runs, the machine, the command,
the CPU time), ``study.md`` (the tables and verdicts, generated from the json) and figures.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
from collections import defaultdict
from pathlib import Path

from matplotlib.figure import Figure

from ..logging_utils import write_text_atomic
from ..sweep_stats import mean_interval, vanilla_floor
from . import runner
from . import variants as variants_lib

PARTS = ("noise_var_px2", "offset_px2", "phase_px2", "per_face_px2")
PART_NAMES = {
    "noise_var_px2": "noise",
    "offset_px2": "offset",
    "phase_px2": "phase",
    "per_face_px2": "per face",
}


def counted_runs(study: runner.Study, records: dict) -> dict[tuple, dict]:
    """``{(variant, stride, steps, seed): record}`` of the runs that count: for the selection seed the
    run at the chosen learning rate, for the other seeds their one run (already at that rate)."""
    out = {}
    for variant, resolved in runner.all_variants(study, records):
        if not resolved:
            continue
        for stride in study.strides:
            for steps in study.budgets:
                lr = runner.chosen_lr(study, records, variant.name, stride, steps)
                if lr is None:
                    continue
                for seed in study.seeds:
                    key = runner.job_key(
                        {"variant": variant.name, "stride": stride, "steps": steps, "seed": seed, "lr": lr}
                    )
                    if key in records:
                        out[(variant.name, stride, steps, seed)] = records[key]
    return out


def _cells_over_sqrt_kl(record: dict) -> float | None:
    """RMS error in cells over the square root of the KL (nats) to the expected target: the number the
    cross-entropy's curvature predicts to be the same at every stride (notebook 11); None without a KL."""
    kl = record.get("kl_nats")
    if kl is None or not (math.isfinite(kl) and kl > 0):
        return None
    return record["rms_error_px"] / record["job"]["stride"] / math.sqrt(kl)


def _value(record: dict, name: str) -> float | None:
    """A number of a run record by name: top-level, ``budget.*``, ``displacement.*``, or a derived one."""
    b = record["budget"]
    derived = {
        "noise_sd_over_bound": math.sqrt(b["noise_var_over_bound"]) if "noise_var_over_bound" in b else None,
        "slope": record["displacement"]["slope"],
        "wobble_px": record["displacement"]["wobble_px"],
        **{f"share_{p}": b[p] / b["sum_px2"] for p in PARTS},
        "rms_cells_over_sqrt_kl": _cells_over_sqrt_kl(record),
    }
    if name in derived:
        return derived[name]
    return record.get(name, b.get(name))


SUMMARY = ("mean_error_px", "rms_error_px", "mse_px2", "val_mean_error_px", "budget_closure", *PARTS,
           "noise_sd_over_bound", "noise_var_over_bound", "slope", "wobble_px", "kl_nats",
           "rms_cells_over_sqrt_kl", *(f"share_{p}" for p in PARTS))  # fmt: skip


def summarize(study: runner.Study, runs: dict, records: dict) -> list[dict]:
    """One row per (variant, stride, steps): the chosen rate, the seeds present and the mean and interval
    over seeds of every :data:`SUMMARY` number."""
    groups = defaultdict(dict)
    for (name, stride, steps, seed), r in runs.items():
        groups[(name, stride, steps)][seed] = r
    rows = []
    for (name, stride, steps), by_seed in groups.items():
        row = {"variant": name, "stride": stride, "steps": steps, "seeds": sorted(by_seed),
               "lr": runner.chosen_lr(study, records, name, stride, steps), "floor_px": vanilla_floor(stride)}  # fmt: skip
        for key in SUMMARY:
            values = [v for v in (_value(r, key) for r in by_seed.values()) if v is not None]
            if values:
                row[key] = mean_interval(values)
        rows.append(row)
    order = {v.name: i for i, (v, _) in enumerate(runner.all_variants(study, records))}
    return sorted(rows, key=lambda r: (order.get(r["variant"], 99), r["stride"], r["steps"]))


def paired(runs: dict, a: tuple, b: tuple, key: str = "mean_error_px", ratio: bool = False) -> dict | None:
    """Per seed ``a - b`` (or ``a / b``) of ``key`` between two (variant, stride, steps) cells, over the
    seeds both have; mean and t interval, with the per-seed values. None with fewer than 2 seeds."""
    seeds = sorted(
        {s for (*cell, s) in runs if tuple(cell) == a} & {s for (*cell, s) in runs if tuple(cell) == b}
    )
    if len(seeds) < 2:
        return None
    va = [_value(runs[(*a, s)], key) for s in seeds]
    vb = [_value(runs[(*b, s)], key) for s in seeds]
    values = [x / y if ratio else x - y for x, y in zip(va, vb)]
    return {**mean_interval(values), "per_seed": values, "seeds": seeds}


def ratios(study: runner.Study, runs: dict, names: list[str]) -> list[dict]:
    """The coarse / fine error ratio (largest stride over the smallest) per variant and budget, paired by seed."""
    fine, coarse = min(study.strides), max(study.strides)
    out = []
    for name in names:
        for steps in study.budgets:
            p = paired(runs, (name, coarse, steps), (name, fine, steps), ratio=True)
            if p is not None:
                out.append({"variant": name, "steps": steps, "fine": fine, "coarse": coarse, **p})
    return out


def kl_law(study: runner.Study, runs: dict, names: list[str]) -> list[dict]:
    """Per variant with a KL and per budget, paired by seed: the coarse / fine ratio of the RMS error in
    cells over sqrt(KL) (1 if the error in cells is the same function of the KL at both strides), and the
    coarse / fine ratio of the KL itself."""
    fine, coarse = min(study.strides), max(study.strides)
    out = []
    for name in names:
        for steps in study.budgets:
            cells = [(name, s, steps) for s in (coarse, fine)]
            if any(
                _value(r, "rms_cells_over_sqrt_kl") is None
                for (*c, _), r in runs.items()
                if tuple(c) in cells
            ):
                continue
            law = paired(runs, *cells, key="rms_cells_over_sqrt_kl", ratio=True)
            kl = paired(runs, *cells, key="kl_nats", ratio=True)
            if law is not None and kl is not None:
                out.append({"variant": name, "steps": steps, "fine": fine, "coarse": coarse,
                            "law_ratio": law, "kl_ratio": kl})  # fmt: skip
    return out


def differences(study: runner.Study, runs: dict, names: list[str], reference: str) -> list[dict]:
    """Per stride and budget, each variant's error minus the reference variant's, paired by seed (px)."""
    out = []
    for name in names:
        if name == reference:
            continue
        for stride in study.strides:
            for steps in study.budgets:
                p = paired(runs, (name, stride, steps), (reference, stride, steps))
                if p is not None:
                    out.append(
                        {"variant": name, "reference": reference, "stride": stride, "steps": steps, **p}
                    )
    return out


def against_fine(
    study: runner.Study, runs: dict, records: dict, reference: str = "rr_expected"
) -> list[dict]:
    """Each design at each coarser stride against the reference at the finest, paired by seed: the ratio
    ``v@s / ref@fine`` (1 = as good as the reference's fine map) and the share of the reference's own excess
    that is left, ``(v@s - ref@fine) / (ref@s - ref@fine)`` (1 = all of it, 0 = none). For a
    ``frozen_features`` probe also whether each run's donor is the recorded run of its design bit for bit
    (the same validation error), where that run is recorded. The reference is taken at the run's own
    budget, or for a probe with ``donor_steps`` at its donor's (``reference_steps``): a readout trained
    longer on features of a given budget is held against the models of that budget."""
    fine = min(study.strides)
    err = lambda cell: runs[cell]["mean_error_px"]  # noqa: E731
    out = []
    for v, ok in runner.all_variants(study, records):
        if not ok or v.name == reference:
            continue
        donor = variants_lib.donor_of(v) if v.frozen_features else None
        for steps in study.budgets:
            ref_steps = variants_lib.donor_budget(v, steps)
            for stride in study.strides:
                if stride == fine and not v.frozen_features:
                    continue
                row = {"variant": v.name, "stride": stride, "steps": steps, "reference_steps": ref_steps}
                seeds = [sd for sd in study.seeds if all(
                    c in runs for c in ((v.name, stride, steps, sd), (reference, stride, ref_steps, sd),
                                        (reference, fine, ref_steps, sd)))]  # fmt: skip
                if stride != fine and len(seeds) >= 2:
                    cells = [((v.name, stride, steps, sd), (reference, stride, ref_steps, sd),
                              (reference, fine, ref_steps, sd)) for sd in seeds]  # fmt: skip
                    to_fine = [err(a) / err(f) for a, _, f in cells]
                    left = [(err(a) - err(f)) / (err(r) - err(f)) for a, r, f in cells]
                    row["ratio_to_fine"] = {**mean_interval(to_fine), "per_seed": to_fine, "seeds": seeds}
                    row["excess_left"] = {**mean_interval(left), "per_seed": left, "seeds": seeds}
                if donor is not None:
                    row["donors"] = []
                    for sd in study.seeds:
                        run = runs.get((v.name, stride, steps, sd))
                        if run is None or "donor" not in run:
                            continue
                        plain = next(
                            (r for r in records.values()
                             if variants_lib.Variant(**r["job"]["spec"]) == dataclasses.replace(donor, name=r["job"]["variant"])
                             and (r["job"]["stride"], r["job"]["steps"], r["job"]["seed"], r["job"]["lr"])
                             == (v.frozen_features, ref_steps, sd, v.donor_lr)),
                            None,
                        )  # fmt: skip
                        row["donors"].append({"seed": sd, "donor_val_px": run["donor"]["val_mean_error_px"],
                                              "recorded": None if plain is None else runner.job_key(plain["job"]),
                                              "recorded_val_px": None if plain is None else plain["val_mean_error_px"]})  # fmt: skip
                if len(row) > 4:
                    out.append(row)
    return out


def longer_training(study: runner.Study, runs: dict, names: list[str]) -> list[dict]:
    """Per variant, stride and budget beyond the variant's smallest: its error there minus at its smallest
    budget, paired by seed (px; negative = more steps helped)."""
    out = []
    for name in names:
        for stride in study.strides:
            budgets = sorted({n for (v, st, n, _) in runs if (v, st) == (name, stride)})
            for steps in budgets[1:]:
                p = paired(runs, (name, stride, steps), (name, stride, budgets[0]))
                if p is not None:
                    out.append({"variant": name, "stride": stride, "steps": steps, "from": budgets[0], **p})
    return out


def fall_per_doubling(rows: list[dict], name: str, stride: int) -> list[dict]:
    """Between consecutive budgets: the factor by which the mean error falls per doubling of the steps,
    ``1 - (e2 / e1) ** (1 / log2(n2 / n1))`` (0.1 = 10 % less per doubling)."""
    cells = sorted(
        (r["steps"], r["mean_error_px"]["mean"])
        for r in rows
        if r["variant"] == name and r["stride"] == stride
    )
    return [
        {"from": n1, "to": n2, "fall": 1 - (e2 / e1) ** (1 / math.log2(n2 / n1))}
        for (n1, e1), (n2, e2) in zip(cells, cells[1:])
    ]


def flops(study: runner.Study, names_specs: dict) -> dict:
    """Forward GFLOPs of one image per (variant, stride) (:func:`trainers.compute.forward_flops`)."""
    from ..compute import forward_flops

    size = tuple(runner.run_config(study, study.strides[0], 1, study.lrs[0], 0).data.input_size)
    out = {}
    for name, spec in names_specs.items():
        variant = variants_lib.Variant(**spec)
        for stride in study.strides:
            if variant.strides and stride not in variant.strides:
                continue
            model = variants_lib.build_model(variant, 12, stride)
            out[f"{name}@{stride}"] = forward_flops(model, size) / 1e9
    return out


# ---------------------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------------------


def _iv(stats: dict | None, digits: int = 3) -> str:
    if not stats:
        return "-"
    if stats["n"] < 2 or not math.isfinite(stats["half_width"]):
        return f"{stats['mean']:.{digits}f} (n={stats['n']})"
    return f"{stats['mean']:.{digits}f} [{stats['low']:.{digits}f}, {stats['high']:.{digits}f}]"


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(r) + " |" for r in body
    ]


def _steps_against(row: dict) -> str:
    """A row's budget, with the reference's where they differ (a probe's readout trained longer than its
    donor is held against the models of the donor's budget)."""
    ref = row.get("reference_steps", row["steps"])
    return str(row["steps"]) if ref == row["steps"] else f"{row['steps']} (rr_expected at {ref})"


def markdown(record: dict) -> str:
    """``study.md``: every line generated from the record."""
    s = record["study"]
    lines = [f"# Study: {s['title']}", "", f"Command: `{record['command']}`  ", f"Machine: {record['machine']}  ",
             f"Runs finished: {record['runs_finished']} of {record['runs_in_grid']} in the grid; CPU time of the "
             f"finished runs {record['cpu_hours']:.2f} h (each run in a worker process on 1 torch thread: "
             f"{', '.join(record['run_settings'])})  ",
             "Intervals: mean [95 % Student-t interval] over seeds; differences and ratios paired by seed.", ""]  # fmt: skip
    lines += (
        ["## Designs", ""]
        + [
            f"* `{name}`: codec `{spec['codec']}` {spec['options'] or ''}, loss `{spec['loss']}`"
            + (
                f" (pixel term x {spec['coordinate_weight']:g})"
                if spec["loss"] in ("codec+window", "offset")
                else ""
            )
            + f", fusion `{spec['fusion']}`, width {spec['width']}"
            + (f", readout {spec['head_width']} channels" if spec.get("head_width") else "")
            + (f", strides {list(spec['strides'])} only" if spec.get("strides") else "")
            + (f", budgets {list(spec['budgets'])} only" if spec.get("budgets") else "")
            + (
                f"; features: the stem and stages of the plain design (this codec, loss and width, with the "
                f"average-pool fusion and the default readout) trained whole at stride {spec['frozen_features']} "
                f"(lr {spec['donor_lr']:g}, same seed, "
                + (f"{spec['donor_steps']} steps" if spec.get("donor_steps") else "same budget")
                + "), kept fixed; laterals, fusion and head trained afresh"
                if spec.get("frozen_features")
                else ""
            )
            + (
                " (a followup: the best of its study on the validation faces at the largest stride and budget, "
                "with the change named by the config)"
                if name in record.get("followups", [])
                else ""
            )
            for name, spec in record["variants"].items()
        ]
        + [""]
    )
    lines += ["## Error and its budget", "",
              "px; the budget parts as shares of the MSE over the noise draws; `closure` = the parts' sum over the "
              "MSE of the test set's own images; `noise sd / CRB` = sqrt(noise variance / the Cramer-Rao bound "
              "on that variance); `slope` = predicted over true displacement over one cell of motion.", ""]  # fmt: skip
    header = ["variant", "stride", "steps", "lr", "seeds", "mean error px", "x floor", "noise", "offset", "phase",
              "per face", "closure", "noise sd / CRB", "slope", "KL nats"]  # fmt: skip
    body = []
    for r in record["summary"]:
        share = [f"{r['share_' + p]['mean'] * 100:.1f} %" if "share_" + p in r else "-" for p in PARTS]
        body.append([r["variant"], str(r["stride"]), str(r["steps"]), f"{r['lr']:g}", str(len(r["seeds"])),
                     _iv(r["mean_error_px"]), f"{r['mean_error_px']['mean'] / r['floor_px']:.3f}", *share,
                     f"{r['budget_closure']['mean']:.4f}", _iv(r.get("noise_sd_over_bound"), 2),
                     _iv(r.get("slope"), 3), _iv(r.get("kl_nats"), 3)])  # fmt: skip
    lines += _table(header, body) + [""]
    if record["ratios"]:
        lines += [
            f"## Stride {record['ratios'][0]['coarse']} / stride {record['ratios'][0]['fine']} error ratio, per seed",
            "",
        ]
        lines += _table(["variant", "steps", "ratio", "per seed"],
                        [[r["variant"], str(r["steps"]), _iv(r), ", ".join(f"{v:.2f}" for v in r["per_seed"])]
                         for r in record["ratios"]]) + [""]  # fmt: skip
    if record.get("kl_law"):
        summary = {(r["variant"], r["stride"], r["steps"]): r for r in record["summary"]}
        fine, coarse = record["kl_law"][0]["fine"], record["kl_law"][0]["coarse"]
        lines += [f"## The error in cells against the KL to the expected target (stride {fine} and {coarse})", "",
                  "`cells / sqrt(KL)` = RMS error in cells over the square root of the KL (nats) of the predicted "
                  f"distribution to the expected target; `law {coarse}/{fine}` = its stride-{coarse} / stride-{fine} "
                  "ratio paired by seed (1 = the same error in cells at the same KL); `KL "
                  f"{coarse}/{fine}` = the KL's own paired ratio.", ""]  # fmt: skip
        body = []
        for k in record["kl_law"]:
            a = summary.get((k["variant"], fine, k["steps"]), {})
            b = summary.get((k["variant"], coarse, k["steps"]), {})
            body.append([k["variant"], str(k["steps"]), _iv(a.get("rms_cells_over_sqrt_kl")),
                         _iv(b.get("rms_cells_over_sqrt_kl")), _iv(k["law_ratio"]), _iv(a.get("kl_nats"), 4),
                         _iv(b.get("kl_nats"), 4), _iv(k["kl_ratio"])])  # fmt: skip
        lines += _table(["variant", "steps", f"cells / sqrt(KL) at {fine}", f"at {coarse}", f"law {coarse}/{fine}",
                         f"KL at {fine}", f"KL at {coarse}", f"KL {coarse}/{fine}"], body) + [""]  # fmt: skip
    if record["differences"]:
        ref = record["differences"][0]["reference"]
        lines += [f"## Paired differences to {ref} (px; negative = better than {ref})", ""]
        lines += _table(["variant", "stride", "steps", "difference", "per seed"],
                        [[d["variant"], str(d["stride"]), str(d["steps"]), _iv(d), ", ".join(f"{v:+.3f}" for v in d["per_seed"])]
                         for d in record["differences"]]) + [""]  # fmt: skip
    rows = [p for p in record.get("against_fine", []) if "ratio_to_fine" in p]
    if rows:
        fine = min(record["study"]["strides"])
        lines += [f"## Against rr_expected at stride {fine} (paired by seed)", "",
                  f"`over rr_expected@{fine}` = the design's error at its stride over rr_expected's at stride {fine} "
                  f"(1 = as good as the fine map); `excess left` = (design@s - rr_expected@{fine}) / "
                  f"(rr_expected@s - rr_expected@{fine}) (1 = all of rr_expected's own excess at that stride, 0 = none).", ""]  # fmt: skip
        lines += _table(["variant", "stride", "steps", f"over rr_expected@{fine}", "excess left", "per seed (over)"],
                        [[p["variant"], str(p["stride"]), _steps_against(p), _iv(p["ratio_to_fine"]), _iv(p["excess_left"]),
                          ", ".join(f"{v:.2f}" for v in p["ratio_to_fine"]["per_seed"])] for p in rows]) + [""]  # fmt: skip
    if record.get("falls"):
        lines += ["## Fall of the mean error per doubling of the training steps", ""]
        lines += _table(["variant", "stride", "from", "to", "fall per doubling"],
                        [[f["variant"], str(f["stride"]), str(f["from"]), str(f["to"]), f"{f['fall'] * 100:.1f} %"]
                         for f in record["falls"]]) + [""]  # fmt: skip
    if record.get("longer"):
        lines += ["## Longer training, paired by seed (px; negative = the extra steps helped)", ""]
        lines += _table(["variant", "stride", "steps", "minus steps", "difference", "per seed"],
                        [[f["variant"], str(f["stride"]), str(f["steps"]), str(f["from"]), _iv(f),
                          ", ".join(f"{v:+.3f}" for v in f["per_seed"])] for f in record["longer"]]) + [""]  # fmt: skip
    if record.get("flops"):
        lines += ["## Forward GFLOPs per image", ""]
        lines += _table(
            ["variant@stride", "GFLOPs"], [[k, f"{v:.4f}"] for k, v in record["flops"].items()]
        ) + [""]
    if record.get("verdicts"):
        lines += ["## Verdicts (measured)", ""] + [f"* {v}" for v in record["verdicts"]] + [""]
    if record.get("missing"):
        count = defaultdict(int)
        for key in record["missing"]:
            count[record["runs_missing_variant"][key]] += 1
        lines += ["## Runs not yet finished", "", f"{len(record['missing'])} ready to run: "
                  + ", ".join(f"{n} {name}" for name, n in count.items())
                  + (f"; {record['waiting']} more wait on a learning-rate or design selection" if record["waiting"] else ""), ""]  # fmt: skip
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------------------


def figure_convergence(record: dict) -> Figure:
    """Mean error (px) against training steps, log-log, one line per variant and stride, 95 % bands."""
    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    by = defaultdict(list)
    for r in record["summary"]:
        by[(r["variant"], r["stride"])].append(r)
    colours = {}
    for (name, stride), rows in by.items():
        rows = sorted(rows, key=lambda r: r["steps"])
        x = [r["steps"] for r in rows]
        y = [r["mean_error_px"]["mean"] for r in rows]
        colour = colours.setdefault(name, f"C{len(colours)}")
        style = "-" if stride == min(record["study"]["strides"]) else "--"
        ax.plot(x, y, style, marker="o", color=colour, label=f"{name}, stride {stride}")
        lo = [r["mean_error_px"]["low"] for r in rows]
        hi = [r["mean_error_px"]["high"] for r in rows]
        if all(math.isfinite(v) for v in lo + hi):
            ax.fill_between(x, lo, hi, color=colour, alpha=0.15)
    for stride in record["study"]["strides"]:
        ax.axhline(vanilla_floor(stride), color="grey", lw=0.8, ls=":")
    ax.set_xscale("log"), ax.set_yscale("log")
    ax.set_xlabel("training steps (batch 16)"), ax.set_ylabel("mean error (px)")
    ax.set_title("error against the training budget (dotted: vanilla floor 0.3826 x stride)")
    ax.legend(fontsize=7, ncol=2)
    return fig


def figure_budget(record: dict) -> Figure:
    """The budget parts (px^2, log) against steps for each variant and stride: where the MSE comes from."""
    names = list(dict.fromkeys(r["variant"] for r in record["summary"]))
    strides = record["study"]["strides"]
    fig = Figure(figsize=(3.2 * len(strides), 2.6 * len(names)), layout="constrained")
    axes = fig.subplots(len(names), len(strides), squeeze=False, sharey=True)
    for i, name in enumerate(names):
        for j, stride in enumerate(strides):
            ax = axes[i][j]
            rows = sorted((r for r in record["summary"] if r["variant"] == name and r["stride"] == stride),
                          key=lambda r: r["steps"])  # fmt: skip
            x = [r["steps"] for r in rows]
            for k, part in enumerate(PARTS):
                ax.plot(
                    x,
                    [max(r[part]["mean"], 1e-6) for r in rows],
                    marker=".",
                    color=f"C{k}",
                    label=PART_NAMES[part],
                )
            ax.plot(x, [r["mse_px2"]["mean"] for r in rows], "k--", lw=1, label="MSE")
            ax.set_xscale("log"), ax.set_yscale("log")
            ax.set_title(f"{name}, stride {stride}", fontsize=8)
            if i == len(names) - 1:
                ax.set_xlabel("steps")
            if j == 0:
                ax.set_ylabel("px^2")
    axes[0][0].legend(fontsize=6)
    return fig


def figure_representation(record: dict) -> Figure:
    """Mean error per variant at each stride (largest budget), with 95 % intervals."""
    steps = max(record["study"]["budgets"])
    rows = [r for r in record["summary"] if r["steps"] == steps]
    names = list(dict.fromkeys(r["variant"] for r in rows))
    fig = Figure(figsize=(7, 3.8), layout="constrained")
    ax = fig.add_subplot()
    for j, stride in enumerate(record["study"]["strides"]):
        for i, name in enumerate(names):
            r = next((r for r in rows if r["variant"] == name and r["stride"] == stride), None)
            if r is None:
                continue
            m = r["mean_error_px"]
            err = [[m["mean"] - m["low"]], [m["high"] - m["mean"]]] if math.isfinite(m["low"]) else None
            ax.bar(
                i + 0.4 * j,
                m["mean"],
                0.38,
                yerr=err,
                color=f"C{j}",
                label=f"stride {stride}" if i == 0 else None,
            )
    ax.set_xticks([i + 0.2 for i in range(len(names))], names, rotation=20, fontsize=8)
    ax.set_ylabel("mean error (px)"), ax.set_title(f"the designs at {steps} steps")
    ax.legend()
    return fig


# ---------------------------------------------------------------------------------------------------------
# The record
# ---------------------------------------------------------------------------------------------------------


def verdicts(study: runner.Study, record: dict, runs: dict) -> list[str]:
    """Measured statements: the targets of issue 22, each with the number it rests on."""
    out = []
    fine, coarse, steps = min(study.strides), max(study.strides), max(study.budgets)
    rows = {(r["variant"], r["stride"], r["steps"]): r for r in record["summary"]}
    closures = {key: r["budget_closure"] for key, r in runs.items()}
    if closures:
        off = {key: c for key, c in closures.items() if abs(c - 1) > 0.02}
        worst = max(closures.values(), key=lambda c: abs(c - 1))
        text = (f"budget closure (the parts' sum over the held-out MSE) of the {len(closures)} counted runs: "
                f"{min(closures.values()):.4f} - {max(closures.values()):.4f}, worst {worst:.4f}; ")  # fmt: skip
        if off:
            names = ", ".join(
                f"{v} stride {st} steps {n} seed {sd} ({c:.4f})" for (v, st, n, sd), c in sorted(off.items())
            )
            text += f"{len(off)} off by more than 2 %: {names}"
        else:
            text += "every one within 2 %"
        out.append(text)
    for f in record.get("falls", []):
        if f["stride"] == fine and f["to"] == steps:
            stopped = "has stopped falling" if f["fall"] < 0.10 else "has NOT stopped falling"
            out.append(f"{f['variant']} at stride {fine} {stopped}: {f['fall'] * 100:.1f} % less error per doubling "
                       f"of the steps from {f['from']} to {f['to']}")  # fmt: skip
    probes = {n for n, spec in record["variants"].items() if spec.get("frozen_features")}
    for f in record.get("longer", []):
        if f["variant"] in probes:
            out.append(f"{f['variant']} at stride {f['stride']}: the readout trained {f['steps']} steps minus "
                       f"{f['from']} on the same fixed features: {_iv(f)} px")  # fmt: skip
    for k in record.get("kl_law", []):
        if k["variant"] == "rr_expected" and k["steps"] == steps:
            law, kl = k["law_ratio"], k["kl_ratio"]
            out.append(f"rr_expected at {steps} steps: RMS error in cells per sqrt(KL to the expected target), "
                       f"stride {coarse} over stride {fine}, paired: {_iv(law)} (1 = the same error in cells at the "
                       f"same KL); the KL itself, stride {coarse} over {fine}: {_iv(kl)}")  # fmt: skip
    for p in record.get("against_fine", []):
        same = [d for d in p.get("donors", []) if d["recorded"] is not None]
        if same:
            equal = sum(d["donor_val_px"] == d["recorded_val_px"] for d in same)
            at = f" ({p['steps']} steps)" if len(study.budgets) > 1 else ""
            out.append(f"{p['variant']} at stride {p['stride']}{at}: its donors reproduce the recorded runs in "
                       f"{equal} of {len(same)} seeds (the same validation error to the last bit as "
                       f"{', '.join(d['recorded'] for d in same)})")  # fmt: skip
        d = next((x for x in record["differences"] if (x["variant"], x["stride"], x["steps"])
                  == (p["variant"], p["stride"], p["steps"])), None)  # fmt: skip
        if d is not None:
            out.append(f"{p['variant']} at stride {p['stride']} minus rr_expected at stride {p['stride']}: "
                       f"{_iv(d)} px")  # fmt: skip
        if "ratio_to_fine" in p:
            ref = p.get("reference_steps", p["steps"])
            at = f" ({p['steps']} steps, against rr_expected at {ref})" if ref != p["steps"] else ""
            out.append(f"{p['variant']} at stride {p['stride']}{at} over rr_expected at stride {fine}: "
                       f"{_iv(p['ratio_to_fine'])}; share of rr_expected's own stride-{p['stride']} excess left: "
                       f"{_iv(p['excess_left'])} (1 = all of it, 0 = none)")  # fmt: skip
    best = None
    ranked = [r for r in record["ratios"] if r["steps"] == steps]
    for r in ranked:
        if best is None or r["mean"] < best["mean"]:
            best = r
    if best is not None and len(ranked) > 1:  # a ranking of one design says nothing
        name = best["variant"]
        met = best["mean"] <= 1.5
        out.append(f"lowest mean stride-{coarse} / stride-{fine} ratio (each design over its own stride-{fine} "
                   f"error) at {steps} steps, of {len(ranked)} designs: {name}, {_iv(best)} "
                   f"({'meets' if met else 'does NOT meet'} the target 1.5 on the mean)")  # fmt: skip
        ref = "rr_expected"
        if name != ref and (ref, fine, steps) in rows:
            d = paired(runs, (name, fine, steps), (ref, fine, steps))
            if d is not None:
                worse = d["low"] > 0
                out.append(f"{name}'s stride-{fine} error minus {ref}'s: {_iv(d)} px "
                           f"({'worse, interval above 0' if worse else 'not established worse'})")  # fmt: skip
        r = rows.get((name, fine, steps))
        if r and r.get("noise_sd_over_bound"):
            within = r["noise_sd_over_bound"]["mean"] <= 3
            out.append(f"{name}'s noise-induced sd at stride {fine}: {_iv(r['noise_sd_over_bound'], 2)} x the "
                       f"Cramer-Rao bound ({'within' if within else 'NOT within'} 3x on the mean)")  # fmt: skip
    return out


def machine_line() -> str:
    """Where the record was written (the runs' own torch version and thread count are in each run)."""
    import os

    import torch

    from ..compute import cpu_name

    cpu = cpu_name()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}, {cores} CPU cores, torch {torch.__version__}, Python {platform.python_version()}"


def build_record(study: runner.Study, records: dict, command: str) -> dict:
    runs = counted_runs(study, records)
    summary = summarize(study, runs, records)
    names = [v.name for v, ok in runner.all_variants(study, records) if ok]
    specs = {v.name: dataclasses.asdict(v) for v, ok in runner.all_variants(study, records) if ok}
    ready, waiting = runner.jobs(study, records)
    ours = [r for r in records.values() if r["job"]["variant"] in names and r["job"]["stride"] in study.strides
            and r["job"]["steps"] in study.budgets and r["job"]["seed"] in study.seeds]  # fmt: skip
    record = {
        "study": {
            k: getattr(study, k)
            for k in (
                "title",
                "strides",
                "seeds",
                "budgets",
                "lrs",
                "selection_seed",
                "noise_draws",
                "shifts_per_cell",
                "bins",
                "num_eval",
                "base",
            )
        },
        "variants": specs,
        "followups": [f["name"] for f in study.followups],
        "command": command,
        "machine": machine_line(),
        "runs_finished": len(ours),
        "runs_in_grid": len(ours) + len(ready) + waiting,
        "cpu_hours": sum(r["cpu_seconds"] for r in ours) / 3600,
        "run_settings": sorted({f"torch {r['torch']}, {r['threads']} thread(s)" for r in ours}),
        "summary": summary,
        "ratios": ratios(study, runs, names),
        "kl_law": kl_law(study, runs, names),
        "differences": differences(study, runs, names, "rr_expected") if "rr_expected" in names else [],
        "against_fine": against_fine(study, runs, records) if "rr_expected" in names else [],
        "falls": [
            {"variant": n, "stride": s, **f}
            for n in names
            for s in study.strides
            for f in fall_per_doubling(summary, n, s)
        ]
        if len(study.budgets) > 1
        else [],  # fmt: skip
        "longer": longer_training(study, runs, names) if len(study.budgets) > 1 else [],
        "flops": flops(study, specs),
        "missing": [runner.job_key(j) for j in ready],
        "runs_missing_variant": {runner.job_key(j): j["variant"] for j in ready},
        "waiting": waiting,
        "runs": {runner.job_key(r["job"]): r for r in ours},
    }
    record["verdicts"] = verdicts(study, record, runs)
    return record


def write_record(study: runner.Study, command: str | None = None) -> dict[str, Path]:
    """Write ``study.json``, ``study.md`` and the figures into ``study.record_dir`` from the finished runs."""
    if not study.record_dir:
        raise ValueError(f"study {study.title!r} names no record_dir to write its record to")
    records = runner.read_records(Path(study.out_dir))
    command = command or f"h3r-sweep --study {study.title}"
    record = build_record(study, records, command)
    folder = Path(study.record_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "study.json", "md": folder / "study.md"}
    write_text_atomic(paths["json"], json.dumps(record, indent=1))
    write_text_atomic(paths["md"], markdown(record))
    if record["summary"]:
        figures = {"convergence": figure_convergence, "budget": figure_budget}
        if len(study.budgets) == 1:
            figures = {"representation": figure_representation, "budget": figure_budget}
        for name, make in figures.items():
            path = folder / f"{name}.png"
            make(record).savefig(path, dpi=110)
            paths[name] = path
    return paths
