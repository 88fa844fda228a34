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

import collections
import functools
import re
from pathlib import Path

import numpy as np

from .parsing import read_mat_v5, require_file
from .records import LoadResult, MatImage, make_record

COORDINATE_OFFSET = 1.0
NUM_KEYPOINTS = 29
KEYS = {"train": ("IsTr", "phisTr", "bboxesTr"), "test": ("IsT", "phisT", "bboxesT")}


def is_mat_v73(path: Path) -> bool:
    """True for an HDF5-based MATLAB v7.3 file."""
    import h5py

    return h5py.is_hdf5(str(path))


def file_version(path: str) -> tuple[int, int, int]:
    """What identifies one version of a file on disk: (inode, size, modification time in ns).

    Records remember the version their annotations were read from; an image read later from a different
    version is refused (see :func:`_read_v5_image`), so keypoints and pixels always come from one file.
    """
    st = Path(path).stat()
    return st.st_ino, st.st_size, st.st_mtime_ns


# A v5 file can only be read whole, so its images come from a decoded copy kept in memory, keyed by path
# AND file version: an edited file is read again, never served from the old copy. Two entries: the
# train and test files of one run.
_V5_CACHE: collections.OrderedDict[tuple[str, tuple[int, int, int]], dict] = collections.OrderedDict()
_V5_CACHE_SIZE = 2


def _v5_contents(path: str, version: tuple[int, int, int] | None = None) -> tuple[dict, tuple[int, int, int]]:
    """Variables of the v5 file at ``path`` and the version they were read from.

    ``version=None`` always reads the file (a fresh load); a given version is served from the cache, or
    read when it still is the file's version, else refused naming the file.
    """
    if version is not None and (path, version) in _V5_CACHE:
        _V5_CACHE.move_to_end((path, version))
        return _V5_CACHE[(path, version)], version
    current = file_version(path)
    if version is not None and current != version:
        raise ValueError(
            f"{path}: the file changed on disk after its annotations were loaded; load the dataset again"
        )
    contents = read_mat_v5(Path(path), "COFW .mat file")
    _V5_CACHE[(path, current)] = contents
    _V5_CACHE.move_to_end((path, current))
    while len(_V5_CACHE) > _V5_CACHE_SIZE:
        _V5_CACHE.popitem(last=False)
    return contents, current


def _read_v5_image(
    path: str, key: str, index: int, version: tuple[int, int, int] | None = None
) -> np.ndarray:
    contents, _ = _v5_contents(path, version)
    return np.asarray(contents[key].ravel()[index])


def _h5_image_array(handle, key: str, index: int) -> np.ndarray:
    refs = np.asarray(handle[key]).ravel()
    array = np.asarray(handle[refs[index]])
    # Matlab stores (H, W, 3) column-major: h5py sees (3, W, H) or (W, H).
    return array.T


def _read_h5_image(
    path: str, key: str, index: int, version: tuple[int, int, int] | None = None
) -> np.ndarray:
    import h5py

    if version is not None and file_version(path) != version:
        raise ValueError(
            f"{path}: the file changed on disk after its annotations were loaded; load the dataset again"
        )
    try:
        with h5py.File(path, "r") as handle:
            return _h5_image_array(handle, key, index)
    except (OSError, KeyError, ValueError, TypeError, IndexError) as err:
        raise ValueError(f"{path}: cannot read image {key}[{index}] ({type(err).__name__}: {err})") from None


def _read_arrays(
    path: Path, keys: tuple[str, str, str]
) -> tuple[np.ndarray, np.ndarray, int, bool, tuple[int, int, int]]:
    """phis (N, 87), bboxes (N, 4), number of images, whether the file is v7.3, and its version."""
    images_key, phis_key, boxes_key = keys
    if is_mat_v73(path):
        import h5py

        version = file_version(str(path))
        try:
            with h5py.File(path, "r") as handle:
                absent = [k for k in keys if k not in handle]
                if absent:
                    raise ValueError(f"{path}: missing variable(s) {absent}; expected {keys}")
                phis = np.asarray(handle[phis_key], dtype=np.float64).T
                boxes = np.asarray(handle[boxes_key], dtype=np.float64).T
                n_images = int(np.asarray(handle[images_key]).size)
        except ValueError as err:
            if str(err).startswith(str(path)):
                raise
            raise ValueError(f"{path}: cannot read {keys} ({err})") from None
        except (OSError, KeyError, TypeError) as err:
            raise ValueError(
                f"{path}: not a readable MATLAB v7.3 file, truncated or corrupt ({type(err).__name__}: {err})"
            ) from None
        return phis, boxes, n_images, True, version
    data, version = _v5_contents(str(path))
    absent = [k for k in keys if k not in data]
    if absent:
        raise ValueError(f"{path}: missing variable(s) {absent}; expected {keys}")
    try:
        phis = np.asarray(data[phis_key], dtype=np.float64)
        boxes = np.asarray(data[boxes_key], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: {phis_key} and {boxes_key} must be numeric arrays") from None
    return phis, boxes, int(np.asarray(data[images_key]).size), False, version


def load_cofw(mat_file: Path, split: str) -> LoadResult:
    """Load ``COFW_{train,test}_color.mat``; each record's image is a :class:`MatImage` read on demand."""
    mat_file = Path(mat_file)
    if split not in KEYS:
        raise ValueError(f"COFW split must be 'train' or 'test', got {split!r}")
    require_file(mat_file, "COFW file")
    keys = KEYS[split]
    phis, boxes, n_images, v73, version = _read_arrays(mat_file, keys)
    n = phis.shape[0] if phis.ndim == 2 else -1
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
        image = MatImage(mat_file, keys[0], i, functools.partial(reader, str(mat_file), keys[0], i, version))
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
    annotation_dir = Path(annotation_dir)
    if annotation_dir.is_file():
        raise NotADirectoryError(
            f"COFW-68 annotation folder expected at {annotation_dir}, but that is a file"
        )
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
        contents = read_mat_v5(Path(bboxes_file), "COFW-68 box file")
        if "bboxes" not in contents:
            raise ValueError(f"{bboxes_file}: expected a variable 'bboxes' (507, 4) [x, y, w, h]")
        try:
            boxes = np.asarray(contents["bboxes"], dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{bboxes_file}: bboxes must be a numeric array") from None
        if boxes.ndim != 2 or boxes.shape[1] != 4 or boxes.shape[0] < max(files):
            raise ValueError(f"{bboxes_file}: expected bboxes (N >= {max(files)}, 4), found {boxes.shape}")
    reader = version = None
    if cofw_test_file is not None:
        require_file(Path(cofw_test_file), "COFW test file")
        reader = _read_h5_image if is_mat_v73(Path(cofw_test_file)) else _read_v5_image
        version = file_version(str(cofw_test_file))
    result = LoadResult(source=str(annotation_dir))
    for i in sorted(files):
        data = read_mat_v5(files[i], "COFW-68 annotation file")
        if "Points" not in data or "Occ" not in data:
            raise ValueError(f"{files[i]}: expected variables Points (68, 2) and Occ (1, 68)")
        try:
            points = np.asarray(data["Points"], dtype=np.float64)
            occ = np.asarray(data["Occ"], dtype=np.float64).ravel()
        except (TypeError, ValueError):
            raise ValueError(f"{files[i]}: Points and Occ must be numeric arrays") from None
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
                functools.partial(reader, str(cofw_test_file), "IsT", i - 1, version),
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
