"""``h3r-predict`` (trainers/predict.py): a tiny synthetic model trained here, run on rendered images, on
boxed crops of a larger canvas and on the real sample images with their boxes; its keypoints must be the
ones :func:`trainers.evaluate.evaluate` computes for the same model and the same inputs, exactly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import real_samples_dir
from PIL import Image

from trainers import predict as predict_cli
from trainers.build import build_codec, build_datasets, build_network
from trainers.checkpoint import load_weights, save_atomic
from trainers.config import load_config
from trainers.data.coco import load_coco_keypoints
from trainers.data.dataset import LandmarkDataset
from trainers.data.records import make_record
from trainers.engine import train
from trainers.evaluate import evaluate

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_CONFIG = """
data: {name: synthetic, input_size: [64, 64], options: {num_train: 64, num_eval: 6, num_keypoints: 12}}
model: {name: tiny, output_stride: 4}
codec: {name: randomized_rounding}
optim: {optimizer: adamw, lr: 3.0e-3, warmup_steps: 2}
train: {seed: 0, device: cpu, batch_size: 8, max_steps: 20, eval_every: 0, checkpoint_every: 20, out_dir: OUT}
eval: {batch_size: 4}
"""


class Unnamed(torch.utils.data.Dataset):
    """A dataset without a ``dataset_name``: :func:`evaluate` then reports its generic errors only (the
    rendered synthetic PNGs have no spec-level normaliser of their own)."""

    def __init__(self, dataset):
        self.dataset, self.flip_pairs = dataset, dataset.flip_pairs

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        return self.dataset[i]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny synthetic model trained for 20 steps, its config file, and 6 rendered eval images."""
    root = tmp_path_factory.mktemp("predict")
    config_path = root / "tiny.yaml"
    config_path.write_text(TINY_CONFIG.replace("OUT", str(root / "run")))
    config = load_config(config_path)
    result = train(config)
    images = predict_cli.save_synthetic_images(config, root / "images", count=6)
    model = build_network(config, 12)
    load_weights(model, result.checkpoint)
    return {
        "root": root,
        "config_path": config_path,
        "config": config,
        "checkpoint": result.checkpoint,
        "images": images,
        "model": model,
        "codec": build_codec(config, (64, 64)),
    }


def run_predict(argv, capsys) -> tuple[int, str]:
    code = predict_cli.main([str(a) for a in argv])
    return code, capsys.readouterr().err


def read_results(out: Path) -> list[dict]:
    return json.loads((out / "predictions.json").read_text())


def keypoints_of(results: list[dict]) -> np.ndarray:
    """(N, K, 2) coordinates and (N, K) scores of COCO results."""
    triples = np.array([r["keypoints"] for r in results], dtype=np.float64).reshape(len(results), -1, 3)
    return triples[..., :2], triples[..., 2]


def reference(trained, records, padding: float, **overrides) -> dict:
    """``evaluate`` on the records (with their true keypoints), cropped as h3r-predict crops them."""
    config = trained["config"]
    (eval_set,) = build_datasets(config, ["eval"])
    dataset = LandmarkDataset(
        records, input_size=(64, 64), train=False, flip_pairs=eval_set.flip_pairs, padding=padding
    )
    return evaluate(
        trained["model"],
        trained["codec"],
        Unnamed(dataset),
        config.eval,
        return_predictions=True,
        **overrides,
    )


def synthetic_records(trained, boxes=None, offset=(0.0, 0.0)) -> list:
    (eval_set,) = build_datasets(trained["config"], ["eval"])
    records = []
    for i, path in enumerate(trained["images"]):
        item = eval_set[i]
        box = [-0.5, -0.5, 63.5, 63.5] if boxes is None else boxes[i]
        keypoints = item["keypoints"].double().numpy() + np.asarray(offset)
        visible = 2 * item["visible"].numpy().astype(np.int64)
        records.append(make_record(path, keypoints, visible, "synthetic", str(path), box=box))
    return records


