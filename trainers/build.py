"""Builders: a :class:`~trainers.config.Config` -> datasets, codec, network, loss, optimizer and schedule.

Each function reads one section of the config and fails with a ``ValueError`` naming the key when the
setting cannot work (an input size the backbone cannot tile, a missing dataset root), before any data is
read. The engine (:mod:`trainers.engine`), the evaluation entry point and the resolution sweep all build
through these functions, so a setting means the same thing everywhere.
"""

from __future__ import annotations

import inspect
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from h3r_theory import codecs, conventions, losses
from h3r_theory.codecs import HeatmapCodec

from .config import Config, DataConfig, OptimConfig


def check_options(target: Callable, options: dict, key: str, fixed: Sequence[str] = ()) -> None:
    """Refuse an option ``target`` does not take, naming the config key (``codec.options.sigmaa``) and
    listing the valid names; ``fixed`` are parameters the builder itself passes (not user options)."""
    params = inspect.signature(target).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    valid = [n for n, p in params.items() if n not in ("self", *fixed) and p.kind is not p.VAR_POSITIONAL]
    unknown = [name for name in options if name not in valid]
    if unknown:
        raise ValueError(f"unknown option {key}.{unknown[0]}; valid options: {', '.join(valid)}")


def build_datasets(config: Config, splits: Sequence[str] = ("train", "eval")) -> list:
    """The datasets of ``config.data`` for the requested roles (``"train"`` and/or ``"eval"``).

    ``synthetic`` is generated (options: ``num_samples`` per split as ``num_train``/``num_eval``, and any
    :class:`~trainers.data.synthetic.SyntheticLandmarks` option); every other name is read from its
    ORIGINAL files under ``data.root`` by ``trainers.data.load_dataset``, whose error says where the files
    are expected when they are missing.
    """
    d = config.data
    out = []
    for role in splits:
        split = d.train_split if role == "train" else d.eval_split
        if d.name == "synthetic":
            from .data.synthetic import SyntheticLandmarks

            options = dict(d.options)
            num_train, num_eval = options.pop("num_train", 2048), options.pop("num_eval", 256)
            check_options(SyntheticLandmarks, options, "data.options", fixed=("num_samples", "split"))
            if d.input_size is not None:
                options["image_size"] = tuple(d.input_size)
            options.setdefault("seed", config.train.seed)
            out.append(SyntheticLandmarks(num_train if role == "train" else num_eval, split=split, **options))
        else:
            out.append(_real_dataset(d, split, train=(role == "train")))
    return out


def _real_dataset(d: DataConfig, split: str, train: bool):
    """Records of a real dataset (``trainers.data.registry.load_dataset``) wrapped in a LandmarkDataset.

    ``data.options`` go to :class:`~trainers.data.dataset.LandmarkDataset` (padding, augmentation ranges).
    A missing root or file becomes a ``ValueError`` that keeps the loader's "expected at ..." message.
    """
    from .data.dataset import LandmarkDataset, check_normalizers
    from .data.flip_pairs import flip_pairs_for
    from .data.registry import load_dataset
    from .data.specs import get_spec

    if d.root is None:
        raise ValueError(
            f"data.root is not set: dataset {d.name!r} is read from its original files; "
            f"pass data.root=/path/to/{d.name} (nothing is downloaded)"
        )
    try:
        # check_images: every missing image is reported now, all at once, not hours into training
        records = load_dataset(d.name, Path(d.root).expanduser(), split, check_images=True)
    except FileNotFoundError as exc:
        one_line = "; ".join(part.strip() for part in str(exc).splitlines() if part.strip())
        raise ValueError(f"dataset {d.name!r} (split {split!r}) not found: {one_line}") from None
    if not records:
        raise ValueError(
            f"dataset {d.name!r} split {split!r} under {d.root} has no records ({records.summary()})"
        )
    options = dict(d.options)
    check_options(LandmarkDataset, options, "data.options", fixed=("records", "train", "flip_pairs"))
    if d.input_size is not None:
        options["input_size"] = tuple(d.input_size)
    flip_pairs = flip_pairs_for(d.name, records[0].num_keypoints)
    dataset = LandmarkDataset(records, train=train, flip_pairs=flip_pairs, **options)
    if not train and get_spec(d.name).metric in ("nme", "pckh"):
        check_normalizers(dataset.records)  # now, not in the final evaluation after training
    dataset.load_summary = records.summary()  # what the loader skipped, and why
    if get_spec(d.name).metric == "ap":
        dataset.annotation_file = records.source  # the ground truth that COCO AP is computed against
    return dataset


def report_skips(prog: str, datasets) -> None:
    """One note on stderr per dataset whose loader skipped or merged records (its ``load_summary``: how
    many, why, and where), so that a dropped person or a duplicate line is never silent."""
    for dataset in datasets:
        summary = getattr(dataset, "load_summary", "")
        if summary and not summary.endswith("skipped: none"):
            print(f"{prog}: note: {summary}", file=sys.stderr)


def heatmap_size_for(input_size: Sequence[int], output_stride: int) -> tuple[int, int]:
    """``(W // s, H // s)``; the input must be a multiple of the stride so that the grids align exactly."""
    W, H = conventions.check_size(input_size, "input_size")
    if W % output_stride or H % output_stride:
        raise ValueError(
            f"input_size {(W, H)} must be divisible by model.output_stride={output_stride} "
            "(otherwise heatmap cells and input pixels do not tile the same box)"
        )
    return W // output_stride, H // output_stride


