"""trainers.plotting: Figure builders that leave no pyplot state, and the run's curves.png."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from trainers import plotting as pt

HISTORY = [
    {"kind": "train", "step": 1, "loss": 2.0, "loss_name": "mse"},
    {"kind": "train", "step": 2, "loss": 1.0, "loss_name": "mse"},
    {"kind": "eval", "step": 2, "nme": 0.08, "mean_error_px": 3.5},
]
ROWS = [
    {"codec": c, "stride": s, "mean_error_px": e * s, "jitter_sd_px": 0.1 * s}
    for c, e in (("argmax", 0.4), ("randomized_rounding", 0.1))
    for s in (4, 8)
]


def _figures() -> dict[str, Figure]:
    images = np.random.default_rng(0).uniform(size=(2, 3, 16, 16))
    kp = np.array([[[3.0, 4.0], [10.0, 12.0]], [[5.0, 5.0], [8.0, 2.0]]])
    return {
        "history": pt.plot_training_history(HISTORY, floor=1.0),
        "history_twin": pt.plot_training_history(HISTORY, metric="nme", second_metric="mean_error_px"),
        "sweep": pt.plot_sweep(ROWS, 0.3826, title="tiny"),
        "grid": pt.prediction_grid(images, kp, kp + 0.5, edges=((0, 1),)),
        "histograms": pt.plot_error_histograms({"a": np.arange(5.0), "b": np.ones(4)}),
    }


def test_builders_return_figures_without_pyplot_state():
    before = plt.get_fignums()
    figures = _figures()
    assert all(isinstance(f, Figure) for f in figures.values())
    assert plt.get_fignums() == before  # nothing registered with pyplot: no backend, no leak


def test_training_history_draws_the_logged_values():
    fig = pt.plot_training_history(HISTORY, metric="nme", second_metric="mean_error_px")
    loss_ax, eval_ax, twin_ax = fig.axes
    assert list(loss_ax.lines[0].get_ydata()) == [2.0, 1.0]
    assert list(eval_ax.lines[0].get_ydata()) == [0.08] and eval_ax.get_ylabel() == "nme"
    assert list(twin_ax.lines[0].get_ydata()) == [3.5] and "px" in twin_ax.get_ylabel()
    with pytest.raises(ValueError, match="no training records"):
        pt.plot_training_history([r for r in HISTORY if r["kind"] == "eval"])


def test_sweep_floor_line_is_the_floor_times_the_stride():
    fig = pt.plot_sweep(ROWS, 0.3826)
    floor = [line for line in fig.axes[0].lines if "floor" in line.get_label()]
    assert len(floor) == 1 and list(floor[0].get_ydata()) == pytest.approx([0.3826 * 4, 0.3826 * 8])


def test_save_curves_writes_a_png_with_the_dataset_metric(tmp_path):
    before = plt.get_fignums()
    path = pt.save_curves(HISTORY, tmp_path / "curves.png", title="run")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plt.get_fignums() == before


def test_skeletons_come_from_the_dataset_specs():
    from trainers.data.specs import SPECS

    assert pt.MPII_SKELETON == SPECS["mpii"].skeleton and len(pt.COCO_SKELETON) == 19
    assert all(max(edge) < SPECS["coco"].num_keypoints for edge in pt.COCO_SKELETON)
