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
# # 2. Randomized rounding: an unbiased heatmap target
#
# Notebook 1 showed that putting a one-hot target on the *rounded* cell throws the fraction of the
# coordinate away. Yu & Tao (*Heatmap Regression via Randomized Rounding*, TPAMI 2021, arXiv:2009.00225)
# round **at random** instead: up with probability equal to the fraction, down otherwise, with a fresh draw
# every time the sample is seen. Each single target is still one-hot, but *on average* it sits exactly on the
# keypoint, and the network, which cannot predict coin flips, is pushed toward the average.
#
# **Learning goals.** After this notebook you can
#
# 1. write the encoder in three lines (floor, then `rand < fraction`) and check it against
#    `codecs.RandomizedRounding.encode`;
# 2. derive its expectation (the bilinear weights on the four neighbouring cells) and check it by averaging;
# 3. show by simulation that it is unbiased for *every* fraction, and derive its variance $e(1-e)$;
# 4. explain why a single sample is a noisier target than plain rounding, why the loss's optimum is still
#    the keypoint, and what that noise was measured to cost in a short training run.

# %% tags=["parameters"]
# Parameters. The defaults keep the notebook under ~30 s on a 2-core CPU; H3R_NOTEBOOK_FULL=1 (or FULL = True)
# runs 10x more Monte Carlo samples.
import os

FULL = os.environ.get("H3R_NOTEBOOK_FULL", "0") == "1"
N = 200_000 if FULL else 20_000  # draws per fraction in the unbiasedness sweep
SEED = 0

# %%
# %matplotlib inline
import json
from pathlib import Path

import numpy as np
import sympy as sp
import torch
from IPython.display import Markdown, display

from h3r_theory import codecs, plotting
from h3r_theory.theory import montecarlo as mc
from h3r_theory.theory import quantization
from h3r_theory.theory import randomized_rounding as rr
from trainers.sweep import report as sweep_report

REPO_ROOT = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()

# %% [markdown]
# ## 2.1 Sampling a target
#
# Write the heatmap coordinate of a keypoint as $u = i + e$, $i = \lfloor u \rfloor$, $e \in [0, 1)$. Randomized
# rounding draws, independently per axis,
#
# $$q(u) = i + B, \qquad B \sim \operatorname{Bernoulli}(e),$$
#
# and puts a one-hot target on the cell $(q_x, q_y)$. In the codec the draw comes from a `torch.Generator`, so a
# seeded generator gives the same targets on every run. The whole encoder, written out:


# %%
def encode_by_hand(uv: torch.Tensor, generator: torch.Generator, size: tuple[int, int]) -> torch.Tensor:
    """(B, K, 2) heatmap coordinates (cells) -> (B, K, h, w) one-hot targets at a randomly rounded cell."""
    floor = torch.floor(uv)
    cell = (floor + (torch.rand(uv.shape, generator=generator, dtype=uv.dtype) < uv - floor)).long()
    one_hot_x = torch.nn.functional.one_hot(cell[..., 0], size[0]).to(uv.dtype)  # (B, K, w)
    one_hot_y = torch.nn.functional.one_hot(cell[..., 1], size[1]).to(uv.dtype)  # (B, K, h)
    return one_hot_y[..., :, None] * one_hot_x[..., None, :]


codec = codecs.RandomizedRounding(input_size=(24, 24), heatmap_size=(6, 6))  # stride 4
g = torch.Generator().manual_seed(SEED)
uv_many = 0.5 + 4.99 * torch.rand(8, 17, 2, generator=g, dtype=torch.float64)  # inside the 6 x 6 map
by_hand = encode_by_hand(uv_many, torch.Generator().manual_seed(SEED), (6, 6))
library = codec.encode(codec.to_input(uv_many), generator=torch.Generator().manual_seed(SEED)).heatmaps
print(
    "hand-written encoder == codecs.RandomizedRounding.encode (same generator):",
    torch.equal(by_hand, library),
)
assert torch.equal(by_hand, library)

# %% [markdown]
# The library's encoder does the same two steps, plus what a library must: it clamps keypoints to the map, marks
# invisible ones, and runs batched on any device. Here is one keypoint, sampled four times:

