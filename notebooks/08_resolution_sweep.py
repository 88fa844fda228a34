# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · The resolution sweep: does randomized rounding make heatmap resolution free?
#
# **The claim under test** (Yu & Tao, *Heatmap Regression via Randomized Rounding*, IEEE TPAMI 2021,
# [arXiv:2009.00225](https://arxiv.org/abs/2009.00225)): vanilla heatmap regression loses accuracy as the
# heatmap gets coarser, because rounding a keypoint to its cell costs on average
# $(\sqrt 2 + \operatorname{asinh} 1)/6 \approx 0.3826$ cells, i.e. $0.3826 \times$ stride input pixels;
# randomized rounding encodes the sub-cell position in the *distribution* of its random targets and
# decodes it from several activation points, so its error should not grow with the stride.
#
# **Learning goals.** After this notebook you can
#
# 1. read the sweep's design: one thing changes (the heatmap stride), everything else is fixed;
# 2. plot error against stride per codec next to the floor $0.3826 \times s$, and read the *jitter*
#    column (how much the error vector moves when the image moves by a fraction of a pixel);
# 3. decide, from the numbers, whether the claim held in this run, and say what a run would need to
#    settle it (more steps, more data, a GPU).
#
# The sweep itself lives in `trainers/sweep.py` (`h3r-sweep` on the command line). This notebook **reads**
# a finished sweep when one exists (`runs/sweep/results/sweep.json`, written by `h3r-sweep`), and otherwise
# **runs a tiny one** through the same API, small enough for a CPU test (its run time is printed). The tiny sweep
# trains for very few steps, so its numbers are noisy; the discussion below is generated from whichever
# numbers are there and says which sweep they came from.

# %% tags=["parameters"]
# H3R_NOTEBOOK_FULL=1 in the environment runs the default sweep (RUN_FULL) unless a finished one is read.
import os

FULL = os.environ.get("H3R_NOTEBOOK_FULL", "0") == "1"
SWEEP_JSON = None  # a sweep.json to read; None = runs/sweep/results/sweep.json when it exists, else run one
RUN_FULL = (
    FULL  # True: with no finished sweep to read, run the default one (trainers/configs/sweep.yaml; long)
)
STRIDES = [4, 8]  # tiny sweep: heatmap strides (input px per cell): 16 x 16 and 8 x 8 maps at 64 px
SEEDS = [0, 1, 2]  # tiny sweep: one run per seed (initial parameters and data), for the intervals
STEPS = 100  # tiny sweep: training steps per (codec, stride, seed)
BATCH_SIZE = 16  # tiny sweep: images per step
INPUT_SIZE = 64  # tiny sweep: square input size in px (a multiple of 16)
MODEL_WIDTH = None  # tiny sweep: stem width of the tiny CNN (None = the model's default, 16)
JITTER_SHIFTS = [0.0, 0.5]  # tiny sweep: sub-pixel shifts per axis (px); the default sweep uses 4
DEVICE = "auto"

# %%
# %matplotlib inline
import contextlib
import io
import json
import time
from pathlib import Path

import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from h3r_theory.theory.quantization import mean_quantization_error
from trainers import plotting as pt
from trainers import sweep as sweep_module
from trainers import sweep_stats

plt.rcParams.update({"figure.dpi": 80, "savefig.dpi": 80})
REPO_ROOT = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
FLOOR_CELLS = float(mean_quantization_error("round", 2))
print(f"vanilla floor (exact, sympy): (sqrt(2) + asinh(1)) / 6 = {FLOOR_CELLS:.6f} cells")

# %% [markdown]
# ## 1 · The experiment
#
# For each stride $s$, each training codec and each seed, the same tiny CNN (its parameters do not depend
# on the output stride, so within a seed every run starts from the same parameters), the same data and
# schedule; only the heatmap changes:
#
# | model | target | loss | decoders |
# |---|---|---|---|
# | `argmax` | one-hot at the rounded cell | spatial-softmax CE | peak cell |
# | `randomized_rounding` | one-hot at a randomly rounded cell, one fresh sample per step | spatial-softmax CE | 3 x 3 window; the 2 x 2 decoder |
# | `rr_expected` | the sample's expectation, the bilinear 4-cell distribution | spatial-softmax CE | 3 x 3 window |
# | `gaussian` (default sweep) | Gaussian at the exact position | MSE | DARK's Taylor step; peak cell |
#
# Each model is measured on the held-out faces (mean error in input pixels, NME), on the same faces
# **re-rendered** at sub-pixel shifts $(dx, dy)$ (the renderer is exact, so nothing is blurred): the
# **jitter** is the sd of the 2-D error vector over the shifts; and against the **Cramer-Rao bound** of
# each keypoint (the smallest RMS error an unbiased estimator can reach on these images, Gaussian pixel
# noise). Every number is a mean over seeds with a 95 % Student-t interval.

# %%
default_json = REPO_ROOT / "runs" / "sweep" / "results" / "sweep.json"
record, origin = None, None
if SWEEP_JSON is not None or default_json.is_file():
    source = Path(SWEEP_JSON) if SWEEP_JSON is not None else default_json
    record = json.loads(source.read_text())
    origin = f"read from `{source}`"
    if "summary" not in record:  # written by an older h3r-sweep, without seeds or intervals
        print(f"{source} has no 'summary' (an older sweep format): running the tiny sweep instead")
        record = None
