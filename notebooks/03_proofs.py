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
# # 3. The proofs, with sympy, each beside its Monte Carlo check
#
# The claims of notebooks 1 and 2 and of Yu & Tao (*Heatmap Regression via Randomized Rounding*, TPAMI 2021,
# arXiv:2009.00225), stated one by one. For each: the statement, its exact derivation from
# `h3r_theory.theory` (sympy does the algebra and the integrals; nothing is typed in by hand), and a seeded
# Monte Carlo run through the real codecs (`h3r_theory.theory.montecarlo`) that must agree with it.
#
# **Learning goals.** After this notebook you can
#
# 1. state the properties that make randomized rounding work: vanilla error, unbiasedness, variance,
#    losslessness of the expected target, and which decoders keep it;
# 2. follow each derivation step by step and reproduce it with sympy;
# 3. judge a Monte Carlo check: estimate, standard error, $z$-score, and when a check is exact instead;
# 4. predict how a top-$k$ or window decoder with too few points, or a non-zero floor, biases the result.
#
# Conventions: everything is in heatmap cells; $u = i + e$ with fraction $e$; "uniform placement" means
# $e$ uniform on $[0, 1)$ per axis. A check passes when $|\text{estimate} - \text{exact}| \le 5$ standard
# errors (or, for deterministic decodes, when they agree to float64 round-off).

# %% tags=["parameters"]
# Parameters. The defaults keep the notebook under ~30 s on a 2-core CPU; H3R_NOTEBOOK_FULL=1 (or FULL = True)
# runs 10x more Monte Carlo samples.
import os

FULL = os.environ.get("H3R_NOTEBOOK_FULL", "0") == "1"
N = 1_000_000 if FULL else 100_000
SEED = 0

# %%
# %matplotlib inline
import numpy as np
import sympy as sp
import torch
from IPython.display import Markdown, display

from h3r_theory import codecs, plotting
from h3r_theory.theory import losslessness, quantization
from h3r_theory.theory import montecarlo as mc
from h3r_theory.theory import randomized_rounding as rr

summary = []  # (claim, exact value, Monte Carlo Estimate): the figure at the end


def check(claim: str, exact, estimate: mc.Estimate) -> None:
    """Print one closed form beside its Monte Carlo estimate and remember it for the summary."""
    value = float(exact)
    verdict = "agrees" if estimate.agrees(value) else "DISAGREES"
    print(
        f"{claim}: exact {sp.sstr(exact)} = {value:.5f}; Monte Carlo {estimate.mean:.4g} +- "
        f"{estimate.stderr:.2g} (N = {estimate.n}, z = {estimate.z_score(value):+.1f}) -> {verdict}"
    )
    summary.append((claim, value, estimate))


# %% [markdown]
# ## Claim 1. Vanilla rounding loses $(\sqrt2 + \operatorname{asinh} 1)/6$ cells on average
#
# **Statement.** For a uniformly placed keypoint, rounding to the nearest cell has per-axis bias $0$, MSE
# $1/12$, and mean 2-D error $\mathbb E\lVert q(u) - u\rVert = (\sqrt2 + \operatorname{asinh} 1)/6$ cells;
# flooring has bias $-1/2$ and twice the 2-D error.
#
# **Proof.** Per axis the error $d = [e \ge \frac12] - e$ is uniform on $[-\frac12, \frac12)$; in 2-D,
# $(|d_x|, |d_y|)$ is uniform on $[0, \frac12]^2$, and the mean distance to a corner of a square of side $a$ is
# $a(\sqrt 2 + \operatorname{asinh} 1)/3$:

# %%
display(Markdown(plotting.derivation_markdown(quantization.quantization_mse("round", 1), "MSE per axis")))
display(
    Markdown(
        plotting.derivation_markdown(
            quantization.mean_quantization_error_derivation("round", 2), "mean 2-D error"
        )
    )
)

# %%
# NBVAL_CHECK_OUTPUT
sim_round = mc.simulate_quantization("round", n=N, seed=SEED)
sim_floor = mc.simulate_quantization("floor", n=N, seed=SEED)
check("round bias", quantization.quantization_bias("round").closed_form, sim_round["bias"])
check("round MSE", quantization.quantization_mse("round", 1).closed_form, sim_round["mse_1d"])
check("round 2-D", quantization.mean_quantization_error("round", 2), sim_round["mean_2d"])
check("floor bias", quantization.quantization_bias("floor").closed_form, sim_floor["bias"])
check("floor 2-D", quantization.mean_quantization_error("floor", 2), sim_floor["mean_2d"])

