"""``h3r-sweep``: the resolution sweep, the package's central experiment.

The claim under test (Yu & Tao, TPAMI 2021, arXiv:2009.00225): vanilla heatmap regression loses accuracy
as the heatmap gets coarser, because rounding a keypoint to a cell costs on average
``(sqrt(2) + asinh(1)) / 6 = 0.3826`` cells, i.e. ``0.3826 x stride`` input pixels; randomized rounding
encodes the sub-cell position in the *distribution* of its random one-hot targets and decodes it back from
several activation points, so its error should not grow with the stride.

What one sweep does, top to bottom::

    for stride in strides:                      # the ONLY thing that changes between runs
        for model in models:                    # argmax, gaussian (dark target), randomized rounding
            train(config with model.output_stride = stride and codec = model.codec)   # same seed, data,
                                                # schedule and backbone parameters (tiny: stride-free)
            for shift in jitter shifts:         # sub-pixel translations of the held-out split
                maps = network(translate(images, shift))       # once per shift ...
                for decoder in model.decoders:  # ... decoded by every decoder of that model
                    predictions -> errors
    -> table (codec x stride): NME, mean error (input px), jitter sd (input px), vanilla floor (px)
    -> results/sweep.csv, results/sweep.json, results/sweep.md, results/sweep.png

Jitter: every trained model sees the held-out images translated by ``(dx, dy)`` for each pair of the
per-axis ``jitter.shifts`` (a grid), with the labels moved by the same amount. A translation-equivariant
predictor keeps the error vector ``pred - label`` constant; a predictor snapped to cells does not (its
prediction stands still while the label moves, then jumps a whole cell). ``jitter_sd_px`` is, per labelled
keypoint, the standard deviation of the 2-D error vector over the shifts, ``sqrt(var(ex) + var(ey))``,
averaged over keypoints and images. Note: ``translate_images`` resamples bilinearly, which blurs a
non-integer shift slightly; the ``mean_error_px`` / ``nme`` columns are measured on the untranslated split.

Run it::

    h3r-sweep                                  # default: trainers/configs/sweep.yaml, CPU, ~10 minutes
    h3r-sweep --full                           # sweep_full.yaml: the same sweep at full size (GPU)
    h3r-sweep --full base.data.name=wflw base.data.root=~/data/WFLW base.model.name=hrnet_w18
    h3r-sweep strides=[4,16] base.train.max_steps=50   # any key of the sweep config, dotted

Everything is seeded; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from h3r_theory import codecs
from h3r_theory.codecs import HeatmapCodec

from . import plotting
from .build import build_codec, build_datasets, build_network
from .config import (
    Config,
    from_dict,
    parse_override,
    read_yaml_mapping,
    resolve_config_path,
    set_dotted_value,
)
from .data import transforms
from .engine import seed_everything, train
from .evaluate import dataset_metrics, to_maps, translate_images
from .runtime import batches

# ---------------------------------------------------------------------------------------------------------
# Sweep configuration: plain data, like trainers.config
# ---------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Decoder:
    """One way to read a trained model's maps: a codec (by name, with options) and its decode options.

    ``codec: null`` means the codec the model was trained with. Decoding only uses the codec's pixel
    convention and decoder, so e.g. a model trained on DARK targets can be decoded by plain argmax through
    the ``gaussian`` codec (train once, decode twice).
    """

    name: str
    codec: str | None = None
    options: dict | None = None  # codec constructor options; None = the model's codec options
    decode: dict = dataclasses.field(default_factory=dict)  # keyword arguments of codec.decode


@dataclasses.dataclass
class ModelRun:
    """One trained model per stride: the training codec, its options and its decoders."""

    name: str
    codec: str
    options: dict = dataclasses.field(default_factory=dict)
    decoders: list = dataclasses.field(default_factory=list)  # list[Decoder]; empty = the codec itself


@dataclasses.dataclass
class SweepConfig:
    base: dict  # a trainers config (same keys as trainers/configs/*.yaml); stride and codec set per run
    strides: list = dataclasses.field(default_factory=lambda: [4, 8, 16])
    models: list = dataclasses.field(default_factory=list)  # list[ModelRun]
    model_width: int | None = None  # tiny: stem width (build_model's ``width``); None = model default
    jitter_shifts: list = dataclasses.field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75])  # px per axis
    eval_batch_size: int = 64
    out_dir: str = "runs/sweep"
    title: str = "resolution sweep"


SWEEP_KEYS = [f.name for f in dataclasses.fields(SweepConfig)]


def _decoder(data: Any, where: str) -> Decoder:
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be a mapping like {{name: dark, codec: dark}}, got {data!r}")
    names = [f.name for f in dataclasses.fields(Decoder)]
    unknown = sorted(set(data) - set(names))
    if unknown or "name" not in data:
        raise ValueError(f"{where}: unknown key(s) {unknown} or missing 'name'; valid keys: {names}")
    return Decoder(**data)


def _model_run(data: Any, where: str) -> ModelRun:
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be a mapping like {{name: argmax, codec: argmax}}, got {data!r}")
    names = [f.name for f in dataclasses.fields(ModelRun)]
    unknown = sorted(set(data) - set(names))
    if unknown or "name" not in data or "codec" not in data:
        raise ValueError(f"{where}: unknown key(s) {unknown} or missing 'name'/'codec'; valid keys: {names}")
    data = dict(data)
    decoders = data.pop("decoders", None) or [{"name": data["name"]}]
    run = ModelRun(**data, decoders=[_decoder(d, f"{where}.decoders[{i}]") for i, d in enumerate(decoders)])
    if run.codec not in codecs.available():
        raise ValueError(f"{where}: unknown codec {run.codec!r}; available: {codecs.available()}")
    for d in run.decoders:
        if d.codec is not None and d.codec not in codecs.available():
            raise ValueError(
                f"{where}: decoder {d.name!r} has unknown codec {d.codec!r}; available: {codecs.available()}"
            )
    return run


def sweep_from_dict(data: dict, source: str = "sweep config") -> SweepConfig:
    """Validate a sweep config dict (unknown keys fail, naming the valid ones) into a :class:`SweepConfig`."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: the top level must be a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - set(SWEEP_KEYS))
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown}; valid keys: {SWEEP_KEYS}")
    if "models" not in data or not data["models"]:
        raise ValueError(f"{source}: 'models' must list at least one model to train")
    data = dict(data)
    data["base"] = data.get("base") or {}
    base_config(data["base"], source)  # fail now on a bad base, not after the first training
    data["models"] = [_model_run(m, f"{source}: models[{i}]") for i, m in enumerate(data["models"])]
    config = SweepConfig(**data)
    strides = config.strides
    if not (isinstance(strides, list) and strides and all(isinstance(s, int) and s > 0 for s in strides)):
        raise ValueError(f"{source}: strides must be a non-empty list of positive ints, got {strides!r}")
    shifts = config.jitter_shifts
    if not (isinstance(shifts, list) and shifts and all(isinstance(s, (int, float)) for s in shifts)):
        raise ValueError(f"{source}: jitter_shifts must be a non-empty list of numbers (px), got {shifts!r}")
    names = [m.name for m in config.models]
    if len(set(names)) != len(names):
        raise ValueError(f"{source}: model names must be unique, got {names}")
    return config


