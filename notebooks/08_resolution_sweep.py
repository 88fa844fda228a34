# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 8. The resolution sweep: does randomized rounding make heatmap resolution free?
#
# **What the paper claims** (Yu & Tao, *Heatmap Regression via Randomized Rounding*, IEEE TPAMI 2021,
# [arXiv:2009.00225](https://arxiv.org/abs/2009.00225)): vanilla heatmap targets quantize a keypoint to its
# cell, which costs on average $(\sqrt 2 + \operatorname{asinh} 1)/6 \approx 0.3826$ cells, i.e.
# $0.3826 \times$ stride input pixels, even for a perfect network; randomized rounding's random one-hot target
# is **unbiased** (its mean is the keypoint) and its expectation decodes back to the keypoint **losslessly**
# (notebooks 2 and 3 prove both). The paper claims a quantization system without that loss; it does not claim
# that a trained network's total error stops depending on the stride.
#
# **The question of this notebook** (this project's, not the paper's): does removing the quantization loss
# make a coarse heatmap, once trained, as accurate as a fine one? The sweep answers it on synthetic faces;
# the studies of section 8.6 ask why the answer is what it is. The targets written into the sweep's tables
# (0.3 x the floor, a stride-16 / stride-4 ratio of 3, 5 x the Cramer-Rao bound) are this project's
# yardsticks, not numbers from the paper.
#
# **Learning goals.** After this notebook you can
#
# 1. read the sweep's design: one thing changes (the heatmap stride), everything else is fixed, and the
#    record of a sweep says what it was;
# 2. plot error against stride per decoder next to the floor $0.3826 \times s$, and read the *displacement
#    slope* and *jitter* (how the prediction follows the face when the face moves across one cell);
# 3. decide, from per-seed (paired) differences, what a sweep did and did not show, and which of its
#    variants separates one candidate cause from another (the sampled target against its expectation, one
#    map read by two decoders);
# 4. read an error budget (noise-induced variance, cell-phase bias, per-face bias) and say which part grows
#    with the stride.
#
# **Where the numbers come from.** The sweep lives in `trainers/sweep/` (`h3r-sweep` on the command line,
# `make demo` for the default one). By default this notebook **reads** the default sweep's results as
# committed to the repository, `docs/sweep/sweep.json`, written by `make demo` (`h3r-sweep` with
# `trainers/configs/sweep.yaml`; `docs/sweep/README.md` tells how and where it was run). Reading takes
# seconds, so the notebook shows the real experiment, not a toy; section 8.1 prints the record's own
# command, machine, wall time and settings. Other sources (the parameter `SOURCE`): `"runs"` reads your own
# `h3r-sweep` (`runs/sweep/results/sweep.json`), `"tiny"` runs a tiny sweep here through the same API (the
# settings below; its run time is printed), `"full"` runs the default sweep here. Every sentence below that
# states a result is generated from the record that was read, and names it.

# %% tags=["parameters"]
# H3R_NOTEBOOK_FULL=1 in the environment runs the default sweep here (long: the committed record's wall time
# is printed in section 8.1) instead of reading the committed results.
import os

FULL = os.environ.get("H3R_NOTEBOOK_FULL", "0") == "1"
# "committed": docs/sweep/sweep.json, the default sweep as committed; "runs": runs/sweep/results/sweep.json,
# your own h3r-sweep; "tiny": a tiny sweep run here (settings below); "full": the default sweep run here.
SOURCE = "full" if FULL else "committed"
SWEEP_JSON = None  # the path of any other sweep.json to read (wins over SOURCE)
STRIDES = [4, 8]  # tiny sweep: heatmap strides (input px per cell): 16 x 16 and 8 x 8 maps at 64 px
SEEDS = [0, 1, 2]  # tiny sweep: one run per seed (initial parameters and data), for the intervals
STEPS = 100  # tiny sweep: training steps per (codec, stride, seed)
BATCH_SIZE = 16  # tiny sweep: images per step
INPUT_SIZE = 64  # tiny sweep: square input size in px (a multiple of 16)
MODEL_WIDTH = None  # tiny sweep: stem width of the tiny CNN (None = the model's default, 16)
SHIFTS_PER_CELL = 4  # tiny sweep: the faces moved by j s / 4 px along both axes, j = 0..3 (one cell)
DEVICE = "auto"

# %%
# %matplotlib inline
import contextlib
import io
import json
import math
import time
from pathlib import Path

import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from h3r_theory import codecs, losses
from h3r_theory.theory.quantization import mean_quantization_error
from trainers import plotting as pt
from trainers import sweep as sweep_module
from trainers import sweep_stats