def test_whole_images_equal_evaluation(trained, tmp_path, capsys):
    """Whole-image crops of 64 x 64 test images: the crop matrix is the identity, and every coordinate
    and score is what evaluate() gives on the same files; the error against the known keypoints is
    evaluate's mean_error_orig_px, and it is close to the error on the unquantized rendered floats."""
    out = tmp_path / "out"
    code, err = run_predict(
        [
            trained["config_path"],
            "--checkpoint",
            trained["checkpoint"],
            trained["images"][0].parent,
            "--out",
            out,
        ],
        capsys,
    )
    assert code == 0, err
    results = read_results(out)
    assert [Path(r["file_name"]).name for r in results] == [p.name for p in trained["images"]]
    assert all(r["bbox"] == [-0.5, -0.5, 64.0, 64.0] for r in results)
    coords, scores = keypoints_of(results)
    ref = reference(trained, synthetic_records(trained), padding=1.0)
    p = ref["predictions"]
    np.testing.assert_array_equal(coords, p["pred"])
    np.testing.assert_array_equal(coords, p["pred_input"])  # identity crop: original = input pixels
    np.testing.assert_array_equal(scores, p["scores"])
    assert [r["score"] for r in results] == pytest.approx(p["scores"].mean(-1), abs=0, rel=1e-12)
    labelled = p["visible"] > 0
    error = np.linalg.norm(coords - p["gt"], axis=-1)[labelled].mean()
    assert error == pytest.approx(ref["mean_error_orig_px"], rel=1e-12)
    # The same model on the rendered floats (before 8-bit rounding): evaluation of the synthetic set.
    (eval_set,) = build_datasets(trained["config"], ["eval"])
    direct = evaluate(trained["model"], trained["codec"], eval_set, trained["config"].eval)
    # A tolerance, not a measurement: 8-bit rounding moves each pixel by at most 0.5 / 255, which may move
    # the decoded points a little, never by a sizeable part of the error itself.
    assert abs(error - direct["mean_error_orig_px"]) < 0.05 * direct["mean_error_orig_px"]
    overlays = sorted((out / "overlays").glob("*.png"))
    assert [o.stem for o in overlays] == sorted(p.stem for p in trained["images"])
    with Image.open(overlays[0]) as im:
        assert im.size == (256, 256)  # 64 px drawn 4x (MIN_OVERLAY_SIDE)


def test_boxes_crop_and_map_back(trained, tmp_path, capsys):
    """Each face pasted into a larger canvas at an integer offset, with a COCO box that, padded by the
    default 1.25, is exactly the pasted 64 x 64 square: the network sees the same pixels, so the
    predictions are the whole-image ones moved by the offset; and they equal evaluate() exactly."""
    offsets = [(37 + 5 * i, 21 + 3 * i) for i in range(len(trained["images"]))]
    side = 64 / 1.25
    canvas_dir = tmp_path / "canvas"
    canvas_dir.mkdir()
    images, annotations, boxes, paths = [], [], [], []
    for i, (path, (ox, oy)) in enumerate(zip(trained["images"], offsets)):
        canvas = np.full((120, 160, 3), 90, np.uint8)
        canvas[oy : oy + 64, ox : ox + 64] = np.asarray(Image.open(path).convert("RGB"))
        target = canvas_dir / path.name
        Image.fromarray(canvas).save(target)
        paths.append(target)
        cx, cy = ox + 31.5, oy + 31.5
        images.append({"id": 100 + i, "file_name": path.name, "width": 160, "height": 120})
        annotations.append({"id": i, "image_id": 100 + i, "bbox": [cx - side / 2, cy - side / 2, side, side]})
        boxes.append([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])
    boxes_file = tmp_path / "boxes.json"
    boxes_file.write_text(json.dumps({"images": images, "annotations": annotations}))
    out = tmp_path / "out"
    argv = [trained["config_path"], "--checkpoint", trained["checkpoint"], *paths, "--boxes", boxes_file]
    code, err = run_predict([*argv, "--out", out], capsys)
    assert code == 0, err
    results = read_results(out)
    assert [r["image_id"] for r in results] == [100 + i for i in range(len(paths))]
    coords, _ = keypoints_of(results)
    whole = reference(trained, synthetic_records(trained), padding=1.0)["predictions"]["pred"]
    np.testing.assert_allclose(coords, whole + np.asarray(offsets, float)[:, None, :], atol=1e-3)
    records = [
        make_record(p, r.keypoints + np.asarray(o), r.visibility, "synthetic", str(p), box=b)
        for p, r, o, b in zip(paths, synthetic_records(trained), offsets, boxes)
    ]
    np.testing.assert_array_equal(coords, reference(trained, records, padding=1.25)["predictions"]["pred"])
    for r, (ox, oy) in zip(results, offsets):
        assert r["bbox"] == pytest.approx([ox - 0.5, oy - 0.5, 64.0, 64.0], abs=1e-9)


