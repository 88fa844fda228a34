"""The one record type every loader yields, the load report, and lazy, checked image reading.

A :class:`LandmarkRecord` holds one annotated instance (a face or a person) in the ORIGINAL image frame,
with keypoints already converted to 0-based pixel-centre coordinates (pixel ``i`` covers ``[i - 0.5,
i + 0.5)``, see :mod:`h3r_theory.conventions`). Every format's 1-based -> 0-based shift happens once, in
its loader, and nowhere else.

Visibility follows COCO: 0 = not labelled, 1 = labelled but occluded, 2 = labelled and visible.
Keypoints with visibility 0 hold whatever the file held (shifted like the others); never use them.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# HRNet / MSRA store a box size as ``scale = size / 200`` ("pixel_std"); we keep sizes in pixels and
# convert only when reading such a file.
PIXEL_STD = 200.0
# Largest |coordinate| and crop size (pixels) a record may hold. Finite but absurd values (1e300) would
# otherwise load and only later turn into NaN images or a singular crop matrix. At 1e6 float32 (the
# training dtype) still resolves 1/16 pixel (np.spacing(np.float32(1e6)) = 0.0625, checked in
# tests/test_data_loaders.py); no image of these datasets is anywhere near that size.
MAX_COORDINATE = 1e6


@dataclasses.dataclass(frozen=True)
class MatImage:
    """An image stored inside a MATLAB file (COFW keeps its images in ``IsTr`` / ``IsT`` cell arrays).

    ``reader`` is called with no argument and returns an ``(H, W)`` or ``(H, W, 3)`` array of any real
    dtype (:func:`load_image` converts it with :func:`to_uint8`); it is a module-level callable (a
    ``functools.partial``) so that records stay picklable for DataLoader workers.
    """

    path: Path
    key: str
    index: int
    reader: Callable[[], np.ndarray] = dataclasses.field(compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.path}:{self.key}[{self.index}]"


ImageRef = Path | MatImage


@dataclasses.dataclass
class LandmarkRecord:
    """One annotated instance.

    Attributes:
        image: path of the image file (loaded lazily), or a :class:`MatImage`.
        keypoints: (K, 2) float64, x then y, 0-based pixel-centre coordinates of the original image.
        visibility: (K,) int64 in {0, 1, 2} (COCO semantics).
        dataset: short dataset name ("wflw", "300w", "cofw", "cofw68", "aflw", "mpii", "coco" or the
            name given to the generic loader); selects the NME normaliser.
        box: (4,) float64 ``x_min, y_min, x_max, y_max`` in the same frame as the keypoints, or None.
        center: (2,) float64 crop centre in the same frame, or None (then the box centre is used).
        size: crop size in pixels before any padding factor (HRNet ``scale * 200``), or None.
        extras: the dataset's own metadata (WFLW attributes, AFLW box_size, MPII head box, COCO ids, ...).
        source: where the record came from, ``"file:line"`` or ``"file#index"``, for error messages.
    """

    image: ImageRef
    keypoints: np.ndarray
    visibility: np.ndarray
    dataset: str
    box: np.ndarray | None = None
    center: np.ndarray | None = None
    size: float | None = None
    extras: dict = dataclasses.field(default_factory=dict)
    source: str = ""

    @property
    def num_keypoints(self) -> int:
        return int(self.keypoints.shape[0])

    def crop_center_and_size(self) -> tuple[np.ndarray, np.ndarray]:
        """Crop centre (2,) and size (2,) ``(width, height)`` in original pixels.

        Prefers the annotated ``center``/``size`` (HRNet files), then the box, then the tight box of the
        labelled keypoints, so that every record can be cropped.
        """
        if self.center is not None and self.size is not None:
            return np.asarray(self.center, float), np.array([self.size, self.size], float)
        box = self.box
        if box is None:
            labelled = self.keypoints[self.visibility > 0]
            if len(labelled) == 0:
                raise ValueError(
                    f"{self.source}: record has neither a box nor labelled keypoints to crop around"
                )
            box = np.concatenate([labelled.min(0), labelled.max(0)])
        box = np.asarray(box, float)
        center = 0.5 * (box[:2] + box[2:]) if self.center is None else np.asarray(self.center, float)
        size = box[2:] - box[:2]
        return center, size


def make_record(
    image: ImageRef,
    keypoints: Any,
    visibility: Any,
    dataset: str,
    source: str,
    box: Any = None,
    center: Any = None,
    size: float | None = None,
    extras: dict | None = None,
) -> LandmarkRecord:
    """Build a record with arrays of the documented dtypes and shapes, checking them."""
    kp = np.asarray(keypoints, dtype=np.float64)
    vis = np.asarray(visibility, dtype=np.int64)
    if kp.ndim != 2 or kp.shape[1] != 2:
        raise ValueError(f"{source}: keypoints must have shape (K, 2), found {kp.shape}")
    if vis.shape != (kp.shape[0],):
        raise ValueError(f"{source}: visibility must have shape ({kp.shape[0]},), found {vis.shape}")
    if not np.isin(vis, (0, 1, 2)).all():
        raise ValueError(f"{source}: visibility must be in {{0, 1, 2}}, found {sorted(set(vis.tolist()))}")
    if not np.isfinite(kp[vis > 0]).all():
        raise ValueError(f"{source}: a labelled keypoint is not finite")
    _check_magnitude(kp[vis > 0], source, "labelled keypoint coordinates")
    box = None if box is None else _finite(box, 4, source, "box")
    center = None if center is None else _finite(center, 2, source, "center")
    if size is not None:
        size = float(size)
        if not (math.isfinite(size) and 0 < size <= MAX_COORDINATE):
            raise ValueError(
                f"{source}: crop size must be > 0 and <= {MAX_COORDINATE:g} pixels, found {size:g}"
            )
    return LandmarkRecord(
        image=image,
        keypoints=kp,
        visibility=vis,
        dataset=dataset,
        box=box,
        center=center,
        size=size,
        extras=dict(extras or {}),
        source=source,
    )


def size_from_scale(scale: float, source: str) -> float:
    """HRNet's ``scale`` (box size / 200) as a crop size in pixels, refusing what is not a positive size
    within :data:`MAX_COORDINATE` before multiplying (a ``scale`` of 1e307 would overflow to inf)."""
    scale = float(scale)
    if not (math.isfinite(scale) and 0 < scale <= MAX_COORDINATE / PIXEL_STD):
        raise ValueError(
            f"{source}: scale must be > 0 and <= {MAX_COORDINATE / PIXEL_STD:g} (a crop of at most "
            f"{MAX_COORDINATE:g} pixels), found {scale:g}"
        )
    return scale * PIXEL_STD


def _finite(values: Any, length: int, source: str, what: str) -> np.ndarray:
    """``values`` as a (length,) float64 array of finite numbers within :data:`MAX_COORDINATE`."""
    try:
        array = np.asarray(values, dtype=np.float64).reshape(length)
    except (TypeError, ValueError):
        raise ValueError(f"{source}: {what} must be {length} numbers, found {values!r}") from None
    if not np.isfinite(array).all():
        raise ValueError(f"{source}: {what} must be finite, found {array.tolist()}")
    _check_magnitude(array, source, what)
    return array


def _check_magnitude(values: np.ndarray, source: str, what: str) -> None:
    if values.size and np.abs(values).max() > MAX_COORDINATE:
        raise ValueError(
            f"{source}: {what} must lie within +-{MAX_COORDINATE:g} pixels, found {np.abs(values).max():g}"
        )


class LoadResult(list):
    """The records a loader returns (a plain list), plus the count of what it skipped and why.

    ``skipped`` maps a reason to a count and ``examples`` a reason to the first few places it happened
    (``"file:12"``); :meth:`summary` is the line a loader's caller should log. Nothing is ever dropped
    without being counted here.
    """

    MAX_EXAMPLES = 3

    def __init__(self, records: Iterable[LandmarkRecord] = (), source: str = "") -> None:
        super().__init__(records)
        self.skipped: collections.Counter[str] = collections.Counter()
        self.examples: dict[str, list[str]] = {}
        self.source = source

    def skip(self, reason: str, count: int = 1, where: str | None = None) -> None:
        self.skipped[reason] += count
        if where is not None:
            shown = self.examples.setdefault(reason, [])
            if len(shown) < self.MAX_EXAMPLES:
                shown.append(where)

    def merge(self, other: LoadResult) -> None:
        """Append ``other``'s records, counts and examples (a split read from several files)."""
        self.extend(other)
        for reason, n in other.skipped.items():
            self.skipped[reason] += n
        for reason, places in other.examples.items():
            shown = self.examples.setdefault(reason, [])
            shown.extend(places[: max(0, self.MAX_EXAMPLES - len(shown))])

    def summary(self) -> str:
        parts = []
        for reason, n in sorted(self.skipped.items()):
            places = self.examples.get(reason)
            parts.append(f"{n} {reason}" + (f" (e.g. {', '.join(places)})" if places else ""))
        return f"{self.source}: {len(self)} records loaded, skipped: {', '.join(parts) or 'none'}"


