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
# # 4. The codec zoo, side by side
#
# Six ways to turn a keypoint into a heatmap target and back, all behind one protocol
# (`codec.encode`, `codec.expected`, `codec.decode`), run on the **same** keypoints:
#
# | codec | target | decoder | reference |
# |---|---|---|---|
# | `Argmax` | one-hot at the rounded (or floored) cell | argmax | the vanilla baseline |
# | `Gaussian` | Gaussian at the rounded cell | argmax (+ optional quarter-cell offset) | Xiao et al., ECCV 2018 (MSRA) |
# | `DARK` | Gaussian at the exact position | blur, log, one Newton step | Zhang et al., CVPR 2020 |
# | `UDP` | DARK's, in the $u = x(w-1)/(W-1)$ convention | same | Huang et al., CVPR 2020 |
# | `SoftArgmax` | normalised Gaussian | expectation of the map | Sun et al., ECCV 2018 (integral regression) |
# | `RandomizedRounding` | one-hot at a randomly rounded cell | weighted mean of the 3 x 3 window | Yu & Tao, TPAMI 2021 |
#
# **Learning goals.** After this notebook you can
#
# 1. say which codecs keep the quantization error of notebook 1 and which remove it, and why;
# 2. measure a codec's error and bias on its own training target (what a *perfect* network would output);
# 3. compare how the decoders degrade when the heatmap is noisy, as a trained network's output is;
# 4. measure encode/decode speed and know why such numbers depend on the machine.
#
# The errors here are those of the *targets*: a network at the optimum of its loss outputs the (expected)
# training target, so this is the error that remains when training is perfect. Notebook 5 asks which optimum a
# loss actually has, and how the decoder must read it.

# %% tags=["parameters"]
# Parameters. The defaults keep the notebook under ~30 s on a 2-core CPU; H3R_NOTEBOOK_FULL=1 (or FULL = True)
# uses 10x more keypoints and noise draws.
import os

FULL = os.environ.get("H3R_NOTEBOOK_FULL", "0") == "1"
N = 20_000 if FULL else 2_000  # keypoints per codec
HEATMAP = (32, 32)  # (w, h) cells
STRIDE = 4
SEED = 0

# %%
# %matplotlib inline
import time

import numpy as np
import torch
from IPython.display import Markdown, display

from h3r_theory import codecs, plotting
from h3r_theory.theory import quantization

W, H = HEATMAP[0] * STRIDE, HEATMAP[1] * STRIDE
VARIANTS = {  # label -> (codec name, options)
    "Argmax (round)": ("argmax", {}),
    "Argmax (floor)": ("argmax", {"rounding": "floor"}),
    "Gaussian": ("gaussian", {}),
    "Gaussian + quarter": ("gaussian", {"quarter_offset": True}),
    "DARK": ("dark", {}),
    "UDP": ("udp", {}),
    "SoftArgmax": ("soft_argmax", {}),
    "RandomizedRounding": ("randomized_rounding", {}),
}
zoo = {
    label: codecs.build(name, input_size=(W, H), heatmap_size=HEATMAP, **opts)
    for label, (name, opts) in VARIANTS.items()
}
print(f"input {W} x {H} px, heatmaps {HEATMAP[0]} x {HEATMAP[1]} cells, stride {STRIDE}")

# %% [markdown]
# ## 4.1 The targets of one keypoint
#
# The keypoint sits at a fraction $(0.3, 0.7)$ of a cell. The white cross is the truth, the red dot the decode
# of each target (12 x 12 maps; `RandomizedRounding` shows its *expected* target, the average of the one-hot
# samples it trains on; every target is decoded with `activation="probabilities"`, since it is not a logit map).

