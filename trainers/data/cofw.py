"""COFW (Burgos-Artizzu et al., ICCV 2013): 29 landmarks with occlusion flags, images inside .mat files;
and COFW-68 (Ghiasi & Fowlkes), the 68-point re-annotation of the 507 test faces.

``COFW_train_color.mat`` / ``COFW_test_color.mat`` hold ``IsTr`` / ``IsT`` (cell arrays of images),
``phisTr`` / ``phisT`` (N, 87) = 29 x, 29 y, 29 occlusion flags, and ``bboxesTr`` / ``bboxesT`` (N, 4)
``[x, y, w, h]``. The color release is MATLAB v7.3 (HDF5, read with h5py, arrays transposed because
Matlab is column-major); older v5 files are read with scipy.io. Coordinates are Matlab 1-based: we
subtract ``COORDINATE_OFFSET = 1`` once (mmpose's converter does the same). Occluded points stay labelled
with visibility 1; the others get 2.

COFW-68: ``<i>_points.mat`` with ``Points`` (68, 2) and ``Occ`` (1, 68), and ``cofw68_test_bboxes.mat``
``bboxes`` (507, 4) ``[x, y, w, h]``, all 1-based; face ``i`` is image ``i`` of ``COFW_test_color.mat``.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from .records import LoadResult, MatImage, make_record

COORDINATE_OFFSET = 1.0
NUM_KEYPOINTS = 29
KEYS = {"train": ("IsTr", "phisTr", "bboxesTr"), "test": ("IsT", "phisT", "bboxesT")}


def is_mat_v73(path: Path) -> bool:
    """True for an HDF5-based MATLAB v7.3 file."""
    import h5py

    return h5py.is_hdf5(str(path))


@functools.lru_cache(maxsize=2)
def _v5_contents(path: str) -> dict:
    import scipy.io

    return scipy.io.loadmat(path)


def _read_v5_image(path: str, key: str, index: int) -> np.ndarray:
    cell = _v5_contents(path)[key].ravel()
    return np.asarray(cell[index])


def _h5_image_array(handle, key: str, index: int) -> np.ndarray:
    refs = np.asarray(handle[key]).ravel()
    array = np.asarray(handle[refs[index]])
    # Matlab stores (H, W, 3) column-major: h5py sees (3, W, H) or (W, H).
    return array.T


def _read_h5_image(path: str, key: str, index: int) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as handle:
        return _h5_image_array(handle, key, index)


def _read_arrays(path: Path, keys: tuple[str, str, str]) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """phis (N, 87), bboxes (N, 4), number of images, and whether the file is v7.3."""
    images_key, phis_key, boxes_key = keys
    if is_mat_v73(path):
        import h5py

        with h5py.File(path, "r") as handle:
            absent = [k for k in keys if k not in handle]
            if absent:
                raise ValueError(f"{path}: missing variable(s) {absent}; expected {keys}")
            phis = np.asarray(handle[phis_key], dtype=np.float64).T
            boxes = np.asarray(handle[boxes_key], dtype=np.float64).T
            n_images = int(np.asarray(handle[images_key]).size)
        return phis, boxes, n_images, True
    data = _v5_contents(str(path))
    absent = [k for k in keys if k not in data]
    if absent:
        raise ValueError(f"{path}: missing variable(s) {absent}; expected {keys}")
    phis = np.asarray(data[phis_key], dtype=np.float64)
    boxes = np.asarray(data[boxes_key], dtype=np.float64)
    return phis, boxes, int(data[images_key].size), False


def load_cofw(mat_file: Path, split: str) -> LoadResult:
    """Load ``COFW_{train,test}_color.mat``; each record's image is a :class:`MatImage` read on demand."""
    mat_file = Path(mat_file)
    if split not in KEYS:
        raise ValueError(f"COFW split must be 'train' or 'test', got {split!r}")
    if not mat_file.is_file():
        raise FileNotFoundError(f"COFW file not found: {mat_file}")
    keys = KEYS[split]
    phis, boxes, n_images, v73 = _read_arrays(mat_file, keys)
    n = phis.shape[0]
    if phis.shape != (n, 3 * NUM_KEYPOINTS) or boxes.shape != (n, 4) or n_images != n:
        raise ValueError(
            f"{mat_file}: expected {keys[1]} (N, 87), {keys[2]} (N, 4) and N images in {keys[0]}, found "
            f"{phis.shape}, {boxes.shape}, {n_images} images"
        )
    reader = _read_h5_image if v73 else _read_v5_image
    result = LoadResult(source=str(mat_file))
    for i in range(n):
        where = f"{mat_file}#{i}"
        xs, ys, occ = np.split(phis[i], 3)
        if not np.isin(occ, (0, 1)).all():
            raise ValueError(f"{where}: occlusion flags must be 0 or 1, found {sorted(set(occ.tolist()))}")
        if not (np.isfinite(phis[i]).all() and np.isfinite(boxes[i]).all()):
            raise ValueError(f"{where}: landmarks and box must be finite")
        x, y, w, h = boxes[i]
        box = np.array([x, y, x + w - 1, y + h - 1]) - COORDINATE_OFFSET
        image = MatImage(mat_file, keys[0], i, functools.partial(reader, str(mat_file), keys[0], i))
        result.append(
            make_record(
                image=image,
                keypoints=np.stack([xs, ys], -1) - COORDINATE_OFFSET,
                visibility=np.where(occ > 0, 1, 2),
                dataset="cofw",
                source=where,
                box=box,
                extras={"index": i, "occluded": occ.astype(bool)},
            )
        )
    return result


