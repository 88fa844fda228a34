"""``h3r-sweep``: the resolution sweep, the package's central experiment.

The claim under test (Yu & Tao, TPAMI 2021, arXiv:2009.00225): vanilla heatmap regression loses accuracy
as the heatmap gets coarser, because rounding a keypoint to a cell costs on average
``(sqrt(2) + asinh(1)) / 6 = 0.3826`` cells, i.e. ``0.3826 x stride`` input pixels; randomized rounding
encodes the sub-cell position in the *distribution* of its random one-hot targets and decodes it back from
several activation points, so its error should not grow with the stride.

Two sweeps share one table. The **stride sweep** trains at every stride of ``strides`` at the base input
size; the **input sweep** trains at ``input_stride`` for every size of ``input_sizes`` (the axis along
which these backbones actually save compute: they compute their stride-4 features whatever the output
stride). Every (model, stride, input size) is trained once per seed of ``seeds`` (``input_seeds`` for the
input sweep); a seed fixes the initial parameters AND the synthetic data (train and held-out sets).
What one run does::

    train(config with model.output_stride, data.input_size, train.seed, codec)
    measure compute: forward FLOPs, parameters, CPU latency per image       (trainers.compute)
    temperature T fitted on training maps, written into the checkpoint    (randomized rounding only)
    for shift in jitter shifts:            # held-out faces RE-RENDERED at sub-pixel translations
        maps = network(images)             # once per shift, decoded by every decoder of the model
    -> per decoder: error, RMS error / Cramer-Rao bound, jitter sd, error conditional on the sub-cell
       position (per axis), the vanilla floor

Then: mean and 95 % Student-t interval over seeds of every number (:mod:`trainers.sweep_stats`), the
targets as measured checks (:func:`targets`), and the files ``runs/sweep/results/sweep.{csv,json,md}``,
``runs.csv`` (one row per run and seed), ``conditional.csv`` and the figures ``sweep.png`` (error vs
stride, with bands, the vanilla floor and the bound), ``flops.png`` (NME vs FLOPs, both sweeps),
``conditional.png`` (signed/absolute error vs the true sub-cell position).

Jitter: for each pair of the per-axis ``jitter_shifts`` the held-out faces are rendered again moved by
``(dx, dy)`` (exact, :meth:`trainers.data.synthetic.SyntheticLandmarks.batch`; other datasets fall back to
bilinear resampling, which blurs). A translation-equivariant predictor keeps ``pred - label`` constant;
``jitter_sd_px`` is per keypoint the sd of the 2-D error vector over the shifts, ``sqrt(var(ex) + var(ey))``,
averaged over keypoints and images.

Run it::

    h3r-sweep                                  # default: trainers/configs/sweep.yaml, CPU
    h3r-sweep --full                           # sweep_full.yaml: the same sweep at full size (GPU)
    h3r-sweep seeds=[0] input_sizes=[] base.train.max_steps=50   # any key of the sweep config, dotted

Everything is seeded; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import inspect
import json
import math
import os
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from h3r_theory import codecs
from h3r_theory.codecs import HeatmapCodec
from h3r_theory.codecs.randomized_rounding import RandomizedRounding, fit_temperature

from . import checkpoint as ckpt
from . import compute, sweep_stats
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
from .data.batch_cache import BatchCache
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
    the ``gaussian`` codec (train once, decode twice). ``calibrated: true`` divides the logits by the
    temperature fitted on training maps at the end of that model's training (stored in its checkpoint).
    """

    name: str
    codec: str | None = None
    options: dict | None = None  # codec constructor options; None = the model's codec options
    decode: dict = dataclasses.field(default_factory=dict)  # keyword arguments of codec.decode
    calibrated: bool = False


@dataclasses.dataclass
class ModelRun:
    """One trained model per (stride, input size, seed): the training codec, its options and decoders."""

    name: str
    codec: str
    options: dict = dataclasses.field(default_factory=dict)
    decoders: list = dataclasses.field(default_factory=list)  # list[Decoder]; empty = the codec itself


@dataclasses.dataclass
class SweepConfig:
    base: dict  # a trainers config (same keys as trainers/configs/*.yaml); stride, codec, seed set per run
    strides: list = dataclasses.field(default_factory=lambda: [4, 8, 16])
    models: list = dataclasses.field(default_factory=list)  # list[ModelRun]
    seeds: list = dataclasses.field(default_factory=lambda: [0])  # stride sweep: one run per seed
    input_sizes: list = dataclasses.field(default_factory=list)  # input sweep: square sizes (px)
    input_stride: int = 4  # the stride of the input sweep
    input_seeds: list | None = None  # seeds of the input sweep; None = ``seeds``
    model_width: int | None = None  # tiny: stem width (build_model's ``width``); None = model default
    jitter_shifts: list = dataclasses.field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75])  # px per axis
    eval_batch_size: int = 64
    temperature_samples: int = 256  # training images whose maps fit the temperature
    latency_repeats: int = 5  # timed forward passes per run (median), after 2 warm-up passes
    bound: bool = True  # Cramer-Rao bound of the held-out keypoints (synthetic set, Gaussian noise)
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
        if d.calibrated and run.codec != "randomized_rounding":
            raise ValueError(
                f"{where}: decoder {d.name!r} is calibrated, but a temperature is fitted only for "
                f"randomized_rounding models (this one is {run.codec!r})"
            )
    return run