# %%
small = {
    label: codecs.build(name, input_size=(48, 48), heatmap_size=(12, 12), **opts)
    for label, (name, opts) in VARIANTS.items()
    if label not in ("Argmax (floor)", "Gaussian + quarter")
}
uv_true = torch.tensor([5.3, 5.7], dtype=torch.float64)
maps, decoded = {}, {}
for label, codec in small.items():
    keypoint = codec.to_input(uv_true)[None, None]
    target = codec.expected(keypoint).heatmaps
    xy, _ = codec.decode(target, activation="probabilities")
    maps[label] = target[0, 0]
    decoded[label] = codec.to_heatmap(xy)[0, 0].tolist()
# UDP uses another cell convention, so its cell coordinates of the same keypoint differ slightly.
plotting.heatmap_panels(
    maps,
    keypoint=uv_true.tolist(),
    decoded=decoded,
    title="training targets of one keypoint (x: truth, o: decoded)",
)

# %% [markdown]
# ## 4.2 Error and bias on the same keypoints
#
# $N$ keypoints uniform over the map, at least 6 cells from the border (DARK's blur sees zeros beyond the
# border and is biased within about $2\sigma$ of it; see the `DARK` docstring). Each codec encodes them,
# decodes its own target, and we measure the error in input pixels; the closed form of notebook 1 for plain
# rounding is $0.3826\,s$ px.

# %%
generator = torch.Generator().manual_seed(SEED)
margin = 6.0
span = torch.tensor([HEATMAP[0] - 1 - 2 * margin, HEATMAP[1] - 1 - 2 * margin], dtype=torch.float64)
uv = margin + torch.rand(1, N, 2, generator=generator, dtype=torch.float64) * span  # cells, pixel-centre
keypoints = zoo["Argmax (round)"].to_input(uv)  # the same input-pixel keypoints for every codec

errors, targets = {}, {}
for label, codec in zoo.items():
    targets[label] = codec.expected(keypoints).heatmaps
    xy, _ = codec.decode(targets[label], activation="probabilities")
    errors[label] = (xy - keypoints)[0]  # (N, 2) input px
one_sample = zoo["RandomizedRounding"].encode(keypoints, generator=torch.Generator().manual_seed(SEED))
xy, _ = zoo["RandomizedRounding"].decode(one_sample.heatmaps, activation="probabilities")
errors["RR, one sample"] = (xy - keypoints)[0]

# %%
# NBVAL_CHECK_OUTPUT
floor_px = float(quantization.mean_quantization_error("round", 2)) * STRIDE
print(f"closed form for plain rounding: {floor_px:.4f} px\n")
print(f"{'codec':20s} {'mean |err| px':>13s} {'max px':>8s} {'bias x px':>10s} {'bias y px':>10s}")
for label, err in errors.items():
    dist = err.norm(dim=-1)
    bias = err.mean(0)
    print(f"{label:20s} {dist.mean():13.4f} {dist.max():8.4f} {bias[0]:+10.4f} {bias[1]:+10.4f}")

# %%
labels = list(errors)
mean_err = [float(errors[k].norm(dim=-1).mean()) for k in labels]
plotting.bar_chart(
    labels,
    np.maximum(mean_err, 1e-6),
    "mean error (input px)",
    logy=True,
    title=f"decode error of each codec's own target, stride {STRIDE}\n(log scale; below 1e-6 px drawn at 1e-6)",
)

# %%
# The quarter offset applied to a Gaussian centred at u (DARK's target).
exact_centre, _ = zoo["Gaussian + quarter"].decode(targets["DARK"], activation="probabilities")
errors_quarter = float((exact_centre - keypoints)[0].norm(dim=-1).mean())
EXACT = ("DARK", "UDP", "SoftArgmax", "RandomizedRounding")
best = min(EXACT, key=lambda k: mean_err[labels.index(k)])
worst_mean = max(mean_err[labels.index(k)] for k in EXACT)  # the largest of their mean errors
worst_single = max(float(errors[k].norm(dim=-1).max()) for k in EXACT)  # their largest single error
display(
    Markdown(
        f"Argmax and Gaussian targets keep the vanilla error ({mean_err[labels.index('Gaussian')]:.3f} px here, closed "
        f"form {floor_px:.3f} px). The quarter offset changes nothing on the MSRA target "
        f"({mean_err[labels.index('Gaussian + quarter')]:.3f} px): that Gaussian is symmetric about the rounded cell, so "
        f"its two neighbours tie. The offset is a heuristic for a network output whose peak leans toward the truth; "
        f"applied to a Gaussian centred *at* the keypoint it gives {errors_quarter:.3f} px. The codecs that "
        f"place their target at the exact position, or encode the fraction in the weights, decode their own target "
        f"with a mean error of at most {worst_mean:.1e} px and a largest single error of {worst_single:.1e} px "
        f"(lowest mean: {best}). A *single* randomized-rounding sample is off by "
        f"{mean_err[labels.index('RR, one sample')]:.3f} px: the network must learn the average (notebook 5)."
    )
)

