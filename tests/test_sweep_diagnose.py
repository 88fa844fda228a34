"""docs/sweep/diagnose_rr.py, the diagnostic the sweep's README relies on, in a tiny form."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "sweep" / "diagnose_rr.py"
TINY = [
    "base.data.input_size=[32,32]",
    "base.data.options={num_train: 32, num_eval: 8, num_keypoints: 4, noise_distribution: gaussian}",
    "base.train.batch_size=8",
    "base.train.device=cpu",
    "model_width=4",
    "jitter_shifts=[0.0]",
    "latency_repeats=1",
    "temperature_samples=8",
]


def _load():
    spec = importlib.util.spec_from_file_location("diagnose_rr", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_diagnose_trains_sampled_and_expected_targets_and_prints_their_ratio(tmp_path, capsys):
    module = _load()
    argv = ["--stride", "8", "--steps", "2", "--seeds", "0", "1", "--out", str(tmp_path), "--", *TINY]
    assert module.main(argv) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert (
        line.startswith("stride 8, 2 steps: sampled target ")
        and "expected target" in line
        and "ratio" in line
    )
    results = module.diagnose(8, [2], [0, 1], str(tmp_path / "again"), TINY)
    pair = results[2]
    assert pair["sample"]["n"] == pair["expected"]["n"] == 2
    assert pair["sample"]["mean_error_px"] != pair["expected"]["mean_error_px"]  # different targets trained


def test_diagnose_reports_bad_overrides_in_one_line(tmp_path, capsys):
    assert _load().main(["--steps", "1", "--out", str(tmp_path), "--", "base.train.batch_sise=4"]) == 2
    assert "batch_sise" in capsys.readouterr().err
