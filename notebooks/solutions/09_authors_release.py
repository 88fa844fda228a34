"""Solutions to the exercises of notebook 09 (the authors' release, read closely).
Run: python notebooks/solutions/09_authors_release.py"""

import numpy as np
import torch
import torch.nn.functional as F

from h3r_theory.theory import montecarlo as mc
from h3r_theory.theory import quantization

FLOOR = float(quantization.mean_quantization_error("round", 2))


def top9_bias(z1, codec, kp):
    """Mean and max 2-D |decoded - true| (cells) of the top-9 softmax decode of channel-1 maps."""
    xy, _ = codec.decode(z1, activation="logits")
    err = torch.linalg.vector_norm((xy - kp)[:, 0] / codec.stride[0], dim=-1)
    return err.mean().item(), err.max().item()


# The optimum maps of notebook 9.3: keypoints on a cell-centred grid of fractions, msra top-9 decoder.
grid = (torch.arange(30, dtype=torch.float64) + 0.5) / 30
ex, ey = torch.meshgrid(grid, grid, indexing="ij")
cells = mc.cells_with_fractions(torch.stack((ex.flatten(), ey.flatten()), -1), (4, 4))
codec = mc.make_codec("randomized_rounding", (10, 10), 4, convention="msra", method="topk", k=9)
kp = codec.to_input(cells)[:, None, :]
p = codec.expected(kp).heatmaps.clamp(min=1e-15)
logit = torch.log(p / (1 - p))

# %% [answer] exercise 1
# 1. The 2-class softmax fixes z1 - z0 = logit(p) whatever the split: decoding the difference is the odds
#    decoder, i.e. exactly case (b)'s bias, independent of the initialisation.
z0 = torch.randn(p.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
z1 = logit + z0  # any split with z1 - z0 = logit(p): here channel 0 random
diff_bias = top9_bias(z1 - z0, codec, kp)
bce_bias = top9_bias(logit, codec, kp)
channel1_bias = top9_bias(z1, codec, kp)
print(
    f"1. top-9 of z1 - z0: mean {diff_bias[0]:.4f}, max {diff_bias[1]:.4f} cells = case (b) "
    f"({bce_bias[0]:.4f}, {bce_bias[1]:.4f}); channel 1 alone with a random z0: mean {channel1_bias[0]:.4f}"
)

# The same through a fit: the 2-class softmax per cell, from two initialisations.
fit_codec = mc.make_codec("randomized_rounding", (8, 8), 4, convention="msra", method="topk", k=9)
fit_kp = fit_codec.to_input(torch.tensor([[[3.3, 3.7]]], dtype=torch.float64))
freq = mc.empirical_distribution(fit_codec, fit_kp, 50_000, torch.Generator().manual_seed(0))[0]
results = []
for init in (
    torch.zeros_like(freq),
    torch.randn(freq.shape, generator=torch.Generator().manual_seed(2)).double(),
):
    z = torch.stack((init, torch.zeros_like(freq))).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        log_p = F.log_softmax(z, dim=0)
        (-(freq * log_p[1] + (1 - freq) * log_p[0]).mean()).backward()
        opt.step()
    z = z.detach()
    results.append(fit_codec.decode((z[1] - z[0])[None], activation="logits")[0])
gap = (results[0] - results[1]).norm().item() / 4
print(f"   fitted from z = 0 and from a random z0, the decodes of z1 - z0 differ by {gap:.2e} cells")

# %% [check] exercise 1, 2 points: top-9 of z1 - z0 has exactly the odds decoder's bias (diff_bias = bce_bias)
assert abs(diff_bias[0] - bce_bias[0]) < 1e-9 and abs(diff_bias[1] - bce_bias[1]) < 1e-9, (
    f"diff_bias {diff_bias}, bce_bias {bce_bias}"
)

# %% [check] exercise 1, 1 point: channel 1 alone (channel1_bias) errs over twice as much: the split decides it
assert channel1_bias[0] > 2 * diff_bias[0], f"channel1_bias {channel1_bias}, diff_bias {diff_bias}"

# %% [check] exercise 1, 1 point: fitted from two initialisations, the decodes of z1 - z0 agree (gap < 0.02 cell)
assert gap < 0.02, f"gap = {gap:.3g} cells"

# %% [answer] exercise 2
# 2. The best exponent of the odds: weights (p / (1 - p))^alpha.
alphas = np.round(np.arange(0.30, 1.01, 0.05), 2)
means = np.array([top9_bias(a * logit, codec, kp)[0] for a in alphas])
best = alphas[means.argmin()]
print(
    "2. mean 2-D bias by alpha:",
    ", ".join(f"{a:.2f}: {m:.4f}" for a, m in zip(alphas, means)),
    f"-> best alpha {best:.2f}",
)

# %% [check] exercise 2, 2 points: the mean bias over alphas (means) has an interior minimum, and 1/2 beats 1
assert means.argmin() not in (0, len(alphas) - 1)  # an interior minimum
assert means[alphas == 0.5][0] < means[alphas == 1.0][0]
# In 1-D alpha = 1/2 is exact; in 2-D the odds of a product are not a product, so the best alpha need not be
# 1/2, and the minimum is not 0: no power of the odds is the bilinear weight p itself.
assert means.min() > 1e-3, f"smallest mean bias {means.min():.2e}: no power of the odds is exact in 2-D"

# %% [answer] exercise 3
# 3. A secondary peak 8 cells away takes the weight h / (1 + h): error 8 h / (1 + h) = FLOOR at h = FLOOR / (8 - FLOOR).
h_star = FLOOR / (8 - FLOOR)
peak = mc.make_codec("randomized_rounding", (32, 32), 4, method="topk", k=9)
main = peak.to_input(torch.tensor([[[12.3, 14.6]]], dtype=torch.float64))
other = main + torch.tensor([32.0, 0.0], dtype=torch.float64)
maps = torch.log(peak.expected(main).heatmaps + h_star * peak.expected(other).heatmaps + 1e-4)
err = (peak.decode(maps, activation="logits")[0] - main).norm().item() / 4
print(f"3. h* = {h_star:.4f}: top-9 error there {err:.4f} cells (vanilla mean {FLOOR:.4f})")

# %% [check] exercise 3, 2 points: at the height h_star the top-9 error (err) equals the vanilla mean error
assert abs(err - FLOOR) < 0.01, f"err = {err:.4f} cells at h_star = {h_star:.4f}, floor {FLOOR:.4f}"

# %% [answer] exercise 4
# 4. The inverse permutation: the authors' conv channel c K + k holds this package's channel 2 k + c.
K = 5
authors_channel = torch.tensor([c * K + k for k in range(K) for c in range(2)])  # ours -> authors
ours_channel = torch.tensor([2 * k + c for c in range(2) for k in range(K)])  # authors -> ours
weights = torch.randn(2 * K, 7, generator=torch.Generator().manual_seed(3))
print("4. ours_channel = argsort(authors_channel):", ours_channel.tolist())

# %% [check] exercise 4, 2 points: ours_channel undoes authors_channel and is its argsort
assert torch.equal(weights[authors_channel][ours_channel], weights), (
    "ours_channel does not undo authors_channel"
)
assert torch.equal(torch.argsort(authors_channel), ours_channel), f"ours_channel = {ours_channel.tolist()}"
