"""``h3r-check-data`` (trainers.data.check): ok with the right counts on each dataset's real sample laid out as
the loaders expect, and on broken copies (a missing file, a truncated line, a missing or corrupt image, an
empty folder, a wrong markup, bad arguments) a line that names what is wrong and the right exit status, never
a traceback.

The real samples (../shared/data/real_samples) are arranged into dataset roots in ``tmp_path`` with symbolic
links, as a user would arrange the downloaded files; counts are those of the samples' READMEs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, real_samples_dir

from trainers.data import check

# dataset -> (sample folder, annotation file in it, its place under the root, image folder under the root,
# split, records, keypoints, distinct images). Records: the mmpose README's instance counts; COCO's 14
# persons include 2 with num_keypoints 0, which the loader skips (counted) as in training.
SAMPLES = {
    "wflw": ("mmpose/wflw", "test_wflw.json", "annotations/face_landmarks_wflw_test.json", "images", "test", 4, 98, 2),
    "300w": ("mmpose/300w", "test_300w.json", "annotations/face_landmarks_300w_test.json", "images", "test", 2, 68, 2),
    "cofw": ("mmpose/cofw", "test_cofw.json", "annotations/cofw_test.json", "images", "test", 2, 29, 2),
    "aflw": ("mmpose/aflw", "test_aflw.json", "annotations/face_landmarks_aflw_test.json", "images", "test", 2, 19, 2),
    "mpii": ("mmpose/mpii", "test_mpii.json", "annot/valid.json", "images", "valid", 5, 16, 5),
    "coco": ("mmpose/coco", "test_coco.json", "annotations/person_keypoints_val2017.json", "val2017", "val2017", 12, 17, 4),
}  # fmt: skip
IMAGE_SUFFIXES = (".jpg", ".png")


def _link(target: Path, link: Path) -> Path:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return link


def sample_root(
    tmp_path: Path, name: str, annotation: str | None = None, folder_name: str | None = None
) -> Path:
    """The real sample of ``name`` as a dataset root ``tmp_path / (folder_name or name)``: its annotation file
    where the loader looks, its images in the image folder, and for MPII the validation ground truth (head
    boxes) as ``annot/gt_valid.mat``. ``annotation`` replaces the sample's annotation file name (a wrong file
    in the right place)."""
    folder, ann, place, images, *_ = SAMPLES[name]
    source = real_samples_dir(folder)
    root = tmp_path / (folder_name or name)
    _link(source / (annotation or ann), root / place)
    for image in sorted(source.iterdir()):
        if image.suffix in IMAGE_SUFFIXES:
            _link(image, root / images / image.name)
    if name == "mpii":
        _link(
            real_samples_dir("mpii_eval_bearpaw") / "detections_our_format.mat", root / "annot/gt_valid.mat"
        )
    return root


def run(capsys, *argv) -> tuple[int, list[str], list[str]]:
    """Exit status, stdout lines and stderr lines of ``h3r-check-data argv``."""
    status = check.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out.splitlines(), err.splitlines()


def line(lines: list[str], split: str, what: str) -> list[str]:
    """The report line of ``what`` in ``split``, as its fields [split, check, status, detail]."""
    found = [ln.split(None, 3) for ln in lines if ln.split(None, 2)[:2] == [split, what]]
    assert len(found) == 1, f"expected one {split} {what} line in:\n" + "\n".join(lines)
    return found[0]


@pytest.mark.real_samples
@pytest.mark.parametrize("name", list(SAMPLES))
def test_each_real_sample_is_usable_with_its_counts(tmp_path, capsys, name):
    *_, split, records, keypoints, images = SAMPLES[name]
    root = sample_root(tmp_path, name)
    status, out, err = run(capsys, name, root, "--split", split)
    assert status == 0 and err == []
    assert out[-1].startswith("verdict: usable")
    _, _, state, detail = line(out, split, "annotations")
    assert state == "ok" and detail == str(root / SAMPLES[name][2])
    assert line(out, split, "records")[2:] == [
        "ok",
        f"{records} records; skipped: " + ("2 fewer than 1 labelled keypoints" if name == "coco" else "none"),
    ]
    assert line(out, split, "keypoints")[3].startswith(
        f"{keypoints} per record in {records}/{records} records"
    )
    assert line(out, split, "boxes")[2:] == [
        "ok",
        f"{records}/{records} boxes present, {records}/{records} crops valid",
    ]
    expected_images = f"{records}/{records} records' images present ({images} distinct, {images} files); {images}/{images} sampled images decode"
    assert line(out, split, "images")[2:] == ["ok", expected_images]
    normaliser = [ln for ln in out if " normaliser " in ln]
    if name == "coco":
        assert normaliser == []  # OKS: no per-record normaliser to check
    else:
        assert line(out, split, "normaliser")[2:3] == ["ok"]
        assert line(out, split, "normaliser")[3].startswith(f"{records}/{records} positive")
    # every line but the header, the title and the verdict is a check, all ok
    assert [ln.split()[2] for ln in out[2:-1]] == ["ok"] * (len(out) - 3)


@pytest.mark.real_samples
def test_mpii_valid_without_gt_valid_says_the_head_boxes_are_missing(tmp_path, capsys):
    root = sample_root(tmp_path, "mpii")
    (root / "annot/gt_valid.mat").unlink()
    status, out, _ = run(capsys, "mpii", root, "--split", "valid")
    assert status == 1 and out[-1].startswith(
        "verdict: NOT usable (1 of 6 checks failed: valid normaliser MISSING"
    )
    _, _, state, detail = line(out, "valid", "normaliser")
    assert (
        state == "MISSING"
        and detail.startswith("5/5 records have no 'head_size'")
        and "annot/gt_valid.mat" in detail
    )


@pytest.mark.real_samples
def test_default_splits_name_the_missing_one_and_the_usable_one(tmp_path, capsys):
    """The sample has MPII's validation list only: train (the config's train split) is MISSING, valid is fine."""
    root = sample_root(tmp_path, "mpii")
    status, out, _ = run(capsys, "mpii", root)
    assert status == 1
    assert line(out, "train", "annotations")[2:3] == ["MISSING"]
    assert line(out, "train", "annotations")[3].startswith(
        f"MPII annotation list expected at {root}/annot/train.json"
    )
    assert out[-1] == (
        "verdict: NOT usable (1 of 7 checks failed: train annotations MISSING; splits without a problem: valid)"
    )


@pytest.mark.real_samples
def test_original_wflw_lists_without_images(tmp_path, capsys):
    """The ORIGINAL WFLW subset lists (annotations only): annotations, counts and crops ok, images MISSING."""
    source = real_samples_dir("wflw_original")
    root = tmp_path / "WFLW"
    for subset in ("blur", "makeup"):
        _link(
            source / f"list_98pt_test_{subset}.txt",
            root / f"WFLW_annotations/list_98pt_test/list_98pt_test_{subset}.txt",
        )
    status, out, _ = run(capsys, "wflw", root, "--split", "test_blur", "--split", "test_makeup")
    assert status == 1
    for split, records in (("test_blur", 773), ("test_makeup", 206)):
        lines = (source / f"list_98pt_test_{split[5:]}.txt").read_text().splitlines()
        distinct = len({ln.split()[-1] for ln in lines})
        assert line(out, split, "records")[2:] == ["ok", f"{records} records; skipped: none"]
        assert line(out, split, "boxes")[3].startswith(
            f"0/{records} boxes present, {records}/{records} crops valid"
        )
        _, _, state, detail = line(out, split, "images")
        assert state == "MISSING" and detail.startswith(
            f"{distinct}/{distinct} image files not found, e.g. {root}/WFLW_images/"
        )
    assert (
        out[-1]
        == "verdict: NOT usable (2 of 12 checks failed: test_blur images MISSING, test_makeup images MISSING)"
    )


@pytest.mark.real_samples
def test_300w_hrnet_csv_with_images(tmp_path, capsys):
    """HRNet's CSV route: the 5 HELEN rows as the common split's CSV, their images under root/images."""
    source = real_samples_dir("must_ai_lab_helen")
    root = tmp_path / "300W"
    _link(source / "face_landmarks_300w_helen5_rows.csv", root / "face_landmarks_300w_valid_common.csv")
    _link(source / "helen/testset", root / "images/helen/testset")
    status, out, _ = run(capsys, "300w", root, "--split", "common")
    assert status == 0
    assert line(out, "common", "records")[2:] == ["ok", "5 records; skipped: none"]
    assert line(out, "common", "images")[2:] == [
        "ok",
        "5/5 records' images present (5 distinct, 5 files); 5/5 sampled images decode",
    ]


# ------------------------------------------------------------------------------ broken copies


@pytest.mark.real_samples
def test_missing_annotation_file_is_named_with_what_the_root_holds(tmp_path, capsys):
    source = real_samples_dir("wflw_original")
    root = tmp_path / "WFLW"
    _link(
        source / "list_98pt_test_blur.txt", root / "WFLW_annotations/list_98pt_test/list_98pt_test_blur.txt"
    )
    status, out, err = run(
        capsys, "wflw", root, "--split", "test_blur", "--split", "test_makeup", "--images", "0"
    )
    assert status == 1 and err == []
    _, _, state, detail = line(out, "test_makeup", "annotations")
    expected = root / "WFLW_annotations/list_98pt_test/list_98pt_test_makeup.txt"
    assert state == "MISSING" and detail.startswith(
        f"WFLW list file expected at {expected}; root holds WFLW_annotations/"
    )
    assert line(out, "test_blur", "annotations")[2] == "ok"  # the split that is there is still checked


@pytest.mark.real_samples
def test_truncated_line_is_named_by_file_and_line(tmp_path, capsys):
    lines = (real_samples_dir("wflw_original") / "list_98pt_test_makeup.txt").read_text().splitlines()
    lines[6] = " ".join(lines[6].split()[:120])  # a line cut short, as by an interrupted copy
    path = tmp_path / "WFLW/WFLW_annotations/list_98pt_test/list_98pt_test_makeup.txt"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(lines) + "\n")
    status, out, _ = run(capsys, "wflw", tmp_path / "WFLW", "--split", "test_makeup")
    assert status == 1
    _, _, state, detail = line(out, "test_makeup", "annotations")
    assert (
        state == "BAD"
        and detail.startswith(f"{path}:7: expected 207 fields")
        and detail.endswith("found 120")
    )
    assert out[-1] == "verdict: NOT usable (1 of 1 checks failed: test_makeup annotations BAD)"


@pytest.mark.real_samples
def test_missing_image_is_named(tmp_path, capsys):
    root = sample_root(tmp_path, "coco")
    gone = root / "val2017/000000040083.jpg"
    gone.unlink()
    status, out, _ = run(capsys, "coco", root, "--split", "val2017")
    assert status == 1
    assert line(out, "val2017", "images")[2:] == ["MISSING", f"1/4 image files not found, e.g. {gone}"]
    assert line(out, "val2017", "records")[2] == "ok"  # the annotations are fine; only the image is missing


@pytest.mark.real_samples
def test_corrupt_image_is_named(tmp_path, capsys):
    root = sample_root(tmp_path, "aflw")
    image = root / "images/image04476.jpg"
    data = image.read_bytes()
    image.unlink()
    image.write_bytes(data[: len(data) // 3])  # a download cut off a third of the way
    status, out, _ = run(capsys, "aflw", root, "--split", "test")
    assert status == 1
    _, _, state, detail = line(out, "test", "images")
    assert state == "BAD" and "1/2 sampled images decode" in detail and f"cannot decode {image} (" in detail


@pytest.mark.real_samples
def test_wrong_markup_is_bad_keypoints(tmp_path, capsys):
    """HRNet's 300W test CSV (68 points) where AFLW's (19 points) belongs: the loader reads it, the check
    names the records whose point count is not AFLW's."""
    csv = real_samples_dir("hrnet_csv_300w") / "face_landmarks_300w_test.csv"
    root = tmp_path / "AFLW"
    _link(csv, root / "face_landmarks_aflw_test.csv")
    status, out, _ = run(capsys, "aflw", root, "--split", "test")
    assert status == 1
    assert line(out, "test", "records")[2:] == ["ok", "600 records; skipped: none"]
    _, _, state, detail = line(out, "test", "keypoints")
    first = root / "face_landmarks_aflw_test.csv"
    assert state == "BAD" and detail.startswith(f"600 record(s) without 19 keypoints: {first}:2, {first}:3,")
    assert detail.endswith("and 597 more")


