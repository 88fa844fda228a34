"""Loss / decoder consistency: which decoder reads the optimum of which loss without bias (item 4).

(a) Spatial softmax cross-entropy against randomized-rounding samples: the population optimum of
    ``softmax(z)`` is the expected (bilinear) distribution, so the softmax over the activation points'
    logits decodes ``u`` exactly (:func:`softmax_cross_entropy_optimum`).
(b) Per-pixel binary cross-entropy: the optimum is ``sigmoid(z_j) = p_j`` per cell, so the decoder must
    normalise the *probabilities*. A softmax over those logits weighs cell ``j`` by the odds
    ``p_j / (1 - p_j)`` and is biased toward the heavier cell (:func:`bce_logits_softmax_bias`).
(c) MSE to Gaussian targets, decoded by argmax: the optimum is the target, whose argmax is the rounded
    cell, so the vanilla rounding error stays (:func:`mse_gaussian_argmax_error`).

All positions are in heatmap cells.
"""

from __future__ import annotations

import math

import sympy as sp

from .derivation import Derivation, claim, fraction_symbol
from .losslessness import bilinear_support
from .quantization import mean_quantization_error


def softmax_cross_entropy_optimum(cells: int = 4) -> Derivation:
    """Population optimum of the spatial softmax cross-entropy over random one-hot targets.

    A one-hot target at cell ``j`` with probability ``p_j`` gives the expected loss ``-sum_j p_j log pi_j``
    where ``pi = softmax(z)``. Minimising over the simplex (Lagrange multiplier ``lambda`` for
    ``sum pi = 1``) gives ``pi_j = p_j``: the network's softmax converges to the expected target, i.e. the
    bilinear distribution of :func:`h3r_theory.theory.losslessness.decode_expected`, whose mean is ``u``.
    (Equivalently, the loss minus the entropy of ``p`` is ``KL(p || pi) >= 0``, zero only at ``pi = p``.)
    Cells never hit have ``p_j = 0`` and optimal logit ``-inf``; a finite network leaves them a small mass,
    whose effect is :func:`h3r_theory.theory.losslessness.uniform_floor_bias`.
    """
    p = sp.symbols(f"p1:{cells + 1}", positive=True)
    pi = sp.symbols(f"pi1:{cells + 1}", positive=True)
    lam = sp.Symbol("lambda", positive=True)
    risk = -sum(pj * sp.log(qj) for pj, qj in zip(p, pi))
    lagrangian = risk + lam * (sum(pi) - 1)
    stationary = [sp.diff(lagrangian, qj) for qj in pi]
    solution = sp.solve(stationary + [sum(pi) - 1], list(pi) + [lam], dict=True)[0]
    # The multiplier is lambda = sum(p), which is 1 for a probability vector.
    optimum = sp.Matrix([solution[qj] for qj in pi]).subs(sum(p), 1)
    steps = (
        ("expected loss over the random one-hot target", risk),
        ("stationarity of the Lagrangian: dL/dpi_j", sp.Matrix(stationary)),
        ("solution (lambda = sum p = 1)", sp.Matrix([solution[qj] for qj in pi])),
        (
            "Hessian of the risk is diag(p_j / pi_j^2) > 0: the stationary point is the minimum",
            sp.diag(*[sp.diff(risk, qj, 2) for qj in pi]),
        ),
    )
    symbols = {f"p{j + 1}": pj for j, pj in enumerate(p)}
    return Derivation(
        claim("argmin E[CE]", optimum, r"\operatorname{argmin}_\pi \mathbb{E}[\mathrm{CE}]"),
        optimum,
        steps,
        symbols,
    )


