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
#
# **Data.** Sections 1.1-1.4 need nothing but this repository. Section 1.5 reads real annotations: WFLW's six
# test attribute lists `list_98pt_test_*.txt` (Wu et al., CVPR 2018; obtained from the dataset's page,
# wywu.github.io/projects/LAB/WFLW.html) in `../shared/data/real_samples/wflw_original` (the `REAL_SAMPLES`
# parameter below, relative to `notebooks/`). Without them the notebook still runs: section 1.5 prints which
# folder it looked in and uses a round normaliser instead, and no checked output depends on them.

# %% tags=["parameters"]
# Parameters. The defaults keep the notebook under ~30 s on a 2-core CPU; H3R_NOTEBOOK_FULL=1 (or FULL = True)
# runs 10x more Monte Carlo samples.
import os

FULL = os.environ.get("H3R_NOTEBOOK_FULL", "0") == "1"
N = 1_000_000 if FULL else 100_000  # Monte Carlo keypoints per experiment
SEED = 0
REAL_SAMPLES = "../../shared/data/real_samples"  # the project's real annotated samples, if present

# %%
# %matplotlib inline
from pathlib import Path

import numpy as np
import sympy as sp
import torch
from IPython.display import Markdown, display

from h3r_theory import codecs, plotting
from h3r_theory.theory import montecarlo as mc
from h3r_theory.theory import normalisers, quantization, resolution
from trainers.data.wflw import parse_wflw_line

# %% [markdown]
# ## 1.1 From input pixels to heatmap cells
#
# Pixel centres sit at integer coordinates, so pixel $x$ spans $[x - \frac12, x + \frac12)$; cell centres sit at
# integer heatmap coordinates in the same way. For a stride $s = W / w$ the map between an input coordinate $x$
# and a heatmap coordinate $u$ is
#
# $$u = \frac{x + 1/2}{s} - \frac12, \qquad x = \left(u + \frac12\right) s - \frac12 .$$
#
# Cell $j$ spans $u \in [j - \frac12, j + \frac12)$, that is $x \in [js - \frac12, (j+1)s - \frac12)$: the
# $s$ pixels $js, \dots, (j+1)s - 1$, each with its full area. The map lives in `h3r_theory.conventions`; every
# codec uses it through `codec.to_heatmap` / `codec.to_input` (checked in the next cell).
# Write $u = i + e$ with $i = \lfloor u \rfloor$ and the *fraction* $e \in [0, 1)$. A vanilla target puts a
# one-hot (or a Gaussian) peak on the cell $q(u)$, either $\lfloor u \rfloor$ (*floor*) or
# $\lfloor u + 1/2 \rfloor$ (*round*), and the decoder reads the argmax back: the fraction is gone.

