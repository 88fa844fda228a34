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