plt.rcParams.update({"figure.dpi": 80, "savefig.dpi": 80})
REPO_ROOT = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
FLOOR_CELLS = float(mean_quantization_error("round", 2))
print(f"vanilla floor (exact, sympy): (sqrt(2) + asinh(1)) / 6 = {FLOOR_CELLS:.6f} cells")

# %% [markdown]
# ## 8.1 The experiment
#
# For each stride $s$, each trained model and each seed, the same tiny CNN (its parameters do not depend on
# the output stride, so within a seed every run starts from the same parameters), the same data and
# schedule; only the heatmap changes. A model is one training (a codec's target and that codec's loss);
# each of its **decoders** reads the same trained maps, so two decoders of one model differ in the decoding
# alone, and two models with the same loss and decoder (the sampled randomized-rounding target against its
# expectation) differ in the target alone.
#
# Each decoder is measured on the held-out faces (mean error in input pixels, NME); on the same faces
# **re-rendered** moved by $t = 0, s/4, s/2, 3s/4$ px along both axes (one whole cell of motion; the
# renderer is exact, so nothing is blurred): the **displacement slope** is the least-squares slope of the
# predicted displacement against $t$ (1 for a predictor that follows the face, 0 for one that ignores it) and
# the **jitter** the sd of the 2-D error vector over the moves (per keypoint
# $\sqrt{\operatorname{var}_t e_x + \operatorname{var}_t e_y}$, population variances over the moves $t$, then
# the mean over labelled keypoints: `trainers.sweep.measure.jitter_sd`); on the same faces with a fresh pixel-noise
# draw, for the **error budget** of section 8.5; and against the **Cramer-Rao bound** of each keypoint (the
# smallest variance an unbiased estimator can reach on these images, Gaussian pixel noise). Every number is a
# mean over seeds with a 95 % Student-t interval; every comparison of two decoders is **paired** (per seed,
# since a seed fixes the data and the initial parameters of every model).
#
# **The decoders of a randomized-rounding model.** Its maps are logits of a spatial softmax trained towards
# the bilinear weights of the keypoint on its 4 neighbouring cells. The `window` decoder (the default) is
# the softmax-weighted mean of the 3 x 3 cells around the peak; `2x2` the weighted mean of the peak and its
# larger neighbour on each axis (the 4 cells the target spreads over); `topk` the weighted mean of the k
# largest cells. A `_T` decoder first divides the logits by a temperature $T$ fitted on training images
# (the one that minimises the cross-entropy to the targets: $T < 1$ sharpens the softmax).

# %%
sources = {
    "committed": REPO_ROOT / "docs" / "sweep" / "sweep.json",
    "runs": REPO_ROOT / "runs" / "sweep" / "results" / "sweep.json",
}
if SWEEP_JSON is None and SOURCE not in (*sources, "tiny", "full"):
    raise ValueError(f"SOURCE must be one of {[*sources, 'tiny', 'full']}, got {SOURCE!r}")
if SWEEP_JSON is not None or SOURCE in sources:
    path = Path(SWEEP_JSON) if SWEEP_JSON is not None else sources[SOURCE]
    if not path.is_file():
        raise FileNotFoundError(f"no sweep results at {path} (SOURCE={SOURCE!r}, SWEEP_JSON={SWEEP_JSON!r})")
    record = json.loads(path.read_text())
    if "summary" not in record:
        raise ValueError(
            f"{path} has no 'summary': written by an older h3r-sweep, without seeds or intervals"
        )
    shown = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
    origin = f"the sweep read from `{shown}`" + (
        " (the committed default sweep)" if path == sources["committed"] else ""
    )