# %%
uv_true = torch.tensor([2.3, 2.7], dtype=torch.float64)  # cells: e_x = 0.3, e_y = 0.7
keypoint = codec.to_input(uv_true)[None, None]  # (1, 1, 2) input pixels
generator = torch.Generator().manual_seed(SEED)
samples = {f"sample {t + 1}": codec.encode(keypoint, generator=generator).heatmaps[0, 0] for t in range(4)}
plotting.heatmap_panels(
    samples,
    keypoint=uv_true.tolist(),
    value_label="target value",
    title="four randomized-rounding targets of the same keypoint (x)",
)

# %% [markdown]
# ## 2.2 The expectation: bilinear weights
#
# Per axis the sample is $i$ with probability $1 - e$ and $i + 1$ with probability $e$; the axes are
# independent, so the four neighbouring cells are hit with the bilinear weights
#
# $$p_{i,j} = (1-e_x)(1-e_y),\quad p_{i+1,j} = e_x(1-e_y),\quad p_{i,j+1} = (1-e_x)e_y,\quad p_{i+1,j+1} = e_x e_y .$$
#
# That is `codec.expected(...)`. Averaging more and more sampled targets converges to it, at the Monte Carlo
# rate $1/\sqrt{M}$:

# %%
expected = codec.expected(keypoint).heatmaps[0, 0]
draws = (10, 100, 1_000, 10_000, 100_000)
gaps, means = [], {}
for M in draws:
    freq = mc.empirical_distribution(codec, keypoint, M, torch.Generator().manual_seed(SEED))[0, 0]
    gaps.append(float((freq - expected).abs().max()))
    if M in (10, 1_000):
        means[f"mean of {M} samples"] = freq
means["expected (bilinear)"] = expected
plotting.heatmap_panels(
    means,
    keypoint=uv_true.tolist(),
    value_label="probability of the cell",
    title="averaged samples approach the expected target",
)

# %%
plotting.line_plot(
    np.array(draws, dtype=float),
    {"max |mean of M samples - expected|": gaps, "1 / sqrt(M)": 1 / np.sqrt(draws)},
    "number of samples M",
    "largest cell difference (probability)",
    logx=True,
    logy=True,
    styles={"max |mean of M samples - expected|": "o-", "1 / sqrt(M)": "--"},
)

# %%
# NBVAL_CHECK_OUTPUT
print("expected target on the 2 x 2 support (rows: v = 2, 3; columns: u = 2, 3):")
print(np.array2string(expected[2:4, 2:4].numpy(), precision=4, floatmode="fixed"))
print("sum of the expected map:", f"{float(expected.sum()):.6f}")
grid = torch.arange(6, dtype=torch.float64)
mean_cell = [float((expected.sum(0) * grid).sum()), float((expected.sum(1) * grid).sum())]
print(
    "its mean cell (u, v):", [f"{v:.6f}" for v in mean_cell], " true:", [f"{v:.6f}" for v in uv_true.tolist()]
)

# %% [markdown]
# The mean cell of the expected target *is* the keypoint: the fraction is not lost, it has moved from the
# position of the peak into the *weights* of the neighbouring cells. (Notebook 3 proves that a decoder reading
# those weights recovers $u$ exactly.)
#
# ## 2.3 Unbiased for every fraction
#
# Symbolically, with `h3r_theory.theory.randomized_rounding`:

# %%
moments = rr.randomized_rounding_moments(1)
display(Markdown(plotting.derivation_markdown(moments, "moments of one axis")))

# %% [markdown]
# $\mathbb E[q] = i(1-e) + (i+1)e = i + e = u$, for *every* $e$, not only on average over $e$ as for plain
# rounding. Plain rounding is unbiased only averaged over uniform fractions; for a keypoint at a fixed
# fraction its bias is $[e \ge \frac12] - e$, up to half a cell. By simulation, through the codec, at fixed
# fractions:

# %%
FRACTIONS = np.round(np.linspace(0.0, 0.9, 10), 2)
bias, bias_se, bias_z, var, var_se = [], [], [], [], []
for e in FRACTIONS:
    sim = mc.simulate_randomized_rounding(fractions=(float(e), 0.5), n=N, seed=SEED)
    bias_z.append(sim["bias_x"].z_score(0.0))  # 0 when e = 0: every draw is exact, no spread
    bias.append(sim["bias_x"].mean)
    bias_se.append(sim["bias_x"].stderr)
    var.append(sim["mse_x"].mean)  # the bias is 0, so the MSE is the variance
    var_se.append(sim["mse_x"].stderr)
