"""``LandmarkDataset``: records -> network samples (the dataset sample contract), and NME normalisers.

Each item loads the record's image lazily (RGB), builds the crop matrix from the record's
centre/size or box (times ``padding``), perturbs it when training (scale, rotation, shift, flip), warps
the pixels and maps the keypoints with that same matrix, then applies photometric jitter. It returns::

    image     float32 (3, H, W) in [0, 1]
    keypoints float32 (K, 2) input pixels, pixel-centre convention; 0 where not labelled
    visible   float32 (K,) 1 = labelled (COCO v in {1, 2}), 0 = unlabelled
    matrix    float64 (2, 3) ORIGINAL image pixels -> input pixels (invert it to map predictions back)
    index     int, index into ``dataset.records``

Random augmentation is a pure function of ``(augmentation_seed, index)``: each training item draws from its
own ``torch.Generator`` seeded by :func:`sample_seed`, and the engine sets ``augmentation_seed`` from
``(train.seed, epoch)`` before each epoch (:meth:`LandmarkDataset.set_augmentation_seed`). Which DataLoader
worker loads an item, and how many items that worker loaded before, cannot change it, so a run resumed
mid-epoch with ``num_workers > 0`` sees the same samples as an uninterrupted one. Left unset (None), items
draw from torch's global generator, as a plain Dataset would.

When a sample is flipped, its keypoints and visibility are also permuted by ``flip_pairs`` (left stays
left in the mirrored image), so the k-th output is always the k-th landmark of the markup; the mirror is
inside ``matrix``. Flip is a training augmentation; evaluation samples are never flipped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from h3r_theory.conventions import check_size, flip_permutation

from ..seeding import mix_seed
from .records import LandmarkRecord, check_images_exist, load_image
from .specs import SPECS
from .transforms import color_jitter, crop_matrix, random_affine_params, transform_points, warp_image


class _OneLineFromWorker:
    """An error of :meth:`LandmarkDataset.__getitem__` raised in a DataLoader worker process keeps its own
    message in the main process.

    torch re-raises a worker's exception as ``type(exc)(text)`` where ``text`` is "Caught ... in DataLoader
    worker process N." followed by the worker's whole traceback, so the one-line message (file, line) that
    ``num_workers=0`` shows would come buried in a traceback. These classes keep only what follows their own
    name on the traceback's last line: the original message.
    """

    def __init__(self, message: str = "") -> None:
        name = f"{type(self).__module__}.{type(self).__qualname__}: "
        if message.startswith("Caught ") and name in message:
            message = message.rsplit(name, 1)[1].rstrip("\n")
        super().__init__(message)


class SampleValueError(_OneLineFromWorker, ValueError):
    """A ``ValueError`` of a sample read in a DataLoader worker (see :class:`_OneLineFromWorker`)."""


class SampleNotFoundError(_OneLineFromWorker, FileNotFoundError):
    """A ``FileNotFoundError`` of a sample read in a DataLoader worker (see :class:`_OneLineFromWorker`)."""


class SampleIsADirectoryError(_OneLineFromWorker, IsADirectoryError):
    """An ``IsADirectoryError`` of a sample read in a DataLoader worker (see :class:`_OneLineFromWorker`)."""


_IN_WORKER = (
    (IsADirectoryError, SampleIsADirectoryError),
    (FileNotFoundError, SampleNotFoundError),
    (ValueError, SampleValueError),
)


def sample_seed(augmentation_seed: int, index: int) -> int:
    """The 63-bit generator seed of item ``index`` under ``augmentation_seed`` (a pure function of both)."""
    return mix_seed(augmentation_seed, index)


def check_crop_boxes(records: Sequence[LandmarkRecord]) -> None:
    """``ValueError`` naming the first record (file and line) whose crop box is not of positive, finite size.

    A box of width or height 0 (one labelled keypoint and no box, or a box with equal corners) would fail
    only when that sample is drawn, hours into training or at the final evaluation.
    """
    for record in records:
        _, size = record.crop_center_and_size()
        if not (np.isfinite(size).all() and (size > 0).all()):
            raise ValueError(
                f"{record.source}: its crop box has size {size.tolist()} (width, height in pixels); a record "
                "needs a box, or labelled keypoints spanning one, of positive width and height"
            )


def check_normalizers(records: Sequence[LandmarkRecord]) -> None:
    """``ValueError`` naming the first record whose metric normaliser (:func:`normalizer`) is not > 0 and
    finite: its error would divide by it (a zero inter-ocular distance gave an infinite NME)."""
    for record in records:
        value = normalizer(record)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(
                f"{record.source}: its metric normaliser is {value!r} pixels (the dataset's "
                f"{SPECS[record.dataset].normalizer!r}); it must be > 0 to divide the error by it"
            )


def normalizer(record: LandmarkRecord) -> float:
    """The record's metric normaliser in ORIGINAL pixels, as its dataset's spec declares it.

    Faces: inter-ocular distance (WFLW, 300W, COFW; the outer eye corners, as in HRNet's evaluation),
    AFLW: ``box_size`` (from the HRNet CSV / JSON). MPII: the PCKh head size
    ``0.6 * ||head-box diagonal||`` (needs ``mpii.attach_head_boxes``). COCO has none (OKS uses the
    instance area): ``ValueError``.
    """
    name = record.dataset
    spec = SPECS.get(name)
    rule = spec.normalizer if spec is not None else None
    if isinstance(rule, tuple):
        a, b = rule
        return float(np.linalg.norm(record.keypoints[a] - record.keypoints[b]))
    if isinstance(rule, str):
        if rule not in record.extras:
            raise ValueError(f"{record.source}: {spec.normalizer_hint}")
        return float(record.extras[rule])
    raise ValueError(f"{record.source}: no NME normaliser is defined for dataset {name!r} (COCO uses OKS)")


class LandmarkDataset(Dataset):
    """Torch dataset over loader records.

    Args:
        records: list of :class:`~trainers.data.records.LandmarkRecord` (one markup, same K).
        input_size: network input ``(W, H)``.
        train: apply the random augmentation (else a deterministic centred crop).
        flip_pairs: left/right pairs of the markup (see :mod:`trainers.data.flip_pairs`).
        padding: crop size = annotated size x ``padding`` (HRNet uses 1.25).
        scale_range, rotation, rotation_prob, translation, flip_prob: see
            :func:`~trainers.data.transforms.random_affine_params`.
        color: brightness/contrast/saturation amplitude of the jitter (0 disables it).
        check_images: check every image path at construction (otherwise a missing file fails on access).
        dtype: floating dtype of image and keypoints (float32 by the contract; float64 for exactness tests).
    """

    def __init__(
        self,
        records: Sequence[LandmarkRecord],
        input_size: Sequence[int] = (256, 256),
        train: bool = False,
        flip_pairs: Sequence[tuple[int, int]] = (),
        padding: float = 1.25,
        scale_range: tuple[float, float] = (0.75, 1.25),
        rotation: float = 30.0,
        rotation_prob: float = 0.6,
        translation: float = 0.05,
        flip_prob: float = 0.5,
        color: float = 0.2,
        check_images: bool = False,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.records = list(records)
        if not self.records:
            raise ValueError("LandmarkDataset needs at least one record")
        counts = {r.num_keypoints for r in self.records}
        if len(counts) != 1:
            raise ValueError(f"all records must have the same number of keypoints, found {sorted(counts)}")
        self.num_keypoints = counts.pop()
        self.input_size = check_size(input_size, "input_size")
        self.train = bool(train)
        self.flip_pairs = [tuple(p) for p in flip_pairs]
        self._perm = torch.as_tensor(flip_permutation(self.num_keypoints, self.flip_pairs))
        if padding <= 0:
            raise ValueError(f"padding must be positive, got {padding}")
        self.padding = float(padding)
        self.augment = dict(
            scale_range=tuple(scale_range),
            rotation=float(rotation),
            rotation_prob=float(rotation_prob),
            translation=float(translation),
            flip_prob=float(flip_prob) if self.flip_pairs or flip_prob == 0 else 0.0,
        )
        if flip_prob > 0 and not self.flip_pairs and train:
            # Mirroring without swapping left/right would teach a wrong markup; refuse rather than guess.
            raise ValueError("flip_prob > 0 needs flip_pairs (use flip_prob=0 for a markup without pairs)")
        self.color = float(color)
        self.dtype = dtype
        self.augmentation_seed: int | None = None
        check_crop_boxes(self.records)  # at construction, before a run writes anything
        if check_images:
            check_images_exist(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def set_augmentation_seed(self, seed: int | None) -> None:
        """Seed of this epoch's augmentation (item ``i`` then draws from ``sample_seed(seed, i)``).

        Set it before the DataLoader starts its workers: each worker gets a copy of the dataset."""
        self.augmentation_seed = None if seed is None else int(seed)

    def _generator(self, index: int) -> torch.Generator | None:
        if self.augmentation_seed is None:
            return None
        return torch.Generator().manual_seed(sample_seed(self.augmentation_seed, index))

    @property
    def dataset_name(self) -> str:
        """The dataset the records come from (the key of its :class:`~trainers.data.specs.DatasetSpec`)."""
        return str(self.records[0].dataset)

    def normalizer(self, index: int) -> float:
        """NME normaliser of record ``index`` in ORIGINAL pixels (see :func:`normalizer`)."""
        return normalizer(self.records[index])

    def matrix_for(self, index: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, bool]:
        """The (3, 3) float64 original -> input matrix of record ``index`` and whether it flips."""
        center, size = self.records[index].crop_center_and_size()
        center = torch.as_tensor(center, dtype=torch.float64)[None]
        size = torch.as_tensor(size, dtype=torch.float64)[None] * self.padding
        if not self.train:
            return crop_matrix(center, size, self.input_size)[0], False
        p = random_affine_params(1, generator=generator, **self.augment)
        center = center + p["shift"] * size
        M = crop_matrix(center, size * p["scale"][:, None], self.input_size, p["rotation"], p["flip"])
        return M[0], bool(p["flip"][0])

    def __getitem__(self, index: int) -> dict:
        if get_worker_info() is None:  # the main process: errors as they are
            return self._item(index)
        try:
            return self._item(index)
        except (IsADirectoryError, FileNotFoundError, ValueError) as err:
            for kind, in_worker in _IN_WORKER:
                if isinstance(err, kind):
                    raise in_worker(str(err)) from None
            raise

    def _item(self, index: int) -> dict:
        record = self.records[index]
        pixels = load_image(record.image)
        image = torch.from_numpy(pixels).permute(2, 0, 1).to(self.dtype).div_(255.0)[None]
        generator = self._generator(index) if self.train else None
        M, flipped = self.matrix_for(index, generator)
        image = warp_image(image, M[None], self.input_size)
        keypoints = transform_points(torch.as_tensor(record.keypoints, dtype=self.dtype)[None], M[None])[0]
        visible = torch.as_tensor(record.visibility > 0, dtype=self.dtype)
        if flipped:
            keypoints, visible = keypoints[self._perm], visible[self._perm]
        if self.train and self.color > 0:
            image = color_jitter(image, self.color, self.color, self.color, generator=generator)
        keypoints = torch.where(visible[:, None] > 0, keypoints, torch.zeros_like(keypoints))
        return {
            "image": image[0],
            "keypoints": keypoints,
            "visible": visible,
            "matrix": M[:2].clone(),
            "index": index,
        }