@pytest.mark.parametrize("decoder, flip", [("topk", False), ("2x2", True)])
def test_decoder_and_flip_equal_evaluation(trained, tmp_path, capsys, decoder, flip):
    out = tmp_path / "out"
    argv = [trained["config_path"], "--checkpoint", trained["checkpoint"], *trained["images"], "--out", out]
    code, err = run_predict([*argv, "--decoder", decoder, *(["--flip"] if flip else [])], capsys)
    assert code == 0, err
    coords, scores = keypoints_of(read_results(out))
    ref = reference(
        trained, synthetic_records(trained), padding=1.0, flip_test=flip, decode_options={"method": decoder}
    )["predictions"]
    np.testing.assert_array_equal(coords, ref["pred"])
    np.testing.assert_array_equal(scores, ref["scores"])
    default = reference(trained, synthetic_records(trained), padding=1.0)["predictions"]["pred"]
    assert not np.array_equal(coords, default)  # the option reached the decoder


# -- the real sample images, with their boxes ----------------------------------------------------------------
def real_config(tmp_path: Path, name: str, flip: bool) -> tuple[Path, object]:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"data: {{name: {name}, input_size: [64, 64], num_workers: 0}}\n"
        "model: {name: tiny, output_stride: 4}\ncodec: {name: randomized_rounding}\n"
        f"train: {{device: cpu}}\neval: {{batch_size: 3, flip_test: {str(flip).lower()}}}\n"
    )
    return path, load_config(path)


def untrained_checkpoint(tmp_path: Path, config, num_keypoints: int):
    """A checkpoint of a freshly initialised network: enough to check crops, mapping and outputs."""
    torch.manual_seed(0)
    model = build_network(config, num_keypoints)
    path = save_atomic({"model": model.state_dict(), "config": config.to_json()}, tmp_path / "last.pt")
    return model, path


@pytest.mark.real_samples
@pytest.mark.parametrize(
    "name, folder, flip", [("wflw", "mmpose/wflw", True), ("coco", "mmpose/coco", False)]
)
def test_real_samples_with_their_boxes(tmp_path, capsys, name, folder, flip):
    """The mmpose sample images with the boxes of their COCO-style JSON (4 WFLW faces; 14 COCO persons,
    whose overlays carry the skeleton): predictions equal evaluate() on the same boxed records."""
    source = real_samples_dir(folder)
    boxes_file = next(source.glob("test_*.json")) if name == "wflw" else source / "test_coco.json"
    config_path, config = real_config(tmp_path, name, flip)
    K = 98 if name == "wflw" else 17
    model, checkpoint = untrained_checkpoint(tmp_path, config, K)
    images = sorted(p for p in source.iterdir() if p.suffix == ".jpg")
    out = tmp_path / "out"
    argv = [config_path, "--checkpoint", checkpoint, *images, "--boxes", boxes_file, "--out", out]
    code, err = run_predict(argv, capsys)
    assert code == 0, err
    results = read_results(out)
    data = json.loads(boxes_file.read_text())
    assert len(results) == len(data["annotations"])
    coords, _ = keypoints_of(results)
    assert coords.shape[1:] == (K, 2) and np.isfinite(coords).all()
    # The reference: the loader's records of the same file (true keypoints), cropped on their bbox only.
    loaded = {}
    for ann in data["annotations"]:
        file_name = next(i["file_name"] for i in data["images"] if i["id"] == ann["image_id"])
        x, y, w, h = ann["bbox"]
        loaded.setdefault(file_name, []).append([x, y, x + w, y + h])
    records = []
    for path in images:
        for box in loaded.get(path.name, []):
            records.append(make_record(path, np.zeros((K, 2)), np.full(K, 2), name, path.name, box=box))
    dataset = LandmarkDataset(records, input_size=(64, 64), train=False, flip_pairs=config_flip(config, K))
    codec = build_codec(config, (64, 64))
    ref = evaluate(model, codec, Unnamed(dataset), config.eval, return_predictions=True)
    np.testing.assert_array_equal(coords, ref["predictions"]["pred"])
    for path in images:
        with Image.open(out / "overlays" / f"{path.stem}.png") as overlay, Image.open(path) as original:
            assert overlay.size == original.size
            drawn = np.asarray(overlay.convert("RGB"), dtype=np.int16)
            assert np.abs(drawn - np.asarray(original.convert("RGB"), dtype=np.int16)).max() > 100


def config_flip(config, K):
    from trainers.data.flip_pairs import flip_pairs_for

    return flip_pairs_for(config.data.name, K)