bias, bias_se, var, var_se = map(np.asarray, (bias, bias_se, var, var_se))
rounding_bias = (FRACTIONS >= 0.5) - FRACTIONS
plotting.line_plot(
    FRACTIONS,
    {"randomized rounding (simulated)": bias, "plain rounding (exact)": rounding_bias},
    "fraction e (cells)",
    "bias E[q] - u (cells)",
    bands={"randomized rounding (simulated)": 2 * bias_se},
    styles={"randomized rounding (simulated)": "o-", "plain rounding (exact)": "s--"},
    title="conditional bias at a fixed fraction",
)

# %%
# NBVAL_CHECK_OUTPUT
worst = int(np.argmax(np.abs(bias_z)))
print(
    f"{len(FRACTIONS)} fractions x {N} draws: largest |bias| / stderr = {abs(bias_z[worst]):.1f} "
    f"(at e = {FRACTIONS[worst]:.1f}); all within 4 standard errors: {bool((np.abs(bias_z) <= 4).all())}"
)

# %% [markdown]
# ## 2.4 The price: variance $e(1-e)$
#
# The covariance in the derivation above is $\operatorname{Var}[q] = e(1-e)$ per axis: zero on a cell centre,
# largest, $1/4$ cell$^2$, half-way between two cells. Simulated against the closed form:

# %%
e = rr.randomized_rounding_moments(1).symbols["e_x"]
variance = sp.lambdify(e, rr.randomized_rounding_moments(1).covariance[0, 0], "numpy")
plotting.line_plot(
    FRACTIONS,
    {"simulated": var, "e (1 - e)": variance(FRACTIONS)},
    "fraction e (cells)",
    "variance of one axis (cells^2)",
    bands={"simulated": 2 * var_se},
    styles={"simulated": "o", "e (1 - e)": "-"},
)

# %%
# NBVAL_CHECK_OUTPUT
exact_var = variance(FRACTIONS)
# At e = 0 (always exact) and e = 1/2 (always half a cell off) every draw has the same squared error: no
# spread, so those must match exactly rather than within standard errors.
spread = var_se > 0
z = (var[spread] - exact_var[spread]) / var_se[spread]
print("largest |simulated - e(1-e)| / stderr:", f"{np.abs(z).max():.1f}")
for e_, v_, x_ in zip(FRACTIONS[~spread], var[~spread], exact_var[~spread]):
    print(f"e = {e_:.1f}: every draw has squared error {v_:.4f}, e(1-e) = {x_:.4f}")
single = rr.single_sample_error(2)
print(
    "mean 2-D error of ONE sample:   ",
    sp.sstr(single.closed_form),
    "=",
    f"{float(single.closed_form):.4f} cells",
)
print(
    "mean 2-D error of plain rounding:",
    f"{float(quantization.mean_quantization_error('round', 2)):.4f} cells",
)
print("mean squared error of one sample (2-D):", sp.sstr(rr.single_sample_mse(2).closed_form), "cells^2")

# %% [markdown]
# A single sample is a *worse* target than the rounded cell: it is farther from the keypoint on average. Why can
# the network still learn $u$? Because it never sees the coin: given the image, any prediction $c$ is a fixed
# number, and its expected squared error against the random target splits into a bias and a noise term,
#
# $$\mathbb E\big[(q - c)^2\big] = (c - u)^2 + e(1-e),$$
#
# minimised at $c = u$. The noise term does not depend on $c$, so the *optimum* of the loss is the mean of the
# targets, which is the keypoint:

# %%
display(Markdown(plotting.derivation_markdown(rr.learn_the_expectation(), "why the network learns the mean")))

# %% [markdown]
# That is a statement about the optimum, reached with unlimited data and training. A finite run can still pay
# for the noise, and the project measured it. Its committed default sweep, `docs/sweep/sweep.json` (the command
# that made it is printed below), trains the tiny CNN on the synthetic faces twice for every seed and stride.
# One run uses one sampled target per step (`randomized_rounding`). The other uses the noise-free expected
# target (`rr_expected`, the bilinear 4-cell distribution). Loss, decoder, data and initial parameters are the
# same, so the difference between the two runs of a seed isolates the target. Read from the record, with the
# per-seed differences and their mean and 95 % t interval over the seeds
# (`trainers.sweep.report.paired_differences`):