# %% [markdown]
# ## Claim 2. Randomized rounding is unbiased, with covariance $\operatorname{diag}(e_x(1-e_x), e_y(1-e_y))$
#
# **Statement.** $q = \lfloor u \rfloor + B$, $B_k \sim \operatorname{Bernoulli}(e_k)$ independent, has
# $\mathbb E[q] = u$ for every $u$, and covariance $\operatorname{diag}(e_k(1-e_k))$. Averaged over uniform
# fractions, $\mathbb E\lVert q - u\rVert^2 = 2 \cdot \frac16 = \frac13$ cell$^2$.
#
# **Proof.** Two outcomes per axis; sum value times probability:

# %%
display(Markdown(plotting.derivation_markdown(rr.randomized_rounding_moments(2), "moments in 2-D")))
display(Markdown(plotting.derivation_markdown(rr.single_sample_mse(2), "mean squared error of one sample")))

# %%
# NBVAL_CHECK_OUTPUT
sim_rr = mc.simulate_randomized_rounding(n=N, seed=SEED)
check("RR bias", rr.randomized_rounding_moments(2).bias[0], sim_rr["bias"])
check("RR 2-D MSE", rr.single_sample_mse(2).closed_form, sim_rr["mse_2d"])
fixed = mc.simulate_randomized_rounding(fractions=(0.3, 0.8), n=N, seed=SEED)
covariance = rr.randomized_rounding_moments(2).covariance
symbols = rr.randomized_rounding_moments(2).symbols
check("RR var x at e=0.3", covariance[0, 0].subs(symbols["e_x"], sp.Rational(3, 10)), fixed["mse_x"])
check("RR var y at e=0.8", covariance[1, 1].subs(symbols["e_y"], sp.Rational(4, 5)), fixed["mse_y"])

# %% [markdown]
# ## Claim 3. One sample is farther from the keypoint than the rounded cell
#
# **Statement.** $\mathbb E\lVert q - u\rVert = \frac{2 + \sqrt 2}{15} + \frac{\operatorname{asinh} 1}{3}
# \approx 0.5214$ cells in 2-D ($1/3$ in 1-D), more than rounding's $0.3826$.
#
# **Proof.** Given the fractions, weigh the distance to each of the four cells by its probability; the four
# corner terms are mirror images, and the substitution $y = tx$ separates the integral:

# %%
display(Markdown(plotting.derivation_markdown(rr.single_sample_error(2), "mean distance of one sample")))

# %%
# NBVAL_CHECK_OUTPUT
check("RR one sample 2-D", rr.single_sample_error(2).closed_form, sim_rr["mean_2d"])
check("RR one sample 1-D", rr.single_sample_error(1).closed_form, sim_rr["mean_abs_1d"])

# %% [markdown]
# That the network still learns $u$ from these noisier targets is the risk decomposition of notebook 2,
# $\mathbb E[(q - c)^2] = (c - u)^2 + e(1-e)$, and, for the cross-entropy loss, section 5.1 of notebook 5
# ("Softmax cross-entropy: the optimum is the expected target").
#
# ## Claim 4. The expected target decodes to $u$ exactly (losslessness)
#
# **Statement.** The weighted mean of the cell coordinates under the bilinear weights is $u$, for every
# fraction: $\sum_c p_c\, c = u$. Any decoder that weighs its activation points by their values
# (`activation="probabilities"`) and whose points contain the $2 \times 2$ support (top-$k$ with $k \ge 4$, the
# $3 \times 3$ window around the maximum) therefore returns $u$ with zero error. (A softmax over those values
# would weigh them by $e^{p_c}$ instead: that reading belongs to a network's logits, notebook 5.)
#
# **Proof.**

# %%
display(
    Markdown(plotting.derivation_markdown(losslessness.decode_expected(2), "decode of the expected target"))
)

# %% [markdown]
# Here the check is exact, not statistical: decoding the expected map is deterministic, so the largest error
# over many uniformly placed keypoints must be float64 round-off.