# %%
codec_round = codecs.build("argmax", input_size=(32, 32), heatmap_size=(8, 8), rounding="round")
codec_floor = codecs.build("argmax", input_size=(32, 32), heatmap_size=(8, 8), rounding="floor")
keypoint = torch.tensor([[[13.3, 9.9]]], dtype=torch.float64)  # (B=1, K=1, 2) input pixels, x then y
uv = codec_round.to_heatmap(keypoint)
print("stride (px per cell):", codec_round.stride)
print("keypoint in cells:   ", [round(v, 6) for v in uv[0, 0].tolist()])
edges = codec_round.to_heatmap(torch.tensor([[[4 * 3 - 0.5, 4 * 4 - 0.5]]], dtype=torch.float64))
print("x = 3s - 1/2 and 4s - 1/2 (s = 4) map to u =", edges[0, 0].tolist(), "(the edges of cell 3)")
maps, decoded = {}, {}
for name, codec in (("round", codec_round), ("floor", codec_floor)):
    enc = codec.encode(keypoint)
    xy, _ = codec.decode(enc.heatmaps, activation="probabilities")
    maps[name] = enc.heatmaps[0, 0]
    decoded[name] = codec.to_heatmap(xy)[0, 0].tolist()
    error = (xy - keypoint)[0, 0]
    print(
        f"{name:5s} target cell {decoded[name]}, decoded {xy[0, 0].tolist()} px, "
        f"error [{error[0]:+.2f}, {error[1]:+.2f}] px"
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
fractions = torch.linspace(0, 1, 41, dtype=torch.float64)[
    :-1
]  # 40 fractions: the markers leave the line visible
cells = torch.stack((3 + fractions, torch.full_like(fractions, 3.0)), dim=-1)  # sweep x, keep y on a centre
keypoints = codec_round.to_input(cells)[:, None, :]  # (N, 1, 2) input pixels
errors = {}
for name, codec in (("floor", codec_floor), ("round", codec_round)):  # round drawn last, on top
    xy, _ = codec.decode(codec.encode(keypoints).heatmaps, activation="probabilities")
    errors[name] = ((xy - keypoints)[:, 0, 0] / codec.stride[0]).numpy()  # x error in cells
below_half = fractions.numpy() < 0.5
print(
    "round and floor agree for every e < 1/2:",
    bool(np.array_equal(errors["round"][below_half], errors["floor"][below_half])),
)
plotting.line_plot(
    fractions.numpy(),
    errors,
    "fraction e = u - floor(u) (cells)",
    "decoded - true x (cells)",
    styles={"floor": "-", "round": "."},
    title="vanilla quantization error along one axis\n(e < 1/2: round = floor = -e, dots on the line)",
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
# $\propto s^{-2}$ (`h3r_theory.theory.resolution`).
#
# What is $d$ on a real benchmark? It varies from face to face, and what matters is its size in the network's
# *input*, after the crop. Below: the 98-landmark annotations of WFLW's six test *attribute subsets* (large
# pose, expression, illumination, make-up, occlusion, blur; the lists in
# `../shared/data/real_samples/wflw_original`), each face counted once. They are not the whole test set: WFLW
# has 2,500 test faces (its README, `list_98pt_rect_attr_train_test`), and a subset holds only the faces that
# carry its attribute (its README: "Each list must have the label of corresponding attribute in its name to be
# 1"), so their union leaves out the faces with none of the six and leans to hard ones. The faces are cropped
# as the H3R release's setting **P1** does (the box spanned by the landmarks, x 1.25, square on its longer
# side, resized to 256 x 256; `h3r_theory.theory.normalisers`), with WFLW's normaliser, the distance between
# the outer eye corners 60 and 72. NME averages error / $d$ face by face, so the quantization term is
# $m s \cdot \overline{1/d}$.

# %%
wflw_lists = sorted((Path(REAL_SAMPLES) / "wflw_original").glob("list_98pt_test_*.txt"))
if not wflw_lists:
    message = f"WFLW test lists not found in {(Path(REAL_SAMPLES) / 'wflw_original').resolve()}"
    if os.environ.get("H3R_REQUIRE_REAL_SAMPLES") == "1":
        raise FileNotFoundError(message + " and H3R_REQUIRE_REAL_SAMPLES=1 requires them")
    print(
        message + ": the measured normaliser is skipped; section 1.5 uses d = 100 px instead (a round number)"
    )
    iod = None
else:
    faces, first_seen = {}, []  # the lists overlap: distinct annotation line -> its index, where first read
    members = {}  # list name -> the indices of its faces
    for path in wflw_lists:
        for lineno, line in enumerate(path.read_text().splitlines(), start=1):
            if line.strip():
                key = " ".join(line.split())
                if key not in faces:
                    faces[key] = len(first_seen)
                    first_seen.append(f"{path.name}:{lineno}")
                members.setdefault(path.name, []).append(faces[key])
    parsed = [parse_wflw_line(line, where) for line, where in zip(faces, first_seen)]
    landmarks = torch.tensor(np.stack([p["keypoints"] for p in parsed]), dtype=torch.float64)
    iod = normalisers.cropped_normalisers(landmarks, (60, 72), box_scale=1.25, size=256)
    quartiles = torch.quantile(iod, torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9], dtype=torch.float64))
    print(f"{len(wflw_lists)} lists, {len(faces)} distinct faces")
    print(
        f"faces whose line carries the dataset's face rectangle: {sum(p['box'] is not None for p in parsed)}"
    )
    print(
        "inter-ocular distance in the 256 x 256 crop (px), percentiles 10/25/50/75/90:",
        [f"{q:.1f}" for q in quartiles],
    )