# %%
record = json.loads((REPO_ROOT / "docs" / "sweep" / "sweep.json").read_text())
train = record["sweep"]["base"]["train"]
print(f"record: docs/sweep/sweep.json, command {record['command']!r}")
print(
    f"each run: {train['max_steps']} steps of {train['batch_size']} images, {record['base_input']} x "
    f"{record['base_input']} input, seeds {record['sweep']['seeds']}"
)
mean_px = {
    (r["codec"], r["stride"]): r["mean_error_px"]
    for r in record["summary"]
    if "stride" in r["sweep"] and r["input"] == record["base_input"]
}
noise_cost = [p for p in sweep_report.paired_differences(record) if p["codec"] == "randomized_rounding"]
for p in noise_cost:
    sampled, expected_target = (
        mean_px[("randomized_rounding", p["stride"])],
        mean_px[("rr_expected", p["stride"])],
    )
    print(
        f"stride {p['stride']:2d}: sampled {sampled:.3f} px, expected target {expected_target:.3f} px; "
        f"sampled minus expected {p['mean']:+.3f} px [{p['low']:+.3f}, {p['high']:+.3f}] "
        f"(per seed {', '.join(f'{d:+.3f}' for d in p['per_seed'])}); "
        f"the expected target {100 * (1 - expected_target / sampled):.0f} % lower"
    )

# %%
text = (
    "At every stride of the record the interval "
    + ("excludes" if all(p["low"] > 0 for p in noise_cost) else "does not always exclude")
    + f" 0: at {record['sweep']['base']['train']['max_steps']} steps one sample per step costs "
    + ", ".join(f"{p['mean']:.2f} px at stride {p['stride']}" for p in noise_cost)
    + ". The record does not say why. A plausible reading is that noisier gradients need more steps; every run "
    "of this record trains for the same number of steps, so the record alone does not test that. The convergence "
    "study below does."
)
display(Markdown(text))

# %% [markdown]
# **More training.** The committed convergence study, `docs/studies/convergence/study.json` (command printed
# below), trains the same two targets (`rr_sampled`: one sample per step; `rr_expected`: the expected target) for
# 30, 100, 300 and 1,000 steps, at strides 4 and 16, three seeds each, paired by seed. The learning rate of each
# model (variant, stride, steps) is picked from the study's grid by the validation faces' mean error of the
# selection seed, so the two targets may end up with different rates; the table prints each one. Read from its
# `differences` list (sampled minus expected, mean and 95 % t interval over the seeds):

# %%
study = json.loads((REPO_ROOT / "docs" / "studies" / "convergence" / "study.json").read_text())
print(
    f"record: docs/studies/convergence/study.json, command {study['command']!r}, seeds {study['study']['seeds']}, "
    f"lr grid {study['study']['lrs']} (selection seed {study['study']['selection_seed']})"
)
conv_px = {(s["variant"], s["stride"], s["steps"]): s for s in study["summary"]}
conv_gap = {
    (d["stride"], d["steps"]): d
    for d in study["differences"]
    if d["variant"] == "rr_sampled" and d["reference"] == "rr_expected"
}
for (stride, steps), d in sorted(conv_gap.items()):
    smp, exp_ = conv_px[("rr_sampled", stride, steps)], conv_px[("rr_expected", stride, steps)]
    print(
        f"stride {stride:2d}, {steps:4d} steps: sampled {smp['mean_error_px']['mean']:.3f} px (lr {smp['lr']}), "
        f"expected {exp_['mean_error_px']['mean']:.3f} px (lr {exp_['lr']}); "
        f"sampled minus expected {d['mean']:+.3f} px [{d['low']:+.3f}, {d['high']:+.3f}]"
    )

# %%
budgets = study["study"]["budgets"]
late = [b for b in budgets if b >= 100]
lr_differs = [
    (st, b)
    for (st, b) in sorted(conv_gap)
    if conv_px[("rr_sampled", st, b)]["lr"] != conv_px[("rr_expected", st, b)]["lr"]
]


def gap_list(stride):
    return ", ".join(
        f"{conv_gap[(stride, b)]['mean']:+.3f} px ({b})"
        + (
            f" [{conv_gap[(stride, b)]['low']:+.3f}, {conv_gap[(stride, b)]['high']:+.3f}]"
            if b == budgets[-1]
            else ""
        )
        for b in late
    )


