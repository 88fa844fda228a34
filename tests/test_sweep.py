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
    "seeds": [0, 1],
    "input_sizes": [48, 32],
    "input_seeds": [0],
    "models": [
        {"name": "argmax", "codec": "argmax"},
        {
            "name": "gaussian",
            "codec": "dark",
            "options": {"sigma": 1.0},
            "decoders": [{"name": "gaussian_argmax", "codec": "gaussian"}, {"name": "dark", "codec": "dark"}],
        },
        {
            "name": "randomized_rounding",
            "codec": "randomized_rounding",
            "decoders": [
                {"name": "randomized_rounding"},
                {"name": "rr_2x2", "decode": {"method": "2x2"}},
                {"name": "rr_2x2_T", "decode": {"method": "2x2"}, "calibrated": True},
            ],
        },
        {"name": "rr_expected", "codec": "randomized_rounding", "options": {"target": "expected"}},
    ],
    "model_width": 4,
    "jitter_shifts": [0.0, 0.5],
    "motion": "cell",
    "noise_draws": 2,
    "eval_batch_size": 16,
    "temperature_samples": 16,
    "latency_repeats": 1,
    "base": {
        "data": {
            "name": "synthetic",
            "input_size": [32, 32],
            "options": {
                "num_train": 32,
                "num_eval": 16,
                "num_keypoints": 4,
                "noise_distribution": "gaussian",
            },
        },
        "model": {"name": "tiny"},
        "train": {"seed": 0, "device": "cpu", "batch_size": 8, "max_steps": 3, "log_every": 1},
        "eval": {"batch_size": 16},
    },
}
DECODERS = ["argmax", "gaussian_argmax", "dark", "randomized_rounding", "rr_2x2", "rr_2x2_T", "rr_expected"]


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    config = sw.sweep_from_dict({**TINY, "out_dir": str(out)}, "TINY")
    record = sw.run_sweep(config, progress=False, log=lambda text: None)
    return out, record


