"""Sweep statistics: t intervals, error conditional on the sub-cell position, bound ratio, figures."""

from __future__ import annotations

import io
import math

import pytest
import torch
from matplotlib.figure import Figure

from h3r_theory.conventions import heatmap_to_input
from trainers import sweep_stats as ss


def test_t_interval_of_three_values_and_its_coverage():
    r = ss.mean_interval([1.0, 2.0, 3.0])
    assert r["mean"] == 2.0 and r["sd"] == 1.0 and r["n"] == 3
    assert r["half_width"] == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)  # t(0.975, 2) = 4.3027
    assert r["low"] == pytest.approx(2.0 - r["half_width"]) and r["high"] == pytest.approx(
        2.0 + r["half_width"]
    )
    # Coverage: 95 % of intervals from 3 normal draws contain the true mean (a 1.96 normal quantile would
    # give about 83 %).
    g = torch.Generator().manual_seed(0)
    draws = torch.randn(4000, 3, generator=g, dtype=torch.float64) + 5.0
    hits = sum(
        ss.mean_interval(d.tolist())["low"] <= 5.0 <= ss.mean_interval(d.tolist())["high"] for d in draws
    )
    assert abs(hits / 4000 - 0.95) < 0.015
    one = ss.mean_interval([0.7])
    assert one["mean"] == 0.7 and math.isnan(one["low"]) and math.isnan(one["half_width"])
    with pytest.raises(ValueError, match="at least one value"):
        ss.mean_interval([])
    with pytest.raises(ValueError, match="confidence"):
        ss.mean_interval([1.0, 2.0], confidence=95)


def test_summarize_groups_runs_over_seeds():
    rows = [
        {"codec": c, "stride": s, "seed": seed, "mean_error_px": s * (1.0 if c == "a" else 0.5) + 0.1 * seed}
        for c in ("a", "b") for s in (4, 8) for seed in range(3)
    ]  # fmt: skip
    out = ss.summarize(rows)
    assert [(r["codec"], r["stride"]) for r in out] == [("a", 4), ("a", 8), ("b", 4), ("b", 8)]
    assert out[1]["mean"] == pytest.approx(8.1) and out[1]["n"] == 3
    assert out[2]["sd"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="has no"):
        ss.summarize([{"codec": "a"}])


def test_conditional_error_finds_a_pull_towards_cell_centres_that_averages_to_zero():
    input_size, heatmap_size, bins = (128, 128), (8, 8), 10  # stride 16
    g = torch.Generator().manual_seed(1)
    cells = torch.randint(1, 6, (400, 6, 2), generator=g).double()
    # True positions at the bin centres of the fraction; the prediction is pulled towards the nearest cell
    # centre by 0.05 sin(2 pi f) cells along x only.
    frac = (torch.randint(0, bins, (400, 6, 2), generator=g).double() + 0.5) / bins
    uv_gt = cells + frac
    pull = torch.zeros_like(uv_gt)
    pull[..., 0] = -0.05 * torch.sin(2 * math.pi * frac[..., 0])
    gt = heatmap_to_input(uv_gt, input_size, heatmap_size)
    pred = heatmap_to_input(uv_gt + pull, input_size, heatmap_size)
    visible = torch.ones(400, 6)
    visible[:, 5] = 0.0
    pred[:, 5] += 100.0  # unlabelled keypoints must not count
    table = ss.conditional_error(pred, gt, visible, input_size, heatmap_size, bins=bins)
    centres = (torch.arange(bins, dtype=torch.float64) + 0.5) / bins
    torch.testing.assert_close(
        table["signed"][0], -0.05 * torch.sin(2 * math.pi * centres), atol=1e-9, rtol=0
    )
    torch.testing.assert_close(
        table["absolute"][0], 0.05 * torch.sin(2 * math.pi * centres).abs(), atol=1e-9, rtol=0
    )
    assert table["signed"][1].abs().max() < 1e-9  # no pull along y
    assert int(table["count"][0].sum()) == 400 * 5
    # The unconditional mean of the signed error hides the pull: it is near zero.
    overall = (table["signed"][0] * table["count"][0]).sum() / table["count"][0].sum()
    assert abs(overall) < 0.01 < table["absolute"][0].max()
    rows = ss.conditional_error_rows(table, codec="rr", stride=16)
    assert len(rows) == 2 * bins and rows[0]["codec"] == "rr" and rows[bins]["axis"] == "y"
    assert rows[2]["signed_error_cells"] == pytest.approx(float(table["signed"][0, 2]))
    with pytest.raises(ValueError, match="bins"):
        ss.conditional_error(pred, gt, visible, input_size, heatmap_size, bins=0)
    with pytest.raises(ValueError, match=r"\(N, K, 2\)"):
        ss.conditional_error(pred[..., :1], gt, visible, input_size, heatmap_size)