if record is None:
    if RUN_FULL:
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
            f"jitter_shifts={json.dumps(JITTER_SHIFTS)}",
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
        origin = (
            f"a tiny sweep run by this notebook ({STEPS} steps of {BATCH_SIZE} images per run, "
            f"{INPUT_SIZE} x {INPUT_SIZE} input, tiny CNN, seeds {SEEDS})"
        )
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        record = sweep_module.run_sweep(sweep_config, progress=False, log=lambda text: None)
    print(f"sweep finished in {time.perf_counter() - t0:.0f} s")
rows, summary = record["rows"], record["summary"]
base = record["base_input"]
stride_rows = [r for r in summary if "stride" in r["sweep"] and r["input"] == base]
strides = sorted({r["stride"] for r in stride_rows})
print(f"sweep: {origin}")
print(f"title: {record.get('title')}; machine: {record.get('machine')}")
print(
    f"{len(rows)} rows (decoder x run); strides {strides}; decoders "
    f"{list(dict.fromkeys(r['codec'] for r in rows))}; {record.get('train_size')} training / "
    f"{record.get('eval_size')} held-out samples per seed"
)

# %% [markdown]
# ## 2 · The tables and the targets
#
# Generated by `trainers.sweep.format_table` (the same text as `sweep.md`): error with its 95 % interval
# over seeds, the error as a multiple of argmax's at the finest stride, the jitter, the error as a multiple
# of the Cramer-Rao bound, the vanilla floor $0.3826 \times s$, the forward FLOPs, then the targets as
# measured checks and the error conditional on the true sub-cell position.

# %%
display(Markdown(sweep_module.format_table(record, markdown=True)))

# %% [markdown]
# ## 3 · Error against stride, with the floor and the bound
#
# One line per decoder (mean over seeds), its 95 % interval as a band; the dashed line is the vanilla floor,
# the dotted one the Cramer-Rao bound (RMS) of the held-out keypoints.

# %%
figure_rows = [
    {**r, "mean": r["mean_error_px"], "low": r["mean_error_px_low"], "high": r["mean_error_px_high"]}
    for r in stride_rows
]
bounds = [r["rms_bound_px"] for r in stride_rows if r["rms_bound_px"] == r["rms_bound_px"]]
fig = sweep_stats.figure_error_vs_stride(figure_rows, bound_px=sum(bounds) / len(bounds) if bounds else None)
pt.show(fig)

# %% [markdown]
# The same errors **in cells** (error / stride): a vanilla model cannot beat about $0.38$ cells on average,
# whatever the stride.

# %%
fig, ax = plt.subplots(figsize=(5.0, 3.2))
for name in dict.fromkeys(r["codec"] for r in stride_rows):
    pts = sorted((r["stride"], r["mean_error_px"] / r["stride"]) for r in stride_rows if r["codec"] == name)
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
ax.legend(fontsize=7)
fig.tight_layout()
pt.show(fig)

# %% [markdown]
# ## 4 · What was measured, stride by stride
#
# Generated from the summary: each decoder's error at the coarsest stride over its error at the finest
# (a flat curve gives 1), its error in cells, and which differences lie outside both intervals. It states
# measurements only; the causes of a growing error are what the default sweep's variants (sampled vs
# expected target, the decoders, the temperature) are there to separate.


# %%
def at(codec, stride):
    hits = [r for r in stride_rows if r["codec"] == codec and r["stride"] == stride]
    return hits[0] if hits else None


def interval(r):
    if r["mean_error_px_low"] != r["mean_error_px_low"]:  # nan: one seed
        return f"{r['mean_error_px']:.3f} px (one seed)"
    return f"{r['mean_error_px']:.3f} px [{r['mean_error_px_low']:.3f}, {r['mean_error_px_high']:.3f}]"


lo, hi = strides[0], strides[-1]
lines = []
for name in dict.fromkeys(r["codec"] for r in stride_rows):
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
    apart = first["mean_error_px_high"] < second["mean_error_px_low"]
    lines.append(
        f"* stride {s}: lowest error `{first['codec']}`, next `{second['codec']}`; their intervals "
        f"{'do not overlap' if apart else 'overlap (the difference is within the seed noise)'}."
    )
met = [t for t in record["targets"] if t["met"] is not None]
lines.append(
    f"\nTargets met: {sum(bool(t['met']) for t in met)} of {len(met)} "
    f"({'; '.join(t['name'] + ': ' + ('met' if t['met'] else 'not met') for t in met)})."
)
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## Exercises
#
# Solutions: `notebooks/solutions/08_resolution_sweep.py` (run it from the repository root).
#
# 1. **Longer training.** Rerun the tiny sweep with `STEPS = 600`. Which ratios and targets change, and
#    in which direction? Do the intervals shrink?
# 2. **The full default sweep.** Set `RUN_FULL = True` (or run `h3r-sweep` in a terminal; the notebook then
#    reads `runs/sweep/results/sweep.json`). Where does DARK's decoder beat randomized rounding, and is the
#    difference outside the intervals?
# 3. **Jitter by hand.** A predictor snapped to a cell keeps its prediction still while the label moves by
#    the shift, so (as long as no cell border is crossed) its error vector moves by minus the shift. What
#    jitter sd does that give for per-axis shifts {0, 0.5} and for {0, 0.25, 0.5, 0.75}, in 2-D? Compare
#    with the argmax rows, and explain why a perfectly equivariant predictor would show 0.
# 4. **Error in cells.** Fit error (cells) $= a/s + b$ to each codec's points of the second figure. For
#    which strides is each codec below the vanilla floor, if the trend continued? What do $a$ and $b$ mean?
# 5. **Real data.** With WFLW at hand, run
#    `h3r-sweep --full base.data.name=wflw base.data.root=~/data/WFLW base.model.name=hrnet_w18` on a GPU and
#    read the result here with `SWEEP_JSON`. Which column would you report in a paper, NME or error in px?