# %% [markdown]
# ## 4.3 Robustness to heatmap noise
#
# A trained network never reproduces its target exactly. A crude model of that: add independent Gaussian noise
# to every cell, with a standard deviation equal to a fraction $\eta$ of the map's peak, and decode. Each decoder
# reads the map differently: argmax only moves when the noise beats the gap to the next cell; DARK takes the
# *log* of the map (negative or tiny values are clamped); SoftArgmax reads the *whole* map, so the noise of
# every cell enters its estimate; the randomized-rounding window only reads 9 cells.

# %%
NOISE = (0.0, 0.01, 0.03, 0.1)
noise_codecs = ["Gaussian", "DARK", "SoftArgmax", "RandomizedRounding"]
noisy_error = {label: [] for label in noise_codecs}
for eta in NOISE:
    g = torch.Generator().manual_seed(SEED)
    for label in noise_codecs:
        clean = targets[label]
        peak = clean.flatten(-2).amax(-1)[..., None, None]
        noisy = clean + eta * peak * torch.randn(clean.shape, generator=g, dtype=clean.dtype)
        xy, _ = zoo[label].decode(noisy, activation="probabilities")
        noisy_error[label].append(float((xy - keypoints)[0].norm(dim=-1).mean()))
plotting.line_plot(
    np.array(NOISE),
    {k: np.maximum(v, 1e-3) for k, v in noisy_error.items()},
    "noise sd / map peak (eta)",
    "mean decode error (input px, log)",
    logy=True,
    styles={k: "o-" for k in noise_codecs},
    hlines={"plain rounding": floor_px},
    title="decoders on noisy targets (errors below 1e-3 px drawn at 1e-3)",
)

# %%
# NBVAL_CHECK_OUTPUT
for eta, *row in zip(NOISE, *(noisy_error[k] for k in noise_codecs)):
    print(f"eta {eta:5.2f}: " + ", ".join(f"{k} {v:.3f} px" for k, v in zip(noise_codecs, row)))

# %% [markdown]
# In the table above SoftArgmax degrades fastest, as expected of a decoder that reads all $w h$ cells; the local
# decoders (DARK, the randomized-rounding window) stay below the plain-rounding line up to the largest noise
# tried. This is only a noise *model*: the map a trained network produces is spatially correlated, which is
# what DARK's blur is designed for (Zhang et al. 2020), and notebooks 6-8 decode real network outputs.
#
# ## 4.4 Speed
#
# Wall time per call for a batch of 64 images x 17 keypoints on 64 x 48 heatmaps, on whatever machine runs
# this notebook. Each figure is the median over 5 rounds of the mean time of as many calls as fill about
# 0.1 s, so that it is not rounded to the scheduler's or the timer's tick. The numbers are not checked by the
# tests and say nothing beyond this run: they depend on the CPU, its threads and whatever else runs on it
# (several times slower on a loaded machine). For the benchmark, measured on an idle machine, see
# `benchmarks/codecs.py` and `benchmarks/README.md`.


