"""Encode and decode throughput of every codec, on CPU and on CUDA when present, and decode speed as a
multiple of one memory pass over the same maps.

    python benchmarks/codecs.py            # the ratio table, then the full grid (batch 1/64/1024, K 17/98, ...)
    python benchmarks/codecs.py --quick    # only the ratio tables (3 runs and their summary; --runs N)
    python benchmarks/codecs.py --quick --kinds random,border   # only these kinds of maps
    python benchmarks/codecs.py --json out.json

Ratio table: 1024 x 17 maps of 64 x 48 (the 214 MB of a batch of COCO-sized float32 heatmaps), of four kinds
(:data:`MAP_KINDS`): random logits (``4 * randn``, the table's only kind before), peaked maps as a trained network
emits, flat maps as it emits early in training, and peaked maps whose peak lies in the border band (truncated
keypoints), since a decoder's work can depend on what it reads (DARK's patches near the border, a flat map's
maximum). Each decoder's time is printed as a multiple of one memory pass over the same maps (the faster of ``maps.sum()`` and
``maps.amax(-1)``: every cell read once, the floor for any decoder) and of a vectorised numpy argmax over them
(``ndarray.argmax(-1)`` on the flattened maps, what the peer toolbox's decode is built on), so that the claim
holds on any machine. Every call is timed in two conditions, in the same rounds:

* after a torch pass: right after a parallel torch operation over other maps of the same size, as a decode
  runs after a network's forward pass: its maps out of cache, torch's OpenMP threads just done (they spin
  for a while on the same cores before they sleep). The verdicts read this column.
* back to back: right after the same call, torch's threads asleep or spinning only from that call.

Each figure is the fastest of its rounds (on a loaded machine the minimum is the least disturbed measurement).
Each kind of map has its own table, its memory pass measured on its own maps in the same rounds; the parts rows
(below) are timed on the random maps only. The summary at the end puts every decoder's median multiple of a pass
on each kind side by side.
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
#: kind of map -> what it stands for; :func:`make_logits` draws them.
MAP_KINDS = {
    "random": "4 * randn logits: a peak somewhere in each map, of random height",
    "peaked": "one Gaussian peak (sigma 2 cells) anywhere in the cell-centre box: its log + 0.1 randn",
    "flat": "0.01 * randn logits: almost constant maps, as a network emits early in training",
    "border": "the peaked maps with their centre in the border band (within half a cell of an edge, one axis)",
}
PEAK_SIGMA_CELLS = 2.0


def make_logits(kind: str, batch: int, k: int, w: int, h: int, generator: torch.Generator) -> torch.Tensor:
    """(batch, k, h, w) float32 logit maps of one of :data:`MAP_KINDS`, drawn from ``generator``.

    The peaked kinds are the log of a Gaussian of :data:`PEAK_SIGMA_CELLS` cells (so their per-map softmax is
    the Gaussian target a trained network approximates) plus noise of 0.1 logits, so that the peak is not
    exactly the Gaussian's. ``border`` puts the centre on one axis (x or y, one each way per map) uniformly
    in the half cell on either side of the outermost cell centre, ``[-0.5, 0.5]`` or ``[n - 1.5, n - 0.5]``
    cells, the other axis anywhere in the cell-centre box: the peak cell is then on the map's edge, or next to
    it where the noise outweighs the Gaussian's difference between the two (each table prints the share of
    its maps whose first maximum lies on the edge: :func:`share_of_peaks_on_the_edge`).
    """
    if kind == "random":
        return 4 * torch.randn(batch, k, h, w, generator=generator)
    if kind == "flat":
        return 0.01 * torch.randn(batch, k, h, w, generator=generator)
    if kind not in ("peaked", "border"):
        raise ValueError(f"kind must be one of {sorted(MAP_KINDS)}, got {kind!r}")
    size = torch.tensor([w - 1.0, h - 1.0])
    centre = torch.rand(batch, k, 2, generator=generator) * size  # (B, K, 2) cells, x then y
    if kind == "border":
        axis = torch.randint(0, 2, (batch, k), generator=generator)  # which axis lies in the band
        far = torch.randint(0, 2, (batch, k), generator=generator).float()  # which side of it
        offset = torch.rand(batch, k, generator=generator) - 0.5  # [-0.5, 0.5) cells about the edge centre
        edge = far * size[axis] + offset
        centre = centre.scatter(-1, axis[..., None], edge[..., None])
    x = torch.arange(w, dtype=torch.float32)
    y = torch.arange(h, dtype=torch.float32)
    dx2 = (x - centre[..., :1]) ** 2  # (B, K, w)
    dy2 = (y - centre[..., 1:]) ** 2  # (B, K, h)
    logits = -(dy2[..., :, None] + dx2[..., None, :]) / (2 * PEAK_SIGMA_CELLS**2)
    return logits + 0.1 * torch.randn(logits.shape, generator=generator)


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


def decode_parts(logits: torch.Tensor) -> dict[str, Callable[[], object]]:
    """The parts every decode is made of, as calls on ``logits`` (B, K, h, w), to see where its time goes."""
    _, _, h, w = logits.shape
    ix, iy, peak, _ = scan_maps(logits)
    chunk_1mb = (1 << 20) // (h * w * logits.element_size())  # the normaliser's chunks, for the argmax alone
    logits_grad = logits.clone().requires_grad_()  # onmap_patch's gradient path: indexing unfold's view
    return {
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


def share_of_peaks_on_the_edge(logits: torch.Tensor) -> float:
    """The fraction of the maps (B, K, h, w) whose first maximum lies in the outermost row or column."""
    _, _, h, w = logits.shape
    ix, iy, _, _ = scan_maps(logits)
    return ((ix == 0) | (ix == w - 1) | (iy == 0) | (iy == h - 1)).double().mean().item()


def ratio_table(rounds: int = 15, kind: str = "random") -> list[dict]:
    """Decode times of every decoder on :data:`RATIO_CASE` maps of one of :data:`MAP_KINDS`, with the memory
    pass and numpy argmax over the same maps, interleaved, each after a torch pass and back to back (see the
    module docstring); the parts of a decode on the ``random`` kind only."""
    batch, k, (w, h) = RATIO_CASE
    g = torch.Generator().manual_seed(0)
    logits = make_logits(kind, batch, k, w, h, g)
    # one per-map softmax, shared by the decoders that read probabilities
    probabilities = logits.flatten(-2).softmax(-1).view_as(logits)
    flat_np = logits.numpy().reshape(batch * k, h * w)
    on_edge = share_of_peaks_on_the_edge(logits)
    calls: dict[str, Callable[[], object]] = {
        "memory pass (maps.sum())": lambda: logits.sum(),
        "memory pass (maps.amax(-1))": lambda: logits.amax(-1),
        "numpy argmax (ndarray.argmax(-1))": lambda: flat_np.argmax(-1),
        "torch.max(dim=-1) with indices": lambda: logits.flatten(-2).max(dim=-1),
    }
    if kind == "random":
        calls.update(decode_parts(logits))
    for label, (name, options, decode_options, _) in DECODERS.items():
        codec = codecs.build(name, input_size=(w * STRIDE, h * STRIDE), heatmap_size=(w, h), **options)
        activation = decode_options.get("activation", codec.default_activation)
        maps = (
            probabilities if activation == "probabilities" else logits
        )  # Gaussian-style codecs: probabilities
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
                    "maps": kind,
                    "peaks_on_edge": on_edge,
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
    """One kind's table (``rows`` from :func:`ratio_table`)."""
    batch, k, (w, h) = RATIO_CASE
    kind = rows[0]["maps"]
    print(
        f"\ndecode of {batch} x {k} {kind} maps of {w}x{h} float32 on the CPU ({MAP_KINDS[kind]}; first maximum "
        f"on the edge in {100 * rows[0]['peaks_on_edge']:.1f} % of them), fastest of the interleaved rounds; "
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


def _picked(runs: list[list[dict]], kind: str, label: str, condition: str) -> list[dict]:
    """The row of ``label`` on ``kind`` maps in ``condition``, from every run."""
    return [
        next(r for r in run if r["maps"] == kind and r["what"] == label and r["condition"] == condition)
        for run in runs
    ]


def print_run_summary(runs: list[list[dict]], kind: str = "random") -> None:
    """Per decoder and condition: the median and range over the runs of its multiples, verdicts on the medians.

    Why: on a shared machine one run's verdict can flip with the memory pass it is divided by; the median of
    several runs is the figure to quote, and the range says how far one run may stray from it.
    """
    print(
        f"\n{kind} maps, over the {len(runs)} runs: median [min - max] of each multiple; verdicts on the medians"
    )
    print(f"{'':50s} {'condition':19s} {'x memory pass':>22s} {'x numpy argmax':>22s}  target")
    for condition in ("after a torch pass", "back to back"):
        for label in DECODERS:
            picked = _picked(runs, kind, label, condition)
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


def print_kind_summary(runs: list[list[dict]], kinds: list[str]) -> None:
    """Every decoder's median multiple of a memory pass over the runs, one column per kind of map, each figure
    after a torch pass | back to back, with the target's verdict on both (on the medians)."""
    print(
        f"\nevery kind of map, median over the {len(runs)} runs of the multiple of a memory pass over the same "
        "maps; each figure: after a torch pass | back to back; * a target missed"
    )
    print(f"{'':50s}" + "".join(f" {kind:>16s}" for kind in kinds) + "  target")
    for label in DECODERS:
        cells, target = [], DECODERS[label][3]
        for kind in kinds:
            pair = []
            for condition in ("after a torch pass", "back to back"):
                median = statistics.median(r["x_memory_pass"] for r in _picked(runs, kind, label, condition))
                missed = target is not None and median > target
                pair.append(f"{median:5.2f}{'*' if missed else ' '}")
            cells.append("|".join(pair))
        print(
            f"{label:50s}"
            + "".join(f" {cell:>16s}" for cell in cells)
            + (f"  <= {target:g}x" if target else "")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the ratio table")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument(
        "--runs", type=int, default=3, help="ratio tables to time, one after the other (default 3)"
    )
    parser.add_argument(
        "--kinds",
        default=",".join(MAP_KINDS),
        help=f"comma-separated kinds of maps for the ratio tables (default: all of {', '.join(MAP_KINDS)})",
    )
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs must be >= 1, got {args.runs}")
    kinds = [kind.strip() for kind in args.kinds.split(",") if kind.strip()]
    unknown = [kind for kind in kinds if kind not in MAP_KINDS]
    if unknown or not kinds:
        parser.error(
            f"--kinds: unknown kind {', '.join(unknown) or '(none given)'}; choose from {', '.join(MAP_KINDS)}"
        )

    print(f"machine: {machine_description()}")
    runs = []
    for run in range(args.runs):
        print(f"\nrun {run + 1} of {args.runs}")
        rows = []
        for kind in kinds:
            table = ratio_table(kind=kind)
            print_ratio_table(table)
            rows += table
        runs.append(rows)
    if args.runs > 1:
        for kind in kinds:
            print_run_summary(runs, kind)
    print_kind_summary(runs, kinds)
    print(f"\nmachine at the end: {machine_description()}")
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
