"""Solutions to the exercises of notebook 05 (loss/decoder consistency).
Run: python notebooks/solutions/05_loss_decoder_consistency.py"""

import numpy as np
import sympy as sp
import torch

from h3r_theory.theory import consistency
from h3r_theory.theory import montecarlo as mc

# %% [answer] exercise 1
# 1. The 2-D odds bias on a grid of fractions.
bias2d = consistency.bce_logits_softmax_bias_2d()
fx = sp.lambdify((bias2d.symbols["e_x"], bias2d.symbols["e_y"]), bias2d.closed_form[0], "numpy")
grid = np.linspace(0.01, 0.99, 99)
ex, ey = np.meshgrid(grid, grid, indexing="ij")
bx = fx(ex, ey)
i, j = np.unravel_index(np.abs(bx).argmax(), bx.shape)
one_d = float(consistency.bce_logits_softmax_max_bias()[1])
print(
    f"1. largest |x bias| in 2-D: {abs(bx[i, j]):.4f} cells at (e_x, e_y) = ({ex[i, j]:.2f}, {ey[i, j]:.2f}); "
    f"1-D maximum {one_d:.4f}"
)

# %% [check] exercise 1, 2 points: the 2-D x bias on the grid (bx, largest at bx[i, j]) is finite and over 0.05 cell
assert np.isfinite(bx).all() and abs(bx[i, j]) > 0.05, f"largest |x bias| {abs(bx[i, j]):.4f} cells"

# %% [check] exercise 1, 1 point: on e_y = 0 the 2-D bias fx(e_x, 0) is the 1-D bias
edge = fx(grid, np.zeros_like(grid))  # on e_y = 0 the 2-D bias reduces to the 1-D one
one_d_curve = sp.lambdify(
    consistency.bce_logits_softmax_bias().symbols["e_x"],
    consistency.bce_logits_softmax_bias().closed_form,
    "numpy",
)(grid)
assert np.allclose(edge, one_d_curve), "fx(e_x, 0) differs from the 1-D bias of the same pairing"

# %% [answer] exercise 2
# 2. CE-fitted logits read as probabilities: the weights are raw logits, which are defined only up to a
#    constant, so their sign and scale are arbitrary and the decode is wrong.
codec = mc.make_codec("randomized_rounding", (6, 6), 4)
fractions = torch.tensor([[0.3, 0.7]], dtype=torch.float64)
keypoints = codec.to_input(mc.cells_with_fractions(fractions))[None]
target = mc.empirical_distribution(codec, keypoints, 50_000, torch.Generator().manual_seed(0))
logits = mc.fit_cell_logits(target, "softmax_ce", steps=300)
right, _ = codec.decode(logits, activation="logits")
wrong_error = {}  # shift -> error (cells) of the logits read as probabilities
for shift in (0.0, 5.0):  # the softmax is blind to a constant shift; the "probabilities" reading is not
    wrong, _ = codec.decode(logits + shift, activation="probabilities")
    print(
        f"2. shift {shift}: consistent error {((right - keypoints) / 4).norm():.4f} cells, "
        f"logits-as-probabilities error {((wrong - keypoints) / 4).norm():.4f} cells"
    )
    wrong_error[shift] = float(((wrong - keypoints) / 4).norm())

# %% [check] exercise 2, 1 point: the consistent decode of the fitted logits (right) is within 0.01 cell
assert ((right - keypoints) / 4).norm() < 0.01, (
    f"consistent error {((right - keypoints) / 4).norm():.4f} cells"
)

# %% [check] exercise 2, 2 points: read as probabilities, the logits shifted by 5 err over 10 times more
assert wrong_error[5.0] > 10 * ((right - keypoints) / 4).norm(), f"wrong_error = {wrong_error}"

# %% [answer] exercise 3
# 3. L1 risk of predicting c against a randomized-rounding target i or i + 1 (take i = 0), for c in [0, 1].
e, c = sp.symbols("e c", nonnegative=True)
risk = (1 - e) * c + e * (1 - c)  # |c - 0| and |c - 1| on [0, 1]
slope = sp.diff(risk, c)
print(
    f"3. L1 risk on [0, 1]: {sp.expand(risk)}, slope {slope}: minimised at c = 1 if e > 1/2 else 0 "
    f"(the median), i.e. plain rounding"
)

# %% [check] exercise 3, 2 points: the slope of the L1 risk in c is 1 - 2 e (so its minimum is the median)
assert sp.simplify(slope - (1 - 2 * e)) == 0
# A deterministic target has median = mean = itself, so L1 is consistent there (soft-argmax's targets).