g4 = [conv_gap[(4, b)]["mean"] for b in late]
all_above = all(conv_gap[(st, b)]["low"] > 0 for st in study["study"]["strides"] for b in late)
text = (
    f"From {late[0]} steps on, the sampled target's error minus the expected target's is, at stride 4, "
    + gap_list(4)
    + "; at stride 16, "
    + gap_list(16)
    + ". Every one of these intervals "
    + ("lies above 0" if all_above else "does not lie above 0")
    + f". So, within {budgets[-1]} steps, more training does not close the gap: at stride 4 it stays between "
    f"{min(g4):.2f} and {max(g4):.2f} px while the expected target's error falls from "
    f"{conv_px[('rr_expected', 4, late[0])]['mean_error_px']['mean']:.2f} to "
    f"{conv_px[('rr_expected', 4, budgets[-1])]['mean_error_px']['mean']:.2f} px, and at stride 16 it is larger "
    f"in px at {budgets[-1]} steps ({conv_gap[(16, budgets[-1])]['mean']:.2f}) than at {late[1]} "
    f"({conv_gap[(16, late[1])]['mean']:.2f}; at {late[0]} it was {conv_gap[(16, late[0])]['mean']:.2f}). "
    f"(The {budgets[0]}-step cells, printed above, are left out: both models are still several px off there.) "
    + (
        "The two targets got different learning rates at "
        + ", ".join(
            f"stride {st}, {b} steps (sampled {conv_px[('rr_sampled', st, b)]['lr']}, "
            f"expected {conv_px[('rr_expected', st, b)]['lr']})"
            for st, b in lr_differs
        )
        + ", so there the gap also contains the learning-rate choice."
        if lr_differs
        else "Both targets got the same learning rate in every cell."
    )
    + " Whether the gap closes after far longer training the study does not say."
)
display(Markdown(text))

# %% [markdown]
# ## 2.5 Play with the fraction
#
# The figure below is static, so it renders without a kernel: for a fraction $e_x = e_y = e$ it shows one
# sample, the mean of 200 samples and the expected target. Run the notebook to get a slider for $e$.


# %%
def rr_panels(e: float, num: int = 200, seed: int = SEED):
    """One sample, the mean of ``num`` samples and the expected target for fractions (e, e)."""
    uv = torch.tensor([2.0 + e, 2.0 + e], dtype=torch.float64)
    kp = codec.to_input(uv)[None, None]
    g = torch.Generator().manual_seed(seed)
    maps = {
        "one sample": codec.encode(kp, generator=g).heatmaps[0, 0],
        f"mean of {num} samples": mc.empirical_distribution(codec, kp, num, g)[0, 0],
        "expected": codec.expected(kp).heatmaps[0, 0],
    }
    return plotting.heatmap_panels(
        maps,
        keypoint=uv.tolist(),
        value_label="probability of the cell",
        title=f"e = {e:.2f}: variance per axis e(1-e) = {e * (1 - e):.3f} cells^2",
    )


rr_panels(0.3)

# %%
try:
    import ipywidgets as widgets
except ImportError:  # the static figure above stands in for the slider
    widgets = None
    print("ipywidgets is not installed: pip install ipywidgets for the interactive slider")
if widgets is not None:
    slider = widgets.FloatSlider(value=0.3, min=0.0, max=0.99, step=0.01, description="fraction e")
    widgets.interact(lambda e: display(rr_panels(e)), e=slider)

# %% [markdown]
# ## Exercises
#
# Solutions: `notebooks/solutions/02_randomized_rounding.py`.
#
# 1. In 1-D, the mean absolute error of one sample is $2e(1-e)$ at fraction $e$. Derive it with sympy and average
#    it over $e \sim U[0,1)$ to get $1/3$; compare with $1/4$ for plain rounding.
# 2. A target averaged over $M$ independent draws has per-axis standard deviation $\sqrt{e(1-e)/M}$. How many
#    draws make it at most $0.01$ cells for *every* fraction? Check your answer with
#    `mc.simulate_randomized_rounding`.
# 3. A tempting variant rounds up with probability $e^2$. Compute its bias with sympy, find the fraction where
#    it is worst, and confirm it by simulation (hint: sample `torch.rand(n) < e**2`).