# %%
if iod is not None:  # (a Figure inside an if is not the cell's value: display it)
    normaliser_figure = plotting.histograms(
        {"WFLW attribute subsets, P1 crop": iod},
        "inter-ocular distance in the 256 x 256 input (px)",
        bins=40,
        title="the NME normaliser on real faces",
        vlines={f"median {float(iod.median()):.1f} px": float(iod.median())},
    )
    display(normaliser_figure)

# %%
display(Markdown(plotting.derivation_markdown(resolution.quantization_nme("round"), "NME_q(s)")))
d_median = float(iod.median()) if iod is not None else 100.0
trade = resolution.resolution_tradeoff(
    (256, 256), [1, 2, 4, 8, 16], normaliser=d_median, num_keypoints=98, in_channels=32
)
print(f"d = {d_median:.1f} px; K = 98 landmarks (WFLW); C = 32 input channels (an illustrative head width)")
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
# First at a fixed round normaliser, d = 100 px, so that this checked output does not depend on files outside
# the repository; the next cell gives the same table at the median d of the real faces (100 px without them).
fixed = resolution.resolution_tradeoff(
    (256, 256), [1, 2, 4, 8, 16], normaliser=100.0, num_keypoints=98, in_channels=32
)
print("at d = 100 px:")
for s, nme, flops in zip(fixed["stride"], fixed["nme_quantization"], fixed["head_flops"]):
    print(f"stride {int(s):2d}: NME_q = {100 * nme:6.3f} %, head = {flops / 1e6:9.2f} MFLOPs")

# %%
print(f"at the median d = {d_median:.1f} px:")
for s, nme, flops in zip(trade["stride"], trade["nme_quantization"], trade["head_flops"]):
    print(f"stride {int(s):2d}: NME_q = {100 * nme:6.3f} %, head = {flops / 1e6:9.2f} MFLOPs")

# %% [markdown]
# The table uses the median $d$; the benchmark's NME weighs each face by its own $1/d$. Over the real faces, in
# closed form, and measured through `codecs.Argmax` on the cropped landmarks themselves (their fractions are
# whatever the annotators clicked, not a uniform draw); then per attribute subset, at the 128 x 128 input, and
# on the 200-face draw that notebook 10 uses:

# %%
if iod is not None:
    points, _ = normalisers.landmark_box_crop(landmarks, box_scale=1.25, size=256)
    stride4 = codecs.build("argmax", input_size=(256, 256), heatmap_size=(64, 64))
    xy, _ = stride4.decode(stride4.encode(points).heatmaps, activation="probabilities")
    per_face = (xy - points).norm(dim=-1).mean(dim=-1) / iod  # (N,) each face's NME, a fraction
    measured = float(per_face.mean())
    closed = normalisers.expected_quantization_nme(iod, 4)
    print(
        f"P1 crop, 256 x 256, stride 4, vanilla rounding, all {len(iod)} faces: NME_q = {100 * closed:.2f} % "
        f"(m s mean(1/d)), measured {100 * measured:.2f} %"
    )
    print(f"  (with the median d alone: {100 * m * 4 / d_median:.2f} %)")
    for name, index in members.items():
        print(
            f"  {name:30s} {len(index):4d} faces: NME_q = "
            f"{100 * normalisers.expected_quantization_nme(iod[index], 4):.2f} %"
        )
    iod128 = normalisers.cropped_normalisers(landmarks, (60, 72), box_scale=1.25, size=128)
    closed128 = normalisers.expected_quantization_nme(iod128, 4)
    print(f"P1 crop, 128 x 128, stride 4: NME_q = {100 * closed128:.2f} % (d halves with the input)")
    # Notebook 10 round-trips at most 200 faces per setting: a seeded draw (its SEED = 0, MAX_INSTANCES = 200).
    draw = torch.randperm(len(iod), generator=torch.Generator().manual_seed(0))[:200].sort().values
    draw_closed = normalisers.expected_quantization_nme(iod[draw], 4)
    draw_measured = float(per_face[draw].mean())
    print(
        f"notebook 10's draw of 200 faces: NME_q = {100 * draw_closed:.2f} % closed form, "
        f"measured {100 * draw_measured:.2f} %"
    )

