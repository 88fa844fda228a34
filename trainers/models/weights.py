"""Loading weight files safely: ``torch.load(..., weights_only=True)`` only, and reports of what loaded.

A weight file is never unpickled freely: a file that needs anything beyond tensors and plain containers
(a pickled custom class, a lambda, ...) could run arbitrary code, so it is refused with a ValueError
naming the file. Nothing is ever downloaded: the user names a local file.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

# Wrappers that training scripts put around a state dict (mmcv/mmpose "state_dict", others "model").
WRAPPER_KEYS = ("state_dict", "model", "net", "params")


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did: keys loaded, absent from the file, unused, or of the wrong shape."""

    path: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)  # "key: file (shape) vs model (shape)"

    def summary(self) -> str:
        return (
            f"{self.path}: loaded {len(self.loaded)} tensors; {len(self.missing)} model keys missing "
            f"from the file (e.g. {self.missing[:3]}), {len(self.unexpected)} file keys unused "
            f"(e.g. {self.unexpected[:3]}), {len(self.mismatched)} shape mismatches {self.mismatched[:3]}"
        )


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``path`` with ``weights_only=True``; unwrap ``{"state_dict": ...}`` and the
    ``module.`` prefix of DataParallel/DDP checkpoints.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file needs arbitrary unpickling, or does not hold a mapping of names to tensors.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"weight file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"refusing to load {path}: it is not a plain tensor file and loading it would need arbitrary "
            f"unpickling (torch.load weights_only=True failed). Re-save its state_dict() with torch.save. "
            f"Detail: {str(err).splitlines()[0]}"
        ) from None
    for key in WRAPPER_KEYS:
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise ValueError(
            f"{path} must hold a state dict (a mapping of names to tensors), got {type(obj).__name__}"
        )
    state = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor")
        state[key[len("module.") :] if key.startswith("module.") else key] = value
    return state


def load_pretrained(model: nn.Module, path: str | Path) -> LoadReport:
    """Load the tensors of ``path`` whose names and shapes match ``model`` (``strict=False``).

    Keys whose shape differs (e.g. a head trained for another number of keypoints) are skipped and
    reported rather than raising, so a backbone checkpoint can initialise any head. Returns the report;
    it is also kept as ``model.pretrained_report``.
    """
    state = load_state_dict_file(path)
    own = model.state_dict()
    report = LoadReport(path=str(path))
    usable = {}
    for key, value in state.items():
        if key not in own:
            report.unexpected.append(key)
        elif own[key].shape != value.shape:
            report.mismatched.append(f"{key}: file {tuple(value.shape)} vs model {tuple(own[key].shape)}")
        else:
            usable[key] = value
    result = model.load_state_dict(usable, strict=False)
    report.loaded = sorted(usable)
    report.missing = sorted(result.missing_keys)
    if not usable:
        raise ValueError(f"{path}: no tensor matches the model by name and shape ({report.summary()})")
    model.pretrained_report = report
    return report
