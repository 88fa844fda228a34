"""Solutions to the exercises of notebook 03 (proofs). Run: python notebooks/solutions/03_proofs.py"""

import math

import sympy as sp
import torch

from h3r_theory.theory import losslessness
from h3r_theory.theory import montecarlo as mc

# 1. In 1-D the support has 2 cells, so top-2 keeps all of it: exact for every fraction.
derivation = losslessness.topk_decode(2, dim=1)
print("1. top-2 error in 1-D:", derivation.closed_form.T)
assert derivation.closed_form == sp.zeros(1, 1)
g = torch.Generator().manual_seed(0)
fractions = torch.stack(
    (torch.rand(1000, generator=g, dtype=torch.float64), torch.zeros(1000, dtype=torch.float64)), -1
)
sim = mc.simulate_expected_decode(fractions=fractions, method="topk", k=2)
print(f"   largest |error| of top-2 on a cell row: {sim['max_abs_1d']:.2e} cells")
assert sim["max_abs_1d"] < 1e-12

# 2. Mean 2-D error f * 0.3826 with f = n delta / (1 + n delta), n = 25 (5 x 5) or 9 (3 x 3).
for radius in (2, 1):
    error = losslessness.window_floor_error(radius)["mean_2d"]
    delta = error.symbols["delta"]
    bound = sp.solve(sp.Eq(error.closed_form, sp.Rational(1, 100)), delta)[0]
    print(f"2. window r={radius}: mean 2-D error < 0.01 cells iff delta < {float(bound):.3e}")
    if radius == 2:
        bound_5x5 = float(bound)
assert bound_5x5 < float(bound)  # more activation points, more floor mass: a smaller floor is tolerated

# 3. Two-sided tail of a standard normal: P(|z| > t) = erfc(t / sqrt(2)).
for t in (2, 5):
    expected = 20 * math.erfc(t / math.sqrt(2))
    print(f"3. of 20 correct checks, {expected:.2g} are expected outside +-{t} standard errors")
assert 0.9 < 20 * math.erfc(2 / math.sqrt(2)) < 0.95  # about one false alarm per 20 checks at 2 sd
assert 20 * math.erfc(5 / math.sqrt(2)) < 1e-4  # 5 sd: a failure means a real disagreement
