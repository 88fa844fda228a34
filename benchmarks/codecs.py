"""Encode and decode throughput of every codec, on CPU and on CUDA when present.

    python benchmarks/codecs.py            # the full grid: batch 1/64/1024, K 17/98, 64x48, 64x64, 16x16
    python benchmarks/codecs.py --quick    # only the cases the targets name
    python benchmarks/codecs.py --json out.json

Each figure is the median wall time of several calls after a warm-up (CUDA timed with synchronisation).
Sparse codecs (randomized rounding, argmax) return the touched cells from ``encode`` and build the dense
(B, K, h, w) map only when asked, so their encode is reported twice: sparse, and with the dense map.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

from h3r_theory import codecs

BATCHES = (1, 64, 1024)
KEYPOINTS = (17, 98)
HEATMAPS = ((64, 48), (64, 64), (16, 16))  # (w, h)
STRIDE = 4

# Targets on a 2-core CPU (issue 2), in milliseconds: (codec, operation, batch, K, (w, h)) -> ms.
TARGETS = {
    ("argmax", "decode", 1024, 17, (64, 48)): 30.0,
    ("randomized_rounding", "decode", 1024, 17, (64, 48)): 30.0,
    ("dark", "decode", 1024, 17, (64, 48)): 100.0,
    ("randomized_rounding", "encode", 1024, 98, (64, 64)): 50.0,
}


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    text = (
        f"{cpu}; {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} cores "
        f"available, torch {torch.__version__} with {torch.get_num_threads()} threads; python {platform.python_version()}"
    )
    if torch.cuda.is_available():
        text += f"; CUDA: {torch.cuda.get_device_name()}"
    return text


def time_call(
    fn: Callable[[], object], device: torch.device, min_time: float = 0.2, max_reps: int = 20
) -> float:
    """Median seconds per call of ``fn`` after one warm-up, repeated for ``min_time`` s or ``max_reps`` calls."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    fn()
    sync()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < min_time and len(times) < max_reps):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_case(name: str, batch: int, k: int, size: tuple[int, int], device: torch.device) -> dict:
    w, h = size
    codec = codecs.build(name, input_size=(w * STRIDE, h * STRIDE), heatmap_size=size)
    g = torch.Generator(device=device).manual_seed(0)
    uv = torch.rand(batch, k, 2, generator=g, device=device) * torch.tensor([w - 1.0, h - 1.0], device=device)
    keypoints = codec.to_input(uv)
    heatmaps = codec.expected(keypoints).heatmaps
    row = {"codec": name, "device": device.type, "batch": batch, "K": k, "heatmap": f"{w}x{h}"}
    row["encode_ms"] = 1e3 * time_call(lambda: codec.encode(keypoints, generator=g), device)
    if codec.name in ("randomized_rounding", "argmax"):
        row["encode_dense_ms"] = 1e3 * time_call(
            lambda: codec.encode(keypoints, generator=g).heatmaps, device
        )
    row["decode_ms"] = 1e3 * time_call(lambda: codec.decode(heatmaps), device)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the cases that have a target")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()

    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"machine: {machine_description()}")
    if args.quick:
        cases = sorted({(c, b, k, s) for (c, _, b, k, s) in TARGETS})
    else:
        cases = [
            (c, b, k, s) for c in codecs.available() for b in BATCHES for k in KEYPOINTS for s in HEATMAPS
        ]
    rows = []
    header = f"{'codec':20s} {'dev':4s} {'batch':>5s} {'K':>3s} {'heatmap':>7s} {'encode ms':>10s} {'+dense ms':>10s} {'decode ms':>10s}"
    print(header)
    print("-" * len(header))
    for device in devices:
        for name, batch, k, size in cases:
            row = bench_case(name, batch, k, size, device)
            rows.append(row)
            dense = f"{row['encode_dense_ms']:10.2f}" if "encode_dense_ms" in row else f"{'':10s}"
            print(
                f"{name:20s} {device.type:4s} {batch:5d} {k:3d} {row['heatmap']:>7s} {row['encode_ms']:10.2f} "
                f"{dense} {row['decode_ms']:10.2f}",
                flush=True,
            )

    print("\ntargets (2-core CPU):")
    for (name, op, batch, k, size), limit in TARGETS.items():
        row = next(
            (
                r
                for r in rows
                if r["device"] == "cpu"
                and (r["codec"], r["batch"], r["K"], r["heatmap"]) == (name, batch, k, f"{size[0]}x{size[1]}")
            ),
            None,
        )
        if row is None:
            continue
        measured = row[f"{op}_ms"]
        verdict = "met" if measured <= limit else "MISSED"
        print(
            f"  {name} {op} {batch}x{k} at {size[0]}x{size[1]}: {measured:.1f} ms (target <= {limit:.0f} ms, "
            f"ratio {measured / limit:.2f}) {verdict}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine_description(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
