"""COCO person_keypoints JSON and the generic COCO-style keypoint JSON of the converted face sets.

One record per annotation (person or face instance). What is ignored is counted in
``LoadResult.skipped``, never dropped silently:

* ``iscrowd`` annotations (crowd regions carry no keypoints);
* annotations whose box, clipped to the image, is empty (HRNet/MSRA's rule for a usable box);
* annotations with no labelled keypoint when ``min_keypoints >= 1`` (nothing to learn or to score);
* annotations of another category than ``category_id``.

Real files repeat image entries (``coco_val2017_subset`` lists an image once per annotation):
identical duplicates are merged by id and counted; conflicting ones raise ``ValueError``.

Coordinates: COCO keypoints are integer pixel indices, used as 0-based pixel centres (as HRNet and mmpose
do); the box ``[x, y, w, h]`` is kept in the same frame. The converted face sets keep their source's
numbers, so :data:`COORDINATE_OFFSET` repeats the per-dataset offset (mmpose's 300W JSON copies the
1-based ``.pts`` values; its COFW JSON already subtracted 1).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .parsing import read_json
from .records import MAX_COORDINATE, LoadResult, check_images_exist, image_size, make_record, size_from_scale

COORDINATE_OFFSET = {"coco": 0.0, "300w": 1.0, "wflw": 0.0, "aflw": 0.0, "cofw": 0.0, "lapa": 0.0}


def _read_json(path: Path) -> dict:
    return read_json(path, "COCO-style annotation file")


def _check_image_entry(image, where: str) -> None:
    """An ``images[i]`` entry: a hashable ``id``, a ``file_name`` string, optional positive sizes."""
    if not isinstance(image, dict) or "id" not in image or "file_name" not in image:
        raise ValueError(f"{where}: expected an object with 'id' and 'file_name', found {str(image)[:80]}")
    if isinstance(image["id"], bool) or not isinstance(image["id"], (int, str)):
        raise ValueError(f"{where}: id must be an integer or a string, found {image['id']!r}")
    name = image["file_name"]
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{where}: file_name must be a non-empty string, found {name!r}")
    for key in ("width", "height"):
        value = image.get(key)
        if value is None:
            continue
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (ok and math.isfinite(value) and 0 < value <= MAX_COORDINATE):
            raise ValueError(f"{where}: {key} must be a positive number of pixels, found {value!r}")


def _images_by_id(path: Path, images: list, result: LoadResult) -> dict[int, dict]:
    if not isinstance(images, list):
        raise ValueError(f"{path}: 'images' must be a list, found {type(images).__name__}")
    by_id: dict[int, dict] = {}
    for index, image in enumerate(images):
        where = f"{path}: images[{index}]"
        _check_image_entry(image, where)
        if image["id"] in by_id:
            if by_id[image["id"]] != image:
                raise ValueError(f"{where}: image id {image['id']} repeats with different content")
            result.skip("duplicate image entry (same id, merged)")
            continue
        by_id[image["id"]] = image
    return by_id


def _clipped_box(bbox, image: dict, where: str) -> np.ndarray | None:
    """``x_min, y_min, x_max, y_max`` clipped to the image, or None when empty (MSRA's sanitiser)."""
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: bbox must be 4 numbers [x, y, w, h], found {bbox!r}") from None
    if not all(np.isfinite([x, y, w, h])):
        raise ValueError(f"{where}: bbox must be finite, found {bbox!r}")
    if max(abs(x), abs(y), abs(w), abs(h)) > MAX_COORDINATE:
        raise ValueError(f"{where}: bbox values must lie within +-{MAX_COORDINATE:g} pixels, found {bbox!r}")
    width, height = image.get("width"), image.get("height")
    x1, y1 = max(0.0, x), max(0.0, y)
    x2, y2 = x1 + max(0.0, w - 1), y1 + max(0.0, h - 1)
    if width is not None and height is not None:
        x2, y2 = min(float(width) - 1, x2), min(float(height) - 1, y2)
    if w <= 0 or h <= 0 or x2 < x1 or y2 < y1:
        return None
    return np.array([x1, y1, x2, y2])


def load_coco_keypoints(
    json_file: Path,
    image_root: Path,
    dataset: str = "coco",
    category_id: int | None = 1,
    min_keypoints: int = 1,
    coordinate_offset: float | None = None,
    check_images: bool = False,
) -> LoadResult:
    """Load a COCO-style keypoint JSON; images are ``image_root / file_name``.

    ``dataset`` names the markup (it selects the default coordinate offset and, later, the NME normaliser).
    Extras keep ``image_id``, ``annotation_id``, ``area``, and the face sets' ``box_size`` when present.
    """
    json_file, image_root = Path(json_file), Path(image_root)
    offset = COORDINATE_OFFSET.get(dataset, 0.0) if coordinate_offset is None else float(coordinate_offset)
    data = _read_json(json_file)
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise ValueError(f"{json_file}: expected a COCO object with 'images' and 'annotations'")
    result = LoadResult(source=str(json_file))
    images = _images_by_id(json_file, data["images"], result)
    if not isinstance(data["annotations"], list):
        raise ValueError(
            f"{json_file}: 'annotations' must be a list, found {type(data['annotations']).__name__}"
        )
    seen_ids: dict = {}
    layout: tuple[int, str] | None = None  # (K, where) of the first annotation: one file, one markup
    for index, ann in enumerate(data["annotations"]):
        where = f"{json_file}: annotations[{index}]"
        if not isinstance(ann, dict):
            raise ValueError(f"{where}: expected an object, found {type(ann).__name__}")
        for key in ("image_id", "keypoints"):
            if key not in ann:
                raise ValueError(f"{where}: missing required field {key!r}")
        if "id" in ann:
            if isinstance(ann["id"], bool) or not isinstance(ann["id"], (int, str)):
                raise ValueError(f"{where}: id must be an integer or a string, found {ann['id']!r}")
            if ann["id"] in seen_ids:
                if seen_ids[ann["id"]] != ann:
                    raise ValueError(f"{where}: annotation id {ann['id']} repeats with different content")
                result.skip("duplicate annotation entry (same id, merged)")
                continue
            seen_ids[ann["id"]] = ann
        if category_id is not None and ann.get("category_id", category_id) != category_id:
            result.skip(f"category_id != {category_id}")
            continue
        if ann.get("iscrowd", 0):
            result.skip("iscrowd annotation")
            continue
        if isinstance(ann["image_id"], bool) or not isinstance(ann["image_id"], (int, str)):
            raise ValueError(f"{where}: image_id must be an integer or a string, found {ann['image_id']!r}")
        image = images.get(ann["image_id"])
        if image is None:
            raise ValueError(f"{where}: image_id {ann['image_id']} is not in 'images'")
        flat = ann["keypoints"]
        if not isinstance(flat, list) or len(flat) % 3 or not flat:
            raise ValueError(
                f"{where}: keypoints must be a non-empty list [x, y, v] * K, found length "
                f"{len(flat) if isinstance(flat, list) else type(flat).__name__}"
            )
        try:
            triples = np.asarray(flat, dtype=np.float64).reshape(-1, 3)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: keypoints must all be numbers") from None
        if not np.isfinite(triples).all():
            raise ValueError(f"{where}: keypoints must be finite numbers")
        if layout is None:
            layout = (len(triples), where)
        elif len(triples) != layout[0]:
            raise ValueError(
                f"{where}: {len(triples)} keypoints, but {layout[1]} has {layout[0]}; one file must hold one "
                "keypoint layout"
            )
        vis = triples[:, 2]
        if not np.isin(vis, (0, 1, 2)).all():
            raise ValueError(
                f"{where}: keypoint visibility must be 0, 1 or 2, found {sorted(set(vis.tolist()))}"
            )
        if (vis > 0).sum() < min_keypoints:
            result.skip(f"fewer than {min_keypoints} labelled keypoints")
            continue
        if "bbox" not in ann:
            raise ValueError(f"{where}: missing required field 'bbox'")
        box = _clipped_box(ann["bbox"], image, where)
        if box is None:
            result.skip("empty box after clipping to the image")
            continue
        center = size = None
        if "center" in ann and "scale" in ann:  # the face conversions carry HRNet's centre/scale
            try:
                center = np.asarray(ann["center"], dtype=np.float64).reshape(2) - offset
                scale = float(np.asarray(ann["scale"], dtype=np.float64).reshape(-1)[0])
            except (TypeError, ValueError, IndexError):
                raise ValueError(
                    f"{where}: center must be 2 numbers and scale a number, found {ann['center']!r}, "
                    f"{ann['scale']!r}"
                ) from None
            size = size_from_scale(scale, where)
        extras = {
            "image_id": ann["image_id"],
            "annotation_id": ann.get("id"),
            "area": ann.get("area"),
            "image_size": (image.get("width"), image.get("height")),
        }
        if "box_size" in ann:
            box_size = ann["box_size"]
            number = isinstance(box_size, (int, float)) and not isinstance(box_size, bool)
            if not (number and math.isfinite(box_size) and 0 < box_size <= MAX_COORDINATE):
                raise ValueError(f"{where}: box_size must be a positive number of pixels, found {box_size!r}")
            extras["box_size"] = float(box_size)
        result.append(
            make_record(
                image=image_root / image["file_name"],
                keypoints=triples[:, :2] - offset,
                visibility=vis.astype(np.int64),
                dataset=dataset,
                source=where,
                box=box - offset,
                center=center,
                size=size,
                extras=extras,
            )
        )
    if check_images:
        check_images_exist(result)
        check_declared_sizes(json_file, image_root, images.values())
    return result


def check_declared_sizes(json_file: Path, image_root: Path, images) -> None:
    """``ValueError`` naming the image entry whose declared ``width`` x ``height`` is not its file's.

    Boxes are clipped to the declared size: a 640 x 425 image declared 10 x 10 lost a person as an "empty
    box after clipping". Only the header of each file is read (``PIL.Image.open`` decodes lazily). The
    images of skipped annotations are checked too, since a wrong size is what skips them.
    """
    for image in images:
        width, height = image.get("width"), image.get("height")
        path = image_root / image["file_name"]
        if width is None or height is None or not path.is_file():
            continue
        actual = image_size(path)  # a decompression bomb is refused here, naming the file
        if (float(width), float(height)) != (float(actual[0]), float(actual[1])):
            raise ValueError(
                f"{json_file}: image id {image['id']} ({image['file_name']}) is declared {width:g} x {height:g} "
                f"pixels, but the file is {actual[0]} x {actual[1]}; boxes are clipped to the declared size"
            )
