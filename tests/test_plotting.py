"""h3r_theory.plotting: every figure is a fresh Figure with labelled axes, and bad input is a ValueError."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from h3r_theory import plotting


def _render(fig: Figure) -> bytes:
    """Draw the figure to PNG: catches errors that only appear at draw time."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _labelled(fig: Figure) -> None:
    """Every axis that holds data has both axis labels set."""
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue
        if ax.lines or ax.collections or ax.patches or ax.images:
            assert ax.get_xlabel() or ax.get_ylabel(), f"unlabelled axis in {fig}"
            assert ax.get_ylabel(), "y axis has no label"


def _figures() -> dict[str, Figure]:
    x = np.linspace(0, 1, 11)
    errors = np.random.default_rng(0).uniform(-0.5, 0.5, (300, 2))
    return {
        "line": plotting.line_plot(
            x,
            {"a": x, "b": torch.tensor(x**2)},
            "e (cells)",
            "bias (cells)",
            bands={"a": 0.1 * np.ones_like(x)},
            hlines={"1/12": 1 / 12},
            title="t",
        ),
        "hist": plotting.histograms({"round": errors[:, 0]}, "error (cells)", vlines={"mean": 0.0}),
        "scatter": plotting.error_scatter({"round": errors, "floor": errors - 0.5}),
        "heatmaps": plotting.heatmap_panels(
            {"a": np.eye(5), "b": np.ones((5, 5))}, keypoint=(2.3, 1.7), decoded={"a": (2.0, 2.0)}
        ),
        "tradeoff": plotting.tradeoff_plot(
            [1, 2, 4],
            [0.1, 0.2, 0.4],
            [1e6, 2.5e5, 6e4],
            "NME",
            "FLOPs",
            error_curves={"measured": [0.1, 0.21, 0.39]},
        ),
        "estimates": plotting.estimates_vs_exact(
            ["a", "b"], [0.25, 0.08], [0.01, 0.002], [0.25, 1 / 12], "cells"
        ),
        "bars": plotting.bar_chart(["x", "y", "z"], [1.0, 2.0, 3.0], "ms", errors=[0.1, 0.1, 0.2], logy=True),
        "z": plotting.z_scores(["bias", "MSE", "2-D"], [0.3, -1.2, 2.5]),
    }


@pytest.mark.parametrize("name", list(_figures()))
def test_figures_render_with_labels(name):
    fig = _figures()[name]
    assert isinstance(fig, Figure)
    _labelled(fig)
    png = _render(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # Stored figures stay small so that the executed notebooks stay well below 1 MB each.
    assert len(png) < 150_000


def test_no_pyplot_state_leaks():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    _figures()
    assert plt.get_fignums() == before


def test_line_plot_draws_the_given_values():
    x = np.array([0.0, 0.5, 1.0])
    fig = plotting.line_plot(x, {"e(1-e)": x * (1 - x)}, "e", "variance (cells^2)")
    (line,) = fig.axes[0].lines
    np.testing.assert_allclose(line.get_xdata(), x)
    np.testing.assert_allclose(line.get_ydata(), [0.0, 0.25, 0.0])
    assert fig.axes[0].get_xlabel() == "e"
    assert fig.axes[0].get_legend().get_texts()[0].get_text() == "e(1-e)"


def test_z_scores_draws_each_check_at_its_z_with_the_limits():
    fig = plotting.z_scores(["a", "b", "c"], [0.5, -3.0, 7.0], limits=(2, 5))
    ax = fig.axes[0]
    (points,) = [line for line in ax.lines if line.get_label() == "check"]
    np.testing.assert_allclose(points.get_xdata(), [0.5, -3.0, 7.0])
    np.testing.assert_allclose(points.get_ydata(), [0, 1, 2])
    verticals = sorted({float(line.get_xdata()[0]) for line in ax.lines if line.get_label() != "check"})
    assert verticals == [-5.0, -2.0, 0.0, 2.0, 5.0]
    assert ax.get_xlim()[1] > 7.0  # the largest |z| is inside the axes, not clipped
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]


def test_heatmap_panel_extent_puts_cell_centres_on_integers():
    fig = plotting.heatmap_panels({"m": np.zeros((3, 4)) + np.arange(4)}, keypoint=(1.0, 2.0))
    image = fig.axes[0].images[0]
    assert image.get_extent() == [-0.5, 3.5, 2.5, -0.5]


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda: plotting.line_plot([0, 1], {"a": [1, 2, 3]}, "x", "y"), "curves['a']"),
        (lambda: plotting.line_plot([0, 1], {"a": [1, np.nan]}, "x", "y"), "non-finite"),
        (lambda: plotting.line_plot([0, 1], {"a": [1, 2]}, "x", "y", bands={"a": [1]}), "bands['a']"),
        (lambda: plotting.error_scatter({"a": np.zeros((4, 3))}), "(N, 2)"),
        (lambda: plotting.error_scatter({}), "at least one"),
        (lambda: plotting.heatmap_panels({"a": np.zeros(4)}), "2-D"),
        (lambda: plotting.tradeoff_plot([1, 2], [1], [1, 2], "e", "c"), "shape of stride"),
        (lambda: plotting.estimates_vs_exact(["a"], [1, 2], [1, 2], [1, 2], "y"), "one entry each"),
        (lambda: plotting.bar_chart(["a", "b"], [1.0], "y"), "one entry each"),
        (lambda: plotting.z_scores(["a", "b"], [1.0]), "one entry each"),
        (lambda: plotting.bar_chart(["a"], [1.0], "y", errors=[1.0, 2.0]), "errors"),
    ],
)
def test_bad_input_names_the_argument(call, fragment):
    with pytest.raises(ValueError, match=None) as info:
        call()
    assert fragment in str(info.value)


def test_derivation_markdown_lists_every_step_and_the_result():
    from h3r_theory.theory import quantization

    derivation = quantization.quantization_mse("round", 1)
    text = plotting.derivation_markdown(derivation, title="MSE")
    assert text.startswith("**MSE**")
    assert text.count("$\\displaystyle") == len(derivation.steps) + 1
    assert "\\frac{1}{12}" in text
    with pytest.raises(ValueError, match="steps"):
        plotting.derivation_markdown(object())


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=30), st.booleans())
@settings(max_examples=25, deadline=None)
def test_line_plot_keeps_any_finite_values_and_dtype_of_input_untouched(values, as_float32):
    y = torch.tensor(values, dtype=torch.float32 if as_float32 else torch.float64)
    before = y.clone()
    fig = plotting.line_plot(np.arange(len(values)), {"y": y}, "index", "value (cells)")
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), before.double().numpy())
    assert torch.equal(y, before) and y.dtype == before.dtype  # the caller's tensor is not modified


def test_line_plot_categorical_ticks():
    fig = plotting.line_plot(
        [0, 1, 2], {"a": [1, 2, 3]}, "case", "error (cells)", xticklabels=["p", "q", "r"]
    )
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["p", "q", "r"]
    with pytest.raises(ValueError, match="xticklabels has 2 labels"):
        plotting.line_plot([0, 1, 2], {"a": [1, 2, 3]}, "case", "error", xticklabels=["p", "q"])


def test_heatmap_colour_bars_are_labelled():
    fig = plotting.heatmap_panels({"a": np.eye(3)}, value_label="probability")
    colorbars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert colorbars and colorbars[0].get_ylabel() == "probability"