def _int_list(value: Any, key: str, source: str, allow_empty: bool = False, minimum: int = 1) -> list:
    ok = isinstance(value, list) and (allow_empty or value)
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in value)
    if not ok:
        empty = "" if allow_empty else "non-empty "
        raise ValueError(f"{source}: {key} must be a {empty}list of ints >= {minimum}, got {value!r}")
    if len(set(value)) != len(value):
        raise ValueError(f"{source}: {key} must not repeat a value, got {value!r}")
    return value


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
    if not (isinstance(config.strides, list) and config.strides):
        raise ValueError(
            f"{source}: strides must be a non-empty list of positive ints, got {config.strides!r}"
        )
    _int_list(config.strides, "strides", source)
    _int_list(config.seeds, "seeds", source, minimum=0)
    _int_list(config.input_sizes, "input_sizes", source, allow_empty=True, minimum=8)
    if config.input_seeds is not None:
        _int_list(config.input_seeds, "input_seeds", source, minimum=0)
    if not (isinstance(config.input_stride, int) and config.input_stride > 0):
        raise ValueError(f"{source}: input_stride must be a positive int, got {config.input_stride!r}")
    for size in config.input_sizes:
        if size % config.input_stride:
            raise ValueError(
                f"{source}: input_sizes entry {size} is not a multiple of input_stride {config.input_stride}"
            )
    for key in ("temperature_samples", "latency_repeats", "eval_batch_size"):
        value = getattr(config, key)
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            raise ValueError(f"{source}: {key} must be an int >= 1, got {value!r}")
    shifts = config.jitter_shifts
    if not (isinstance(shifts, list) and shifts and all(isinstance(s, (int, float)) for s in shifts)):
        raise ValueError(f"{source}: jitter_shifts must be a non-empty list of numbers (px), got {shifts!r}")
    names = [m.name for m in config.models]
    if len(set(names)) != len(names):
        raise ValueError(f"{source}: model names must be unique, got {names}")
    decoder_names = [d.name for m in config.models for d in m.decoders]
    if len(set(decoder_names)) != len(decoder_names):
        raise ValueError(f"{source}: decoder names must be unique across models, got {decoder_names}")
    return config


def base_config(
    base: dict,
    source: str = "sweep config",
    stride: int | None = None,
    codec: ModelRun | None = None,
    out_dir: str | None = None,
    seed: int | None = None,
    input_size: int | None = None,
) -> Config:
    """The trainers :class:`~trainers.config.Config` of one run: ``base`` with the stride, codec, seed,
    square input size and output folder of that run filled in."""
    data = json.loads(json.dumps(base))
    if stride is not None:
        data.setdefault("model", {})["output_stride"] = stride
    if codec is not None:
        data["codec"] = {"name": codec.codec, "options": dict(codec.options)}
    if out_dir is not None:
        data.setdefault("train", {})["out_dir"] = out_dir
    if seed is not None:
        data.setdefault("train", {})["seed"] = seed
    if input_size is not None:
        data.setdefault("data", {})["input_size"] = [input_size, input_size]
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
    return sweep_stats.vanilla_floor(stride)


def shift_grid(shifts: Sequence[float]) -> list[tuple[float, float]]:
    """All ``(dx, dy)`` pairs of the per-axis shifts, ``(0, 0)`` first when present."""
    return [(float(dx), float(dy)) for dy in shifts for dx in shifts]


def build_decoders(
    run: ModelRun, train_codec: HeatmapCodec, temperature: float | None = None
) -> dict[str, tuple[HeatmapCodec, dict]]:
    """``{decoder name: (codec, decode options)}`` for the maps of a model trained with ``train_codec``;
    ``temperature`` (fitted on training maps) goes to every ``calibrated`` decoder."""
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
        options = dict(d.decode)
        if d.calibrated:
            if temperature is None:
                raise ValueError(f"decoder {d.name!r} is calibrated but no temperature was fitted")
            options["temperature"] = float(temperature)
        out[d.name] = (codec, options)
    return out


