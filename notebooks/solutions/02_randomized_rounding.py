"""Solutions to the exercises of notebook 02 (randomized rounding). Run: python notebooks/solutions/02_randomized_rounding.py"""

import numpy as np
import sympy as sp
import torch

from h3r_theory.theory import montecarlo as mc
from h3r_theory.theory import quantization
from h3r_theory.theory import randomized_rounding as rr

# 1. |q - u| is e (rounded down, w.p. 1 - e) or 1 - e (rounded up, w.p. e).
e = sp.Symbol("e", nonnegative=True)
conditional = sp.factor((1 - e) * e + e * (1 - e))
mean = sp.integrate(conditional, (e, 0, 1))
print(
    f"1. E|q - u| given e = {conditional}; averaged over e: {mean} (rounding: "
    f"{quantization.mean_quantization_error('round', 1)})"
)
assert sp.simplify(conditional - 2 * e * (1 - e)) == 0 and mean == sp.Rational(1, 3)
assert mean == rr.single_sample_error(1).closed_form

# 2. sd of the mean of M draws = sqrt(e (1 - e) / M) <= 0.01 for every e  <=>  M >= max e(1-e) / 1e-4 = 2500.
M = sp.Symbol("M", positive=True)
worst = sp.Rational(1, 4)  # e (1 - e) is largest at e = 1/2
need = sp.ceiling(sp.solve(sp.Eq(sp.sqrt(worst / M), sp.Rational(1, 100)), M)[0])
print(f"2. M >= {need}")
assert need == 2500
sim = mc.simulate_randomized_rounding(fractions=(0.5, 0.5), n=int(need) * 100, seed=0)
group_means = sim["errors"][:, 0].reshape(100, int(need)).mean(axis=1)
print(f"   sd of 100 means of {need} draws at e = 1/2: {group_means.std(ddof=1):.4f} cells")
assert 0.007 < group_means.std(ddof=1) < 0.013  # 0.01 within the spread of a 100-sample sd estimate

# 3. Round up with probability e^2: E[q] - u = e^2 - e, worst at e = 1/2 with bias -1/4.
bias = e**2 - e
e_worst = sp.solve(sp.diff(bias, e), e)[0]
print(f"3. bias {bias}, worst at e = {e_worst}: {bias.subs(e, e_worst)} cells")
assert e_worst == sp.Rational(1, 2) and bias.subs(e, e_worst) == -sp.Rational(1, 4)
g = torch.Generator().manual_seed(0)
draws = (torch.rand(200_000, generator=g, dtype=torch.float64) < 0.5**2).double()
measured = float(draws.mean() - 0.5)
print(f"   simulated bias at e = 1/2: {measured:.4f}")
assert abs(measured + 0.25) < 5 * float(draws.std()) / np.sqrt(draws.numel())
