"""MPII Human Pose (Andriluka et al., CVPR 2014): HRNet-style JSON lists and the ``gt_valid.mat`` structure.

JSON (HRNet ``data/mpii/annot/{train,valid}.json``): a list of ``{image, center [2], scale, joints [16][2],
joints_vis [16]}``. The numbers come from the Matlab release and are 1-based; HRNet subtracts 1 from the
joints and the centre when loading, and adds 1 back to predictions before comparing them with
``gt_valid.mat``. We subtract ``COORDINATE_OFFSET = 1`` once here, from joints, centre and head boxes, so
every MPII quantity in this package is 0-based. Missing joints are ``[-1, -1]`` with ``joints_vis`` 0
(visibility 0 here; their coordinates are meaningless). ``scale`` is the person height / 200.

``gt_valid.mat`` (the evaluation ground truth of the 2958-person validation split): ``pos_gt_src`` (16, 2, N),
``jnt_missing`` (16, N) 1 = not annotated, ``headboxes_src`` (2, 2, N) head box corners; the PCKh
normaliser is ``0.6 * ||corner2 - corner1||`` (HRNet's ``SC_BIAS``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from .parsing import read_json, read_mat_v5
from .records import (
    MAX_COORDINATE,
    DuplicateFilter,
    LandmarkRecord,
    LoadResult,
    check_images_exist,
    make_record,
    size_from_scale,
)

COORDINATE_OFFSET = 1.0
NUM_JOINTS = 16
JOINT_NAMES = (
    "rank",
    "rkne",
    "rhip",
    "lhip",
    "lkne",
    "lank",
    "pelv",
    "thor",
    "neck",
    "head",
    "rwri",
    "relb",
    "rsho",
    "lsho",
    "lelb",
    "lwri",
)
HEAD_SIZE_FACTOR = 0.6  # SC_BIAS of the MPII evaluation code


def load_mpii_json(json_file: Path, image_root: Path, check_images: bool = False) -> LoadResult:
    """Load an HRNet-style MPII list; images are ``image_root / image``. Errors name the entry index.

    A person listed twice (same image, same annotated joints, same centre and scale) is skipped and
    counted; the same image and joints with a different centre or scale is an error (which one is right?).
    """
    json_file, image_root = Path(json_file), Path(image_root)
    entries = read_json(json_file, "MPII annotation file")
    if not isinstance(entries, list):
        raise ValueError(f"{json_file}: expected a JSON list of persons, found {type(entries).__name__}")
    result = LoadResult(source=str(json_file))
    duplicates = DuplicateFilter()
    seen_rest: dict[str, tuple] = {}
    for index, entry in enumerate(entries):
        where = f"{json_file}#{index}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected an object, found {type(entry).__name__}")
        missing = [k for k in ("image", "center", "scale", "joints", "joints_vis") if k not in entry]
        if missing:
            raise ValueError(f"{where}: missing field(s) {missing}")
        try:
            joints = np.asarray(entry["joints"], dtype=np.float64)
            vis = np.asarray(entry["joints_vis"], dtype=np.float64)
            center = np.asarray(entry["center"], dtype=np.float64)
            scale = float(entry["scale"])
        except (TypeError, ValueError):
            raise ValueError(f"{where}: joints, joints_vis, center and scale must be numbers") from None
        if joints.shape != (NUM_JOINTS, 2) or vis.shape != (NUM_JOINTS,) or center.shape != (2,):
            raise ValueError(
                f"{where}: expected joints (16, 2), joints_vis (16,), center (2,), found "
                f"{joints.shape}, {vis.shape}, {center.shape}"
            )
        if not np.isin(vis, (0, 1)).all():
            raise ValueError(f"{where}: joints_vis must be 0 or 1, found {sorted(set(vis.tolist()))}")
        if not (np.isfinite(joints).all() and np.isfinite(center).all() and np.isfinite(scale) and scale > 0):
            raise ValueError(f"{where}: joints and center must be finite and scale positive")
        if not isinstance(entry["image"], str) or not entry["image"].strip():
            raise ValueError(f"{where}: image must be a file name, found {entry['image']!r}")
        # A person is its image and annotated joints (with none annotated, its image, centre and scale).
        person = (entry["image"], joints[vis > 0].tobytes(), vis.tobytes())
        if not vis.any():
            person += (center.tobytes(), scale)
        first = duplicates.seen(person, where)
        if first is not None:
            if seen_rest[first] != (center.tobytes(), scale):
                raise ValueError(
                    f"{where}: the same person (image and joints) as {first}, with a different center or scale"
                )
            result.skip("duplicate person (identical entry, dropped)", where=f"{where} = {first}")
            continue
        seen_rest[where] = (center.tobytes(), scale)
        # joints_vis says "annotated"; the list has no occlusion flag, so annotated joints count as visible.
        visibility = np.where(vis > 0, 2, 0)
        result.append(
            make_record(
                image=image_root / str(entry["image"]),
                keypoints=joints - COORDINATE_OFFSET,
                visibility=visibility,
                dataset="mpii",
                source=where,
                center=center - COORDINATE_OFFSET,
                size=size_from_scale(scale, where),
                extras={"image_name": str(entry["image"]), "scale": scale, "entry": index},
            )
        )
    if check_images:
        check_images_exist(result)
    return result


@dataclasses.dataclass
class MpiiGroundTruth:
    """The ``gt_valid.mat`` structure, 0-based and person-major.

    Attributes:
        joints: (N, 16, 2) float64 0-based joint positions (meaningless where ``missing``).
        missing: (N, 16) bool, True = joint not annotated.
        head_boxes: (N, 2, 2) float64 0-based corners ``[[x1, y1], [x2, y2]]``.
        joint_names: the 16 names, in the file's order.
    """

    joints: np.ndarray
    missing: np.ndarray
    head_boxes: np.ndarray
    joint_names: tuple[str, ...]

    @property
    def head_sizes(self) -> np.ndarray:
        """(N,) PCKh normaliser ``0.6 * ||diagonal||`` in pixels (unchanged by the 1-based shift)."""
        return HEAD_SIZE_FACTOR * np.linalg.norm(self.head_boxes[:, 1] - self.head_boxes[:, 0], axis=-1)

    def __len__(self) -> int:
        return int(self.joints.shape[0])


def load_mpii_gt_valid(mat_file: Path) -> MpiiGroundTruth:
    """Read ``gt_valid.mat`` (MATLAB v5) with the keys HRNet's MPII evaluation uses."""
    mat_file = Path(mat_file)
    data = read_mat_v5(mat_file, "MPII ground-truth file")
    keys = ("pos_gt_src", "jnt_missing", "headboxes_src")
    absent = [k for k in keys if k not in data]
    if absent:
        raise ValueError(f"{mat_file}: missing variable(s) {absent}; expected {keys}")
    pos, miss, heads = (np.asarray(data[k]) for k in keys)
    n = pos.shape[-1] if pos.ndim == 3 else -1
    if pos.shape != (NUM_JOINTS, 2, n) or miss.shape != (NUM_JOINTS, n) or heads.shape != (2, 2, n):
        raise ValueError(
            f"{mat_file}: expected pos_gt_src (16, 2, N), jnt_missing (16, N), headboxes_src (2, 2, N), "
            "found "
            f"{pos.shape}, {miss.shape}, {heads.shape}"
        )
    try:
        pos, miss, heads = pos.astype(np.float64), miss.astype(np.float64), heads.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{mat_file}: pos_gt_src, jnt_missing and headboxes_src must be numbers") from None
    if not np.isin(miss, (0, 1)).all():
        raise ValueError(
            f"{mat_file}: jnt_missing must be 0 or 1, found {sorted(set(miss.ravel().tolist()))[:5]}"
        )
    labelled = np.broadcast_to((miss == 0)[:, None, :], pos.shape)
    if not (np.isfinite(pos[labelled]).all() and np.isfinite(heads).all()):
        raise ValueError(f"{mat_file}: annotated joints and head boxes must be finite")
    if max(np.abs(pos[labelled]).max(initial=0), np.abs(heads).max(initial=0)) > MAX_COORDINATE:
        raise ValueError(f"{mat_file}: joints or head boxes beyond +-{MAX_COORDINATE:g} pixels")
    names = JOINT_NAMES
    if "dataset_joints" in data:
        names = tuple(str(np.asarray(v).ravel()[0]) for v in data["dataset_joints"].ravel())
    return MpiiGroundTruth(
        joints=pos.transpose(2, 0, 1).astype(np.float64) - COORDINATE_OFFSET,
        missing=miss.T.astype(bool),
        head_boxes=heads.transpose(2, 0, 1).astype(np.float64) - COORDINATE_OFFSET,
        joint_names=names,
    )


