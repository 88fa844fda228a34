"""Issue 13, part B: a run loses nothing and says what is wrong, whatever the user (or the machine) does.

Exact resume with DataLoader workers; every option checked before the first step; the final checkpoint
before the final evaluation; protected, locked output folders; one line and a fixed exit status for every
user error; Ctrl-C, a full disk, a torn log line and orphaned temp files; thread count and torch version
recorded. Each test uses a tiny config (seconds on CPU).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from trainers import checkpoint as ckpt
from trainers import cli, engine, run_folder
from trainers.config import load_config
from trainers.data.dataset import LandmarkDataset, sample_seed
from trainers.data.synthetic import SyntheticLandmarks

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "data.input_size=[32, 32]",
    "data.options={num_train: 48, num_eval: 8, num_keypoints: 6}",
    "train.batch_size=8",
    "train.max_steps=4",
    "train.log_every=1",
    "train.progress=false",
    "train.device=cpu",
]


def tiny(out_dir: Path, *overrides: str):
    return load_config("synthetic", [*TINY, f"train.out_dir={out_dir}", *overrides])


def params(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- 1. exact resume with DataLoader workers ---------------------------------------------------------------


def _real_faces(train: bool) -> LandmarkDataset:
    from conftest import real_samples_dir

    from trainers.data.coco import load_coco_keypoints
    from trainers.data.flip_pairs import flip_pairs_for

    folder = real_samples_dir("mmpose/wflw")
    records = load_coco_keypoints(folder / "test_wflw.json", folder, "wflw")
    return LandmarkDataset(records, input_size=(32, 32), train=train, flip_pairs=flip_pairs_for("wflw", 98))


def _stop_and_resume(tmp_path, train_set, eval_set, *overrides):
    """(uninterrupted, uninterrupted with 0 workers, stopped after step 3 then resumed) parameters."""
    common = ["train.batch_size=2", "train.max_steps=6", "train.checkpoint_every=3", *overrides]
    run = lambda name, *extra, **kw: engine.train(
        tiny(tmp_path / name, *common, *extra), train_set=train_set, eval_set=eval_set, **kw
    )
    full = params(run("full", "data.num_workers=2").model)
    no_workers = params(run("no_workers", "data.num_workers=0").model)
    run("resumed", "data.num_workers=2", stop_after_steps=3)
    resumed = params(run("resumed", "data.num_workers=2", "train.resume=auto").model)
    return full, no_workers, resumed


@pytest.mark.real_samples
def test_resume_with_workers_is_exact_on_real_images(tmp_path, monkeypatch):
    """Real WFLW faces (4 faces, 2 steps per epoch: the resume at step 3 lands mid-epoch 1) with random
    crops, rotations, flips and colour, loaded by 2 workers: stop-and-resume == uninterrupted == 0 workers,
    bit for bit. Teeth: with the per-sample seeding switched off (augmentation from each worker's own
    RNG, as before issue 13) the resumed run differs."""
    train_set, eval_set = _real_faces(train=True), _real_faces(train=False)
    full, no_workers, resumed = _stop_and_resume(tmp_path / "seeded", train_set, eval_set)
    assert same(full, resumed) and same(full, no_workers)

    monkeypatch.setattr(LandmarkDataset, "set_augmentation_seed", lambda self, seed: None)
    train_set = _real_faces(train=True)  # augmentation_seed None: items draw from the worker's global RNG
    full, _, resumed = _stop_and_resume(tmp_path / "unseeded", train_set, eval_set)
    assert not same(full, resumed)


def test_resume_with_workers_is_exact_on_synthetic(tmp_path):
    """The synthetic set renders whole batches itself (items pure in (seed, split, index)): workers or not,
    stop-and-resume gives the uninterrupted parameters."""
    config = tiny(tmp_path / "probe")
    train_set = SyntheticLandmarks(24, num_keypoints=6, image_size=(32, 32), seed=0, split="train")
    eval_set = SyntheticLandmarks(8, num_keypoints=6, image_size=(32, 32), seed=0, split="test")
    assert config.data.name == "synthetic"
    full, no_workers, resumed = _stop_and_resume(tmp_path, train_set, eval_set)
    assert same(full, resumed) and same(full, no_workers)


@pytest.mark.real_samples
def test_augmentation_is_a_pure_function_of_seed_and_index():
    """Item i under one augmentation seed is the same whatever was loaded before it; the next epoch's seed
    gives another augmentation."""
    data = _real_faces(train=True)
    data.set_augmentation_seed(11)
    first = data[1]
    for i in (0, 2, 3):
        data[i]
    again = data[1]
    assert torch.equal(first["image"], again["image"]) and torch.equal(first["matrix"], again["matrix"])
    data.set_augmentation_seed(12)
    assert not torch.equal(first["matrix"], data[1]["matrix"])


# -- 2. everything validated before the first step; the model saved before the final evaluation ----------


@pytest.mark.parametrize(
    "override, key",
    [
        ("codec.options.sigmaa=2", "codec.options.sigmaa"),
        ("data.options.num_keypoint=6", "data.options.num_keypoint"),
        ("eval.decode.bogus=1", "eval.decode.bogus"),
        ("eval.decode.method=nope", "eval.decode"),
    ],
)
def test_bad_options_fail_before_anything_is_written(tmp_path, override, key):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        engine.train(tiny(out, override))
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == []


def test_final_checkpoint_is_written_before_the_final_evaluation(tmp_path, monkeypatch):
    def broken_evaluation(*args, **kwargs):
        raise RuntimeError("evaluation failed")

    monkeypatch.setattr(engine, "evaluate", broken_evaluation)
    with pytest.raises(RuntimeError, match="evaluation failed"):
        engine.train(tiny(tmp_path / "run", "train.checkpoint_every=0"))
    assert ckpt.load(tmp_path / "run" / "last.pt")["step"] == 4
    monkeypatch.undo()
    # resuming the finished run evaluates it (the evaluation it never logged), without training further
    again = engine.train(tiny(tmp_path / "run", "train.checkpoint_every=0", "train.resume=auto"))
    assert again.steps == 4 and "nme" in again.final


# -- 3. output folders ---------------------------------------------------------------------------------------


def test_a_finished_run_is_not_overwritten_without_the_flag(tmp_path):
    out = tmp_path / "run"
    engine.train(tiny(out))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ValueError, match="already holds a run.*--overwrite"):
        engine.train(tiny(out, "optim.lr=0.1"))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # not even config.json touched
    result = engine.train(tiny(out, "optim.lr=0.1"), overwrite=True)
    assert json.loads((out / "config.json").read_text())["optim"]["lr"] == 0.1 and result.steps == 4
    assert not (out / ".lock").exists()


def test_a_folder_in_use_is_refused_at_once_and_a_stale_lock_taken_over(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text(f"{os.getpid()} {os.uname().nodename}\n")  # a live owner: this process
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=f"in use by another run \\(pid {os.getpid()}"):
        engine.train(tiny(out))
    assert time.perf_counter() - t0 < 30  # refused before any data or model is built
    assert sorted(p.name for p in out.iterdir()) == [".lock"]
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid is now free: a run killed with kill -9 leaves such a lock
    (out / ".lock").write_text(f"{gone.pid} {os.uname().nodename}\n")
    engine.train(tiny(out))
    assert (
        f"taking over the lock of a run that is no longer running (pid {gone.pid})" in capsys.readouterr().err
    )
    assert not (out / ".lock").exists() and (out / "last.pt").is_file()


def _interruptible(cmd: list[str]) -> subprocess.Popen:
    """``cmd`` started in the repository, its output piped, Ctrl-C (SIGINT) reaching it as in a terminal.

    A background process inherits SIGINT ignored from some shells: the child restores the default.
    """
    return subprocess.Popen(
        cmd,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def test_two_runs_at_once_in_one_folder(tmp_path):
    """Two h3r-train processes into one folder: the second fails at once with one line (exit 2) while the
    first keeps running alone (stopped here by Ctrl-C); its log holds one history."""
    out = tmp_path / "run"
    args = [*TINY, "train.max_steps=100000", f"train.out_dir={out}"]
    cmd = [sys.executable, "-m", "trainers.cli", "train", "synthetic"]
    first = _interruptible([*cmd, *args])
    deadline = time.time() + 120
    while not (out / "config.json").exists() and time.time() < deadline and first.poll() is None:
        time.sleep(0.05)
    second = subprocess.run([*cmd, *args, "train.resume=auto"], cwd=REPO, capture_output=True, text=True)
    assert first.poll() is None  # still training while the second was refused
    first.send_signal(signal.SIGINT)
    _, first_err = first.communicate(timeout=120)
    assert first.returncode == 130, first_err
    assert second.returncode == 2 and "in use by another run" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    records = list(map(json.loads, (out / "metrics.jsonl").read_text().splitlines()))
    steps = [r["step"] for r in records if r["kind"] == "train"]
    assert steps == list(range(1, len(steps) + 1))


def test_resume_refuses_other_settings_and_names_them(tmp_path):
    out = tmp_path / "run"
    engine.train(tiny(out, "train.checkpoint_every=2"), stop_after_steps=2)
    with pytest.raises(ValueError, match=r"optim\.lr: 0\.003 -> 0\.01.*train\.batch_size: 8 -> 4"):
        engine.train(tiny(out, "train.batch_size=4", "optim.lr=0.01", "train.resume=auto"))
    with pytest.raises(ValueError, match=r"codec\.name"):
        engine.train(tiny(out, "codec.name=gaussian", "train.resume=auto"))
    # settings that do not change the trained parameters may change
    result = engine.train(tiny(out, "train.resume=auto", "train.log_every=2", "eval.batch_size=4"))
    assert result.steps == 4


def test_orphaned_temp_files_are_removed_and_a_torn_log_line_does_not_block_resume(tmp_path, capsys):
    out = tmp_path / "run"
    full = engine.train(tiny(tmp_path / "full", "train.checkpoint_every=2"))
    engine.train(tiny(out, "train.checkpoint_every=2"), stop_after_steps=3)
    (out / ".last.pt.4242-0badcafe.h3r.tmp").write_bytes(b"PK\x03\x04 half")  # a kill mid-checkpoint
    with (out / "metrics.jsonl").open("a") as f:
        f.write('{"kind": "train", "step": 4, "epo')  # a kill during a log write
    resumed = engine.train(tiny(out, "train.checkpoint_every=2", "train.resume=auto"))
    assert "removed 1 temporary file(s)" in capsys.readouterr().err
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))
    assert same(params(full.model), params(resumed.model))
    assert full.history == resumed.history


class Payload:
    """An object a checkpoint must not hold (unpickling it means importing and running code)."""


# -- 4. the command line -------------------------------------------------------------------------------------


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    "override, message",
    [
        ("codec.options.sigmaa=2", "unknown option codec.options.sigmaa"),
        ("data.options.num_keypoint=6", "unknown option data.options.num_keypoint"),
        ("eval.decode.bogus=1", "unknown option eval.decode.bogus"),
        ("model.output_stride=0", "model.output_stride must be >= 1"),
        ("train.device=tpu", "train.device must be"),
        ("train.out_dir=/proc/h3r_no_such_place", "cannot use the output folder"),
        ("train.out_dir={tmp}/a_file", "is a file, not a folder"),
        ("train.out_dir={tmp}/a_file/run", "a parent of it is a file"),
    ],
)
def test_user_errors_get_one_line_and_exit_2(tmp_path, capsys, override, message):
    (tmp_path / "a_file").write_text("not a folder")
    override = override.format(tmp=tmp_path)
    assert cli.train_main(["synthetic", *TINY, f"train.out_dir={tmp_path / 'run'}", override]) == 2
    assert message in _one_line(capsys)


def test_checkpoint_errors_get_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.train_main(["synthetic", *TINY, f"train.out_dir={run}"]) == 0
    capsys.readouterr()
    evaluate = lambda path, *extra: cli.eval_main(["synthetic", *TINY, *extra, "--checkpoint", str(path)])
    state = ckpt.load(run / "last.pt")
    cases = {}
    wrong_shape = dict(state, model={k: v[..., :1] if v.dim() else v for k, v in state["model"].items()})
    cases["shapes differ"] = wrong_shape
    cases["missing"] = dict(state, model=dict(list(state["model"].items())[1:]))
    for message, bad in cases.items():
        torch.save(dict(bad, checksum=ckpt.contents_digest(bad)), tmp_path / "bad.pt")  # a sound file
        assert evaluate(tmp_path / "bad.pt") == 2
        line = _one_line(capsys)
        assert message in line and "does not fit this model" in line
    assert evaluate(tmp_path / "none.pt") == 2 and "checkpoint not found" in _one_line(capsys)
    assert evaluate(tmp_path) == 2 and "is a folder" in _one_line(capsys)
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    assert evaluate(tmp_path / "garbage.pt") == 2 and "cannot read checkpoint" in _one_line(capsys)
    # issue 24, point 5: a bit flipped inside a tensor unpickles fine; the checksum refuses it
    data = bytearray((run / "last.pt").read_bytes())
    weight = next(v for v in state["model"].values() if v.numel() >= 64).numpy().tobytes()
    data[data.find(weight) + 9] ^= 0x40
    (tmp_path / "rotted.pt").write_bytes(data)
    assert torch.load(tmp_path / "rotted.pt", weights_only=True)["step"] == state["step"]
    assert evaluate(tmp_path / "rotted.pt") == 2
    assert "rotted.pt is damaged: its contents do not match the checksum" in _one_line(capsys)

    # a pickle that would need code to load: refused, and nobody is told how to force it
    torch.save({"model": Payload()}, tmp_path / "evil.pt")
    assert evaluate(tmp_path / "evil.pt") == 2
    line = _one_line(capsys)
    assert "refused checkpoint" in line and "weights_only" not in line and "can still be loaded" not in line


def test_eval_takes_overrides_after_the_checkpoint_and_prints_before_writing(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.train_main(["synthetic", *TINY, f"train.out_dir={run}"]) == 0
    capsys.readouterr()
    # the documented form: h3r-eval CONFIG --checkpoint P key=value
    argv = ["synthetic", "--checkpoint", str(run / "last.pt"), *TINY, "eval.batch_size=3"]
    assert cli.eval_main(argv) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["num_samples"] == 8
    assert cli.eval_main([*argv, "--output", "/proc/h3r_no_such_place/metrics.json"]) == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out) == metrics  # the metrics were printed although the file was not written
    assert "cannot write --output" in captured.err
    # a bad decoder option is named in one line before the model is even built
    assert cli.eval_main([*argv, "eval.decode.bogus=1"]) == 2
    assert "eval.decode.bogus" in _one_line(capsys)


def test_full_disk_gets_one_line_and_keeps_the_last_checkpoint(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    args = ["synthetic", *TINY, "train.checkpoint_every=2", f"train.out_dir={run}"]
    real_save = ckpt.save_atomic

    def save_until_full(obj, path):
        if obj["step"] >= 4:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(obj, path)

    monkeypatch.setattr(ckpt, "save_atomic", save_until_full)
    assert cli.train_main(args) == 1
    line = _one_line(capsys)
    assert line.startswith("h3r-train: error: disk full writing") and "last.pt" in line
    assert ckpt.load(run / "last.pt")["step"] == 2
    monkeypatch.undo()
    assert cli.train_main([*args, "train.resume=auto"]) == 0


def test_ctrl_c_saves_the_last_step_and_exits_130(tmp_path):
    """SIGINT to a real h3r-train process: exit 130 with one line, after a checkpoint of the step it
    names; resuming then finishes the run."""
    out = tmp_path / "run"
    args = [*TINY, "train.max_steps=100000", "train.checkpoint_every=0", f"train.out_dir={out}"]
    cmd = [sys.executable, "-m", "trainers.cli", "train", "synthetic", *args]
    proc = _interruptible(cmd)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        log = out / "metrics.jsonl"
        if log.exists() and len(log.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    step = int(err.split("interrupted at step ")[1].split(";")[0])
    assert step >= 3 and ckpt.load(out / "last.pt")["step"] == step
    assert not (out / ".lock").exists()


def test_nan_loss_from_bad_data_is_not_blamed_on_the_learning_rate(tmp_path):
    train_set = SyntheticLandmarks(24, num_keypoints=6, image_size=(32, 32), seed=0, split="train")
    eval_set = SyntheticLandmarks(8, num_keypoints=6, image_size=(32, 32), seed=0, split="test")
    clean_batch = train_set.batch

    def poisoned(indices):
        batch = clean_batch(indices)
        batch["image"] = batch["image"].clone()
        batch["image"][0, 0, 0, 0] = float("nan")
        return batch

    train_set.batch = poisoned
    with pytest.raises(ValueError) as info:
        engine.train(tiny(tmp_path / "run"), train_set=train_set, eval_set=eval_set)
    message = str(info.value)
    assert "at step 1" in message and "inputs are not finite" in message and "bad data" in message
    assert "optim.lr" not in message
    # a clean batch with a learning rate that blows up: then the optimisation settings are named
    train_set.batch = clean_batch
    with pytest.raises(ValueError, match="inputs and targets are finite.*optim.lr"):
        engine.train(
            tiny(tmp_path / "lr", "optim.lr=1e30", "optim.warmup_steps=0", "train.max_steps=20"),
            train_set=train_set,
            eval_set=eval_set,
        )


def _poisoned_after(model, calls: int):
    """``model`` with an extra parameter that no output reads, set to NaN by its ``calls``-th forward pass:
    the loss stays finite, the parameters do not (as when one update overflows a weight the loss reaches
    only on the next pass)."""
    model.unused = torch.nn.Parameter(torch.zeros(3))
    count = {"n": 0}

    def hook(module, args):
        count["n"] += 1
        if count["n"] == calls:
            with torch.no_grad():
                module.unused[1] = float("nan")

    model.register_forward_pre_hook(hook)
    return model


def test_parameters_gone_nan_under_a_finite_loss_are_named_and_never_checkpointed(tmp_path):
    from trainers.build import build_network

    def run(name: str, calls: int, *overrides: str):
        config = tiny(tmp_path / name, "train.max_steps=40", *overrides)
        return engine.train(config, model=_poisoned_after(build_network(config, 6), calls))

    # Checked at each log step (every 10): NaN since the 13th forward pass, so between steps 10 and 20.
    with pytest.raises(ValueError) as info:
        run("log", 13, "train.log_every=10", "train.checkpoint_every=0")
    message = str(info.value)
    assert "not finite at step 20" in message and "finite at step 10" in message and "optim.lr" in message
    # Checked before each checkpoint (every 5 steps, no log step before 40): step 5's checkpoint is written,
    # step 10's refused, so last.pt stays the good one of step 5.
    with pytest.raises(
        ValueError, match=r"not finite at step 10 \(before a checkpoint, which was not written\)"
    ):
        run("ckpt", 7, "train.log_every=100", "train.checkpoint_every=5")
    state = ckpt.load(tmp_path / "ckpt" / "last.pt")
    assert state["step"] == 5
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


# -- 5. determinism stated ------------------------------------------------------------------------------------


def test_checkpoint_records_threads_and_torch_version_and_resume_notes_a_change(tmp_path, capsys):
    out = tmp_path / "run"
    engine.train(tiny(out, "train.checkpoint_every=2"), stop_after_steps=2)
    state = ckpt.load(out / "last.pt")
    assert state["threads"] == torch.get_num_threads() == 1 and state["torch_version"] == str(
        torch.__version__
    )
    capsys.readouterr()
    torch.set_num_threads(2)  # the one_thread fixture restores the count afterwards
    engine.train(tiny(out, "train.resume=auto"))
    assert "torch threads 1 -> 2" in capsys.readouterr().err


def test_sample_seed_is_a_pure_function_of_both_arguments():
    seeds = {sample_seed(s, i) for s in range(20) for i in range(50)}
    assert len(seeds) == 1000 and all(0 <= x < 2**63 for x in seeds)
    assert sample_seed(3, 7) == sample_seed(3, 7)


def test_config_differences_ignore_what_does_not_shape_the_parameters():
    a = load_config("synthetic", ["train.out_dir=/a"]).to_dict()
    b = load_config("synthetic", ["train.out_dir=/b", "eval.flip_test=true", "data.num_workers=3"]).to_dict()
    assert run_folder.config_differences(json.dumps(a), json.loads(json.dumps(b))) == []
    c = load_config("synthetic", ["optim.schedule=step"]).to_dict()
    assert run_folder.config_differences(json.dumps(a), json.loads(json.dumps(c))) == [
        'optim.schedule: "cosine" -> "step"'
    ]
