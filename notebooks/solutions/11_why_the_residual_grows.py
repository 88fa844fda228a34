"""Solutions to the exercises of notebook 11 (why the residual error grows with the stride).

Run from the repository root:  python notebooks/solutions/11_why_the_residual_grows.py
Exercise 1 is algebra and arithmetic; exercises 2 and 3 read the committed convergence record,
``docs/studies/convergence/study.json`` (no training, seconds). Each solution prints its answer and
asserts it.
"""

import json
import math
from pathlib import Path

import torch

from h3r_theory.theory import curvature

RECORD = Path(__file__).resolve().parents[2] / "docs" / "studies" / "convergence" / "study.json"
conv = json.loads(RECORD.read_text())
LARGEST = max(conv["study"]["budgets"])
FINE, COARSE = min(conv["study"]["strides"]), max(conv["study"]["strides"])


def law(variant, steps):
    """The record's kl_law entry of a variant at a budget (None if the record lacks it)."""
    return next((k for k in conv["kl_law"] if (k["variant"], k["steps"]) == (variant, steps)), None)


# %% [answer] exercise 1
# 1. Scan |delta| on a fine grid at f = 0.1 and keep the largest shift whose exact KL is within 10 % of the
#    quadratic term, towards the nearer cell (delta < 0, the fraction shrinks towards 0) and away from it.
f0 = 0.1
quadratic = curvature.kl_of_a_shift()
grid = torch.linspace(1e-4, 0.0999, 2000, dtype=torch.float64)
within = {}
for sign in (-1, +1):
    deltas = sign * grid
    exact = curvature.kl_exact(torch.full_like(deltas, f0), deltas)
    approx = deltas.square() / (2 * f0 * (1 - f0))
    ok = (exact / approx - 1).abs() <= 0.10
    first_bad = int((~ok).nonzero()[0]) if (~ok).any() else len(grid)
    within[sign] = float(grid[first_bad - 1])
cubic = dict(quadratic.steps)["the third-order term (small when delta << min(f, 1 - f))"]
print(f"1. f = {f0}: the quadratic term is within 10 % for delta in [-{within[-1]:.4f}, +{within[+1]:.4f}] cells; "
      f"the cubic term {cubic} changes sign with delta: towards the nearer cell q -> 0 and the KL blows up")  # fmt: skip

# %% [check] exercise 1, 2 points: the 10 % range (within[-1], within[+1]) is narrower towards the nearer cell
assert set(within) == {-1, +1}, f"within needs the keys -1 and +1, has {sorted(within)}"
assert 0 < within[-1] < within[+1], (
    f"towards the nearer cell {within[-1]} should be narrower than {within[+1]}"
)


# %% [check] exercise 1, 1 point: each end of the range is where the exact KL leaves 10 % of delta^2 / (2 f (1 - f))
def gap(delta):
    exact = float(curvature.kl_exact(torch.tensor([f0]), torch.tensor([delta]))[0])
    return abs(exact / (delta**2 / (2 * f0 * (1 - f0))) - 1)


for sign, end in within.items():
    assert gap(sign * end) <= 0.10 < gap(sign * end * 1.05), (
        f"delta = {sign * end}: gap {gap(sign * end):.3f}"
    )

# %% [answer] exercise 2
# 2. argmax is trained on a one-hot target at the rounded cell: its optimum is a peak at one cell, not the
#    expected target, so its KL to the expected target is not what it minimises and its error per sqrt(KL)
#    has no reason to be stride-free.
budgets = [n for n in conv["study"]["budgets"] if n >= 100]
argmax_laws = {n: law("argmax", n) for n in budgets}
rre_laws = {n: law("rr_expected", n) for n in budgets}
for n in budgets:
    a, r = argmax_laws[n], rre_laws[n]
    print(f"2. {n} steps: law ratio {COARSE}/{FINE}: argmax {a['law_ratio']['mean']:.3f} "
          f"[{a['law_ratio']['low']:.3f}, {a['law_ratio']['high']:.3f}], rr_expected {r['law_ratio']['mean']:.3f} "
          f"[{r['law_ratio']['low']:.3f}, {r['law_ratio']['high']:.3f}]")  # fmt: skip

# %% [check] exercise 2, 2 points: argmax's law ratio departs further from 1 than rr_expected's at every budget
for n in budgets:
    a, r = argmax_laws[n]["law_ratio"]["mean"], rre_laws[n]["law_ratio"]["mean"]
    assert abs(a - 1) > abs(r - 1), (
        f"{n} steps: argmax {a:.3f} should be further from 1 than rr_expected {r:.3f}"
    )

# %% [answer] exercise 3
# 3. Per seed the RMS ratio is exactly (s16 / s4) x law ratio x sqrt(KL ratio); from the means it is close.
k = law("rr_expected", LARGEST)
predicted = COARSE / FINE * k["law_ratio"]["mean"] * math.sqrt(k["kl_ratio"]["mean"])
counted = {}
for r in conv["runs"].values():
    j = r["job"]
    chosen = next(
        s["lr"]
        for s in conv["summary"]
        if (s["variant"], s["stride"], s["steps"]) == (j["variant"], j["stride"], j["steps"])
    )
    if j["variant"] == "rr_expected" and j["steps"] == LARGEST and j["lr"] == chosen:
        counted[(j["stride"], j["seed"])] = r["rms_error_px"]
seeds = sorted({seed for _, seed in counted})
measured = sum(counted[(COARSE, s)] / counted[(FINE, s)] for s in seeds) / len(seeds)
# A pixel ratio of 1.5 at the same law ratio: 1.5 = 4 x law x sqrt(KL ratio).
needed_kl_ratio = (1.5 / (COARSE / FINE * k["law_ratio"]["mean"])) ** 2
print(f"3. {LARGEST} steps: predicted RMS ratio {predicted:.3f}, measured {measured:.3f} (mean over seeds {seeds}); "
      f"a ratio of 1.5 needs a KL ratio of {needed_kl_ratio:.3f}, measured {k['kl_ratio']['mean']:.3f}")  # fmt: skip

# %% [check] exercise 3, 2 points: the prediction from the means is within 3 % of the measured RMS ratio
assert abs(predicted / measured - 1) < 0.03, (predicted, measured)

# %% [check] exercise 3, 1 point: the KL ratio a pixel ratio of 1.5 needs is (1.5 / (4 x law ratio))^2
assert abs(needed_kl_ratio - (1.5 / (4 * k["law_ratio"]["mean"])) ** 2) < 1e-12 and needed_kl_ratio < 0.2
