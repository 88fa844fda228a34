"""LandmarkDataset on the real samples: the sample contract, exact keypoint/pixel geometry, normalisers,
and the load_dataset front door on the original layouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import real_samples_dir

from trainers.data import coco, mpii
from trainers.data.dataset import LandmarkDataset, normalizer
from trainers.data.flip_pairs import FLIP_PAIRS
from trainers.data.registry import load_dataset
from trainers.data.transforms import invert, transform_points

FACE_SETS = ("wflw", "300w", "cofw", "aflw")


def _face_records(name):
    folder = real_samples_dir(f"mmpose/{name}")
    return coco.load_coco_keypoints(folder / f"test_{name}.json", folder, name)


@pytest.mark.real_samples
@pytest.mark.parametrize("name", FACE_SETS + ("coco",))
def test_sample_contract_and_exact_keypoints(name):
    records = _face_records(name)
    ds = LandmarkDataset(records, input_size=(128, 96), train=False, flip_pairs=FLIP_PAIRS[name])
    assert ds.num_keypoints == records[0].num_keypoints and ds.input_size == (128, 96)
    sample = ds[0]
    K = ds.num_keypoints
    assert sample["image"].shape == (3, 96, 128) and sample["image"].dtype == torch.float32
    assert (
        0 <= float(sample["image"].min())
        and float(sample["image"].max()) <= 1
        and sample["image"].std() > 0.01
    )
    assert sample["keypoints"].shape == (K, 2) and sample["keypoints"].dtype == torch.float32
    assert sample["visible"].shape == (K,) and sample["visible"].dtype == torch.float32
    assert (
        sample["matrix"].shape == (2, 3) and sample["matrix"].dtype == torch.float64 and sample["index"] == 0
    )
    vis = sample["visible"] > 0
    assert torch.equal(vis, torch.as_tensor(records[0].visibility > 0))
    mapped = transform_points(torch.as_tensor(records[0].keypoints)[None], sample["matrix"][None])[0]
    assert torch.allclose(sample["keypoints"][vis].double(), mapped[vis], atol=1e-4)
    back = transform_points(sample["keypoints"].double()[None], invert(sample["matrix"][None]))[0]
    assert torch.allclose(back[vis], torch.as_tensor(records[0].keypoints)[vis], atol=1e-3)
    if name != "coco":  # the face crop holds the whole face
        kp = sample["keypoints"][vis]
        assert ((kp > -0.5) & (kp < torch.tensor([127.5, 95.5]))).all()


@pytest.mark.real_samples
def test_training_flip_swaps_pairs_and_matrix_mirrors():
    records = _face_records("300w")
    ds = LandmarkDataset(
        records,
        (64, 64),
        train=True,
        flip_pairs=FLIP_PAIRS["300w"],
        flip_prob=1.0,
        rotation_prob=0.0,
        scale_range=(1.0, 1.0),
        translation=0.0,
        color=0.0,
        dtype=torch.float64,
    )
    plain = LandmarkDataset(records, (64, 64), train=False, dtype=torch.float64)
    torch.manual_seed(0)
    s, p = ds[1], plain[1]
    # same crop, mirrored: keypoint k of the flipped sample is the mirror of its partner in the plain one
    perm = torch.tensor(
        [dict(FLIP_PAIRS["300w"] + [(b, a) for a, b in FLIP_PAIRS["300w"]]).get(k, k) for k in range(68)]
    )
    assert torch.allclose(s["keypoints"][:, 0], 63 - p["keypoints"][perm, 0], atol=1e-9)
    assert torch.allclose(s["keypoints"][:, 1], p["keypoints"][perm, 1], atol=1e-9)
    assert torch.allclose(s["image"], torch.flip(p["image"], dims=(-1,)), atol=1e-9)
    # left eye outer corner (36) stays on the image's left of the right one (45), as in an upright face
    assert s["keypoints"][36, 0] < s["keypoints"][45, 0]


@pytest.mark.real_samples
def test_training_augmentation_keeps_keypoints_on_the_pixels():
    """A bright dot painted under each keypoint must still be under it after a random train transform."""
    from trainers.data.transforms import warp_image

    records = _face_records("aflw")
    ds = LandmarkDataset(
        records, (96, 96), train=True, flip_pairs=FLIP_PAIRS["aflw"], color=0.0, dtype=torch.float64
    )
    torch.manual_seed(3)
    for _ in range(5):
        M, flipped = ds.matrix_for(0)
        kp = torch.as_tensor(records[0].keypoints)[None]
        mapped = transform_points(kp, M[None])[0]
        ys, xs = torch.meshgrid(
            torch.arange(1280.0, dtype=torch.float64), torch.arange(853.0, dtype=torch.float64), indexing="ij"
        )
        x0, y0 = kp[0, 13]
        dot = torch.exp(-((xs - x0) ** 2 + (ys - y0) ** 2) / (2 * 6.0**2))[None, None]
        warped = warp_image(dot, M[None], (96, 96))[0, 0]
        w = warped / warped.sum()
        gy, gx = torch.meshgrid(
            torch.arange(96.0, dtype=torch.float64), torch.arange(96.0, dtype=torch.float64), indexing="ij"
        )
        centroid = torch.stack([(w * gx).sum(), (w * gy).sum()])
        assert (centroid - mapped[13]).abs().max() < 0.05


@pytest.mark.real_samples
def test_normalizers():
    wflw_records = _face_records("wflw")
    ds = LandmarkDataset(wflw_records, (64, 64))
    assert ds.normalizer(0) == pytest.approx(
        np.linalg.norm(wflw_records[0].keypoints[60] - wflw_records[0].keypoints[72])
    )
    r300 = _face_records("300w")[0]
    assert normalizer(r300) == pytest.approx(np.linalg.norm(r300.keypoints[36] - r300.keypoints[45]))
    rcofw = _face_records("cofw")[0]
    assert normalizer(rcofw) == pytest.approx(np.linalg.norm(rcofw.keypoints[8] - rcofw.keypoints[9]))
    assert [normalizer(r) for r in _face_records("aflw")] == [362.0, 128.0]
    folder = real_samples_dir("mmpose/mpii")
    people = mpii.load_mpii_json(folder / "test_mpii.json", folder)
    with pytest.raises(ValueError, match="no head box"):
        normalizer(people[0])
    mpii.attach_head_boxes(
        people, mpii.load_mpii_gt_valid(real_samples_dir("mpii_eval_bearpaw") / "detections_our_format.mat")
    )
    assert all(20 < normalizer(p) < 1000 for p in people)
    with pytest.raises(ValueError, match="no NME normaliser"):
        normalizer(_face_records("coco")[0])


@pytest.mark.real_samples
def test_dataset_argument_errors():
    records = _face_records("aflw")
    with pytest.raises(ValueError, match="flip_pairs"):
        LandmarkDataset(records, (64, 64), train=True)
    with pytest.raises(ValueError, match="input_size"):
        LandmarkDataset(records, (64, 0))
    with pytest.raises(ValueError, match="same number of keypoints"):
        LandmarkDataset(list(records) + list(_face_records("cofw")), (64, 64))
    with pytest.raises(FileNotFoundError, match="image22568.jpg"):
        LandmarkDataset(
            coco.load_coco_keypoints(
                real_samples_dir("mmpose/aflw") / "test_aflw.json", real_samples_dir(), "aflw"
            ),
            (64, 64),
            check_images=True,
        )


@pytest.mark.real_samples
def test_dataloader_batches():
    ds = LandmarkDataset(_face_records("wflw"), (64, 64), train=True, flip_pairs=FLIP_PAIRS["wflw"])
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["image"].shape == (4, 3, 64, 64) and batch["keypoints"].shape == (4, 98, 2)
    assert batch["matrix"].dtype == torch.float64 and batch["index"].tolist() == [0, 1, 2, 3]


# ---------------------------------------------------------------- load_dataset


def _link(dst, src):
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(src)


@pytest.mark.real_samples
def test_load_dataset_original_layouts(tmp_path):
    R = real_samples_dir()
    _link(
        tmp_path / "wflw/WFLW_annotations/list_98pt_test/list_98pt_test_blur.txt",
        R / "wflw_original/list_98pt_test_blur.txt",
    )
    assert len(load_dataset("wflw", tmp_path / "wflw", "test_blur")) == 773
    _link(
        tmp_path / "300w/face_landmarks_300w_valid_challenge.csv",
        R / "hrnet_csv_300w/face_landmarks_300w_valid_challenge.csv",
    )
    assert len(load_dataset("300w", tmp_path / "300w", "challenge")) == 135
    _link(tmp_path / "mpii/annot/valid.json", R / "mmpose/mpii/test_mpii.json")
    _link(tmp_path / "mpii/annot/gt_valid.mat", R / "mpii_eval_bearpaw/detections_our_format.mat")
    _link(tmp_path / "mpii/images", R / "mmpose/mpii")
    people = load_dataset("mpii", tmp_path / "mpii", "valid", check_images=True)
    assert len(people) == 5 and all("head_size" in p.extras for p in people)
    _link(tmp_path / "coco/annotations/person_keypoints_val2017.json", R / "mmpose/coco/test_coco.json")
    _link(tmp_path / "coco/val2017", R / "mmpose/coco")
    assert len(load_dataset("coco", tmp_path / "coco", "val", check_images=True)) == 12
    _link(tmp_path / "cofw68/COFW68_Data", R / "cofw68_benchmark/COFW68_Data")
    assert len(load_dataset("cofw68", tmp_path / "cofw68", "test")) == 507
    # mmpose's converted face JSON, read when the original files are absent
    _link(tmp_path / "aflw/annotations/face_landmarks_aflw_test.json", R / "mmpose/aflw/test_aflw.json")
    _link(tmp_path / "aflw/images", R / "mmpose/aflw")
    faces = load_dataset("aflw", tmp_path / "aflw", "test", check_images=True)
    assert len(faces) == 2 and faces[0].extras["box_size"] == 362.0
    _link(tmp_path / "cofw/annotations/cofw_test.json", R / "mmpose/cofw/test_cofw.json")
    _link(tmp_path / "cofw/images", R / "mmpose/cofw")
    assert len(load_dataset("cofw", tmp_path / "cofw", "test", check_images=True)) == 2


def test_load_dataset_says_where_files_are_expected(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("lsp", tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="root folder not found"):
        load_dataset("wflw", tmp_path / "absent", "train")
    expectations = {
        ("wflw", "train"): "list_98pt_rect_attr_train.txt",
        ("300w", "common"): "helen/testset",
        ("cofw", "test"): "COFW_test_color.mat",
        ("cofw68", "test"): "test_annotations",
        ("aflw", "test"): "face_landmarks_aflw_test.csv",
        ("mpii", "valid"): "annot/valid.json",
        ("coco", "val"): "person_keypoints_val2017.json",
    }
    for (name, split), where in expectations.items():
        with pytest.raises(FileNotFoundError, match=f"expected at .*{where}"):
            load_dataset(name, tmp_path, split)
    with pytest.raises(ValueError, match="split must be"):
        load_dataset("wflw", tmp_path, "valid")