def base_config(
    base: dict,
    source: str = "sweep config",
    stride: int | None = None,
    codec: ModelRun | None = None,
    out_dir: str | None = None,
) -> Config:
    """The trainers :class:`~trainers.config.Config` of one run: ``base`` with the stride, codec and
    output folder of that run filled in."""
    data = json.loads(json.dumps(base))
    if stride is not None:
        data.setdefault("model", {})["output_stride"] = stride
    if codec is not None:
        data["codec"] = {"name": codec.codec, "options": dict(codec.options)}
    if out_dir is not None:
        data.setdefault("train", {})["out_dir"] = out_dir
    from .config import validate

    return validate(from_dict(data, Config, f"{source}: base"))


def set_dotted(data: dict, overrides: Sequence[str]) -> dict:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a nested dict; returns a new dict.

    The first part must be a sweep key (``strides``, ``base``, ...); the result is validated afterwards,
    so a typo below ``base`` fails there with the list of valid keys.
    """
    data = json.loads(json.dumps(data))
    for item in overrides:
        key, text = parse_override(item, "key", "strides=[4,16] or base.train.max_steps=100")
        if key.split(".")[0] not in SWEEP_KEYS:
            raise ValueError(
                f"unknown sweep key {key.split('.')[0]!r} in override {item!r}; valid keys: {SWEEP_KEYS}"
            )
        set_dotted_value(data, key, text)
    return data


def load_sweep(path: str | None = None, overrides: Sequence[str] = (), full: bool = False) -> SweepConfig:
    """Read a sweep YAML (a path or a bundled name; default ``sweep``, or ``sweep_full`` with ``full``)."""
    file = resolve_config_path(path or ("sweep_full" if full else "sweep"))
    return sweep_from_dict(set_dotted(read_yaml_mapping(file), overrides), str(file))


# ---------------------------------------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------------------------------------


def quantization_floor(stride: float) -> float:
    """Mean 2-D error of vanilla rounding for a uniformly placed keypoint, in input pixels:
    ``(sqrt(2) + asinh(1)) / 6 x stride`` from the exact derivation in :mod:`h3r_theory.theory`."""
    from h3r_theory.theory.quantization import mean_quantization_error

    return float(mean_quantization_error("round", 2)) * float(stride)


def shift_grid(shifts: Sequence[float]) -> list[tuple[float, float]]:
    """All ``(dx, dy)`` pairs of the per-axis shifts, ``(0, 0)`` first when present."""
    return [(float(dx), float(dy)) for dy in shifts for dx in shifts]


def build_decoders(run: ModelRun, train_codec: HeatmapCodec) -> dict[str, tuple[HeatmapCodec, dict]]:
    """``{decoder name: (codec, decode options)}`` for the maps of a model trained with ``train_codec``."""
    out = {}
    for d in run.decoders:
        if d.codec is None or (d.codec == train_codec.name and d.options is None):
            codec = train_codec
        else:
            options = dict(run.options if d.options is None else d.options)
            codec = codecs.build(
                d.codec, input_size=train_codec.input_size, heatmap_size=train_codec.heatmap_size, **options
            )
            if codec.convention != train_codec.convention:
                raise ValueError(
                    f"decoder {d.name!r}: codec {d.codec!r} uses the {codec.convention!r} "
                    f"convention but the model was trained under {train_codec.convention!r}"
                )
        out[d.name] = (codec, dict(d.decode))
    return out


@torch.no_grad()
def predict_shifted(
    model: torch.nn.Module,
    train_codec: HeatmapCodec,
    decoders: dict[str, tuple[HeatmapCodec, dict]],
    dataset,
    shifts: Sequence[tuple[float, float]],
    *,
    batch_size: int = 64,
    device: torch.device | None = None,
    max_samples: int | None = None,
) -> dict:
    """Predictions of every decoder on the (translated) held-out split; the network runs once per shift.

    Returns ``{"pred": {decoder: (S, N, K, 2)}, "gt": (N, K, 2), "visible": (N, K), "matrix": (N, 2, 3),
    "index": (N,)}``, all float64 on the CPU, in INPUT pixels; ``pred[d][s]`` is the prediction for the
    images translated by ``shifts[s]`` (its label is ``gt + shifts[s]``).
    """
    device = device or next(model.parameters()).device
    model.eval()
    n = len(dataset) if max_samples is None else min(len(dataset), int(max_samples))
    index_lists = [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]
    preds: dict[str, list] = {name: [[] for _ in shifts] for name in decoders}
    gts, vis, mats, idx = [], [], [], []
    for batch in batches(dataset, index_lists, num_workers=0, seed=0):
        images = batch["image"].to(device)
        for s, shift in enumerate(shifts):
            # The activation is a property of how the network was trained (its training codec's loss, or
            # the binary head's sigmoid), not of the decoder that reads the maps.
            maps, activation = to_maps(model(translate_images(images, shift)), train_codec)
            for name, (codec, options) in decoders.items():
                coords, _ = codec.decode(maps, activation=activation, **options)
                preds[name][s].append(coords.to("cpu", torch.float64))
        gts.append(torch.as_tensor(batch["keypoints"]).to(torch.float64))
        vis.append(torch.as_tensor(batch["visible"]).to(torch.float64))
        mats.append(torch.as_tensor(batch["matrix"]).to(torch.float64))
        idx.append(torch.as_tensor(batch["index"]).long())
    return {
        "pred": {name: torch.stack([torch.cat(p) for p in per_shift]) for name, per_shift in preds.items()},
        "gt": torch.cat(gts),
        "visible": torch.cat(vis),
        "matrix": torch.cat(mats),
        "index": torch.cat(idx),
    }


def jitter_sd(errors: torch.Tensor, visible: torch.Tensor) -> float:
    """Mean over labelled keypoints of the sd of the 2-D error vector across shifts.

    ``errors`` (S, N, K, 2): prediction minus (shifted) label per shift; ``visible`` (N, K). The sd of a
    vector is ``sqrt(var(ex) + var(ey))`` with the population variance over the S shifts (S = 1 -> 0).
    """
    if errors.shape[0] < 2:
        return 0.0
    var = errors.var(dim=0, unbiased=False).sum(-1)  # (N, K)
    labelled = visible > 0
    return float(var.sqrt()[labelled].mean())


def measure(
    model: torch.nn.Module,
    train_codec: HeatmapCodec,
    decoders: dict[str, tuple[HeatmapCodec, dict]],
    dataset,
    shifts_per_axis: Sequence[float],
    *,
    batch_size: int = 64,
    device: torch.device | None = None,
    max_samples: int | None = None,
) -> dict[str, dict]:
    """Per decoder: ``nme`` and ``mean_error_px`` on the untranslated split, ``mean_error_shifted_px``
    (over every shift) and ``jitter_sd_px`` (see :func:`jitter_sd`), all in INPUT pixels except NME,
    which the dataset defines in ORIGINAL pixels (via :func:`trainers.evaluate.dataset_metrics`)."""

    shifts = shift_grid(shifts_per_axis)
    if (0.0, 0.0) not in shifts:
        shifts = [(0.0, 0.0)] + shifts  # the untranslated split is always measured
    out = predict_shifted(
        model,
        train_codec,
        decoders,
        dataset,
        shifts,
        batch_size=batch_size,
        device=device,
        max_samples=max_samples,
    )
    gt, vis = out["gt"], out["visible"]
    labelled = vis > 0
    if not labelled.any():
        raise ValueError("no labelled keypoint in the evaluated samples: nothing to measure")
    offsets = torch.tensor(shifts, dtype=torch.float64)[:, None, None, :]  # (S, 1, 1, 2)
    zero = shifts.index((0.0, 0.0))
    jitter_rows = [i for i, s in enumerate(shifts) if s[0] in shifts_per_axis and s[1] in shifts_per_axis]
    inverse = transforms.invert(out["matrix"])
    results = {}
    for name, pred in out["pred"].items():
        errors = pred - (gt[None] + offsets)  # (S, N, K, 2)
        dist = torch.linalg.vector_norm(errors, dim=-1)
        row = {
            "mean_error_px": float(dist[zero][labelled].mean()),
            "mean_error_shifted_px": float(dist[:, labelled].mean()),
            "jitter_sd_px": jitter_sd(errors[jitter_rows], vis),
            "num_samples": int(gt.shape[0]),
            "num_shifts": len(jitter_rows),
        }
        metrics = dataset_metrics(
            dataset,
            out["index"].tolist(),
            transforms.transform_points(pred[zero], inverse),
            transforms.transform_points(gt, inverse),
            vis,
            torch.ones_like(vis),
        )
        row.update({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        results[name] = row
    return results


# ---------------------------------------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------------------------------------


COLUMNS = [
    "codec",
    "trained_as",
    "stride",
    "heatmap",
    "nme",
    "mean_error_px",
    "mean_error_shifted_px",
    "jitter_sd_px",
    "floor_px",
    "error_over_floor",
    "train_seconds",
    "steps",
]


def machine_description() -> str:
    """A one-line description of where the sweep ran (for the README and the JSON record)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    text = f"{cpu}, {affinity} CPU cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"
    if torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    return text


