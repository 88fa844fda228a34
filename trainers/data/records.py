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
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

# HRNet / MSRA store a box size as ``scale = size / 200`` ("pixel_std"); we keep sizes in pixels and
# convert only when reading such a file.
PIXEL_STD = 200.0


@dataclasses.dataclass(frozen=True)
class MatImage:
    """An image stored inside a MATLAB file (COFW keeps its images in ``IsTr`` / ``IsT`` cell arrays).

    ``reader`` is called with no argument and returns an ``(H, W)`` or ``(H, W, 3)`` uint8 array; it is
    a module-level callable (a ``functools.partial``) so that records stay picklable for DataLoader workers.
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
    return LandmarkRecord(
        image=image,
        keypoints=kp,
        visibility=vis,
        dataset=dataset,
        box=None if box is None else np.asarray(box, dtype=np.float64).reshape(4),
        center=None if center is None else np.asarray(center, dtype=np.float64).reshape(2),
        size=None if size is None else float(size),
        extras=dict(extras or {}),
        source=source,
    )


class LoadResult(list):
    """The records a loader returns (a plain list), plus the count of what it skipped and why.

    ``skipped`` maps a reason to a count; :meth:`summary` is the line a loader's caller should log. Nothing
    is ever dropped without being counted here.
    """

    def __init__(self, records: Iterable[LandmarkRecord] = (), source: str = "") -> None:
        super().__init__(records)
        self.skipped: collections.Counter[str] = collections.Counter()
        self.source = source

    def skip(self, reason: str, count: int = 1) -> None:
        self.skipped[reason] += count

    def summary(self) -> str:
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items())) or "none"
        return f"{self.source}: {len(self)} records loaded, skipped: {skipped}"


def check_images_exist(records: Iterable[LandmarkRecord]) -> None:
    """Raise ``FileNotFoundError`` listing (up to 10 of) the image files that do not exist."""
    missing = [str(r.image) for r in records if isinstance(r.image, Path) and not r.image.is_file()]
    if missing:
        shown = "\n  ".join(missing[:10])
        more = f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise FileNotFoundError(f"{len(missing)} image file(s) not found:\n  {shown}{more}")


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
        return np.ascontiguousarray(array.astype(np.uint8, copy=False))

    from PIL import Image  # optional dependency (the "train" extra)

    path = Path(image)
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
    except (OSError, SyntaxError, ValueError) as err:  # PIL reports corrupt data with these
        raise ValueError(f"cannot decode image {path}: {err}") from err
