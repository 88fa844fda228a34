"""Figures of training runs: the run's curves (``curves.png``), predictions, the resolution sweep.

Every builder returns a fresh :class:`matplotlib.figure.Figure` made without pyplot: nothing is saved or
shown (the caller decides: ``fig.savefig`` or :func:`show` in a notebook), no pyplot state is left behind,
and the process-wide backend is never touched, so a notebook that trains or sweeps in-process keeps
showing its own figures. Images are drawn with matplotlib's default ``imshow`` extent, which puts the centre of
pixel ``(i, j)`` at the integer coordinate ``(i, j)``: exactly the pixel-centre convention of
:mod:`h3r_theory.conventions`, so keypoints in input pixels are plotted as they are, with no half-pixel
shift.

Units: coordinates in pixels of the image that is drawn; errors in input pixels unless a label says
otherwise.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .data.specs import SPECS
from .run_folder import write_bytes_atomic

# The limbs drawn between keypoints, declared with each dataset (trainers.data.specs).
MPII_SKELETON: tuple[tuple[int, int], ...] = SPECS["mpii"].skeleton
COCO_SKELETON: tuple[tuple[int, int], ...] = SPECS["coco"].skeleton

GT_COLOUR = "#2ca02c"  # green: ground truth
PRED_COLOUR = "#d62728"  # red: prediction


def _numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def show(fig, format: str = "png") -> None:
    """Display ``fig`` in a notebook and close it; ``format="jpeg"`` keeps figures of photographs small.

    Explicit on purpose: the builders here return figures that pyplot does not manage, which a notebook
    shows only when asked; for a pyplot figure, closing it also stops the inline backend from showing it a
    second time.
    """
    import io

    import matplotlib.pyplot as plt
    from IPython.display import Image, display

    buffer = io.BytesIO()
    if format not in ("png", "jpeg"):
        raise ValueError(f"format must be 'png' or 'jpeg', got {format!r}")
    options = {"pil_kwargs": {"quality": 80}} if format == "jpeg" else {}
    fig.savefig(buffer, format=format, dpi=fig.dpi, bbox_inches="tight", **options)
    display(Image(data=buffer.getvalue(), format=format))
    plt.close(fig)


def image_to_numpy(image) -> np.ndarray:
    """(3, H, W) tensor/array in [0, 1] or (H, W, 3) uint8/float -> (H, W, 3) float array in [0, 1]."""
    array = _numpy(image)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = np.moveaxis(array, 0, -1)
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    if array.ndim == 3 and array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"image must be (3, H, W) or (H, W, 3), got shape {array.shape}")
    return np.clip(array.astype(np.float32), 0.0, 1.0)


def draw_keypoints(
    ax,
    image,
    gt=None,
    pred=None,
    visible=None,
    edges: Sequence[tuple[int, int]] = (),
    title: str | None = None,
    marker_size: float = 16.0,
    axis_labels=False,
):
    """Draw an image with ground truth (green circles) and predictions (red crosses) on ``ax``.

    Args:
        image: (3, H, W) in [0, 1] or (H, W, 3).
        gt, pred: (K, 2) keypoints in the pixels of ``image`` (x, y), or None.
        visible: (K,) > 0 = labelled; unlabelled keypoints are not drawn (their coordinates mean nothing).
        edges: (a, b) keypoint pairs joined by a line (a skeleton), drawn for the ground truth.
        axis_labels: ticks and "x (px)" / "y (px)" labels (``"x"`` / ``"y"`` for one of them only).
    """
    img = image_to_numpy(image)
    ax.imshow(img, interpolation="nearest")  # default extent: pixel centres at integer coordinates
    K = None if gt is None else _numpy(gt).shape[0]
    vis = np.ones(K or 0, bool) if visible is None else _numpy(visible) > 0
    if gt is not None:
        g = _numpy(gt)
        for a, b in edges:
            if vis[a] and vis[b]:
                ax.plot([g[a, 0], g[b, 0]], [g[a, 1], g[b, 1]], color=GT_COLOUR, lw=1.0, alpha=0.7)
        ax.scatter(
            g[vis, 0],
            g[vis, 1],
            s=marker_size,
            facecolors="none",
            edgecolors=GT_COLOUR,
            linewidths=1.0,
            label="ground truth",
        )
    if pred is not None:
        p = _numpy(pred)
        keep = vis if gt is not None else np.ones(p.shape[0], bool)
        ax.scatter(
            p[keep, 0],
            p[keep, 1],
            s=marker_size,
            marker="x",
            color=PRED_COLOUR,
            linewidths=1.0,
            label="prediction",
        )
        if gt is not None:  # error segments: what the metric measures
            g = _numpy(gt)
            for k in np.flatnonzero(keep):
                ax.plot([g[k, 0], p[k, 0]], [g[k, 1], p[k, 1]], color=PRED_COLOUR, lw=0.6)
    H, W = img.shape[:2]
    ax.set_xlim(-0.5, W - 0.5)
    ax.set_ylim(H - 0.5, -0.5)
    ax.tick_params(labelsize=6)
    if axis_labels in (True, "x"):
        ax.set_xlabel("x (px)", fontsize=7)
    else:
        ax.set_xticks([])
    if axis_labels in (True, "y"):
        ax.set_ylabel("y (px)", fontsize=7)
    else:
        ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)
    return ax


def prediction_grid(
    images: Sequence,
    gt: Sequence | None = None,
    pred: Sequence | None = None,
    visible: Sequence | None = None,
    titles: Sequence[str] | None = None,
    edges: Sequence[tuple[int, int]] = (),
    ncols: int = 4,
    size: float = 2.2,
    suptitle: str | None = None,
):
    """A grid of :func:`draw_keypoints` panels, one per image; returns the figure.

    ``images`` is a list or a (N, 3, H, W) batch; ``gt``/``pred`` (N, K, 2) in the pixels of the images.
    The first column has a y axis and the bottom panels an x axis, in pixels of the drawn images.
    """
    n = len(images)
    if n == 0:
        raise ValueError("prediction_grid needs at least one image")
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    height = size * nrows + (0.3 if suptitle else 0) + (0.25 * nrows if titles is not None else 0)
    fig = Figure(figsize=(size * ncols, height))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        col = i % ncols
        bottom = i + ncols >= n  # no panel below this one
        labels = {(True, True): True, (True, False): "y", (False, True): "x"}.get((col == 0, bottom), False)
        draw_keypoints(
            ax,
            images[i],
            None if gt is None else gt[i],
            None if pred is None else pred[i],
            None if visible is None else visible[i],
            edges,
            None if titles is None else titles[i],
            axis_labels=labels,
        )
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout(rect=(0, 0.05 if handles else 0, 1, 1))
    return fig


def plot_training_history(
    history: Sequence[dict],
    metric: str = "mean_error_px",
    metric_label: str | None = None,
    floor: float | None = None,
    floor_label: str = "vanilla rounding floor",
    second_metric: str | None = None,
    title: str = "",
) -> Figure:
    """Training loss against step (left) and the evaluation ``metric`` against step (right).

    ``history`` is ``RunResult.history`` (the records of ``metrics.jsonl``: ``kind`` "train" with
    ``loss``, ``kind`` "eval" with the metrics). ``floor`` draws a horizontal reference line on the right;
    ``second_metric`` is drawn on a twin right axis (its scale may differ by orders of magnitude, as NME, a
    fraction, does from an error in pixels).
    """
    train = [r for r in history if r.get("kind") == "train" and isinstance(r.get("loss"), (int, float))]
    if not train:
        raise ValueError("history has no training records (kind == 'train')")
    labels = {"mean_error_px": "mean error (input px)"}
    fig = Figure(figsize=(8.5, 3.0))
    ax_loss, ax_eval = fig.subplots(1, 2)
    ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], lw=1.2)
    ax_loss.set_xlabel("training step")
    ax_loss.set_ylabel(f"loss ({train[0].get('loss_name', 'training loss')})", fontsize=8)
    if all(r["loss"] > 0 for r in train):  # a log axis needs positive values
        ax_loss.set_yscale("log")
    ax_loss.grid(alpha=0.3)
    lines = []
    for key, ax, style in ((metric, ax_eval, "o"), (second_metric, None, "s")):
        points = [
            (r["step"], r[key])
            for r in history
            if r.get("kind") == "eval" and isinstance(r.get(key), (int, float))
        ]
        if key is None or not points:
            continue
        ax = ax or ax_eval.twinx()
        colour = "C0" if style == "o" else "C1"
        lines += ax.plot(*zip(*points), marker=style, lw=1.2, color=colour, label=labels.get(key, key))
        ax.set_ylabel(labels.get(key, key) if key != metric or metric_label is None else metric_label)
    if floor is not None:
        lines.append(ax_eval.axhline(floor, color="k", ls="--", lw=1, label=f"{floor_label} ({floor:.2f})"))
    ax_eval.set_xlabel("training step")
    ax_eval.set_ylabel(metric_label or labels.get(metric, metric))
    ax_eval.set_ylim(bottom=0)
    ax_eval.grid(alpha=0.3)
    if lines:
        ax_eval.legend(lines, [line.get_label() for line in lines], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def save_curves(history: Sequence[dict], path: str | Path, title: str = "") -> Path:
    """A run's ``curves.png``: :func:`plot_training_history` with the dataset's own metric (NME, PCKh or
    AP, whichever the evaluations hold) and the mean error in input pixels on a twin axis."""
    evals = [r for r in history if r.get("kind") == "eval"]
    metric = next(
        (k for k in ("nme", "pckh", "ap") if any(isinstance(r.get(k), (int, float)) for r in evals)), None
    )
    fig = plot_training_history(
        history,
        metric=metric or "mean_error_px",
        second_metric="mean_error_px" if metric is not None else None,
        title=title,
    )
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return write_bytes_atomic(Path(path), buffer.getvalue())  # replaces a link at the name, never follows it


def plot_sweep(
    rows: Sequence[dict], floor_per_stride: float, codecs_order: Sequence[str] | None = None, title: str = ""
) -> Figure:
    """The resolution sweep: mean error (left) and jitter sd (right) against the heatmap stride.

    Args:
        rows: sweep rows (``trainers.sweep`` records) with ``codec``, ``stride``, ``mean_error_px`` and
            ``jitter_sd_px`` (input pixels).
        floor_per_stride: mean 2-D rounding error in cells, ``(sqrt(2) + asinh(1)) / 6``; the dashed line
            is this times the stride (input pixels).
        codecs_order: the order of the legend (default: first appearance in ``rows``).
        title: a line above both panels (the sweep's title and machine, in ``sweep.png``).
    """
    if not rows:
        raise ValueError("plot_sweep needs at least one row")
    strides = sorted({int(r["stride"]) for r in rows})
    names = list(codecs_order or dict.fromkeys(r["codec"] for r in rows))
    fig = Figure(figsize=(9.0, 3.4))
    axes = fig.subplots(1, 2)
    panels = (
        (axes[0], "mean_error_px", "mean error (input px)", "error against stride"),
        (
            axes[1],
            "jitter_sd_px",
            "jitter sd (input px)",
            "jitter: sd of the error vector over sub-pixel shifts",
        ),
    )
    for ax, key, label, title in panels:
        ax.set_title(title, fontsize=9)
        for name in names:
            pts = sorted((int(r["stride"]), float(r[key])) for r in rows if r["codec"] == name)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
        if key == "mean_error_px":
            ax.plot(
                strides,
                [floor_per_stride * s for s in strides],
                "k--",
                lw=1,
                label=f"vanilla floor {floor_per_stride:.4f} x stride",
            )
        ax.set_xscale("log", base=2)
        ax.set_xticks(strides)
        ax.set_xticklabels([str(s) for s in strides])
        ax.minorticks_off()
        ax.set_xlabel("heatmap stride (input px per cell)")
        ax.set_ylabel(label, fontsize=8)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=7)
    fig.tight_layout()
    return fig


def plot_error_histograms(errors: dict, bins: int = 40, xlabel: str = "error (input px)"):
    """Overlaid histograms of per-keypoint errors, one per entry of ``errors`` (name -> 1-D array)."""
    fig = Figure(figsize=(5.0, 3.0))
    ax = fig.subplots()
    arrays = {k: _numpy(v).ravel() for k, v in errors.items()}
    top = max(float(np.nanmax(a)) for a in arrays.values() if a.size)
    edges = np.linspace(0.0, top, bins + 1)
    for name, a in arrays.items():
        ax.hist(a, bins=edges, histtype="step", lw=1.5, label=f"{name} (mean {np.nanmean(a):.2f})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("keypoints")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


__all__ = [
    "MPII_SKELETON",
    "COCO_SKELETON",
    "show",
    "image_to_numpy",
    "draw_keypoints",
    "prediction_grid",
    "plot_training_history",
    "save_curves",
    "plot_sweep",
    "plot_error_histograms",
]
