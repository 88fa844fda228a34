"""WFLW (Wu et al., CVPR 2018): 98 landmarks, ORIGINAL text lists.

Two line formats, one face per line, whitespace separated:

* ``list_98pt_rect_attr_{train,test}.txt``: 207 fields = 196 coordinates ``x0 y0 ... x97 y97``, the
  detection rectangle ``x_min y_min x_max y_max``, six 0/1 attributes (pose, expression, illumination,
  make-up, occlusion, blur) and the image name relative to ``WFLW_images/``.
* ``list_98pt_test*.txt`` (the full test list and the six attribute subsets): 197 fields = 196
  coordinates + image name. The subset a file belongs to is recorded in ``extras["subset"]``.

Coordinates: the authors state no origin; HRNet, mmpose and H3R use the numbers unchanged as 0-based
pixel positions, and so do we (``COORDINATE_OFFSET = 0``), so that NME matches the published protocol.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .parsing import check_box, parse_flags, parse_floats, read_text
from .records import DuplicateFilter, LoadResult, check_images_exist, make_record

NUM_KEYPOINTS = 98
COORDINATE_OFFSET = 0.0  # subtracted from the file's numbers (0: already 0-based, see module docstring)
ATTRIBUTES = ("pose", "expression", "illumination", "makeup", "occlusion", "blur")
# File-name words of the six official test subsets -> attribute they select.
SUBSET_ATTRIBUTE = {
    "largepose": "pose",
    "expression": "expression",
    "illumination": "illumination",
    "makeup": "makeup",
    "occlusion": "occlusion",
    "blur": "blur",
}
_FULL_FIELDS = 2 * NUM_KEYPOINTS + 4 + len(ATTRIBUTES) + 1  # 207
_SHORT_FIELDS = 2 * NUM_KEYPOINTS + 1  # 197


def parse_wflw_line(line: str, where: str) -> dict:
    """Parse one WFLW line into ``keypoints`` (98, 2), ``box`` or None, ``attributes`` or None, ``name``."""
    tokens = line.split()
    if len(tokens) not in (_FULL_FIELDS, _SHORT_FIELDS):
        raise ValueError(
            f"{where}: expected {_FULL_FIELDS} fields (196 coordinates, 4 box, 6 attributes, image name) or "
            f"{_SHORT_FIELDS} fields (196 coordinates, image name), found {len(tokens)}"
        )
    coords = parse_floats(tokens[: 2 * NUM_KEYPOINTS], where, "coordinate")
    keypoints = coords.reshape(NUM_KEYPOINTS, 2) - COORDINATE_OFFSET
    box = attributes = None
    if len(tokens) == _FULL_FIELDS:
        box = check_box(parse_floats(tokens[196:200], where, "box") - COORDINATE_OFFSET, where)
        attributes = parse_flags(tokens[200:206], where, ATTRIBUTES)
    name = tokens[-1]
    if not re.search(r"\.(jpe?g|png|bmp)$", name, re.IGNORECASE):
        raise ValueError(f"{where}: last field must be an image name (.jpg/.png), found {name!r}")
    return {"keypoints": keypoints, "box": box, "attributes": attributes, "name": name}


def load_wflw(list_file: Path, image_root: Path, check_images: bool = False) -> LoadResult:
    """Load a WFLW list file; images are ``image_root / name``.

    Blank lines and exact repeats of an earlier line (same tokens) are skipped and counted; any other
    malformed line raises ``ValueError`` naming ``file:line``. ``check_images=True`` checks every image
    path up front.
    """
    list_file, image_root = Path(list_file), Path(image_root)
    match = re.search(r"list_98pt_test_(\w+)\.txt$", list_file.name)
    subset = match.group(1) if match else None
    result = LoadResult(source=str(list_file))
    duplicates = DuplicateFilter()
    for lineno, line in enumerate(read_text(list_file, "WFLW list file"), start=1):
        if not line.strip():
            result.skip("blank line")
            continue
        where = f"{list_file}:{lineno}"
        parsed = parse_wflw_line(line, where)
        first = duplicates.seen(tuple(line.split()), where)
        if first is not None:
            result.skip("duplicate line (same face as an earlier line, dropped)", where=f"{where} = {first}")
            continue
        extras = {"image_name": parsed["name"], "line": lineno}
        if parsed["attributes"] is not None:
            extras["attributes"] = parsed["attributes"]
        if subset is not None:
            extras["subset"] = subset
        result.append(
            make_record(
                image=image_root / parsed["name"],
                keypoints=parsed["keypoints"],
                visibility=np.full(NUM_KEYPOINTS, 2),
                dataset="wflw",
                source=where,
                box=parsed["box"],
                extras=extras,
            )
        )
    if check_images:
        check_images_exist(result)
    return result


def wflw_attribute_subset(records: list, attribute: str) -> list:
    """Records whose ``attribute`` flag (one of :data:`ATTRIBUTES`, or a subset word such as
    ``"largepose"``) is 1; needs the 207-field list, which carries the attributes."""
    attribute = SUBSET_ATTRIBUTE.get(attribute, attribute)
    if attribute not in ATTRIBUTES:
        raise ValueError(f"unknown WFLW attribute {attribute!r}; expected one of {ATTRIBUTES}")
    out = []
    for r in records:
        if "attributes" not in r.extras:
            raise ValueError(f"{r.source}: record has no attributes (use list_98pt_rect_attr_*.txt)")
        if r.extras["attributes"][attribute]:
            out.append(r)
    return out