def run_sweep(sweep: SweepConfig, progress: bool = True, log=print, command: str | None = None) -> dict:
    """Train every (model, stride), measure every decoder, write the results; returns the JSON record.

    ``command`` is the command line to record with the results (``main`` passes its own).
    """
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    out_dir = Path(sweep.out_dir)
    (out_dir / "results").mkdir(parents=True, exist_ok=True)
    probe = base_config(sweep.base)
    # One train and one held-out set for the whole sweep: every run sees exactly the same data.
    train_set, eval_set = build_datasets(probe, ["train", "eval"])
    rows = []
    jobs = [(stride, run) for stride in sweep.strides for run in sweep.models]
    bar = tqdm(jobs, desc="sweep", disable=not progress, dynamic_ncols=True, file=sys.stderr)
    for stride, run in bar:
        bar.set_postfix_str(f"{run.name} @ stride {stride}")
        run_dir = out_dir / f"{run.name}_s{stride}"
        config = base_config(sweep.base, stride=stride, codec=run, out_dir=str(run_dir))
        config.train.progress = False  # the sweep's bar is the progress report
        seed_everything(config.train.seed)  # same initial parameters at every stride and codec
        model = build_network(config, train_set.num_keypoints, sweep.model_width)
        result = train(config, model=model, train_set=train_set, eval_set=eval_set)
        codec = build_codec(config, tuple(eval_set.input_size))
        measured = measure(
            result.model,
            codec,
            build_decoders(run, codec),
            eval_set,
            sweep.jitter_shifts,
            batch_size=sweep.eval_batch_size,
            max_samples=config.eval.max_samples,
        )
        w, h = codec.heatmap_size
        for name, m in measured.items():
            floor = quantization_floor(stride)
            row = {
                "codec": name,
                "trained_as": run.codec,
                "stride": stride,
                "heatmap": f"{w}x{h}",
                **{
                    k: m.get(k, float("nan"))
                    for k in ("nme", "mean_error_px", "mean_error_shifted_px", "jitter_sd_px")
                },
                "floor_px": floor,
                "error_over_floor": m["mean_error_px"] / floor,
                "train_seconds": result.seconds,
                "steps": result.steps,
                "num_samples": m["num_samples"],
                "num_shifts": m["num_shifts"],
                "train_mean_error_px": result.final.get("mean_error_px", float("nan")),
            }
            rows.append(row)
            bar.write(
                f"  {name:>22s} stride {stride:2d}: error {m['mean_error_px']:.3f} px, "
                f"jitter sd {m['jitter_sd_px']:.3f} px (floor {floor:.2f} px, {result.seconds:.0f} s)"
            )
    bar.close()
    record = {
        "title": sweep.title,
        "machine": machine_description(),
        "wall_seconds": time.perf_counter() - t_start,
        "command": command,
        "columns": COLUMNS,
        "rows": rows,
        "targets": targets(rows),
        "sweep": _plain(dataclasses.asdict(sweep)),
        "train_size": len(train_set),
        "eval_size": len(eval_set),
    }
    write_results(record, out_dir / "results")
    log(format_table(record))
    return record


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def targets(rows: Sequence[dict], rr: str = "randomized_rounding", vanilla: str = "argmax") -> dict:
    """The issue's two targets, measured: RR at the coarsest stride within 15 % of RR at the finest, and
    at most half of argmax's error at the coarsest stride. Missing codecs or strides give ``None``."""

    def error(codec: str, stride: int) -> float | None:
        hits = [r["mean_error_px"] for r in rows if r["codec"] == codec and r["stride"] == stride]
        return hits[0] if hits else None

    strides = sorted({r["stride"] for r in rows})
    if len(strides) < 2:
        return {"rr_flat": None, "rr_vs_argmax": None}
    lo, hi = strides[0], strides[-1]
    rr_lo, rr_hi, am_hi = error(rr, lo), error(rr, hi), error(vanilla, hi)
    out: dict[str, Any] = {"finest_stride": lo, "coarsest_stride": hi}
    if rr_lo is not None and rr_hi is not None:
        out["rr_ratio_coarse_to_fine"] = rr_hi / rr_lo
        out["rr_flat"] = bool(rr_hi <= 1.15 * rr_lo)
    if rr_hi is not None and am_hi is not None:
        out["rr_over_argmax_coarse"] = rr_hi / am_hi
        out["rr_vs_argmax"] = bool(rr_hi <= 0.5 * am_hi)
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else (f"{value:.4f}" if abs(value) < 1 else f"{value:.3f}")
    return str(value)


