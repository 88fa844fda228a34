"""Error against heatmap resolution: the quantization term grows with the stride, the head cost falls
with its square (item 5).

Write ``s`` for the stride (input pixels per cell), ``W x H`` for the input size, ``K`` for the number of
keypoints, ``C`` for the channels feeding the head and ``d`` for the NME normaliser in input pixels.

* Quantization term of the NME: a per-cell error of mean ``m`` cells is ``m s`` input pixels, so
  ``NME_q(s) = m s / d``: linear in ``s`` (``m = (sqrt(2) + asinh(1)) / 6`` for rounding, 0 for the
  expected randomized-rounding map decoded over its activation points).
* Head cost: a 1 x 1 convolution from ``C`` channels to ``K`` heatmaps at ``(W / s) x (H / s)`` costs
  ``2 C K W H / s^2`` FLOPs (multiply + add) and its output holds ``K W H / s^2`` values: both ``~ 1 / s^2``.

Halving the stride halves the quantization error and quadruples the head's cost.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sympy as sp

from .derivation import Derivation, claim
from .quantization import mean_quantization_error

SYMBOLS = {name: sp.Symbol(name, positive=True) for name in ("s", "d", "W", "H", "K", "C")}


def quantization_nme(rounding: str = "round") -> Derivation:
    """``NME_q(s) = m s / d`` with ``m`` the mean 2-D quantization error in cells; ``d NME_q / d s`` is constant."""
    s, d = SYMBOLS["s"], SYMBOLS["d"]
    m = mean_quantization_error(rounding, 2)
    nme = m * s / d
    steps = (
        ("mean 2-D error in cells", m),
        ("in input pixels: times the stride", m * s),
        ("normalised", nme),
        ("d NME_q / d s (independent of s: linear)", sp.diff(nme, s)),
        ("elasticity s/NME dNME/ds", sp.simplify(s / nme * sp.diff(nme, s))),
    )
    return Derivation(
        claim(f"NME_q(s) ({rounding})", nme, rf"\mathrm{{NME}}_q(s) \;\text{{({rounding})}}"),
        nme,
        steps,
        dict(SYMBOLS),
    )


def head_cost() -> dict[str, Derivation]:
    """FLOPs and output size of a 1 x 1 conv head producing ``K`` maps at stride ``s``; both ``~ s^-2``.

    Returns ``{"flops": ..., "outputs": ...}``, each with its elasticity ``s/f df/ds = -2`` in ``steps``.
    """
    s, W, H, K, C = (SYMBOLS[n] for n in ("s", "W", "H", "K", "C"))
    cells = (W / s) * (H / s)
    out = {}
    for key, expr in (("flops", 2 * C * K * cells), ("outputs", K * cells)):
        elasticity = sp.simplify(s / expr * sp.diff(expr, s))
        steps = (("heatmap cells (W/s)(H/s)", cells), (key, expr), ("elasticity s/f df/ds", elasticity))
        out[key] = Derivation(
            claim(f"head {key}(s)", expr, rf"\text{{head {key}}}(s)"), expr, steps, dict(SYMBOLS)
        )
    return out


def resolution_tradeoff(
    input_size: tuple[int, int],
    strides: Sequence[float],
    normaliser: float,
    num_keypoints: int,
    in_channels: int = 32,
    rounding: str = "round",
) -> dict[str, np.ndarray]:
    """Numbers for the plot: per stride, the quantization NME term and the head's FLOPs and output size.

    Args:
        input_size: (W, H) input pixels; strides: input pixels per cell; normaliser: NME normaliser ``d`` in
            input pixels (e.g. the inter-ocular distance); num_keypoints: ``K``; in_channels: ``C``.
    Returns:
        ``{"stride", "nme_quantization", "head_flops", "head_outputs"}`` as float64 arrays of len(strides).
    """
    if normaliser <= 0:
        raise ValueError(f"normaliser must be > 0 input pixels, got {normaliser}")
    strides_arr = np.asarray(strides, dtype=np.float64)
    if strides_arr.ndim != 1 or (strides_arr <= 0).any():
        raise ValueError(f"strides must be a 1-D sequence of positive numbers, got {strides!r}")
    W, H = input_size
    values = {"W": W, "H": H, "K": num_keypoints, "C": in_channels, "d": normaliser}
    subs = {SYMBOLS[k]: v for k, v in values.items()}
    s = SYMBOLS["s"]
    nme = sp.lambdify(s, quantization_nme(rounding).closed_form.subs(subs), "numpy")
    costs = head_cost()
    flops = sp.lambdify(s, costs["flops"].closed_form.subs(subs), "numpy")
    outputs = sp.lambdify(s, costs["outputs"].closed_form.subs(subs), "numpy")
    return {
        "stride": strides_arr,
        "nme_quantization": np.asarray(nme(strides_arr), dtype=np.float64),
        "head_flops": np.asarray(flops(strides_arr), dtype=np.float64),
        "head_outputs": np.asarray(outputs(strides_arr), dtype=np.float64),
    }
