"""How long the synthetic set's pieces take, and what the Cramer-Rao bound of its keypoints is.

    python benchmarks/synthetic_speed.py                       # 256 held-out images, 128 x 128, 1 thread
    python benchmarks/synthetic_speed.py --sizes 128 96 64 48  # the bound at each input size

Measures, on this machine (median of ``--repeats`` runs, so say which machine and how loaded it was when
quoting the numbers): :func:`~trainers.data.synthetic.render_batch`, ``SyntheticLandmarks.batch``, the
exact re-rendering of every image at a 4 x 4 grid of sub-pixel shifts (the sweep's jitter measurement),
and :func:`trainers.bound.dataset_bound`. Then prints, per input size, the RMS 2-D Cramer-Rao bound of the
labelled keypoints of the ``val`` split with Gaussian pixel noise of std ``--noise`` (mean, RMS, range and
per landmark), and the expected fraction of clipped pixel values (:func:`trainers.bound.clipped_fraction`).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from trainers import bound
from trainers.data.synthetic import SyntheticLandmarks, render_batch


def timed(fn, repeats: int) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=256, help="images (the sweep's held-out split size)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128], help="square input sizes, px")
    parser.add_argument("--noise", type=float, default=0.03, help="Gaussian pixel-noise std")
    parser.add_argument("--keypoints", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.num} images")
    for size in args.sizes:
        data = SyntheticLandmarks(
            args.num,
            (size, size),
            args.keypoints,
            split="val",
            noise=args.noise,
            noise_distribution="gaussian",
        )
        idx = list(range(args.num))
        shifts = [(dx, dy) for dy in (0.0, 0.25, 0.5, 0.75) for dx in (0.0, 0.25, 0.5, 0.75)]
        g = torch.Generator().manual_seed(0)
        t_render = timed(lambda: render_batch(args.num, (size, size), args.keypoints, g), args.repeats)  # noqa: B023
        t_batch = timed(lambda: data.batch(idx), args.repeats)  # noqa: B023
        t_shift = timed(lambda: [data.batch(idx, shift=s) for s in shifts], 1)  # noqa: B023
        start = time.perf_counter()
        b = bound.dataset_bound(data)
        t_bound = time.perf_counter() - start
        clipped = bound.clipped_fraction(data.params(idx[:64]), (size, size), args.noise)
        print(
            f"\n{size} x {size}: render_batch {t_render:.3f} s, batch {t_batch:.3f} s, "
            f"16 shifted re-renders {t_shift:.2f} s, dataset_bound {t_bound:.2f} s"
        )
        print(
            f"  CRLB (RMS 2-D, px) at noise std {args.noise}: mean {b.mean():.4f}, RMS {b.pow(2).mean().sqrt():.4f}, "
            f"min {b.min():.4f}, max {b.max():.4f}; clipped pixel fraction {clipped:.4f}"
        )
        names = data.keypoint_names
        print("  per landmark: " + ", ".join(f"{n} {v:.4f}" for n, v in zip(names, b.mean(0).tolist())))


if __name__ == "__main__":
    main()
