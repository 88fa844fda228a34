"""Every closed form beside its simulated value: one table for the notebooks and the reports."""

from __future__ import annotations

import math

import sympy as sp

from . import consistency, losslessness, quantization, randomized_rounding, resolution
from . import montecarlo as mc


def _row(
    item: str, quantity: str, closed, simulated: mc.Estimate | float, bound: float | None = None
) -> dict:
    """One table row. ``bound``: the agreement tolerance when it is not ``5 sd / sqrt(n)``."""
    exact = float(sp.N(closed))
    if isinstance(simulated, mc.Estimate):
        tol = 5 * simulated.stderr if bound is None else bound
        mean, sd, n = simulated.mean, simulated.sd, simulated.n
    else:
        tol, mean, sd, n = (bound if bound is not None else 0.0), float(simulated), math.nan, 0
    return {
        "item": item,
        "quantity": quantity,
        "closed_form": sp.sstr(closed),
        "exact": exact,
        "simulated": mean,
        "sd": sd,
        "n": n,
        "tolerance": tol,
        "agrees": abs(mean - exact) <= tol + 1e-12,
    }


def closed_form_table(n: int = 100_000, seed: int = 0) -> list[dict]:
    """Rows ``{item, quantity, closed_form, exact, simulated, sd, n, tolerance, agrees}`` (cells unless noted).

    Runs every simulation once (about a second on one CPU core at the default ``n``).
    """
    rows = []
    for rounding in ("round", "floor"):
        sim = mc.simulate_quantization(rounding, n=n, seed=seed)
        rows += [
            _row("1", f"{rounding}: bias", quantization.quantization_bias(rounding).closed_form, sim["bias"]),
            _row(
                "1",
                f"{rounding}: E|d| (1-D)",
                quantization.mean_quantization_error(rounding, 1),
                sim["mean_abs_1d"],
            ),
            _row(
                "1",
                f"{rounding}: MSE (1-D)",
                quantization.quantization_mse(rounding, 1).closed_form,
                sim["mse_1d"],
            ),
            _row(
                "1",
                f"{rounding}: E|d| (2-D)",
                quantization.mean_quantization_error(rounding, 2),
                sim["mean_2d"],
            ),
            _row(
                "1",
                f"{rounding}: max |d| (1-D, observed)",
                quantization.max_quantization_error(rounding, 1).closed_form,
                sim["max_abs_1d"],
                bound=1e-2,
            ),
        ]
    fixed = (0.25, 0.7)
    sim = mc.simulate_randomized_rounding(fixed, n=n, seed=seed)
    moments = randomized_rounding.randomized_rounding_moments(2)
    at = {moments.symbols["e_x"]: sp.Rational(1, 4), moments.symbols["e_y"]: sp.Rational(7, 10)}
    rows += [
        _row("2", "RR E[q] - u, x at e=(0.25, 0.7)", moments.bias[0], sim["bias_x"]),
        _row("2", "RR Var q_x at e_x=0.25", moments.covariance[0, 0].subs(at), sim["mse_x"]),
        _row("2", "RR Var q_y at e_y=0.7", moments.covariance[1, 1].subs(at), sim["mse_y"]),
    ]
    sim = mc.simulate_randomized_rounding(None, n=n, seed=seed)
    rows += [
        _row(
            "2",
            "RR one sample E|q-u| (1-D)",
            randomized_rounding.single_sample_error(1).closed_form,
            sim["mean_abs_1d"],
        ),
        _row(
            "2",
            "RR one sample E|q-u| (2-D)",
            randomized_rounding.single_sample_error(2).closed_form,
            sim["mean_2d"],
        ),
        _row(
            "2",
            "RR one sample MSE (2-D)",
            randomized_rounding.single_sample_mse(2).closed_form,
            sim["mse_2d"],
        ),
    ]
    sim = mc.simulate_expected_decode(None, n=n // 5, seed=seed)
    rows.append(_row("3", "expected map, top-9: max |error|", 0, sim["max_abs_1d"], bound=1e-9))
    delta = sp.Rational(1, 20)
    sim = mc.simulate_expected_decode(None, n=n // 2, seed=seed, method="window", delta=float(delta))
    floor = losslessness.window_floor_error(1)
    rows += [
        _row(
            "3",
            f"window + floor {float(delta):g}: E|error| (1-D)",
            floor["mean_abs_1d"].closed_form.subs(floor["mean_abs_1d"].symbols["delta"], delta),
            sim["mean_abs_1d"],
        ),
        _row(
            "3",
            f"window + floor {float(delta):g}: E|error| (2-D)",
            floor["mean_2d"].closed_form.subs(floor["mean_2d"].symbols["delta"], delta),
            sim["mean_2d"],
        ),
    ]
    e_star, peak = consistency.bce_logits_softmax_max_bias()
    fits = mc.simulate_loss_consistency([(float(e_star), 0.0), (0.3, 0.6)], num_samples=n, seed=seed)
    noise = 5 * fits["sample_sd"] / math.sqrt(n)
    _, slope = consistency.odds_weighted_decode_max_slope()
    two = consistency.bce_logits_softmax_bias_2d()
    sd_2d = consistency.odds_decode_sampling_sd(0.3, 0.6, n)
    bias_2d = two.closed_form.subs(
        {two.symbols["e_x"]: sp.Rational(3, 10), two.symbols["e_y"]: sp.Rational(3, 5)}
    )
    rows += [
        _row(
            "4a",
            "softmax-CE fit, logits decode: error x at e*",
            0,
            fits["ce_logits"][0, 0],
            bound=noise[0, 0] + 5e-4,
        ),
        _row(
            "4b",
            "BCE fit, probabilities decode: error x at e*",
            0,
            fits["bce_probabilities"][0, 0],
            bound=noise[0, 0] + 5e-4,
        ),
        _row(
            "4b",
            "BCE fit, logits decode: max bias (1-D, at e*)",
            peak,
            fits["bce_logits"][0, 0],
            bound=float(slope) * noise[0, 0] + 5e-4,
        ),
        _row(
            "4b",
            "BCE fit, logits decode: bias x at (0.3, 0.6)",
            bias_2d[0],
            fits["bce_logits"][1, 0],
            bound=5 * sd_2d[0] + 5e-4,
        ),
        _row(
            "4b",
            "BCE fit, logits decode: bias y at (0.3, 0.6)",
            bias_2d[1],
            fits["bce_logits"][1, 1],
            bound=5 * sd_2d[1] + 5e-4,
        ),
    ]
    sim = mc.simulate_gaussian_argmax(n=n // 5, seed=seed, steps=100)
    rows.append(
        _row(
            "4c",
            "MSE-Gaussian fit + argmax: E|d| (2-D)",
            consistency.mse_gaussian_argmax_error().closed_form,
            sim["mean_2d"],
        )
    )
    strides, normaliser = (1, 2, 4, 8), sp.Integer(32)
    sim = mc.simulate_resolution(
        strides, input_size=(64, 64), normaliser=float(normaliser), n=n // 5, seed=seed
    )
    nme = resolution.quantization_nme("round")
    for i, s in enumerate(strides):
        closed = nme.closed_form.subs({nme.symbols["s"]: s, nme.symbols["d"]: normaliser})
        est = mc.Estimate(float(sim["nme_round"][i]), float(sim["nme_round_sd"][i]), sim["n"])
        rows.append(_row("5", f"NME_q round, stride {s}, d={int(normaliser)} px", closed, est))
    return rows


def format_table(rows: list[dict]) -> str:
    """Markdown table of :func:`closed_form_table` rows."""
    lines = [
        "| item | quantity | closed form | exact | simulated | tolerance | agrees |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['item']} | {r['quantity']} | `{r['closed_form']}` | {r['exact']:.6f} | {r['simulated']:.6f} "
            f"| {r['tolerance']:.1e} | {'yes' if r['agrees'] else 'NO'} |"
        )
    return "\n".join(lines)
