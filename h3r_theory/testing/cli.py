"""``h3r-check-codec module:factory``: run the invariant suite on a codec and print its report card.

Exit status: 0 when every invariant holds, 1 when one fails, 2 (with one line on stderr) when the
arguments are wrong, e.g. a module that does not import or a factory that is not callable.

The module is imported with the current directory on ``sys.path`` (as ``python -m`` does), so a codec in
``./my_codec.py`` is ``my_codec:MyCodec``. The factory is called as ``factory(input_size, heatmap_size)``
(plus ``convention=`` when it accepts one and ``--convention`` is given).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .. import conventions
from .claims import Claims
from .strategies import SearchSpace, probe_geometry
from .subject import as_factory
from .suite import INVARIANTS, check_codec

PROG = "h3r-check-codec"


class BadArguments(Exception):
    """An argument the suite cannot run with; reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + message
        raise BadArguments(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Property-test a heatmap codec: one report-card line per invariant.")
    p.add_argument(
        "target", help="module:factory, a codec class or a function (input_size, heatmap_size) -> codec"
    )
    p.add_argument(
        "--convention", choices=conventions.CONVENTIONS, help="the pixel convention the codec claims"
    )
    p.add_argument("--input-size", type=int, nargs=2, metavar=("W", "H"), help="fix the input size, pixels")
    p.add_argument(
        "--heatmap-size", type=int, nargs=2, metavar=("w", "h"), help="fix the heatmap size, cells"
    )
    p.add_argument("--protocol", choices=("auto", "torch", "numpy"), default="auto", help="codec protocol")
    p.add_argument("--round-trip-cells", type=float, default=0.0, help="claimed round-trip error per axis")
    p.add_argument("--margin-cells", type=float, default=0.0, help="claims hold this far inside the border")
    p.add_argument("--equivariance-cells", type=float, default=1e-6, help="claimed shift/flip error")
    p.add_argument("--border-band-cells", default="0", help="claimed band error from the clamp, or 'none'")
    p.add_argument("--logits", action="store_true", help="also claim the round trip of log(target) as logits")
    p.add_argument("--examples", type=int, default=None, help="hypothesis examples per invariant")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", default=None, help=f"comma-separated invariants out of {','.join(INVARIANTS)}")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def load_target(target: str):
    """``"pkg.module:attr.path"`` -> the object; raises :class:`BadArguments` with the reason."""
    module_name, sep, attr_path = target.partition(":")
    if not sep or not module_name or not attr_path:
        raise BadArguments(f"target must be module:factory, got {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure is the user's module, reported in one line
        raise BadArguments(f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}") from None
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            raise BadArguments(f"{module_name!r} has no attribute {attr_path!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise BadArguments(
            f"{target} is not callable (it is a {type(obj).__name__}); pass a codec class or factory"
        )
    return obj


def _claims(args) -> Claims:
    band = (
        None
        if args.border_band_cells.lower() == "none"
        else _float(args.border_band_cells, "--border-band-cells")
    )
    try:
        return Claims(
            convention=args.convention,
            round_trip_cells=args.round_trip_cells,
            margin_cells=args.margin_cells,
            equivariance_cells=args.equivariance_cells,
            border_band_cells=band,
            logits_round_trip=args.logits,
        )
    except ValueError as exc:
        raise BadArguments(str(exc)) from None


def _float(text: str, flag: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise BadArguments(f"{flag} must be a number of cells or 'none', got {text!r}") from None


def _setup(argv):
    args = _parser().parse_args(argv)
    codec = load_target(args.target)
    claims = _claims(args)
    only = None
    if args.only:
        only = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = [name for name in only if name not in INVARIANTS]
        if unknown:
            raise BadArguments(f"--only: unknown invariant(s) {unknown}; choose from {list(INVARIANTS)}")
    if args.examples is not None and args.examples < 1:
        raise BadArguments(f"--examples must be >= 1, got {args.examples}")
    try:
        space = SearchSpace(
            input_size=tuple(args.input_size) if args.input_size else None,
            heatmap_size=tuple(args.heatmap_size) if args.heatmap_size else None,
        )
    except ValueError as exc:
        raise BadArguments(str(exc)) from None
    probe = probe_geometry(space)
    try:
        factory = as_factory(codec, claims.convention, args.protocol, probe=probe)
    except Exception as exc:  # the factory could not build a codec: nothing can be checked
        message = str(exc).splitlines()[0] if str(exc) else ""
        raise BadArguments(
            f"{args.target} could not build a codec: {type(exc).__name__}: {message}"
        ) from None
    return args, factory, claims, space, only


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns (and, as a console script, exits with) 0, 1 or 2."""
    try:
        args, factory, claims, space, only = _setup(argv)
    except BadArguments as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    report = check_codec(factory, claims, space=space, max_examples=args.examples, seed=args.seed, only=only)
    print(report.to_json() if args.json else report.card())
    return 0 if report.holds else 1


def console_main() -> None:
    sys.exit(main())


if __name__ == "__main__":
    console_main()
