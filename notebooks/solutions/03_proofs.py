"""Solutions to the exercises of notebook 03 (proofs). Run: python notebooks/solutions/03_proofs.py"""

import math

import sympy as sp
import torch

from h3r_theory.theory import losslessness
from h3r_theory.theory import montecarlo as mc

# %% [answer] exercise 1
# 1. In 1-D the support has 2 cells, so top-2 keeps all of it: exact for every fraction.
derivation = losslessness.topk_decode(2, dim=1)
print("1. top-2 error in 1-D:", derivation.closed_form.T)
g = torch.Generator().manual_seed(0)
fractions = torch.stack(
    (torch.rand(1000, generator=g, dtype=torch.float64), torch.zeros(1000, dtype=torch.float64)), -1
)
sim = mc.simulate_expected_decode(fractions=fractions, method="topk", k=2)
print(f"   largest |error| of top-2 on a cell row: {sim['max_abs_1d']:.2e} cells")

# %% [check] exercise 1, 1 point: the closed-form top-2 error in 1-D (derivation.closed_form) is exactly 0
assert derivation.closed_form == sp.zeros(1, 1), f"closed form {derivation.closed_form}"

# %% [check] exercise 1, 1 point: the simulated top-2 decode of a cell row (sim) is exact to 1e-12 cells
assert sim["max_abs_1d"] < 1e-12, f"largest |error| {sim['max_abs_1d']:.2e} cells"

# %% [answer] exercise 2
# 2. Mean 2-D error f * 0.3826 with f = n delta / (1 + n delta), n = 25 (5 x 5) or 9 (3 x 3).
bounds = {}  # window radius -> the largest floor delta with a mean 2-D error under 0.01 cells
for radius in (2, 1):
    error = losslessness.window_floor_error(radius)["mean_2d"]
    delta = error.symbols["delta"]
    bound = sp.solve(sp.Eq(error.closed_form, sp.Rational(1, 100)), delta)[0]
    print(f"2. window r={radius}: mean 2-D error < 0.01 cells iff delta < {float(bound):.3e}")
    bounds[radius] = float(bound)

# %% [check] exercise 2, 2 points: the 5 x 5 window (radius 2) tolerates a smaller floor than the 3 x 3 one
assert set(bounds) == {1, 2} and all(b > 0 for b in bounds.values()), f"bounds = {bounds}"
assert bounds[2] < bounds[1]  # more activation points, more floor mass: a smaller floor is tolerated

# %% [answer] exercise 3
# 3. Two-sided tail of a standard normal: P(|z| > t) = erfc(t / sqrt(2)).
false_alarms = {}  # t -> expected number of the 20 correct checks outside +-t standard errors
for t in (2, 5):
    false_alarms[t] = 20 * math.erfc(t / math.sqrt(2))
    print(f"3. of 20 correct checks, {false_alarms[t]:.2g} are expected outside +-{t} standard errors")

# %% [check] exercise 3, 1 point: about one false alarm in 20 correct checks at 2 standard errors
assert 0.9 < false_alarms[2] < 0.95, f"false_alarms[2] = {false_alarms[2]}"

# %% [check] exercise 3, 1 point: practically none at 5 standard errors (a failure is a real disagreement)
assert false_alarms[5] < 1e-4, f"false_alarms[5] = {false_alarms[5]}"
