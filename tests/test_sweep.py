"""The resolution sweep (h3r-sweep): a tiny end-to-end sweep, its files, and the pieces it measures with."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from h3r_theory.theory.quantization import mean_quantization_error
from trainers import sweep as sw

# A sweep small enough for CI: 32 x 32 images, 3 training steps of 8 images, 16 held-out images, two
# strides, two codecs (plus a model decoded twice), a 2 x 2 grid of sub-pixel shifts.
TINY = {
    "title": "tiny test sweep",
    "strides": [4, 8],
    "models": [
        {"name": "argmax", "codec": "argmax"},
        {
            "name": "gaussian",
            "codec": "dark",
            "options": {"sigma": 1.0},
            "decoders": [{"name": "gaussian_argmax", "codec": "gaussian"}, {"name": "dark", "codec": "dark"}],
        },
        {"name": "randomized_rounding", "codec": "randomized_rounding"},
    ],
    "model_width": 4,
    "jitter_shifts": [0.0, 0.5],
    "eval_batch_size": 16,
    "base": {
        "data": {
            "name": "synthetic",
            "input_size": [32, 32],
            "options": {"num_train": 32, "num_eval": 16, "num_keypoints": 4},
        },
        "model": {"name": "tiny"},
        "train": {"seed": 0, "device": "cpu", "batch_size": 8, "max_steps": 3, "log_every": 1},
        "eval": {"batch_size": 16},
    },
}


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    config = sw.sweep_from_dict({**TINY, "out_dir": str(out)}, "TINY")
    record = sw.run_sweep(config, progress=False, log=lambda text: None)
    return out, record


def test_tiny_sweep_writes_table_csv_json_md_and_figure(tiny_sweep):
    out, record = tiny_sweep
    results = out / "results"
    decoders = ["argmax", "gaussian_argmax", "dark", "randomized_rounding"]
    with (results / "sweep.csv").open() as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == sw.COLUMNS
        rows = list(reader)
    expected = sorted((d, s) for d in decoders for s in (4, 8))
    assert sorted((r["codec"], int(r["stride"])) for r in rows) == expected
    numeric = [c for c in sw.COLUMNS if c not in ("codec", "trained_as", "heatmap")]
    for row in rows:
        for column in numeric:
            assert math.isfinite(float(row[column])), (row["codec"], row["stride"], column, row[column])
        assert row["heatmap"] == {4: "8x8", 8: "4x4"}[int(row["stride"])]
        assert int(row["steps"]) == 3
    saved = json.loads((results / "sweep.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(record["rows"]))
    assert saved["machine"] and saved["wall_seconds"] > 0
    assert set(saved["targets"]) >= {"rr_flat", "rr_vs_argmax", "rr_ratio_coarse_to_fine"}
    table = (results / "sweep.md").read_text()
    assert table.startswith("| codec / decoder |") and table.count("\n| ") == len(rows)  # one line per row
    png = (results / "sweep.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < 200_000


def test_vanilla_floor_column_is_the_exact_mean_rounding_error_times_stride(tiny_sweep):
    _, record = tiny_sweep
    per_cell = float(mean_quantization_error("round", 2))  # (sqrt(2) + asinh(1)) / 6, from the derivation
    assert per_cell == pytest.approx(0.3826, abs=1e-4)
    for row in record["rows"]:
        assert row["floor_px"] == pytest.approx(per_cell * row["stride"], rel=1e-12)
        assert row["error_over_floor"] == pytest.approx(row["mean_error_px"] / row["floor_px"])


def test_sweep_measurement_agrees_with_evaluate(tiny_sweep):
    """The sweep's own evaluation path (one forward per shift, several decoders) reproduces
    ``trainers.evaluate.evaluate``'s error at zero shift for the codec a model was trained with."""
    _, record = tiny_sweep
    for row in record["rows"]:
        if row["codec"] in ("argmax", "dark", "randomized_rounding"):  # decoded by the training codec
            assert row["mean_error_px"] == pytest.approx(row["train_mean_error_px"], rel=1e-9, abs=1e-9)


def test_same_data_and_initialisation_across_strides_and_codecs(tiny_sweep):
    out, _ = tiny_sweep
    # Tiny's parameters do not depend on the stride, so every run must start from the same parameters: check
    # that two runs at different strides and codecs were configured with the same seed and data.
    configs = [
        json.loads((out / name / "config.json").read_text())
        for name in ("argmax_s4", "randomized_rounding_s8")
    ]
    for key in ("data", "optim"):
        assert configs[0][key] == configs[1][key]
    assert configs[0]["train"]["seed"] == configs[1]["train"]["seed"]
    assert (configs[0]["model"]["output_stride"], configs[1]["model"]["output_stride"]) == (4, 8)


