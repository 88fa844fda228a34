"""The studies (trainers.studies): the error budget adds up, the study loop is the engine's, runs resume."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from trainers import engine
from trainers.studies import budget, runner, variants

TINY = {
    "title": "tiny",
    "strides": [4, 16],
    "seeds": [0, 1],
    "budgets": [3],
    "lrs": [4.0e-3, 1.2e-2],
    "variants": [
        {"name": "rr_expected", "options": {"target": "expected"}},
        {"name": "offset", "options": {"target": "expected"}, "loss": "offset"},
    ],
    "num_eval": 8,
    "eval_batch_size": 4,
    "noise_draws": 2,
    "shifts_per_cell": 2,
    "base": {
        "data": {"name": "synthetic", "input_size": [32, 32],
                 "options": {"num_train": 64, "num_keypoints": 4, "noise_distribution": "gaussian"}},
        "model": {"name": "tiny"},
        "optim": {"optimizer": "adamw", "lr": 1e-2, "schedule": "cosine", "warmup_steps": 1},
        "train": {"seed": 0, "device": "cpu", "batch_size": 8},
    },
}  # fmt: skip


def tiny_study(tmp_path, **changes) -> runner.Study:
    return runner.study_from_dict({**TINY, "out_dir": str(tmp_path / "study"), **changes}, "test")


# -- the error budget -----------------------------------------------------------------------------------


def random_case(R=5, N=40, K=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    truth = torch.rand(N, K, 2, generator=g, dtype=torch.float64) * 100
    fraction = torch.rand(N, K, 2, generator=g, dtype=torch.float64)
    per_face = 0.3 * torch.randn(N, K, 2, generator=g, dtype=torch.float64)
    pull = 0.3 * torch.sin(2 * math.pi * fraction)  # a cell-periodic bias
    noise = 0.2 * torch.randn(R, N, K, 2, generator=g, dtype=torch.float64)
    visible = (torch.rand(N, K, generator=g) > 0.2).float()
    # Centred over the labelled keypoints, so that the constant offset is exactly the one added below.
    per_face = per_face - per_face[visible > 0].mean(0) - pull[visible > 0].mean(0)
    return (
        truth + per_face + pull + noise + torch.tensor([0.1, -0.2], dtype=torch.float64),
        truth,
        visible,
        fraction,
    )


@pytest.mark.parametrize("seed", range(4))
def test_the_budget_parts_add_up_to_the_mse_over_the_draws(seed):
    pred, truth, visible, fraction = random_case(seed=seed)
    b = budget.error_budget(pred, truth, visible, fraction, bins=8)
    labelled = visible > 0
    direct = (pred - truth).pow(2).sum(-1)[:, labelled].mean()
    assert b["mse_px2"] == pytest.approx(float(direct), rel=1e-12)
    parts = b["noise_var_px2"] + b["offset_px2"] + b["phase_px2"] + b["per_face_px2"]
    assert parts == pytest.approx(b["mse_px2"], rel=1e-12)
    assert b["sum_px2"] == pytest.approx(b["mse_px2"], rel=1e-12)


def test_the_budget_finds_each_part_where_it_was_put():
    # Many draws and faces: each estimate near the value the construction put in (per keypoint, x + y).
    pred, truth, visible, fraction = random_case(R=64, N=3000, K=2, seed=7)
    b = budget.error_budget(pred, truth, visible, fraction, bins=16)
    assert b["noise_var_px2"] == pytest.approx(2 * 0.2**2, rel=0.03)
    assert b["offset_px2"] == pytest.approx(0.1**2 + 0.2**2, rel=0.1)
    # The mean of sin^2 is 1/2, less by the bins' averaging: sinc(1/16)^2 = 0.987.
    assert b["phase_px2"] == pytest.approx(2 * 0.3**2 / 2 * 0.987, rel=0.1)
    assert b["per_face_px2"] == pytest.approx(2 * 0.3**2, rel=0.05)


def test_a_noiseless_unbiased_predictor_has_an_empty_budget():
    truth = torch.rand(10, 2, 2, dtype=torch.float64)
    pred = truth.expand(3, -1, -1, -1)
    b = budget.error_budget(pred, truth, torch.ones(10, 2), torch.rand(10, 2, 2), bins=4)
    assert b["sum_px2"] == pytest.approx(0.0, abs=1e-20)


def test_the_budget_refuses_one_draw():
    with pytest.raises(ValueError, match="at least 2 noise draws"):
        budget.error_budget(
            torch.zeros(1, 2, 1, 2), torch.zeros(2, 1, 2), torch.ones(2, 1), torch.zeros(2, 1, 2)
        )


def test_displacement_slope_reads_a_follower_a_statue_and_a_half_follower():
    shifts = [0.0, 4.0, 8.0, 12.0]
    base = torch.rand(1, 20, 3, 2, dtype=torch.float64) * 50
    t = torch.tensor(shifts, dtype=torch.float64)[:, None, None, None]
    visible = torch.ones(20, 3)
    follower = budget.displacement_slope(base + t, shifts, visible)
    assert follower["slope"] == pytest.approx(1.0) and follower["wobble_px"] == pytest.approx(0.0, abs=1e-12)
    statue = budget.displacement_slope(base.expand(4, -1, -1, -1), shifts, visible)
    assert statue["slope"] == pytest.approx(0.0, abs=1e-12)
    assert budget.displacement_slope(base + 0.5 * t, shifts, visible)["slope"] == pytest.approx(0.5)


def test_kl_of_the_expected_target_to_itself_is_zero_and_positive_elsewhere():
    from h3r_theory import codecs

    codec = codecs.build("randomized_rounding", input_size=(32, 32), heatmap_size=(8, 8))
    kp = torch.tensor([[[10.3, 17.8], [3.2, 25.1]]])
    enc = codec.expected(kp)
    assert budget.kl_to_expected(enc.heatmaps, enc.heatmaps, enc.weights) == pytest.approx(0.0, abs=1e-12)
    uniform = torch.full_like(enc.heatmaps, 1 / 64)
    assert budget.kl_to_expected(uniform, enc.heatmaps, enc.weights) > 1.0


def test_noise_draws_are_the_clean_render_plus_gaussian_noise_of_the_set_sd():
    from trainers.data.synthetic import SyntheticLandmarks

    ds = SyntheticLandmarks(4, (32, 32), 4, seed=0, split="test", noise=0.05, noise_distribution="gaussian")
    a, b = budget.noise_draws(ds, [0, 1], 2, seed=0)
    again = budget.noise_draws(ds, [0, 1], 2, seed=0)
    assert torch.equal(a, again[0]) and not torch.equal(a, b)
    inner = (a > 0.01) & (a < 0.99) & (b > 0.01) & (b < 0.99)
    assert float((a - b)[inner].std()) == pytest.approx(0.05 * math.sqrt(2), rel=0.1)


# -- the designs ----------------------------------------------------------------------------------------


def test_the_plain_study_net_is_the_tiny_net():
    from trainers.models.tiny import TinyNet

    torch.manual_seed(3)
    a = TinyNet(4, output_stride=8)
    torch.manual_seed(3)
    b = variants.build_model(variants.Variant(name="x"), 4, 8)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)
    x = torch.rand(2, 3, 32, 32)
    a.eval(), b.eval()
    assert torch.equal(a(x), b(x))


def test_learned_fusion_and_the_offset_head_keep_the_backbone_and_give_their_shapes():
    torch.manual_seed(0)
    plain = variants.build_model(variants.Variant(name="x"), 5, 16)
    torch.manual_seed(0)
    offset = variants.build_model(variants.Variant(name="o", loss="offset", fusion="learned"), 5, 16)
    for k, v in plain.state_dict().items():
        if not k.startswith("head."):
            assert torch.equal(v, offset.state_dict()[k]), k
    assert offset(torch.rand(2, 3, 64, 64)).shape == (2, 5, 3, 4, 4)
    assert len(offset.down) == 2  # stride-4 and stride-8 taps are brought down to 16


def test_a_wide_readout_keeps_the_backbone_and_widens_only_the_fusion_conv_and_head():
    torch.manual_seed(0)
    plain = variants.build_model(variants.Variant(name="x"), 5, 16)
    torch.manual_seed(0)
    wide = variants.build_model(variants.Variant(name="w", head_width=96), 5, 16)
    for k, v in plain.state_dict().items():
        if k.startswith(("stem.", "stages.", "laterals.")):
            assert torch.equal(v, wide.state_dict()[k]), k
    assert wide.fuse[0].out_channels == 96 and wide.head.conv.in_channels == 96
    assert wide(torch.rand(2, 3, 64, 64)).shape == (2, 5, 4, 4)


def test_a_design_runs_only_at_its_own_strides(tmp_path):
    study = tiny_study(
        tmp_path, variants=[{"name": "coarse", "options": {"target": "expected"}, "strides": [16]}]
    )
    ready, _ = runner.jobs(study, {})
    assert {j["stride"] for j in ready} == {16}
    assert runner.total_steps(study) == 3 * 3  # one stride, budget 3, two rates on seed 0 + one other seed


def test_the_offset_decoder_reads_its_own_target_exactly():
    from h3r_theory import codecs

    codec = codecs.build("randomized_rounding", input_size=(64, 64), heatmap_size=(8, 8))
    g = torch.Generator().manual_seed(0)
    kp = torch.rand(3, 4, 2, generator=g, dtype=torch.float64) * 36 + 14  # interior: 9 cells on the map
    uv = codec.to_heatmap(kp)
    cells, offsets, unique = variants.offset_targets(uv, codec.heatmap_size)
    output = torch.zeros(3, 4, 3, 8, 8, dtype=torch.float64)
    nearest = uv.round().clamp(0, 7).long()
    flat = nearest[..., 1] * 8 + nearest[..., 0]
    output[:, :, 0].flatten(-2).scatter_(-1, flat[..., None], 5.0)
    for c in (1, 2):  # the offsets at every trained cell
        output[:, :, c].flatten(-2).scatter_(-1, cells, offsets[..., c - 1])
    assert torch.allclose(variants.offset_decode(output, codec), kp, atol=1e-12)
    assert unique.all()  # interior keypoints: 9 distinct cells


def test_the_window_coordinate_loss_is_differentiable_and_in_pixels():
    v = variants.Variant(name="w", options={"target": "expected"}, loss="codec+window")
    codec = variants.build_codec(v, (64, 64), 16)
    kp = torch.tensor([[[20.0, 30.0]]])
    enc = codec.encode(kp)
    logits = torch.zeros(1, 1, 4, 4, requires_grad=True)
    value = variants.loss(v, codec, logits, enc)
    value.backward()
    assert logits.grad.abs().sum() > 0
    plain = variants.loss(variants.Variant(name="p", options={"target": "expected"}), codec, logits, enc)
    decoded = codec.decode(logits.detach())[0]
    assert float((value - plain).detach()) == pytest.approx(float((decoded - kp).abs().sum()), rel=1e-6)


@pytest.mark.parametrize("bad, message", [
    ({"loss": "codec+windw"}, "loss must be one of"),
    ({"fusion": "maxpool"}, "fusion must be one of"),
    ({"codec": "argmax", "loss": "offset"}, "built on the randomized_rounding codec"),
    ({"coordinate_weight": float("nan")}, "coordinate_weight"),
    ({"widht": 8}, "unknown key"),
    ({"frozen_features": 4}, "needs donor_lr"),
    ({"frozen_features": 3, "donor_lr": 0.01}, "frozen_features must be 0"),
    ({"donor_lr": 0.01}, "only used with frozen_features"),
    ({"head_width": -1}, "head_width must be an int"),
    ({"strides": [4, "16"]}, "strides must be a list of ints"),
    ({"budgets": [0]}, "budgets must be a list of ints"),
    ({"donor_steps": 10}, "donor_steps is only used with frozen_features"),
    ({"frozen_features": 4, "donor_lr": 0.01, "donor_steps": -1}, "donor_steps must be an int"),
])  # fmt: skip
def test_a_bad_variant_is_refused_naming_the_key(bad, message):
    with pytest.raises(ValueError, match=message):
        variants.variant_from_dict({"name": "v", **bad}, "variants[0]")


# -- the study loop and the runner ----------------------------------------------------------------------


def test_the_study_loop_trains_the_engines_parameters_bit_for_bit(tmp_path):
    study = tiny_study(tmp_path)
    config = runner.run_config(study, 8, 4, 1.2e-2, 1)
    train_set, _, test_set, _ = runner.datasets(config, 8)
    v = variants.Variant(name="rr", options={"target": "expected"})
    codec = variants.build_codec(v, (32, 32), 8)
    engine.seed_everything(1)
    ours = variants.build_model(v, 4, 8)
    runner.train_steps(ours, v, codec, config, train_set)
    config.codec.name, config.codec.options = "randomized_rounding", {"target": "expected"}
    config.train.out_dir, config.train.progress = str(tmp_path / "engine"), False
    engine.seed_everything(1)
    theirs = variants.build_model(v, 4, 8)
    engine.train(config, model=theirs, train_set=train_set, eval_set=test_set)
    for (k, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_workers_give_the_serial_numbers_and_a_study_resumes_run_by_run(tmp_path):
    study = tiny_study(tmp_path, seeds=[0], strides=[4], variants=[TINY["variants"][1]])
    serial = runner.run_studies([study], workers=0, log=lambda m: None)
    assert len(serial) == 2  # two learning rates for the selection seed
    other = tiny_study(
        tmp_path, seeds=[0], strides=[4], variants=[TINY["variants"][1]], out_dir=str(tmp_path / "p")
    )
    parallel = runner.run_studies([other], workers=2, log=lambda m: None)
    for key, record in serial.items():
        for field in (
            "mean_error_px",
            "budget",
            "displacement",
            "kl_nats",
            "val_mean_error_px",
            "final_loss",
        ):
            assert record[field] == parallel[key][field], (key, field)
    # A finished run is read back, not run again; a deleted one is run again.
    (tmp_path / "p" / "runs" / f"{next(iter(serial))}.json").unlink()
    lines = []
    again = runner.run_studies([other], workers=0, log=lines.append)
    assert len([m for m in lines if m.startswith("run ")]) == 1
    assert again.keys() == serial.keys()


def test_other_seeds_take_the_learning_rate_chosen_on_validation(tmp_path):
    study = tiny_study(tmp_path, strides=[4], variants=[TINY["variants"][0]])
    records = runner.run_studies([study], workers=0, log=lambda m: None)
    chosen = runner.chosen_lr(study, records, "rr_expected", 4, 3)
    val = {r["job"]["lr"]: r["val_mean_error_px"] for r in records.values() if r["job"]["seed"] == 0}
    assert chosen == min(val, key=val.get)
    assert [r["job"]["lr"] for r in records.values() if r["job"]["seed"] == 1] == [chosen]


def test_a_torn_record_is_run_again_and_a_renamed_design_is_refused(tmp_path):
    study = tiny_study(tmp_path, seeds=[0], strides=[4], lrs=[1e-2], variants=[TINY["variants"][0]])
    runner.run_studies([study], workers=0, log=lambda m: None)
    path = next((tmp_path / "study" / "runs").glob("*.json"))
    path.write_text(path.read_text()[:40])
    assert runner.read_records(tmp_path / "study") == {}
    runner.run_studies([study], workers=0, log=lambda m: None)
    assert json.loads(path.read_text())["job"]["variant"] == "rr_expected"
    changed = tiny_study(tmp_path, seeds=[0], strides=[4], lrs=[1e-2],
                         variants=[{"name": "rr_expected", "loss": "integral"}])  # fmt: skip
    with pytest.raises(ValueError, match="another design under the name"):
        runner.jobs(changed, runner.read_records(tmp_path / "study"))


@pytest.mark.parametrize("change, message", [
    ({"budgets": []}, "budgets must be a non-empty list"),
    ({"selection_seed": 5}, "selection_seed 5 is not in seeds"),
    ({"noise_draws": 1}, "noise_draws must be an int >= 2"),
    ({"strdes": [4]}, "unknown key"),
    ({"followups": [{"name": "f", "from": ["nope"], "change": {}}]}, "unknown: \\['nope'\\]"),
    ({"variants": [{"name": "v", "budgets": [30]}]}, "budgets \\[30\\] not in the study's budgets"),
    ({"variants": [{"name": "v", "strides": [8]}]}, "strides \\[8\\] not in the study's strides"),
])  # fmt: skip
def test_a_bad_study_is_refused_naming_the_key(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        tiny_study(tmp_path, **change)


def test_the_cli_exits_2_with_one_line_on_a_typo(capsys):
    from trainers.sweep import main

    assert main(["--study", "convergence", "budgets=[0]"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "budgets" in err[0]
    assert main(["--study", "no_such_study", "--dry-run"]) == 2


def test_the_record_counts_the_chosen_rate_only_and_pairs_by_seed(tmp_path):
    from trainers.studies import report

    study = tiny_study(tmp_path, variants=[TINY["variants"][0]], record_dir=str(tmp_path / "record"))
    records = runner.run_studies([study], workers=0, log=lambda m: None)
    runs = report.counted_runs(study, records)
    assert len(runs) == 2 * 2  # 2 strides x 2 seeds, one rate each
    for (name, stride, steps, _seed), r in runs.items():
        assert r["job"]["lr"] == runner.chosen_lr(study, records, name, stride, steps)
    ratio = report.paired(runs, ("rr_expected", 16, 3), ("rr_expected", 4, 3), ratio=True)
    expected = [runs[("rr_expected", 16, 3, s)]["mean_error_px"] / runs[("rr_expected", 4, 3, s)]["mean_error_px"]
                for s in (0, 1)]  # fmt: skip
    assert ratio["per_seed"] == pytest.approx(expected) and ratio["mean"] == pytest.approx(sum(expected) / 2)
    paths = report.write_record(study)
    record = json.loads(paths["json"].read_text())
    assert record["runs_finished"] == 6 and record["runs_in_grid"] == 6  # 4 counted + the other rate's 2
    text = paths["md"].read_text()
    assert "Stride 16 / stride 4 error ratio" in text and f"{ratio['mean']:.3f}" in text
    assert paths["representation"].stat().st_size > 0  # one budget: the designs' figure
    # The KL law: per seed, the RMS ratio in px is the stride ratio x the law's ratio x sqrt(the KL ratio).
    (law,) = record["kl_law"]
    for i, s in enumerate(law["law_ratio"]["seeds"]):
        coarse, fine = runs[("rr_expected", 16, 3, s)], runs[("rr_expected", 4, 3, s)]
        px = coarse["rms_error_px"] / fine["rms_error_px"]
        assert px == pytest.approx(
            4 * law["law_ratio"]["per_seed"][i] * law["kl_ratio"]["per_seed"][i] ** 0.5
        )
    assert "against the KL to the expected target" in text and f"{law['law_ratio']['mean']:.3f}" in text


def test_the_cpu_estimate_weights_each_design_by_its_width():
    """A width-16 grid costs its steps at seconds_per_step; a followup at width 32 adds (32 / 16) ** 1.7 of
    one design's cost (the measured 3.2-3.4x per step), one at width 8 adds 0.31 of it."""
    study = runner.load_study("representation")
    plain = dataclasses.replace(study, followups=[])
    per_design = runner.total_steps(plain) * plain.seconds_per_step / len(plain.variants)
    assert runner.cpu_seconds(plain) == pytest.approx(per_design * len(plain.variants))
    widths = [f["change"].get("width", 16) for f in study.followups]
    assert sorted(widths) == [8, 16, 32]
    expected = per_design * (len(plain.variants) + 1 + 2**1.7 + 2**-1.7)
    assert runner.cpu_seconds(study) == pytest.approx(expected)
    assert runner.width_cost(32) == pytest.approx(3.249, abs=1e-3)


