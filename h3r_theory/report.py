"""Codec round-trip report: how much of a keypoint's position survives encode -> decode, per codec and stride.

    python -m h3r_theory.report [--strides 1 4 8 16] [--n 20000] [--seed 0]

For each codec it encodes keypoints at uniformly random sub-pixel positions, decodes the target it trains
on (``expected`` = E[encode]; for randomized rounding also single samples) and prints the mean and maximum
error in input pixels, alongside the closed-form floor of vanilla rounding, 0.3826 x stride. This is the
quantization error a *perfect* network would still make with that codec.
"""

from __future__ import annotations

import argparse
import math

import torch

from . import codecs

ROUND_2D_CELLS = (math.sqrt(2) + math.asinh(1)) / 6  # see h3r_theory.theory for its derivation
HEATMAP_CELLS = 64  # heatmap width and height used for every stride


def round_trip_errors(
    codec: codecs.HeatmapCodec,
    n: int,
    generator: torch.Generator,
    margin_cells: float = 6.0,
    sample: bool = False,
) -> torch.Tensor:
    """Euclidean decode error (n,) in input pixels for ``n`` uniform keypoints ``margin_cells`` from the border.

    ``sample=True`` decodes single draws of ``encode`` instead of the expected target.
    """
    w, h = codec.heatmap_size
    low, high = margin_cells, torch.tensor([w - 1 - margin_cells, h - 1 - margin_cells], dtype=torch.float64)
    uv = low + torch.rand(1, n, 2, generator=generator, dtype=torch.float64) * (high - low)
    keypoints = codec.to_input(uv)
    target = codec.encode(keypoints, generator=generator) if sample else codec.expected(keypoints)
    decoded, _ = codec.decode(target.heatmaps, activation="probabilities")  # targets hold probabilities
    return (decoded - keypoints).norm(dim=-1)[0]


def report(strides: list[int], n: int, seed: int) -> list[dict]:
    """Rows of (codec, stride, mean and max error in px, vanilla floor in px)."""
    generator = torch.Generator().manual_seed(seed)
    variants = [(name, {}, False) for name in codecs.available()]
    variants.insert(1, ("argmax", {"rounding": "floor"}, False))
    variants += [("randomized_rounding", {"method": m}, False) for m in ("topk", "2x2")]
    variants.append(("randomized_rounding", {}, True))
    rows = []
    for stride in strides:
        size = HEATMAP_CELLS * stride
        for name, options, sample in variants:
            codec = codecs.build(
                name, input_size=(size, size), heatmap_size=(HEATMAP_CELLS, HEATMAP_CELLS), **options
            )
            errors = round_trip_errors(codec, n, generator, sample=sample)
            label = name + "".join(f"({v})" for v in options.values()) + (" one sample" if sample else "")
            rows.append(
                {
                    "codec": label,
                    "stride": stride,
                    "mean_px": errors.mean().item(),
                    "max_px": errors.max().item(),
                    "vanilla_floor_px": ROUND_2D_CELLS * stride,
                }
            )
    return rows


# The expected targets of n keypoints are (n, 64, 64) float64 maps, 32 KB a keypoint: 100,000 keypoints
# take 3.3 GB per codec, the most a laptop can be asked for.
MAX_KEYPOINTS = 100_000
MAX_STRIDE = 1024  # inputs of 64 x 1024 = 65,536 px a side
SEED_LIMIT = 2**64  # torch.Generator.manual_seed takes [0, 2**64)


def _int_in(low: int, high: int):
    """An argparse type: an integer in [low, high), refused with the range it must lie in."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if not low <= value < high:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low} and < {high}, got {value}")
        return value

    return parse


class _OneLineParser(argparse.ArgumentParser):
    """Bad arguments in one line naming the argument (argparse adds the usage above it), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: list[str] | None = None) -> None:
    parser = _OneLineParser(
        prog="h3r-report", description="Codec round-trip report (quantization error of each codec)."
    )
    parser.add_argument("--strides", type=_int_in(1, MAX_STRIDE + 1), nargs="+", default=[1, 4, 8, 16])
    parser.add_argument(
        "--n", type=_int_in(1, MAX_KEYPOINTS + 1), default=20000, help="keypoints per codec and stride"
    )
    parser.add_argument("--seed", type=_int_in(0, SEED_LIMIT), default=0)
    args = parser.parse_args(argv)
    rows = report(args.strides, args.n, args.seed)
    print(
        f"Decode error of each codec's training target, {args.n} uniform keypoints per row, "
        f"{HEATMAP_CELLS}x{HEATMAP_CELLS} heatmaps; errors in input pixels."
    )
    print(f"{'codec':34s} {'stride':>6s} {'mean px':>10s} {'max px':>10s} {'0.3826*s':>9s}")
    for row in rows:
        print(
            f"{row['codec']:34s} {row['stride']:6d} {row['mean_px']:10.4g} {row['max_px']:10.4g} "
            f"{row['vanilla_floor_px']:9.4f}"
        )


if __name__ == "__main__":
    main()