def load_cofw68(
    annotation_dir: Path, bboxes_file: Path | None = None, cofw_test_file: Path | None = None
) -> LoadResult:
    """Load the COFW-68 per-image annotations (``<i>_points.mat``, i = 1..507).

    Images come from ``cofw_test_file`` (``COFW_test_color.mat``, image ``i - 1`` of ``IsT``) when given,
    else from ``annotation_dir/../im_<i>.png`` as written by the benchmark's ReadCofw68Data.m.
    """
    import scipy.io

    annotation_dir = Path(annotation_dir)
    if not annotation_dir.is_dir():
        raise FileNotFoundError(f"COFW-68 annotation folder not found: {annotation_dir}")
    files = {}
    for f in annotation_dir.glob("*_points.mat"):
        m = re.fullmatch(r"(\d+)_points\.mat", f.name)
        if m:
            files[int(m.group(1))] = f
    if not files:
        raise FileNotFoundError(f"no <i>_points.mat files in {annotation_dir}")
    boxes = None
    if bboxes_file is not None:
        boxes = np.asarray(scipy.io.loadmat(bboxes_file)["bboxes"], dtype=np.float64)
        if boxes.ndim != 2 or boxes.shape[1] != 4 or boxes.shape[0] < max(files):
            raise ValueError(f"{bboxes_file}: expected bboxes (N >= {max(files)}, 4), found {boxes.shape}")
    reader = None
    if cofw_test_file is not None:
        reader = _read_h5_image if is_mat_v73(Path(cofw_test_file)) else _read_v5_image
    result = LoadResult(source=str(annotation_dir))
    for i in sorted(files):
        data = scipy.io.loadmat(files[i])
        if "Points" not in data or "Occ" not in data:
            raise ValueError(f"{files[i]}: expected variables Points (68, 2) and Occ (1, 68)")
        points = np.asarray(data["Points"], dtype=np.float64)
        occ = np.asarray(data["Occ"]).ravel()
        if points.shape != (68, 2) or occ.shape != (68,):
            raise ValueError(
                f"{files[i]}: expected Points (68, 2) and Occ (1, 68), found {points.shape}, {occ.shape}"
            )
        if not np.isin(occ, (0, 1)).all():
            raise ValueError(f"{files[i]}: Occ must be 0 or 1, found {sorted(set(occ.tolist()))}")
        box = None
        if boxes is not None:
            x, y, w, h = boxes[i - 1]
            box = np.array([x, y, x + w - 1, y + h - 1]) - COORDINATE_OFFSET
        if reader is not None:
            image = MatImage(
                Path(cofw_test_file),
                "IsT",
                i - 1,
                functools.partial(reader, str(cofw_test_file), "IsT", i - 1),
            )
        else:
            image = annotation_dir.parent / f"im_{i}.png"
        result.append(
            make_record(
                image=image,
                keypoints=points - COORDINATE_OFFSET,
                visibility=np.where(occ > 0, 1, 2),
                dataset="cofw68",
                source=str(files[i]),
                box=box,
                extras={"index": i, "occluded": occ.astype(bool)},
            )
        )
    return result