TABLE_COLUMNS = [
    ("codec", "codec / decoder"),
    ("stride", "stride"),
    ("heatmap", "heatmap"),
    ("nme", "NME"),
    ("mean_error_px", "error (px)"),
    ("jitter_sd_px", "jitter sd (px)"),
    ("floor_px", "vanilla floor (px)"),
    ("train_seconds", "train (s)"),
]


def format_table(record: dict, markdown: bool = False) -> str:
    """The codec x stride table as text (or a Markdown table), with the machine and the targets."""
    rows = record["rows"]
    header = [title for _, title in TABLE_COLUMNS]
    body = [[_fmt(r[k]) if k != "train_seconds" else f"{r[k]:.0f}" for k, _ in TABLE_COLUMNS] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(b) + " |" for b in body]
    else:
        widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
        lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
        lines += ["  ".join(c.rjust(w) for c, w in zip(b, widths)) for b in body]
    t = record.get("targets", {})
    lines.append("")
    if "rr_ratio_coarse_to_fine" in t:
        verdict = "met" if t["rr_flat"] else "NOT met"
        lines.append(
            f"randomized rounding, stride {t['coarsest_stride']} / stride {t['finest_stride']}: "
            f"{t['rr_ratio_coarse_to_fine']:.3f} (target <= 1.15: {verdict})"
        )
    if "rr_over_argmax_coarse" in t:
        verdict = "met" if t["rr_vs_argmax"] else "NOT met"
        lines.append(
            f"randomized rounding / argmax at stride {t['coarsest_stride']}: "
            f"{t['rr_over_argmax_coarse']:.3f} (target <= 0.5: {verdict})"
        )
    lines.append(f"machine: {record['machine']}; wall time {record['wall_seconds']:.0f} s")
    if record.get("command"):
        lines.append(f"command: {record['command']}")
    return "\n".join(lines)


