"""``load_dataset(name, root, split)``: the front door from a dataset name and the root of its ORIGINAL
files to the right loader. Every missing root or file raises ``FileNotFoundError`` saying where the file
was expected, so a user can fix the layout without reading the loaders.

Expected layouts (as distributed by the datasets' authors, or by HRNet where noted):

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
``root/annotations/face_landmarks_<name>_<split>.json`` (``cofw_<split>.json`` for COFW) exists, it is read
with images in ``root/images``. AFLW has no original-format loader beyond HRNet's CSV.
"""

from __future__ import annotations

from pathlib import Path

from . import coco, cofw, hrnet_csv, ibug300w, mpii, wflw
from .records import LoadResult

DATASETS = ("wflw", "300w", "cofw", "cofw68", "aflw", "mpii", "coco")
_300W_CSV = {
    "train": "train",
    "common": "valid_common",
    "challenge": "valid_challenge",
    "full": "valid",
    "test": "test",
}


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{what} expected at {path}")
    return path


def _first_dir(candidates: list[Path], what: str) -> Path:
    for c in candidates:
        if c.is_dir():
            return c
    raise FileNotFoundError(f"{what} expected at one of: " + ", ".join(str(c) for c in candidates))


def _mmpose_json(name: str, root: Path, split: str) -> Path | None:
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
    converted = _mmpose_json(name, root, split) if name in ("wflw", "300w", "cofw", "aflw") else None
    if converted is not None:
        return _load_converted(name, root, split, converted, check_images)
    return _load_original(name, root, split, check_images)


def _load_converted(name: str, root: Path, split: str, path: Path, check_images: bool) -> LoadResult:
    """mmpose's COCO-style face JSON, used only when the original files are absent."""
    originals = {
        "wflw": root / "WFLW_annotations",
        "300w": root / "afw",
        "cofw": root / f"COFW_{split}_color.mat",
        "aflw": root / f"face_landmarks_aflw_{split}.csv",
    }
    if originals[name].exists():
        return _load_original(name, root, split, check_images)
    images = root / "images" if (root / "images").is_dir() else root
    return coco.load_coco_keypoints(path, images, name, check_images=check_images)


def _load_original(name: str, root: Path, split: str, check_images: bool) -> LoadResult:
    if name == "wflw":
        ann = root / "WFLW_annotations"
        if split in ("train", "test"):
            f = ann / "list_98pt_rect_attr_train_test" / f"list_98pt_rect_attr_{split}.txt"
        elif split.startswith("test_") and split[5:] in wflw.SUBSET_ATTRIBUTE:
            f = ann / "list_98pt_test" / f"list_98pt_test_{split[5:]}.txt"
        else:
            raise ValueError(
                f"WFLW split must be train, test or test_<{'|'.join(wflw.SUBSET_ATTRIBUTE)}>, got {split!r}"
            )
        return wflw.load_wflw(_require(f, "WFLW list file"), root / "WFLW_images", check_images)
    if name == "300w":
        if split not in ibug300w.SPLITS:
            raise ValueError(f"300W split must be one of {sorted(ibug300w.SPLITS)}, got {split!r}")
        csv_file = root / f"face_landmarks_300w_{_300W_CSV[split]}.csv"
        if not any((root / s.split("/")[0]).is_dir() for s in ibug300w.SPLITS[split]) and csv_file.is_file():
            images = root / "images" if (root / "images").is_dir() else root
            return hrnet_csv.load_hrnet_csv(csv_file, images, "300w", check_images)
        return ibug300w.load_300w(root, split, check_images)
    if name == "cofw":
        if split not in ("train", "test"):
            raise ValueError(f"COFW split must be 'train' or 'test', got {split!r}")
        for fname in (f"COFW_{split}_color.mat", f"COFW_{split}.mat"):
            if (root / fname).is_file():
                return cofw.load_cofw(root / fname, split)
        raise FileNotFoundError(
            f"COFW file expected at {root / f'COFW_{split}_color.mat'} (or COFW_{split}.mat)"
        )
    if name == "cofw68":
        if split != "test":
            raise ValueError(f"COFW-68 has only the 'test' split, got {split!r}")
        data = root / "COFW68_Data"
        test_mat = root / "COFW_test_color.mat"
        return cofw.load_cofw68(
            _require(data / "test_annotations", "COFW-68 annotation folder"),
            _require(data / "cofw68_test_bboxes.mat", "COFW-68 box file"),
            test_mat if test_mat.is_file() else None,
        )
    if name == "aflw":
        f = _require(root / f"face_landmarks_aflw_{split}.csv", "AFLW HRNet CSV")
        images = root / "images" if (root / "images").is_dir() else root
        return hrnet_csv.load_hrnet_csv(f, images, "aflw", check_images)
    if name == "mpii":
        f = _require(root / "annot" / f"{split}.json", "MPII annotation list")
        records = mpii.load_mpii_json(f, root / "images", check_images)
        gt_file = root / "annot" / "gt_valid.mat"
        if split == "valid" and gt_file.is_file():
            mpii.attach_head_boxes(records, mpii.load_mpii_gt_valid(gt_file))
        return records
    # coco
    year_split = split if split.endswith("2017") else f"{split}2017"
    f = _require(root / "annotations" / f"person_keypoints_{year_split}.json", "COCO person_keypoints file")
    images = _first_dir([root / year_split, root / "images" / year_split], f"COCO {year_split} image folder")
    return coco.load_coco_keypoints(f, images, "coco", check_images=check_images)