# %%
# NBVAL_CHECK_OUTPUT
for method, options in (("topk", {"k": 9}), ("topk", {"k": 4}), ("window", {"radius": 1})):
    sim = mc.simulate_expected_decode(n=N // 5, seed=SEED, method=method, **options)
    print(
        f"{method} {options}: largest |error| over {N // 5} keypoints below 1e-12 cells: "
        f"{sim['max_abs_1d'] < 1e-12}"
    )

# %% [markdown]
# ### The two decoders, written out
#
# Both decoders are a weighted mean of a few cell coordinates; they differ only in *which* cells. Top-$k$ takes
# the $k$ largest values anywhere on the map; the window takes the $(2r+1)^2$ cells around the maximum (cells
# beyond the border count as 0). The weights are the values themselves (`activation="probabilities"`, negatives
# count as 0) or a softmax over them (`activation="logits"`). Top-9 with logits is the decoder of the H3R
# release (github.com/baoshengyu/H3R: its `heatmap2coord`, with `HEATMAP.TOPK: 9` in the released configs).
# Notebook 9, section 9.2, writes that decoder out and asserts it equal, within 1e-9 px, to this package's
# `decode(method="topk", k=9, activation="logits")` under the release's $u = x/s$ pixel convention. In a few
# lines, on (B, K, h, w) maps, returning cells:


# %%
def weighted_mean(values, x, y, activation):
    """Weighted mean of the cells (x, y): weights = values (negatives as 0), or a softmax over them."""
    if activation == "logits":
        weights = torch.softmax(values, dim=-1)
    else:
        weights = values.clamp(min=0) / values.clamp(min=0).sum(-1, keepdim=True)
    return torch.stack(((weights * x).sum(-1), (weights * y).sum(-1)), dim=-1)


def topk_by_hand(maps, k, activation="probabilities"):
    values, flat = maps.flatten(-2).topk(k, dim=-1)  # the k largest cells anywhere
    width = maps.shape[-1]
    return weighted_mean(values, flat % width, flat // width, activation)


def window_by_hand(maps, radius=1, activation="probabilities"):
    height, width = maps.shape[-2:]
    peak = maps.flatten(-2).argmax(-1)
    offsets = torch.arange(-radius, radius + 1)
    x = ((peak % width)[..., None, None] + offsets[None, :]).expand(*peak.shape, len(offsets), len(offsets))
    y = ((peak // width)[..., None, None] + offsets[:, None]).expand_as(x)
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    flat = (y.clamp(0, height - 1) * width + x.clamp(0, width - 1)).flatten(-2)
    values = maps.flatten(-2).gather(-1, flat)
    fill = float("-inf") if activation == "logits" else 0.0
    values = values.masked_fill(~inside.flatten(-2), fill)  # cells beyond the border carry no weight
    return weighted_mean(values, x.flatten(-2), y.flatten(-2), activation)


# %% [markdown]
# Asserted equal to the library on maps where the decoders *differ* from the truth: the expected targets of
# random keypoints (some on the border) plus noise, so that the top-9 cells scatter and the windows are
# uneven.

# %%
# NBVAL_CHECK_OUTPUT
g = torch.Generator().manual_seed(SEED)
library = codecs.RandomizedRounding(input_size=(64, 48), heatmap_size=(16, 12))  # stride 4
uv = torch.rand(4, 17, 2, generator=g, dtype=torch.float64) * torch.tensor([15.0, 11.0], dtype=torch.float64)
maps = library.expected(library.to_input(uv)).heatmaps
maps = maps + 0.05 * torch.rand(maps.shape, generator=g, dtype=maps.dtype)
for activation in ("probabilities", "logits"):
    for name, by_hand, options in (
        ("top-9", topk_by_hand(maps, 9, activation), {"method": "topk", "k": 9}),
        ("top-4", topk_by_hand(maps, 4, activation), {"method": "topk", "k": 4}),
        ("window r=1", window_by_hand(maps, 1, activation), {"method": "window", "radius": 1}),
        ("window r=2", window_by_hand(maps, 2, activation), {"method": "window", "radius": 2}),
    ):
        xy, _ = library.decode(maps, activation=activation, **options)
        gap = float((library.to_heatmap(xy) - by_hand).abs().max())
        print(f"{name:10s} {activation:13s}: by hand == library (max gap below 1e-12 cells): {gap < 1e-12}")
        assert gap < 1e-12, (name, activation, gap)

# %% [markdown]
# ## Claim 5. Too few activation points bring the quantization error back
#
# **Statement.** In the region $\frac12 \le e_y \le e_x < 1$ (the others are mirror images), top-$k$ with
# $k = 1$ is plain rounding, $k = 2$ recovers $e_y$ but not $e_x$, $k = 3$ biases both; the window of radius 0
# is plain rounding.
#
# **Proof.** Drop the smallest weights and renormalise:

# %%
for k in (1, 2, 3):
    display(Markdown(plotting.derivation_markdown(losslessness.topk_decode(k, 2), f"top-{k}")))

# %%
# NBVAL_CHECK_OUTPUT
# e_x = 0.8, e_y = 0.6: no ties among the weights. (Two copies: the simulator's summary needs >= 2 keypoints.)
point = torch.tensor([[0.8, 0.6], [0.8, 0.6]], dtype=torch.float64)
for k in (1, 2, 3, 4):
    derivation = losslessness.topk_decode(k, 2)
    subs = {derivation.symbols["e_x"]: sp.Rational(4, 5), derivation.symbols["e_y"]: sp.Rational(3, 5)}
    exact = [sp.nsimplify(v.subs(subs)) for v in derivation.closed_form]
    measured = mc.simulate_expected_decode(fractions=point, method="topk", k=k)["errors"][0]
    agree = np.allclose(measured, [float(v) for v in exact], atol=1e-12)
    print(
        f"top-{k} at (0.8, 0.6): exact error {[sp.sstr(v) for v in exact]}, "
        f"decoded {np.round(measured, 6).tolist()} -> {'agrees' if agree else 'DISAGREES'}"
    )
window0 = losslessness.window_decode(0, 2)
print("window r=0 error:", sp.sstr(window0.closed_form.T), " (= plain rounding in this region)")

# %% [markdown]
# ## Claim 6. A floor on the heatmap pulls the estimate toward the rounded cell
#
# **Statement.** If each of the $n$ activation points carries an extra $\delta$ (a trained network is never
# exactly zero off the support), the decoder returns $(u + n\delta c)/(1 + n\delta)$, with $c$ the centroid of
# the points. For the $3 \times 3$ window ($n = 9$, $c$ = the rounded cell) the mean 2-D error is
# $\frac{n\delta}{1 + n\delta}$ times the vanilla $0.3826$ cells.
#
# **Proof.**

# %%
display(Markdown(plotting.derivation_markdown(losslessness.uniform_floor_bias(), "uniform floor")))
floor_error = losslessness.window_floor_error(1)["mean_2d"]
display(Markdown(plotting.derivation_markdown(floor_error, "mean 2-D error of the 3 x 3 window")))

# %%
# NBVAL_CHECK_OUTPUT
DELTAS = (0.001, 0.01, 0.05)
for delta in DELTAS:
    sim = mc.simulate_expected_decode(n=N // 5, seed=SEED, method="window", radius=1, delta=delta)
    exact = floor_error.closed_form.subs(floor_error.symbols["delta"], sp.Rational(str(delta)))
    check(f"window, delta={delta}", exact, sim["mean_2d"])

# %% [markdown]
# ## All checks at a glance

# %%
# The checks estimate quantities of very different sizes (a bias of 0, an MSE of 1/12, an error of 0.52 cell),
# with standard errors around $10^{-3}$: on a common value axis every error bar would be invisible. Their
# $z$-scores share one scale: a correct check has $z$ roughly standard normal.
plotting.z_scores(
    [claim for claim, _, _ in summary],
    [est.z_score(exact) for _, exact, est in summary],
    limits=(2, 5),
    title="each Monte Carlo check against its closed form",
)

# %%
# NBVAL_CHECK_OUTPUT
passed = sum(est.agrees(exact) for _, exact, est in summary)
print(f"{passed} of {len(summary)} statistical checks agree within 5 standard errors")

# %% [markdown]
# ## Exercises
#
# Solutions: `notebooks/solutions/03_proofs.py`.
#
# 1. Prove with sympy that in 1-D top-$k$ with $k = 2$ is exact for every fraction (use
#    `losslessness.topk_decode(2, dim=1)`), and check it numerically with `mc.simulate_expected_decode` for
#    keypoints on a cell row ($e_y = 0$), where the 2-D map has only two non-zero cells.
# 2. Claim 6 for a $5 \times 5$ window (`window_floor_error(2)`): how small must the floor $\delta$ be for the
#    mean 2-D error to stay below $0.01$ cells? Solve with sympy and compare with the $3 \times 3$ window.
# 3. Use `mc.simulate_quantization` and the $z$-scores printed above: if you ran 20 independent correct checks,
#    how many would you expect outside $\pm 2$ standard errors? Why does this notebook use 5?
