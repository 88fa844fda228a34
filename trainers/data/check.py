"""``h3r-check-data NAME ROOT``: is a dataset root usable, and if not, what is missing?

    h3r-check-data wflw /data/WFLW                      # the train and eval splits of trainers/configs/wflw.yaml
    h3r-check-data coco /data/coco --split val2017      # one split
    h3r-check-data mpii /data/mpii --images 0           # skip decoding images

For each split it reads the files with the same loaders training uses (:func:`trainers.data.load_dataset`,
so nothing here parses a format a second time) and prints one line per check. On the WFLW real sample (mmpose's
converted test JSON and its two images, arranged as ``tests/test_check_data.py`` arranges them)::

    $ h3r-check-data wflw wflw --split test
    h3r-check-data wflw wflw (splits: test)
    SPLIT            CHECK        STATUS   DETAIL
    test             annotations  ok       wflw/annotations/face_landmarks_wflw_test.json
    test             records      ok       4 records; skipped: none
    test             keypoints    ok       98 per record in 4/4 records; labelled per record 98..98
    test             boxes        ok       4/4 boxes present, 4/4 crops valid
    test             normaliser   ok       4/4 positive (keypoints (60, 72))
    test             images       ok       4/4 records' images present (2 distinct, 2 files); 2/2 sampled images decode
    verdict: usable (6 checks ok; splits test)

The last line is the verdict. STATUS is ``ok``, ``MISSING`` (a file or folder is not where the loader looks: the detail names
the path) or ``BAD`` (present but unusable: the detail names the file and line or record). Exit status: 0 when
every check is ok, 1 when one is not, 2 (one line, no traceback) for a bad argument: an unknown dataset
name, a root that is not a folder, a split the dataset does not have, a negative ``--images``.

The checks, per split:

annotations
    the loader finds and parses its files (a missing file is MISSING, a malformed line BAD with its place).
records
    at least one record, and what the loader skipped and why (``LoadResult.summary``).
keypoints
    every record has the spec's K keypoints (``DatasetSpec.num_keypoints``) and at least one labelled.
boxes
    how many records carry a box (or HRNet's centre and scale); every record's crop
    (:meth:`~trainers.data.records.LandmarkRecord.crop_center_and_size`) has a finite, positive size.
normaliser
    the metric's per-record normaliser exists and is positive (:func:`trainers.data.dataset.normalizer`):
    the inter-ocular distance of the faces, AFLW's ``box_size``, MPII's head size on the ``valid`` split
    (from ``annot/gt_valid.mat``). COCO has none (OKS uses the area) and MPII's other splits are not scored.
images
    every image file exists (each distinct path stat-ed once), and an evenly spaced sample of ``--images``
    distinct images decodes (:func:`~trainers.data.records.load_image`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..config import CONFIG_DIR, read_yaml_mapping
from . import cofw, ibug300w, wflw
from .dataset import normalizer
from .records import LandmarkRecord, load_image
from .registry import CONVERTED, DATASETS, load_dataset
from .specs import SPECS

PROG = "h3r-check-data"
OK, MISSING, BAD = "ok", "MISSING", "BAD"
DEFAULT_SAMPLE = 20  # images decoded per split: enough to catch a wrong folder or a corrupt copy quickly
SHOWN = 3  # places named in a line before "and N more"

# The split names a loader refuses before it reads a file, taken from the loaders' own tables; the other
# loaders take any name and look for the file it names (AFLW: face_landmarks_aflw_<split>.csv).
KNOWN_SPLITS: dict[str, tuple[str, ...]] = {
    "wflw": ("train", "test") + tuple(f"test_{subset}" for subset in wflw.SUBSET_ATTRIBUTE),
    "300w": tuple(ibug300w.SPLITS),
    "cofw": tuple(cofw.KEYS),
    "cofw68": ("test",),
}


@dataclasses.dataclass(frozen=True)
class Check:
    """One line of the report: ``split`` (None for the whole root), ``what`` was checked, ``status`` (ok,
    MISSING or BAD) and ``detail`` (counts, or the path / record at fault)."""

    split: str | None
    what: str
    status: str
    detail: str

    def line(self) -> str:
        return f"{self.split or '-':<16} {self.what:<12} {self.status:<8} {self.detail}"


def default_splits(name: str) -> tuple[str, ...]:
    """The splits a run uses: ``data.train_split`` and ``data.eval_split`` of the bundled config
    ``trainers/configs/<name>.yaml``; a dataset without one (COFW-68) has its known splits."""
    file = CONFIG_DIR / f"{name}.yaml"
    if not file.is_file():
        return KNOWN_SPLITS[name]
    data = read_yaml_mapping(file).get("data", {})
    return tuple(dict.fromkeys(str(data[k]) for k in ("train_split", "eval_split") if k in data))


def _places(items: Sequence[str], total: int) -> str:
    shown = ", ".join(items[:SHOWN])
    return shown + (f" and {total - SHOWN} more" if total > SHOWN else "")


def _check_keypoints(name: str, split: str, records: Sequence[LandmarkRecord]) -> Check:
    k = SPECS[name].num_keypoints
    wrong = [r.source for r in records if r.num_keypoints != k]
    if wrong:
        return Check(
            split,
            "keypoints",
            BAD,
            f"{len(wrong)} record(s) without {k} keypoints: {_places(wrong, len(wrong))}",
        )
    labelled = np.array([int((r.visibility > 0).sum()) for r in records])
    empty = [r.source for r, n in zip(records, labelled) if n == 0]
    if empty:
        return Check(
            split,
            "keypoints",
            BAD,
            f"{len(empty)} record(s) with no labelled keypoint: {_places(empty, len(empty))}",
        )
    return Check(
        split,
        "keypoints",
        OK,
        f"{k} per record in {len(records)}/{len(records)} records; labelled per record "
        f"{labelled.min()}..{labelled.max()}",
    )


def _crop_is_valid(record: LandmarkRecord) -> bool:
    try:
        center, size = record.crop_center_and_size()
    except ValueError:
        return False
    return bool(np.isfinite(center).all() and np.isfinite(size).all() and (size > 0).all())


def _check_boxes(split: str, records: Sequence[LandmarkRecord]) -> Check:
    n = len(records)
    present = sum(r.box is not None or (r.center is not None and r.size is not None) for r in records)
    invalid = [r.source for r in records if not _crop_is_valid(r)]
    detail = f"{present}/{n} boxes present, {n - len(invalid)}/{n} crops valid"
    if present == 0:
        detail += " (no box in the files: crops use the labelled keypoints' tight box)"
    if invalid:
        return Check(
            split, "boxes", BAD, f"{detail}; empty or non-finite crop: {_places(invalid, len(invalid))}"
        )
    return Check(split, "boxes", OK, detail)


def _check_normaliser(name: str, split: str, records: Sequence[LandmarkRecord]) -> Check | None:
    spec = SPECS[name]
    if spec.metric == "ap" or (spec.metric == "pckh" and split != "valid"):
        return None  # COCO scores with OKS; MPII's head boxes (gt_valid.mat) exist for the valid split only
    rule = f"keypoints {spec.normalizer}" if isinstance(spec.normalizer, tuple) else repr(spec.normalizer)
    absent, bad = [], []
    for r in records:
        try:
            value = normalizer(r)
        except ValueError:
            absent.append(r.source)
            continue
        if not (math.isfinite(value) and value > 0):
            bad.append(r.source)
    n = len(records)
    if absent:
        where = (
            "root/annot/gt_valid.mat (matched to the persons by their joints)"
            if spec.metric == "pckh"
            else "the annotation file"
        )
        return Check(
            split, "normaliser", MISSING, f"{len(absent)}/{n} records have no {rule}; it comes from {where}: "
            f"{_places(absent, len(absent))}"
        )  # fmt: skip
    if bad:
        return Check(
            split,
            "normaliser",
            BAD,
            f"{len(bad)}/{n} records have a zero or non-finite {rule}: {_places(bad, len(bad))}",
        )
    return Check(split, "normaliser", OK, f"{n}/{n} positive ({rule})")


def _sample(images: Sequence, count: int) -> list:
    """``count`` items evenly spaced over ``images`` (all of them when it is shorter), first and last included."""
    if count <= 0 or not images:
        return []
    index = np.unique(np.linspace(0, len(images) - 1, min(count, len(images))).round().astype(int))
    return [images[i] for i in index]


def _check_images(split: str, records: Sequence[LandmarkRecord], sample: int) -> Check:
    images = list(dict.fromkeys(r.image for r in records))  # distinct images: a file holds several faces
    paths = [i for i in images if isinstance(i, Path)]
    missing = [str(p) for p in paths if not p.is_file()]
    n = len(records)
    if missing:
        return Check(
            split, "images", MISSING, f"{len(missing)}/{len(paths)} image files not found, e.g. {_places(missing, len(missing))}"
        )  # fmt: skip
    where = f"{len(paths)} files" if paths else "inside the .mat file"
    present = f"{n}/{n} records' images present ({len(images)} distinct, {where})"
    chosen = _sample(images, sample)
    failed = []
    for image in chosen:
        try:
            load_image(image)
        except (OSError, ValueError) as exc:
            failed.append(f"{image} ({exc})")
    decoded = (
        f"{len(chosen) - len(failed)}/{len(chosen)} sampled images decode" if chosen else "decoding skipped"
    )
    if failed:
        return Check(
            split, "images", BAD, f"{present}; {decoded}; cannot decode {_places(failed, len(failed))}"
        )
    return Check(split, "images", OK, f"{present}; {decoded}")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _layout_hint(name: str, root: Path) -> str:
    """What the root holds and what the loader expects, for a MISSING annotation line."""
    entries = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    holds = f"root holds {_places(entries, len(entries))}" if entries else "root is empty"
    converted = (
        " (or mmpose's COCO-style JSON under root/annotations, see docs/data.md)" if name in CONVERTED else ""
    )
    return f"{holds}; expected: {SPECS[name].layout}{converted}"


def check_split(name: str, root: Path, split: str, sample: int = DEFAULT_SAMPLE) -> list[Check]:
    """The checks of one split (see the module docstring); the first failure that makes the rest
    meaningless (no annotations, no records) ends the list."""
    try:
        records = load_dataset(name, root, split)
    except FileNotFoundError as exc:
        return [Check(split, "annotations", MISSING, f"{_one_line(exc)}; {_layout_hint(name, root)}")]
    except (
        OSError,
        ValueError,
    ) as exc:  # a folder where a file belongs, a malformed line, a path leaving root
        return [Check(split, "annotations", BAD, _one_line(exc))]
    checks = [Check(split, "annotations", OK, records.source)]
    skipped = records.summary().split(" records loaded, skipped: ", 1)[-1]
    if not records:
        checks.append(
            Check(split, "records", BAD, f"no usable record in {records.source}; skipped: {skipped}")
        )
        return checks
    checks.append(Check(split, "records", OK, f"{len(records)} records; skipped: {skipped}"))
    checks.append(_check_keypoints(name, split, records))
    checks.append(_check_boxes(split, records))
    normaliser = _check_normaliser(name, split, records)
    if normaliser is not None:
        checks.append(normaliser)
    checks.append(_check_images(split, records, sample))
    return checks


def check_root(
    name: str, root: Path, splits: Sequence[str] | None = None, sample: int = DEFAULT_SAMPLE
) -> list[Check]:
    """Every check of every split of ``name`` under ``root`` (default: :func:`default_splits`)."""
    checks = []
    for split in splits or default_splits(name):
        checks.extend(check_split(name, Path(root), split, sample))
    return checks


def verdict(checks: Sequence[Check]) -> tuple[str, int]:
    """The last line of the report and the exit status (0 usable, 1 not)."""
    splits = ", ".join(dict.fromkeys(c.split for c in checks if c.split))
    problems = [c for c in checks if c.status != OK]
    if not problems:
        return f"verdict: usable ({len(checks)} checks ok; splits {splits})", 0
    failed = ", ".join(f"{c.split} {c.what} {c.status}" for c in problems)
    clean = [s for s in dict.fromkeys(c.split for c in checks) if s not in {c.split for c in problems}]
    usable = f"; splits without a problem: {', '.join(clean)}" if clean else ""
    return f"verdict: NOT usable ({len(problems)} of {len(checks)} checks failed: {failed}{usable})", 1


class _Parser(argparse.ArgumentParser):
    """argparse with its errors as one line and status 2 (argparse prints the usage as well)."""

    def error(self, message: str):
        self.exit(2, f"{PROG}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Check a dataset root against the layout the loaders expect and say what is missing.",
        epilog="Datasets: " + ", ".join(DATASETS) + ". Exit status: 0 usable, 1 not, 2 bad arguments. "
        "Where to get each dataset and its layout: docs/data.md.",
    )
    p.add_argument("name", help="dataset name: " + ", ".join(DATASETS))
    p.add_argument("root", help="the folder holding the dataset's files")
    p.add_argument(
        "--split",
        action="append",
        help="a split to check (repeatable); default: the train and eval splits of the bundled config",
    )
    p.add_argument(
        "--images",
        type=int,
        default=DEFAULT_SAMPLE,
        metavar="N",
        help=f"decode N evenly spaced images per split (default {DEFAULT_SAMPLE}; 0 skips decoding)",
    )
    return p


def _bad_argument(args) -> str | None:
    """The one-line reason ``args`` cannot be checked, or None."""
    name = args.name.lower()
    if name not in DATASETS:
        return f"unknown dataset {args.name!r}; expected one of: {', '.join(DATASETS)}"
    root = Path(args.root)
    if not root.exists():
        return f"root {root} does not exist"
    if not root.is_dir():
        return f"root {root} is not a folder"
    known = KNOWN_SPLITS.get(name)
    for split in args.split or ():
        if known is not None and split not in known:
            return f"{name} has no split {split!r}; expected one of: {', '.join(known)}"
    if args.images < 0:
        return f"--images must be >= 0, got {args.images}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the checks and print the report; returns the exit status."""
    args = _parser().parse_args(argv)
    reason = _bad_argument(args)
    if reason is not None:
        print(f"{PROG}: error: {reason}", file=sys.stderr)
        return 2
    name, root = args.name.lower(), Path(args.root)
    splits = tuple(args.split) if args.split else default_splits(name)
    print(f"{PROG} {name} {root} (splits: {', '.join(splits)})")
    print(Check("SPLIT", "CHECK", "STATUS", "DETAIL").line())
    checks = check_root(name, root, splits, args.images)
    for c in checks:
        print(c.line())
    line, status = verdict(checks)
    print(line)
    return status


def console_main() -> None:
    """The ``h3r-check-data`` console script."""
    sys.exit(main())


if __name__ == "__main__":
    console_main()
