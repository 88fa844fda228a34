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
# # 1. The quantization error of vanilla heatmaps
#
# A heatmap is a coarse image: a network for 256 x 256 faces typically predicts 64 x 64 maps, one cell per
# 4 x 4 input pixels. A *vanilla* heatmap target puts its peak on one cell, so the keypoint is **quantized**
# to the cell grid before the network ever sees it. This notebook measures what that costs.
#
# **Learning goals.** After this notebook you can
#
# 1. map a keypoint from input pixels to heatmap cells under the pixel-centre convention;
# 2. derive the bias, mean absolute error and mean squared error of *floor* and *round* quantization in 1-D;
# 3. derive the 2-D mean error of rounding, $(\sqrt 2 + \operatorname{asinh} 1)/6 \approx 0.3826$ cells, and
#    explain why flooring costs exactly twice as much;
# 4. convert a per-cell error into input pixels and NME, and read the accuracy/cost trade-off of the stride.
#
# References: Yu & Tao, *Heatmap Regression via Randomized Rounding*, TPAMI 2021 (arXiv:2009.00225), which
# names this error and removes it (notebook 2); Xiao et al., *Simple Baselines*, ECCV 2018 (the MSRA heatmaps).

# %% tags=["parameters"]
# Parameters. The defaults keep the notebook under ~30 s on a 2-core CPU; H3R_NOTEBOOK_FULL=1 (or FULL = True)
# runs 10x more Monte Carlo samples.
import os

FULL = os.environ.get("H3R_NOTEBOOK_FULL", "0") == "1"
N = 1_000_000 if FULL else 100_000  # Monte Carlo keypoints per experiment
SEED = 0

# %%
# %matplotlib inline
import numpy as np
import sympy as sp
import torch
from IPython.display import Markdown, display

from h3r_theory import codecs, plotting
from h3r_theory.theory import montecarlo as mc
from h3r_theory.theory import quantization, resolution

# %% [markdown]
# ## 1.1 From input pixels to heatmap cells
#
# Pixel centres sit at integer coordinates, and heatmap cell $j$ covers the input pixels $[js, (j+1)s)$ for a
# stride $s = W / w$. The map between an input coordinate $x$ and a heatmap coordinate $u$ is then
#
# $$u = \frac{x + 1/2}{s} - \frac12, \qquad x = \left(u + \frac12\right) s - \frac12 .$$
#
# It lives in `h3r_theory.conventions`; every codec uses it through `codec.to_heatmap` / `codec.to_input`.
# Write $u = i + e$ with $i = \lfloor u \rfloor$ and the *fraction* $e \in [0, 1)$. A vanilla target puts a
# one-hot (or a Gaussian) peak on the cell $q(u)$, either $\lfloor u \rfloor$ (*floor*) or
# $\lfloor u + 1/2 \rfloor$ (*round*), and the decoder reads the argmax back: the fraction is gone.

# %%
codec_round = codecs.build("argmax", input_size=(32, 32), heatmap_size=(8, 8), rounding="round")
codec_floor = codecs.build("argmax", input_size=(32, 32), heatmap_size=(8, 8), rounding="floor")
keypoint = torch.tensor([[[13.3, 9.9]]], dtype=torch.float64)  # (B=1, K=1, 2) input pixels, x then y
uv = codec_round.to_heatmap(keypoint)
print("stride (px per cell):", codec_round.stride)
print("keypoint in cells:   ", uv[0, 0].tolist())
maps, decoded = {}, {}
for name, codec in (("round", codec_round), ("floor", codec_floor)):
    enc = codec.encode(keypoint)
    xy, _ = codec.decode(enc.heatmaps)
    maps[name] = enc.heatmaps[0, 0]
    decoded[name] = codec.to_heatmap(xy)[0, 0].tolist()
    print(
        f"{name:5s} target cell {decoded[name]}, decoded {xy[0, 0].tolist()} px, "
        f"error {(xy - keypoint)[0, 0].tolist()} px"
    )

# %%
plotting.heatmap_panels(
    maps,
    keypoint=uv[0, 0].tolist(),
    decoded=decoded,
    title="one-hot targets: the keypoint (x) is moved to a cell centre (o)",
)

# %% [markdown]
# ## 1.2 One dimension: the error as a function of the fraction
#
# The signed error is $d = q(u) - u = o(e) - e$ with offset $o(e) = 0$ for floor and $o(e) = [e \ge 1/2]$
# for round. For a keypoint placed at random with respect to the grid, $e$ is uniform on $[0, 1)$, so
#
# $$\text{floor: } d \sim U[-1, 0), \qquad \text{round: } d \sim U[-\tfrac12, \tfrac12),$$
#
# and every statistic is a one-line integral over $e$. First the picture, measured through the codec:

# %%
fractions = torch.linspace(0, 1, 201, dtype=torch.float64)[:-1]
cells = torch.stack((3 + fractions, torch.full_like(fractions, 3.0)), dim=-1)  # sweep x, keep y on a centre
keypoints = codec_round.to_input(cells)[:, None, :]  # (N, 1, 2) input pixels
errors = {}
for name, codec in (("round", codec_round), ("floor", codec_floor)):
    xy, _ = codec.decode(codec.encode(keypoints).heatmaps)
    errors[name] = ((xy - keypoints)[:, 0, 0] / codec.stride[0]).numpy()  # x error in cells
plotting.line_plot(
    fractions.numpy(),
    errors,
    "fraction e = u - floor(u) (cells)",
    "decoded - true x (cells)",
    styles={"round": ".", "floor": "."},
    title="vanilla quantization error along one axis",
)

# %% [markdown]
# The closed forms, derived with sympy in `h3r_theory.theory.quantization` (the bias, for instance):

# %%
display(Markdown(plotting.derivation_markdown(quantization.quantization_bias("round"), "bias of rounding")))

# %% [markdown]
# Each closed form beside its Monte Carlo estimate through the real codec ($N$ uniformly placed keypoints,
# mean $\pm$ standard error):

# %%
# NBVAL_CHECK_OUTPUT
sims = {r: mc.simulate_quantization(r, n=N, seed=SEED) for r in ("round", "floor")}
rows = [
    ("bias E[d]", lambda r: quantization.quantization_bias(r).closed_form, "bias"),
    ("E|d|", lambda r: quantization.mean_quantization_error(r, 1), "mean_abs_1d"),
    ("E[d^2]", lambda r: quantization.quantization_mse(r, 1).closed_form, "mse_1d"),
]
print(f"{'1-D, cells':12s} {'rounding':8s} {'exact':>8s} {'value':>9s} {'Monte Carlo':>18s}")
for label, exact, key in rows:
    for r in ("round", "floor"):
        value, est = exact(r), sims[r][key]
        print(
            f"{label:12s} {r:8s} {sp.sstr(value):>8s} {float(value):9.5f} {est.mean:9.4f} +- {est.stderr:.4f}"
        )

# %% [markdown]
# Rounding is unbiased with mean squared error $1/12$ cell$^2$. Flooring adds a bias of $-1/2$ cell, and its
# MSE $1/3 = 1/12 + (1/2)^2$ is the same variance plus the squared bias: the error interval has the same
# length, it is only shifted. Shifts of this kind also come from an inconsistent pixel convention (e.g. the
# $u = x/s$ map of the MSRA code, whose flipped heatmaps need a "shift" hack; see
# `h3r_theory.conventions.heatmap_flip_offset`), which is why one module owns the convention.
#
# ## 1.3 Two dimensions: the 0.3826-cell constant
#
# Both axes are quantized independently, so $(|d_x|, |d_y|)$ is uniform on the square $[0, a]^2$ with
# $a = 1/2$ for round (the two halves of $U[-\frac12, \frac12)$ fold onto each other) and $a = 1$ for floor.
# The mean Euclidean error is the mean distance from a corner of that square to a uniform point in it,
#
# $$\mathbb E \lVert d \rVert = \frac{1}{a^2} \int_0^a \!\! \int_0^a \sqrt{x^2 + y^2}\, dy\, dx
#   = a\, \frac{\sqrt 2 + \operatorname{asinh} 1}{3},$$
#
# linear in $a$, so flooring costs exactly twice rounding. Sympy's derivation (split the square along its
# diagonal and substitute $y = t x$):

# %%
derivation = quantization.mean_quantization_error_derivation("round", 2)
display(Markdown(plotting.derivation_markdown(derivation, "mean 2-D error of rounding (cells)")))

# %%
# NBVAL_CHECK_OUTPUT
for r in ("round", "floor"):
    exact = quantization.mean_quantization_error(r, 2)
    est = sims[r]["mean_2d"]
    print(
        f"{r:5s}: E|d| = {sp.sstr(exact)} = {float(exact):.6f} cells; "
        f"Monte Carlo {est.mean:.4f} +- {est.stderr:.4f} (z = {est.z_score(float(exact)):+.1f})"
    )
ratio = quantization.mean_quantization_error("floor", 2) / quantization.mean_quantization_error("round", 2)
print("floor / round =", sp.simplify(ratio))
print("worst case, round:", sp.sstr(quantization.max_quantization_error("round", 2).closed_form), "cells")

# %%
plotting.error_scatter(
    {r: sims[r]["errors"] for r in ("round", "floor")},
    title="2-D quantization errors of uniformly placed keypoints",
)