def bce_optimum() -> Derivation:
    """Per-cell BCE optimum: ``sigmoid(z) = p`` (the cell's hit probability), i.e. ``z = log(p / (1 - p))``."""
    p = sp.Symbol("p", positive=True)
    z = sp.Symbol("z", real=True)
    sigma = 1 / (1 + sp.exp(-z))
    risk = -(p * sp.log(sigma) + (1 - p) * sp.log(1 - sigma))
    gradient = sp.simplify(sp.diff(risk, z))
    solution = sp.solve(sp.Eq(gradient, 0), z)[0]
    steps = (
        ("expected BCE of one cell hit with probability p", risk),
        ("d/dz = sigmoid(z) - p", gradient),
        ("zero at the logit", solution),
        ("sigmoid of it", sp.simplify(sigma.subs(z, solution))),
    )
    return Derivation(
        claim("argmin_z E[BCE]", solution, r"\operatorname{argmin}_z \mathbb{E}[\mathrm{BCE}]"),
        solution,
        steps,
        {"p": p, "z": z},
    )


def odds_weighted_decode(dim: int = 1) -> Derivation:
    """Decoded offset from ``floor(u)`` when softmax is taken over BCE-optimal logits ``log(p / (1 - p))``.

    ``softmax_j = (p_j / (1 - p_j)) / sum_i (p_i / (1 - p_i))``: each support cell is weighted by its odds.
    Cells off the support have ``p = 0``: odds 0 (logit ``-inf``), no weight. Caveat: a cell with ``p = 1``
    (``e = 0``) has odds ``inf`` and the softmax is ``nan``; the closed form is for fractions in ``(0, 1)``.
    """
    cells = bilinear_support(dim)
    odds = [(cell, w / (1 - w)) for cell, w in cells]
    mass = sum(o for _, o in odds)
    decoded = sp.Matrix(
        [sp.factor(sp.cancel(sum(o * cell[a] for cell, o in odds) / mass)) for a in range(dim)]
    )
    names = ["e_x", "e_y"][:dim]
    symbols = {name: fraction_symbol(name) for name in names}
    steps = (
        ("BCE-optimal logits of the support cells", sp.Matrix([sp.log(w / (1 - w)) for _, w in cells])),
        ("softmax weights are proportional to the odds", sp.Matrix([o for _, o in odds])),
        ("decoded offset from floor(u)", decoded),
    )
    return Derivation(
        claim(
            f"softmax-of-BCE-logits decode ({dim}-D)",
            decoded,
            rf"\text{{softmax-of-BCE-logits decode ({dim}-D)}}",
        ),
        decoded,
        steps,
        symbols,
    )


def bce_logits_softmax_bias() -> Derivation:
    """1-D bias of the odds-weighted decoder, ``b(e) = e^2 / (e^2 + (1 - e)^2) - e``, and its maximum.

    ``b(e) = e (1 - e)(2 e - 1) / (2 e^2 - 2 e + 1)``: zero at ``e = 0, 1/2, 1``, pushing the estimate toward
    the heavier cell (i.e. toward the rounded cell) in between. ``b'(e) = 0`` at
    ``e* = 1/2 +- sqrt(sqrt(5) - 2) / 2 ~ 0.257, 0.743`` with ``|b(e*)| = (sqrt(5) - 1) sqrt(sqrt(5) - 2) / 4
    ~ 0.150`` cell. Returns the bias as closed form; the maximiser and maximum are in ``steps`` and in
    :func:`bce_logits_softmax_max_bias`.
    """
    e = fraction_symbol("e_x")
    decoded = odds_weighted_decode(1).closed_form[0]
    bias = sp.factor(sp.simplify(decoded - e))
    critical = sp.solve(sp.numer(sp.together(sp.diff(bias, e))), e)
    critical = sorted((c for c in critical if c.is_real and 0 < c < 1), key=lambda c: float(c))
    values = [sp.simplify(bias.subs(e, c)) for c in critical]
    steps = (
        ("decoded offset", decoded),
        ("bias b(e) = decoded - e", bias),
        ("db/de = 0 at", sp.Tuple(*critical)),
        ("b at those points", sp.Tuple(*values)),
    )
    return Derivation(claim("b(e)", bias, r"b(e)"), bias, steps, {"e_x": e})


def bce_logits_softmax_max_bias() -> tuple[sp.Expr, sp.Expr]:
    """``(e*, max_e |b(e)|)``: the fraction in (1/2, 1) where the 1-D odds bias peaks, and the peak."""
    derivation = bce_logits_softmax_bias()
    critical = dict(derivation.steps)["db/de = 0 at"]
    e_star = max(critical, key=lambda c: float(c))
    return e_star, sp.Abs(sp.simplify(derivation.closed_form.subs(derivation.symbols["e_x"], e_star)))


