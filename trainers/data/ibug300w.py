"""300W (Sagonas et al.): iBUG ``.pts`` trees, the standard splits, and the official bounding-box files.

``.pts`` files are written by Matlab tools and are 1-based: the centre of the top-left pixel is (1, 1)
(menpo's importer subtracts 1 for the same reason). The loader subtracts ``COORDINATE_OFFSET = 1`` once;
everything downstream is 0-based. The HRNet CSV copies the ``.pts`` numbers unchanged, so
:mod:`trainers.data.hrnet_csv` applies the same offset for 300W.

Directory layout of the original archives under a root::

    afw/*.pts  helen/{trainset,testset}/*.pts  lfpw/{trainset,testset}/*.pts  ibug/*.pts
    300W/01_Indoor/*.pts  300W/02_Outdoor/*.pts          (images next to their .pts, .jpg or .png)

Standard splits (counts of the full data): train = afw + helen/trainset + lfpw/trainset (3148);
common = helen/testset + lfpw/testset (554); challenge = ibug (135); full = common + challenge (689);
test = 300W indoor + outdoor (600).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .parsing import parse_floats, read_mat_v5, read_text
from .records import DuplicateFilter, LoadResult, check_images_exist, make_record

COORDINATE_OFFSET = 1.0
NUM_KEYPOINTS = 68
SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("afw", "helen/trainset", "lfpw/trainset"),
    "common": ("helen/testset", "lfpw/testset"),
    "challenge": ("ibug",),
    "full": ("helen/testset", "lfpw/testset", "ibug"),
    "test": ("300W/01_Indoor", "300W/02_Outdoor"),
}
DUPLICATE_PTS = "duplicate .pts (same points as an earlier file, dropped)"
IMAGE_SUFFIXES = (".jpg", ".png", ".jpeg", ".JPG", ".PNG", ".ppm", ".bmp")


def read_pts(path: Path, num_points: int | None = None) -> np.ndarray:
    """Read a ``.pts`` file as stored (no offset applied): (N, 2) float64.

    Format: ``version: 1`` / ``n_points: N`` / ``{`` / N lines ``x y`` / ``}``. Errors name the line.
    """
    path = Path(path)
    lines = read_text(path, ".pts file")
    body = [(i, ln.strip()) for i, ln in enumerate(lines, start=1) if ln.strip()]
    n_points = header_line = None
    start = None
    for idx, (lineno, text) in enumerate(body):
        if text.startswith("{"):
            if text != "{":
                raise ValueError(f"{path}:{lineno}: expected a line holding only '{{', found {text!r}")
            start = idx + 1
            break
        key, colon, value = text.partition(":")
        if not colon:
            raise ValueError(f"{path}:{lineno}: expected a header line 'key: value' or '{{', found {text!r}")
        if key.strip() == "n_points":
            try:
                n_points = int(value)
            except ValueError:
                raise ValueError(
                    f"{path}:{lineno}: n_points must be an integer, found {value.strip()!r}"
                ) from None
            if n_points < 1:
                raise ValueError(f"{path}:{lineno}: n_points must be >= 1, found {n_points}")
            header_line = lineno
    if start is None or n_points is None:
        raise ValueError(f"{path}: expected a header with 'n_points: N' followed by '{{', found neither/one")
    if num_points is not None and n_points != num_points:
        raise ValueError(f"{path}:{header_line}: expected n_points {num_points}, found {n_points}")
    points = []
    for lineno, text in body[start:]:
        if text.startswith("}"):
            if text != "}":
                raise ValueError(f"{path}:{lineno}: expected a line holding only '}}', found {text!r}")
            break
        tokens = text.split()
        if len(tokens) != 2:
            raise ValueError(
                f"{path}:{lineno}: expected 2 numbers 'x y', found {len(tokens)} fields: {text!r}"
            )
        points.append(parse_floats(tokens, f"{path}:{lineno}", "point"))
    else:
        raise ValueError(f"{path}: missing closing '}}'")
    if len(points) != n_points:
        raise ValueError(
            f"{path}:{lineno}: the header (line {header_line}) says n_points {n_points}, but the body "
            f"holds {len(points)} point lines"
        )
    return np.asarray(points, dtype=np.float64).reshape(n_points, 2)


def image_for(pts_path: Path) -> Path:
    """The image next to a ``.pts`` file (first existing suffix; ``.jpg`` name if none exists)."""
    for suffix in IMAGE_SUFFIXES:
        candidate = pts_path.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return pts_path.with_suffix(".jpg")


def load_pts_files(
    pts_files: list[Path],
    dataset: str = "300w",
    check_images: bool = False,
    subset: str = "",
    *,
    num_points: int | None = None,
) -> LoadResult:
    """One record per ``.pts`` file; the box is the tight box of the points (300W's ``bb_ground_truth``).

    A path listed twice, or a file whose points equal an earlier file's (a copy), is skipped and counted.
    ``num_points`` (when given) is the count every file must hold.
    """
    result = LoadResult(source=subset or "pts files")
    duplicates = DuplicateFilter()
    for pts in sorted(dict.fromkeys(Path(p) for p in pts_files)):
        points = read_pts(pts, num_points)
        first = duplicates.seen(points.tobytes(), str(pts))
        if first is not None:
            result.skip(DUPLICATE_PTS, where=f"{pts} = {first}")
            continue
        keypoints = points - COORDINATE_OFFSET
        box = np.concatenate([keypoints.min(0), keypoints.max(0)])
        result.append(
            make_record(
                image=image_for(pts),
                keypoints=keypoints,
                visibility=np.full(len(keypoints), 2),
                dataset=dataset,
                source=str(pts),
                box=box,
                extras={"subset": subset, "name": pts.stem},
            )
        )
    repeats = len(pts_files) - len({Path(p) for p in pts_files})
    if repeats:
        result.skip("duplicate .pts path (listed twice, dropped)", repeats)
    if check_images:
        check_images_exist(result)
    return result


def load_300w(root: Path, split: str, check_images: bool = False) -> LoadResult:
    """Load a standard 300W split from the original ``.pts`` trees under ``root``."""
    root = Path(root)
    if split not in SPLITS:
        raise ValueError(f"300W split must be one of {sorted(SPLITS)}, got {split!r}")
    result = LoadResult(source=f"300W {split} under {root}")
    files_by_folder = {}
    for sub in SPLITS[split]:
        folder = root / sub
        if not folder.is_dir():
            raise FileNotFoundError(
                f"300W split {split!r}: the {sub} .pts files (and images) expected at {folder} "
                f"(or HRNet's face_landmarks_300w_*.csv in {root})"
            )
        files_by_folder[sub] = sorted(folder.glob("*.pts"))
        if not files_by_folder[sub]:
            raise FileNotFoundError(f"no .pts files in {folder}")
    # Duplicates are looked for across the folders of the split too (a .pts copied from helen into afw).
    duplicates = DuplicateFilter()
    for sub, files in files_by_folder.items():
        part = load_pts_files(files, subset=sub, num_points=NUM_KEYPOINTS)
        kept = []
        for record in part:
            first = duplicates.seen(record.keypoints.tobytes(), record.source)
            if first is None:
                kept.append(record)
            else:
                part.skip(DUPLICATE_PTS, where=f"{record.source} = {first}")
        part[:] = kept
        result.merge(part)
    if check_images:  # once for the whole split, so that every missing image is listed together
        check_images_exist(result)
    return result


def load_300w_bounding_boxes(mat_file: Path) -> dict[str, dict[str, np.ndarray]]:
    """Read an official ``bounding_boxes_*.mat`` (MATLAB v5): image name -> {"detector", "ground_truth"}.

    Boxes are ``x_min, y_min, x_max, y_max`` in the ``.pts`` frame, shifted to 0-based like the points.
    """
    mat_file = Path(mat_file)
    data = read_mat_v5(mat_file, "300W bounding-box file")
    if "bounding_boxes" not in data:
        raise ValueError(
            f"{mat_file}: expected a variable 'bounding_boxes', found "
            f"{sorted(k for k in data if not k.startswith('__'))}"
        )
    boxes = {}
    for index, entry in enumerate(data["bounding_boxes"].ravel()):
        try:
            name = str(entry["imgName"].ravel()[0].ravel()[0])
            det = np.asarray(entry["bb_detector"].ravel()[0], float).reshape(4) - COORDINATE_OFFSET
            gt = np.asarray(entry["bb_ground_truth"].ravel()[0], float).reshape(4) - COORDINATE_OFFSET
        except (ValueError, IndexError, KeyError, TypeError) as err:
            raise ValueError(
                f"{mat_file}#{index}: expected fields imgName, bb_detector (4), bb_ground_truth (4): {err}"
            ) from err
        boxes[name] = {"detector": det, "ground_truth": gt}
    return boxes