@pytest.mark.real_samples
def test_dataset_root_and_split(tmp_path, capsys):
    """INPUT a dataset root with --split: the records and crops of h3r-eval's own eval set (mmpose's WFLW
    JSON, laid out as the registry reads it), predicted as evaluate() predicts them."""
    source = real_samples_dir("mmpose/wflw")
    root = tmp_path / "WFLW"
    (root / "annotations").mkdir(parents=True)
    shutil.copy(source / "test_wflw.json", root / "annotations" / "face_landmarks_wflw_test.json")
    (root / "images").mkdir()
    for image in source.glob("*.jpg"):
        (root / "images" / image.name).symlink_to(image)
    config_path, config = real_config(tmp_path, "wflw", flip=False)
    model, checkpoint = untrained_checkpoint(tmp_path, config, 98)
    out = tmp_path / "out"
    code, err = run_predict(
        [config_path, "--checkpoint", checkpoint, root, "--split", "test", "--out", out], capsys
    )
    assert code == 0, err
    coords, _ = keypoints_of(read_results(out))
    config.data.root = str(root)
    (eval_set,) = build_datasets(config, ["eval"])
    ref = evaluate(model, build_codec(config, (64, 64)), eval_set, config.eval, return_predictions=True)
    assert len(coords) == len(eval_set) == len(load_coco_keypoints(source / "test_wflw.json", source, "wflw"))
    np.testing.assert_array_equal(coords, ref["predictions"]["pred"])


# -- bad input: one line, exit status 2 ----------------------------------------------------------------------
def test_bad_inputs_exit_2_with_one_line(trained, tmp_path, capsys):
    cfg, ck, image = trained["config_path"], trained["checkpoint"], trained["images"][0]
    out = tmp_path / "out"

    def fails(argv, *expected):
        code, err = run_predict([*argv, "--out", out], capsys)
        assert code == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("h3r-predict: error: "), err
        for text in expected:
            assert str(text) in lines[0], (text, lines[0])

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    fails([cfg, "--checkpoint", ck, broken], broken, "cannot decode image")
    fails([cfg, "--checkpoint", ck, tmp_path / "absent.png"], "absent.png", "not found")
    fails([cfg, "--checkpoint", tmp_path / "absent.pt", image], "absent.pt")
    fails([tmp_path / "absent.yaml", "--checkpoint", ck, image], "absent.yaml")
    # A checkpoint of another codec (the weights alone cannot tell), and one of another model shape.
    fails(
        [cfg, "--checkpoint", ck, image, "--set", "codec.name=gaussian"],
        "codec.name",
        "randomized_rounding",
        ck,
    )
    other = tmp_path / "other.yaml"
    other.write_text(
        TINY_CONFIG.replace("num_keypoints: 12", "num_keypoints: 6").replace("OUT", str(tmp_path))
    )
    fails([other, "--checkpoint", ck, image], "does not fit", ck)
    fails([cfg, "--checkpoint", ck, image, "--decoder", "nearest"], "--decoder", "nearest", "window")
    empty = tmp_path / "empty"
    empty.mkdir()
    fails([cfg, "--checkpoint", ck, empty], empty, "holds no image file")
    fails([cfg, "--checkpoint", ck, empty, "--split", "test"], "--split", "synthetic")

    def boxes(payload) -> Path:
        path = tmp_path / "boxes.json"
        path.write_text(payload if isinstance(payload, str) else json.dumps(payload))
        return path

    entry = {"id": 1, "file_name": image.name}
    good = {"id": 1, "image_id": 1, "bbox": [10, 10, 20, 20]}
    fails([cfg, "--checkpoint", ck, image, "--boxes", tmp_path / "none.json"], "none.json", "not found")
    fails(
        [cfg, "--checkpoint", ck, image, "--boxes", boxes('{"images": [')], "boxes.json:1", "not valid JSON"
    )
    no_bbox = {"images": [entry], "annotations": [good, {"id": 2, "image_id": 1}]}
    fails([cfg, "--checkpoint", ck, image, "--boxes", boxes(no_bbox)], "boxes.json", "annotations[1]", "bbox")
    bad_numbers = {"images": [entry], "annotations": [{**good, "bbox": [1, 2, "w", 4]}]}
    fails([cfg, "--checkpoint", ck, image, "--boxes", boxes(bad_numbers)], "annotations[0].bbox")
    unknown_id = {"images": [entry], "annotations": [{**good, "image_id": 7}]}
    fails([cfg, "--checkpoint", ck, image, "--boxes", boxes(unknown_id)], "annotations[0]", "image_id 7")
    outside = {"images": [entry], "annotations": [{**good, "bbox": [500, 10, 20, 20]}]}
    fails(
        [cfg, "--checkpoint", ck, image, "--boxes", boxes(outside)],
        "outside the image",
        "64 x 64",
        image.name,
    )
    no_box = {"images": [{"id": 1, "file_name": "other.png"}], "annotations": [good]}
    fails([cfg, "--checkpoint", ck, image, "--boxes", boxes(no_box)], "no annotation has a box", image.name)
    assert not (out / "predictions.json").exists()  # nothing written by a refused run