@pytest.mark.parametrize("name", check.DATASETS)
def test_empty_folder_is_missing_for_every_split(tmp_path, capsys, name):
    status, out, err = run(capsys, name, tmp_path)
    splits = check.default_splits(name)
    assert status == 1 and err == [] and len(splits) >= 1
    for split in splits:
        _, _, state, detail = line(out, split, "annotations")
        assert state == "MISSING" and "expected" in detail and "root is empty" in detail
    assert out[-1].startswith(f"verdict: NOT usable ({len(splits)} of {len(splits)} checks failed")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["wflv", "{root}"], "h3r-check-data: error: unknown dataset 'wflv'; expected one of: wflw, 300w,"),
        (["wflw", "{file}"], "h3r-check-data: error: root {file} is not a folder"),
        (["wflw", "{root}/absent"], "h3r-check-data: error: root {root}/absent does not exist"),
        (
            ["wflw", "{root}", "--split", "val"],
            "h3r-check-data: error: wflw has no split 'val'; expected one of: train,",
        ),
        (["wflw", "{root}", "--images", "-1"], "h3r-check-data: error: --images must be >= 0, got -1"),
        (
            ["wflw", "{root}", "--images", "ten"],
            "h3r-check-data: error: argument --images: invalid int value: 'ten'",
        ),
        (["wflw"], "h3r-check-data: error: the following arguments are required: root"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, argv, message):
    file = tmp_path / "notes.txt"
    file.write_text("not a dataset\n")
    argv = [a.format(root=tmp_path, file=file) for a in argv]
    try:
        status = check.main(argv)
    except (
        SystemExit
    ) as exc:  # argparse's own errors (a missing or non-integer argument) exit from parse_args
        status = exc.code
    out, err = capsys.readouterr()
    assert status == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith(message.format(root=tmp_path, file=file))


