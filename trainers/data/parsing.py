"""Small parsing helpers shared by the loaders: every failure names the file, the line or record, and
what was expected versus found."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def require_file(path: Path, what: str) -> Path:
    """``path`` when it is a file; ``FileNotFoundError`` when it does not exist, ``IsADirectoryError``
    when it is a folder (a "not found" there would send the user looking for the wrong thing)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what} expected at {path}, but that is a folder, not a file")
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def decode_text(data: bytes, path: Path) -> str:
    """UTF-8 text of a file's bytes (a UTF-8 byte-order mark is dropped); ``ValueError`` naming the file
    otherwise, saying when the bytes are UTF-16 (what some Windows editors save)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ValueError(f"{path}: the file is UTF-16 text; save it as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a UTF-8 text file (byte {err.start}: {err.reason})") from None


def read_text(path: Path, what: str) -> list[str]:
    """Lines of a text annotation file, with a clear error when it is missing, a folder or not text."""
    path = require_file(path, what)
    text = decode_text(path.read_bytes(), path)
    if "\x00" in text:
        raise ValueError(f"{path}: the file holds NUL bytes; it is binary, not a text annotation file")
    return text.splitlines()


def read_json(path: Path, what: str) -> Any:
    """Parsed JSON of ``path``; every failure (missing, folder, not UTF-8, not JSON) names the file."""
    path = require_file(path, what)
    text = decode_text(path.read_bytes(), path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: not valid JSON ({err.msg}, column {err.colno})") from None
    except RecursionError:
        raise ValueError(f"{path}: the JSON is nested too deeply to read") from None


def read_mat_v5(path: Path, what: str) -> dict:
    """Variables of a MATLAB v5 file (``scipy.io.loadmat``); ``ValueError`` naming the file when it is
    truncated, garbage, or a v7.3 (HDF5) file where a v5 one is expected."""
    import scipy.io

    path = require_file(path, what)
    try:
        return scipy.io.loadmat(path)
    except NotImplementedError:  # scipy's answer to a v7.3 file
        raise ValueError(f"{path}: a MATLAB v7.3 (HDF5) file; expected a v5 .mat (save -v7)") from None
    except Exception as err:  # scipy raises OSError, ValueError, TypeError, MatReadError... on bad bytes
        raise ValueError(
            f"{path}: not a readable MATLAB file, truncated or corrupt ({type(err).__name__}: {err})"
        ) from None