class DuplicateFilter:
    """Finds repeated records while a loader reads a file: :meth:`seen` returns where the same ``key``
    was first seen, or None (and remembers this one). Loaders drop the repeat and count it, as the COCO
    loader does for repeated image entries, so a copied line never counts twice in training or NME."""

    def __init__(self) -> None:
        self._first: dict[Any, str] = {}

    def seen(self, key: Any, where: str) -> str | None:
        first = self._first.get(key)
        if first is None:
            self._first[key] = where
        return first


def check_images_exist(records: Iterable[LandmarkRecord], shown: int = 10) -> None:
    """Raise ``FileNotFoundError`` listing every image file that does not exist: the first ``shown`` by
    name (a folder where an image is expected says so), then how many more.

    Call it when a dataset is built, so that a missing image stops the run before the first step rather
    than hours into training. Images inside a MATLAB file (:class:`MatImage`) are checked by their loader.
    One ``stat`` per distinct path.
    """
    missing = []
    for path in dict.fromkeys(r.image for r in records if isinstance(r.image, Path)):
        if not path.is_file():
            missing.append(f"{path} (a folder, not an image file)" if path.is_dir() else str(path))
    if missing:
        listed = "\n  ".join(missing[:shown])
        more = f"\n  ... and {len(missing) - shown} more" if len(missing) > shown else ""
        raise FileNotFoundError(f"{len(missing)} image file(s) not found:\n  {listed}{more}")


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of the image file ``path`` read from its header only (``PIL.Image.open`` decodes
    lazily, so no pixel is decoded and the cost is one small read).

    A header that declares more pixels than PIL agrees to decode (twice ``PIL.Image.MAX_IMAGE_PIXELS``,
    178,956,970 by default) raises ``ValueError`` naming the file and that number of pixels: a
    decompression bomb, a few hundred bytes that would expand to gigabytes. Other unreadable headers raise
    PIL's own ``OSError``.
    """
    from PIL import Image

    try:
        with Image.open(path) as pil:
            return pil.size
    except Image.DecompressionBombError as err:
        raise ValueError(f"cannot decode image {path}: {err}") from None


def check_image_headers(records: Iterable[LandmarkRecord]) -> None:
    """Read the header of every distinct image file of ``records`` (:func:`image_size`) and refuse, naming
    the file and its declared size, one that PIL would refuse as a decompression bomb: when the dataset is
    built, before a run writes anything, rather than when that image is first drawn. A header that PIL
    cannot read at all is left to :func:`load_image`, which names it when the image is read.

    Images inside a MATLAB file (:class:`MatImage`) are arrays already and are not checked here.
    """
    for path in dict.fromkeys(r.image for r in records if isinstance(r.image, Path)):
        try:
            image_size(path)
        except OSError:
            continue


def check_keypoint_counts(records: Sequence[LandmarkRecord]) -> int:
    """The one keypoint count K of ``records``; ``ValueError`` naming the first record that differs."""
    if not records:
        raise ValueError("no records")
    first = records[0]
    for record in records:
        if record.num_keypoints != first.num_keypoints:
            raise ValueError(
                f"{record.source}: {record.num_keypoints} keypoints, but {first.source} has "
                f"{first.num_keypoints}; one dataset must hold one markup"
            )
    return first.num_keypoints


def to_uint8(array: np.ndarray, where: str) -> np.ndarray:
    """An image array of any numeric dtype as uint8, converted by its value range, never wrapped.

    * uint8: unchanged; bool: 0 / 255.
    * other integers with every value in [0, 255]: the same values (``int16(img)`` in Matlab keeps them);
      uint16 beyond 255: the full 16-bit range scaled down, ``round(v / 257)`` (Matlab's ``im2uint8``).
    * floats in [0, 1]: ``round(255 v)`` (Matlab's ``im2double`` range); floats in [0, 255]: rounded.

    Anything else (negative or larger integers, non-finite or out-of-range floats, complex) raises
    ``ValueError`` naming ``where`` and the range found, rather than guessing a scale.
    """
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * np.uint8(255)
    if array.size == 0:
        raise ValueError(f"{where}: the image is empty (shape {array.shape})")
    if np.issubdtype(array.dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if low >= 0 and high <= 255:
            return array.astype(np.uint8)
        if array.dtype == np.uint16:
            return np.round(array / 257.0).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError(f"{where}: the image holds NaN or infinite values (dtype {array.dtype})")
        low, high = float(array.min()), float(array.max())
        if low >= 0 and high <= 1:
            return np.round(array * 255.0).astype(np.uint8)
        if low >= 0 and high <= 255:
            return np.round(array).astype(np.uint8)
    else:
        raise ValueError(f"{where}: an image must hold real numbers, found dtype {array.dtype}")
    raise ValueError(
        f"{where}: image values span [{low:g}, {high:g}] (dtype {array.dtype}); expected [0, 255] "
        "(or [0, 1] for floats, or the full uint16 range)"
    )


def load_image(image: ImageRef) -> np.ndarray:
    """Read an image as an (H, W, 3) uint8 RGB array.

    Grayscale, palette, RGBA, CMYK and 16-bit images are converted to RGB. A missing file raises
    ``FileNotFoundError`` and a truncated or corrupt one ``ValueError``, both naming the file.
    """
    if isinstance(image, MatImage):
        array = np.asarray(image.reader())
        if array.ndim == 2:
            array = np.repeat(array[:, :, None], 3, axis=2)
        if array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"{image}: expected an (H, W) or (H, W, 3) image, found shape {array.shape}")
        return np.ascontiguousarray(to_uint8(array, str(image)))

    from PIL import Image  # optional dependency (the "train" extra)

    path = Path(image)
    if path.is_dir():
        raise IsADirectoryError(f"image file expected at {path}, but that is a folder")
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as pil:
            # load() forces the full decode, so a truncated file fails here rather than later as a grey band.
            pil.load()
            if pil.mode == "P" and "transparency" in pil.info:
                pil = pil.convert("RGBA")
            if pil.mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.asarray(pil, dtype=np.float64)
                top = max(float(array.max()), 1.0)
                pil = Image.fromarray((array * (255.0 / top)).round().astype(np.uint8))
            rgb = pil.convert("RGB")
            return np.asarray(rgb, dtype=np.uint8).copy()
    except Image.DecompressionBombError as err:  # more pixels than PIL agrees to decode
        raise ValueError(f"cannot decode image {path}: {err}") from None
    except (OSError, SyntaxError, ValueError) as err:  # PIL reports corrupt data with these
        raise ValueError(f"cannot decode image {path}: {err}") from err
