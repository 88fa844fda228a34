"""Encode and decode throughput of every codec, on CPU and on CUDA when present, and decode speed as a
multiple of one memory pass over the same maps.

    python benchmarks/codecs.py            # the ratio table, then the full grid (batch 1/64/1024, K 17/98, ...)
    python benchmarks/codecs.py --quick    # only the ratio tables (3 runs and their summary; --runs N)
    python benchmarks/codecs.py --json out.json

Ratio table: 1024 x 17 maps of 64 x 48 (the 214 MB of a batch of COCO-sized float32 heatmaps). Each decoder's
time is printed as a multiple of one memory pass over the same maps (the faster of ``maps.sum()`` and
``maps.amax(-1)``: every cell read once, the floor for any decoder) and of a vectorised numpy argmax over them
(``ndarray.argmax(-1)`` on the flattened maps, what the peer toolbox's decode is built on), so that the claim
holds on any machine. Every call is timed in two conditions, in the same rounds:

* after a torch pass: right after a parallel torch operation over other maps of the same size, as a decode
  runs after a network's forward pass: its maps out of cache, torch's OpenMP threads just done (they spin
  for a while on the same cores before they sleep). The verdicts read this column.
* back to back: right after the same call, torch's threads asleep or spinning only from that call.

Each figure is the fastest of its rounds (on a loaded machine the minimum is the least disturbed measurement).
Targets: Argmax and RandomizedRounding decode within 2x a memory pass and no slower than numpy's argmax,
DARK and UDP within 4x. Decoders use their defaults (``score="peak"``); the ``score="mass"`` rows add the
softmax mass of the cells read, which needs every map's softmax normaliser: one ``exp`` per cell, a
computation rather than a read, printed on its own as the floor of those rows. The parts rows time the
building blocks alone: the first maximum (``scan_maps``) with and without the normaliser and in small chunks,
the normaliser as a separate pass (``map_logsumexp``, the path taken when gradients are wanted and on CUDA),
DARK's local patches and its blur of them, and the full finiteness scan (which ``decode`` does not make: it
checks the peaks).

Grid: the median wall time of several calls after a warm-up (CUDA timed with synchronisation). Sparse codecs
(randomized rounding, argmax) return the touched cells from ``encode`` and build the dense (B, K, h, w) map
only when asked, so their encode is reported twice: sparse, and with the dense map.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from h3r_theory import codecs
from h3r_theory.checks import check_heatmaps
from h3r_theory.codecs.gaussian import _blurred_3x3
from h3r_theory.codecs.peaks import first_maximum_by_rows, map_logsumexp, onmap_patch, scan_maps

BATCHES = (1, 64, 1024)
KEYPOINTS = (17, 98)
HEATMAPS = ((64, 48), (64, 64), (16, 16))  # (w, h)
STRIDE = 4

RATIO_CASE = (1024, 17, (64, 48))  # batch, K, (w, h)
# decoder label -> (codec name, options, decode options, target as a multiple of one memory pass)
DECODERS = {
    "Argmax": ("argmax", {}, {}, 2.0),
    "RandomizedRounding window (logits)": ("randomized_rounding", {}, {}, 2.0),
    "RandomizedRounding window (probabilities)": (
        "randomized_rounding",
        {},
        {"activation": "probabilities"},
        2.0,
    ),
    "RandomizedRounding 2x2 (logits)": ("randomized_rounding", {"method": "2x2"}, {}, 2.0),
    "RandomizedRounding top-9 (logits)": ("randomized_rounding", {"method": "topk"}, {}, None),
    "Gaussian": ("gaussian", {}, {}, None),
    "DARK": ("dark", {}, {}, 4.0),
    "UDP": ("udp", {}, {}, 4.0),
    "SoftArgmax": ("soft_argmax", {}, {}, None),
    "Argmax, score='mass'": ("argmax", {}, {"score": "mass"}, None),
    "RandomizedRounding window (logits), score='mass'": ("randomized_rounding", {}, {"score": "mass"}, None),
}
#: The decoders held to "no slower than numpy's argmax": the ones that do no more than find the peak and
#: read a few cells around it.
NUMPY_ARGMAX_TARGET = (
    "Argmax",
    "RandomizedRounding window (logits)",
    "RandomizedRounding window (probabilities)",
    "RandomizedRounding 2x2 (logits)",
)


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ""
    if hasattr(os, "getloadavg"):
        one, five, fifteen = os.getloadavg()
        load = f", load average {one:.2f} {five:.2f} {fifteen:.2f}"
    text = (
        f"{cpu}; {cores} cores available, {os.cpu_count()} on the machine{load}; torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads, numpy {np.__version__}; python {platform.python_version()}"
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


def exp_every_cell(maps: torch.Tensor, chunk_cells: int = 1 << 18) -> None:
    """``exp`` of every cell into a buffer of ``chunk_cells`` cells (1 MB of float32), with torch's threads.

    What any softmax normaliser has to do on top of reading the maps (the result is discarded): its time
    as a multiple of a memory pass is the floor of the logits decoders' ratio.
    """
    flat = maps.reshape(-1)
    buffer = flat.new_empty(chunk_cells)
    for start in range(0, flat.numel(), chunk_cells):
        part = flat[start : start + chunk_cells]
        torch.exp(part, out=buffer[: part.numel()])


def ratio_table(rounds: int = 15) -> list[dict]:
    """Decode times of every decoder on :data:`RATIO_CASE`, with the memory pass and numpy argmax, interleaved,
    each after a torch pass and back to back (see the module docstring)."""
    batch, k, (w, h) = RATIO_CASE
    g = torch.Generator().manual_seed(0)
    logits = 4 * torch.randn(batch, k, h, w, generator=g)  # logit-like maps: a peak somewhere in each
    flat_np = logits.numpy().reshape(batch * k, h * w)
    ix, iy, peak, _ = scan_maps(logits)
    chunk_1mb = (1 << 20) // (h * w * logits.element_size())  # the normaliser's chunks, for the argmax alone
    logits_grad = logits.clone().requires_grad_()  # onmap_patch's gradient path: indexing unfold's view
    calls: dict[str, Callable[[], object]] = {
        "memory pass (maps.sum())": lambda: logits.sum(),
        "memory pass (maps.amax(-1))": lambda: logits.amax(-1),
        "numpy argmax (ndarray.argmax(-1))": lambda: flat_np.argmax(-1),
        "torch.max(dim=-1) with indices": lambda: logits.flatten(-2).max(dim=-1),
        # the parts every decode is made of, to see where its time goes
        # decode checks finiteness on the peaks (check_heatmap_peaks); the full scan is kept for reference
        "  part: full finiteness scan (check_heatmaps)": lambda: check_heatmaps(logits, (w, h)),
        "  part: first maximum (scan_maps)": lambda: scan_maps(logits),
        "  part: the same on one thread": lambda: scan_maps(logits, threads=1),
        "  part: the same in 1 MB chunks": lambda: scan_maps(logits, chunk_rows=chunk_1mb),
        "  part: first maximum from the row maxima (CUDA's path)": lambda: first_maximum_by_rows(logits),
        "  part: first maximum + normaliser (scan_maps)": lambda: scan_maps(logits, normaliser=True),
        "  part: normaliser alone (map_logsumexp)": lambda: map_logsumexp(logits, peak),
        "  floor of a normaliser: exp of every cell": lambda: exp_every_cell(logits),
        "  part: DARK's 15 x 15 patches (onmap_patch)": lambda: onmap_patch(logits, ix, iy, 7),
        "  part: the same by unfold's view (with grad)": lambda: onmap_patch(logits_grad, ix, iy, 7),
        "  part: DARK's blurred 3 x 3 (_blurred_3x3)": lambda: _blurred_3x3(logits, ix, iy, 2.0, "zero"),
    }
    for label, (name, options, decode_options, _) in DECODERS.items():
        codec = codecs.build(name, input_size=(w * STRIDE, h * STRIDE), heatmap_size=(w, h), **options)
        maps = logits.softmax(-1) if decode_options.get("activation") == "probabilities" else logits
        if codec.default_activation == "probabilities" and "activation" not in decode_options:
            maps = logits.flatten(-2).softmax(-1).view_as(logits)  # Gaussian-style codecs read probabilities
        calls[label] = lambda c=codec, m=maps, o=decode_options: c.decode(m, **o)
    other = torch.randn_like(logits)  # what the torch pass before each "after a torch pass" call reads
    after = dict.fromkeys(calls, float("inf"))
    repeat = dict.fromkeys(calls, float("inf"))
    for fn in calls.values():
        fn()  # warm-up
    for _ in range(rounds):
        for label, fn in calls.items():
            other.sum()
            t0 = time.perf_counter()
            fn()
            t1 = time.perf_counter()
            fn()
            t2 = time.perf_counter()
            after[label] = min(after[label], t1 - t0)
            repeat[label] = min(repeat[label], t2 - t1)
    rows = []
    for best in (after, repeat):
        memory = min(best["memory pass (maps.sum())"], best["memory pass (maps.amax(-1))"])
        numpy_argmax = best["numpy argmax (ndarray.argmax(-1))"]
        for label, seconds in best.items():
            rows.append(
                {
                    "what": label,
                    "condition": "after a torch pass" if best is after else "back to back",
                    "ms": 1e3 * seconds,
                    "x_memory_pass": seconds / memory,
                    "x_numpy_argmax": seconds / numpy_argmax,
                    "target_x_memory_pass": DECODERS[label][3] if label in DECODERS else None,
                    "target_numpy_argmax": label in NUMPY_ARGMAX_TARGET,
                    "is_decoder": label in DECODERS,
                }
            )
    return rows


def verdicts(row: dict) -> list[tuple[str, bool]]:
    """(target, met) of a ratio-table row: its multiple of a memory pass, and numpy's argmax where it applies."""
    checks = []
    if row["target_x_memory_pass"] is not None:
        limit = row["target_x_memory_pass"]
        checks.append((f"<= {limit:g}x pass", row["x_memory_pass"] <= limit))
    if row["target_numpy_argmax"]:
        checks.append(("<= numpy argmax", row["x_numpy_argmax"] <= 1.0))
    return checks