def test_jitter_sd_is_zero_for_a_translation_equivariant_predictor():
    errors = torch.full((4, 3, 2, 2), 0.3, dtype=torch.float64)  # same error vector at every shift
    assert sw.jitter_sd(errors, torch.ones(3, 2)) == 0.0


def test_jitter_sd_of_a_predictor_that_stands_still():
    # Shifts (0, 0), (0.5, 0), (0, 0.5), (0.5, 0.5); the prediction never moves, so the error is -shift:
    # per axis uniform on {0, -0.5}, variance 1/16, vector sd sqrt(2/16).
    shifts = torch.tensor(sw.shift_grid([0.0, 0.5]), dtype=torch.float64)
    errors = -shifts[:, None, None, :].expand(4, 5, 3, 2)
    visible = torch.ones(5, 3)
    assert sw.jitter_sd(errors, visible) == pytest.approx(math.sqrt(2 / 16))
    visible[:, 0] = 0  # unlabelled keypoints are left out, not counted as zero
    assert sw.jitter_sd(errors, visible) == pytest.approx(math.sqrt(2 / 16))


def test_shift_grid_covers_every_pair_once():
    grid = sw.shift_grid([0, 0.25, 0.5])
    assert len(grid) == 9 and len(set(grid)) == 9 and grid[0] == (0.0, 0.0)


def test_targets_are_computed_from_the_rows():
    rows = [
        {"codec": c, "stride": s, "mean_error_px": e}
        for c, s, e in [
            ("randomized_rounding", 4, 2.0),
            ("randomized_rounding", 16, 2.2),
            ("argmax", 16, 6.5),
        ]
    ]
    t = sw.targets(rows)
    assert t["rr_ratio_coarse_to_fine"] == pytest.approx(1.1) and t["rr_flat"] is True
    assert t["rr_over_argmax_coarse"] == pytest.approx(2.2 / 6.5) and t["rr_vs_argmax"] is True
    rows[1]["mean_error_px"] = 3.5
    t = sw.targets(rows)
    assert t["rr_flat"] is False and t["rr_vs_argmax"] is False


def test_bundled_configs_load_and_keep_stride_the_only_difference():
    for full in (False, True):
        config = sw.load_sweep(full=full)
        assert {4, 8, 16} <= set(config.strides)
        names = {d.name for m in config.models for d in m.decoders}
        assert {"argmax", "gaussian_argmax", "dark", "randomized_rounding"} <= names
        runs = [sw.base_config(config.base, stride=s, codec=m) for s in config.strides for m in config.models]
        for run in runs:
            for section in ("data", "optim", "train", "eval"):
                assert getattr(run, section) == getattr(runs[0], section)
            assert run.model.name == runs[0].model.name


@pytest.mark.parametrize(
    "change, message",
    [
        ({"strides": [4, 0]}, "strides"),
        ({"colour": 1}, "unknown key"),
        ({"models": []}, "at least one model"),
        ({"models": [{"name": "a", "codec": "nope"}]}, "unknown codec 'nope'"),
        (
            {"models": [{"name": "a", "codec": "argmax", "decoders": [{"name": "b", "codec": "nope"}]}]},
            "unknown codec 'nope'",
        ),
        ({"models": [{"name": "a", "codec": "argmax"}, {"name": "a", "codec": "dark"}]}, "unique"),
        ({"base": {"train": {"batch_sise": 4}}}, "batch_sise"),
        ({"jitter_shifts": []}, "jitter_shifts"),
    ],
)
def test_bad_sweep_configs_fail_naming_the_problem(change, message):
    with pytest.raises(ValueError, match=message):
        sw.sweep_from_dict({**TINY, **change}, "TINY")


def test_overrides_reach_the_sweep_and_typos_fail():
    config = sw.load_sweep(overrides=["strides=[4,16]", "base.train.max_steps=7", "out_dir=/tmp/x"])
    assert config.strides == [4, 16] and config.base["train"]["max_steps"] == 7 and config.out_dir == "/tmp/x"
    with pytest.raises(ValueError, match="unknown sweep key 'stride'"):
        sw.load_sweep(overrides=["stride=[4]"])
    with pytest.raises(ValueError, match="key=value"):
        sw.load_sweep(overrides=["strides"])


def test_cli_reports_bad_input_with_exit_status_2(capsys):
    assert sw.main(["strides=oops", "--no-progress"]) == 2
    assert "strides" in capsys.readouterr().err
