"""Solutions to the exercises of notebook 01 (quantization error). Run: python notebooks/solutions/01_quantization_error.py

Each solution prints its answer and asserts it, so that the test suite keeps the solutions correct.
"""

import math

import numpy as np
import sympy as sp

from h3r_theory.theory import montecarlo as mc
from h3r_theory.theory import quantization, resolution

# %% [answer] exercise 1
# 1. Floor MSE = variance + bias^2. The error d = o(e) - e is a function of e ~ U[0, 1).
e = sp.Symbol("e", nonnegative=True)
moments = {}  # rounding -> (E[d], E[d^2], Var[d])
for rounding in ("floor", "round"):
    d = quantization.rounding_offset(rounding, e) - e
    mean = sp.integrate(d, (e, 0, 1))
    second = sp.integrate(d**2, (e, 0, 1))
    variance = sp.simplify(second - mean**2)
    print(f"1. {rounding}: E[d] = {mean}, E[d^2] = {second}, Var[d] = {variance}")
    moments[rounding] = (mean, second, variance)

# %% [check] exercise 1, 2 points: floor and round errors both have Var[d] = 1/12 and E[d^2] = Var[d] + E[d]^2
assert set(moments) == {"floor", "round"}, (
    f"moments needs the keys 'floor' and 'round', has {sorted(moments)}"
)
for rounding, (mean, second, variance) in moments.items():
    # both errors are uniform on an interval of length 1
    assert variance == sp.Rational(1, 12), f"{rounding}: Var[d] = {variance}, expected 1/12"
    assert second == variance + mean**2, f"{rounding}: E[d^2] = {second} is not Var[d] + E[d]^2"

# %% [answer] exercise 2
# 2. NME_q(s) = m s / d < 1 %  <=>  s < 0.01 d / m, with d = 117 px (about the WFLW median of section 1.5).
m = quantization.mean_quantization_error("round", 2)
limit = sp.Rational(1, 100) * 117 / m
strides = [1, 2, 4, 8, 16]
largest = max(s for s in strides if s < limit)
trade = resolution.resolution_tradeoff((256, 256), strides, normaliser=117.0, num_keypoints=98)
print(
    f"2. s < {float(limit):.3f}: largest stride {largest};",
    "closed-form NME (%):",
    np.round(100 * trade["nme_quantization"], 3).tolist(),
)
sim = mc.simulate_resolution(strides=(2, 4), input_size=(256, 256), normaliser=117.0, n=5_000)
print("   measured NME (%) at strides 2, 4:", np.round(100 * sim["nme_round"], 3).tolist())

# %% [check] exercise 2, 2 points: the largest stride of 1, 2, 4, 8, 16 whose rounding NME stays under 1 %
assert largest == 2, (
    f"largest = {largest}: the rounding NME m s / 117 stays under 1 % only for "
    f"s < {1.17 / float(quantization.mean_quantization_error('round', 2)):.2f}"
)

# %% [check] exercise 2, 1 point: the simulated NME (sim) is under 1 % at stride 2 and over it at stride 4
assert sim["nme_round"][0] < 0.01 < sim["nme_round"][1], f"simulated NME {sim['nme_round']}"

# %% [answer] exercise 3
# 3. Rounding to Z^3: each axis error is uniform on [-1/2, 1/2), independently.
rng = np.random.default_rng(0)
errors = rng.uniform(-0.5, 0.5, size=(200_000, 3))
distance = np.linalg.norm(errors, axis=1)
bound = math.sqrt(3 / 12)  # sqrt(E|d|^2) = sqrt(3 * 1/12)
print(f"3. mean 3-D rounding error {distance.mean():.4f} cells <= sqrt(3) * RMS(1-D) = {bound:.4f}")

# %% [check] exercise 3, 2 points: the mean 3-D error (distance) is below the RMS bound and near 0.4803 cells
# Jensen: E|d| <= sqrt(E|d|^2), strict because |d| is not constant.
assert distance.mean() < bound, f"mean {distance.mean():.4f} is not below the bound {bound:.4f}"
# The rounding error is uniform on the cube [-1/2, 1/2)^3, so its mean length is the mean distance from the
# centre of the unit cube to a uniform point in it: half the mean distance from a corner of the unit cube,
# sqrt(3)/4 - pi/24 + ln(2 + sqrt(3))/2 (a box integral). Checked here by the midpoint rule on the octant
# [0, 1/2]^3 (the other seven are mirror images).
centre = (math.sqrt(3) / 4 - math.pi / 24 + math.log(2 + math.sqrt(3)) / 2) / 2
grid = (np.arange(100) + 0.5) / 100 / 2
gx, gy, gz = np.meshgrid(grid, grid, grid, indexing="ij")
midpoint = np.sqrt(gx**2 + gy**2 + gz**2).mean()
se = distance.std() / math.sqrt(distance.size)
print(f"   centre to a random point of the cube: {centre:.6f} (midpoint rule {midpoint:.6f})")
assert abs(midpoint - centre) < 1e-5, f"midpoint rule {midpoint:.6f} against the closed form {centre:.6f}"
assert abs(distance.mean() - centre) < 5 * se, (
    f"mean {distance.mean():.4f} is more than 5 standard errors ({se:.4f}) from {centre:.4f} cells"
)
# Not Robbins' constant: that is the mean distance between TWO random points of the unit cube, 0.6617.
robbins = (4 + 17 * math.sqrt(2) - 6 * math.sqrt(3) - 7 * math.pi) / 105 + (
    math.log(1 + math.sqrt(2)) + 2 * math.log(2 + math.sqrt(3))
) / 5
pairs = np.linalg.norm(rng.uniform(size=(200_000, 3)) - rng.uniform(size=(200_000, 3)), axis=1)
print(
    f"   Robbins' constant {robbins:.4f} (two random points; Monte Carlo {pairs.mean():.4f}): a different number"
)
assert abs(pairs.mean() - robbins) < 5 * pairs.std() / math.sqrt(pairs.size), f"pairs: {pairs.mean():.4f}"
assert robbins - centre > 0.1, "the centre-to-point mean and Robbins' constant are different constants"