else:
    if SOURCE == "full":
        sweep_config = sweep_module.load_sweep(
            None, [f"base.train.device={DEVICE}", f"out_dir={REPO_ROOT / 'runs' / 'sweep'}"]
        )
        origin = "the default sweep (`trainers/configs/sweep.yaml`), run by this notebook"
    else:
        overrides = [
            f"strides={json.dumps(STRIDES)}",
            f"seeds={json.dumps(SEEDS)}",
            "input_sizes=[]",
            f"model_width={'null' if MODEL_WIDTH is None else MODEL_WIDTH}",
            "motion=cell",
            f"shifts_per_cell={SHIFTS_PER_CELL}",
            "noise_draws=2",
            "latency_repeats=2",
            "temperature_samples=128",
            f"base.data.input_size=[{INPUT_SIZE}, {INPUT_SIZE}]",
            "base.data.options={num_train: 2048, num_eval: 128, num_keypoints: 12, noise_distribution: gaussian}",
            f"base.train.max_steps={STEPS}",
            f"base.train.batch_size={BATCH_SIZE}",
            f"base.train.device={DEVICE}",
            "base.train.log_every=10",
            "base.optim.warmup_steps=10",
            f"out_dir={REPO_ROOT / 'runs' / 'notebook_08' / 'tiny_sweep'}",
            "title=tiny sweep of notebook 08",
            "models=[{name: argmax, codec: argmax}, {name: randomized_rounding, codec: randomized_rounding, "
            "decoders: [{name: randomized_rounding}, {name: rr_2x2, decode: {method: 2x2}}]}, "
            "{name: rr_expected, codec: randomized_rounding, options: {target: expected}}]",
        ]
        sweep_config = sweep_module.load_sweep(None, overrides)
        origin = "a tiny sweep run by this notebook (the settings of its parameters cell)"
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        record = sweep_module.run_sweep(sweep_config, progress=False, log=lambda text: None)
    print(f"sweep finished in {time.perf_counter() - t0:.0f} s")
rows, summary = record["rows"], record["summary"]
design = record["sweep"]
base = record["base_input"]
stride_rows = [r for r in summary if "stride" in r["sweep"] and r["input"] == base]
strides = sorted({r["stride"] for r in stride_rows})
train, optim = design["base"]["train"], design["base"]["optim"]
print(f"sweep: {origin}")
print(f"title: {record.get('title')}; command: {record.get('command')}")
print(f"machine: {record.get('machine')}")
print(
    f"wall time {record['wall_seconds']:.0f} s (CPU {record['cpu_seconds']:.0f} s) for {len(rows)} rows (decoder x run)"
)
print(
    f"stride sweep: strides {strides} at {base} x {base} px input, seeds {design['seeds']}; input sweep: "
    f"{[s for s in design['input_sizes'] if s != base] or 'none'}"
)
print(
    f"each run: {train['max_steps']} steps of {train['batch_size']} images, {optim['optimizer']} lr "
    f"{optim['lr']:g}, {optim['schedule']} schedule; {record.get('train_size')} training / "
    f"{record.get('eval_size')} held-out samples per seed; "
    + (
        f"motion: {design['shifts_per_cell']} moves over one cell along both axes"
        if design.get("motion") == "cell"
        else f"jitter shifts {design['jitter_shifts']} px per axis"
    )
)


def loss_of(model):
    """The loss a sweep model trains with: its codec's default loss (what ``h3r-sweep`` uses)."""
    codec = codecs.build(model["codec"], input_size=(64, 64), heatmap_size=(16, 16), **model["options"])
    return losses.default_loss(codec)[0]


table = ["| model | codec (options) | loss | decoders |", "|---|---|---|---|"]
for m in design["models"]:
    options = ", ".join(f"{k}: {v}" for k, v in m["options"].items())
    decoders = ", ".join(f"`{d['name']}`" for d in m["decoders"])
    table.append(
        f"| `{m['name']}` | `{m['codec']}` {f'({options})' if options else ''} | {loss_of(m)} | {decoders} |"
    )
display(Markdown("\n".join(table)))

# %% [markdown]
# In the default sweep the `gaussian` model is trained with a Gaussian centred at the **exact** keypoint
# position (DARK's target), so its maps can hold the sub-cell position: read by DARK's Taylor step (`dark`)
# and by the peak cell (`gaussian_argmax`), the same maps. The decoders named `_T` use a softmax temperature
# fitted on training images; `rr_` decoders read the model trained with the sampled target, `rre_` those of
# the model trained with its expectation. `trainers/configs/sweep.yaml` describes each one.
#
# ## 8.2 The tables and the targets
#
# Generated by `trainers.sweep.format_table` (the same text as `sweep.md`): first a headline, each model read
# by its main decoder (the decoders of the figures below) at every stride; then every decoder: error with
# its 95 % interval over seeds, the error as a multiple of argmax's at the finest stride, the jitter, the error as a multiple
# of the Cramer-Rao bound, the vanilla floor $0.3826 \times s$, the forward FLOPs, then the targets as
# measured checks and the error conditional on the true sub-cell position.

# %%
display(Markdown(sweep_module.format_table(record, markdown=True)))

# %% [markdown]
# ## 8.3 Error against stride, with the floor and the bound
#
# One line per model, read by its own decoder (the first it lists), plus the Gaussian maps read by the peak
# cell when the sweep has them (every decoder is in the tables above); the mean over seeds, its 95 %
# interval as a band. The dashed line is the vanilla floor, the dotted one the Cramer-Rao bound (RMS) of the
# held-out keypoints.

