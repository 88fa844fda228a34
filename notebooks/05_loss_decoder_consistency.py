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
# # 5. Loss and decoder must match
#
# A network trained with a loss $L$ converges (with enough capacity and data) to the **population optimum** of
# $L$: the output that minimises the expected loss over the random targets. The decoder then reads that optimum.
# The pair is *consistent* when decoding the optimum returns the keypoint. Randomized rounding (Yu & Tao, TPAMI
# 2021, arXiv:2009.00225) is lossless only with a consistent pair; pick the wrong decoder and a systematic bias
# comes back, on average about a quarter of the vanilla quantization error (section 5.2 computes it).
#
# **Learning goals.** After this notebook you can
#
# 1. derive the population optimum of the spatial softmax cross-entropy, of per-cell binary cross-entropy and of
#    the mean squared error;
# 2. say which decoder activation (`"logits"` or `"probabilities"`) reads each optimum without bias;
# 3. derive the bias of the inconsistent pair "softmax over BCE logits" and locate its maximum;
# 4. run a small fitting experiment in which the biased pairing fails and the consistent ones work.
#
# References: Yu & Tao 2021 (randomized rounding, softmax cross-entropy), Xiao et al. ECCV 2018 (MSE to
# Gaussian targets, argmax), Sun et al. ECCV 2018 (integral regression).

# %% tags=["parameters"]
# Parameters. The defaults keep the notebook under ~30 s on a 2-core CPU; H3R_NOTEBOOK_FULL=1 (or FULL = True)
# draws 10x more randomized-rounding samples and fits longer.
import os

FULL = os.environ.get("H3R_NOTEBOOK_FULL", "0") == "1"
NUM_SAMPLES = 1_000_000 if FULL else 100_000  # randomized-rounding draws per keypoint in the fit
STEPS = 800 if FULL else 400  # Adam steps of the free-logit fit
SEED = 0

# %%
# %matplotlib inline
import numpy as np
import sympy as sp
import torch
from IPython.display import Markdown, display

from h3r_theory import codecs, plotting
from h3r_theory.theory import consistency, losslessness, quantization
from h3r_theory.theory import montecarlo as mc

# %% [markdown]
# ## 5.1 Softmax cross-entropy: the optimum is the expected target
#
# Randomized rounding trains on one-hot targets at a random cell $j$, hit with probability $p_j$ (the bilinear
# weights of notebook 2). With $\pi = \operatorname{softmax}(z)$ the spatial softmax cross-entropy of one target
# is $-\log \pi_j$; its expectation over the random target is
#
# $$R(\pi) = -\sum_j p_j \log \pi_j = H(p) + \operatorname{KL}(p \,\|\, \pi),$$
#
# minimised at $\pi = p$. A Lagrange multiplier for $\sum \pi = 1$ gives the same, with sympy:

# %%
display(
    Markdown(
        plotting.derivation_markdown(
            consistency.softmax_cross_entropy_optimum(4), "optimum of the spatial softmax cross-entropy"
        )
    )
)

# %% [markdown]
# So the network's softmax converges to the bilinear distribution, whose mean is $u$ (notebook 3, claim 4).
# The consistent decoder is a softmax over the activation points' **logits**: `decode(output, activation="logits")`
# (`losses.default_loss(codec)` pairs them, and `codec.default_activation` says `"logits"`).
#
# ## 5.2 Binary cross-entropy: the optimum is the probability of each cell
#
# A second natural loss treats every cell as its own yes/no question: a sigmoid per cell and binary
# cross-entropy (BCE). Which loss the authors used is not known: their release
# (github.com/baoshengyu/H3R; facts in `../shared/notes/h3r-release.md`) ships inference code only, no
# training code. Its head outputs a two-channel (background / foreground) map per landmark, laid out
# (N, 2, K, H, W), class-major, and its decoder takes channel 1 and applies a softmax over its 9 largest *raw*
# values over the whole map, times the stride. Whether that softmax reads the optimum without bias depends on
# the undocumented loss; notebook 9 works through both readings. Here, the BCE case. Each cell is a separate
# Bernoulli problem, hit with probability $p$:

# %%
display(Markdown(plotting.derivation_markdown(consistency.bce_optimum(), "optimum of per-cell BCE")))

# %% [markdown]
# The optimum logit is $z = \log\frac{p}{1-p}$, and $\sigma(z) = p$. The consistent decoder normalises the
# **probabilities** $\sigma(z)$. A softmax over these logits instead weighs cell $j$ by
# $e^{z_j} = p_j / (1 - p_j)$, its *odds*, which favours the heavier cell. In 1-D, with the two support cells
# $i$ and $i+1$ at weights $1-e$ and $e$:

# %%
bias_derivation = consistency.bce_logits_softmax_bias()
display(
    Markdown(plotting.derivation_markdown(bias_derivation, "bias of softmax over BCE logits (1-D, cells)"))
)

# %%
# NBVAL_CHECK_OUTPUT
e_star, max_bias = consistency.bce_logits_softmax_max_bias()
print("worst fraction e* =", sp.sstr(sp.nsimplify(e_star)), "=", f"{float(e_star):.6f}")
print("largest |bias|    =", sp.sstr(sp.simplify(max_bias)), "=", f"{float(max_bias):.6f} cells")
print("bias at e = 1/2:", bias_derivation.closed_form.subs(bias_derivation.symbols["e_x"], sp.Rational(1, 2)))

# %% [markdown]
# That is the worst fraction. A fair comparison with the vanilla error ($0.3826$ cells, a *mean* over uniformly
# placed keypoints) is the *mean* bias over uniform fractions, in 1-D and in 2-D, where the bias is not
# separable (`consistency.bce_logits_softmax_bias_2d`). Computed from the closed forms with a midpoint rule:

# %%
# NBVAL_CHECK_OUTPUT
GRID = 400  # midpoint rule, GRID points per axis
mid = (np.arange(GRID) + 0.5) / GRID
bias_1d = sp.lambdify(bias_derivation.symbols["e_x"], bias_derivation.closed_form, "numpy")(mid)
two_d = consistency.bce_logits_softmax_bias_2d()
ex_grid, ey_grid = np.broadcast_arrays(mid[:, None], mid[None, :])  # e_x down, e_y across
bx, by = sp.lambdify((two_d.symbols["e_x"], two_d.symbols["e_y"]), list(two_d.closed_form), "numpy")(
    ex_grid, ey_grid
)
odds_bias_2d = np.hypot(bx, by)
vanilla_2d = float(quantization.mean_quantization_error("round", 2))
print(f"1-D: mean |b| = {np.abs(bias_1d).mean():.4f} cells, max {np.abs(bias_1d).max():.4f}")
print(f"2-D: mean |b| = {odds_bias_2d.mean():.4f} cells, max {odds_bias_2d.max():.4f}")
print(
    f"vanilla rounding, mean 2-D error {vanilla_2d:.4f} cells: the mean 2-D odds bias is "
    f"{odds_bias_2d.mean() / vanilla_2d:.0%} of it"
)

# %% [markdown]
# Check the closed form through the real codec: build the BCE-optimal logits $\log\frac{p}{1-p}$ from the
# expected target (cells with $p = 0$ get a large negative logit), and decode them both ways. Keypoints lie on a
# cell row ($e_y = 0$), so the $x$ axis is exactly the 1-D case.

