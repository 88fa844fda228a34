"""The training / evaluation engine: smoke training, exact resume, flip test, coordinate maps, schedules."""

from __future__ import annotations

import json
import shutil
import time

import pytest
import torch
from torch import nn

from h3r_theory import codecs, conventions
from trainers import build, engine, runtime
from trainers import evaluate as evaluation
from trainers.config import load_config
from trainers.data import transforms
from trainers.data.synthetic import SyntheticLandmarks
from trainers.logging_utils import read_jsonl

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_config(tmp_path, *overrides):
    """A synthetic run small enough for a few CPU seconds."""
    return load_config(
        "synthetic",
        [
            "data.input_size=[64, 64]",
            "data.options={num_train: 256, num_eval: 32, num_keypoints: 6}",
            "train.batch_size=16",
            "train.max_steps=12",
            "train.log_every=1",
            "train.eval_every=0",
            "train.checkpoint_every=0",
            "train.progress=false",
            "train.device=cpu",
            "optim.warmup_steps=2",
            f"train.out_dir={tmp_path / 'run'}",
            *overrides,
        ],
    )


def test_smoke_training_lowers_loss_and_nme(tmp_path):
    """The CPU smoke run of the issue: loss and NME must fall within 60 s on the synthetic set."""
    config = tiny_config(
        tmp_path,
        "data.options={num_train: 2048, num_eval: 64, num_keypoints: 6}",
        "train.max_steps=150",
        "train.log_every=10",
        "optim.lr=3e-3",
        "optim.warmup_steps=10",
    )
    train_set, eval_set = build.build_datasets(config)
    codec = build.build_codec(config, train_set.input_size)
    torch.manual_seed(config.train.seed)
    before = evaluation.evaluate(build.build_network(config, train_set.num_keypoints), codec, eval_set)
    t0 = time.perf_counter()
    result = engine.train(config, train_set=train_set, eval_set=eval_set)
    seconds = time.perf_counter() - t0
    losses = [r["loss"] for r in result.history if r["kind"] == "train"]
    after = result.final
    print(
        f"\nsmoke: loss {losses[0]:.3f} -> {losses[-1]:.3f}, NME {before['nme']:.4f} -> {after['nme']:.4f}, "
        f"mean error {before['mean_error_px']:.2f} -> {after['mean_error_px']:.2f} px, {seconds:.1f} s"
    )
    assert seconds < 60
    assert losses[-1] < 0.7 * losses[0]
    assert after["nme"] < 0.5 * before["nme"]
    assert after["num_samples"] == len(eval_set)
    assert (result.out_dir / "curves.png").stat().st_size > 1000
    assert (result.out_dir / "last.pt").is_file() and result.steps == 150