# %%
main_rows = [r for r in stride_rows if r["codec"] in sweep_module.main_decoders(record)]  # as sweep.md
main_decoders = list(dict.fromkeys(r["codec"] for r in main_rows))  # the summary's order
figure_rows = [
    {**r, "mean": r["mean_error_px"], "low": r["mean_error_px_low"], "high": r["mean_error_px_high"]}
    for r in main_rows
]
bounds = [r["rms_bound_px"] for r in main_rows if not math.isnan(r["rms_bound_px"])]
fig = sweep_stats.figure_error_vs_stride(figure_rows, bound_px=sum(bounds) / len(bounds) if bounds else None)
pt.show(fig)

# %% [markdown]
# The same errors **in cells** (error / stride). A decoder that answers a cell centre (`argmax`,
# `gaussian_argmax`) cannot beat the dashed line on average over uniform sub-cell positions, whatever the
# stride and however good the network (notebook 1): its answer is never nearer than the nearest cell centre.

# %%
fig, ax = plt.subplots(figsize=(6.4, 3.2))
for name in main_decoders:  # the first figure's order, so its colours
    pts = sorted((r["stride"], r["mean_error_px"] / r["stride"]) for r in main_rows if r["codec"] == name)
    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
ax.axhline(FLOOR_CELLS, color="k", ls="--", lw=1, label=f"vanilla floor {FLOOR_CELLS:.4f} cells")
ax.set_xscale("log", base=2)
ax.set_xticks(strides)
ax.set_xticklabels([str(s) for s in strides])
ax.minorticks_off()
ax.set_xlabel("heatmap stride (input px per cell)")
ax.set_ylabel("mean error (cells)")
ax.set_ylim(bottom=0)
ax.grid(alpha=0.3)
ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))  # beside the axes: no point hidden
fig.tight_layout()
pt.show(fig)

# %% [markdown]
# ## 8.4 What was measured, stride by stride
#
# Generated from the record: each main decoder's error at the coarsest stride over its error at the finest
# (a flat curve gives 1) and its error in cells; the lowest error at each stride among all decoders; then
# the pairs of the sweep that differ in **one** thing, compared seed by seed (a seed fixes the data and the
# initial parameters, so the per-seed difference removes what the two runs share), with the 95 % interval of
# that difference. It states measurements only: a pair whose interval excludes 0 isolates the effect of its
# one difference *in this sweep*, and nothing else is attributed to a cause.


# %%
def at(codec, stride):
    hits = [r for r in stride_rows if r["codec"] == codec and r["stride"] == stride]
    return hits[0] if hits else None


def interval(r):
    if math.isnan(r["mean_error_px_low"]):  # one seed: no interval
        return f"{r['mean_error_px']:.3f} px (one seed)"
    return f"{r['mean_error_px']:.3f} px [{r['mean_error_px_low']:.3f}, {r['mean_error_px_high']:.3f}]"


def per_seed(codec, stride):
    """{seed: mean error px} of one decoder at one stride of the stride sweep."""
    return {
        r["seed"]: r["mean_error_px"]
        for r in rows
        if r["codec"] == codec and r["stride"] == stride and r["input"] == base and "stride" in r["sweep"]
    }


lo, hi = strides[0], strides[-1]
lines = []
for name in main_decoders:
    a, b = at(name, lo), at(name, hi)
    if a is None or b is None:
        continue
    lines.append(
        f"* `{name}`: {interval(a)} at stride {lo}, {interval(b)} at stride {hi}; ratio "
        f"{b['mean_error_px'] / a['mean_error_px']:.2f}; in cells {a['mean_error_px'] / lo:.3f} -> "
        f"{b['mean_error_px'] / hi:.3f} (floor {FLOOR_CELLS:.3f})."
    )
for s in strides:
    ranked = sorted((r for r in stride_rows if r["stride"] == s), key=lambda r: r["mean_error_px"])
    if len(ranked) < 2:
        continue
    first, second = ranked[0], ranked[1]
    a_seed, b_seed = per_seed(first["codec"], s), per_seed(second["codec"], s)
    common = sorted(set(a_seed) & set(b_seed))
    diff = sweep_stats.mean_interval([a_seed[k] - b_seed[k] for k in common]) if common else None
    if diff is None or math.isnan(diff["low"]):
        verdict = "one seed, no paired interval"
    elif diff["high"] < 0:
        verdict = f"paired difference {diff['mean']:+.3f} px [{diff['low']:.3f}, {diff['high']:.3f}], below 0"
    else:
        verdict = (
            f"paired difference {diff['mean']:+.3f} px [{diff['low']:.3f}, {diff['high']:.3f}], includes 0"
        )
    lines.append(
        f"* stride {s}: lowest error `{first['codec']}` ({interval(first)}), next `{second['codec']}` "
        f"({interval(second)}); {verdict}."
    )
