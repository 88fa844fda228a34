"""Issue 24: what a second hostile pass still broke in ``h3r-train``, one test per point.

A Ctrl-C landing mid-update or during an evaluation step's checkpoint (the log must stay the uninterrupted
run's), temp files that are not ours, ``train.resume=auto`` over a run without a checkpoint, links at the
names of the files a run writes, malformed checkpoint parts, and a finished checkpoint resumed elsewhere.
Tiny configs, seconds on CPU.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch

from h3r_theory import metrics
from trainers import checkpoint as ckpt
from trainers import cli, engine
from trainers.guards import TrainingInterrupted

pytestmark = pytest.mark.usefixtures("one_thread")

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
    from trainers.config import load_config

    return load_config("synthetic", [*TINY, f"train.out_dir={out_dir}", *overrides])


def same(a, b) -> bool:
    a, b = a.state_dict(), b.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


def _sigint_on_call(monkeypatch, owner, name: str, call: int) -> None:
    """Send this process a SIGINT from inside the ``call``-th call of ``owner.name``, as a Ctrl-C would."""
    real, calls = getattr(owner, name), []

    def wrapped(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            signal.raise_signal(signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapped)


# -- point 1: the log is bit-identical after a Ctrl-C anywhere ----------------------------------------------
@pytest.mark.parametrize(
    "where, overrides",
    [
        ("mid-update", ("train.checkpoint_every=0",)),  # SIGINT inside the 3rd optimizer update
        ("checkpoint at an eval step", ("train.checkpoint_every=2", "train.eval_every=2")),
    ],
)
def test_ctrl_c_loses_no_log_record(tmp_path, monkeypatch, where, overrides):
    full = engine.train(tiny(tmp_path / "full", *overrides))
    out = tmp_path / "run"
    if where == "mid-update":
        _sigint_on_call(monkeypatch, torch.amp.GradScaler, "update", 3)
    else:
        _sigint_on_call(monkeypatch, ckpt, "save_atomic", 1)  # the checkpoint of step 2, before its eval
    # A Ctrl-C reaches Python only where SIGINT is not ignored; a background job of a non-interactive shell
    # (`bash -c '... &'`) inherits it ignored, so the test sets the interpreter's own handler for the run.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(TrainingInterrupted) as info:
            engine.train(tiny(out, *overrides))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert info.value.step == (3 if where == "mid-update" else 2)
    monkeypatch.undo()
    resumed = engine.train(tiny(out, *overrides, "train.resume=auto"))
    assert same(full.model, resumed.model)
    assert resumed.history == full.history
    assert (out / "metrics.jsonl").read_bytes() == (tmp_path / "full" / "metrics.jsonl").read_bytes()


# -- point 2: only our own temp files are removed, and only by a run that is accepted -----------------------
def test_temp_files_that_are_not_ours_are_left_alone(tmp_path, capsys):
    refused = tmp_path / "u"
    refused.mkdir()
    (refused / ".thesis.tmp").write_text("precious\n")
    (refused / "last.pt").write_text("x\n")
    assert cli.train_main(["synthetic", *TINY, f"train.out_dir={refused}"]) == 2
    assert "already holds a run" in _one_line(capsys)
    assert (refused / ".thesis.tmp").read_text() == "precious\n"

    out = tmp_path / "run"
    out.mkdir()
    theirs = {
        ".thesis.tmp": b"precious",
        ".notes.h3r.tmp": b"precious",
        ".last.pt.12-abcdef12.h3r.tmp": b"precious, named like ours",  # not the start of a zip file
        ".mine.txt.12-abcdef12.h3r.tmp": b"",  # not a file a run writes
    }
    ours = {".last.pt.4242-0badcafe.h3r.tmp": b"PK\x03\x04half", ".config.json.7-00000000.h3r.tmp": b""}
    for name, data in {**theirs, **ours}.items():
        (out / name).write_bytes(data)
    assert cli.train_main(["synthetic", *TINY, f"train.out_dir={out}"]) == 0
    assert "removed 2 temporary file(s)" in capsys.readouterr().err
    assert {name: (out / name).read_bytes() for name in theirs} == theirs
    assert not any((out / name).exists() for name in ours)


# -- point 3: resume=auto with no checkpoint refuses a folder that holds a run ------------------------------
def test_resume_auto_without_a_checkpoint_does_not_replace_a_run(tmp_path, capsys):
    out = tmp_path / "run"
    engine.train(tiny(out, "train.checkpoint_every=0"), stop_after_steps=2)  # stopped before any checkpoint
    assert not (out / "last.pt").exists()
    before = {name: (out / name).read_bytes() for name in ("config.json", "metrics.jsonl")}
    assert cli.train_main(["synthetic", *TINY, f"train.out_dir={out}", "train.resume=auto"]) == 2
    line = _one_line(capsys)
    assert "already holds a run (config.json, metrics.jsonl; no last.pt to resume from)" in line
    assert {name: (out / name).read_bytes() for name in before} == before
    assert cli.train_main(["synthetic", *TINY, f"train.out_dir={tmp_path / 'new'}", "train.resume=auto"]) == 0


# -- point 8: files are replaced through a temp file and a rename, never written through a link --------------
def test_links_at_the_names_of_written_files_are_replaced_not_followed(tmp_path):
    out = tmp_path / "run"
    engine.train(tiny(out, "train.checkpoint_every=2"), stop_after_steps=2)
    victims = {}
    for name in ("curves.png", "config.json", "metrics.jsonl"):
        victim = tmp_path / f"victim_{name}"
        victim.write_bytes((out / name).read_bytes() if name == "metrics.jsonl" else b"precious")
        victims[victim] = victim.read_bytes()
        (out / name).unlink()
        (out / name).symlink_to(victim)
    engine.train(tiny(out, "train.checkpoint_every=2", "train.resume=auto"))
    assert {v: v.read_bytes() for v in victims} == victims
    for name in ("curves.png", "config.json", "metrics.jsonl"):
        assert not (out / name).is_symlink() and (out / name).stat().st_size > 0
    victim = tmp_path / "victim.json"
    victim.write_text("precious")
    (tmp_path / "coco_results.json").symlink_to(victim)
    metrics.write_coco_results(tmp_path / "coco_results.json", [1], torch.zeros(1, 2, 2), torch.ones(1))
    assert victim.read_text() == "precious" and not (tmp_path / "coco_results.json").is_symlink()


# -- point 12: every malformed part of a checkpoint is refused in one line ----------------------------------
def _resealed(state: dict) -> dict:
    """``state`` with a valid checksum: the damage is in the contents, not on the disk."""
    return dict(state, checksum=ckpt.contents_digest(state))


def test_malformed_checkpoint_parts_are_refused_with_one_line(tmp_path, capsys):
    source = tmp_path / "source"
    engine.train(tiny(source, "train.checkpoint_every=2"), stop_after_steps=2)
    state = ckpt.load(source / "last.pt")
    without = lambda key: {k: v for k, v in state.items() if k != key}  # noqa: E731
    cases = {
        "its 'rng' state is a str, not a mapping": dict(state, rng="bad"),
        "its 'rng' state is malformed": dict(state, rng={"python": 1}),
        "its 'optimizer' state is missing": without("optimizer"),
        "its 'optimizer' state is malformed": dict(state, optimizer={"state": {}, "param_groups": "x"}),
        "it holds no stored config": without("config"),
        "its step must be an integer >= 0, got -3": dict(state, step=-3),
        "its step must be an integer >= 0, got '2'": dict(state, step="2"),
    }
    for i, (message, bad) in enumerate(cases.items()):
        path = tmp_path / f"bad{i}.pt"
        torch.save(_resealed(bad), path)
        argv = ["synthetic", *TINY, f"train.out_dir={tmp_path / f'run{i}'}", f"train.resume={path}"]
        assert cli.train_main(argv) == 2, message
        line = _one_line(capsys)
        assert line.startswith(f"h3r-train: error: cannot resume from {path}: {message}"), line
        assert not (tmp_path / f"run{i}" / "config.json").exists()  # refused before anything was written


# -- point 13: a finished checkpoint resumed into a new folder ---------------------------------------------
def test_a_finished_checkpoint_resumed_into_a_new_folder_is_evaluated_there(tmp_path, capsys):
    finished = engine.train(tiny(tmp_path / "a"))
    argv = [
        "synthetic",
        *TINY,
        f"train.out_dir={tmp_path / 'b'}",
        f"train.resume={tmp_path / 'a' / 'last.pt'}",
    ]
    assert cli.train_main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["steps"] == 4 and result["nme"] == finished.final["nme"]
    records = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["step"]) for r in records] == [("eval", 4)]
    assert json.loads((tmp_path / "b" / "config.json").read_text())["train"]["out_dir"] == str(tmp_path / "b")


# -- point 11: a full disk inside the checkpoint write is one line, status 1 --------------------------------
def test_a_full_disk_inside_torch_save_is_one_line_and_status_1(tmp_path, monkeypatch, capsys):
    from test_checkpoint import full_disk_for_checkpoints

    if not Path("/proc/self/fd").exists():
        pytest.skip("needs /proc (Linux)")
    out = tmp_path / "run"
    args = ["synthetic", *TINY, "train.checkpoint_every=2", f"train.out_dir={out}"]
    engine.train(tiny(out, "train.checkpoint_every=2"), stop_after_steps=2)
    before = (out / "last.pt").read_bytes()
    full_disk_for_checkpoints(monkeypatch)
    assert cli.train_main([*args, "train.resume=auto"]) == 1
    line = _one_line(capsys)
    assert line.startswith("h3r-train: error: disk full") and "the last checkpoint is intact" in line
    monkeypatch.undo()
    assert (out / "last.pt").read_bytes() == before


# -- point 15: Ctrl-C at any moment of the start is one line and status 130 ---------------------------------
@pytest.mark.slow
def test_ctrl_c_during_the_start_is_one_line_and_status_130(tmp_path):
    import subprocess
    import sys
    import time

    repo = Path(__file__).resolve().parents[1]
    for delay in (0.4, 0.8, 1.2, 1.6):  # inside torch's import, the engine's, the data's, the first steps
        out = tmp_path / f"run{delay}"
        cmd = [sys.executable, "-m", "trainers.cli", "train", "synthetic", *TINY, f"train.out_dir={out}"]
        proc = subprocess.Popen(
            cmd,
            cwd=repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            continue  # the tiny run finished first
        assert proc.returncode == 130, (delay, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, (delay, err)
        assert "interrupted" in err


def test_ctrl_c_in_predict_is_one_line_and_status_130(tmp_path, capsys, monkeypatch):
    from trainers import predict

    run = tmp_path / "run"
    engine.train(tiny(run))
    predict.save_synthetic_images(tiny(run), tmp_path / "images", 2)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(predict, "predict_instances", interrupted)
    argv = [
        "synthetic",
        str(tmp_path / "images"),
        "--checkpoint",
        str(run / "last.pt"),
        *sum((["--set", o] for o in TINY), []),
    ]
    try:
        status = predict.main([*argv, "--out", str(tmp_path / "p")])
    except KeyboardInterrupt:  # what reached the user: a traceback
        status = "a KeyboardInterrupt traceback"
    assert status == 130
    assert _one_line(capsys) == "h3r-predict: interrupted"


# -- point 16: h3r-predict --out FILE names the argument ----------------------------------------------------
def test_predict_out_that_is_a_file_is_refused_before_any_work(tmp_path, capsys):
    from trainers import predict

    (tmp_path / "taken").write_text("mine\n")
    argv = ["synthetic", str(tmp_path), "--checkpoint", str(tmp_path / "none.pt")]
    assert predict.main([*argv, "--out", str(tmp_path / "taken")]) == 2
    assert (
        _one_line(capsys)
        == f"h3r-predict: error: --out {tmp_path / 'taken'}: {tmp_path / 'taken'} is a file, not a folder"
    )
    assert predict.main([*argv, "--out", str(tmp_path / "taken" / "sub")]) == 2
    assert "is a file, not a folder" in _one_line(capsys)
    assert (tmp_path / "taken").read_text() == "mine\n"


# -- point 19: h3r-eval writes nothing but its --output (COCO results went to train.out_dir) ----------------
def test_eval_gives_evaluate_no_folder_to_write_into(tmp_path, monkeypatch, capsys):
    from trainers import evaluate

    run = tmp_path / "run"
    engine.train(tiny(run))
    seen = {}
    real = evaluate.evaluate

    def spy(*args, **kwargs):
        seen["out_dir"] = kwargs.get("out_dir")
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluate, "evaluate", spy)
    before = sorted(p.name for p in run.iterdir())
    assert (
        cli.eval_main(["synthetic", *TINY, f"train.out_dir={run}", "--checkpoint", str(run / "last.pt")]) == 0
    )
    assert seen == {"out_dir": None} and sorted(p.name for p in run.iterdir()) == before


# -- point 14: checked before anything is written ------------------------------------------------------------
def _face(source: str, keypoints, box=None):
    from trainers.data.records import make_record

    return make_record(Path("face.png"), keypoints, [1] * len(keypoints), "wflw", source, box=box)


def test_a_zero_size_crop_box_is_refused_naming_its_line():
    import numpy as np

    from trainers.data.dataset import LandmarkDataset

    points = np.random.default_rng(0).uniform(10, 90, (98, 2))
    good = _face("list.txt:1", points)
    with pytest.raises(ValueError, match=r"^list.txt:2: its crop box has size \[0.0, 4.0\]"):
        LandmarkDataset([good, _face("list.txt:2", points, box=[5, 5, 5, 9])], input_size=(32, 32))
    single = _face("list.txt:3", [[4.0, 4.0]])  # one labelled point and no box: a 0 x 0 crop
    with pytest.raises(ValueError, match=r"^list.txt:3: its crop box has size \[0.0, 0.0\]"):
        LandmarkDataset([single], input_size=(32, 32))


def test_a_zero_normaliser_in_the_evaluation_split_fails_before_training(tmp_path, monkeypatch, capsys):
    import numpy as np

    from trainers.data import registry
    from trainers.data.records import LoadResult

    points = np.random.default_rng(0).uniform(10, 90, (98, 2))
    collapsed = points.copy()
    collapsed[72] = collapsed[60]  # the outer eye corners on one pixel: inter-ocular distance 0

    def load(name, root, split, check_images=False):
        faces = [_face(f"{split}.txt:{i + 1}", points) for i in range(8)]
        if split != "train":
            faces.append(_face(f"{split}.txt:9", collapsed))
        return LoadResult(faces, source=f"{split}.txt")

    monkeypatch.setattr(registry, "load_dataset", load)
    out = tmp_path / "run"
    argv = [
        "wflw",
        f"data.root={tmp_path}",
        "data.input_size=[32, 32]",
        "train.batch_size=4",
        f"train.out_dir={out}",
    ]
    assert cli.train_main([*argv, "train.max_steps=1", "train.progress=false", "train.device=cpu"]) == 2
    line = _one_line(capsys)
    assert "test.txt:9: its metric normaliser is 0.0 pixels" in line
    assert not out.exists()


def test_a_decompression_bomb_is_one_line_naming_the_image(tmp_path, monkeypatch):
    from PIL import Image

    from trainers.data.records import load_image

    path = tmp_path / "bomb.png"
    Image.new("RGB", (64, 64)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # a 4096-pixel image is then over twice the limit
    with pytest.raises(ValueError, match=rf"^cannot decode image {path}: .*decompression bomb"):
        load_image(path)


def test_an_input_size_that_cannot_be_allocated_is_refused_when_the_config_is_read():
    from trainers.config import load_config

    with pytest.raises(ValueError, match=r"data.input_size \[65536, 256\]: each side must be <= 4096 px"):
        load_config("synthetic", ["data.input_size=[65536, 256]"])


def test_a_temperature_that_would_overflow_the_final_evaluation_fails_before_training(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["synthetic", *TINY, f"train.out_dir={out}", "eval.decode={temperature: 1.0e-36}"]
    assert cli.train_main(argv) == 2
    line = _one_line(capsys)
    assert "eval.decode={'temperature': 1e-36}: temperature=1e-36 makes the decode non-finite" in line
    assert not out.exists()


# -- point 18: what the loaders trust and what they drop ---------------------------------------------------
def _coco_root(tmp_path: Path, file_name: str, declared=(64, 48)) -> Path:
    """A COCO layout under ``tmp_path/coco`` with one 64 x 48 image and one person on it."""
    from PIL import Image

    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    Image.new("RGB", (64, 48)).save(root / "val2017" / "a.png")
    keypoints = sum(([10 + i, 10 + i, 2] for i in range(17)), [])
    data = {
        "images": [{"id": 1, "file_name": file_name, "width": declared[0], "height": declared[1]}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 40, 30], "keypoints": keypoints}
        ],
    }
    (root / "annotations" / "person_keypoints_val2017.json").write_text(json.dumps(data))
    return root


def test_an_image_name_that_leaves_data_root_is_refused(tmp_path):
    from trainers.data.registry import load_dataset

    (tmp_path / "outside.png").write_bytes(b"")
    assert len(load_dataset("coco", _coco_root(tmp_path / "ok", "a.png"), "val")) == 1
    for name in ("../../outside.png", str(tmp_path / "outside.png")):
        root = _coco_root(tmp_path / f"bad{len(name)}", name)
        with pytest.raises(ValueError, match=r"annotations\[0\]: image .*outside.png lies outside data.root"):
            load_dataset("coco", root, "val")


def test_a_declared_image_size_is_checked_against_the_file(tmp_path):
    from trainers.data.registry import load_dataset

    root = _coco_root(tmp_path, "a.png", declared=(10, 10))
    assert len(load_dataset("coco", root, "val")) == 1  # unchecked: the box is clipped to 10 x 10
    with pytest.raises(
        ValueError, match=r"image id 1 \(a.png\) is declared 10 x 10 pixels, but the file is 64 x 48"
    ):
        load_dataset("coco", root, "val", check_images=True)


def test_the_loaders_skip_summaries_are_printed(tmp_path, monkeypatch, capsys):
    import numpy as np
    from PIL import Image

    from trainers.data import registry
    from trainers.data.records import LoadResult, make_record

    # Noise, not a blank image: a batch of all-black faces makes every HRNet activation 0, so each
    # BatchNorm of the 1 x 1 lowest branch (32 px input) sees zero variance and scales the gradient by
    # 1/sqrt(eps) ~ 316; stacked in stage 4 it overflows float32 and the first update makes 484 of the
    # 920 parameter tensors NaN, while the loss is finite (found for issue 24; brief H, gap 2).
    pixels = np.random.default_rng(1).integers(0, 256, (100, 100, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "face.png")
    points = np.random.default_rng(0).uniform(20, 80, (98, 2))

    def load(name, root, split, check_images=False):
        result = LoadResult(source=f"{split}.txt")
        for i in range(8):
            result.append(
                make_record(tmp_path / "face.png", points, [1] * 98, "wflw", f"{split}.txt:{i + 1}")
            )
        result.skip("duplicate line (same face as an earlier line, dropped)")
        return result

    monkeypatch.setattr(registry, "load_dataset", load)
    argv = [
        "wflw",
        f"data.root={tmp_path}",
        "data.input_size=[32, 32]",
        "train.batch_size=4",
        "train.max_steps=1",
    ]
    argv += [
        "train.progress=false",
        "train.device=cpu",
        "data.num_workers=0",
        f"train.out_dir={tmp_path / 'run'}",
    ]
    assert cli.train_main(argv) == 0  # the run ends well, so no error hides behind the notes
    err = capsys.readouterr().err
    assert "error" not in err, err
    for split in ("train", "test"):
        assert f"h3r-train: note: {split}.txt: 8 records loaded, skipped: 1 duplicate line" in err


def test_ctrl_c_while_h3r_predict_starts_is_one_line_and_status_130(tmp_path):
    """The h3r-predict entry point (trainers.cli.predict_main) imports the predictor, and torch with it,
    under the same guard as h3r-train: a Ctrl-C during the import is one line and status 130."""
    import subprocess
    import sys
    import time

    repo = Path(__file__).resolve().parents[1]
    code = "import sys; from trainers.cli import predict_main; sys.exit(predict_main(sys.argv[1:]))"
    interrupted = 0
    for delay in (0.2, 0.4, 0.7):  # inside the import of torch (1-3 s on the 2-core VM)
        cmd = [
            sys.executable,
            "-c",
            code,
            "synthetic",
            str(tmp_path / "none"),
            "--checkpoint",
            str(tmp_path / "x.pt"),
        ]
        proc = subprocess.Popen(
            cmd, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )  # fmt: skip
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, (delay, err)
        if proc.returncode == 130:
            interrupted += 1
            assert "h3r-predict: interrupted" in err
        else:
            assert proc.returncode == 2, (delay, proc.returncode, err)  # it got past the import: the bad path
    assert interrupted >= 1
