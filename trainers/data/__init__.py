"""Datasets: the embedded synthetic landmark set (the default) and loaders for the original files of WFLW,
300W, COFW, AFLW, MPII and COCO, all yielding one record type and one sample dict (see ``dataset.py``). The facts about each dataset are
declared once, in its :class:`~trainers.data.specs.DatasetSpec` (``specs.py``)."""

from . import transforms
from .dataset import LandmarkDataset, normalizer
from .flip_pairs import FLIP_PAIRS, check_flip_pairs, flip_pairs_for
from .records import LandmarkRecord, LoadResult, MatImage, check_images_exist, load_image
from .registry import DATASETS, load_dataset
from .specs import SPECS, DatasetSpec, get_spec
from .synthetic import SyntheticLandmarks, render_batch

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "SPECS",
    "FLIP_PAIRS",
    "LandmarkDataset",
    "LandmarkRecord",
    "LoadResult",
    "MatImage",
    "SyntheticLandmarks",
    "check_flip_pairs",
    "check_images_exist",
    "flip_pairs_for",
    "get_spec",
    "load_dataset",
    "load_image",
    "normalizer",
    "render_batch",
    "transforms",
]