PAIRS = (  # (a, b, what differs): both decoders present in the record, or the pair is skipped
    ("randomized_rounding", "rr_expected", "the target only: one sample per step against its expectation"),
    ("gaussian_argmax", "dark", "the decoder only: the same Gaussian maps, peak cell against DARK"),
    ("randomized_rounding", "rr_2x2", "the decoder only: the same maps, 3 x 3 window against the 2 x 2 one"),
)
for a_name, b_name, what in PAIRS:
    for s in strides:
        a_seed, b_seed = per_seed(a_name, s), per_seed(b_name, s)
        common = sorted(set(a_seed) & set(b_seed))
        if not common:
            continue
        diff = sweep_stats.mean_interval([a_seed[k] - b_seed[k] for k in common])
        if math.isnan(diff["low"]):
            verdict = "one seed, no interval"
        elif diff["low"] > 0 or diff["high"] < 0:
            verdict = f"[{diff['low']:.3f}, {diff['high']:.3f}], excludes 0"
        else:
            verdict = f"[{diff['low']:.3f}, {diff['high']:.3f}], includes 0"
        lines.append(
            f"* stride {s}, `{a_name}` - `{b_name}` ({what}): {diff['mean']:+.3f} px over seeds {common}, "
            f"95 % interval {verdict}."
        )
met = [t for t in record["targets"] if t["met"] is not None]
lines.append(
    f"\nTargets met: {sum(bool(t['met']) for t in met)} of {len(met)} "
    f"({'; '.join(t['name'] + ': ' + ('met' if t['met'] else 'not met') for t in met)})."
)
display(Markdown(f"From {origin}:\n\n" + "\n".join(lines)))

# %% [markdown]
# ## 8.5 Where the error comes from: the error budget
#
# The mean squared error of a decoder splits exactly (`trainers.studies.budget`, derived in its docstring and
# tested to add up) into four parts: the **noise-induced variance** (how much the prediction moves when only
# the pixel noise is drawn again; compared with the Cramer-Rao bound on that same variance), a **constant
# offset** common to all keypoints, the **cell-phase bias** (the part of the bias that depends on where in
# its cell the keypoint lies: what a quantizing target leaves) and the **per-face bias** (the rest: the same
# under every noise draw, not explained by the sub-cell position). The table gives their shares of the MSE,
# per main decoder and stride, from the record read above.

# %%
PARTS = ("noise_var_px2", "offset_px2", "phase_px2", "per_face_px2")
budget_rows = [r for r in main_rows if math.isfinite(r.get("budget_closure", math.nan))]
if not budget_rows:
    display(Markdown(f"{origin} was measured without noise draws (`noise_draws` < 2): no error budget."))