# %% [markdown]
# The published numbers. The H3R release's README (github.com/baoshengyu/H3R, `README.md` at commit
# `9602f745`, table "Test on WFLW") gives the WFLW test NME of its models. They were trained with randomized
# rounding (the author's answer in github.com/baoshengyu/H3R issue #2, 2020-09-22) and use stride-4 heatmaps
# (the release's configs `models/wflw/*/config.yaml`, `HEATMAP.STRIDE`). Its `BBox` column says which
# crop each model was tested with:
#
# | model | crop | input | NME (%) |
# |---|---|---|---|
# | HRNet-W18 | P1 | 256 x 256 | 3.81 |
# | HRNet-W18 | P2 | 256 x 256 | 3.95 |
# | MobileNetV2 | P2 | 256 x 256 | 4.45 |
# | MobileNetV2 | P2 | 128 x 128 | 4.72 |
#
# P1 is the crop priced above, built from the landmarks' box. **P2** crops around the dataset's own face
# rectangle instead (the release's configs `models/wflw/*_p2/config.yaml`). So only the HRNet-W18 P1 row is
# compared with a price here. The P2 rows cannot be priced from these files. The rectangle is part of WFLW's
# full list `list_98pt_rect_attr_test.txt` (196 coordinates, 4 rectangle corners, 6 attributes, the image
# name). The attribute lists hold only the coordinates and the image name, so no face above carries a
# rectangle (printed above).
#
# What P2 would change: the crop is still 1.25 times the box's longer side, but the box is now the rectangle.
# Let $r_n$ be the rectangle's longer side over the landmark box's for face $n$. Then that face's $d$ in the
# input is divided by $r_n$, and $\mathrm{NME}_q = m s\, \overline{r/d}$. A rectangle $r$ times the
# landmark box raises the P1 numbers above $r$-fold. Whatever $r$ is, the price at the 128 x 128 input is twice
# the one at 256 x 256, because $d$ halves with the input (printed above for P1).

