"""One :class:`DatasetSpec` per dataset: every fact the trainers need about a dataset, declared once.

A spec says how many keypoints the markup has and what they are called, which pairs swap under a
horizontal flip, what the per-image metric normaliser is, which metric family scores it (``"nme"`` for
faces, ``"pckh"`` for MPII, ``"ap"`` for COCO), which limbs to draw, how to read its ORIGINAL files and
where those files are expected. The registry (:func:`trainers.data.registry.load_dataset`), the flip
tables (:mod:`trainers.data.flip_pairs`), the NME normaliser (:func:`trainers.data.dataset.normalizer`),
the evaluation (:func:`trainers.evaluate.dataset_metrics`) and the plots all look the facts up here.

The metric-level facts that :mod:`h3r_theory.metrics` also needs on its own (the inter-ocular indices,
MPII's joint names and the joints left out of its mean) are written there once and referenced here.

Adding a dataset format: a loader module (records in ORIGINAL pixels, see :mod:`trainers.data.records`),
one :class:`DatasetSpec` entry in :data:`SPECS` below, its test, and a config in ``trainers/configs/``.

>>> spec = SPECS["wflw"]
>>> spec.num_keypoints, spec.metric, spec.normalizer, len(spec.flip_pairs)
(98, 'nme', (60, 72), 44)
>>> [name for name, s in SPECS.items() if s.metric == "pckh"]
['mpii']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from h3r_theory.metrics import INTEROCULAR_INDICES as INTEROCULAR
from h3r_theory.metrics import MPII_EXCLUDED_FROM_MEAN, MPII_JOINTS

from . import coco, cofw, hrnet_csv, ibug300w, mpii, wflw
from .records import LoadResult

Metric = Literal["nme", "pckh", "ap"]
Loader = Callable[[Path, str, bool], LoadResult]  # (root, split, check_images) -> records


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """The facts about one dataset (or one markup shared by several, such as iBUG-68).

    Attributes:
        name: the key used in configs (``data.name``) and in ``LandmarkRecord.dataset``.
        num_keypoints: K of the markup.
        flip_pairs: ``(left, right)`` 0-based index pairs swapped by a horizontal flip; points on the
            symmetry axis are not listed.
        metric: the metric family that scores it: ``"nme"``, ``"pckh"`` or ``"ap"``.
        normalizer: the per-image normaliser in ORIGINAL pixels: an ``(i, j)`` keypoint pair (the
            distance between them, e.g. the outer eye corners), or the name of a record ``extras`` field
            (``"box_size"``, ``"head_size"``), or None (no normaliser: COCO scores with OKS).
        normalizer_hint: what to do when that ``extras`` field is missing (part of the error message).
        keypoint_names: the names of the K points, in order, where the markup names them.
        skeleton: the 0-based limbs drawn between keypoints (empty: points only).
        excluded_from_mean: keypoints left out of the mean metric (MPII's pelvis and thorax).
        load: reads a split of the ORIGINAL files, ``load(root, split, check_images) -> LoadResult``;
            None for a markup without a file format of its own, and for the generated synthetic set.
        layout: the expected file layout under ``data.root``, as shown to a user whose files are missing.
    """

    name: str
    num_keypoints: int
    flip_pairs: tuple[tuple[int, int], ...]
    metric: Metric
    normalizer: tuple[int, int] | str | None = None
    normalizer_hint: str = ""
    keypoint_names: tuple[str, ...] = ()
    skeleton: tuple[tuple[int, int], ...] = ()
    excluded_from_mean: tuple[int, ...] = ()
    load: Loader | None = None
    layout: str = ""


# --------------------------------------------------------------------------------------------------------
# Left/right pairs of the markups (0-based, in the datasets' own keypoint orders)
# --------------------------------------------------------------------------------------------------------


def _mirror(first, second) -> tuple[tuple[int, int], ...]:
    first, second = list(first), list(second)
    if len(first) != len(second):
        raise ValueError("mirrored index runs must have the same length")
    return tuple(zip(first, second))


# WFLW (98): contour 0..32 around 16, brows 33..41 / 42..50, nose 51..59 (55..59 the base), eyes 60..67 /
# 68..75 (60 and 72 the outer corners), outer lip 76..87, inner lip 88..95, pupils 96 / 97.
WFLW_FLIP_PAIRS = (
    _mirror(range(0, 16), range(32, 16, -1))
    + _mirror(range(33, 38), range(46, 41, -1))  # upper brow arcs
    + _mirror(range(38, 42), range(50, 46, -1))  # lower brow arcs
    + _mirror((55, 56), (59, 58))
    + _mirror(range(60, 65), range(72, 67, -1))  # eye upper lids, corner to corner
    + _mirror((65, 66, 67), (75, 74, 73))  # eye lower lids
    + _mirror((76, 77, 78), (82, 81, 80))
    + _mirror((87, 86), (83, 84))
    + _mirror((88, 89), (92, 91))
    + _mirror((95,), (93,))
    + ((96, 97),)
)

# iBUG 68-point markup (300W, COFW-68, 300VW, menpo): jaw 0..16, brows 17..21 / 22..26, nose 27..35,
# eyes 36..41 / 42..47, outer mouth 48..59, inner mouth 60..67.
IBUG68_FLIP_PAIRS = (
    _mirror(range(0, 8), range(16, 8, -1))
    + _mirror(range(17, 22), range(26, 21, -1))
    + _mirror((31, 32), (35, 34))
    + _mirror((36, 37, 38, 39, 40, 41), (45, 44, 43, 42, 47, 46))
    + _mirror((48, 49, 50), (54, 53, 52))
    + _mirror((59, 58), (55, 56))
    + _mirror((60, 61), (64, 63))
    + ((67, 65),)
)

# COFW (29): brow ends 0/1 and 2/3 interleaved left/right, eye corners 8/9 (outer) ..., pupils 16/17,
# nose wings 18/19, mouth corners 22/23; 20, 21, 24..28 on the axis.
COFW_FLIP_PAIRS = (
    (0, 1), (2, 3), (4, 6), (5, 7), (8, 9), (10, 11), (12, 14), (13, 15), (16, 17), (18, 19), (22, 23),
)  # fmt: skip

# AFLW (19): brows 0..2 / 3..5, eyes 6..8 / 9..11, nose 12..14 (13 the tip), mouth 15..17, chin 18.
AFLW_FLIP_PAIRS = ((0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9), (12, 14), (15, 17))

MPII_FLIP_PAIRS = ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))
# The limbs drawn between MPII's joints.
MPII_SKELETON = (
    (0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
    (10, 11), (11, 12), (12, 7), (7, 13), (13, 14), (14, 15),
)  # fmt: skip

COCO_KEYPOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
COCO_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
# The person category's "skeleton" field of person_keypoints_*.json, converted to 0-based.
COCO_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip


# --------------------------------------------------------------------------------------------------------
# Loaders: a dataset's ORIGINAL layout under its root -> the format loader
# --------------------------------------------------------------------------------------------------------


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{what} expected at {path}")
    return path


def _first_dir(candidates: list[Path], what: str) -> Path:
    for c in candidates:
        if c.is_dir():
            return c
    raise FileNotFoundError(f"{what} expected at one of: " + ", ".join(str(c) for c in candidates))


def _images(root: Path) -> Path:
    return root / "images" if (root / "images").is_dir() else root


def _load_wflw(root: Path, split: str, check_images: bool) -> LoadResult:
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


# The file-name part of each 300W split in HRNet's CSVs and in mmpose's JSON conversions (the same names).
SPLIT_FILES_300W = {
    "train": "train",
    "common": "valid_common",
    "challenge": "valid_challenge",
    "full": "valid",
    "test": "test",
}


def _load_300w(root: Path, split: str, check_images: bool) -> LoadResult:
    if split not in ibug300w.SPLITS:
        raise ValueError(f"300W split must be one of {sorted(ibug300w.SPLITS)}, got {split!r}")
    csv_file = root / f"face_landmarks_300w_{SPLIT_FILES_300W[split]}.csv"
    if not any((root / s.split("/")[0]).is_dir() for s in ibug300w.SPLITS[split]) and csv_file.is_file():
        return hrnet_csv.load_hrnet_csv(csv_file, _images(root), "300w", check_images)
    return ibug300w.load_300w(root, split, check_images)


def _load_cofw(root: Path, split: str, check_images: bool) -> LoadResult:
    if split not in ("train", "test"):
        raise ValueError(f"COFW split must be 'train' or 'test', got {split!r}")
    for fname in (f"COFW_{split}_color.mat", f"COFW_{split}.mat"):
        if (root / fname).is_file():
            return cofw.load_cofw(root / fname, split)
    raise FileNotFoundError(f"COFW file expected at {root / f'COFW_{split}_color.mat'} (or COFW_{split}.mat)")


def _load_cofw68(root: Path, split: str, check_images: bool) -> LoadResult:
    if split != "test":
        raise ValueError(f"COFW-68 has only the 'test' split, got {split!r}")
    data = root / "COFW68_Data"
    test_mat = root / "COFW_test_color.mat"
    return cofw.load_cofw68(
        _require(data / "test_annotations", "COFW-68 annotation folder"),
        _require(data / "cofw68_test_bboxes.mat", "COFW-68 box file"),
        test_mat if test_mat.is_file() else None,
    )


def _load_aflw(root: Path, split: str, check_images: bool) -> LoadResult:
    f = _require(root / f"face_landmarks_aflw_{split}.csv", "AFLW HRNet CSV")
    return hrnet_csv.load_hrnet_csv(f, _images(root), "aflw", check_images)


def _load_mpii(root: Path, split: str, check_images: bool) -> LoadResult:
    f = _require(root / "annot" / f"{split}.json", "MPII annotation list")
    records = mpii.load_mpii_json(f, root / "images", check_images)
    gt_file = root / "annot" / "gt_valid.mat"
    if split == "valid" and gt_file.is_file():
        mpii.attach_head_boxes(records, mpii.load_mpii_gt_valid(gt_file))
    return records


def _load_coco(root: Path, split: str, check_images: bool) -> LoadResult:
    year_split = split if split.endswith("2017") else f"{split}2017"
    f = _require(root / "annotations" / f"person_keypoints_{year_split}.json", "COCO person_keypoints file")
    images = _first_dir([root / year_split, root / "images" / year_split], f"COCO {year_split} image folder")
    return coco.load_coco_keypoints(f, images, "coco", check_images=check_images)


# --------------------------------------------------------------------------------------------------------
# The specs
# --------------------------------------------------------------------------------------------------------

_FACE = dict(metric="nme")
_SPECS = (
    DatasetSpec(
        "wflw", 98, WFLW_FLIP_PAIRS, normalizer=INTEROCULAR["wflw"], load=_load_wflw, **_FACE,
        layout="root/WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_{train,test}.txt, "
        "root/WFLW_annotations/list_98pt_test/list_98pt_test_<subset>.txt (split test_<subset>), "
        "images in root/WFLW_images/",
    ),
    DatasetSpec(
        "300w", 68, IBUG68_FLIP_PAIRS, normalizer=INTEROCULAR["300w"], load=_load_300w, **_FACE,
        layout="root/{afw, helen/{trainset,testset}, lfpw/{trainset,testset}, ibug, 300W/{01_Indoor,02_Outdoor}} "
        "(.pts + images); or HRNet's root/face_landmarks_300w_<split>.csv with images in root/images",
    ),
    DatasetSpec(
        "cofw", 29, COFW_FLIP_PAIRS, normalizer=INTEROCULAR["cofw"], load=_load_cofw, **_FACE,
        layout="root/COFW_{train,test}_color.mat (or COFW_{train,test}.mat)",
    ),
    DatasetSpec(
        "cofw68", 68, IBUG68_FLIP_PAIRS, normalizer=INTEROCULAR["cofw68"], load=_load_cofw68, **_FACE,
        layout="root/COFW68_Data/test_annotations/<i>_points.mat, root/COFW68_Data/cofw68_test_bboxes.mat, "
        "images from root/COFW_test_color.mat when present",
    ),
    # The iBUG-68 markup read from generic .pts files (300VW, menpo): no layout of its own.
    DatasetSpec("ibug68", 68, IBUG68_FLIP_PAIRS, normalizer=INTEROCULAR["300w"], **_FACE),
    DatasetSpec(
        "aflw", 19, AFLW_FLIP_PAIRS, normalizer="box_size", load=_load_aflw, **_FACE,
        normalizer_hint="AFLW record has no box_size (load the HRNet CSV or the JSON with box_size)",
        layout="HRNet's root/face_landmarks_aflw_<split>.csv (train / test / test_frontal), images in root/images",
    ),
    DatasetSpec(
        "mpii", 16, MPII_FLIP_PAIRS, metric="pckh", normalizer="head_size", load=_load_mpii,
        normalizer_hint="MPII record has no head box; call mpii.attach_head_boxes with gt_valid.mat",
        keypoint_names=MPII_JOINTS, skeleton=MPII_SKELETON,
        excluded_from_mean=MPII_EXCLUDED_FROM_MEAN,
        layout="root/annot/<split>.json (HRNet lists), images in root/images; root/annot/gt_valid.mat adds "
        "the head boxes (PCKh) to the valid split",
    ),
    DatasetSpec(
        "coco", 17, COCO_FLIP_PAIRS, metric="ap", load=_load_coco,
        keypoint_names=COCO_KEYPOINTS, skeleton=COCO_SKELETON,
        layout="root/annotations/person_keypoints_<split>2017.json, images in root/<split>2017 or "
        "root/images/<split>2017",
    ),
)  # fmt: skip

SPECS: dict[str, DatasetSpec] = {s.name: s for s in _SPECS}
# The generated synthetic face set (trainers.data.synthetic) is scored with NME against its fixed
# normaliser; its markup and flip pairs live with the generator, which builds prefixes of them.
SYNTHETIC = DatasetSpec("synthetic", 0, (), metric="nme")


def get_spec(name: str) -> DatasetSpec:
    """The spec of dataset ``name``; ``ValueError`` naming the known ones otherwise."""
    if name == SYNTHETIC.name:
        return SYNTHETIC
    if name not in SPECS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {tuple(SPECS)} or 'synthetic'")
    return SPECS[name]


def spec_of(dataset) -> DatasetSpec | None:
    """The spec of a dataset object: its ``dataset_name`` (a :class:`~trainers.data.dataset.LandmarkDataset`
    takes it from its records), ``"synthetic"`` for the generated set, None for anything else (a stub). A
    wrapper that holds its dataset as ``wrapped`` (:class:`~trainers.data.batch_cache.BatchCache`) has the
    spec of what it wraps."""
    dataset = getattr(dataset, "wrapped", dataset)
    name = getattr(dataset, "dataset_name", None)
    if name is None:
        from .synthetic import SyntheticLandmarks

        return SYNTHETIC if isinstance(dataset, SyntheticLandmarks) else None
    return get_spec(str(name).lower())


__all__ = ["DatasetSpec", "SPECS", "SYNTHETIC", "get_spec", "spec_of"]
