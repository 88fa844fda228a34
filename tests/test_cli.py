"""h3r-train / h3r-eval: configs, overrides, error messages, and a train -> eval round trip."""

from __future__ import annotations

import json

import pytest

from h3r_theory import codecs
from trainers import cli
from trainers.config import CONFIG_DIR, load_config, valid_keys

pytestmark = pytest.mark.usefixtures("one_thread")


TINY = [
    "data.input_size=[32, 32]",
    "data.options={num_train: 64, num_eval: 8, num_keypoints: 6}",
    "train.batch_size=16",
    "train.max_steps=3",
    "train.progress=false",
    "train.device=cpu",
]


TRAINING_CONFIGS = ("synthetic", "wflw", "300w", "cofw", "aflw", "mpii", "coco")


def test_bundled_configs_load_for_every_dataset():
    # other files in configs/ (e.g. the sweep's) have their own schema; these are the training configs
    assert set(TRAINING_CONFIGS) <= {p.stem for p in CONFIG_DIR.glob("*.yaml")}
    for name in TRAINING_CONFIGS:
        config = load_config(name)
        assert config.data.name == name
        assert config.codec.name in codecs.available()


@pytest.mark.parametrize("codec", codecs.available())
def test_codec_is_overridden_on_the_command_line(codec):
    config = load_config("wflw", [f"codec.name={codec}", "codec.options.convention=pixel_center"])
    assert config.codec.name == codec and config.codec.options == {"convention": "pixel_center"}
    assert config.data.name == "wflw" and config.model.name == "hrnet_w18"


def test_override_values_are_typed():
    config = load_config(
        "synthetic",
        ["optim.lr=1e-3", "optim.grad_clip=2", "train.max_steps=null", "data.input_size=[96, 128]"],
    )
    assert config.optim.lr == 0.001 and config.optim.grad_clip == 2.0 and config.train.max_steps is None
    assert config.data.input_size == [96, 128]


def test_unknown_key_on_command_line_lists_valid_keys(capsys):
    assert cli.train_main(["synthetic", "train.bach_size=8"]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'train.bach_size'" in err
    assert "train.batch_size" in err and "codec.name" in err


def test_unknown_key_in_yaml_file_lists_valid_keys(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  batch_size: 8\n  learning_rate: 0.1\n")
    assert cli.train_main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert "unknown key(s) ['learning_rate']" in err and str(bad) in err and "'batch_size'" in err
    bad.write_text("optimizer: adam\n")
    assert cli.train_main([str(bad)]) == 2
    assert "valid keys: ['data', 'model', 'codec', 'optim', 'train', 'eval']" in capsys.readouterr().err


def test_bad_values_fail_clearly(capsys):
    for override, message in [
        ("train.batch_size=many", "command line: train.batch_size must be int, got str"),
        ("optim.schedule=linear", "optim.schedule must be"),
        ("codec.name=nearest", "unknown codec 'nearest'"),
        ("train.batch_size", "must look like section.key=value"),
    ]:
        assert cli.train_main(["synthetic", *TINY, override]) == 2, override
        assert message in capsys.readouterr().err, override


def test_missing_config_file(capsys):
    assert cli.train_main(["no_such_config.yaml"]) == 2
    assert "config file 'no_such_config.yaml' not found" in capsys.readouterr().err


def test_missing_dataset_root_says_where_files_are_expected(tmp_path, capsys):
    assert cli.train_main(["wflw", f"data.root={tmp_path / 'WFLW'}"]) == 2
    err = capsys.readouterr().err
    assert "wflw" in err and str(tmp_path / "WFLW") in err and "not found" in err
    (tmp_path / "WFLW").mkdir()
    assert cli.train_main(["wflw", f"data.root={tmp_path / 'WFLW'}"]) == 2
    err = capsys.readouterr().err
    assert "expected at" in err and "list_98pt_rect_attr_train.txt" in err
    assert cli.train_main(["mpii"]) == 2
    assert "data.root is not set" in capsys.readouterr().err


def test_train_then_eval_from_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.train_main(["synthetic", *TINY, f"train.out_dir={out}"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["steps"] == 3 and trained["num_samples"] == 8
    metrics_file = tmp_path / "eval.json"
    assert (
        cli.eval_main(
            [
                "synthetic",
                *TINY,
                f"train.out_dir={out}",
                "--checkpoint",
                str(out / "last.pt"),
                "--output",
                str(metrics_file),
            ]
        )
        == 0
    )
    evaluated = json.loads(capsys.readouterr().out)
    # the same weights on the same evaluation split give the same numbers
    assert evaluated["nme"] == pytest.approx(trained["nme"], rel=1e-6)
    assert json.loads(metrics_file.read_text()) == evaluated
    # a sub-pixel shift of the inputs changes the measurement, through the same pipeline
    assert (
        cli.eval_main(["synthetic", *TINY, "--checkpoint", str(out / "last.pt"), "--shift", "0.5", "0.25"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["mean_error_px"] != evaluated["mean_error_px"]


def test_eval_with_missing_checkpoint(tmp_path, capsys):
    assert cli.eval_main(["synthetic", *TINY, "--checkpoint", str(tmp_path / "nope.pt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_module_entry_point_dispatch(capsys):
    assert cli.main(["bogus"]) == 2
    assert "usage" in capsys.readouterr().err


def test_every_valid_key_is_settable():
    # each listed key can be overridden (here with its own default), so the list the errors print is true
    defaults = load_config(None)
    for key in valid_keys():
        section, name = key.split(".")
        value = getattr(getattr(defaults, section), name)
        assert load_config(None, [f"{key}={json.dumps(value)}"]) == defaults, key


# issue 24, point 6: h3r-eval compares the checkpoint's stored settings with its config, as h3r-predict does
@pytest.mark.parametrize(
    "override, setting",
    [
        ("model.output_stride=8", "model.output_stride=4"),
        ("codec.name=argmax", 'codec.name="randomized_rounding"'),
        ("codec.options.convention=msra", "codec.options={}"),
    ],
)
def test_eval_refuses_a_checkpoint_trained_with_other_settings(tmp_path, capsys, override, setting):
    out = tmp_path / "run"
    assert cli.train_main(["synthetic", *TINY, f"train.out_dir={out}"]) == 0
    capsys.readouterr()
    assert cli.eval_main(["synthetic", *TINY, override, "--checkpoint", str(out / "last.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"was trained with {setting}, the config has" in err


# issue 24, point 16: a non-finite --shift is the argument's fault, not the model's
def test_eval_refuses_a_non_finite_shift(tmp_path, capsys):
    argv = ["synthetic", *TINY, "--checkpoint", str(tmp_path / "none.pt"), "--shift"]
    for shift in (["nan", "0"], ["0", "inf"]):
        assert cli.eval_main([*argv, *shift]) == 2
        assert capsys.readouterr().err.strip() == (
            f"h3r-eval: error: --shift DX DY must be finite numbers of input pixels, got {' '.join(shift)}"
        )