def _shifted_batch(dataset, indices: list[int], shift: tuple[float, float], base: dict) -> tuple:
    """Images and labels of ``indices`` moved by ``shift`` px: re-rendered exactly when the dataset can
    (the synthetic set), else ``base``'s images resampled bilinearly with the labels moved by ``shift``."""
    if shift == (0.0, 0.0):
        return base["image"], torch.as_tensor(base["keypoints"])
    if hasattr(dataset, "batch") and "shift" in inspect.signature(dataset.batch).parameters:
        moved = dataset.batch(indices, shift=shift)
        return moved["image"], moved["keypoints"]
    offset = torch.tensor(shift, dtype=torch.float32)
    return translate_images(base["image"], shift), torch.as_tensor(base["keypoints"]) + offset


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
    """Predictions of every decoder on the held-out split moved by each shift; one forward per shift.

    Returns ``{"pred": {decoder: (S, N, K, 2)}, "labels": (S, N, K, 2), "gt": (N, K, 2), "visible": (N, K),
    "matrix": (N, 2, 3), "index": (N,)}``, float64 on the CPU, INPUT pixels; ``pred[d][s]`` and
    ``labels[s]`` belong to the faces moved by ``shifts[s]`` (``gt`` = the unmoved labels).
    """
    device = device or next(model.parameters()).device
    model.eval()
    n = len(dataset) if max_samples is None else min(len(dataset), int(max_samples))
    index_lists = [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]
    preds: dict[str, list] = {name: [[] for _ in shifts] for name in decoders}
    labels: list[list] = [[] for _ in shifts]
    gts, vis, mats, idx = [], [], [], []
    for indices, batch in zip(index_lists, batches(dataset, index_lists, num_workers=0, seed=0)):
        for s, shift in enumerate(shifts):
            images, keypoints = _shifted_batch(dataset, indices, shift, batch)
            # The activation is a property of how the network was trained (its training codec's loss, or
            # the binary head's sigmoid), not of the decoder that reads the maps.
            maps, activation = to_maps(model(images.to(device)), train_codec)
            for name, (codec, options) in decoders.items():
                coords, _ = codec.decode(maps, activation=activation, **options)
                preds[name][s].append(coords.to("cpu", torch.float64))
            labels[s].append(keypoints.to(torch.float64))
        gts.append(torch.as_tensor(batch["keypoints"]).to(torch.float64))
        vis.append(torch.as_tensor(batch["visible"]).to(torch.float64))
        mats.append(torch.as_tensor(batch["matrix"]).to(torch.float64))
        idx.append(torch.as_tensor(batch["index"]).long())
    return {
        "pred": {name: torch.stack([torch.cat(p) for p in per_shift]) for name, per_shift in preds.items()},
        "labels": torch.stack([torch.cat(x) for x in labels]),
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
    bound: torch.Tensor | None = None,
) -> dict[str, dict]:
    """Per decoder: ``nme``, ``mean_error_px`` and ``rms_error_px`` on the unmoved split,
    ``mean_error_shifted_px`` (over every shift), ``jitter_sd_px`` (:func:`jitter_sd`), the conditional
    error (:func:`trainers.sweep_stats.conditional_error`, key ``conditional``) and, with ``bound`` (N, K)
    px, ``rms_bound_px`` and ``error_over_bound``. Input pixels except NME, which the dataset defines in
    ORIGINAL pixels (via :func:`trainers.evaluate.dataset_metrics`)."""

    shifts = shift_grid(shifts_per_axis)
    if (0.0, 0.0) not in shifts:
        shifts = [(0.0, 0.0)] + shifts  # the unmoved split is always measured
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
    zero = shifts.index((0.0, 0.0))
    jitter_rows = [i for i, s in enumerate(shifts) if s[0] in shifts_per_axis and s[1] in shifts_per_axis]
    inverse = transforms.invert(out["matrix"])
    results = {}
    for name, pred in out["pred"].items():
        codec = decoders[name][0]
        errors = pred - out["labels"]  # (S, N, K, 2)
        dist = torch.linalg.vector_norm(errors, dim=-1)
        row = {
            "mean_error_px": float(dist[zero][labelled].mean()),
            "rms_error_px": float(dist[zero][labelled].pow(2).mean().sqrt()),
            "mean_error_shifted_px": float(dist[:, labelled].mean()),
            "jitter_sd_px": jitter_sd(errors[jitter_rows], vis),
            "num_samples": int(gt.shape[0]),
            "num_shifts": len(jitter_rows),
            "conditional": sweep_stats.conditional_error(
                pred[zero], gt, vis, codec.input_size, codec.heatmap_size, codec.convention
            ),
        }
        if bound is not None:
            ratio = sweep_stats.bound_ratio(pred[zero], gt, vis, bound[: gt.shape[0]])
            row.update(rms_bound_px=ratio["rms_bound_px"], error_over_bound=ratio["error_over_bound"])
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


@torch.no_grad()
def fitted_temperature(model: torch.nn.Module, codec: HeatmapCodec, train_set, num: int, batch: int = 64):
    """The temperature of :func:`~h3r_theory.codecs.randomized_rounding.fit_temperature` on the maps of
    the first ``num`` TRAINING images (the held-out split never informs a decoder); ``None`` for a model
    whose maps are not logits of a randomized-rounding codec."""
    if not isinstance(codec, RandomizedRounding):
        return None
    device = next(model.parameters()).device
    model.eval()
    n = min(num, len(train_set))
    index_lists = [list(range(i, min(i + batch, n))) for i in range(0, n, batch)]
    maps, keypoints, visible = [], [], []
    for b in batches(train_set, index_lists, num_workers=0, seed=0):
        m, activation = to_maps(model(b["image"].to(device)), codec)
        if activation != "logits":
            return None
        maps.append(m.cpu())
        keypoints.append(torch.as_tensor(b["keypoints"]))
        visible.append(torch.as_tensor(b["visible"]))
    return fit_temperature(torch.cat(maps), torch.cat(keypoints), codec, torch.cat(visible))


def store_temperature(path: Path | None, temperature: float, num: int) -> float:
    """Write the fitted temperature into the run's checkpoint (key ``decode``) and read it back: the
    calibrated decoders use the value stored with the model. Without a checkpoint, returns it as is."""
    if path is None or not Path(path).is_file():
        return float(temperature)
    state = ckpt.load(path)
    state["decode"] = {"temperature": float(temperature), "fitted_on": f"train[:{num}], end of training"}
    ckpt.save_atomic(state, path)
    return float(ckpt.load(path)["decode"]["temperature"])


# ---------------------------------------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------------------------------------


COLUMNS = [
    "sweep",
    "codec",
    "model",
    "trained_as",
    "target",
    "seed",
    "stride",
    "input",
    "heatmap",
    "nme",
    "mean_error_px",
    "rms_error_px",
    "mean_error_shifted_px",
    "jitter_sd_px",
    "floor_px",
    "error_over_floor",
    "rms_bound_px",
    "error_over_bound",
    "temperature",
    "gflops",
    "params",
    "latency_ms_cpu",
    "train_seconds",
    "train_cpu_seconds",
    "steps",
]

SUMMARY_VALUES = (
    "mean_error_px", "nme", "jitter_sd_px", "error_over_floor", "error_over_bound", "rms_bound_px", "temperature",
)  # fmt: skip


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
    try:
        text += f", load average at the start {os.getloadavg()[0]:.1f}"
    except OSError:
        pass
    return text


def sweep_jobs(sweep: SweepConfig, base_input: int) -> list[dict]:
    """Every training of the sweep once: the stride sweep (every stride at ``base_input``, every seed),
    then the input sweep (``input_stride`` at every other input size, every input seed). A run of the
    stride sweep at ``input_stride`` is also the input sweep's point at ``base_input``."""
    jobs = []
    for seed in sweep.seeds:
        for stride in sweep.strides:
            for run in sweep.models:
                jobs.append({"seed": seed, "stride": stride, "input": base_input, "run": run})
    for seed in sweep.input_seeds if sweep.input_seeds is not None else sweep.seeds:
        for size in sweep.input_sizes:
            if size == base_input and sweep.input_stride in sweep.strides and seed in sweep.seeds:
                continue
            for run in sweep.models:
                jobs.append({"seed": seed, "stride": sweep.input_stride, "input": size, "run": run})
    return jobs


