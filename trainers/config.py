"""Experiment configuration as plain data: nested dataclasses, loaded from YAML, overridden by ``key=value``.

A config file only lists what differs from the defaults below, e.g. ``trainers/configs/wflw.yaml``::

    data: {name: wflw, root: ~/data/WFLW}
    codec: {name: randomized_rounding}
    model: {name: hrnet_w18, output_stride: 4}

and the command line overrides any leaf by its dotted path: ``h3r-train wflw.yaml codec.name=gaussian
train.batch_size=32``. Values on the command line are parsed as YAML (``1e-3`` is a float, ``[256, 256]``
a list, ``null`` is ``None``). An unknown key anywhere fails with the list of valid keys, so a typo can
never be silently ignored, and every numeric value is checked against its range in :data:`RANGES` when
the config is read (``optim.gamma=-1`` fails there, naming the key and the file, instead of training
uphill). YAML whose aliases would expand past :data:`MAX_EXPANDED_VALUES` values is refused.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
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
    head: str = "heatmap"  # "heatmap" or "binary": 2 logits per keypoint and cell (see models.layers)
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
    # decoder options for codec.decode, e.g. {method: window}; evaluation's default score is "mass"
    decode: dict = field(default_factory=dict)


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


# A YAML alias is a reference: ``b: [*a, *a]`` stores ``a`` once, but every consumer that copies or walks
# the data (the overrides' deep copy, ``to_json``) expands it. Nested aliases grow exponentially with the
# depth (tests/test_config.py: under 400 bytes, six levels of nine, over 9**6 = 531441 values; each more
# level multiplies by nine), so the expanded size is counted on the shared graph,
# without expanding it, and refused past this many values. The largest bundled config holds well under
# a thousand (tests/test_config.py checks every bundled file against it).
MAX_EXPANDED_VALUES = 100_000


def check_expanded_size(data: Any, where: str, limit: int = MAX_EXPANDED_VALUES) -> None:
    """Raise ``ValueError`` naming ``where`` when ``data`` (parsed YAML) would expand past ``limit``
    values, or refers to itself (a recursive alias, which no copy or JSON dump can expand).

    Each shared mapping or list is measured once (memoised by identity), so the check costs one visit per
    distinct node even when the expansion is astronomically large.
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Any) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ValueError(f"{where}: a YAML alias refers to itself (recursive data); remove the cycle")
        active.add(key)
        children = list(node.keys()) + list(node.values()) if isinstance(node, dict) else node
        total = 1
        for child in children:
            total += size(child)
            if total > limit:
                raise ValueError(
                    f"{where}: the YAML expands to more than {limit} values (nested aliases '*name' are "
                    "copied out in full); write the values out or use fewer alias levels"
                )
        active.discard(key)
        sizes[key] = total
        return total

    size(data)


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` refusing a key written twice in one mapping.

    Plain YAML keeps the last of two equal keys: a repeated ``train:`` section silently drops the whole first
    one (its ``out_dir`` included). Keys merged in with ``<<: *alias`` may still be overridden, as YAML means.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first_line: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                seen = first_line.get(key)
            except TypeError:  # an unhashable key: SafeLoader refuses it below, with its own message
                continue
            if seen is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first written at line {seen})", key_node.start_mark
                )
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        # Python refuses to convert an integer of more than 4300 digits (a ValueError PyYAML lets through,
        # naming neither the file nor the key); a YAML error keeps the line.
        try:
            return super().construct_yaml_int(node)
        except ValueError as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"integer too long to read ({exc})", node.start_mark
            ) from None


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)


def parse_yaml(text: str) -> Any:
    """``yaml.safe_load(text)``, refusing duplicate keys (``_StrictLoader``)."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)


def yaml_error_line(exc: yaml.YAMLError) -> str:
    """A YAML error in one line, ``line L, column C: problem (context)``: PyYAML's own message spans 4-5
    lines, with a copy of the offending line and a caret."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return where + problem + (f" ({context})" if context else "")


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
    try:
        value = parse_yaml(text) if text.strip() else None
        check_expanded_size(value, f"override {key}")
    except yaml.YAMLError as exc:
        shown = text if len(text) <= 60 else text[:40] + f"... ({len(text)} characters)"
        raise ValueError(
            f"override {key}={shown!r}: the value is not valid YAML: {yaml_error_line(exc)}"
        ) from None
    except RecursionError:
        raise ValueError(f"override {key}: the value is nested too deeply to read") from None
    node[parts[-1]] = value


def apply_section_overrides(
    data: dict, overrides: Sequence[str], sections: Sequence[str], what: str, example: str
) -> dict:
    """A copy of ``data`` with ``key.sub=value`` overrides applied (values parsed as YAML), for configs whose
    top-level keys are listed in ``sections`` (a sweep's, a study's) and validated after: the first part of
    each key must be one of them, else ValueError naming ``what`` and the valid keys; ``example`` shows the
    form in a malformed override's error."""
    data = json.loads(json.dumps(data))  # deep copy of plain data
    for item in overrides:
        key, text = parse_override(item, "key", example)
        if key.split(".")[0] not in sections:
            raise ValueError(
                f"unknown {what} key {key.split('.')[0]!r} in override {item!r}; valid keys: {list(sections)}"
            )
        set_dotted_value(data, key, text)
    return data


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

    The result is a :class:`Config` with every default filled in. An error names the file when the file's
    own values are at fault, and the command line when the file alone is valid and an override is not.
    """
    data: dict = {}
    where = "command line"
    if path is not None:
        file = resolve_config_path(path)
        data = read_yaml_mapping(file)
        where = str(file)
    full = apply_overrides(data, overrides)
    _check_run_length(full, overrides, where)
    try:
        return _build(full, where if path is not None else None)
    except ValueError as err:
        if path is None or not overrides or not _builds(data, where):
            raise
        raise ValueError(
            str(err).replace(f"{where}: ", "command line: ", 1)
        ) from None  # the file alone builds


def _builds(data: dict, where: str) -> bool:
    try:
        _build(data, where)
    except ValueError:
        return False
    return True


def _build(data: dict, where: str | None) -> Config:
    """``from_dict`` then ``validate``, errors prefixed with ``where`` (a file, ``"command line"`` or None)."""
    return validate(from_dict(data, Config, where or "config"), where)


def _check_run_length(full: dict, overrides: Sequence[str], where: str) -> None:
    """Refuse ``train.epochs`` where ``train.max_steps`` would silently win over it.

    ``max_steps`` overrides ``epochs`` when set: that is what a ``train.max_steps=...`` override on a config
    that trains by epochs means. The other way round (``train.epochs=...`` over a file's ``max_steps``, or
    both in one place) the epochs would be ignored without a word.
    """
    train = full.get("train")
    if not isinstance(train, dict) or train.get("epochs") is None or train.get("max_steps") is None:
        return
    on_line = {item.split("=", 1)[0].strip() for item in overrides}
    epochs, steps = train["epochs"], train["max_steps"]
    if "train.max_steps" in on_line and "train.epochs" not in on_line:
        return  # the command line's max_steps wins over the file's epochs, as documented
    if "train.epochs" in on_line and "train.max_steps" not in on_line:
        raise ValueError(
            f"command line: train.epochs={epochs!r} would be ignored: {where} sets train.max_steps={steps!r}, "
            "which wins; add train.max_steps=null to train by epochs"
        )
    source = "command line" if "train.epochs" in on_line else where
    raise ValueError(
        f"{source}: train.epochs={epochs!r} and train.max_steps={steps!r} are both set (max_steps would win "
        "and epochs be ignored); set one of them"
    )


def read_yaml_mapping(file: Path) -> dict:
    """The top-level mapping of a UTF-8 YAML file, its aliases' expanded size checked; a ``ValueError``
    naming the file otherwise (used by :func:`load_config` and the sweep)."""
    try:
        text = file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{file}: not a UTF-8 text file ({exc})") from None
    except OSError as exc:
        raise ValueError(f"{file}: cannot read the config file ({exc.strerror or exc})") from None
    try:
        data = parse_yaml(text) or {}
        check_expanded_size(data, str(file))
    except yaml.YAMLError as exc:
        raise ValueError(f"{file}: not valid YAML: {yaml_error_line(exc)}") from None
    except RecursionError:
        raise ValueError(f"{file}: the YAML is nested too deeply to read") from None
    if not isinstance(data, dict):
        raise ValueError(f"{file}: the top level must be a mapping of sections, got {type(data).__name__}")
    return data


def resolve_config_path(path: str | Path) -> Path:
    """A config file path, or the name of a bundled config (``"wflw"`` -> ``trainers/configs/wflw.yaml``)."""
    file = Path(path).expanduser()
    if file.is_file():
        return file
    # A bare name is a bundled config even where a folder of that name sits in the current directory (a
    # dataset folder ./wflw is common): a folder is never a config file, so it cannot be what was meant.
    bundled = CONFIG_DIR / f"{path}.yaml"
    bare_name = Path(path).name == str(path)
    if file.is_dir() and not (bare_name and bundled.is_file()):
        raise ValueError(f"config file expected at {file}, but that is a folder")
    if bundled.is_file():
        return bundled
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    raise ValueError(f"config file {str(path)!r} not found (nor a bundled config; bundled: {names})")


@dataclass(frozen=True)
class Range:
    """Allowed interval of a numeric leaf; ``None`` = unbounded on that side; ``open`` ends exclude."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        # Written so that NaN (every comparison False) is outside every range.
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return bool(above and below)

    def __str__(self) -> str:
        left = "" if self.low is None else f"{'>' if self.low_open else '>='} {self.low:g}"
        right = "" if self.high is None else f"{'<' if self.high_open else '<='} {self.high:g}"
        return " and ".join(p for p in (left, right) if p) or "any finite number"


# Every numeric leaf of Config and the values it may take (tests/test_config.py checks that none is
# missing). A value outside its range is an error at load time, naming the key, because most of them
# otherwise fail silently: a negative grad_clip, gamma or min_lr_ratio flips the sign of the update
# (gradient ascent with exit code 0), a negative weight_decay or warmup_steps quietly changes the schedule.
RANGES: dict[str, Range] = {
    "data.num_workers": Range(0),
    "model.output_stride": Range(1),
    "optim.lr": Range(0, low_open=True),
    "optim.weight_decay": Range(0),
    "optim.warmup_steps": Range(0),
    "optim.gamma": Range(0, 1, low_open=True),  # a decay factor: > 1 would grow the lr at each milestone
    "optim.min_lr_ratio": Range(0, 1),
    "optim.grad_clip": Range(0, low_open=True),  # None = off; 0 would zero every update
    "train.seed": Range(0, 2**63, high_open=True),  # the 63-bit seeds of trainers.distributed
    "train.batch_size": Range(1),
    "train.epochs": Range(0),  # >= 1 unless train.max_steps is set (checked below)
    "train.max_steps": Range(1),
    "train.log_every": Range(1),
    "train.eval_every": Range(0),  # 0 = only at the end
    "train.checkpoint_every": Range(0),  # 0 = only at the end
    "eval.batch_size": Range(1),
    "eval.max_samples": Range(1),
    "eval.failure_threshold": Range(0, 1, low_open=True),  # a fraction of the NME normaliser
    "eval.pckh_threshold": Range(0, 1, low_open=True),  # a fraction of the head size
}
# Range of each element of the list-valued numeric leaves.
LIST_RANGES: dict[str, tuple[int | None, Range]] = {
    "optim.betas": (2, Range(0, 1, high_open=True)),  # Adam's moment decays: beta = 1 never forgets
    "optim.milestones": (None, Range(0, low_open=True)),  # fractions of the run (< 1) or step numbers
}
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")


def _leaf(config: Config, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_ranges(config: Config) -> None:
    for key, allowed in RANGES.items():
        value = _leaf(config, key)
        if value is None:  # an optional leaf left off (the type check already refused null elsewhere)
            continue
        if not (math.isfinite(value) and allowed.contains(value)):
            raise ValueError(f"{key} must be {allowed}, got {value!r}")
    for key, (length, allowed) in LIST_RANGES.items():
        values = _leaf(config, key)
        if length is not None and len(values) != length:
            raise ValueError(f"{key} must be a list of {length} numbers, got {values!r}")
        for value in values:
            if not (_is_number(value) and math.isfinite(value) and allowed.contains(value)):
                raise ValueError(f"{key} must hold numbers {allowed}, got {values!r}")


def validate(config: Config, where: str | None = None) -> Config:
    """Check every value the engine would otherwise trip on much later, or silently misuse.

    Errors name the key (``optim.gamma must be > 0 and <= 1, got -1.0``), prefixed with ``where`` (the
    config file) when given.
    """
    try:
        _validate(config)
    except ValueError as err:
        if where:
            raise ValueError(f"{where}: {err}") from None
        raise
    return config


# One 3 x 4096 x 4096 float32 image is 201 MB before the network's activations; a larger side is refused
# when the config is read, not by an allocation failure after the run folder was written.
MAX_INPUT_SIDE = 4096


def _validate(config: Config) -> None:
    o, t = config.optim, config.train
    if o.optimizer not in ("adam", "adamw"):
        raise ValueError(f"optim.optimizer must be 'adam' or 'adamw', got {o.optimizer!r}")
    if o.schedule not in ("cosine", "step", "constant"):
        raise ValueError(f"optim.schedule must be 'cosine', 'step' or 'constant', got {o.schedule!r}")
    _check_ranges(config)
    if t.max_steps is None and t.epochs < 1:
        raise ValueError(f"train.epochs must be >= 1 (or set train.max_steps), got {t.epochs}")
    if not DEVICE_PATTERN.fullmatch(t.device):
        raise ValueError(f"train.device must be 'auto', 'cpu', 'cuda' or 'cuda:<index>', got {t.device!r}")
    if not t.out_dir.strip():
        raise ValueError("train.out_dir must be a folder path, got an empty string")
    if config.model.head not in ("heatmap", "binary"):
        raise ValueError(f"model.head must be 'heatmap' or 'binary', got {config.model.head!r}")
    if config.data.input_size is not None:
        size = config.data.input_size
        if not (
            isinstance(size, (list, tuple))
            and len(size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
        ):
            raise ValueError(f"data.input_size must be [width, height] positive ints or null, got {size!r}")
        if max(size) > MAX_INPUT_SIDE:
            raise ValueError(
                f"data.input_size {list(size)}: each side must be <= {MAX_INPUT_SIDE} px (a batch of such "
                "images, their activations and heatmaps could not be allocated)"
            )
        stride = config.model.output_stride
        if size[0] % stride or size[1] % stride:
            raise ValueError(
                f"data.input_size {list(size)} must be divisible by model.output_stride={stride} "
                "(the heatmap is input_size / output_stride)"
            )
    for name in ("data.options", "codec.options", "eval.decode"):
        if not isinstance(_leaf(config, name), dict):
            raise ValueError(f"{name} must be a mapping, got {_leaf(config, name)!r}")
