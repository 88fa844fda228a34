"""Gaps left after issue 24 (brief H): a decompression bomb refused when the dataset is built, a loader's
error inside a DataLoader worker shown as the same one line, and mmpose's names of the 300W splits.

Tiny files written into ``tmp_path``; the 300W test also uses the real mmpose sample (skipped without it).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from trainers import cli

pytestmark = pytest.mark.usefixtures("one_thread")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(path: Path, width: int, height: int) -> Path:
    """A 100-byte PNG whose header declares ``width`` x ``height`` RGB pixels (its data holds 64 bytes): what
    a decompression bomb looks like to a reader of the header."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
    path.write_bytes(body + _chunk(b"IEND", b""))
    return path


def wflw_root(root: Path, images: dict[str, str]) -> Path:
    """The original WFLW layout with one face per image in each split; ``images`` maps an image name to
    ``"noise"`` (a 100 x 100 image) or ``"bomb"`` (a header declaring 30000 x 30000 pixels)."""
    lists = root / "WFLW_annotations" / "list_98pt_rect_attr_train_test"
    lists.mkdir(parents=True)
    (root / "WFLW_images").mkdir()
    rng = np.random.default_rng(0)
    lines = []
    for name, kind in images.items():
        if kind == "bomb":
            bomb_png(root / "WFLW_images" / name, 30000, 30000)
        else:
            from PIL import Image

            pixels = rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "WFLW_images" / name)
        points = rng.uniform(20, 80, (98, 2)).ravel()
        fields = [f"{v:.3f}" for v in points] + ["10", "10", "90", "90"] + ["0"] * 6 + [name]
        lines.append(" ".join(fields))
    for split in ("train", "test"):
        (lists / f"list_98pt_rect_attr_{split}.txt").write_text("\n".join(lines) + "\n")
    return root


TRAIN = [
    "data.input_size=[32, 32]",
    "train.batch_size=2",
    "train.max_steps=1",
    "train.progress=false",
    "train.device=cpu",
]


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


# -- gap 1: a decompression bomb is refused when the dataset is built, before anything is written ---------
def test_a_decompression_bomb_is_refused_before_the_run_starts(tmp_path, capsys):
    names = {f"{i}.png": "noise" for i in range(3)} | {"bomb.png": "bomb"}
    root = wflw_root(tmp_path / "WFLW", names)
    out = tmp_path / "run"
    argv = ["wflw", f"data.root={root}", *TRAIN, f"train.out_dir={out}", "data.num_workers=0"]
    assert cli.train_main(argv) == 2
    line = _one_line(capsys)
    assert str(root / "WFLW_images" / "bomb.png") in line, line
    assert "900000000 pixels" in line and "decompression bomb" in line, line
    assert not out.exists()  # refused when the dataset was built, not at the first batch


def test_a_decompression_bomb_in_coco_is_refused_by_the_declared_size_check(tmp_path):
    """COCO's check of the declared sizes reads every header: a bomb there is the same ValueError naming
    the file (it was PIL's own DecompressionBombError, which the command-line tools do not catch)."""
    import json

    from trainers.data.registry import load_dataset

    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    bomb_png(root / "val2017" / "a.png", 30000, 30000)
    keypoints = sum(([10 + i, 10 + i, 2] for i in range(17)), [])
    data = {
        "images": [{"id": 1, "file_name": "a.png", "width": 30000, "height": 30000}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 40, 30], "keypoints": keypoints}
        ],
    }
    (root / "annotations" / "person_keypoints_val2017.json").write_text(json.dumps(data))
    assert len(load_dataset("coco", root, "val")) == 1  # headers are read only with check_images
    with pytest.raises(ValueError, match=r"^cannot decode image .*a\.png: Image size \(900000000 pixels\)"):
        load_dataset("coco", root, "val", check_images=True)


# -- gap 4: mmpose's file names of the 300W splits ---------------------------------------------------------
@pytest.mark.real_samples
@pytest.mark.parametrize(
    "split, stem",
    [("common", "valid_common"), ("challenge", "valid_challenge"), ("full", "valid"), ("test", "test")],
)
def test_300w_splits_are_read_from_mmposes_json_names(tmp_path, split, stem):
    """mmpose ships 300W as face_landmarks_300w_{train, valid_common, valid_challenge, valid, test}.json (the
    names of HRNet's CSVs); the loader's common / challenge / full splits must find them. The real sample's
    JSON (2 faces) is linked in under each name in turn."""
    from conftest import real_samples_dir

    from trainers.data.registry import load_dataset

    sample = real_samples_dir("mmpose/300w")
    (tmp_path / "annotations").mkdir()
    (tmp_path / "images").mkdir()
    for image in sample.glob("*.png"):
        (tmp_path / "images" / image.name).symlink_to(image)
    (tmp_path / "annotations" / f"face_landmarks_300w_{stem}.json").symlink_to(sample / "test_300w.json")
    records = load_dataset("300w", tmp_path, split, check_images=True)
    assert len(records) == 2 and {r.num_keypoints for r in records} == {68}
    assert {r.image.name for r in records} == {"indoor_020.png", "indoor_029.png"}


# -- gap 3: an error inside a DataLoader worker is the same one line as without workers -------------------
def test_a_loader_error_in_a_dataloader_worker_is_the_same_one_line(tmp_path, capsys):
    names = {f"{i}.png": "noise" for i in range(4)}
    root = wflw_root(tmp_path / "WFLW", names)
    (root / "WFLW_images" / "3.png").write_bytes(b"not an image")  # a header PIL cannot read: found at read
    lines = []
    for workers in (0, 2):
        argv = [
            "wflw",
            f"data.root={root}",
            *TRAIN,
            "train.batch_size=4",
            f"train.out_dir={tmp_path / str(workers)}",
        ]
        assert cli.train_main([*argv, f"data.num_workers={workers}"]) == 2
        lines.append(_one_line(capsys).replace(str(tmp_path / "0"), "").replace(str(tmp_path / "2"), ""))
    assert lines[0] == lines[1], lines
    assert lines[0].startswith(f"h3r-train: error: cannot decode image {root / 'WFLW_images' / '3.png'}: ")


def test_a_worker_error_keeps_its_kind_and_its_message(tmp_path):
    import torch

    from trainers.data.dataset import LandmarkDataset
    from trainers.data.records import make_record

    root = wflw_root(tmp_path / "WFLW", {"a.png": "noise"})
    points = np.random.default_rng(0).uniform(20, 80, (98, 2))
    record = make_record(root / "WFLW_images" / "gone.png", points, [2] * 98, "wflw", "list.txt:7")
    loader = torch.utils.data.DataLoader(LandmarkDataset([record], input_size=(32, 32)), num_workers=1)
    with pytest.raises(FileNotFoundError) as caught:
        next(iter(loader))
    assert str(caught.value) == f"image file not found: {root / 'WFLW_images' / 'gone.png'}"