def write_results(record: dict, folder: Path) -> dict[str, Path]:
    """``sweep.csv`` (one row per decoder and stride), ``sweep.json`` (everything), ``sweep.md`` (the
    README table) and ``sweep.png`` (error and jitter against stride) under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {k: folder / f"sweep.{k}" for k in ("csv", "json", "md", "png")}
    with paths["csv"].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(record["rows"])
    paths["json"].write_text(json.dumps(_plain(record), indent=2) + "\n")
    paths["md"].write_text(format_table(record, markdown=True) + "\n")
    plot_sweep(record, paths["png"])
    return paths


def plot_sweep(record: dict, path: Path) -> Path:
    """``sweep.png``: :func:`trainers.plotting.plot_sweep` of the record's rows, saved to ``path``."""
    floor_per_stride = quantization_floor(1.0)
    title = f"{record.get('title', 'sweep')} - {record.get('machine', '')}"
    plotting.plot_sweep(record["rows"], floor_per_stride, title=title).savefig(path, dpi=90)
    return path


# ---------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="h3r-sweep",
        description="Train the same model at several heatmap strides with several codecs; table + figure.",
        epilog="overrides: any sweep key, dotted, e.g. strides=[4,16] base.train.max_steps=100 "
        "base.data.name=wflw base.data.root=~/data/WFLW; valid top-level keys: " + " ".join(SWEEP_KEYS),
    )
    p.add_argument("overrides", nargs="*", help="key=value overrides of the sweep config")
    p.add_argument("--config", help="sweep YAML (default: bundled sweep.yaml; sweep_full.yaml with --full)")
    p.add_argument("--full", action="store_true", help="the full-size sweep (sweep_full.yaml, for a GPU)")
    p.add_argument("--out", help="output folder (default: the config's out_dir, runs/sweep)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    overrides = list(args.overrides) + ([f"out_dir={args.out}"] if args.out else [])
    try:
        sweep = load_sweep(args.config, overrides, full=args.full)
        command = " ".join(["h3r-sweep", *(list(argv) if argv is not None else sys.argv[1:])])
        run_sweep(sweep, progress=not args.no_progress, command=command)
    except ValueError as exc:
        print(f"h3r-sweep: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
