"""Which DARK decode rules hold under noise and near the border: the measurement behind ``codecs.DARK``.

    python benchmarks/dark_rules.py            # the three tables, a few minutes on 2 CPU cores
    python benchmarks/dark_rules.py --n 2000   # fewer keypoints per row, faster

Maps: DARK targets (a Gaussian of peak 1 and sigma 2 cells at the unquantized keypoint) on a 64 x 48 heatmap,
plus i.i.d. Gaussian noise of standard deviation ``noise`` (0, 0.02, 0.05, 0.1 of the peak), decoded with a
blur of 2 cells. Errors are 2-D distances in heatmap cells between the decoded and the true keypoint.

Table 1 (interior, keypoints at least 6 cells from the border): the Newton step clamped to +-1 cell, to +-2
cells, and unclamped. Table 2 (border, the keypoint within 2 cells of the left or right edge, x in [-0.5, 2)
cells from the outermost cell centre): no refinement (the argmax cell), and the step with the blur's padding
beyond the map as zero, reflected, replicated, normalised (zero padding divided by the blurred on-map mask),
or skipped within 2 cells of the border, and the step taken on the unblurred map within ``m`` cells of the
border. Table 3 (x 2 to 6 cells from the edge) chooses that margin ``m``.
"""

from __future__ import annotations

import argparse
import math

import torch

from h3r_theory.codecs.gaussian import taylor_refine
from h3r_theory.codecs.peaks import argmax_cells, gaussian_maps

SIZE = (64, 48)  # (w, h)
SIGMA = 2.0
NOISES = (0.0, 0.02, 0.05, 0.1)


def noisy_maps(uv: torch.Tensor, noise: float, generator: torch.Generator) -> torch.Tensor:
    """(1, n, h, w) DARK targets at ``uv`` (1, n, 2) cells plus Gaussian noise of sd ``noise``."""
    maps = gaussian_maps(uv, SIZE, SIGMA, torch.ones(uv.shape[:2], dtype=uv.dtype))
    return maps + noise * torch.randn(maps.shape, generator=generator, dtype=maps.dtype)


def errors(maps: torch.Tensor, uv: torch.Tensor, **rule) -> torch.Tensor:
    """(n,) decode errors in cells of one rule: ``refine=False`` (argmax only) or ``taylor_refine`` options."""
    ix, iy, _ = argmax_cells(maps)
    if rule.pop("refine", True):
        decoded = taylor_refine(maps, ix, iy, SIGMA, **rule)
    else:
        decoded = torch.stack((ix, iy), -1).to(maps.dtype)
    return (decoded - uv).norm(dim=-1)[0]


def interior_keypoints(n: int, generator: torch.Generator) -> torch.Tensor:
    w, h = SIZE
    low, high = 6.0, torch.tensor([w - 7.0, h - 7.0], dtype=torch.float64)
    return low + torch.rand(1, n, 2, generator=generator, dtype=torch.float64) * (high - low)


def border_keypoints(
    n: int, generator: torch.Generator, near: float = -0.5, far: float = 2.0
) -> torch.Tensor:
    """Keypoints with x in [near, far) cells of the left or right edge cell (half each), y in the interior."""
    w, h = SIZE
    d = near + (far - near) * torch.rand(1, n, generator=generator, dtype=torch.float64)
    right = torch.rand(1, n, generator=generator) < 0.5
    x = torch.where(right, (w - 1) - d, d)
    y = 6.0 + torch.rand(1, n, generator=generator, dtype=torch.float64) * (h - 13.0)
    return torch.stack((x, y), -1)


INTERIOR_RULES = {
    "step clamped to +-1": {"max_step": 1.0, "border": "zero"},
    "step clamped to +-2": {"max_step": 2.0, "border": "zero"},
    "unclamped step": {"max_step": math.inf, "border": "zero"},
}
BORDER_RULES = {
    "no refinement": {"refine": False},
    "zero padding": {"border": "zero"},
    "reflect padding": {"border": "reflect"},
    "replicate padding": {"border": "replicate"},
    "normalized padding": {"border": "normalized"},
    "skip within 2 cells": {"border": "skip"},
    "unblurred within 2": {"border": "unblurred", "margin": 2},
    "unblurred within 3": {"border": "unblurred", "margin": 3},
    "unblurred within 4": {"border": "unblurred", "margin": 4},
}
MARGIN_RULES = {
    "zero padding": {"border": "zero"},
    **{f"unblurred within {m}": {"border": "unblurred", "margin": m} for m in (2, 3, 4, 5, 6)},
}


def table(keypoints, rules: dict, n: int, seed: int) -> list[dict]:
    rows = []
    for noise in NOISES:
        generator = torch.Generator().manual_seed(seed)
        uv = keypoints(n, generator)
        maps = noisy_maps(uv, noise, generator)
        ix, iy, _ = argmax_cells(maps)
        far = ((torch.stack((ix, iy), -1) - uv).abs() > 1).any(-1).double().mean().item()
        for label, rule in rules.items():
            e = errors(maps, uv, **dict(rule))
            rows.append(
                {"noise": noise, "rule": label, "mean": e.mean().item(), "max": e.max().item(), "far": far}
            )
    return rows


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(
        f"{'noise sd':>8s}  {'rule':22s} {'mean cells':>10s} {'max cells':>10s} {'argmax > 1 cell off':>20s}"
    )
    for r in rows:
        print(
            f"{r['noise']:8.2f}  {r['rule']:22s} {r['mean']:10.4f} {r['max']:10.4f} {100 * r['far']:19.2f}%"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="keypoints per noise level")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(
        f"DARK targets, sigma {SIGMA}, blur {SIGMA}, heatmap {SIZE[0]}x{SIZE[1]}, {args.n} keypoints per row"
    )
    print_table(
        "interior (>= 6 cells from the border)", table(interior_keypoints, INTERIOR_RULES, args.n, args.seed)
    )
    print_table(
        "border (x within 2 cells of the edge)", table(border_keypoints, BORDER_RULES, args.n, args.seed)
    )

    def next_to_border(n: int, generator: torch.Generator) -> torch.Tensor:
        return border_keypoints(n, generator, near=2.0, far=6.0)

    print_table(
        "next to the border (x 2 to 6 cells from the edge)",
        table(next_to_border, MARGIN_RULES, args.n, args.seed),
    )


if __name__ == "__main__":
    main()