# The part of a run's wall time that does not scale with the input's pixels (per-step overheads, the
# evaluation's fixed costs), as a number of input pixels: about a 72 x 72 input. From the default sweep's
# runs on the 2-core CPU (docs/sweep/README.md, "Budget"): 12.3 s per run at 128 px and 4.3 s at 48 px, so
# t = a + b px^2 with a / b = (4.3 x 128^2 - 12.3 x 48^2) / (12.3 - 4.3): about 5,300 px^2.
_FIXED_COST_PIXELS = 72**2


def _job_cost(job: dict, steps: int) -> float:
    """Relative cost of a job for the ETA: training steps times (input pixels + the fixed part)."""
    return steps * (job["input"] ** 2 + _FIXED_COST_PIXELS)


def _format_seconds(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def _train_kwargs() -> dict:
    """``overwrite=True`` when the engine has it: a sweep re-run replaces its own run folders."""
    return {"overwrite": True} if "overwrite" in inspect.signature(train).parameters else {}


def run_sweep(sweep: SweepConfig, progress: bool = True, log=print, command: str | None = None) -> dict:
    """Train every job of :func:`sweep_jobs`, measure every decoder, write the results; returns the record.

    ``progress``: one line per run (which run, elapsed, ETA from the cost of the runs so far) and the
    training's own step bar. ``command`` is the command line to record with the results.
    """
    t_start, cpu_start = time.perf_counter(), time.process_time()
    machine = machine_description()  # now, so that its load average is the one the sweep started under
    out_dir = Path(sweep.out_dir)
    (out_dir / "results").mkdir(parents=True, exist_ok=True)
    probe = base_config(sweep.base)
    base_input = int(probe.data.input_size[0])
    jobs = sweep_jobs(sweep, base_input)
    steps = int(probe.train.max_steps or 0) or 1
    costs = [_job_cost(j, steps) for j in jobs]
    data_cache: dict[tuple, tuple] = {}
    rows, conditional = [], []
    done_cost, train_wall = 0.0, 0.0
    for number, job in enumerate(jobs, 1):
        run, seed, stride, size = job["run"], job["seed"], job["stride"], job["input"]
        label = f"{run.name} stride {stride} input {size} seed {seed}"
        if progress:
            elapsed = time.perf_counter() - t_start
            eta = train_wall / done_cost * (sum(costs) - done_cost) if done_cost else float("nan")
            eta_text = _format_seconds(eta) if math.isfinite(eta) else "after the first run"
            print(
                f"sweep run {number}/{len(jobs)}: {label} (elapsed {_format_seconds(elapsed)}, ETA {eta_text})",
                file=sys.stderr,
                flush=True,
            )
        run_dir = out_dir / f"{run.name}_s{stride}_in{size}_seed{seed}"
        config = base_config(
            sweep.base, stride=stride, codec=run, out_dir=str(run_dir), seed=seed, input_size=size
        )
        config.train.progress = progress  # the step bar of this run
        key = (seed, size)
        if key not in data_cache:  # one train and one held-out set per (seed, size): every codec sees them
            data_cache.clear()  # the jobs of one (seed, size) are consecutive: free the last one's batches
            train_set, eval_set = (
                BatchCache(d) if hasattr(d, "batch") else d for d in build_datasets(config, ["train", "eval"])
            )
            bound = None
            if sweep.bound and getattr(eval_set, "noise_distribution", None) == "gaussian":
                from .bound import dataset_bound

                n_eval = len(eval_set) if config.eval.max_samples is None else config.eval.max_samples
                bound = dataset_bound(eval_set, range(min(len(eval_set), n_eval)))
            data_cache[key] = (train_set, eval_set, bound)
        train_set, eval_set, bound = data_cache[key]
        seed_everything(seed)  # same initial parameters at every stride and codec of a seed
        model = build_network(config, train_set.num_keypoints, sweep.model_width)
        t0, c0 = time.perf_counter(), time.process_time()
        result = train(config, model=model, train_set=train_set, eval_set=eval_set, **_train_kwargs())
        train_cpu = time.process_time() - c0
        train_wall += time.perf_counter() - t0
        codec = build_codec(config, tuple(eval_set.input_size))
        cost = compute.measure_compute(
            result.model,
            tuple(eval_set.input_size),
            devices=("cpu",),
            repeats=sweep.latency_repeats,
            warmup=2,
        )
        temperature = fitted_temperature(result.model, codec, train_set, sweep.temperature_samples)
        if temperature is not None:
            temperature = store_temperature(result.checkpoint, temperature, sweep.temperature_samples)
        measured = measure(
            result.model,
            codec,
            build_decoders(run, codec, temperature),
            eval_set,
            sweep.jitter_shifts,
            batch_size=sweep.eval_batch_size,
            max_samples=config.eval.max_samples,
            bound=bound,
        )
        w, h = codec.heatmap_size
        floor = quantization_floor(stride)
        for name, m in measured.items():
            sweeps = []
            if size == base_input and seed in sweep.seeds:
                sweeps.append("stride")
            if stride == sweep.input_stride and (size in sweep.input_sizes or "stride" in sweeps):
                sweeps.append("input")
            row = {
                "sweep": "+".join(sweeps),
                "codec": name,
                "model": run.name,
                "trained_as": run.codec,
                "target": run.options.get("target", "sample") if run.codec == "randomized_rounding" else "",
                "seed": seed,
                "stride": stride,
                "input": size,
                "heatmap": f"{w}x{h}",
                **{
                    k: m.get(k, float("nan"))
                    for k in ("nme", "mean_error_px", "rms_error_px", "mean_error_shifted_px", "jitter_sd_px")
                },
                "floor_px": floor,
                "error_over_floor": m["mean_error_px"] / floor,
                "rms_bound_px": m.get("rms_bound_px", float("nan")),
                "error_over_bound": m.get("error_over_bound", float("nan")),
                "temperature": float("nan") if temperature is None else temperature,
                "gflops": cost["gflops"],
                "params": cost["params"],
                "latency_ms_cpu": cost["latency_ms_cpu"],
                "train_seconds": result.seconds,
                "train_cpu_seconds": train_cpu,
                "steps": result.steps,
                "num_samples": m["num_samples"],
                "num_shifts": m["num_shifts"],
                "train_mean_error_px": result.final.get("mean_error_px", float("nan")),
            }
            rows.append(row)
            conditional += sweep_stats.conditional_error_rows(
                m["conditional"], codec=name, stride=stride, input=size, seed=seed
            )
            if progress:
                print(
                    f"  {name:>24s}: error {m['mean_error_px']:.3f} px, jitter sd {m['jitter_sd_px']:.3f} px, "
                    f"x bound {row['error_over_bound']:.1f} (floor {floor:.2f} px)",
                    file=sys.stderr,
                )
        done_cost += costs[number - 1]
    record = {
        "title": sweep.title,
        "machine": machine,
        "wall_seconds": time.perf_counter() - t_start,
        "cpu_seconds": time.process_time() - cpu_start,
        "command": command,
        "columns": COLUMNS,
        "rows": rows,
        "conditional": conditional,
        "sweep": _plain(dataclasses.asdict(sweep)),
        "base_input": base_input,
        "train_size": len(data_cache[next(iter(data_cache))][0]),
        "eval_size": rows[0]["num_samples"] if rows else 0,
    }
    record["summary"] = summarize_rows(rows)
    record["targets"] = targets(record["summary"], rows, base_input)
    write_results(record, out_dir / "results")
    log(format_table(record))
    return record


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def summarize_rows(rows: Sequence[dict]) -> list[dict]:
    """One row per (codec, stride, input): the mean and 95 % interval over seeds of every
    :data:`SUMMARY_VALUES` (``<value>``, ``<value>_low``, ``<value>_high``), FLOPs, parameters, the mean
    CPU latency, the seeds, and the error and FLOPs as ratios to argmax at the largest input, stride 4
    (``error_vs_ref``, ``gflops_vs_ref``) when that run exists."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["codec"], r["stride"], r["input"])].append(r)
    out = []
    for group in groups.values():
        first = group[0]
        item = {k: first[k] for k in ("sweep", "codec", "model", "trained_as", "target", "stride", "input")}
        item.update(heatmap=first["heatmap"], floor_px=first["floor_px"], gflops=first["gflops"])
        item.update(params=first["params"], n=len(group), seeds=[r["seed"] for r in group])
        item["sweep"] = "+".join(sorted({s for r in group for s in r["sweep"].split("+") if s}))
        item["latency_ms_cpu"] = math.fsum(r["latency_ms_cpu"] for r in group) / len(group)
        for value in SUMMARY_VALUES:
            values = [r[value] for r in group if not math.isnan(r[value])]
            if not values:
                item.update({value: math.nan, f"{value}_low": math.nan, f"{value}_high": math.nan})
                continue
            stats = sweep_stats.mean_interval(values)
            item.update({value: stats["mean"], f"{value}_low": stats["low"], f"{value}_high": stats["high"]})
        out.append(item)
    largest = max((r["input"] for r in out), default=0)
    ref = [r for r in out if r["codec"] == "argmax" and r["stride"] == min(r2["stride"] for r2 in out)]
    ref = [r for r in ref if r["input"] == largest]
    for r in out:
        r["error_vs_ref"] = r["mean_error_px"] / ref[0]["mean_error_px"] if ref else math.nan
        r["gflops_vs_ref"] = r["gflops"] / ref[0]["gflops"] if ref else math.nan
    return out


def _per_seed(rows: Sequence[dict], codec: str, stride: int, size: int) -> dict[int, float]:
    return {
        r["seed"]: r["mean_error_px"]
        for r in rows
        if r["codec"] == codec and r["stride"] == stride and r["input"] == size
    }


def _interval_text(stats: dict, digits: int = 3) -> str:
    if math.isnan(stats["half_width"]):
        return f"{stats['mean']:.{digits}f} (one seed, no interval)"
    return f"{stats['mean']:.{digits}f} [{stats['low']:.{digits}f}, {stats['high']:.{digits}f}]"


def targets(summary: Sequence[dict], rows: Sequence[dict], base_input: int, vanilla: str = "argmax") -> list:
    """The four targets of the default CPU sweep as measured checks, each ``{name, target, measured,
    met}`` (``met`` None when the sweep lacks the codecs or strides it needs). Means over seeds decide;
    the 95 % intervals are given with them. "RR" is every decoder of a ``randomized_rounding`` model
    (both targets); "best" is the lowest mean error at the stride in question.

    1. at every stride the best RR variant <= 0.3 x the vanilla floor;
    2. the best RR variant at stride 8 below argmax at stride 4;
    3. the RR variant best at the coarsest stride: coarsest / finest error <= 3.0 (ratio per seed, then
       its mean and interval);
    4. the best codec at the finest stride within 5 x the Cramer-Rao bound (RMS error / RMS bound).
    """
    base = [s for s in summary if s["input"] == base_input and "stride" in s["sweep"]]
    strides = sorted({s["stride"] for s in base})
    rr = [s for s in base if s["trained_as"] == "randomized_rounding"]
    out = []

    def best(candidates, stride):
        at = [s for s in candidates if s["stride"] == stride]
        return min(at, key=lambda s: s["mean_error_px"]) if at else None

    def stats_of(s):
        return sweep_stats.mean_interval(
            [
                r["mean_error_px"]
                for r in rows
                if (r["codec"], r["stride"], r["input"]) == (s["codec"], s["stride"], s["input"])
            ]
        )

    checks = []
    for stride in strides:
        b = best(rr, stride)
        if b is None:
            continue
        st = stats_of(b)
        ratio = {k: st[k] / b["floor_px"] for k in ("mean", "low", "high")} | {"half_width": st["half_width"]}
        checks.append(
            {
                "name": f"best RR at stride {stride} / vanilla floor",
                "target": "<= 0.3",
                "measured": f"{b['codec']}: {_interval_text(ratio)}",
                "value": ratio["mean"],
                "met": ratio["mean"] <= 0.3,
            }
        )
    out += checks
    if 8 in strides and 4 in strides:
        b, am = best(rr, 8), best([s for s in base if s["codec"] == vanilla], 4)
        if b is not None and am is not None:
            out.append(
                {
                    "name": "best RR at stride 8 vs argmax at stride 4 (px)",
                    "target": "RR < argmax",
                    "measured": f"{b['codec']} {_interval_text(stats_of(b))} vs argmax {_interval_text(stats_of(am))}",
                    "value": b["mean_error_px"] / am["mean_error_px"],
                    "met": b["mean_error_px"] < am["mean_error_px"],
                }
            )
    if len(strides) >= 2:
        lo, hi = strides[0], strides[-1]
        b = best(rr, hi)
        if b is not None:
            fine, coarse = (
                _per_seed(rows, b["codec"], lo, base_input),
                _per_seed(rows, b["codec"], hi, base_input),
            )
            ratios = [coarse[s] / fine[s] for s in sorted(set(fine) & set(coarse))]
            if ratios:
                st = sweep_stats.mean_interval(ratios)
                out.append(
                    {
                        "name": f"RR stride {hi} / stride {lo} error ratio ({b['codec']})",
                        "target": "<= 3.0",
                        "measured": _interval_text(st),
                        "value": st["mean"],
                        "met": st["mean"] <= 3.0,
                    }
                )
    if strides:
        b = best(base, strides[0])
        if b is not None and not math.isnan(b["error_over_bound"]):
            st = {
                "mean": b["error_over_bound"],
                "low": b["error_over_bound_low"],
                "high": b["error_over_bound_high"],
                "half_width": (b["error_over_bound_high"] - b["error_over_bound_low"]) / 2,
            }
            out.append(
                {
                    "name": f"best codec at stride {strides[0]} ({b['codec']}): RMS error / Cramer-Rao bound",
                    "target": "<= 5",
                    "measured": _interval_text(st, 2),
                    "value": st["mean"],
                    "met": st["mean"] <= 5.0,
                }
            )
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else (f"{value:.4f}" if abs(value) < 1 else f"{value:.3f}")
    return str(value)


def _with_interval(row: dict, key: str, digits: int = 3) -> str:
    mean, low, high = row[key], row[f"{key}_low"], row[f"{key}_high"]
    if math.isnan(mean):
        return "-"
    if math.isnan(low):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


SUMMARY_HEADER = [
    "codec / decoder", "stride", "input", "error (px) [95 %]", "x argmax@ref", "jitter sd (px)", "x bound",
    "floor (px)", "GFLOPs", "x FLOPs", "CPU ms/img", "T", "seeds",
]  # fmt: skip


def _summary_line(r: dict) -> list[str]:
    return [
        r["codec"],
        str(r["stride"]),
        str(r["input"]),
        _with_interval(r, "mean_error_px"),
        _fmt(r["error_vs_ref"]),
        _with_interval(r, "jitter_sd_px"),
        _with_interval(r, "error_over_bound", 1),
        f"{r['floor_px']:.2f}",
        f"{r['gflops']:.3f}",
        _fmt(r["gflops_vs_ref"]),
        f"{r['latency_ms_cpu']:.2f}",
        "-" if math.isnan(r["temperature"]) else f"{r['temperature']:.2f}",
        str(r["n"]),
    ]


def _table(header: list[str], body: list[list[str]], markdown: bool) -> list[str]:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        return lines + ["| " + " | ".join(b) + " |" for b in body]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
    return lines + ["  ".join(c.rjust(w) for c, w in zip(b, widths)) for b in body]


def pooled_conditional(conditional: Sequence[dict], codec: str, stride: int, size: int) -> dict:
    """Signed and absolute error per axis and bin of one (codec, stride, input) pooled over seeds (means
    weighted by the keypoint counts), as :func:`trainers.sweep_stats.conditional_error` returns them."""
    picked = [c for c in conditional if (c["codec"], c["stride"], c["input"]) == (codec, stride, size)]
    edges = sorted({c["fraction_low"] for c in picked} | {c["fraction_high"] for c in picked})
    bins = len(edges) - 1
    signed = torch.full((2, bins), math.nan, dtype=torch.float64)
    absolute, count = signed.clone(), torch.zeros(2, bins, dtype=torch.long)
    for axis, name in enumerate("xy"):
        for b in range(bins):
            cells = [c for c in picked if c["axis"] == name and c["fraction_low"] == edges[b] and c["count"]]
            n = sum(c["count"] for c in cells)
            count[axis, b] = n
            if n:
                signed[axis, b] = math.fsum(c["signed_error_cells"] * c["count"] for c in cells) / n
                absolute[axis, b] = math.fsum(c["abs_error_cells"] * c["count"] for c in cells) / n
    return {
        "edges": torch.tensor(edges, dtype=torch.float64),
        "signed": signed,
        "absolute": absolute,
        "count": count,
    }


def conditional_lines(record: dict, markdown: bool = False) -> list[str]:
    """The conditional-error table of the coarsest stride at the base input: per randomized-rounding
    decoder and axis, the signed error (cells) in each bin of the true sub-cell fraction, pooled over seeds."""
    rows = [r for r in record["summary"] if r["input"] == record["base_input"] and "stride" in r["sweep"]]
    if not rows or not record.get("conditional"):
        return []
    stride = max(r["stride"] for r in rows)
    names = [r["codec"] for r in rows if r["stride"] == stride]
    header = None
    body = []
    for name in names:
        table = pooled_conditional(record["conditional"], name, stride, record["base_input"])
        edges = table["edges"].tolist()
        if header is None:
            header = ["codec / decoder", "axis"] + [
                f"{edges[b]:.1f}-{edges[b + 1]:.1f}" for b in range(len(edges) - 1)
            ]
            header += ["mean abs (cells)"]
        for axis, axis_name in enumerate("xy"):
            counts = table["count"][axis].double()
            mean_abs = float(
                (table["absolute"][axis].nan_to_num() * counts).sum() / counts.sum().clamp(min=1)
            )
            body.append(
                [name, axis_name]
                + [("nan" if math.isnan(v) else f"{v:+.3f}") for v in table["signed"][axis].tolist()]
                + [f"{mean_abs:.3f}"]
            )
    title = (
        f"Signed error (cells, prediction - truth) by true sub-cell fraction (0 = cell centre) at stride "
        f"{stride}, input {record['base_input']}, pooled over seeds:"
    )
    return ["", title, ""] + _table(header, body, markdown)


def main_decoders(record: dict) -> set[str]:
    """The decoder that reads each model in the headline and the stride figure: its first listed decoder,
    plus the vanilla reading of the Gaussian maps (``gaussian_argmax``) when the sweep has it."""
    return {m["decoders"][0]["name"] for m in record["sweep"]["models"]} | {"gaussian_argmax"}


def headline_lines(record: dict, markdown: bool = False) -> list[str]:
    """The stride sweep in one table: per model's main decoder (:func:`main_decoders`) the mean error and
    95 % interval at every stride (base input), the jitter and the multiple of the floor at the coarsest
    stride; then the vanilla floor. Every figure is one of the summary's."""
    rows = [
        r
        for r in record["summary"]
        if "stride" in r["sweep"]
        and r["input"] == record["base_input"]
        and r["codec"] in main_decoders(record)
    ]
    if not rows:
        return []
    strides = sorted({r["stride"] for r in rows})
    coarsest = strides[-1]
    names = list(dict.fromkeys(r["codec"] for r in rows))  # the summary's (config) order
    by_key = {(r["codec"], r["stride"]): r for r in rows}
    header = ["codec / decoder"] + [f"stride {s}" for s in strides]
    header += [f"jitter sd at {coarsest} (px)", f"x floor at {coarsest}"]
    body = []
    for name in names:
        cells = [
            _with_interval(by_key[(name, s)], "mean_error_px") if (name, s) in by_key else "-"
            for s in strides
        ]
        last = by_key.get((name, coarsest))
        cells += (
            [_with_interval(last, "jitter_sd_px"), _with_interval(last, "error_over_floor")]
            if last
            else ["-", "-"]
        )
        body.append([name] + cells)
    body.append(
        ["vanilla floor 0.3826 x stride"] + [f"{quantization_floor(s):.2f}" for s in strides] + ["", ""]
    )
    title = (
        f"Headline: the stride sweep at input {record['base_input']} px, each model read by its main decoder "
        "(mean error in px [95 % interval over seeds]):"
    )
    return [title, ""] + _table(header, body, markdown) + [""]


def format_table(record: dict, markdown: bool = False) -> str:
    """The summary table (mean and 95 % interval over seeds), the targets as measured checks, the
    conditional error at the coarsest stride, the machine and the command, as text or Markdown."""
    summary = record["summary"]
    stride_rows = [r for r in summary if "stride" in r["sweep"]]
    input_rows = [r for r in summary if "input" in r["sweep"]]
    lines = headline_lines(record, markdown) + [f"Stride sweep (input {record['base_input']} px):", ""]
    lines += _table(SUMMARY_HEADER, [_summary_line(r) for r in stride_rows], markdown)
    if any(r["input"] != record["base_input"] for r in input_rows):
        stride = record["sweep"].get("input_stride", 4)
        lines += ["", f"Input sweep (stride {stride}):", ""]
        ordered = sorted(input_rows, key=lambda r: (-r["input"], r["codec"]))
        lines += _table(SUMMARY_HEADER, [_summary_line(r) for r in ordered], markdown)
    lines += ["", "Targets (means over seeds; 95 % Student-t intervals in brackets):", ""]
    body = [
        [t["name"], t["target"], t["measured"], {True: "met", False: "NOT met", None: "n/a"}[t["met"]]]
        for t in record["targets"]
    ]
    lines += _table(["check", "target", "measured", "verdict"], body, markdown)
    lines += conditional_lines(record, markdown)
    lines += [
        "",
        "Columns: error = mean Euclidean error (input px) on the unmoved held-out faces; x argmax@ref = that "
        "error / argmax's at the largest input and the finest stride; jitter sd = sd of the error vector over "
        "re-rendered sub-pixel shifts; x bound = RMS error / RMS Cramer-Rao bound; floor = vanilla rounding "
        "floor 0.3826 x stride; GFLOPs = forward, one image (2 per multiply-add); CPU ms/img = median "
        "latency at batch 1 (depends on the load); T = temperature fitted on training maps.",
        "",
        f"machine: {record['machine']}; wall time {record['wall_seconds']:.0f} s, "
        f"process CPU time {record.get('cpu_seconds', float('nan')):.0f} s; "
        f"train set {record['train_size']}, held-out {record['eval_size']} per seed",
    ]
    if record.get("command"):
        lines.append(f"command: {record['command']}")
    return "\n".join(lines)


def write_results(record: dict, folder: Path) -> dict[str, Path]:
    """``sweep.csv`` (the summary: one row per codec, stride and input), ``runs.csv`` (one row per run
    and seed), ``conditional.csv``, ``sweep.json`` (everything), ``sweep.md`` (the tables and targets),
    ``sweep.png`` (error vs stride), ``flops.png`` (NME vs FLOPs) and ``conditional.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {k: folder / f"sweep.{k}" for k in ("csv", "json", "md", "png")}
    paths.update(
        runs=folder / "runs.csv",
        conditional=folder / "conditional.csv",
        flops=folder / "flops.png",
        conditional_png=folder / "conditional.png",
    )
    summary_columns = list(record["summary"][0]) if record["summary"] else []
    for path, rows, columns in (
        (paths["csv"], record["summary"], summary_columns),
        (paths["runs"], record["rows"], COLUMNS),
        (
            paths["conditional"],
            record["conditional"],
            list(record["conditional"][0]) if record["conditional"] else [],
        ),
    ):
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    paths["json"].write_text(json.dumps(_plain(record), indent=2) + "\n")
    paths["md"].write_text(format_table(record, markdown=True) + "\n")
    plot_sweep(record, paths)
    return paths


def _figure_rows(summary: Sequence[dict], keep) -> list[dict]:
    return [
        {**r, "mean": r["mean_error_px"], "low": r["mean_error_px_low"], "high": r["mean_error_px_high"]}
        for r in summary
        if keep(r)
    ]


def plot_sweep(record: dict, paths: dict[str, Path]) -> dict[str, Path]:
    """The figures of :func:`write_results` from the record's summary (mean over seeds, 95 % bands)."""
    summary, base = record["summary"], record["base_input"]
    # One line per model, read by its own decoder (the first listed) plus the vanilla reading of the Gaussian
    # maps: every decoder of every model is in the tables and the conditional figure, 18 lines here are not.
    main = main_decoders(record)
    rows = _figure_rows(
        summary, lambda r: "stride" in r["sweep"] and r["input"] == base and r["codec"] in main
    )
    bounds = [r["rms_bound_px"] for r in rows if not math.isnan(r["rms_bound_px"])]
    bound = math.fsum(bounds) / len(bounds) if bounds else None
    title = f"{record.get('title', 'sweep')}\n{record.get('machine', '')}"
    fig = sweep_stats.figure_error_vs_stride(rows, bound_px=bound, title=title)
    fig.axes[0].title.set_fontsize("small")
    fig.savefig(paths["png"], dpi=90)
    # Error vs FLOPs: the main decoder of each model, one line per sweep (the shared point is on both). In
    # NME, not pixels: a pixel is a larger part of a smaller input's face, so only NME compares inputs.
    main = {m["decoders"][0]["name"] for m in record["sweep"]["models"]}
    flops_rows = []
    nme_rows = [
        {**r, "mean": r["nme"], "low": r["nme_low"], "high": r["nme_high"]}
        for r in summary
        if r["codec"] in main and not math.isnan(r["nme"])
    ]
    for r in nme_rows:
        if "stride" in r["sweep"] and r["input"] == base:
            flops_rows.append({**r, "codec": f"{r['codec']}, strides", "label": f"s{r['stride']}"})
        if "input" in r["sweep"]:
            flops_rows.append({**r, "codec": f"{r['codec']}, inputs", "label": f"{r['input']}px"})
    fig = sweep_stats.figure_error_vs_flops(
        flops_rows, label_key="label", ylabel="NME (error / eye distance)", title="NME vs forward FLOPs"
    )
    fig.savefig(paths["flops"], dpi=90)
    stride_rows = [r for r in summary if "stride" in r["sweep"] and r["input"] == base]
    if stride_rows and record.get("conditional"):
        coarsest = max(r["stride"] for r in stride_rows)
        tables = {
            r["codec"]: pooled_conditional(record["conditional"], r["codec"], coarsest, base)
            for r in stride_rows
            if r["stride"] == coarsest and r["trained_as"] in ("randomized_rounding", "argmax")
        }
        if tables:
            fig = sweep_stats.figure_conditional_error(
                tables, title=f"error conditional on the true sub-cell position, stride {coarsest}"
            )
            fig.savefig(paths["conditional_png"], dpi=80)
    return paths


# ---------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a == "--study" or a.startswith("--study=") for a in argv):  # the studies: trainers.studies
        from .studies.runner import main as study_main

        return study_main(argv)
    p = argparse.ArgumentParser(
        prog="h3r-sweep",
        description="Train the same model at several heatmap strides and input sizes with several codecs "
        "and seeds; tables with intervals, the targets, figures.",
        epilog="overrides: any sweep key, dotted, e.g. strides=[4,16] seeds=[0] base.train.max_steps=100 "
        "base.data.name=wflw base.data.root=~/data/WFLW; valid top-level keys: " + " ".join(SWEEP_KEYS),
    )
    p.add_argument("overrides", nargs="*", help="key=value overrides of the sweep config")
    p.add_argument("--config", help="sweep YAML (default: bundled sweep.yaml; sweep_full.yaml with --full)")
    p.add_argument("--full", action="store_true", help="the full-size sweep (sweep_full.yaml, for a GPU)")
    p.add_argument("--out", help="output folder (default: the config's out_dir, runs/sweep)")
    p.add_argument("--no-progress", action="store_true", help="no progress lines or bars")
    p.add_argument("--study", help="run a study instead (convergence, representation): see trainers.studies")
    args = p.parse_args(argv)
    overrides = list(args.overrides) + ([f"out_dir={args.out}"] if args.out else [])
    try:
        sweep = load_sweep(args.config, overrides, full=args.full)
        command = " ".join(["h3r-sweep", *argv])
        run_sweep(sweep, progress=not args.no_progress, command=command)
    except ValueError as exc:
        print(f"h3r-sweep: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