# %%
codec = codecs.RandomizedRounding(input_size=(24, 24), heatmap_size=(6, 6))
fractions = torch.linspace(0.0, 0.99, 100, dtype=torch.float64)
uv = torch.stack((2 + fractions, torch.full_like(fractions, 2.0)), dim=-1)
keypoints = codec.to_input(uv)[:, None, :]  # (100, 1, 2)
p = codec.expected(keypoints).heatmaps.clamp(1e-12, 1 - 1e-12)
bce_logits = torch.log(p / (1 - p))
as_logits, _ = codec.decode(bce_logits, activation="logits")  # inconsistent
as_probs, _ = codec.decode(torch.sigmoid(bce_logits), activation="probabilities")  # consistent
bias_logits = ((as_logits - keypoints)[:, 0, 0] / codec.stride[0]).numpy()
bias_probs = ((as_probs - keypoints)[:, 0, 0] / codec.stride[0]).numpy()
closed = sp.lambdify(bias_derivation.symbols["e_x"], bias_derivation.closed_form, "numpy")(fractions.numpy())
plotting.line_plot(
    fractions.numpy(),
    {
        "softmax of BCE logits (decoded)": bias_logits,
        "closed form b(e)": closed,
        "normalised probabilities (decoded)": bias_probs,
    },
    "fraction e_x (cells)",
    "decoded - true x (cells)",
    styles={
        "softmax of BCE logits (decoded)": "-",
        "closed form b(e)": "--",
        "normalised probabilities (decoded)": "-",
    },
    title="the same BCE optimum, decoded two ways",
)

# %%
# NBVAL_CHECK_OUTPUT
print(
    "max |decoded - closed form| (inconsistent pair):",
    f"{np.abs(bias_logits - closed).max() < 1e-6}",
    "(below 1e-6 cells)",
)
print("max |error| of the consistent pair below 1e-9 cells:", bool(np.abs(bias_probs).max() < 1e-9))
print("largest measured |bias| of the inconsistent pair:", f"{np.abs(bias_logits).max():.4f} cells")

# %% [markdown]
# ## 5.3 MSE to a Gaussian, decoded by argmax
#
# MSE's optimum is the mean target; for a deterministic Gaussian target that is the target itself, whose
# argmax is the rounded cell. The pair is self-consistent, but the *codec* already lost the fraction:

# %%
display(Markdown(plotting.derivation_markdown(consistency.mse_gaussian_argmax_error(), "MSE + argmax")))

# %% [markdown]
# ## 5.4 The experiment: fit, then decode
#
# The network here is the most flexible one possible: a free logit per cell, fitted with Adam to
# `NUM_SAMPLES` randomized-rounding targets of keypoints at fixed fractions
# (`h3r_theory.theory.montecarlo.simulate_loss_consistency`). Both losses are linear in the target, so the loss
# against the empirical frequencies *is* the average loss over the samples. Three pairs are decoded:
#
# * softmax CE, `activation="logits"` (consistent);
# * BCE, sigmoid then `activation="probabilities"` (consistent);
# * BCE logits with `activation="logits"` (inconsistent: the odds bias).
#
# For the inconsistent pair the prediction is the odds-weighted decode at the *empirical* frequencies (the
# fit's optimum), `consistency.odds_weighted_decode_joint`.

# %%
FRACTIONS = [(0.25, 0.5), (0.5, 0.5), (0.74, 0.5), (0.9, 0.1), (0.3, 0.7)]
fit = mc.simulate_loss_consistency(FRACTIONS, num_samples=NUM_SAMPLES, seed=SEED, steps=STEPS)

joint = consistency.odds_weighted_decode_joint(2)
cells = [cell for cell, _ in losslessness.bilinear_support(2)]  # offsets (dx, dy) from floor(u) = (2, 2)
predict = sp.lambdify(
    [joint.symbols["p_" + "".join(map(str, c))] for c in cells], list(joint.closed_form), "numpy"
)
predicted = []
for k, (ex, ey) in enumerate(FRACTIONS):
    freq = [fit["frequencies"][k, 2 + dy, 2 + dx] for dx, dy in cells]
    predicted.append(np.array(predict(*freq), dtype=float) - np.array([ex, ey]))
predicted = np.array(predicted)

