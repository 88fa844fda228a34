"""Solutions to the exercises of notebook 02 (randomized rounding). Run: python notebooks/solutions/02_randomized_rounding.py"""

import numpy as np
import sympy as sp
import torch

from h3r_theory.theory import montecarlo as mc
from h3r_theory.theory import quantization
from h3r_theory.theory import randomized_rounding as rr

e = sp.Symbol("e", nonnegative=True)  # the fraction u - floor(u), used by exercises 1 and 3

# %% [answer] exercise 1
# 1. |q - u| is e (rounded down, w.p. 1 - e) or 1 - e (rounded up, w.p. e).
conditional = sp.factor((1 - e) * e + e * (1 - e))
mean = sp.integrate(conditional, (e, 0, 1))
print(
    f"1. E|q - u| given e = {conditional}; averaged over e: {mean} (rounding: "
    f"{quantization.mean_quantization_error('round', 1)})"
)

# %% [check] exercise 1, 2 points: E|q - u| given e is 2 e (1 - e), and 1/3 cell averaged over e
assert sp.simplify(conditional - 2 * e * (1 - e)) == 0, f"conditional = {conditional}"
assert mean == sp.Rational(1, 3), f"mean = {mean}"
assert mean == rr.single_sample_error(1).closed_form

# %% [answer] exercise 2
# 2. sd of the mean of M draws = sqrt(e (1 - e) / M) <= 0.01 for every e  <=>  M >= max e(1-e) / 1e-4 = 2500.
M = sp.Symbol("M", positive=True)
worst = sp.Rational(1, 4)  # e (1 - e) is largest at e = 1/2
need = sp.ceiling(sp.solve(sp.Eq(sp.sqrt(worst / M), sp.Rational(1, 100)), M)[0])
print(f"2. M >= {need}")
sim = mc.simulate_randomized_rounding(fractions=(0.5, 0.5), n=int(need) * 100, seed=0)
group_means = sim["errors"][:, 0].reshape(100, int(need)).mean(axis=1)
print(f"   sd of 100 means of {need} draws at e = 1/2: {group_means.std(ddof=1):.4f} cells")

# %% [check] exercise 2, 2 points: the number of draws M (need) that brings the sd under 0.01 for every e
assert need == 2500, f"need = {need}: solve sqrt(e (1 - e) / M) <= 0.01 at the worst e"

# %% [check] exercise 2, 1 point: the sd of 100 simulated means of `need` draws (group_means) is about 0.01
assert 0.007 < group_means.std(ddof=1) < 0.013  # 0.01 within the spread of a 100-sample sd estimate

# %% [answer] exercise 3
# 3. Round up with probability e^2: E[q] - u = e^2 - e, worst at e = 1/2 with bias -1/4.
bias = e**2 - e
e_worst = sp.solve(sp.diff(bias, e), e)[0]
print(f"3. bias {bias}, worst at e = {e_worst}: {bias.subs(e, e_worst)} cells")
g = torch.Generator().manual_seed(0)
draws = (torch.rand(200_000, generator=g, dtype=torch.float64) < 0.5**2).double()
measured = float(draws.mean() - 0.5)
print(f"   simulated bias at e = 1/2: {measured:.4f}")

# %% [check] exercise 3, 2 points: the bias e^2 - e is worst at e = 1/2, where it is -1/4 cell
assert e_worst == sp.Rational(1, 2), f"e_worst = {e_worst}"
assert bias.subs(e, e_worst) == -sp.Rational(1, 4), f"bias at e_worst = {bias.subs(e, e_worst)}"

# %% [check] exercise 3, 1 point: the simulated bias (measured, from draws) is -1/4 within 5 standard errors
assert abs(measured + 0.25) < 5 * float(draws.std()) / np.sqrt(draws.numel())