def bce_logits_softmax_bias_2d() -> Derivation:
    """2-D bias of the odds-weighted decoder, as a function of ``(e_x, e_y)`` (closed form, per axis).

    The odds of a product are not a product, so the 2-D decoder is not separable: the x bias depends on
    ``e_y`` too. On ``e_y = 0`` it reduces to the 1-D bias. Its maximum over the square has no short radical
    form; :func:`h3r_theory.theory.montecarlo` and the tests evaluate it numerically.
    """
    decoded = odds_weighted_decode(2)
    fractions = sp.Matrix([decoded.symbols["e_x"], decoded.symbols["e_y"]])
    bias = (decoded.closed_form - fractions).applyfunc(sp.cancel)
    steps = decoded.steps + (("bias = decoded - (e_x, e_y)", bias),)
    return Derivation(claim("b(e_x, e_y)", bias, r"b(e_x, e_y)"), bias, steps, decoded.symbols)


def mse_gaussian_argmax_error() -> Derivation:
    """MSE to a Gaussian target, decoded by argmax, keeps the rounding error.

    ``E[(z - t)^2]`` is minimised at ``z = E[t]``; the Gaussian target is deterministic given the keypoint,
    so the optimum *is* the target. The argmax of a Gaussian sampled at integer cells is the cell nearest to
    its centre, ``round(u)`` (the MSRA target is centred there in the first place; even a Gaussian centred
    at ``u`` has its largest sample at ``round(u)``). The decoded position is therefore ``round(u)`` and
    the error that of plain rounding: mean 2-D distance ``(sqrt(2) + asinh(1)) / 6`` cells.
    """
    z, t = sp.symbols("z t", real=True)
    j, u = sp.symbols("j u", real=True)
    sigma = sp.Symbol("sigma", positive=True)
    risk_gradient = sp.diff((z - t) ** 2, z)
    optimum = sp.solve(risk_gradient, z)[0]
    log_gaussian = -((j - u) ** 2) / (2 * sigma**2)
    error = mean_quantization_error("round", 2)
    steps = (
        ("d/dz (z - t)^2 = 0 at", optimum),
        ("log of the Gaussian at cell j: decreasing in |j - u|, so argmax_j = round(u)", log_gaussian),
        ("mean 2-D error of round(u)", error),
    )
    return Derivation(
        claim(
            "E|argmax(optimum) - u| (2-D)",
            error,
            r"\mathbb{E}\,\lVert \operatorname{argmax}(\text{optimum}) - u \rVert \;\text{(2-D)}",
        ),
        error,
        steps,
    )


def odds_weighted_decode_joint(dim: int = 2) -> Derivation:
    """The odds-weighted decoder as a function of free cell probabilities ``p_c`` (not necessarily bilinear).

    The cells are those of :func:`h3r_theory.theory.losslessness.bilinear_support` (same order), with a
    symbol ``p_<offsets>`` each. A finite sample's empirical frequencies are not exactly of product form, so
    the Monte Carlo compares a fitted decoder with this plug-in formula at the empirical frequencies.
    """
    cells = [cell for cell, _ in bilinear_support(dim)]
    probs = [sp.Symbol("p_" + "".join(map(str, cell)), positive=True) for cell in cells]
    odds = [p / (1 - p) for p in probs]
    decoded = sp.Matrix([sum(o * cell[a] for cell, o in zip(cells, odds)) / sum(odds) for a in range(dim)])
    steps = (("odds of each cell", sp.Matrix(odds)), ("odds-weighted mean offset", decoded))
    symbols = {str(p): p for p in probs}
    return Derivation(
        claim(
            f"odds-weighted decode ({dim}-D, free p)",
            decoded,
            rf"\text{{odds-weighted decode ({dim}-D, free }} p \text{{)}}",
        ),
        decoded,
        steps,
        symbols,
    )


