"""Figures of the training notebooks (06 faces, 07 pose, 08 resolution sweep).

Everything here draws on a matplotlib ``Axes``/``Figure`` and returns it; nothing is saved or shown, so
the notebooks decide. Images are drawn with matplotlib's default ``imshow`` extent, which puts the centre of
pixel ``(i, j)`` at the integer coordinate ``(i, j)``: exactly the pixel-centre convention of
:mod:`h3r_theory.conventions`, so keypoints in input pixels are plotted as they are, with no half-pixel
shift.

Units: coordinates in pixels of the image that is drawn; errors in input pixels unless a label says
otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# MPII's 16 joints (r_ankle, r_knee, r_hip, l_hip, l_knee, l_ankle, pelvis, thorax, upper_neck, head_top,
# r_wrist, r_elbow, r_shoulder, l_shoulder, l_elbow, l_wrist): the limbs drawn between them, 0-based.
MPII_SKELETON: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
    (10, 11), (11, 12), (12, 7), (7, 13), (13, 14), (14, 15),
)  # fmt: skip

# COCO's 17 keypoints (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles; left before right):
# the limbs of the person category's "skeleton" field in person_keypoints_*.json, converted to 0-based.
COCO_SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip

GT_COLOUR = "#2ca02c"  # green: ground truth
PRED_COLOUR = "#d62728"  # red: prediction


def _numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def show(fig, format: str = "png") -> None:
    """Display ``fig`` in a notebook and close it; ``format="jpeg"`` keeps figures of photographs small.

    Explicit on purpose: code that saves figures headless may switch matplotlib to the Agg backend
    mid-notebook, after which figures would no longer appear on their own; closing also stops the inline
    backend from showing the figure a second time.
    """
    import io

    import matplotlib.pyplot as plt
    from IPython.display import Image, display

    # Rendered here rather than through IPython's figure formatter, which is gone once the backend changed.
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
    import matplotlib.pyplot as plt

    n = len(images)
    if n == 0:
        raise ValueError("prediction_grid needs at least one image")
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    height = size * nrows + (0.3 if suptitle else 0) + (0.25 * nrows if titles is not None else 0)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, height), squeeze=False)
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
    metric_label: str = "mean error (input px)",
    floor: float | None = None,
    floor_label: str = "vanilla rounding floor",
):
    """Training loss against step (left) and the evaluation ``metric`` against step (right).

    ``history`` is ``RunResult.history`` (the records of ``metrics.jsonl``: ``kind`` "train" with
    ``loss``, ``kind`` "eval" with the metrics). ``floor`` draws a horizontal reference line on the right.
    """
    import matplotlib.pyplot as plt

    train = [r for r in history if r.get("kind") == "train"]
    evals = [r for r in history if r.get("kind") == "eval" and metric in r]
    if not train:
        raise ValueError("history has no training records (kind == 'train')")
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.0))
    axes[0].plot([r["step"] for r in train], [r["loss"] for r in train], lw=1.2)
    axes[0].set_xlabel("training step")
    axes[0].set_ylabel(f"loss ({train[0].get('loss_name', 'training loss')})", fontsize=8)
    axes[0].set_yscale("log")
    axes[0].grid(alpha=0.3)
    if evals:
        axes[1].plot(
            [r["step"] for r in evals], [r[metric] for r in evals], marker="o", label="held-out split"
        )
    if floor is not None:
        axes[1].axhline(floor, color="k", ls="--", lw=1, label=f"{floor_label} ({floor:.2f})")
    axes[1].set_xlabel("training step")
    axes[1].set_ylabel(metric_label)
    axes[1].set_ylim(bottom=0)
    axes[1].grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_sweep(rows: Sequence[dict], floor_per_stride: float, codecs_order: Sequence[str] | None = None):
    """The resolution sweep: mean error (left) and jitter sd (right) against the heatmap stride.

    Args:
        rows: sweep rows (``trainers.sweep`` records) with ``codec``, ``stride``, ``mean_error_px`` and
            ``jitter_sd_px`` (input pixels).
        floor_per_stride: mean 2-D rounding error in cells, ``(sqrt(2) + asinh(1)) / 6``; the dashed line
            is this times the stride (input pixels).
        codecs_order: the order of the legend (default: first appearance in ``rows``).
    """
    import matplotlib.pyplot as plt

    if not rows:
        raise ValueError("plot_sweep needs at least one row")
    strides = sorted({int(r["stride"]) for r in rows})
    names = list(codecs_order or dict.fromkeys(r["codec"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.4))
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
    fig.tight_layout()
    return fig


def plot_error_histograms(errors: dict, bins: int = 40, xlabel: str = "error (input px)"):
    """Overlaid histograms of per-keypoint errors, one per entry of ``errors`` (name -> 1-D array)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.0, 3.0))
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
    "plot_sweep",
    "plot_error_histograms",
]
