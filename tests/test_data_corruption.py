"""Randomly corrupted annotation text fed to each text loader: it either parses the text correctly or
raises a ValueError naming the file (and line); never any other exception, never a silent wrong value."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import REAL_SAMPLES, real_samples_dir
from hypothesis import given
from hypothesis import strategies as st

from trainers.data import hrnet_csv, ibug300w, wflw

PIECES = [
    "",
    " ",
    "  ",
    "\t",
    ",",
    ".",
    "-",
    "e",
    "x",
    "0",
    "7",
    "nan",
    "inf",
    "1e400",
    "--",
    "1.2.3",
    "}",
    "{",
    "\n",
]


@st.composite
def corrupted(draw, text: str) -> str:
    """``text`` with 1-3 random edits: delete a span, insert a piece, or swap a token for a piece."""
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["delete", "insert", "replace_token", "truncate"]))
        i = draw(st.integers(0, max(len(text) - 1, 0)))
        if op == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 8)) :]
        elif op == "insert":
            text = text[:i] + draw(st.sampled_from(PIECES)) + text[i:]
        elif op == "truncate":
            text = text[:i]
        else:
            tokens = re.split(r"([ ,\n])", text)
            j = draw(st.integers(0, len(tokens) - 1))
            tokens[j] = draw(st.sampled_from(PIECES))
            text = "".join(tokens)
    return text


def _sample(path_in_samples: str, lines: int) -> str:
    path = REAL_SAMPLES / path_in_samples
    return "\n".join(path.read_text().splitlines()[:lines]) if path.exists() else ""


WFLW_TEXT = _sample("wflw_original/list_98pt_test_blur.txt", 1)
PTS_TEXT = _sample("eos/image_0001.pts", 100)
CSV_TEXT = _sample("must_ai_lab_helen/face_landmarks_300w_helen5_rows.csv", 2)


def _check_error(err: ValueError, path: Path) -> None:
    assert str(path) in str(err), f"error does not name the file: {err}"


def _floats(tokens):
    return np.array([float(t) for t in tokens])


@pytest.mark.real_samples
@given(st.data())
def test_corrupted_wflw_line(data):
    real_samples_dir("wflw_original")
    text = data.draw(corrupted(WFLW_TEXT))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "list.txt"
        path.write_text(text)
        try:
            records = wflw.load_wflw(path, Path(tmp))
        except ValueError as err:
            _check_error(err, path)
            assert re.search(rf"{re.escape(str(path))}(:\d+)?: ", str(err))
            return
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(records) == len(lines) and sum(records.skipped.values()) == len(text.splitlines()) - len(lines)
    for record, line in zip(records, lines):
        tokens = line.split()
        assert np.array_equal(record.keypoints.ravel(), _floats(tokens[:196]))
        assert record.image.name == Path(tokens[-1]).name


@pytest.mark.real_samples
@given(st.data())
def test_corrupted_pts_file(data):
    real_samples_dir("eos")
    text = data.draw(corrupted(PTS_TEXT))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "face.pts"
        path.write_text(text)
        try:
            points = ibug300w.read_pts(path)
        except ValueError as err:
            _check_error(err, path)
            return
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    start = lines.index("{") + 1
    rows = [ln.split() for ln in lines[start : lines.index("}", start)]]
    assert np.array_equal(points, np.array([[float(a), float(b)] for a, b in rows]).reshape(-1, 2))


@pytest.mark.real_samples
@given(st.data())
def test_corrupted_hrnet_csv(data):
    real_samples_dir("must_ai_lab_helen")
    text = data.draw(corrupted(CSV_TEXT))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "face.csv"
        path.write_text(text)
        try:
            records = hrnet_csv.load_hrnet_csv(path, Path(tmp), "300w")
        except ValueError as err:
            _check_error(err, path)
            return
    header = [h.strip() for h in text.splitlines()[0].split(",")]
    rows = [ln.split(",") for ln in text.splitlines()[1:] if ln.strip(" ,")]
    assert len(records) == len(rows)
    first_point = header.index("original_0_x")
    for record, row in zip(records, rows):
        k = record.num_keypoints
        assert np.array_equal(record.keypoints.ravel(), _floats(row[first_point : first_point + 2 * k]) - 1.0)
        assert record.size == float(row[header.index("scale")]) * 200


# ------------------------------------------------------- specific faults (issue 13), on copies of real files
# Each test copies a real sample to tmp_path, breaks it one way, and checks the loader either refuses it
# with one message naming the file (and line or record), or loads it with the damage counted.


def _json_copy(tmp_path: Path, sample: str, edit) -> Path:
    """A copy of a real JSON sample with ``edit(data)`` applied."""
    import json

    data = json.loads((real_samples_dir() / sample).read_text())
    edit(data)
    path = tmp_path / Path(sample).name
    path.write_text(json.dumps(data))
    return path


@pytest.mark.real_samples
@pytest.mark.parametrize("encoding", ["utf-16", "binary"])
def test_json_that_is_not_utf8_names_the_file(tmp_path, encoding):
    from trainers.data import coco, mpii

    for sample, load in (
        ("mmpose/coco/test_coco.json", lambda p: coco.load_coco_keypoints(p, tmp_path)),
        ("mmpose/mpii/test_mpii.json", lambda p: mpii.load_mpii_json(p, tmp_path)),
    ):
        text = (real_samples_dir() / sample).read_text()
        path = tmp_path / Path(sample).name
        path.write_bytes(text.encode("utf-16") if encoding == "utf-16" else bytes(range(256)) * 4)
        message = "the file is UTF-16 text" if encoding == "utf-16" else "not a UTF-8 text file"
        with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: {message}"):
            load(path)


@pytest.mark.real_samples
def test_truncated_json_names_file_and_line(tmp_path):
    from trainers.data import coco

    src = (real_samples_dir("mmpose/coco") / "test_coco.json").read_text()
    path = tmp_path / "cut.json"
    path.write_text(src[: len(src) // 2])
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:(\d+): not valid JSON") as err:
        coco.load_coco_keypoints(path, tmp_path)
    line = int(re.match(rf"{re.escape(str(path))}:(\d+)", str(err.value)).group(1))
    assert 1 < line <= len(src[: len(src) // 2].splitlines())  # a line of the file, not of some buffer


@pytest.mark.real_samples
@pytest.mark.parametrize(
    "field, value, message",
    [
        ("width", "abc", "images[0]: width must be a positive number of pixels, found 'abc'"),
        ("height", -5, "images[0]: height must be a positive number of pixels, found -5"),
        ("file_name", None, "images[0]: file_name must be a non-empty string, found None"),
        ("id", [785], "images[0]: id must be an integer or a string, found [785]"),
    ],
)
def test_bad_coco_image_entries_name_the_record(tmp_path, field, value, message):
    from trainers.data import coco

    path = _json_copy(tmp_path, "mmpose/coco/test_coco.json", lambda d: d["images"][0].update({field: value}))
    with pytest.raises(ValueError, match="^" + re.escape(f"{path}: {message}")):
        coco.load_coco_keypoints(path, tmp_path)


@pytest.mark.real_samples
def test_mixed_keypoint_counts_name_both_records(tmp_path):
    from trainers.data import coco

    def drop_one_keypoint(data):
        data["annotations"][3]["keypoints"] = data["annotations"][3]["keypoints"][:-3]

    path = _json_copy(tmp_path, "mmpose/coco/test_coco.json", drop_one_keypoint)
    with pytest.raises(
        ValueError, match=r"annotations\[3\]: 16 keypoints, but .*annotations\[0\] has 17; one file must"
    ):
        coco.load_coco_keypoints(path, tmp_path)


@pytest.mark.real_samples
@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda a: a.update(bbox=[1e300, 10, 50, 50]), r"bbox values must lie within \+-1e\+06 pixels"),
        (lambda a: a.update(bbox=[10, 10, 1e300, 50]), r"bbox values must lie within \+-1e\+06 pixels"),
        (lambda a: a["keypoints"].__setitem__(0, 1e300), r"labelled keypoint coordinates must lie within"),
    ],
)
def test_absurd_coco_values_are_refused_at_load(tmp_path, edit, message):
    from trainers.data import coco

    def break_first_labelled(data):
        first = next(a for a in data["annotations"] if a["keypoints"][2] > 0 and not a.get("iscrowd"))
        edit(first)

    path = _json_copy(tmp_path, "mmpose/coco/test_coco.json", break_first_labelled)
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}: annotations\[\d+\]: {message}"):
        coco.load_coco_keypoints(path, tmp_path)


@pytest.mark.real_samples
def test_absurd_text_values_are_refused_with_file_and_line(tmp_path):
    lines = (real_samples_dir("wflw_original") / "list_98pt_test_blur.txt").read_text().splitlines()[:3]
    tokens = lines[1].split()
    tokens[7] = "1e300"
    path = tmp_path / "list.txt"
    path.write_text("\n".join([lines[0], " ".join(tokens), lines[2]]) + "\n")
    with pytest.raises(
        ValueError, match=rf"^{re.escape(str(path))}:2: labelled keypoint coordinates must lie"
    ):
        wflw.load_wflw(path, tmp_path)
    csv_lines = (
        (real_samples_dir("must_ai_lab_helen") / "face_landmarks_300w_helen5_rows.csv")
        .read_text()
        .splitlines()
    )
    row = csv_lines[2].split(",")
    row[1] = "1e307"  # scale: 200 x 1e307 overflows to inf
    path = tmp_path / "rows.csv"
    path.write_text("\n".join([csv_lines[0], csv_lines[1], ",".join(row)]) + "\n")
    with pytest.raises(
        ValueError,
        match=rf"^{re.escape(str(path))}:3: scale must be > 0 and <= 5000 \(a crop of at most 1e\+06 pixels\)",
    ):
        hrnet_csv.load_hrnet_csv(path, tmp_path, "300w")


@pytest.mark.real_samples
def test_absurd_mpii_scale_and_duplicate_persons(tmp_path):
    from trainers.data import mpii

    path = _json_copy(tmp_path, "mmpose/mpii/test_mpii.json", lambda d: d[2].update(scale=1e307))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}#2: scale must be > 0 and <= 5000"):
        mpii.load_mpii_json(path, tmp_path)
    path = _json_copy(tmp_path, "mmpose/mpii/test_mpii.json", lambda d: d.insert(3, dict(d[1])))
    records = mpii.load_mpii_json(path, tmp_path)
    assert len(records) == 5 and records.skipped == {"duplicate person (identical entry, dropped)": 1}
    assert records.examples["duplicate person (identical entry, dropped)"] == [f"{path}#3 = {path}#1"]
    assert [r.extras["entry"] for r in records] == [0, 1, 2, 4, 5]

    def conflicting_copy(data):
        data.append(dict(data[0], scale=data[0]["scale"] * 2))

    path = _json_copy(tmp_path, "mmpose/mpii/test_mpii.json", conflicting_copy)
    with pytest.raises(
        ValueError, match=rf"{re.escape(str(path))}#5: the same person .* as {re.escape(str(path))}#0"
    ):
        mpii.load_mpii_json(path, tmp_path)


@pytest.mark.real_samples
def test_duplicate_lines_and_rows_are_counted_and_dropped(tmp_path):
    lines = (real_samples_dir("wflw_original") / "list_98pt_test_blur.txt").read_text().splitlines()[:3]
    path = tmp_path / "list.txt"
    # line 4 repeats line 2, with other spacing: the same face
    path.write_text("\n".join([lines[0], lines[1], lines[2], "  " + lines[1].replace(" ", "\t")]) + "\n")
    records = wflw.load_wflw(path, tmp_path)
    reason = "duplicate line (same face as an earlier line, dropped)"
    assert [r.extras["line"] for r in records] == [1, 2, 3] and records.skipped == {reason: 1}
    assert records.examples[reason] == [f"{path}:4 = {path}:2"]
    assert f"1 {reason} (e.g. {path}:4 = {path}:2)" in records.summary()

    csv_lines = (
        (real_samples_dir("must_ai_lab_helen") / "face_landmarks_300w_helen5_rows.csv")
        .read_text()
        .splitlines()
    )
    path = tmp_path / "rows.csv"
    path.write_text("\n".join(csv_lines + [csv_lines[3], csv_lines[1]]) + "\n")
    records = hrnet_csv.load_hrnet_csv(path, tmp_path, "300w")
    reason = "duplicate row (same face as an earlier row, dropped)"
    assert len(records) == len(csv_lines) - 1 and records.skipped == {reason: 2}
    assert records.examples[reason] == [
        f"{path}:{len(csv_lines) + 1} = {path}:4",
        f"{path}:{len(csv_lines) + 2} = {path}:2",
    ]


@pytest.mark.real_samples
def test_pts_copies_are_counted_and_dropped(tmp_path):
    eos = real_samples_dir("eos")
    (tmp_path / "a.pts").write_text((eos / "image_0001.pts").read_text())
    (tmp_path / "b.pts").write_text((eos / "image_0010.pts").read_text())
    (tmp_path / "c.pts").write_text((eos / "image_0001.pts").read_text())  # a copy of a.pts
    files = [tmp_path / "a.pts", tmp_path / "b.pts", tmp_path / "c.pts", tmp_path / "b.pts"]
    records = ibug300w.load_pts_files(files)
    assert [r.extras["name"] for r in records] == ["a", "b"]
    assert records.skipped == {ibug300w.DUPLICATE_PTS: 1, "duplicate .pts path (listed twice, dropped)": 1}
    assert records.examples[ibug300w.DUPLICATE_PTS] == [f"{tmp_path / 'c.pts'} = {tmp_path / 'a.pts'}"]


@pytest.mark.real_samples
@pytest.mark.parametrize(
    "header, body_lines, message",
    [
        ("n_points: 0", 0, r":2: n_points must be >= 1, found 0"),
        (
            "n_points: 69",
            68,
            r":72: the header \(line 2\) says n_points 69, but the body holds 68 point lines",
        ),
        (
            "n_points: 68",
            67,
            r":71: the header \(line 2\) says n_points 68, but the body holds 67 point lines",
        ),
    ],
)
def test_pts_whose_n_points_disagrees_with_its_body(tmp_path, header, body_lines, message):
    lines = (real_samples_dir("eos") / "image_0001.pts").read_text().splitlines()
    points = [ln for ln in lines[3:] if ln.strip() and ln.strip() != "}"][:body_lines]
    path = tmp_path / "face.pts"
    path.write_text("\n".join(["version: 1", header, "{", *points, "}"]) + "\n")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}{message}"):
        ibug300w.load_pts_files([path])


@pytest.mark.real_samples
def test_a_folder_where_a_file_is_expected_says_so(tmp_path):
    from trainers.data import coco, cofw, mpii

    folder = tmp_path / "oops.txt"
    folder.mkdir()
    loaders = [
        lambda p: wflw.load_wflw(p, tmp_path),
        lambda p: hrnet_csv.load_hrnet_csv(p, tmp_path, "300w"),
        lambda p: ibug300w.read_pts(p),
        lambda p: coco.load_coco_keypoints(p, tmp_path),
        lambda p: mpii.load_mpii_json(p, tmp_path),
        lambda p: mpii.load_mpii_gt_valid(p),
        lambda p: cofw.load_cofw(p, "test"),
        lambda p: ibug300w.load_300w_bounding_boxes(p),
    ]
    for load in loaders:
        with pytest.raises(
            IsADirectoryError, match=rf"expected at {re.escape(str(folder))}, but that is a folder"
        ):
            load(folder)


@pytest.mark.real_samples
@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_unreadable_mat_files_name_the_file(tmp_path, damage):
    from trainers.data import cofw, mpii

    def damaged(src: Path, name: str) -> Path:
        data = src.read_bytes()
        path = tmp_path / name
        path.write_bytes(
            {"truncated": data[: len(data) // 2], "garbage": b"MATLAB? no." * 40, "empty": b""}[damage]
        )
        return path

    boxes = damaged(real_samples_dir("ibug300w_bboxes") / "bounding_boxes_afw.mat", "boxes.mat")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(boxes))}: not a readable MATLAB file"):
        ibug300w.load_300w_bounding_boxes(boxes)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(boxes))}: not a readable MATLAB file"):
        mpii.load_mpii_gt_valid(boxes)
    data = real_samples_dir("cofw68_benchmark/COFW68_Data")
    annotations = tmp_path / "test_annotations"
    annotations.mkdir()
    for i in (1, 2, 3):
        (annotations / f"{i}_points.mat").write_bytes(
            (data / "test_annotations" / f"{i}_points.mat").read_bytes()
        )
    assert len(cofw.load_cofw68(annotations)) == 3
    bad = damaged(data / "test_annotations" / "2_points.mat", "test_annotations/2_points.mat")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(bad))}: not a readable MATLAB file"):
        cofw.load_cofw68(annotations)
    (annotations / "2_points.mat").write_bytes((data / "test_annotations" / "2_points.mat").read_bytes())
    bad_boxes = damaged(data / "cofw68_test_bboxes.mat", "bboxes.mat")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(bad_boxes))}: not a readable MATLAB file"):
        cofw.load_cofw68(annotations, bad_boxes)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(bad_boxes))}: not a readable MATLAB file"):
        cofw.load_cofw(bad_boxes, "test")


JSON_SAMPLES = {
    "coco": "mmpose/coco/test_coco.json",
    "wflw": "mmpose/wflw/test_wflw.json",
    "aflw": "mmpose/aflw/test_aflw.json",
    "mpii": "mmpose/mpii/test_mpii.json",
}
BAD_JSON_VALUES = [None, "abc", "", [], {}, [None], [[1, 2]], {"a": 1}, True, 0, -1, 1e300, float("nan")]


def _json_paths(node, prefix=()):
    """Paths (tuples of keys / indices) to every value in the first three items of each list."""
    if prefix:
        yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node[:3]) if isinstance(node, list) else ()
    for key, child in items:
        yield from _json_paths(child, prefix + (key,))


@pytest.mark.real_samples
@pytest.mark.parametrize("name", sorted(JSON_SAMPLES))
@given(st.data())
def test_any_json_field_replaced_by_a_bad_value_is_loaded_or_refused_naming_the_file(name, data):
    import json

    from trainers.data import coco, mpii

    base = json.loads((real_samples_dir() / JSON_SAMPLES[name]).read_text())
    path = data.draw(st.sampled_from(list(_json_paths(base))))
    node = base
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = data.draw(st.sampled_from(BAD_JSON_VALUES))
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "bad.json"
        file.write_text(json.dumps(base))
        try:
            if name == "mpii":
                records = mpii.load_mpii_json(file, Path(tmp))
            else:
                records = coco.load_coco_keypoints(file, Path(tmp), name)
        except ValueError as err:
            assert str(file) in str(err), f"{path}: error does not name the file: {err}"
            return
    for record in records:  # what loads is sane: finite, bounded labelled keypoints and a usable crop
        labelled = record.keypoints[record.visibility > 0]
        assert np.isfinite(labelled).all() and (np.abs(labelled) <= 1e6).all()
        center, size = record.crop_center_and_size()
        assert np.isfinite(center).all() and np.isfinite(size).all()