# %% [markdown]
# ## 1.4 Error against the stride
#
# A per-cell error of $m$ cells is $m s$ input pixels. The quantization term of the normalised mean error
# (NME, normaliser $d$ pixels, e.g. the inter-ocular distance) is therefore linear in the stride:
#
# $$\mathrm{NME}_q(s) = \frac{m\, s}{d}, \qquad m = \frac{\sqrt 2 + \operatorname{asinh} 1}{6}.$$
#
# Measured through `codecs.Argmax` at several strides on a 64 x 64 input (normaliser 1, so in pixels):

# %%
STRIDES = (1, 2, 4, 8)
res = mc.simulate_resolution(strides=STRIDES, input_size=(64, 64), normaliser=1.0, n=N // 5, seed=SEED)
m = float(quantization.mean_quantization_error("round", 2))
plotting.line_plot(
    res["stride"],
    {"measured (Argmax, round)": res["nme_round"], "closed form 0.3826 s": m * res["stride"]},
    "stride s (input px per cell)",
    "mean 2-D error (input px)",
    bands={"measured (Argmax, round)": 2 * res["nme_round_sd"] / np.sqrt(res["n"])},
    styles={"measured (Argmax, round)": "o", "closed form 0.3826 s": "--"},
    title="quantization error grows linearly with the stride",
)

# %%
display(
    Markdown(
        f"At stride {int(res['stride'][-1])} a perfect network trained on vanilla one-hot targets is off by "
        f"{res['nme_round'][-1]:.2f} px on average (closed form {m * res['stride'][-1]:.2f} px); at stride "
        f"{int(res['stride'][0])}, {res['nme_round'][0]:.3f} px. The error in *cells* does not depend on the stride."
    )
)

# %% [markdown]
# ## 1.5 The accuracy/cost trade-off
#
# Halving the stride halves $\mathrm{NME}_q$, but the heatmap head works on $(W/s)(H/s)$ cells: a 1 x 1
# convolution from $C$ channels to $K$ maps costs $2CKWH/s^2$ FLOPs and outputs $KWH/s^2$ values, both
# $\propto s^{-2}$ (`h3r_theory.theory.resolution`). For a 256 x 256 face with $K = 98$ landmarks (WFLW),
# a $C = 32$-channel head and an inter-ocular normaliser of $d = 64$ px (illustrative):

# %%
display(Markdown(plotting.derivation_markdown(resolution.quantization_nme("round"), "NME_q(s)")))
trade = resolution.resolution_tradeoff(
    (256, 256), [1, 2, 4, 8, 16], normaliser=64.0, num_keypoints=98, in_channels=32
)
plotting.tradeoff_plot(
    trade["stride"],
    100 * trade["nme_quantization"],
    trade["head_flops"],
    "quantization NME (%)",
    "head FLOPs per image",
    title="finer heatmaps: less error, quadratically more compute",
)

# %%
# NBVAL_CHECK_OUTPUT
for s, nme, flops in zip(trade["stride"], trade["nme_quantization"], trade["head_flops"]):
    print(f"stride {int(s):2d}: NME_q = {100 * nme:6.3f} %, head = {flops / 1e6:9.2f} MFLOPs")

# %%
i4, i2 = 2, 1  # strides 4 and 2
display(
    Markdown(
        f"Going from stride 4 to 2 lowers the quantization NME from {100 * trade['nme_quantization'][i4]:.3f} % "
        f"to {100 * trade['nme_quantization'][i2]:.3f} % and multiplies the head's cost by "
        f"{trade['head_flops'][i2] / trade['head_flops'][i4]:.0f}. Face alignment papers report total NMEs of a "
        f"few percent on WFLW, so this error term alone is a visible share of it. Randomized rounding "
        f"(notebook 2) removes it at *no* extra cost."
    )
)

# %% [markdown]
# ## Exercises
#
# Solutions: `notebooks/solutions/01_quantization_error.py`.
#
# 1. Show with sympy that the floor MSE $1/3$ is the variance of $d$ plus its squared bias, and compute the
#    variance of the rounding error.
# 2. With the numbers of section 1.5 ($d = 64$ px), which is the largest of the strides 1, 2, 4, 8, 16 whose
#    quantization NME stays below 2 %? Answer with the closed form, then check with `mc.simulate_resolution`.
# 3. Three dimensions (volumetric heatmaps, e.g. 3-D pose): estimate the mean error of rounding a uniformly
#    placed point to the nearest point of the integer lattice $\mathbb Z^3$ by Monte Carlo, and compare it with
#    $\sqrt{3}\cdot$ (the 1-D RMS error) as an upper bound. Why is that an upper bound?
