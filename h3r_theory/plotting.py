"""The figures the notebooks show: pure functions that take numbers and arrays and return a Figure.

Every function builds a fresh :class:`matplotlib.figure.Figure` without touching ``pyplot``'s global state,
so that a notebook cell shows exactly one figure (the returned one), nothing leaks between cells, and
the functions run headless in tests and in CI. Every axis gets a label with its unit; the caller passes
the units because only the caller knows whether a number is in heatmap cells, input pixels or NME.

Inputs are numpy arrays or anything ``np.asarray`` accepts (torch CPU tensors included); shapes are
checked and a mismatch raises ``ValueError`` naming the argument.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

#: Small stored figures: the notebooks are committed with their outputs (each .ipynb < 1 MB).
DPI = 80


def _array(values, name: str, ndim: int | None = None) -> np.ndarray:
    """``values`` as a float64 numpy array, checked to be finite and (optionally) of ``ndim`` dimensions."""
    if hasattr(values, "detach"):  # a torch tensor: plot its values, never keep the graph or the device
        values = values.detach().cpu().numpy()
    array = np.asarray(values, dtype=np.float64)
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} has non-finite values")
    return array


def _figure(ncols: int = 1, size: tuple[float, float] = (5.0, 3.2)) -> tuple[Figure, list]:
    fig = Figure(figsize=(size[0] * ncols, size[1]), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def line_plot(
    x,
    curves: Mapping[str, object],
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    bands: Mapping[str, object] | None = None,
    styles: Mapping[str, str] | None = None,
    logx: bool = False,
    logy: bool = False,
    hlines: Mapping[str, float] | None = None,
    xticklabels: Sequence[str] | None = None,
) -> Figure:
    """Curves ``y(x)`` on one axis, with an optional +-band per curve and labelled horizontal lines.

    Args:
        x: (N,) abscissae. curves: label -> (N,) values. bands: label -> (N,) half-widths (e.g. 2 standard
            errors) drawn as a shaded band around that curve. styles: label -> matplotlib format string
            (e.g. ``"o"`` for markers only, ``"--"``). hlines: label -> y of a dotted reference line
            (a closed form the curve should approach). xticklabels: one label per x, for categorical x.
    """
    xs = _array(x, "x", 1)
    fig, (ax,) = _figure()
    for label, values in curves.items():
        ys = _array(values, f"curves[{label!r}]", 1)
        if ys.shape != xs.shape:
            raise ValueError(f"curves[{label!r}] has shape {ys.shape}, expected {xs.shape} like x")
        fmt = (styles or {}).get(label, "-")
        (line,) = ax.plot(xs, ys, fmt, label=label)
        if bands and label in bands:
            half = _array(bands[label], f"bands[{label!r}]", 1)
            if half.shape != xs.shape:
                raise ValueError(f"bands[{label!r}] has shape {half.shape}, expected {xs.shape} like x")
            ax.fill_between(xs, ys - half, ys + half, color=line.get_color(), alpha=0.25, linewidth=0)
    for label, y in (hlines or {}).items():
        ax.axhline(float(y), color="0.3", linestyle=":", linewidth=1)
        ax.annotate(
            label,
            (1.0, float(y)),
            xycoords=("axes fraction", "data"),
            ha="right",
            va="bottom",
            fontsize=8,
            color="0.3",
        )
    ax.set_xscale("log" if logx else "linear")
    ax.set_yscale("log" if logy else "linear")
    if xticklabels is not None:
        if len(xticklabels) != xs.size:
            raise ValueError(f"xticklabels has {len(xticklabels)} labels, expected {xs.size} like x")
        ax.set_xticks(xs, list(xticklabels), fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize=8)
    return fig


def histograms(
    samples: Mapping[str, object],
    xlabel: str,
    bins: int = 50,
    title: str | None = None,
    vlines: Mapping[str, float] | None = None,
) -> Figure:
    """Overlaid density histograms of 1-D samples (e.g. per-axis errors in cells), one per label."""
    fig, (ax,) = _figure()
    for label, values in samples.items():
        data = _array(values, f"samples[{label!r}]").reshape(-1)
        ax.hist(data, bins=bins, density=True, histtype="stepfilled", alpha=0.45, label=label)
    for label, x in (vlines or {}).items():
        ax.axvline(float(x), color="0.2", linestyle="--", linewidth=1, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density (1 / unit of x)")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def error_scatter(
    errors: Mapping[str, object], unit: str = "cells", max_points: int = 2000, title: str | None = None
) -> Figure:
    """2-D decoding errors ``(dx, dy)``, one panel per label, on equal axes (the shape of the error cell).

    ``errors``: label -> (N, 2) array. Only the first ``max_points`` points are drawn (deterministic, keeps
    the stored figure small).
    """
    if not errors:
        raise ValueError("errors must hold at least one labelled (N, 2) array")
    fig, axes = _figure(len(errors), size=(3.4, 3.4))
    limit = 0.0
    for ax, (label, values) in zip(axes, errors.items()):
        data = _array(values, f"errors[{label!r}]", 2)
        if data.shape[1] != 2:
            raise ValueError(f"errors[{label!r}] must have shape (N, 2), got {data.shape}")
        data = data[:max_points]
        limit = max(limit, float(np.abs(data).max(initial=0.0)))
        ax.scatter(data[:, 0], data[:, 1], s=2, alpha=0.5)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel(f"x error ({unit})")
        ax.set_ylabel(f"y error ({unit})")
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
    limit = 1.05 * limit if limit > 0 else 1.0
    for ax in axes:
        ax.set_xlim(-limit, limit)
        ax.set_ylim(-limit, limit)
    if title:
        fig.suptitle(title)
    return fig


def heatmap_panels(
    maps: Mapping[str, object],
    keypoint: Sequence[float] | None = None,
    decoded: Mapping[str, Sequence[float]] | None = None,
    unit: str = "cells",
    title: str | None = None,
    value_label: str = "heatmap value",
) -> Figure:
    """Heatmaps side by side with the true keypoint (white cross) and each panel's decoded point (red dot).

    Args:
        maps: label -> (h, w) array, drawn with cell ``(j, i)`` centred at ``(x=i, y=j)`` (the pixel-centre
            convention: cell centres at integers, image y pointing down).
        keypoint: ``(u, v)`` in cells. decoded: label -> ``(u, v)`` in cells, for the panels that have one.
        value_label: what the colour scale means (e.g. "probability"), shown on each colour bar.
    """
    if not maps:
        raise ValueError("maps must hold at least one labelled (h, w) array")
    fig, axes = _figure(len(maps), size=(3.0, 3.0))
    for ax, (label, values) in zip(axes, maps.items()):
        data = _array(values, f"maps[{label!r}]", 2)
        h, w = data.shape
        image = ax.imshow(data, cmap="viridis", origin="upper", extent=(-0.5, w - 0.5, h - 0.5, -0.5))
        fig.colorbar(image, ax=ax, shrink=0.7).set_label(value_label, fontsize=8)
        if keypoint is not None:
            ax.plot([keypoint[0]], [keypoint[1]], "wx", markersize=9, mew=2, label="true")
        if decoded and label in decoded:
            ax.plot([decoded[label][0]], [decoded[label][1]], "o", color="red", markersize=4, label="decoded")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel(f"u ({unit})")
        ax.set_ylabel(f"v ({unit})")
    if title:
        fig.suptitle(title)
    return fig


def tradeoff_plot(
    stride,
    error,
    cost,
    error_label: str,
    cost_label: str,
    xlabel: str = "stride s (input px per cell)",
    error_curves: Mapping[str, object] | None = None,
    title: str | None = None,
) -> Figure:
    """Error (left axis, linear) and cost (right axis, log) against the stride: the accuracy/cost trade-off.

    ``error_curves`` adds more labelled error curves (same shape as ``stride``) on the left axis.
    """
    s = _array(stride, "stride", 1)
    err = _array(error, "error", 1)
    cst = _array(cost, "cost", 1)
    if err.shape != s.shape or cst.shape != s.shape:
        raise ValueError(f"error {err.shape} and cost {cst.shape} must have the shape of stride {s.shape}")
    fig, (ax,) = _figure()
    ax.plot(s, err, "o-", color="C0", label="error (closed form)")
    for label, values in (error_curves or {}).items():
        ys = _array(values, f"error_curves[{label!r}]", 1)
        if ys.shape != s.shape:
            raise ValueError(f"error_curves[{label!r}] has shape {ys.shape}, expected {s.shape}")
        ax.plot(s, ys, "s--", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(error_label, color="C0")
    ax.grid(alpha=0.3)
    twin = ax.twinx()
    twin.plot(s, cst, "^-", color="C3", label="cost")
    twin.set_yscale("log")
    twin.set_ylabel(cost_label, color="C3")
    lines = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="upper center")
    if title:
        ax.set_title(title)
    return fig


def estimates_vs_exact(
    labels: Sequence[str], estimates, stderrs, exact, ylabel: str, title: str | None = None
) -> Figure:
    """Monte Carlo estimates with 95 % error bars (1.96 standard errors) beside the exact values.

    Args:
        labels: (N,) names. estimates, stderrs, exact: (N,) numbers in the unit named by ``ylabel``.
    """
    est = _array(estimates, "estimates", 1)
    err = _array(stderrs, "stderrs", 1)
    ref = _array(exact, "exact", 1)
    if not (len(labels) == est.size == err.size == ref.size):
        raise ValueError(
            f"labels, estimates, stderrs and exact must have one entry each, got "
            f"{len(labels)}, {est.size}, {err.size}, {ref.size}"
        )
    positions = np.arange(len(labels))
    fig, (ax,) = _figure(size=(max(5.0, 0.9 * len(labels)), 3.2))
    ax.scatter(positions, ref, marker="_", s=400, color="black", label="exact (sympy)", zorder=3)
    ax.errorbar(positions, est, yerr=1.96 * err, fmt="o", color="C1", capsize=4, label="Monte Carlo, 95 % CI")
    ax.set_xticks(positions, labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return fig


def z_scores(
    labels: Sequence[str], z, limits: Sequence[float] = (2.0, 5.0), title: str | None = None
) -> Figure:
    """Monte Carlo checks on one common scale: ``z = (estimate - exact) / standard error`` per check.

    Estimates of quantities of very different sizes (a bias of 0, an MSE of 1/12, an error of 0.52 cell)
    cannot share a value axis: their error bars are invisible at its scale. Their ``z``-scores can. Dashed
    lines at ``+-limits`` (e.g. 2: about 95 % of correct checks fall inside; 5: the pass threshold).

    Args:
        labels: (N,) names of the checks. z: (N,) z-scores (dimensionless).
    """
    zs = _array(z, "z", 1)
    if len(labels) != zs.size:
        raise ValueError(f"labels ({len(labels)}) and z ({zs.size}) must have one entry each")
    positions = np.arange(len(labels))
    fig, (ax,) = _figure(size=(5.5, max(2.5, 0.28 * len(labels) + 1.0)))
    for number, limit in enumerate(sorted(limits)):
        for sign in (-1, 1):
            ax.axvline(
                sign * float(limit),
                color=f"{0.3 + 0.3 * number:.1f}",
                linestyle="--",
                linewidth=1,
                label=f"|z| = {float(limit):g}" if sign > 0 else None,
            )
    ax.axvline(0.0, color="0.5", linewidth=0.8)
    ax.plot(zs, positions, "o", color="C1", label="check")
    ax.set_yticks(positions, labels, fontsize=8)
    ax.invert_yaxis()  # first check on top, in reading order
    reach = max(float(np.abs(zs).max(initial=0.0)), max((float(v) for v in limits), default=1.0)) * 1.15
    ax.set_xlim(-reach, reach)
    ax.set_xlabel("z = (Monte Carlo - exact) / standard error")
    ax.set_ylabel("check")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=8, loc="lower right")
    if title:
        ax.set_title(title)
    return fig


def bar_chart(
    labels: Sequence[str], values, ylabel: str, errors=None, title: str | None = None, logy: bool = False
) -> Figure:
    """One bar per label (e.g. per codec), with optional symmetric error bars of the same unit."""
    vals = _array(values, "values", 1)
    if len(labels) != vals.size:
        raise ValueError(f"labels ({len(labels)}) and values ({vals.size}) must have one entry each")
    errs = None if errors is None else _array(errors, "errors", 1)
    if errs is not None and errs.shape != vals.shape:
        raise ValueError(f"errors has shape {errs.shape}, expected {vals.shape} like values")
    positions = np.arange(len(labels))
    fig, (ax,) = _figure(size=(max(5.0, 0.9 * len(labels)), 3.2))
    ax.bar(positions, vals, yerr=errs, capsize=3, color=[f"C{i % 10}" for i in range(len(labels))])
    ax.set_xticks(positions, labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_yscale("log" if logy else "linear")
    ax.grid(alpha=0.3, axis="y")
    if title:
        ax.set_title(title)
    return fig


def derivation_markdown(derivation, title: str | None = None) -> str:
    """A derivation's steps as Markdown with LaTeX, one numbered step per line, then its statement.

    ``derivation`` is a :class:`h3r_theory.theory.derivation.Derivation` (or anything with ``steps``, a
    sequence of ``(description, sympy expression)`` pairs, and ``statement``). Not a figure, but the same
    job: turn the library's exact results into something a notebook shows (``display(Markdown(...))``).
    """
    import sympy as sp

    steps = getattr(derivation, "steps", None)
    if steps is None or not hasattr(derivation, "statement"):
        raise ValueError(f"derivation must have .steps and .statement, got {type(derivation).__name__}")
    lines = [f"**{title}**", ""] if title else []
    for number, (text, expr) in enumerate(steps, start=1):
        lines.append(f"{number}. {text}: $\\displaystyle {sp.latex(expr)}$")
    statement = derivation.statement
    parts = statement if isinstance(statement, tuple) else (statement,)
    lines.append("")
    lines.append("**Result:** " + ", ".join(f"$\\displaystyle {sp.latex(part)}$" for part in parts))
    return "\n".join(lines)