def build_codec(config: Config, input_size: Sequence[int]) -> HeatmapCodec:
    """The codec named in ``config.codec`` for this input size and the model's output stride."""
    heatmap_size = heatmap_size_for(input_size, config.model.output_stride)
    if config.codec.name in codecs.CODECS:
        check_options(
            codecs.CODECS[config.codec.name],
            config.codec.options,
            "codec.options",
            ("input_size", "heatmap_size"),
        )
    try:
        return codecs.build(
            config.codec.name, input_size=tuple(input_size), heatmap_size=heatmap_size, **config.codec.options
        )
    except TypeError as exc:
        raise ValueError(f"codec.options={config.codec.options}: {exc}") from None


# The logit magnitude check_evaluation decodes (x 0.95): a trained heatmap network's logits stay far below
# it, so decoder options that pass on it hold on real outputs.
LOGIT_PROBE = 1e4


def check_evaluation(config: Config, codec: HeatmapCodec, num_keypoints: int) -> None:
    """Fail now, not after training, when the evaluation settings cannot run: decode a small map with
    ``eval.decode`` (unknown or invalid decoder options), and refuse ``eval.flip_test`` under a convention
    whose flipped heatmap is not exactly aligned (see ``trainers.evaluate.predict``)."""
    decode = dict(config.eval.decode)
    check_options(type(codec).decode, decode, "eval.decode", fixed=("heatmaps", "activation"))
    w, h = codec.heatmap_size
    g = torch.Generator().manual_seed(0)
    maps = 0.05 + 0.9 * torch.rand(1, num_keypoints, h, w, generator=g)
    activation = "probabilities" if config.model.head == "binary" else codec.default_activation
    # Logits as large as a trained network's may be: a decoder option (a temperature) that overflows on
    # them fails now; the same check at decode time would fail only in the final evaluation.
    probes = [maps] if activation != "logits" else [maps, LOGIT_PROBE * maps]
    try:
        for probe in probes:
            codec.decode(probe, activation=activation, **decode)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"eval.decode={decode}: {exc}") from None
    if config.eval.flip_test:
        offset = conventions.heatmap_flip_offset(codec.input_size, codec.heatmap_size, codec.convention)
        if offset != 0.0:
            raise ValueError(
                f"eval.flip_test=true is exact only under the pixel_center/udp conventions; codec convention "
                f"{codec.convention!r} puts the flipped heatmap {offset:.3f} cells off"
            )


def build_network(config: Config, num_keypoints: int, width: int | None = None) -> nn.Module:
    """``trainers.models.build_model`` with the settings of ``config.model``.

    ``width`` sets the channel width of backbones that take one (the tiny CNN; the resolution sweep
    shrinks it); None keeps the backbone's default. Fails here, before any data is read, when
    ``data.input_size`` is not a multiple of what the backbone needs (its coarsest branch stride), rather
    than at the first forward pass.
    """
    from .models import build_model

    m = config.model
    model = build_model(
        m.name,
        num_keypoints=num_keypoints,
        output_stride=m.output_stride,
        head=m.head,
        pretrained=m.pretrained,
        **({} if width is None else {"width": width}),
    )
    multiple = getattr(model, "input_multiple", 1)
    W, H = config.data.input_size or (0, 0)  # None: the dataset's default size, which the dataset checks
    if W % multiple or H % multiple:
        raise ValueError(
            f"data.input_size {(W, H)} must be a multiple of {multiple} for model.name={m.name!r} "
            f"(its coarsest feature stride); e.g. {(W // multiple * multiple or multiple, H // multiple * multiple or multiple)}"
        )
    return model


def make_optimizer(model: nn.Module, optim: OptimConfig) -> torch.optim.Optimizer:
    """Adam or AdamW. Weight decay skips biases and normalisation weights (1-D tensors): decaying them
    only fights the normalisation and is the usual recipe (nanoGPT does the same split)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": optim.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    cls = torch.optim.AdamW if optim.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=optim.lr, betas=tuple(optim.betas))


def lr_factor(step: int, total_steps: int, optim: OptimConfig) -> float:
    """Learning-rate multiplier at ``step`` (0-based): linear warm-up, then cosine, step or constant."""
    if step < optim.warmup_steps:
        return (step + 1) / optim.warmup_steps
    if optim.schedule == "constant":
        return 1.0
    if optim.schedule == "cosine":
        span = max(1, total_steps - optim.warmup_steps)
        progress = min(1.0, (step - optim.warmup_steps) / span)
        return optim.min_lr_ratio + (1 - optim.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    # "step": milestones given as fractions of the run (< 1) or as step numbers.
    milestones = [m * total_steps if m < 1 else m for m in optim.milestones]
    return optim.gamma ** sum(step >= m for m in milestones)


def make_scheduler(
    optimizer: torch.optim.Optimizer, optim: OptimConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step scheduler applying :func:`lr_factor` (call ``scheduler.step()`` after each optimizer step)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total_steps, optim))


def loss_for(codec: HeatmapCodec, head: str) -> tuple[str, Callable]:
    """The loss of a codec: its default loss for a heatmap head; per-cell BCE
    (:func:`h3r_theory.losses.binary_cross_entropy`) for this package's two-channel ``binary`` head
    (B, K, 2, h, w), whose channel 1 then reads as a probability. That head has the authors' H3R head's
    outputs in another order (see ``trainers.models.layers.KeypointHead``); the release's loss is unknown."""
    if head == "binary":
        return "binary_cross_entropy", losses.LOSSES["binary_cross_entropy"]
    return losses.default_loss(codec)