# %%
# NBVAL_CHECK_OUTPUT
print(f"{NUM_SAMPLES} samples per keypoint, {STEPS} Adam steps; errors (x, y) in cells")
print(
    f"{'fractions':12s} {'sample mean':>16s} {'CE + logits':>16s} {'BCE + probs':>16s} "
    f"{'BCE + logits':>16s} {'predicted':>16s}"
)
for k, f in enumerate(FRACTIONS):

    def fmt(v):
        return f"({v[0]:+.3f}, {v[1]:+.3f})"

    print(
        f"{f!s:12s} {fmt(fit['sample_mean'][k]):>16s} {fmt(fit['ce_logits'][k]):>16s} "
        f"{fmt(fit['bce_probabilities'][k]):>16s} {fmt(fit['bce_logits'][k]):>16s} {fmt(predicted[k]):>16s}"
    )

# %%
labels = [f"({ex}, {ey})" for ex, ey in FRACTIONS]
plotting.line_plot(
    np.arange(len(FRACTIONS)),
    {
        "CE + logits (consistent)": np.linalg.norm(fit["ce_logits"], axis=-1),
        "BCE + probabilities (consistent)": np.linalg.norm(fit["bce_probabilities"], axis=-1),
        "BCE + logits (inconsistent)": np.linalg.norm(fit["bce_logits"], axis=-1),
        "inconsistent, predicted": np.linalg.norm(predicted, axis=-1),
    },
    "fractions (e_x, e_y) of the keypoint",
    "|decoded - true| (cells)",
    xticklabels=labels,
    styles={
        "CE + logits (consistent)": "o-",
        "BCE + probabilities (consistent)": "s-",
        "BCE + logits (inconsistent)": "^-",
        "inconsistent, predicted": "k:",
    },
    title="fitted to randomized-rounding samples, then decoded",
)

# %%
ce_err = np.linalg.norm(fit["ce_logits"], axis=-1).max()
probs_err = np.linalg.norm(fit["bce_probabilities"], axis=-1).max()
bad_err = np.linalg.norm(fit["bce_logits"], axis=-1).max()
noise = np.linalg.norm(fit["sample_mean"], axis=-1).max()
gap = np.abs(fit["bce_logits"] - predicted).max()
display(
    Markdown(
        f"Both consistent pairs decode every keypoint to within {max(ce_err, probs_err):.4f} cells, the size of "
        f"the sampling noise of the targets themselves (the sample mean is off by up to {noise:.4f} cells with "
        f"{NUM_SAMPLES} draws). The inconsistent pair is off by up to {bad_err:.3f} cells at these five "
        f"fractions, within {gap:.1e} cells of the prediction. Over uniformly placed keypoints its bias averages "
        f"{odds_bias_2d.mean():.3f} cells in 2-D (section 5.2; at stride 4, {4 * odds_bias_2d.mean():.2f} input "
        f"pixels), {odds_bias_2d.mean() / vanilla_2d:.0%} of the mean vanilla error ({vanilla_2d:.4f} cells) that "
        f"randomized rounding was meant to remove, and it is systematic: the same for every image of a keypoint "
        f"at that fraction. At $(e_x, e_y) = (1/2, 1/2)$ the odds are symmetric and the bias vanishes (the fit "
        f"there is off by {np.linalg.norm(fit['bce_logits'][1]):.4f} cells, the sampling noise)."
    )
)

# %% [markdown]
# ## Exercises
#
# Solutions: `notebooks/solutions/05_loss_decoder_consistency.py`.
#
# 1. The bias of the inconsistent pair in 2-D is not separable: evaluate
#    `consistency.bce_logits_softmax_bias_2d()` on a grid of $(e_x, e_y)$ and find its largest $x$ component.
#    Is it larger or smaller than the 1-D maximum?
# 2. Train the free logits with softmax CE, but decode with `activation="probabilities"` (i.e. treat the raw
#    logits as probabilities). What goes wrong, and why does the decoder's "negatives count as 0" rule matter?
# 3. Show with sympy that for the soft-argmax codec with an L1 loss on the coordinates the optimum coordinate is
#    the *median* of the target position, not the mean; why does this not matter for a deterministic target?
