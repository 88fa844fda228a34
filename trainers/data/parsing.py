"""Small parsing helpers shared by the loaders: every failure names the file, the line or record, and
what was expected versus found."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def parse_floats(tokens: Sequence[str], where: str, what: str) -> np.ndarray:
    """Parse ``tokens`` as finite floats; ``where`` is ``"file:line"``, ``what`` names the field group."""
    values = np.empty(len(tokens), dtype=np.float64)
    for i, token in enumerate(tokens):
        try:
            value = float(token)
        except ValueError:
            raise ValueError(f"{where}: {what} field {i} must be a number, found {token!r}") from None
        if not math.isfinite(value):
            raise ValueError(f"{where}: {what} field {i} must be a finite number, found {token!r}")
        values[i] = value
    return values


def parse_flags(tokens: Sequence[str], where: str, names: Sequence[str]) -> dict[str, int]:
    """Parse 0/1 flags, one per name."""
    flags = {}
    for name, token in zip(names, tokens):
        if token not in ("0", "1"):
            raise ValueError(f"{where}: attribute {name!r} must be 0 or 1, found {token!r}")
        flags[name] = int(token)
    return flags


def check_box(box: np.ndarray, where: str) -> np.ndarray:
    """Check an ``x_min, y_min, x_max, y_max`` box is ordered (a zero-size box is allowed)."""
    if box[2] < box[0] or box[3] < box[1]:
        raise ValueError(f"{where}: box must satisfy x_min <= x_max and y_min <= y_max, found {box.tolist()}")
    return box


def read_text(path: Path, what: str) -> list[str]:
    """Lines of a text annotation file, with a clear error when it is missing or not text."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a UTF-8 text file ({err})") from err
