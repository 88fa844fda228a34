"""The HRNet-Facial CSV annotation format (Wang et al., HRNet facial landmark code), for 300W, AFLW, WFLW
and COFW alike.

Header: ``image_name, scale, [box_size,] center_w, center_h, original_0_x, original_0_y, ...``; columns are
found by name, so the AFLW variant with ``box_size`` (its NME normaliser) reads the same way. ``scale`` is
the face box size / 200; HRNet multiplies it by 1.25 at load time, we keep the plain size in pixels
(``record.size = scale * 200``) and leave padding to the transform.

Coordinates are copied from each dataset's original annotations, so the per-dataset offset of
:data:`COORDINATE_OFFSET` applies (300W: 1-based ``.pts`` numbers; AFLW and WFLW: used as 0-based, as in
HRNet and mmpose). The centre is shifted with the points, keeping box and points in one frame.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from .parsing import parse_floats, read_text
from .records import DuplicateFilter, LoadResult, check_images_exist, make_record, size_from_scale

COORDINATE_OFFSET = {"300w": 1.0, "aflw": 0.0, "wflw": 0.0, "cofw": 0.0}


def load_hrnet_csv(csv_file: Path, image_root: Path, dataset: str, check_images: bool = False) -> LoadResult:
    """Load an HRNet-Facial CSV; images are ``image_root / image_name``.

    Raises ``ValueError`` naming ``file:line`` for a wrong field count, a non-number, a non-positive
    scale or an absurd value (see :data:`~trainers.data.records.MAX_COORDINATE`), and naming the file
    for a header without the required columns. Blank rows and exact repeats of an earlier row are
    skipped and counted.
    """
    if dataset not in COORDINATE_OFFSET:
        raise ValueError(f"dataset must be one of {sorted(COORDINATE_OFFSET)}, got {dataset!r}")
    offset = COORDINATE_OFFSET[dataset]
    csv_file, image_root = Path(csv_file), Path(image_root)
    lines = read_text(csv_file, "HRNet CSV file")
    rows = list(csv.reader(lines))
    if not rows:
        raise ValueError(f"{csv_file}: empty file, expected a header line")
    header = [h.strip() for h in rows[0]]
    required = ["image_name", "scale", "center_w", "center_h"]
    missing = [c for c in required if c not in header]
    point_cols = [h for h in header if re.fullmatch(r"original_\d+_[xy]", h)]
    if missing or not point_cols or len(point_cols) % 2:
        raise ValueError(
            f"{csv_file}:1: header must contain {required} and original_<i>_x/_y columns, "
            f"found {header[:6]}{'...' if len(header) > 6 else ''}"
        )
    num_keypoints = len(point_cols) // 2
    expected_cols = [f"original_{i}_{a}" for i in range(num_keypoints) for a in "xy"]
    if point_cols != expected_cols:
        raise ValueError(f"{csv_file}:1: point columns must be original_0_x, original_0_y, ... in order")
    col = {h: i for i, h in enumerate(header)}
    point_idx = [col[c] for c in expected_cols]
    has_box_size = "box_size" in col
    result = LoadResult(source=str(csv_file))
    duplicates = DuplicateFilter()
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(not f.strip() for f in row):
            result.skip("blank line")
            continue
        where = f"{csv_file}:{lineno}"
        if len(row) != len(header):
            raise ValueError(f"{where}: expected {len(header)} comma-separated fields, found {len(row)}")
        name = row[col["image_name"]].strip()
        if not name:
            raise ValueError(f"{where}: image_name is empty")
        scale, cx, cy = parse_floats(
            [row[col[c]] for c in ("scale", "center_w", "center_h")], where, "scale/center"
        )
        if scale <= 0:
            raise ValueError(f"{where}: scale must be positive, found {scale}")
        first = duplicates.seen(tuple(f.strip() for f in row), where)
        if first is not None:
            result.skip("duplicate row (same face as an earlier row, dropped)", where=f"{where} = {first}")
            continue
        points = (
            parse_floats([row[i] for i in point_idx], where, "coordinate").reshape(num_keypoints, 2) - offset
        )
        extras = {"image_name": name, "line": lineno, "scale": scale}
        if has_box_size:
            (box_size,) = parse_floats([row[col["box_size"]]], where, "box_size")
            if box_size <= 0:
                raise ValueError(f"{where}: box_size must be positive, found {box_size}")
            extras["box_size"] = box_size
        result.append(
            make_record(
                image=image_root / name,
                keypoints=points,
                visibility=np.full(num_keypoints, 2),
                dataset=dataset,
                source=where,
                center=np.array([cx, cy]) - offset,
                size=size_from_scale(scale, where),
                extras=extras,
            )
        )
    if check_images:
        check_images_exist(result)
    return result
