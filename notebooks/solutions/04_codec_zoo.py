"""Solutions to the exercises of notebook 04 (codec zoo). Run: python notebooks/solutions/04_codec_zoo.py"""

import numpy as np
import torch

from h3r_theory import codecs

size, stride = (16, 16), 4
input_size = (size[0] * stride, size[1] * stride)

# %% [answer] exercise 1
# 1. Quarter offset on a Gaussian centred at the keypoint (what a good network might output), e_y = 0.
quarter = codecs.build("gaussian", input_size, size, quarter_offset=True)
exact_centre = codecs.build("dark", input_size, size)  # its target: a Gaussian at the unquantized position
e = torch.linspace(0, 0.999, 1000, dtype=torch.float64)
uv = torch.stack((7 + e, torch.full_like(e, 7.0)), -1)
kp = quarter.to_input(uv)[:, None]
xy, _ = quarter.decode(exact_centre.encode(kp).heatmaps, activation="probabilities")
err = ((xy - kp)[:, 0, 0] / stride).numpy()
plain = np.minimum(e.numpy(), 1 - e.numpy())  # |error| of plain rounding
helps = np.abs(err) < plain - 1e-9
print(
    f"1. mean |error|: quarter offset {np.abs(err).mean():.4f}, plain rounding {plain.mean():.4f} cells; "
    f"it helps for e in ({e[helps].min():.3f}, {e[helps].max():.3f}) and hurts near the cell centres"
)

# %% [check] exercise 1, 2 points: the quarter offset's mean |error| (err, in cells) is 1/8 instead of 1/4
# The decode is round(u) +- 1/4 toward the truth: |error| = |1/4 - dist|, mean 1/8 instead of 1/4.
assert abs(np.abs(err).mean() - 0.125) < 0.002, f"mean |err| = {np.abs(err).mean():.4f} cells"

# %% [check] exercise 1, 1 point: it helps (helps, over the fractions e) for e in about (1/8, 7/8)
assert 0.12 < e[helps].min() < 0.13 and 0.87 < e[helps].max() < 0.88, (
    f"helps for e in ({e[helps].min():.3f}, {e[helps].max():.3f})"
)

# %% [answer] exercise 2
# 2. DARK near the left border, with and without blur.
border_bias = {}  # blur_sigma -> x bias (cells) at 1, 2, 3, 6 cells from the border
for blur in (None, 0.0):
    dark = codecs.build("dark", input_size, size, blur_sigma=blur)
    biases = []
    for distance in (1, 2, 3, 6):
        uv = torch.tensor([[[distance + 0.3, 7.5]]], dtype=torch.float64)
        kp = dark.to_input(uv)
        xy, _ = dark.decode(dark.encode(kp).heatmaps, activation="probabilities")
        biases.append(float((xy - kp)[0, 0, 0]) / stride)
    print(
        f"2. DARK blur_sigma={blur}: x bias at 1, 2, 3, 6 cells from the border:",
        np.round(biases, 4).tolist(),
    )
    border_bias[blur] = biases

# %% [check] exercise 2, 1 point: without blur (blur_sigma=0), DARK is exact at every distance from the border
# exact wherever the 3 x 3 neighbourhood is on the map
assert max(abs(b) for b in border_bias[0.0]) < 1e-9, f"biases {border_bias[0.0]}"

# %% [check] exercise 2, 2 points: with the default blur, a bias within 3 cells of the border, (almost) none at 6
# The blur reaches beyond the border within a few sigma: a bias there, (almost) none farther in.
near = max(abs(b) for b in border_bias[None][:3])
assert near > 1e-3 and abs(border_bias[None][3]) < 0.1 * near, f"biases {border_bias[None]}"

# %% [answer] exercise 3
# 3. Top-9 vs the 3 x 3 window on noisy expected targets.
g = torch.Generator().manual_seed(0)
codec = codecs.build("randomized_rounding", input_size, size)
uv = 3 + torch.rand(1, 2000, 2, generator=g, dtype=torch.float64) * 9
kp = codec.to_input(uv)
clean = codec.expected(kp).heatmaps
noisy = clean + 0.1 * clean.flatten(-2).amax(-1)[..., None, None] * torch.randn(
    clean.shape, generator=g, dtype=clean.dtype
)
results = {}
for method in ("window", "topk"):
    xy, _ = codec.decode(noisy, method=method, k=9, activation="probabilities")
    results[method] = float((xy - kp).norm(dim=-1).mean())
print(
    f"3. mean error on noisy maps: window {results['window']:.3f} px, top-9 {results['topk']:.3f} px "
    f"(top-9 may pick noisy cells anywhere on the map)"
)

# %% [check] exercise 3, 2 points: on noisy maps top-9 errs more than the 3 x 3 window (results, px)
assert results["topk"] > results["window"]