def odds_weighted_decode_max_slope() -> tuple[sp.Expr, sp.Expr]:
    """``(e, slope)``: where the 1-D odds-weighted decode ``e^2 / (e^2 + (1 - e)^2)`` is steepest, and the slope.

    The slope bounds how far sampling noise in the fraction can move the decoded position (a Lipschitz
    constant), which turns the Monte Carlo tolerance ``5 sd / sqrt(N)`` on the fraction into one on the
    decoded position: ``slope * 5 sd / sqrt(N)``. The maximum is 2, at ``e = 1/2``.
    """
    decoded = odds_weighted_decode(1)
    e = decoded.symbols["e_x"]
    slope = sp.factor(sp.diff(decoded.closed_form[0], e))
    candidates = [
        c for c in sp.solve(sp.numer(sp.together(sp.diff(slope, e))), e) if c.is_real and 0 <= c <= 1
    ]
    best = max(candidates, key=lambda c: float(slope.subs(e, c)))
    return best, sp.simplify(slope.subs(e, best))


def odds_decode_sampling_sd(e_x: float, e_y: float, num_samples: int) -> tuple[float, float]:
    """Delta-method standard deviation (cells, per axis) of the odds-weighted decode fitted to N samples.

    BCE fitted to N randomized-rounding draws reaches the *empirical* cell frequencies ``p_hat``, which are
    multinomial with covariance ``(diag(p) - p p^T) / N`` around the bilinear ``p``. The decoded position
    ``g(p_hat)`` (:func:`odds_weighted_decode_joint`) then has variance ``grad g^T Cov grad g`` to first
    order: the tolerance a Monte Carlo of the 2-D odds bias must allow, ``5 sd``.
    """
    joint = odds_weighted_decode_joint(2)
    names = ["p_11", "p_10", "p_01", "p_00"]
    probs = sp.Matrix([e_x * e_y, e_x * (1 - e_y), (1 - e_x) * e_y, (1 - e_x) * (1 - e_y)])
    at = {joint.symbols[name]: value for name, value in zip(names, probs)}
    covariance = (sp.diag(*probs) - probs * probs.T) / int(num_samples)
    out = []
    for axis in range(2):
        gradient = sp.Matrix([sp.diff(joint.closed_form[axis], joint.symbols[name]) for name in names]).subs(
            at
        )
        out.append(math.sqrt(max(float((gradient.T * covariance * gradient)[0, 0]), 0.0)))
    return out[0], out[1]


def bce_logits_softmax_max_bias_2d(points: int = 801) -> dict[str, float]:
    """Largest 2-D odds bias over the fraction square, on a ``points x points`` grid (numeric).

    Returns ``{"max_abs_axis", "max_norm", "e_x", "e_y"}`` (cells; the fractions where the Euclidean norm
    peaks). The sup is the 1-D value ``~0.1501`` of :func:`bce_logits_softmax_max_bias`, approached on the
    edges ``e_y -> 0`` or ``1`` where the keypoint sits on a row of cell centres and the problem is 1-D;
    inside the square the two axes' odds mix and the bias is smaller.
    """
    import numpy as np  # local: the symbolic part of this module does not need numpy

    if int(points) < 3:
        raise ValueError(f"points must be >= 3, got {points}")
    d = bce_logits_softmax_bias_2d()
    args = (d.symbols["e_x"], d.symbols["e_y"])
    bx = sp.lambdify(args, d.closed_form[0], "numpy")
    by = sp.lambdify(args, d.closed_form[1], "numpy")
    # Open interval: a fraction of exactly 0 or 1 gives odds 0/0 or inf (see odds_weighted_decode).
    grid = np.linspace(0.0, 1.0, int(points))[1:-1]
    ex, ey = np.meshgrid(grid, grid, indexing="ij")
    x, y = bx(ex, ey), by(ex, ey)
    norm = np.hypot(x, y)
    peak = np.unravel_index(np.argmax(norm), norm.shape)
    return {
        "max_abs_axis": float(np.abs(x).max()),
        "max_norm": float(norm[peak]),
        "e_x": float(ex[peak]),
        "e_y": float(ey[peak]),
    }
