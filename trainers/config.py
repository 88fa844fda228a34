"""Experiment configuration as plain data: nested dataclasses, loaded from YAML, overridden by ``key=value``.

A config file only lists what differs from the defaults below, e.g. ``trainers/configs/wflw.yaml``::

    data: {name: wflw, root: ~/data/WFLW}
    codec: {name: randomized_rounding}
    model: {name: hrnet_w18, output_stride: 4}

and the command line overrides any leaf by its dotted path: ``h3r-train wflw.yaml codec.name=gaussian
train.batch_size=32``. Values on the command line are parsed as YAML (``1e-3`` is a float, ``[256, 256]``
a list, ``null`` is ``None``). An unknown key anywhere fails with the list of valid keys, so a typo can
never be silently ignored.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass
class DataConfig:
    """Which dataset to read and how to load it."""

    name: str = "synthetic"  # "synthetic" or a real-format name understood by trainers.data.load_dataset
    root: str | None = None  # folder holding the ORIGINAL files of a real dataset (unused for synthetic)
    train_split: str = "train"
    eval_split: str = "test"
    input_size: list | None = None  # (W, H) network input; None = the dataset's default
    num_workers: int = 0
    options: dict = field(default_factory=dict)  # extra keyword arguments for the dataset constructor


@dataclass
class ModelConfig:
    name: str = "tiny"  # "tiny", "hrnet_w18", "hrnet_w32", "mobilenetv2"
    output_stride: int = 4  # heatmap_size = input_size // output_stride
    head: str = "heatmap"  # "heatmap" or "binary" (two-channel head of the authors' release)
    pretrained: str | None = None  # path to local weights; nothing is ever downloaded


@dataclass
class CodecConfig:
    name: str = "randomized_rounding"  # any of h3r_theory.codecs.available()
    options: dict = field(default_factory=dict)  # e.g. {method: window, radius: 1} or {sigma: 2.0}


@dataclass
class OptimConfig:
    optimizer: str = "adamw"  # "adam" or "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    schedule: str = "cosine"  # "cosine", "step" or "constant"
    warmup_steps: int = 0  # linear warm-up from 0, then the schedule
    milestones: list = field(
        default_factory=list
    )  # "step": fractions of the run (0.5) or step numbers (1000)
    gamma: float = 0.1  # "step": lr factor at each milestone
    min_lr_ratio: float = 0.0  # "cosine": final lr / lr
    grad_clip: float | None = None  # max gradient norm, None = off


@dataclass
class TrainConfig:
    seed: int = 0
    device: str = "auto"  # "auto" (cuda when present), "cpu", "cuda", "cuda:1"
    batch_size: int = 16  # GLOBAL batch size, split evenly across DDP processes
    epochs: int = 1
    max_steps: int | None = None  # when set, overrides epochs
    amp: bool = True  # mixed precision on CUDA (bfloat16/float16 autocast); ignored on CPU
    channels_last: bool = True  # memory format on CUDA; ignored on CPU
    log_every: int = 10  # steps between JSONL/progress-bar loss records
    eval_every: int = 0  # steps between evaluations (0 = only at the end)
    checkpoint_every: int = 0  # steps between checkpoints (0 = only at the end)
    out_dir: str = "runs/default"
    resume: str | None = None  # checkpoint path, or "auto" = out_dir/last.pt when it exists
    progress: bool = True  # tqdm progress bar (rank 0 only)


@dataclass
class EvalConfig:
    batch_size: int = 32
    flip_test: bool = False  # average with the exactly flipped output of the flipped image
    max_samples: int | None = None  # evaluate on the first N samples only (quick checks)
    failure_threshold: float = 0.1  # faces: FR@t and AUC@t on NME
    pckh_threshold: float = 0.5  # MPII
    decode: dict = field(default_factory=dict)  # decoder options for codec.decode, e.g. {method: window}


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    codec: CodecConfig = field(default_factory=CodecConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def valid_keys(cls: type = Config, prefix: str = "") -> list[str]:
    """All dotted leaf keys of a config dataclass, e.g. ``["codec.name", "codec.options", ...]``."""
    keys = []
    for f in dataclasses.fields(cls):
        if _is_section(cls, f.name):
            keys += valid_keys(_resolve(cls, f.name), f"{prefix}{f.name}.")
        else:
            keys.append(prefix + f.name)
    return keys


def _resolve(cls: type, name: str) -> type:
    """The dataclass type of field ``name`` (annotations are strings under ``from __future__``)."""
    return type(getattr(cls(), name))


def _is_section(cls: type, name: str) -> bool:
    return dataclasses.is_dataclass(getattr(cls(), name))


def from_dict(data: dict, cls: type = Config, source: str = "config", prefix: str = "") -> Any:
    """Build ``cls`` from a nested dict, failing on unknown keys with the list of valid ones.

    ``source`` names where the data came from (a file) and ``prefix`` the section, for error messages.
    """
    if data is None:
        data = {}
    section = prefix.rstrip(".") or "the top level"
    if not isinstance(data, dict):
        raise ValueError(
            f"{source}: {section} must be a mapping of keys to values, got {type(data).__name__}: {data!r}"
        )
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown} in {section}; valid keys: {names}")
    kwargs = {}
    for name, value in data.items():
        if _is_section(cls, name):
            kwargs[name] = from_dict(value, _resolve(cls, name), source, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, _annotation(cls, name), f"{source}: {prefix}{name}")
    return cls(**kwargs)


def _annotation(cls: type, name: str) -> str:
    return str(next(f.type for f in dataclasses.fields(cls) if f.name == name))


_SCALARS = {"float": float, "int": int, "bool": bool, "str": str}


def _coerce(value: Any, annotation: str, where: str) -> Any:
    """Check a leaf value against its annotation; numbers written like ``1e-3`` (a string to YAML 1.1)
    become floats, ints become floats where a float is expected. Anything else fails, naming the key."""
    # Annotations are strings (``from __future__ import annotations``): "X | None" marks an optional leaf.
    optional = annotation.endswith(" | None")
    base = annotation[: -len(" | None")] if optional else annotation
    if value is None:
        if optional:
            return None
        raise ValueError(f"{where} must not be null (expected {base})")
    expected = _SCALARS.get(base)
    if expected is None:  # list / dict leaves
        kind = {"list": (list, tuple), "dict": dict}.get(base)
        if kind is not None and not isinstance(value, kind):
            raise ValueError(f"{where} must be a {base}, got {type(value).__name__}: {value!r}")
        return list(value) if base == "list" else value
    if expected is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is not bool and isinstance(value, bool) or not isinstance(value, expected):
        raise ValueError(f"{where} must be {annotation}, got {type(value).__name__}: {value!r}")
    return value


def parse_override(item: str, form: str, example: str) -> tuple[str, str]:
    """Split ``"key.sub=value"`` into ``("key.sub", "value")``; ``form`` and ``example`` go into the error."""
    if "=" not in item:
        raise ValueError(f"override {item!r} must look like {form}=value, e.g. {example}")
    key, text = item.split("=", 1)
    return key.strip(), text


def set_dotted_value(data: dict, key: str, text: str) -> None:
    """Set ``data[a][b][c] = yaml(text)`` for ``key = "a.b.c"``, creating the missing mappings on the way.

    An empty ``text`` sets None. Which keys are valid is the caller's business; this only walks the path.
    """
    parts = key.split(".")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ValueError(f"cannot set {key!r}: {p!r} is not a mapping")
    node[parts[-1]] = yaml.safe_load(text) if text.strip() else None


def apply_overrides(config: dict, overrides: Sequence[str]) -> dict:
    """Apply ``["section.key=value", ...]`` to a nested dict (values parsed as YAML); returns a new dict."""
    config = json.loads(json.dumps(config))  # deep copy of plain data
    all_keys = valid_keys()
    for item in overrides:
        key, text = parse_override(item, "section.key", "train.batch_size=32")
        # dict-valued leaves (data.options, codec.options, eval.decode) accept sub-keys: codec.options.sigma=2
        leaf = next((k for k in all_keys if key == k or key.startswith(k + ".")), None)
        if leaf is None:
            raise ValueError(f"unknown config key {key!r} in override {item!r}; valid keys: {all_keys}")
        set_dotted_value(config, key, text)
    return config


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """Read a YAML config (a path, or a bundled name like ``"synthetic"``), apply overrides, validate.

    The result is a :class:`Config` with every default filled in.
    """
    data: dict = {}
    if path is not None:
        file = resolve_config_path(path)
        data = read_yaml_mapping(file)
        where = str(file)
    else:
        where = "config"
    data = apply_overrides(data, overrides)
    config = from_dict(data, Config, where)
    return validate(config)


def read_yaml_mapping(file: Path) -> dict:
    """The top-level mapping of a YAML file; a ``ValueError`` naming the file otherwise."""
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{file}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{file}: the top level must be a mapping of sections, got {type(data).__name__}")
    return data


def resolve_config_path(path: str | Path) -> Path:
    """A config file path, or the name of a bundled config (``"wflw"`` -> ``trainers/configs/wflw.yaml``)."""
    file = Path(path).expanduser()
    if file.is_file():
        return file
    bundled = CONFIG_DIR / f"{path}.yaml"
    if bundled.is_file():
        return bundled
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    raise ValueError(f"config file {str(path)!r} not found (nor a bundled config; bundled: {names})")


def validate(config: Config) -> Config:
    """Check the values that the engine would otherwise trip on much later."""
    o, t = config.optim, config.train
    if o.optimizer not in ("adam", "adamw"):
        raise ValueError(f"optim.optimizer must be 'adam' or 'adamw', got {o.optimizer!r}")
    if o.schedule not in ("cosine", "step", "constant"):
        raise ValueError(f"optim.schedule must be 'cosine', 'step' or 'constant', got {o.schedule!r}")
    if t.batch_size < 1:
        raise ValueError(f"train.batch_size must be >= 1, got {t.batch_size}")
    if t.max_steps is None and t.epochs < 1:
        raise ValueError(f"train.epochs must be >= 1 (or set train.max_steps), got {t.epochs}")
    if t.max_steps is not None and t.max_steps < 1:
        raise ValueError(f"train.max_steps must be >= 1, got {t.max_steps}")
    if config.model.head not in ("heatmap", "binary"):
        raise ValueError(f"model.head must be 'heatmap' or 'binary', got {config.model.head!r}")
    if config.data.input_size is not None:
        size = config.data.input_size
        if not (
            isinstance(size, (list, tuple))
            and len(size) == 2
            and all(isinstance(v, int) and v > 0 for v in size)
        ):
            raise ValueError(f"data.input_size must be [width, height] positive ints or null, got {size!r}")
    for name in ("data.options", "codec.options", "eval.decode"):
        section, key = name.split(".")
        if not isinstance(getattr(getattr(config, section), key), dict):
            raise ValueError(f"{name} must be a mapping, got {getattr(getattr(config, section), key)!r}")
    return config