else:
    table = ["| decoder | stride | MSE (px^2) | noise | offset | phase | per face | noise sd / CRB | slope |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in sorted(budget_rows, key=lambda r: (main_decoders.index(r["codec"]), r["stride"])):
        total = sum(r[k] for k in PARTS)
        shares = " | ".join(f"{100 * r[k] / total:.1f} %" for k in PARTS)
        table.append(f"| `{r['codec']}` | {r['stride']} | {total:.3f} | {shares} | "
                     f"{r['noise_sd_over_bound']:.2f} | {r['slope']:.3f} |")  # fmt: skip
    display(Markdown("\n".join(table)))
    rre = {r["stride"]: r for r in budget_rows if r["codec"] == "rr_expected"}
    if lo in rre and hi in rre:
        a, b = rre[lo], rre[hi]
        share = lambda r, k: 100 * r[k] / sum(r[p] for p in PARTS)  # noqa: E731
        display(Markdown(
            f"From {origin}: `rr_expected`'s MSE grows from {sum(a[k] for k in PARTS):.3f} px^2 at stride {lo} "
            f"to {sum(b[k] for k in PARTS):.3f} px^2 at stride {hi}. Its noise-induced sd is "
            f"{a['noise_sd_over_bound']:.2f} x the Cramer-Rao bound at stride {lo} and {b['noise_sd_over_bound']:.2f} x "
            f"at stride {hi}; the per-face bias is {share(a, 'per_face_px2'):.1f} % of the MSE at stride {lo} and "
            f"{share(b, 'per_face_px2'):.1f} % at stride {hi}, the cell-phase bias {share(a, 'phase_px2'):.1f} % and "
            f"{share(b, 'phase_px2'):.1f} %."
        ))  # fmt: skip

# %% [markdown]
# ## 8.6 Why the residual grows with the stride: the studies
#
# Two studies (`h3r-sweep --study convergence`, `--study representation`; `docs/studies/README.md` says how
# they were run and what they cost) take the sweep's setting further. The **convergence study** is designed
# to train the sweep's four models at strides 4 and 16 for 30 to 1000 steps (3 seeds, the learning rate
# chosen on validation faces): does the coarse / fine ratio fall with training, and which part of the
# budget is left? Its record may be partial: the line printed below says how many of its runs it holds, and
# an interval over fewer than 3 seeds shows its count. The **representation study** keeps the backbone and
# the data and changes the loss, the readout or the fusion, at the largest budget. Their committed records
# are read here.

# %%
studies = {}
for name in ("convergence", "representation"):
    path = REPO_ROOT / "docs" / "studies" / name / "study.json"
    studies[name] = json.loads(path.read_text()) if path.is_file() else None
    print(f"{name}: " + (f"{studies[name]['runs_finished']} of {studies[name]['runs_in_grid']} runs, "
                         f"{studies[name]['cpu_hours']:.2f} CPU-hours, {studies[name]['machine']}"
                         if studies[name] else f"no record at {path}"))  # fmt: skip


def cell(record, variant, stride, steps):
    return next(
        (r for r in record["summary"] if (r["variant"], r["stride"], r["steps"]) == (variant, stride, steps)),
        None,
    )


def iv(stats, digits=3):
    """Mean [95 % interval], with the number of seeds when it is below 3."""
    if stats["n"] < 2:
        return f"{stats['mean']:.{digits}f} (one seed)"
    seeds = f" ({stats['n']} seeds)" if stats["n"] < 3 else ""
    return f"{stats['mean']:.{digits}f} [{stats['low']:.{digits}f}, {stats['high']:.{digits}f}]{seeds}"


conv = studies["convergence"]
if conv:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for name in dict.fromkeys(r["variant"] for r in conv["summary"]):
        for stride, style in ((min(conv["study"]["strides"]), "-"), (max(conv["study"]["strides"]), "--")):
            pts = sorted((r["steps"], r["mean_error_px"]["mean"]) for r in conv["summary"]
                         if r["variant"] == name and r["stride"] == stride)  # fmt: skip
            if pts:
                axes[0].plot(*zip(*pts), style, marker="o", label=f"{name}, stride {stride}")
    axes[0].set(xscale="log", yscale="log", xlabel="training steps", ylabel="mean error (px)",
                title="error against the budget")  # fmt: skip
    axes[0].legend(fontsize=6, ncol=2)
    for name in dict.fromkeys(r["variant"] for r in conv["ratios"]):
        pts = sorted(
            (r["steps"], r["mean"], r["low"], r["high"]) for r in conv["ratios"] if r["variant"] == name
        )
        axes[1].errorbar([p[0] for p in pts], [p[1] for p in pts],
                         yerr=[[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]], marker="o", capsize=3, label=name)  # fmt: skip
    axes[1].axhline(1.0, color="k", lw=0.8)
    axes[1].set(xscale="log", xlabel="training steps", ylabel="stride-16 / stride-4 error",
                title="the ratio, paired by seed (95 % t)")  # fmt: skip
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    pt.show(fig)
    rows_md = ["| model | steps | stride 4 (px) | stride 16 (px) | ratio 16 / 4 | per-face share at 16 | phase share at 16 | noise sd / CRB at 4 |",
               "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in conv["ratios"]:
        fine, coarse = (
            cell(conv, r["variant"], r["fine"], r["steps"]),
            cell(conv, r["variant"], r["coarse"], r["steps"]),
        )
        rows_md.append(f"| `{r['variant']}` | {r['steps']} | {iv(fine['mean_error_px'])} | {iv(coarse['mean_error_px'])} | "
                       f"{iv(r, 2)} | {100 * coarse['share_per_face_px2']['mean']:.1f} % | "
                       f"{100 * coarse['share_phase_px2']['mean']:.1f} % | {iv(fine['noise_sd_over_bound'], 2)} |")  # fmt: skip
    display(Markdown("\n".join(rows_md)))

rep = studies["representation"]
if rep:
    steps = max(rep["study"]["budgets"])
    rows_md = ["| design | stride 4 (px) | stride 16 (px) | ratio 16 / 4 | minus rr_expected at 4 (px) | minus rr_expected at 16 (px) | GFLOPs at 16 |",
               "|---|---|---|---|---|---|---|"]  # fmt: skip
    diffs = {(d["variant"], d["stride"]): d for d in rep["differences"] if d["steps"] == steps}
    for r in rep["ratios"]:
        if r["steps"] != steps:
            continue
        fine, coarse = cell(rep, r["variant"], r["fine"], steps), cell(rep, r["variant"], r["coarse"], steps)
        d4, d16 = diffs.get((r["variant"], r["fine"])), diffs.get((r["variant"], r["coarse"]))
        rows_md.append(f"| `{r['variant']}` | {iv(fine['mean_error_px'])} | {iv(coarse['mean_error_px'])} | {iv(r, 2)} | "
                       f"{iv(d4) if d4 else '-'} | {iv(d16) if d16 else '-'} | {rep['flops'].get(r['variant'] + '@' + str(r['coarse']), float('nan')):.4f} |")  # fmt: skip
    display(Markdown(f"The designs at {steps} steps (paired by seed):\n\n" + "\n".join(rows_md)))

# %% [markdown]
# ## 8.7 What the numbers support
#
# Generated from the records read above; each sentence names its numbers, and a cause is stated only where a
# study isolates it.

# %%
conclusion = []
am = {r["stride"]: r for r in main_rows if r["codec"] == "argmax"}
rre = {r["stride"]: r for r in main_rows if r["codec"] == "rr_expected"}
if lo in am and hi in am:
    on_floor = all(0.95 <= am[s]["mean_error_px"] / s / FLOOR_CELLS <= 1.10 for s in (lo, hi))
    conclusion.append(
        (
            "* **Vanilla heatmaps sit on the quantization floor** (within -5 % / +10 % of it)."
            if on_floor
            else "* **Vanilla heatmaps are not on the quantization floor here.**"
        )
        + f" In {origin}, argmax's error is "
        f"{am[lo]['mean_error_px'] / lo:.3f} cells at stride {lo} and {am[hi]['mean_error_px'] / hi:.3f} at stride {hi} "
        f"(floor {FLOOR_CELLS:.4f})."
    )
if lo in rre and hi in rre:
    cells = [rre[s]["mean_error_px"] / s for s in (lo, hi)]
    most = max(cells) < 0.5 * FLOOR_CELLS
    grows = rre[hi]["mean_error_px"] > rre[lo]["mean_error_px"]
    head = ("removes most of it" if most else "does not remove most of it") + (
        ", but not the growth with the stride"
        if grows
        else ", and its pixel error does not grow with the stride"
    )
    conclusion.append(
        f"* **Randomized rounding {head}.** `rr_expected` is at {cells[0]:.3f} cells at stride {lo} and "
        f"{cells[1]:.3f} at stride {hi} ({cells[0] / FLOOR_CELLS:.2f} and {cells[1] / FLOOR_CELLS:.2f} x the floor), "
        f"{rre[lo]['mean_error_px']:.3f} -> {rre[hi]['mean_error_px']:.3f} px. The target itself is exact "
        "(unbiased, lossless: notebooks 2 and 3); what remains is the trained network's."
    )
if conv:
    top = max(conv["study"]["budgets"])
    by = {(r["variant"], r["steps"]): r for r in conv["ratios"]}
    few = (
        min(b for b in conv["study"]["budgets"] if ("rr_expected", b) in by and b >= 100)
        if any(("rr_expected", b) in by for b in conv["study"]["budgets"])
        else None
    )
    if few is not None and ("rr_expected", top) in by:
        coarse = cell(conv, "rr_expected", max(conv["study"]["strides"]), top)
        fine = cell(conv, "rr_expected", min(conv["study"]["strides"]), top)
        ratio_path = [
            by[("rr_expected", b)]["mean"]
            for b in sorted(conv["study"]["budgets"])
            if b >= few and ("rr_expected", b) in by
        ]
        falls = {
            (f["stride"], f["to"]): f["fall"]
            for f in conv.get("falls", [])
            if f["variant"] == "rr_expected" and f["from"] >= few
        }
        strides_c = sorted(conv["study"]["strides"])
        faster = all(
            falls.get((strides_c[0], b), 0) > falls.get((strides_c[-1], b), 1) for b in {t for _, t in falls}
        )
        rising = all(b > a for a, b in zip(ratio_path, ratio_path[1:]))
        verdict = (
            "the stride-4 one faster, so their ratio grows"
            if faster and rising
            else "but the ratio does not grow at every budget"
            if not rising
            else "the ratio grows"
        )
        fall_text = ", ".join(
            f"{100 * falls[(s, t)]:.1f} % at stride {s}" for (s, t) in sorted(falls) if t == top
        )
        conclusion.append(
            f"* **Training longer lowers both errors, {verdict}.** The stride-16 / stride-4 ratio of "
            f"`rr_expected` is {iv(by[('rr_expected', few)], 2)} at {few} steps and {iv(by[('rr_expected', top)], 2)} at "
            f"{top} (convergence study); the error falls per doubling of the steps, in the last interval, by {fall_text}. At {top} steps the per-face bias is {100 * coarse['share_per_face_px2']['mean']:.1f} % "
            f"of the stride-16 MSE, the cell-phase bias {100 * coarse['share_phase_px2']['mean']:.1f} % and the noise "
            f"{100 * coarse['share_noise_var_px2']['mean']:.1f} %; at stride 4 the noise-induced sd is "
            f"{iv(fine['noise_sd_over_bound'], 2)} x the Cramer-Rao bound."
        )
    for f in conv.get("falls", []):
        if f["variant"] == "rr_expected" and f["stride"] == min(conv["study"]["strides"]) and f["to"] == top:
            conclusion.append(
                f"* **The stride-4 error {'has' if f['fall'] < 0.10 else 'has not'} stopped falling**: "
                f"{100 * f['fall']:.1f} % less per doubling of the steps from {f['from']} to {f['to']}."
            )
if rep:
    steps = max(rep["study"]["budgets"])
    at_top = [r for r in rep["ratios"] if r["steps"] == steps]
    if at_top:
        best = min(at_top, key=lambda r: r["mean"])
        base_ratio = next((r for r in at_top if r["variant"] == "rr_expected"), None)
        d4 = next(
            (
                d
                for d in rep["differences"]
                if d["variant"] == best["variant"] and d["stride"] == best["fine"] and d["steps"] == steps
            ),
            None,
        )
        text = (
            f"* **The flattest design** at {steps} steps is `{best['variant']}`, ratio {iv(best, 2)}"
            + (
                f" against `rr_expected`'s {iv(base_ratio, 2)}"
                if base_ratio and best is not base_ratio
                else ""
            )
            + f"; on the mean over seeds (the target's rule) {'it meets' if best['mean'] <= 1.5 else 'it does not meet'} "
            + "the target of 1.5"
            + (
                f", although with {best['n']} seeds its interval does not exclude 1.5"
                if best["low"] <= 1.5 < best["mean"]
                else ""
            )
        )
        if d4:
            text += f"; its stride-4 error minus `rr_expected`'s is {iv(d4)} px"
        conclusion.append(text + ".")
display(Markdown("\n".join(conclusion)))

# %% [markdown]
# ## Exercises
#
# Solutions: `notebooks/solutions/08_resolution_sweep.py` (run it from the repository root).
#
# 1. **Longer training.** Run the tiny sweep (`SOURCE = "tiny"`) with `STEPS = 150`, then `STEPS = 600`.
#    Which ratios and targets change, and in which direction? Do the intervals shrink?
# 2. **DARK against randomized rounding.** In the committed default sweep, at which strides does DARK's
#    decoder have a lower error than the best randomized-rounding decoder, and is the difference outside
#    the intervals? Check that the two peak-cell decoders (`argmax`, `gaussian_argmax`) stay at or above the
#    vanilla floor at every stride, and say why they must.
# 3. **Jitter by hand.** A predictor that ignores the motion keeps its prediction still while the label
#    moves by $t$ along both axes, so its error vector moves by $-(t, t)$. What jitter sd does that give, in
#    units of the stride, for $n$ moves $t = j s / n$ ($j < n$): $n = 2$, $3$, $4$? Compare with the argmax rows
#    of the sweep read here (its motion is printed in section 8.1), and explain why a predictor that follows
#    the face (slope 1, no wobble) shows 0.
# 4. **Error in cells.** Fit error (cells) $= a/s + b$ to each main decoder's points of the second figure.
#    For which strides is each below the vanilla floor, if the trend continued? What do $a$ and $b$ mean?
# 5. **Real data.** With WFLW at hand, run
#    `h3r-sweep --full base.data.name=wflw base.data.root=~/data/WFLW base.model.name=hrnet_w18` on a GPU and
#    read the result here with `SWEEP_JSON`. Which column would you report in a paper, NME or error in px?