def match_to_ground_truth(
    records: list[LandmarkRecord], gt: MpiiGroundTruth, tol: float = 1e-3
) -> np.ndarray:
    """Index of the ``gt`` person each record is (same annotated joints within ``tol`` px), or -1.

    The validation JSON and ``gt_valid.mat`` list the same persons in the same order; matching by joints
    rather than by position keeps a subset (or a re-ordered list) correct.
    """
    out = np.full(len(records), -1, dtype=np.int64)
    for i, record in enumerate(records):
        labelled = record.visibility > 0
        same_missing = (gt.missing == ~labelled[None]).all(axis=1)
        diff = np.abs(gt.joints - record.keypoints[None]).max(axis=-1)  # (N, 16)
        diff = np.where(labelled[None], diff, 0.0).max(axis=1)
        hits = np.flatnonzero(same_missing & (diff <= tol))
        if len(hits):
            out[i] = hits[0]
    return out


def attach_head_boxes(records: list[LandmarkRecord], gt: MpiiGroundTruth, tol: float = 1e-3) -> int:
    """Copy each matched person's head box and PCKh head size into ``record.extras``; returns matches."""
    matches = match_to_ground_truth(records, gt, tol)
    sizes = gt.head_sizes
    for record, m in zip(records, matches):
        if m >= 0:
            record.extras.update(gt_index=int(m), head_box=gt.head_boxes[m].copy(), head_size=float(sizes[m]))
    return int((matches >= 0).sum())
