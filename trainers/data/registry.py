"""``load_dataset(name, root, split)``: the front door from a dataset name and the root of its ORIGINAL
files to the loader of its :class:`~trainers.data.specs.DatasetSpec`. Every missing root or file raises
``FileNotFoundError`` saying where the file was expected, so a user can fix the layout without reading
the loaders.

Expected layouts (as distributed by the datasets' authors, or by HRNet where noted; each spec's
``layout`` holds the same text):

wflw
    ``root/WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_{train,test}.txt``,
    ``root/WFLW_annotations/list_98pt_test/list_98pt_test_<subset>.txt`` (split ``test_<subset>``),
    images in ``root/WFLW_images/``
300w
    ``root/{afw, helen/{trainset,testset}, lfpw/{trainset,testset}, ibug, 300W/{01_Indoor,02_Outdoor}}``
    (.pts + images); or HRNet's ``root/face_landmarks_300w_<split>.csv`` with images in ``root/images``
cofw
    ``root/COFW_{train,test}_color.mat`` (or ``COFW_{train,test}.mat``)
cofw68
    ``root/COFW68_Data/test_annotations/<i>_points.mat``, ``root/COFW68_Data/cofw68_test_bboxes.mat``,
    images from ``root/COFW_test_color.mat`` when present
aflw
    HRNet's ``root/face_landmarks_aflw_<split>.csv`` (train / test / test_frontal), images in ``root/images``
mpii
    ``root/annot/<split>.json`` (HRNet lists), images in ``root/images``; ``root/annot/gt_valid.mat``
    adds the head boxes (PCKh) to the ``valid`` split
coco
    ``root/annotations/person_keypoints_<split>2017.json``, images in ``root/<split>2017`` or
    ``root/images/<split>2017``

The face sets may also come as mmpose's COCO-style conversions: when the original file is absent and
``root/annotations/face_landmarks_<name>_<split>.json`` (``cofw_<split>.json`` for COFW; for 300W the
splits common, challenge and full are ``valid_common``, ``valid_challenge`` and ``valid``) exists, it is read
with images in ``root/images``. AFLW has no original-format loader beyond HRNet's CSV.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import coco
from .records import LoadResult, check_image_headers
from .specs import SPECS, SPLIT_FILES_300W

DATASETS = tuple(name for name, spec in SPECS.items() if spec.load is not None)
# mmpose's COCO-style conversions of the face sets, read only when the original files are absent.
CONVERTED = ("wflw", "300w", "cofw", "aflw")


def _mmpose_json(name: str, root: Path, split: str) -> Path | None:
    """mmpose's JSON of ``split`` under ``root/annotations``, or None. mmpose names 300W's common, challenge
    and full splits ``valid_common``, ``valid_challenge`` and ``valid``, as HRNet's CSVs do."""
    if name == "300w":
        split = SPLIT_FILES_300W.get(split, split)
    stem = f"cofw_{split}" if name == "cofw" else f"face_landmarks_{name}_{split}"
    path = root / "annotations" / f"{stem}.json"
    return path if path.is_file() else None


def load_dataset(name: str, root, split: str, check_images: bool = False) -> LoadResult:
    """Records of ``split`` of dataset ``name`` read from its original files under ``root``."""
    name = name.lower()
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{name} root folder not found: {root}")
    converted = _mmpose_json(name, root, split) if name in CONVERTED else None
    if converted is not None:
        result = _load_converted(name, root, split, converted, check_images)
    else:
        result = SPECS[name].load(root, split, check_images)
    check_inside_root(result, root)
    if check_images:  # only headers, and only of files inside the root
        check_image_headers(result)
    return result


def check_inside_root(records, root: Path) -> None:
    """``ValueError`` naming the first record whose image path leaves ``root``: an annotation's file name
    with ``..`` or an absolute path would read a file outside the dataset without a word.

    The test is on the path as written (normalised, links not followed), so a root whose folders are
    symbolic links to other disks is still accepted.
    """
    top = os.path.normpath(os.path.abspath(root))
    for record in records:
        image = getattr(record.image, "path", record.image)  # a MatImage names its .mat file
        path = os.path.normpath(os.path.abspath(image))
        if os.path.commonpath([top, path]) != top:
            raise ValueError(
                f"{record.source}: image {image} lies outside data.root {root} (a '..' or an absolute path in "
                "the annotations); move the image under the root or fix the file name"
            )


def _load_converted(name: str, root: Path, split: str, path: Path, check_images: bool) -> LoadResult:
    """mmpose's COCO-style face JSON, used only when the original files are absent."""
    originals = {
        "wflw": root / "WFLW_annotations",
        "300w": root / "afw",
        "cofw": root / f"COFW_{split}_color.mat",
        "aflw": root / f"face_landmarks_aflw_{split}.csv",
    }
    if originals[name].exists():
        return SPECS[name].load(root, split, check_images)
    images = root / "images" if (root / "images").is_dir() else root
    return coco.load_coco_keypoints(path, images, name, check_images=check_images)