@pytest.mark.real_samples
def test_the_command_line_never_prints_a_traceback(tmp_path):
    """As a user runs it: ``python -m trainers.data.check``, a bad name (2) and a broken root (1)."""
    lines = (real_samples_dir("wflw_original") / "list_98pt_test_blur.txt").read_text().splitlines()
    path = tmp_path / "WFLW/WFLW_annotations/list_98pt_test/list_98pt_test_blur.txt"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(lines[:3] + ["garbage"]) + "\n")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for argv, status in (
        (["nope", str(tmp_path)], 2),
        (["wflw", str(tmp_path / "WFLW"), "--split", "test_blur"], 1),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "trainers.data.check", *argv],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == status, done.stderr
        assert "Traceback" not in done.stdout + done.stderr
    assert f"{path}:4: expected 207 fields" in done.stdout


def test_default_splits_are_the_bundled_configs():
    assert check.default_splits("wflw") == ("train", "test")
    assert check.default_splits("coco") == ("train2017", "val2017")
    assert check.default_splits("mpii") == ("train", "valid")
    assert check.default_splits("cofw68") == ("test",)  # no config: its only split


def test_sample_is_evenly_spaced_and_bounded():
    assert check._sample(list(range(10)), 3) == [0, 4, 9]  # linspace 0, 4.5, 9 rounded half to even
    assert check._sample(list(range(2)), 20) == [0, 1]
    assert check._sample(list(range(5)), 0) == []


@pytest.mark.real_samples
def test_the_outputs_shown_in_docs_data_md_are_what_the_command_prints(tmp_path, capsys, monkeypatch):
    """Each ``$ h3r-check-data ...`` block of docs/data.md, run again on the roots it describes."""
    text = (REPO_ROOT / "docs/data.md").read_text()
    blocks = [b.split("```", 1)[0].strip("\n").splitlines() for b in text.split("```\n$ h3r-check-data ")[1:]]
    assert len(blocks) == 3
    sample_root(tmp_path, "wflw", folder_name="WFLW")
    sample_root(tmp_path, "mpii", folder_name="MPII")
    lists = real_samples_dir("wflw_original") / "list_98pt_test_makeup.txt"
    _link(lists, tmp_path / "WFLW_lists/WFLW_annotations/list_98pt_test/list_98pt_test_makeup.txt")
    monkeypatch.chdir(tmp_path)  # the page shows roots relative to where the command ran
    for block in blocks:
        argv, shown = block[0].split(), block[1:]
        status, out, err = run(capsys, *argv)
        assert err == [] and status == (0 if shown[-1].startswith("verdict: usable") else 1)
        assert out == shown, f"docs/data.md shows another output for h3r-check-data {block[0]}"