# %%
i4, i2 = 2, 1  # strides 4 and 2
text = (
    f"Going from stride 4 to 2 lowers the quantization NME at the median face from "
    f"{100 * trade['nme_quantization'][i4]:.2f} % to {100 * trade['nme_quantization'][i2]:.2f} % and multiplies "
    f"the head's cost by {trade['head_flops'][i2] / trade['head_flops'][i4]:.0f}."
)
if iod is not None:
    text += (
        f" On these WFLW faces (the union of the six attribute subsets, P1 crop) a perfect vanilla model at "
        f"stride 4 would already score an NME of {100 * closed:.2f} %. The H3R release publishes 3.81 % for its "
        f"HRNet-W18 with the same crop on the whole test set (README table above). The two are of the same order, "
        f"so at this stride the quantization term cannot be ignored. Notebook 10 measures the same quantity by "
        f"round-tripping a seeded draw of 200 of these {len(iod)} faces, and the draw differs a little from the "
        f"whole set (both recomputed above): measured, {100 * measured:.2f} % on all faces against "
        f"{100 * draw_measured:.2f} % on the draw; in closed form, {100 * closed:.2f} % against "
        f"{100 * draw_closed:.2f} %. The large-pose subset alone gives "
        f"{100 * normalisers.expected_quantization_nme(iod[members['list_98pt_test_largepose.txt']], 4):.2f} %. "
        f"So which faces are counted matters, and the whole test set's value need not be "
        f"{100 * closed:.2f} %. But {100 * closed:.2f} % is not a share of "
        f"3.81 % that could be subtracted. For independent zero-mean errors the mean *squared* errors add, "
        f"$\\mathbb E\\lVert a + b\\rVert^2 = \\mathbb E\\lVert a\\rVert^2 + \\mathbb E\\lVert b\\rVert^2$. The "
        f"mean errors that NME averages do not add: $\\mathbb E\\lVert a + b\\rVert < \\mathbb E\\lVert a\\rVert "
        f"+ \\mathbb E\\lVert b\\rVert$ (the next cell computes both). The published model is trained with "
        f"randomized rounding (the author's answer in github.com/baoshengyu/H3R issue #2, 2020-09-22). That is "
        f"the target of notebook 2, which removes this term without changing the heatmap size, so without "
        f"changing the head's cost."
    )
display(Markdown(text))

# %%
# Two independent zero-mean 2-D errors, in cells: a rounding error a (uniform on the cell) and a Gaussian
# "network" error b whose mean length is 1 cell (an illustrative size: per-axis sd sqrt(2 / pi)).
gen = torch.Generator().manual_seed(SEED)
a = torch.rand(N, 2, generator=gen, dtype=torch.float64) - 0.5
b = (2 / np.pi) ** 0.5 * torch.randn(N, 2, generator=gen, dtype=torch.float64)
length = {"a": a.norm(dim=-1), "b": b.norm(dim=-1), "a + b": (a + b).norm(dim=-1)}
for name, v in length.items():
    print(f"{name:6s} mean length {float(v.mean()):.4f}, mean squared length {float(v.square().mean()):.4f}")
sum_sq = float(length["a"].square().mean() + length["b"].square().mean())
sum_mean = float(length["a"].mean() + length["b"].mean())
print(
    f"squares: E|a|^2 + E|b|^2 = {sum_sq:.4f} against E|a + b|^2 = {float(length['a + b'].square().mean()):.4f}"
)
print(f"means:   E|a| + E|b|     = {sum_mean:.4f} against E|a + b|   = {float(length['a + b'].mean()):.4f}")
# The squares add up to Monte Carlo noise (the gap is the mean of 2 a.b, whose expectation is 0); the means do not.
cross = length["a + b"].square() - length["a"].square() - length["b"].square()  # (N,) 2 a.b
assert abs(float(cross.mean())) < 5 * float(cross.std()) / N**0.5
assert float(length["a + b"].mean()) < sum_mean - 0.1

# %% [markdown]
# ## Exercises
#
# Solutions: `notebooks/solutions/01_quantization_error.py`.
#
# 1. Show with sympy that the floor MSE $1/3$ is the variance of $d$ plus its squared bias, and compute the
#    variance of the rounding error.
# 2. For a face whose normaliser is $d = 117$ px in the input (about the WFLW median of section 1.5), which
#    is the largest of the strides 1, 2, 4, 8, 16 whose quantization NME stays below 1 %? Answer with the
#    closed form, then check with `mc.simulate_resolution`.
# 3. Three dimensions (volumetric heatmaps, e.g. 3-D pose): estimate the mean error of rounding a uniformly
#    placed point to the nearest point of the integer lattice $\mathbb Z^3$ by Monte Carlo, and compare it with
#    $\sqrt{3}\cdot$ (the 1-D RMS error) as an upper bound. Why is that an upper bound?
