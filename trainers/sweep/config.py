"""The sweep's configuration as plain data: the models, their decoders, the grid; validated."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from h3r_theory import codecs

from ..config import (
    Config,
    apply_section_overrides,
    from_dict,
    read_yaml_mapping,
    resolve_config_path,
)


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
    # "grid": the faces moved by every (dx, dy) of jitter_shifts; "cell": moved along the diagonal by
    # j s / shifts_per_cell px for j < shifts_per_cell (s = the stride): a motion over one whole cell, which
    # gives the displacement slope (trainers.studies.budget.displacement_slope) and a jitter sd that sees a
    # cell-periodic bias at every stride.
    motion: str = "grid"
    shifts_per_cell: int = 4
    noise_draws: int = (
        1  # >= 2: the error budget over the set's own image + (noise_draws - 1) fresh noise draws
    )
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
    if config.motion not in ("grid", "cell"):
        raise ValueError(f"{source}: motion must be 'grid' or 'cell', got {config.motion!r}")
    for key, low in (("shifts_per_cell", 2), ("noise_draws", 1)):
        value = getattr(config, key)
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
            raise ValueError(f"{source}: {key} must be an int >= {low}, got {value!r}")
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
    from ..config import validate

    return validate(from_dict(data, Config, f"{source}: base"))


def set_dotted(data: dict, overrides: Sequence[str]) -> dict:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a nested dict; returns a new dict.

    The first part must be a sweep key (``strides``, ``base``, ...); the result is validated afterwards,
    so a typo below ``base`` fails there with the list of valid keys.
    """
    return apply_section_overrides(
        data, overrides, SWEEP_KEYS, "sweep", "strides=[4,16] or base.train.max_steps=100"
    )


def load_sweep(path: str | None = None, overrides: Sequence[str] = (), full: bool = False) -> SweepConfig:
    """Read a sweep YAML (a path or a bundled name; default ``sweep``, or ``sweep_full`` with ``full``)."""
    file = resolve_config_path(path or ("sweep_full" if full else "sweep"))
    return sweep_from_dict(set_dotted(read_yaml_mapping(file), overrides), str(file))