# %%
def ms_per_call(fn, rounds: int = 5, budget_s: float = 0.1) -> float:
    """Median over ``rounds`` of the mean wall time of ``n`` calls (ms), ``n`` chosen to fill ``budget_s``."""
    fn()  # warm-up
    start = time.perf_counter()
    fn()
    n = max(1, int(budget_s / max(time.perf_counter() - start, 1e-6)))
    means = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        means.append((time.perf_counter() - start) / n)
    return 1e3 * float(np.median(means))


bench_size = (64, 48)
speed = {"encode": [], "decode": []}
for name, opts in VARIANTS.values():
    codec = codecs.build(
        name, input_size=(bench_size[0] * 4, bench_size[1] * 4), heatmap_size=bench_size, **opts
    )
    g = torch.Generator().manual_seed(SEED)
    kp = codec.to_input(
        torch.rand(64, 17, 2, generator=g) * torch.tensor([bench_size[0] - 1.0, bench_size[1] - 1.0])
    )
    maps = codec.expected(kp).heatmaps
    # Default arguments bind this iteration's codec and inputs (the lambdas run right away anyway).
    speed["encode"].append(ms_per_call(lambda c=codec, k=kp, g=g: c.encode(k, generator=g).heatmaps))
    speed["decode"].append(ms_per_call(lambda c=codec, m=maps: c.decode(m)))
for label, enc_ms, dec_ms in zip(VARIANTS, speed["encode"], speed["decode"]):
    print(f"{label:20s} encode (dense) {enc_ms:8.3f} ms   decode {dec_ms:8.3f} ms")
print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

# %%
plotting.bar_chart(
    list(VARIANTS),
    speed["decode"],
    "decode time per call (ms)",
    title="decode, 64 x 17 maps of 64 x 48, during this run (not a benchmark)",
)

# %% [markdown]
# ## 4.5 Catching a broken codec
#
# The codecs above pass the invariants of `h3r_theory.testing` (`tests/test_codecs.py` runs them), and so can
# yours. This one encodes under the pixel-centre convention but decodes with the MSRA formula $x = u\,s$, a
# mix-up that costs $(s - 1)/2$ px and nothing at stride 1. Hypothesis finds it and shrinks the counterexample.

# %%
from h3r_theory.testing import Claims, check_codec


class MixedUpArgmax(codecs.Argmax):
    def decode(self, heatmaps, activation=None):
        coords, scores = super().decode(heatmaps, activation)
        return self.to_heatmap(coords) * torch.tensor(self.stride, dtype=coords.dtype), scores  # x = u * s


checked = ["round_trip", "shift_equivariance", "flip_equivariance"]
report = check_codec(MixedUpArgmax, Claims(round_trip_cells=0.5), only=checked)  # argmax claims half a cell
print(report.card())
assert report["round_trip"].status == report["flip_equivariance"].status == "fails"
assert report["shift_equivariance"].holds  # the same error in every cell: a whole-cell shift cannot see it
assert check_codec(codecs.Argmax, Claims(round_trip_cells=0.5), only=checked).holds  # the real codec passes

# %% [markdown]
# From a shell: `h3r-check-codec my_module:MixedUpArgmax --round-trip-cells 0.5` (exit status 1); see
# `docs/testing.md`.

# %% [markdown]
# ## Exercises
#
# Solutions: `notebooks/solutions/04_codec_zoo.py`.
#
# 1. Encode keypoints with `DARK`'s target (a Gaussian centred at the exact keypoint, a stand-in for a network
#    whose peak leans toward the truth) and decode those maps with the `Gaussian + quarter` decoder (argmax,
#    then a quarter-cell step toward the larger neighbour). Measure the mean error against the fraction $e_x$
#    (keep $e_y = 0$) and explain its shape: where does the quarter offset help, where does it hurt? (On its
#    own MSRA target the offset changes nothing: section 4.2.)
# 2. Put keypoints 1, 2 and 3 cells from the border and measure the bias of `DARK` there, with and without
#    blur (`blur_sigma=0`).
# 3. Repeat section 4.3 with `RandomizedRounding(method="topk", k=9)`. Why does top-$k$ suffer more from noise
#    far from the peak than the 3 x 3 window?