def print_ratio_table(rows: list[dict]) -> None:
    batch, k, (w, h) = RATIO_CASE
    print(
        f"\ndecode of {batch} x {k} maps of {w}x{h} float32 on the CPU, fastest of the interleaved rounds; "
        "each figure: after a torch pass | back to back"
    )
    print(
        f"{'':50s} {'ms':>11s} {'x memory pass':>13s} {'x numpy argmax':>14s}  target: after | back to back"
    )
    after = [r for r in rows if r["condition"] == "after a torch pass"]
    repeat = {r["what"]: r for r in rows if r["condition"] == "back to back"}
    for r in after:
        b = repeat[r["what"]]
        verdict = ", ".join(
            f"{text} {'met' if ok else 'MISSED'} | {'met' if ok_b else 'MISSED'}"
            for (text, ok), (_, ok_b) in zip(verdicts(r), verdicts(b))
        )
        print(
            f"{r['what']:50s} {r['ms']:5.1f} |{b['ms']:5.1f} {r['x_memory_pass']:6.2f} |{b['x_memory_pass']:5.2f} "
            f"{r['x_numpy_argmax']:6.2f} |{b['x_numpy_argmax']:6.2f}  {verdict}"
        )


def print_run_summary(runs: list[list[dict]]) -> None:
    """Per decoder and condition: the median and range over the runs of its multiples, verdicts on the medians.

    Why: on a shared machine one run's verdict can flip with the memory pass it is divided by; the median of
    several runs is the figure to quote, and the range says how far one run may stray from it.
    """
    print(f"\nover the {len(runs)} runs: median [min - max] of each multiple; verdicts on the medians")
    print(f"{'':50s} {'condition':19s} {'x memory pass':>22s} {'x numpy argmax':>22s}  target")
    for condition in ("after a torch pass", "back to back"):
        for label in DECODERS:
            picked = [
                next(r for r in run if r["what"] == label and r["condition"] == condition) for run in runs
            ]
            memory = sorted(r["x_memory_pass"] for r in picked)
            numpy_argmax = sorted(r["x_numpy_argmax"] for r in picked)
            median = dict(
                picked[0],
                x_memory_pass=statistics.median(memory),
                x_numpy_argmax=statistics.median(numpy_argmax),
            )
            verdict = ", ".join(f"{text} {'met' if ok else 'MISSED'}" for text, ok in verdicts(median))
            print(
                f"{label:50s} {condition:19s} {median['x_memory_pass']:6.2f} [{memory[0]:5.2f} - {memory[-1]:5.2f}]"
                f" {median['x_numpy_argmax']:6.2f} [{numpy_argmax[0]:5.2f} - {numpy_argmax[-1]:5.2f}]  {verdict}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the ratio table")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument(
        "--runs", type=int, default=3, help="ratio tables to time, one after the other (default 3)"
    )
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs must be >= 1, got {args.runs}")

    print(f"machine: {machine_description()}")
    runs = []
    for run in range(args.runs):
        print(f"\nrun {run + 1} of {args.runs}")
        runs.append(ratio_table())
        print_ratio_table(runs[-1])
    if args.runs > 1:
        print_run_summary(runs)
    ratios = [dict(row, run=run) for run, table in enumerate(runs) for row in table]
    rows = []
    if not args.quick:
        rows = grid()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine_description(), "ratios": ratios, "rows": rows}, f, indent=1)


def grid() -> list[dict]:
    """The full grid of encode and decode times, every codec, batch, K and map size, per device."""
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    cases = [(c, b, k, s) for c in codecs.available() for b in BATCHES for k in KEYPOINTS for s in HEATMAPS]
    rows = []
    header = (
        f"{'codec':20s} {'dev':4s} {'batch':>5s} {'K':>3s} {'heatmap':>7s} {'encode ms':>10s} "
        f"{'+dense ms':>10s} {'decode ms':>10s}"
    )
    print("\n" + header)
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
    return rows


if __name__ == "__main__":
    main()