def test_tiny_sweep_writes_tables_csv_json_md_and_figures(tiny_sweep):
    out, record = tiny_sweep
    results = out / "results"
    with (results / "runs.csv").open() as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == sw.COLUMNS
        rows = list(reader)
    # 2 seeds x 2 strides at 32 px, plus the input sweep's 48 px point at stride 4 (seed 0 only).
    expected = sorted(
        [(d, s, 32, seed) for d in DECODERS for s in (4, 8) for seed in (0, 1)]
        + [(d, 4, 48, 0) for d in DECODERS]
    )
    assert sorted((r["codec"], int(r["stride"]), int(r["input"]), int(r["seed"])) for r in rows) == expected
    numeric = [
        c for c in sw.COLUMNS if c not in ("sweep", "codec", "model", "trained_as", "target", "heatmap")
    ]
    for row in rows:
        for column in numeric:
            if column == "temperature" and row["trained_as"] != "randomized_rounding":
                assert math.isnan(float(row[column]))
                continue
            assert math.isfinite(float(row[column])), (row["codec"], row["stride"], column, row[column])
        assert (
            row["heatmap"]
            == {(4, 32): "8x8", (8, 32): "4x4", (4, 48): "12x12"}[(int(row["stride"]), int(row["input"]))]
        )
        assert int(row["steps"]) == 3
    saved = json.loads((results / "sweep.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(record["rows"]))
    assert saved["machine"] and saved["wall_seconds"] > 0 and saved["cpu_seconds"] > 0
    with (results / "sweep.csv").open() as f:
        summary = list(csv.DictReader(f))
    assert len(summary) == len(DECODERS) * 3  # (stride 4, 32), (stride 8, 32), (stride 4, 48)
    table = (results / "sweep.md").read_text()
    assert table.startswith("Headline: the stride sweep at input 32 px")
    assert "Stride sweep (input 32 px):" in table and "Input sweep (stride 4):" in table
    assert "| best RR at stride 8 / vanilla floor | <= 0.3 |" in table and "Cramer-Rao" in table
    assert "Signed error (cells" in table and saved["machine"] in table
    for name in ("sweep.png", "flops.png", "conditional.png"):
        png = (results / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < 300_000, name


def test_compute_columns_are_measured_per_run(tiny_sweep):
    _, record = tiny_sweep
    rows = record["rows"]
    for row in rows:
        assert row["gflops"] > 0 and row["params"] > 0 and row["latency_ms_cpu"] > 0
        assert row["train_cpu_seconds"] > 0 and row["train_seconds"] > 0

    def flops(stride, size):
        return {
            r["gflops"]
            for r in rows
            if r["codec"] == "argmax" and (r["stride"], r["input"]) == (stride, size)
        }

    assert len(flops(4, 32)) == 1  # FLOPs do not depend on the seed
    # The tiny CNN is fully convolutional: its FLOPs grow with the pixel count (48^2 / 32^2 = 2.25).
    assert flops(4, 48).pop() / flops(4, 32).pop() == pytest.approx(2.25, rel=0.05)
    assert flops(8, 32).pop() <= flops(4, 32).pop()
    ref = [s for s in record["summary"] if (s["codec"], s["stride"], s["input"]) == ("argmax", 4, 48)][0]
    assert ref["error_vs_ref"] == pytest.approx(1.0) and ref["gflops_vs_ref"] == pytest.approx(1.0)


def test_bound_column_is_the_rms_error_over_the_rms_cramer_rao_bound(tiny_sweep):
    _, record = tiny_sweep
    from trainers.bound import dataset_bound
    from trainers.build import build_datasets

    config = sw.sweep_from_dict(TINY, "TINY")
    _, eval_set = build_datasets(sw.base_config(config.base, seed=1), ["train", "eval"])
    bound = dataset_bound(eval_set)
    rms_bound = float(bound.pow(2).mean().sqrt())  # every keypoint of the tiny set is visible
    for row in record["rows"]:
        if row["seed"] == 1:
            assert row["rms_bound_px"] == pytest.approx(rms_bound, rel=1e-9)
        assert 0 < row["rms_bound_px"] < 1.0  # a fraction of a pixel at noise 0.03
        assert row["error_over_bound"] == pytest.approx(row["rms_error_px"] / row["rms_bound_px"])
        assert row["rms_error_px"] >= row["mean_error_px"] - 1e-12  # RMS >= mean


def test_summary_gives_the_mean_and_t_interval_over_seeds(tiny_sweep):
    from trainers.sweep_stats import mean_interval

    _, record = tiny_sweep
    for s in record["summary"]:
        values = [
            r["mean_error_px"]
            for r in record["rows"]
            if (r["codec"], r["stride"], r["input"]) == (s["codec"], s["stride"], s["input"])
        ]
        assert s["n"] == len(values) == (1 if s["input"] == 48 else 2)
        expected = mean_interval(values)
        assert s["mean_error_px"] == pytest.approx(expected["mean"])
        if s["n"] > 1:
            assert s["mean_error_px_low"] == pytest.approx(expected["low"])
            assert s["mean_error_px_low"] <= s["mean_error_px"] <= s["mean_error_px_high"]
        else:
            assert math.isnan(s["mean_error_px_low"])
    names = {t["name"] for t in record["targets"]}
    assert {"best RR at stride 4 / vanilla floor", "best RR at stride 8 / vanilla floor"} <= names
    assert all(t["met"] in (True, False) for t in record["targets"])


def test_conditional_error_counts_every_labelled_keypoint_once_per_axis(tiny_sweep):
    _, record = tiny_sweep
    per_run = {}
    for c in record["conditional"]:
        key = (c["codec"], c["stride"], c["input"], c["seed"], c["axis"])
        per_run[key] = per_run.get(key, 0) + c["count"]
        assert c["count"] == 0 or abs(c["signed_error_cells"]) <= c["abs_error_cells"] + 1e-12
    assert len(per_run) == len(record["rows"]) * 2
    assert set(per_run.values()) == {16 * 4}  # 16 held-out faces x 4 keypoints, all visible
    one = sw.pooled_conditional(record["conditional"], "rr_2x2", 8, 32)
    assert int(one["count"].sum()) == 2 * 2 * 16 * 4  # two seeds, two axes


def test_temperature_is_fitted_stored_in_the_checkpoint_and_used(tiny_sweep):
    from trainers import checkpoint

    out, record = tiny_sweep
    rr = [
        r
        for r in record["rows"]
        if r["model"] == "randomized_rounding" and r["seed"] == 0 and r["input"] == 32
    ]
    stored = checkpoint.load(out / "randomized_rounding_s4_in32_seed0" / "last.pt")["decode"]["temperature"]
    row = [r for r in rr if r["stride"] == 4][0]
    assert row["temperature"] == stored > 0
    assert all(math.isnan(r["temperature"]) for r in record["rows"] if r["trained_as"] == "argmax")


def test_calibrated_decoder_divides_the_logits_by_the_temperature():
    from h3r_theory import codecs

    codec = codecs.build("randomized_rounding", input_size=(32, 32), heatmap_size=(8, 8))
    run = sw._model_run(
        {"name": "rr", "codec": "randomized_rounding", "decoders": [{"name": "c", "calibrated": True}]}, "t"
    )
    decoders = sw.build_decoders(run, codec, temperature=1.7)
    assert decoders["c"][1] == {"temperature": 1.7}
    with pytest.raises(ValueError, match="no temperature"):
        sw.build_decoders(run, codec, temperature=None)


def test_jitter_uses_exactly_re_rendered_faces():
    from trainers.data.synthetic import SyntheticLandmarks

    data = SyntheticLandmarks(4, (32, 32), num_keypoints=4, seed=3, split="val")
    base = data.batch([0, 1])
    images, keypoints = sw._shifted_batch(data, [0, 1], (0.25, -0.5), base)
    moved = data.batch([0, 1], shift=(0.25, -0.5))
    assert torch.equal(images, moved["image"]) and not torch.equal(images, base["image"])
    assert torch.allclose(keypoints, base["keypoints"] + torch.tensor([0.25, -0.5]), atol=1e-5)


def test_sweep_jobs_cover_both_sweeps_once():
    config = sw.sweep_from_dict(TINY, "TINY")
    jobs = sw.sweep_jobs(config, 32)
    keys = [(j["run"].name, j["stride"], j["input"], j["seed"]) for j in jobs]
    assert len(keys) == len(set(keys)) == 4 * (2 * 2 + 1)
    assert sum(1 for k in keys if k[2] == 48) == 4


def test_measurement_agrees_with_evaluate(tiny_sweep):
    """The sweep's own evaluation path (one forward per shift, several decoders) reproduces
    ``trainers.evaluate.evaluate``'s error at zero shift for the codec a model was trained with."""
    _, record = tiny_sweep
    for row in record["rows"]:
        if row["codec"] == row["model"] or row["codec"] == "dark":  # decoded by the training codec
            assert row["mean_error_px"] == pytest.approx(row["train_mean_error_px"], rel=1e-9, abs=1e-9)


def test_vanilla_floor_column_is_the_exact_mean_rounding_error_times_stride(tiny_sweep):
    _, record = tiny_sweep
    per_cell = float(mean_quantization_error("round", 2))  # (sqrt(2) + asinh(1)) / 6, from the derivation
    assert per_cell == pytest.approx(0.3826, abs=1e-4)
    for row in record["rows"]:
        assert row["floor_px"] == pytest.approx(per_cell * row["stride"], rel=1e-12)
        assert row["error_over_floor"] == pytest.approx(row["mean_error_px"] / row["floor_px"])


def test_same_data_and_initialisation_across_strides_and_codecs(tiny_sweep):
    out, _ = tiny_sweep
    # Tiny's parameters do not depend on the stride, so every run of a seed must start from the same
    # parameters: check that two runs at different strides and codecs were configured alike.
    configs = [
        json.loads((out / name / "config.json").read_text())
        for name in ("argmax_s4_in32_seed1", "randomized_rounding_s8_in32_seed1")
    ]
    for key in ("data", "optim"):
        assert configs[0][key] == configs[1][key]
    assert configs[0]["train"]["seed"] == configs[1]["train"]["seed"] == 1
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


def _target_rows(errors):
    return [
        {
            "codec": c,
            "trained_as": c,
            "stride": s,
            "input": 128,
            "seed": seed,
            "mean_error_px": e,
            "sweep": "stride",
        }
        for (c, s), per_seed in errors.items()
        for seed, e in enumerate(per_seed)
    ]


def test_targets_are_measured_checks_from_the_rows():
    rr, am = "randomized_rounding", "argmax"
    errors = {(rr, 4): [0.40, 0.42, 0.44], (rr, 8): [0.60, 0.62, 0.64], (rr, 16): [1.0, 1.1, 1.2]}
    errors.update({(am, 4): [1.5, 1.6, 1.55], (am, 8): [3.1, 3.2, 3.0], (am, 16): [6.1, 6.2, 6.0]})
    rows = _target_rows(errors)
    for r in rows:
        r.update(floor_px=sw.quantization_floor(r["stride"]), gflops=1.0, params=1, latency_ms_cpu=1.0)
        r.update(
            heatmap="", model=r["codec"], target="", error_over_bound=4.0, rms_bound_px=0.1, temperature=1.0
        )
        r.update(nme=0.0, jitter_sd_px=0.0, error_over_floor=r["mean_error_px"] / r["floor_px"])
    t = {c["name"]: c for c in sw.targets(sw.summarize_rows(rows), rows, 128)}
    assert t["best RR at stride 16 / vanilla floor"]["value"] == pytest.approx(
        1.1 / sw.quantization_floor(16)
    )
    assert t["best RR at stride 16 / vanilla floor"]["met"] is True
    assert t["best RR at stride 8 vs argmax at stride 4 (px)"]["met"] is True
    ratio = t["RR stride 16 / stride 4 error ratio (randomized_rounding)"]
    assert (
        ratio["value"] == pytest.approx((1.0 / 0.40 + 1.1 / 0.42 + 1.2 / 0.44) / 3) and ratio["met"] is True
    )
    assert "[" in ratio["measured"]  # the interval is given with the verdict
    bound = [c for n, c in t.items() if "Cramer-Rao" in n][0]
    assert bound["met"] is True and "randomized_rounding" in bound["name"]
    for r in rows:
        if r["codec"] == rr and r["stride"] == 16:
            r["mean_error_px"] *= 1.5
    t = {c["name"]: c for c in sw.targets(sw.summarize_rows(rows), rows, 128)}
    assert t["RR stride 16 / stride 4 error ratio (randomized_rounding)"]["met"] is False


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
        ({"seeds": []}, "seeds"),
        ({"seeds": [0, 0]}, "repeat"),
        ({"input_sizes": [30]}, "multiple of input_stride"),
        (
            {"models": [{"name": "a", "codec": "argmax", "decoders": [{"name": "b", "calibrated": True}]}]},
            "calibrated",
        ),
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


def test_headline_row_repeats_the_summary_of_each_main_decoder(tiny_sweep):
    _, record = tiny_sweep
    lines = sw.headline_lines(record, markdown=True)
    rows = {line.split(" | ")[0].strip("| "): line for line in lines if line.startswith("| ")}
    # TINY lists gaussian_argmax first for the Gaussian model, so DARK stays in the full table only.
    assert sw.main_decoders(record) == {"argmax", "gaussian_argmax", "randomized_rounding", "rr_expected"}
    assert set(rows) == sw.main_decoders(record) | {"codec / decoder", "vanilla floor 0.3826 x stride"}
    for r in record["summary"]:
        if r["codec"] in ("argmax", "gaussian_argmax") and r["input"] == 32:
            cell = f"{r['mean_error_px']:.3f} [{r['mean_error_px_low']:.3f}, {r['mean_error_px_high']:.3f}]"
            assert cell in rows[r["codec"]], (r["codec"], r["stride"])
    assert rows["vanilla floor 0.3826 x stride"].startswith("| vanilla floor 0.3826 x stride | 1.53 | 3.06 |")


# -- trainings in worker processes, resume, folder rules (issue 22 point 8, issue 24 point 7) -----------

SMALL = {**TINY, "input_sizes": [], "seeds": [0], "strides": [4]}
TIMINGS = ("train_seconds", "train_cpu_seconds", "latency_ms_cpu")


def _numbers(record):
    """Every number of a record but the timings, as JSON text (so that NaN equals NaN)."""
    rows = [{k: v for k, v in r.items() if k not in TIMINGS} for r in record["rows"]]
    return json.dumps([rows, record["conditional"]], sort_keys=True)


def test_workers_give_the_numbers_of_a_serial_run_on_one_thread(tmp_path):
    parallel = sw.run_sweep(sw.sweep_from_dict({**SMALL, "out_dir": str(tmp_path / "p")}, "SMALL"),
                            progress=False, log=lambda t: None, workers=2)  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        serial = sw.run_sweep(sw.sweep_from_dict({**SMALL, "out_dir": str(tmp_path / "s")}, "SMALL"),
                              progress=False, log=lambda t: None, workers=0)  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert _numbers(parallel) == _numbers(serial)
    assert parallel["workers"] == 2 and parallel["cpu_seconds"] > 0


def test_a_second_sweep_reads_finished_trainings_back_and_reruns_only_a_lost_one(tmp_path, capsys):
    config = sw.sweep_from_dict({**SMALL, "out_dir": str(tmp_path / "out")}, "SMALL")
    first = sw.run_sweep(config, progress=False, log=lambda t: None, workers=0)
    (tmp_path / "out" / "argmax_s4_in32_seed0" / "sweep_run.json").unlink()  # as if killed during that run
    capsys.readouterr()
    again = sw.run_sweep(config, progress=True, log=lambda t: None, workers=0)
    err = capsys.readouterr().err
    assert "3 of 4 trainings already finished" in err and err.count(" done: ") == 1
    assert _numbers(again) == _numbers(first)


def test_a_sweep_refuses_a_folder_that_is_not_its_own_and_changed_settings(tmp_path, capsys):
    run = tmp_path / "train_run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"precious")
    assert sw.main([f"--out={run}", "--no-progress", "--workers=0", *_small_overrides()]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds an h3r-train run (last.pt)" in err[0]
    assert (run / "last.pt").read_bytes() == b"precious"
    afile = tmp_path / "a_file"
    afile.write_text("x")
    assert sw.main([f"--out={afile}", "--no-progress", *_small_overrides()]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    out = tmp_path / "sweep"
    assert sw.main([f"--out={out}", "--no-progress", "--workers=0", *_small_overrides()]) == 0
    changed = [*_small_overrides(), "base.train.max_steps=2"]
    assert sw.main([f"--out={out}", "--no-progress", "--workers=0", *changed]) == 2
    assert "finished run of other settings" in capsys.readouterr().err
    assert sw.main([f"--out={out}", "--no-progress", "--workers=0", "--overwrite", *changed]) == 0
    saved = json.loads((out / "results" / "sweep.json").read_text())
    assert {r["steps"] for r in saved["rows"]} == {2}


def _small_overrides():
    """SMALL as command-line overrides of the bundled sweep (the same small grid, one model)."""
    return ["strides=[4]", "seeds=[0]", "input_sizes=[]", "model_width=4", "latency_repeats=1",
            "temperature_samples=8", "jitter_shifts=[0.0]", "bound=false",
            "models=[{name: argmax, codec: argmax}]", "base.data.input_size=[32,32]",
            "base.data.options={num_train: 64, num_eval: 16, num_keypoints: 4}", "base.train.max_steps=3",
            "base.train.batch_size=8", "base.eval.batch_size=16"]  # fmt: skip


def test_two_sweeps_in_one_folder_at_once_are_refused(tmp_path):
    from trainers.run_folder import acquire_lock

    out = tmp_path / "busy"
    out.mkdir()
    (out / ".h3r-sweep").write_text("x")
    lock = acquire_lock(out)  # this process holds it, as a running sweep would
    try:
        with pytest.raises(ValueError, match="in use"):
            sw.run_sweep(
                sw.sweep_from_dict({**SMALL, "out_dir": str(out)}, "SMALL"), progress=False, workers=0
            )
    finally:
        lock.release()


def test_the_best_decoder_is_selected_on_validation_and_comparisons_are_paired(tiny_sweep):
    _, record = tiny_sweep
    assert all(math.isfinite(r["val_mean_error_px"]) for r in record["rows"])
    pairs = sw.report.paired_differences(record)
    assert {p["stride"] for p in pairs} == {4, 8} and all(p["reference"] == "rr_expected" for p in pairs)
    for p in pairs:  # the paired difference is the mean of the per-seed differences, recomputed here
        error = {(r["codec"], r["seed"]): r["mean_error_px"] for r in record["rows"]
                 if (r["stride"], r["input"]) == (p["stride"], 32)}  # fmt: skip
        mine = [error[(p["codec"], s)] - error[("rr_expected", s)] for s in (0, 1)]
        assert p["per_seed"] == pytest.approx(mine)
        assert p["mean"] == pytest.approx(sum(mine) / 2)
    table = sw.format_table(record, markdown=True)
    assert "Paired differences to rr_expected" in table
    # The "best RR" of the targets is the one with the lowest VALIDATION error at that stride.
    summary = [
        s
        for s in record["summary"]
        if s["trained_as"] == "randomized_rounding" and s["stride"] == 8 and s["input"] == 32
    ]
    chosen = min(summary, key=lambda s: s["val_mean_error_px"])["codec"]
    assert any(
        t["measured"].startswith(chosen) for t in record["targets"] if "stride 8 / vanilla floor" in t["name"]
    )


def test_every_run_carries_its_error_budget_and_its_displacement_slope(tiny_sweep):
    _, record = tiny_sweep
    for row in record["rows"]:
        parts = row["noise_var_px2"] + row["offset_px2"] + row["phase_px2"] + row["per_face_px2"]
        # The parts add up exactly to the MSE over the two draws; closure compares them with the set's own.
        assert parts / row["rms_error_px"] ** 2 == pytest.approx(row["budget_closure"], rel=1e-9)
        assert row["noise_var_px2"] >= 0 and row["noise_sd_over_bound"] > 0
        assert math.isfinite(row["slope"]) and row["wobble_px"] >= 0
    # The motion spans one cell: stride 8 moves the faces by 0, 2, 4, 6 px.
    assert record["sweep"]["motion"] == "cell" and record["sweep"]["shifts_per_cell"] == 4


def test_the_jitter_of_a_predictor_that_ignores_the_motion_is_the_stated_multiple_of_the_stride():
    shifts = [j * 8 / 4 for j in range(4)]  # stride 8, 4 moves per cell
    labels = torch.tensor(shifts, dtype=torch.float64)[:, None, None, None].expand(4, 3, 2, 2)
    errors = torch.zeros_like(labels) - labels  # the prediction never moves
    assert sw.jitter_sd(errors, torch.ones(3, 2)) == pytest.approx(sw.report.statue_jitter(4) * 8)


def test_the_sweep_table_shows_the_error_budget(tiny_sweep):
    _, record = tiny_sweep
    text = sw.format_table(record, markdown=True)
    assert "Error budget" in text and "noise sd / CRB" in text and "scores 0.395 x the stride" in text