def _params(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("codec", ["randomized_rounding", "gaussian"])
def test_resume_equals_uninterrupted(tmp_path, codec):
    """train N steps == train k steps, "crash", resume from the checkpoint, train N - k: bit-for-bit."""
    common = [
        f"codec.name={codec}",
        "train.max_steps=9",
        "train.checkpoint_every=4",
        "optim.grad_clip=5.0",
        # 256 samples / batch 16 = 16 steps per epoch; 96 samples = 6 steps: the run crosses an epoch
        "data.options={num_train: 96, num_eval: 16, num_keypoints: 6}",
    ]
    full = engine.train(tiny_config(tmp_path / "full", *common))
    crashed = engine.train(tiny_config(tmp_path / "resumed", *common), stop_after_steps=5)
    assert crashed.steps == 5 and crashed.final == {}
    # the checkpoint of step 4 is the last one written; steps 5.. are lost with the "crash"
    resumed = engine.train(tiny_config(tmp_path / "resumed", *common, "train.resume=auto"))
    assert resumed.steps == full.steps == 9
    a, b = _params(full.model), _params(resumed.model)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # the log of the resumed run reads like one uninterrupted history
    strip = lambda h: [{k: v for k, v in r.items()} for r in h]
    assert strip(full.history) == strip(resumed.history)
    assert full.final == resumed.final
    # resuming a finished run trains no further and reports the final evaluation from its log
    again = engine.train(tiny_config(tmp_path / "resumed", *common, "train.resume=auto"))
    assert again.steps == 9 and again.final == pytest.approx(full.final)
    assert torch.equal(next(again.model.parameters()), next(full.model.parameters()))


def test_same_seed_same_run_and_different_seed_differs(tmp_path):
    a = engine.train(tiny_config(tmp_path / "a", "train.max_steps=3"))
    b = engine.train(tiny_config(tmp_path / "b", "train.max_steps=3"))
    c = engine.train(tiny_config(tmp_path / "c", "train.max_steps=3", "train.seed=1"))
    pa, pb, pc = _params(a.model), _params(b.model), _params(c.model)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert not all(torch.equal(pa[k], pc[k]) for k in pa)


class _Stub(nn.Module):
    """A 'model' whose output is a fixed function of the image, with one learnable no-op parameter."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, images):
        return self.fn(images) + 0.0 * self.dummy


def test_flip_test_is_exactly_equivariant():
    """With the exact flip, predicting the mirrored image gives the mirrored prediction: no 1-cell shift."""
    torch.manual_seed(0)
    K, pairs = 4, [(0, 1), (2, 3)]
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, K, 3, stride=2, padding=1)
    )
    codec = codecs.build("randomized_rounding", input_size=(32, 32), heatmap_size=(8, 8))
    images = torch.rand(3, 3, 32, 32)
    xy, _ = evaluation.predict(net, codec, images, pairs, flip_test=True)
    xy_f, _ = evaluation.predict(net, codec, torch.flip(images, dims=(-1,)), pairs, flip_test=True)
    torch.testing.assert_close(xy_f, conventions.flip_keypoints(xy, 32, pairs), atol=1e-4, rtol=0)
    # without the flip test the untrained network is not equivariant: the check above is not vacuous
    plain, _ = evaluation.predict(net, codec, images, pairs)
    plain_f, _ = evaluation.predict(net, codec, torch.flip(images, dims=(-1,)), pairs)
    assert (plain_f - conventions.flip_keypoints(plain, 32, pairs)).abs().max() > 0.1


def test_flip_test_refuses_inexact_convention():
    codec = codecs.build("argmax", input_size=(32, 32), heatmap_size=(8, 8), convention="msra")
    stub = _Stub(lambda im: torch.zeros(im.shape[0], 2, 8, 8))
    with pytest.raises(ValueError, match="flip test is exact only"):
        evaluation.predict(stub, codec, torch.rand(1, 3, 32, 32), [(0, 1)], flip_test=True)


def test_evaluate_maps_predictions_back_to_original_pixels():
    """A stub predicts a one-hot at cell (5, 2); the decoded input point must go through inverse(matrix)."""
    codec = codecs.build("argmax", input_size=(32, 32), heatmap_size=(8, 8))

    def one_hot(images):
        out = torch.zeros(images.shape[0], 6, 8, 8)
        out[:, :, 2, 5] = 1.0
        return out

    class Scaled(SyntheticLandmarks):
        # the same samples, seen as a 2x downscaled, shifted crop of a larger "original" image
        def batch(self, indices):
            b = super().batch(indices)
            b["matrix"] = torch.tensor([[0.5, 0.0, -3.0], [0.0, 0.5, 4.0]], dtype=torch.float64).expand(
                len(indices), 2, 3
            )
            return b

    data = Scaled(5, image_size=(32, 32), num_keypoints=6)
    out = evaluation.evaluate(_Stub(one_hot), codec, data, batch_size=2, return_predictions=True)
    p = out["predictions"]
    expected_input = codec.to_input(torch.tensor([5.0, 2.0], dtype=torch.float64))
    assert torch.allclose(torch.as_tensor(p["pred_input"]), expected_input.expand(5, 6, 2))
    expected_orig = torch.stack([(expected_input[0] + 3.0) / 0.5, (expected_input[1] - 4.0) / 0.5])
    assert torch.allclose(torch.as_tensor(p["pred"]), expected_orig.expand(5, 6, 2))
    assert torch.allclose(
        torch.as_tensor(p["gt"]), 2 * torch.as_tensor(p["gt_input"]) + torch.tensor([6.0, -8.0])
    )
    assert out["mean_error_orig_px"] == pytest.approx(2 * out["mean_error_px"])
    assert out["num_samples"] == 5 and list(p["index"]) == [0, 1, 2, 3, 4]


def test_translate_images_moves_content_by_subpixel_shift():
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    blob = torch.exp(-((xx - 14.0) ** 2 + (yy - 17.0) ** 2) / (2 * 2.0**2)).expand(1, 3, 32, 32)
    moved = evaluation.translate_images(blob, (0.3, -0.7))[0, 0]
    centroid = torch.stack([(moved * xx).sum(), (moved * yy).sum()]) / moved.sum()
    torch.testing.assert_close(centroid, torch.tensor([14.3, 16.3]), atol=2e-2, rtol=0)
    assert evaluation.translate_images(blob, (0.0, 0.0)) is blob


def test_affine_inverse_round_trip():
    m = torch.tensor([[[1.3, 0.2, 5.0], [-0.4, 0.9, -2.0]]], dtype=torch.float64)
    pts = torch.rand(1, 7, 2, dtype=torch.float64) * 50
    back = transforms.transform_points(transforms.transform_points(pts, m), transforms.invert(m))
    torch.testing.assert_close(back, pts)


def test_learning_rate_schedules(tmp_path):
    o = tiny_config(tmp_path, "optim.warmup_steps=10", "optim.min_lr_ratio=0.1").optim
    assert build.lr_factor(0, 110, o) == pytest.approx(0.1)
    assert build.lr_factor(9, 110, o) == pytest.approx(1.0)
    assert build.lr_factor(10, 110, o) == pytest.approx(1.0)
    assert build.lr_factor(60, 110, o) == pytest.approx(0.55)
    assert build.lr_factor(110, 110, o) == pytest.approx(0.1)
    s = tiny_config(
        tmp_path,
        "optim.schedule=step",
        "optim.warmup_steps=0",
        "optim.milestones=[0.5, 80]",
        "optim.gamma=0.1",
    ).optim
    assert [build.lr_factor(t, 100, s) for t in (0, 49, 50, 79, 80)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])


def test_binary_head_loss_and_decoding():
    codec = codecs.build("randomized_rounding", input_size=(32, 32), heatmap_size=(8, 8))
    name, fn = build.loss_for(codec, "binary")
    assert name == "binary_cross_entropy"
    logits = torch.zeros(2, 3, 2, 8, 8, requires_grad=True)
    enc = codec.encode(torch.full((2, 3, 2), 10.0))
    fn(logits, enc).backward()
    assert logits.grad.abs().sum() > 0
    maps, activation = evaluation.to_maps(logits.detach(), codec)
    assert maps.shape == (2, 3, 8, 8) and activation == "probabilities"
    assert torch.allclose(maps, torch.full_like(maps, 0.5))


def test_cpu_uses_no_autocast_and_no_loss_scaling():
    assert runtime.amp_dtype(torch.device("cpu"), True) is None


def test_jsonl_history_and_plot(tmp_path):
    result = engine.train(tiny_config(tmp_path, "train.max_steps=4", "train.eval_every=2"))
    records = read_jsonl(result.out_dir / "metrics.jsonl")
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4]
    assert [r["step"] for r in records if r["kind"] == "eval"] == [2, 4]
    assert all(set(r) >= {"nme", "mean_error_px", "num_samples"} for r in records if r["kind"] == "eval")
    assert (result.out_dir / "curves.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (AMP + channels_last path)")
def test_cuda_amp_channels_last_training(tmp_path):
    result = engine.train(
        tiny_config(
            tmp_path, "train.device=cuda", "train.amp=true", "train.channels_last=true", "train.max_steps=20"
        )
    )
    losses = [r["loss"] for r in result.history if r["kind"] == "train"]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]
    assert next(result.model.parameters()).device.type == "cuda"


# -- real annotated samples (../shared/data/real_samples): real images, real augmentation, real metrics ----


def _real_faces(train: bool):
    from conftest import real_samples_dir

    from trainers.data.coco import load_coco_keypoints
    from trainers.data.dataset import LandmarkDataset
    from trainers.data.flip_pairs import flip_pairs_for

    folder = real_samples_dir("mmpose/wflw")
    records = load_coco_keypoints(folder / "test_wflw.json", folder, "wflw")
    return LandmarkDataset(records, input_size=(32, 32), train=train, flip_pairs=flip_pairs_for("wflw", 98))


@pytest.mark.real_samples
def test_resume_is_exact_with_random_augmentation_on_real_images(tmp_path, monkeypatch):
    """WFLW faces with random crops/rotations/flips/colour: a resume is bit-identical. Augmentation is a pure
    function of (seed, epoch, sample index), so it no longer depends on the global RNG: a resume that does
    not restore that RNG (monkeypatched below) is exact too. (With DataLoader workers and the teeth of
    this test: tests/test_reliability.py.)"""
    train_set, eval_set = _real_faces(train=True), _real_faces(train=False)
    common = [
        "train.batch_size=2",
        "train.max_steps=4",
        "train.checkpoint_every=2",
        "data.input_size=[32, 32]",
    ]
    run = lambda name, *extra, **kw: engine.train(
        tiny_config(tmp_path / name, *common, *extra), train_set=train_set, eval_set=eval_set, **kw
    )
    full = run("full")
    run("resumed", stop_after_steps=3)  # crosses the epoch boundary (2 steps per epoch), dies after step 3
    (tmp_path / "no_rng" / "run").mkdir(parents=True)
    shutil.copy(tmp_path / "resumed" / "run" / "last.pt", tmp_path / "no_rng" / "run" / "last.pt")
    resumed = run("resumed", "train.resume=auto")
    a, b = _params(full.model), _params(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert full.final["nme"] == resumed.final["nme"] and "fr" in full.final and "auc" in full.final

    monkeypatch.setattr(engine.ckpt, "set_rng_state", lambda state: None)
    torch.manual_seed(1234)  # a different global RNG state than the checkpointed one
    unrestored = _params(run("no_rng", "train.resume=auto").model)
    assert all(torch.equal(a[k], unrestored[k]) for k in a)


@pytest.mark.real_samples
def test_face_nme_uses_the_interocular_normaliser_in_original_pixels():
    data = _real_faces(train=False)
    codec = codecs.build("randomized_rounding", input_size=(32, 32), heatmap_size=(8, 8))
    out = evaluation.evaluate(
        _Stub(lambda im: torch.zeros(im.shape[0], 98, 8, 8)), codec, data, return_predictions=True
    )
    from h3r_theory import metrics

    p = out["predictions"]
    norms = torch.tensor([data.normalizer(i) for i in p["index"]], dtype=torch.float64)
    expected = metrics.nme(
        torch.as_tensor(p["pred"]), torch.as_tensor(p["gt"]), norms, torch.as_tensor(p["visible"])
    )
    assert out["nme"] == pytest.approx(float(expected))
    # ground truth mapped back through inverse(matrix) is the annotation of the original image
    for row, i in enumerate(p["index"]):
        torch.testing.assert_close(
            torch.as_tensor(p["gt"][row]), torch.as_tensor(data.records[i].keypoints), atol=1e-3, rtol=0
        )


@pytest.mark.real_samples
def test_coco_ap_through_a_results_json(tmp_path):
    from conftest import real_samples_dir

    from trainers.data.coco import load_coco_keypoints
    from trainers.data.dataset import LandmarkDataset
    from trainers.data.flip_pairs import flip_pairs_for

    folder = real_samples_dir("mmpose/coco")
    records = load_coco_keypoints(folder / "test_coco.json", folder, "coco")
    data = LandmarkDataset(records, input_size=(48, 64), flip_pairs=flip_pairs_for("coco", 17))
    data.annotation_file = records.source
    # randomized rounding: its expected (bilinear) maps decode back to the keypoints exactly (lossless)
    codec = codecs.build("randomized_rounding", input_size=(48, 64), heatmap_size=(12, 16))
    # an oracle: the maps of the true keypoints (the model is called once, on the whole 12-sample batch)
    items = [data[i] for i in range(len(data))]
    truth = codec.expected(
        torch.stack([it["keypoints"] for it in items]), torch.stack([it["visible"] for it in items])
    )
    logits = torch.log(truth.heatmaps + 1e-12)  # the codec decodes logits: softmax(log p) = p on its support
    oracle = evaluation.evaluate(_Stub(lambda im: logits), codec, data, out_dir=tmp_path)
    assert oracle["ap"] > 0.99 and oracle["mean_error_orig_px"] < 0.01  # measured: AP 1.0, 0.003 px
    # a model emitting noise: still a valid pycocotools run, now with a low AP
    out = evaluation.evaluate(
        _Stub(lambda im: torch.rand(im.shape[0], 17, 16, 12, generator=torch.Generator().manual_seed(0))),
        codec,
        data,
        flip_test=True,
        out_dir=tmp_path,
    )
    assert 0.0 <= out["ap"] < 0.2 and "ap50" in out and "ar" in out
    results = json.loads((tmp_path / "coco_results.json").read_text())
    assert len(results) == len(data) == 12
    assert {r["image_id"] for r in results} == {r.extras["image_id"] for r in data.records}


def test_diverging_training_stops_with_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="training loss is (nan|inf) at step"):
        engine.train(
            tiny_config(tmp_path, "train.max_steps=3", "codec.name=gaussian"),
            model=_Stub(lambda im: torch.full((im.shape[0], 6, 16, 16), float("nan"))),
        )


def test_input_size_not_a_multiple_of_the_backbone_stride_fails_early():
    """The builder refuses an input size the backbone cannot tile, before reading any data."""
    config = load_config("synthetic", ["data.input_size=[72,72]"])
    with pytest.raises(ValueError, match=r"data.input_size \(72, 72\) must be a multiple of 16 .*'tiny'"):
        build.build_network(config, num_keypoints=12)
    assert (
        build.build_network(
            load_config("synthetic", ["data.input_size=[64,80]"]), num_keypoints=12
        ).num_keypoints
        == 12
    )