# -- the frozen-feature probe -----------------------------------------------------------------------------


def test_a_probe_reads_its_donors_features_unchanged_and_trains_only_the_readout(tmp_path):
    probe = {"name": "frozen", "options": {"target": "expected"}, "frozen_features": 4, "donor_lr": 1.2e-2}
    study = tiny_study(tmp_path, strides=[4, 16], lrs=[1.2e-2], variants=[TINY["variants"][0], probe])
    records = runner.run_studies([study], workers=0, log=lambda m: None)
    from trainers.studies import report

    record = report.build_record(study, records, "test")
    rows = {p["stride"]: p for p in record["against_fine"]}
    for seed, check in enumerate(rows[16]["donors"]):
        assert check["recorded"] == f"rr_expected_s4_n3_seed{seed}_lr0.012"
        assert check["donor_val_px"] == check["recorded_val_px"]
    left = rows[16]["excess_left"]["per_seed"]
    for seed, share in enumerate(left):
        err = {(v, st): records[f"{v}_s{st}_n3_seed{seed}_lr0.012"]["mean_error_px"]
               for v in ("rr_expected", "frozen") for st in (4, 16)}  # fmt: skip
        want = (err["frozen", 16] - err["rr_expected", 4]) / (err["rr_expected", 16] - err["rr_expected", 4])
        assert share == pytest.approx(want, rel=1e-12)
        ratio = rows[16]["ratio_to_fine"]["per_seed"][seed]
        assert ratio == pytest.approx(err["frozen", 16] / err["rr_expected", 4], rel=1e-12)
    assert "excess_left" not in rows[4] and len(rows[4]["donors"]) == 2
    assert any("reproduce the recorded runs in 2 of 2 seeds" in v for v in record["verdicts"])
    assert "kept fixed" in report.markdown(record)
    # The donor is the plain design's own run at stride 4 (same seed, budget, rate): bit for bit.
    plain = records["rr_expected_s4_n3_seed0_lr0.012"]
    for stride in (4, 16):
        donor = records[f"frozen_s{stride}_n3_seed0_lr0.012"]["donor"]
        assert donor["val_mean_error_px"] == plain["val_mean_error_px"]
    saved = torch.load(next((tmp_path / "study" / "donors").glob("*.pt")), weights_only=True)["state"]
    v = variants.Variant(**records["frozen_s16_n3_seed0_lr0.012"]["job"]["spec"])
    config = runner.run_config(study, 16, 3, 1.2e-2, 0)
    train_set = runner.datasets(config, 8)[0]
    codec = variants.build_codec(v, (32, 32), 16)
    engine.seed_everything(0)
    model = variants.build_model(v, 4, 16)
    model.freeze_features(saved)
    fresh_head = {k: t.clone() for k, t in model.state_dict().items() if k.startswith("head.")}
    runner.train_steps(model, v, codec, config, train_set)
    state = model.state_dict()
    for k, t in state.items():
        if k.startswith(("stem.", "stages.")):  # weights and BatchNorm running statistics
            assert torch.equal(t, saved[k]), k
    assert not all(torch.equal(state[k], t) for k, t in fresh_head.items())  # the readout did train
    assert not model.stem.training and model.head.training