def test_bound_ratio_is_rms_error_over_rms_bound():
    gt = torch.zeros(2, 3, 2)
    pred = gt.clone()
    pred[..., 0] = torch.tensor([[0.3, 0.4, 0.0], [0.0, 0.0, 9.0]])
    visible = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    bound = torch.full((2, 3), 0.1)
    r = ss.bound_ratio(pred, gt, visible, bound)
    assert r["rms_error_px"] == pytest.approx(math.sqrt((0.09 + 0.16) / 5))
    assert r["rms_bound_px"] == pytest.approx(0.1)
    assert r["error_over_bound"] == pytest.approx(r["rms_error_px"] / 0.1)
    assert r["mean_error_px"] == pytest.approx(0.7 / 5)
    with pytest.raises(ValueError, match="bound must be"):
        ss.bound_ratio(pred, gt, visible, bound[:, :2])


def _saved(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def test_figures_are_bare_figures_with_one_line_per_codec():
    rows = [
        {"codec": c, "stride": s, "seed": seed, "mean_error_px": 0.1 * s + 0.01 * seed + (0.5 if c == "argmax" else 0),
         "gflops": 0.2 / s}
        for c in ("argmax", "rr") for s in (4, 8, 16) for seed in range(3)
    ]  # fmt: skip
    summary = ss.summarize(rows, keys=("codec", "stride"))
    for r in summary:
        r["gflops"] = 0.2 / r["stride"]
    fig = ss.figure_error_vs_stride(summary, bound_px=0.05)
    assert isinstance(fig, Figure) and fig.canvas.manager is None  # not registered with pyplot
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert (
        labels[:2] == ["argmax", "rr"]
        and any("floor" in x for x in labels)
        and any("Cramer" in x for x in labels)
    )
    assert len(ax.collections) == 2  # one seed band per codec
    floor = next(line for line in ax.get_lines() if "floor" in line.get_label())
    assert (
        floor.get_ydata()[-1] == pytest.approx(ss.vanilla_floor(16)) == pytest.approx(16 * 0.38260, rel=1e-4)
    )
    fig2 = ss.figure_error_vs_flops(summary)
    assert [t.get_text() for t in fig2.axes[0].texts][:3] == ["16", "8", "4"]  # sorted by FLOPs
    assert len(fig2.axes[0].get_legend().get_texts()) == 2
    table = {"edges": torch.linspace(0, 1, 11, dtype=torch.float64), "signed": torch.zeros(2, 10),
             "absolute": torch.ones(2, 10), "count": torch.ones(2, 10)}  # fmt: skip
    fig3 = ss.figure_conditional_error({"window": table, "top4": table})
    assert (
        len(fig3.axes) == 4 and len(fig3.axes[0].get_lines()) == 2 + 2
    )  # two codecs + zero and border lines
    for f in (fig, fig2, fig3):
        assert _saved(f)[:8] == b"\x89PNG\r\n\x1a\n"