def test_a_longer_readout_on_a_shorter_donor_is_held_against_the_donors_budget(tmp_path):
    """``donor_steps`` keeps the donor at its own budget while the readout trains longer; ``budgets`` keeps
    the reference at the budget it is needed at. The probe's run at the donor's budget is the same network
    as a probe without ``donor_steps`` (bit for bit), and every share is against the donor's budget."""
    from trainers.studies import report

    ref = {"name": "rr_expected", "options": {"target": "expected"}, "budgets": [3]}
    probe = {"name": "long", "options": {"target": "expected"}, "frozen_features": 4, "donor_lr": 1.2e-2,
             "donor_steps": 3, "strides": [16]}  # fmt: skip
    plain_probe = {"name": "short", "options": {"target": "expected"}, "frozen_features": 4,
                   "donor_lr": 1.2e-2, "strides": [16], "budgets": [3]}  # fmt: skip
    study = tiny_study(tmp_path, budgets=[3, 6], lrs=[1.2e-2], variants=[ref, probe, plain_probe])
    ready, _ = runner.jobs(study, {})
    assert sorted((j["variant"], j["stride"], j["steps"]) for j in ready if j["seed"] == 0) == [
        ("long", 16, 3), ("long", 16, 6), ("rr_expected", 4, 3), ("rr_expected", 16, 3), ("short", 16, 3)]  # fmt: skip
    # One rate, two seeds: rr_expected 3 steps at 2 strides, long 3 + 6, short 3; donors 3 per probe and seed.
    assert runner.total_steps(study) == 2 * (2 * 3 + (3 + 6) + 3) + 2 * 2 * 3
    records = runner.run_studies([study], workers=0, log=lambda m: None)
    assert len(list((tmp_path / "study" / "donors").glob("*.pt"))) == 2  # one donor per seed, shared
    for seed in (0, 1):
        long3, short3 = (records[f"{v}_s16_n3_seed{seed}_lr0.012"] for v in ("long", "short"))
        assert long3["mean_error_px"] == short3["mean_error_px"]
        assert records[f"long_s16_n6_seed{seed}_lr0.012"]["donor"] == long3["donor"]
    record = report.build_record(study, records, "test")
    rows = {(p["variant"], p["steps"]): p for p in record["against_fine"] if "excess_left" in p}
    assert rows[("long", 6)]["reference_steps"] == 3
    for seed in (0, 1):
        err = lambda key: records[key]["mean_error_px"]  # noqa: E731
        fine, coarse = (
            err(f"rr_expected_s4_n3_seed{seed}_lr0.012"),
            err(f"rr_expected_s16_n3_seed{seed}_lr0.012"),
        )
        want = (err(f"long_s16_n6_seed{seed}_lr0.012") - fine) / (coarse - fine)
        assert rows[("long", 6)]["excess_left"]["per_seed"][seed] == pytest.approx(want, rel=1e-12)
    (longer,) = [f for f in record["longer"] if f["variant"] == "long"]
    assert (longer["steps"], longer["from"]) == (6, 3)
    assert longer["per_seed"] == pytest.approx([
        records[f"long_s16_n6_seed{s}_lr0.012"]["mean_error_px"] - records[f"long_s16_n3_seed{s}_lr0.012"]["mean_error_px"]
        for s in (0, 1)])  # fmt: skip
    text = report.markdown(record)
    assert "6 (rr_expected at 3)" in text and "Longer training" in text
    assert any("trained 6 steps minus 3" in v for v in record["verdicts"])
    # Where a design runs is not what it is: a run recorded without ``budgets`` is read back.
    assert variants.same_design(variants.Variant(name="a", budgets=(3,)), variants.Variant(name="a"))
    assert not variants.same_design(variants.Variant(name="a", width=8), variants.Variant(name="a"))
