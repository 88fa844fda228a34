"""Train and evaluate heatmap models with any codec: one file, to be read top to bottom.

The data flow of every step (see DESIGN.md)::

    batch of samples -> model(images) -> outputs (B, K, h, w)
                     -> codec.encode(keypoints) on the model's device, seeded per step -> targets
                     -> default_loss(codec)(outputs, targets) -> backward -> optimizer + schedule
    evaluation:  outputs (optionally averaged with the exactly flipped output of the flipped image)
                 -> codec.decode(outputs, activation=codec.default_activation) -> input pixels
                 -> inverse of the sample's affine "matrix" -> ORIGINAL pixels -> h3r_theory.metrics

Public, reusable pieces (the resolution sweep builds on them):

* :func:`train` ``(config) -> RunResult``: the whole run, with checkpoints, resume, logs and a curve;
* :func:`evaluate` ``(model, codec, dataset, ...) -> dict``: metrics of a model on a dataset, with an
  optional flip test and an optional sub-pixel translation of the inputs (``shift``), which is how the
  sweep measures the sub-pixel behaviour of each codec;
* :func:`predict` ``(model, codec, images) -> (coords, scores)``; :func:`build_codec`,
  :func:`build_datasets`, :func:`build_network`, :func:`make_optimizer`, :func:`make_scheduler`.

Reproducibility: with a fixed seed on CPU a run is bit-for-bit deterministic, and a run that is stopped
and resumed from its checkpoint ends with the same parameters as an uninterrupted one (tested). The data
order is a pure function of (seed, epoch), the random targets of randomized rounding come from a
generator seeded by (seed, step, rank), and the checkpoint holds every other piece of state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from h3r_theory import codecs, conventions, losses
from h3r_theory.codecs import HeatmapCodec

from . import checkpoint as ckpt
from . import distributed as dist_utils
from .config import Config

# The sample's "matrix" (original -> input pixels) is built and inverted by the data transforms; evaluation
# maps predictions back with the very same functions (re-exported here for the sweep and the notebooks).
from .data.transforms import invert as invert_affine
from .data.transforms import transform_points as apply_affine
from .distributed import DistInfo
from .logging_utils import JsonlLogger, plot_curves, read_jsonl


@dataclasses.dataclass
class RunResult:
    """What :func:`train` returns.

    ``history`` holds the records written to ``metrics.jsonl``; ``final`` the last evaluation (empty when
    the run was stopped early); ``checkpoint`` the last checkpoint written (``out_dir/last.pt``).
    """

    config: Config
    model: nn.Module
    codec: HeatmapCodec
    out_dir: Path
    steps: int
    seconds: float
    history: list = dataclasses.field(default_factory=list)
    final: dict = dataclasses.field(default_factory=dict)
    checkpoint: Path | None = None


# ---------------------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------------------


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
            if d.input_size is not None:
                options["image_size"] = tuple(d.input_size)
            options.setdefault("seed", config.train.seed)
            out.append(SyntheticLandmarks(num_train if role == "train" else num_eval, split=split, **options))
        else:
            out.append(_real_dataset(d, split, train=(role == "train")))
    return out


def _real_dataset(d, split: str, train: bool):
    """Records of a real dataset (``trainers.data.registry.load_dataset``) wrapped in a LandmarkDataset.

    ``data.options`` go to :class:`~trainers.data.dataset.LandmarkDataset` (padding, augmentation ranges).
    A missing root or file becomes a ``ValueError`` that keeps the loader's "expected at ..." message.
    """
    from .data.dataset import LandmarkDataset
    from .data.flip_pairs import flip_pairs_for
    from .data.registry import load_dataset

    if d.root is None:
        raise ValueError(
            f"data.root is not set: dataset {d.name!r} is read from its original files; "
            f"pass data.root=/path/to/{d.name} (nothing is downloaded)"
        )
    try:
        records = load_dataset(d.name, Path(d.root).expanduser(), split)
    except FileNotFoundError as exc:
        raise ValueError(f"dataset {d.name!r} (split {split!r}) not found: {exc}") from exc
    if not records:
        raise ValueError(
            f"dataset {d.name!r} split {split!r} under {d.root} has no records ({records.summary()})"
        )
    options = dict(d.options)
    if d.input_size is not None:
        options["input_size"] = tuple(d.input_size)
    flip_pairs = flip_pairs_for(d.name, records[0].num_keypoints)
    dataset = LandmarkDataset(records, train=train, flip_pairs=flip_pairs, **options)
    dataset.load_summary = records.summary()  # what the loader skipped, and why
    if d.name == "coco":
        dataset.annotation_file = records.source  # the ground truth that COCO AP is computed against
    return dataset


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
    return codecs.build(
        config.codec.name, input_size=tuple(input_size), heatmap_size=heatmap_size, **config.codec.options
    )


def build_network(config: Config, num_keypoints: int) -> nn.Module:
    """``trainers.models.build_model`` with the settings of ``config.model``.

    Fails here, before any data is read, when ``data.input_size`` is not a multiple of what the backbone
    needs (its coarsest branch stride), rather than at the first forward pass.
    """
    from .models import build_model

    m = config.model
    model = build_model(
        m.name,
        num_keypoints=num_keypoints,
        output_stride=m.output_stride,
        head=m.head,
        pretrained=m.pretrained,
    )
    multiple = getattr(model, "input_multiple", 1)
    W, H = config.data.input_size or (0, 0)  # None: the dataset's default size, which the dataset checks
    if W % multiple or H % multiple:
        raise ValueError(
            f"data.input_size {(W, H)} must be a multiple of {multiple} for model.name={m.name!r} "
            f"(its coarsest feature stride); e.g. {(W // multiple * multiple or multiple, H // multiple * multiple or multiple)}"
        )
    return model


def make_optimizer(model: nn.Module, o) -> torch.optim.Optimizer:
    """Adam or AdamW. Weight decay skips biases and normalisation weights (1-D tensors): decaying them
    only fights the normalisation and is the usual recipe (nanoGPT does the same split)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    cls = torch.optim.AdamW if o.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=o.lr, betas=tuple(o.betas))


def lr_factor(step: int, total_steps: int, o) -> float:
    """Learning-rate multiplier at ``step`` (0-based): linear warm-up, then cosine, step or constant."""
    if step < o.warmup_steps:
        return (step + 1) / o.warmup_steps
    if o.schedule == "constant":
        return 1.0
    if o.schedule == "cosine":
        span = max(1, total_steps - o.warmup_steps)
        progress = min(1.0, (step - o.warmup_steps) / span)
        return o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    # "step": milestones given as fractions of the run (< 1) or as step numbers.
    milestones = [m * total_steps if m < 1 else m for m in o.milestones]
    return o.gamma ** sum(step >= m for m in milestones)


def make_scheduler(
    optimizer: torch.optim.Optimizer, o, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total_steps, o))


def loss_for(codec: HeatmapCodec, head: str) -> tuple[str, Callable]:
    """The loss of a codec: its default loss for a heatmap head; per-cell BCE for the two-channel binary
    head (B, K, 2, h, w) of the authors' release, whose channel 1 then reads as a probability."""
    if head == "binary":
        return "binary_cross_entropy", lambda out, enc: losses.binary_cross_entropy(
            out, enc.heatmaps, enc.weights
        )
    return losses.default_loss(codec)


def to_maps(output: Tensor, codec: HeatmapCodec) -> tuple[Tensor, str]:
    """Network output -> (heatmaps (B, K, h, w), activation for ``codec.decode``).

    A binary head (B, K, 2, h, w) trained with per-cell BCE gives probabilities ``sigmoid(channel 1)``.
    """
    if output.dim() == 5:
        return torch.sigmoid(output[:, :, 1].float()), "probabilities"
    return output.float(), codec.default_activation


# ---------------------------------------------------------------------------------------------------------
# Devices, AMP, batches
# ---------------------------------------------------------------------------------------------------------


def amp_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """The autocast dtype: bfloat16 where the GPU supports it (no loss scaling needed), else float16;
    None (no autocast) on CPU or when disabled."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def get_batch(dataset, indices: Sequence[int]) -> dict:
    """Stack the samples ``indices``. Uses ``dataset.batch`` when the dataset has one (the synthetic set
    renders a whole batch in one matmul), else collates ``dataset[i]`` items."""
    if hasattr(dataset, "batch"):
        return dataset.batch(list(indices))
    return torch.utils.data.default_collate([dataset[int(i)] for i in indices])


def batches(dataset, index_lists: Sequence[Sequence[int]], num_workers: int, seed: int):
    """Iterate over the batches ``index_lists`` (in that order), in worker processes when asked.

    Each item of a real dataset is a pure function of its index and the (seed, epoch) generator handed to
    the DataLoader; with ``num_workers=0`` random augmentation draws from the global RNG, whose state is
    checkpointed, so a resumed run repeats it exactly.
    """
    if num_workers == 0 or hasattr(dataset, "batch"):
        for idx in index_lists:
            yield get_batch(dataset, idx)
        return
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=index_lists,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=False,
    )
    yield from loader


def to_device(batch: dict, device: torch.device, channels_last: bool) -> dict:
    """Move the tensors of a batch; images in channels_last when asked (faster convolutions on CUDA)."""
    out = dict(batch)
    non_blocking = device.type == "cuda"
    for key in ("image", "keypoints", "visible"):
        out[key] = batch[key].to(device, non_blocking=non_blocking)
    if channels_last:
        out["image"] = out["image"].contiguous(memory_format=torch.channels_last)
    return out


# ---------------------------------------------------------------------------------------------------------
# Prediction and evaluation
# ---------------------------------------------------------------------------------------------------------


def translate_images(images: Tensor, shift: Sequence[float]) -> Tensor:
    """Move image content by ``shift = (dx, dy)`` input pixels (sub-pixel, bilinear, border padding).

    Under the pixel-centre convention output pixel ``x`` samples the input at ``x - dx``; with
    ``align_corners=False`` that is a translation of ``-2 dx / W`` in normalised coordinates.
    """
    dx, dy = float(shift[0]), float(shift[1])
    if dx == 0.0 and dy == 0.0:
        return images
    B, _, H, W = images.shape
    theta = images.new_zeros(B, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = -2.0 * dx / W
    theta[:, 1, 2] = -2.0 * dy / H
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


@torch.no_grad()
def predict(
    model: nn.Module,
    codec: HeatmapCodec,
    images: Tensor,
    flip_pairs: Sequence[tuple[int, int]] | None = None,
    flip_test: bool = False,
    decode_options: dict | None = None,
    amp: torch.dtype | None = None,
) -> tuple[Tensor, Tensor]:
    """Keypoints (B, K, 2) in INPUT pixels and scores (B, K) for images (B, 3, H, W) on the model's device.

    Flip test: run the mirrored images too, mirror their maps back with
    :func:`h3r_theory.conventions.flip_heatmaps` (left/right channels swapped by ``flip_pairs``) and
    average with the direct maps before decoding. Under the pixel-centre (and udp) convention the mirrored
    map lies exactly on the direct one, so no one-cell shift is applied; under ``msra`` it would be off by
    ``(s - 1) / s`` cells, which is refused rather than silently biased.
    """
    model.eval()
    with autocast(images.device, amp):
        maps, activation = to_maps(model(images), codec)
    if flip_test:
        offset = conventions.heatmap_flip_offset(codec.input_size, codec.heatmap_size, codec.convention)
        if offset != 0.0:
            raise ValueError(
                f"flip test is exact only under the pixel_center/udp conventions; codec convention "
                f"{codec.convention!r} puts the flipped heatmap {offset:.3f} cells off"
            )
        with autocast(images.device, amp):
            flipped, _ = to_maps(model(torch.flip(images, dims=(-1,))), codec)
        maps = 0.5 * (maps + conventions.flip_heatmaps(flipped, flip_pairs or ()))
    return codec.decode(maps, activation=activation, **(decode_options or {}))


@torch.no_grad()
def evaluate(
    model: nn.Module,
    codec: HeatmapCodec,
    dataset,
    *,
    batch_size: int = 32,
    device: torch.device | None = None,
    flip_test: bool = False,
    decode_options: dict | None = None,
    shift: Sequence[float] = (0.0, 0.0),
    max_samples: int | None = None,
    failure_threshold: float = 0.1,
    pckh_threshold: float = 0.5,
    amp: torch.dtype | None = None,
    channels_last: bool = False,
    num_workers: int = 0,
    info: DistInfo | None = None,
    out_dir: Path | None = None,
    return_predictions: bool = False,
) -> dict:
    """Metrics of ``model`` on ``dataset`` (every process gets the same dict under DDP).

    Predictions are decoded in input pixels, then mapped back to ORIGINAL image pixels through the inverse
    of each sample's ``matrix``. Always reported: ``mean_error_px`` (input pixels, over labelled keypoints),
    ``mean_error_orig_px`` (original pixels) and ``num_samples``; then per dataset (see
    :func:`dataset_metrics`): faces NME / FR / AUC, MPII PCKh, COCO AP through a results JSON.

    ``shift = (dx, dy)`` translates every input image by a sub-pixel amount (and its keypoints and matrix
    with it) before prediction: the probe of sub-pixel accuracy the resolution sweep uses.
    With ``return_predictions`` the dict also holds ``"predictions"``: arrays ``pred`` / ``gt`` (N, K, 2)
    in original pixels, ``pred_input`` / ``gt_input`` in input pixels, ``visible``, ``scores`` and ``index``.
    """
    info = info or DistInfo()
    device = device or next(model.parameters()).device
    n = len(dataset) if max_samples is None else min(len(dataset), int(max_samples))
    if n == 0:
        raise ValueError("cannot evaluate on an empty dataset")
    mine = dist_utils.eval_shard(n, info)
    flip_pairs = list(getattr(dataset, "flip_pairs", []) or [])
    shift_t = torch.tensor([float(shift[0]), float(shift[1])])
    parts = []
    index_lists = [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]
    for batch in batches(dataset, index_lists, num_workers, seed=0):
        images = batch["image"].to(device, non_blocking=device.type == "cuda")
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        images = translate_images(images, shift)
        coords, scores = predict(model, codec, images, flip_pairs, flip_test, decode_options, amp)
        keypoints = batch["keypoints"].to(torch.float64) + shift_t.to(torch.float64)
        matrix = torch.as_tensor(batch["matrix"], dtype=torch.float64).clone()
        matrix[:, :, 2] += shift_t.to(torch.float64)  # the translation is part of the original -> input map
        parts.append(
            {
                "pred_input": coords.detach().to("cpu", torch.float64),
                "gt_input": keypoints,
                "visible": torch.as_tensor(batch["visible"]).to(torch.float64),
                "scores": scores.detach().to("cpu", torch.float64),
                "matrix": matrix,
                "index": torch.as_tensor(batch["index"]).long(),
            }
        )
    local = {k: torch.cat([p[k] for p in parts]) for k in parts[0]} if parts else None
    gathered = [g for g in dist_utils.gather_objects(local, info) if g is not None]
    allp = {k: torch.cat([g[k] for g in gathered]) for k in gathered[0]}
    order = torch.argsort(allp["index"])  # rank order -> dataset order, for stable outputs
    allp = {k: v[order] for k, v in allp.items()}

    inverse = invert_affine(allp["matrix"])
    pred = apply_affine(allp["pred_input"], inverse)
    gt = apply_affine(allp["gt_input"], inverse)
    vis = allp["visible"]
    labelled = vis > 0
    if not labelled.any():
        raise ValueError("no labelled keypoint among the evaluated samples: nothing to measure")
    err_in = torch.linalg.vector_norm(allp["pred_input"] - allp["gt_input"], dim=-1)
    err_orig = torch.linalg.vector_norm(pred - gt, dim=-1)
    result: dict[str, Any] = {
        "num_samples": int(len(allp["index"])),
        "num_keypoints": int(labelled.sum()),
        "mean_error_px": float(err_in[labelled].mean()),
        "mean_error_orig_px": float(err_orig[labelled].mean()),
    }
    result.update(
        dataset_metrics(
            dataset,
            allp["index"].tolist(),
            pred,
            gt,
            vis,
            allp["scores"],
            failure_threshold=failure_threshold,
            pckh_threshold=pckh_threshold,
            out_dir=out_dir if info.is_main else None,
        )
    )
    if return_predictions:
        result["predictions"] = {
            "pred": pred.numpy(),
            "gt": gt.numpy(),
            "pred_input": allp["pred_input"].numpy(),
            "gt_input": allp["gt_input"].numpy(),
            "visible": vis.numpy(),
            "scores": allp["scores"].numpy(),
            "index": allp["index"].numpy(),
        }
    return result


def _record_field(record: Any, name: str) -> Any:
    """``record.name``, ``record.extras[name]`` or ``record[name]`` (records are dataclasses or dicts)."""
    if isinstance(record, dict):
        return record.get(name, (record.get("extras") or {}).get(name))
    if hasattr(record, name):
        return getattr(record, name)
    return (getattr(record, "extras", None) or {}).get(name)


def dataset_kind(dataset) -> str:
    """``"coco"``, ``"mpii"`` or ``"face"`` (anything with a per-image NME normaliser), else ``"other"``."""
    records = getattr(dataset, "records", None)
    name = _record_field(records[0], "dataset") if records is not None and len(records) else None
    name = str(name or getattr(dataset, "name", "")).lower()
    if name == "coco":
        return "coco"
    if name == "mpii":
        return "mpii"
    return "face" if hasattr(dataset, "normalizer") else "other"


def dataset_metrics(
    dataset,
    indices: list,
    pred: Tensor,
    gt: Tensor,
    visible: Tensor,
    scores: Tensor,
    *,
    failure_threshold: float = 0.1,
    pckh_threshold: float = 0.5,
    out_dir: Path | None = None,
) -> dict:
    """The dataset's own metrics from predictions and ground truth in ORIGINAL pixels (N, K, 2).

    * faces (and the synthetic set): ``nme``, ``fr@t``, ``auc@t`` with ``dataset.normalizer(i)``;
    * MPII: ``pckh`` (mean PCKh@t in percent) with ``dataset.normalizer(i)`` = the head size
      (0.6 x head-box diagonal, original pixels);
    * COCO: ``ap`` and the other COCOeval stats, from a results JSON written to ``out_dir`` (or a
      temporary folder) against ``dataset.annotation_file``; instance score = mean keypoint score.
    """
    from h3r_theory import metrics

    kind = dataset_kind(dataset)
    if kind == "face":
        norms = torch.tensor([float(dataset.normalizer(i)) for i in indices], dtype=torch.float64)
        has_kp = (visible > 0).any(-1)
        skipped = int((~has_kp).sum())  # an image with no labelled point has no NME: counted, not hidden
        out = metrics.face_metrics(
            pred[has_kp], gt[has_kp], norms[has_kp], visible[has_kp], failure_threshold
        )
        out = {k.replace(f"@{failure_threshold:g}", ""): v for k, v in out.items()}
        out.update({"failure_threshold": failure_threshold, "skipped_no_keypoint": skipped})
        return out
    if kind == "mpii":
        norms = torch.tensor([float(dataset.normalizer(i)) for i in indices], dtype=torch.float64)
        correct, valid = metrics.pck_correct(pred, gt, norms, pckh_threshold, visible)
        keep = torch.ones(correct.shape[-1], dtype=torch.bool)
        if correct.shape[-1] == len(metrics.MPII_JOINTS):
            keep[list(metrics.MPII_EXCLUDED_FROM_MEAN)] = False
        pck = 100.0 * correct[:, keep].sum() / valid[:, keep].sum().clamp(min=1)
        return {"pckh": float(pck), "pckh_threshold": pckh_threshold}
    if kind == "coco":
        gt_file = getattr(dataset, "annotation_file", None)
        if gt_file is None:
            raise ValueError("COCO evaluation needs dataset.annotation_file (the person_keypoints JSON)")
        image_ids = [int(_record_field(dataset.records[i], "image_id")) for i in indices]
        import tempfile

        folder = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="h3r_coco_"))
        folder.mkdir(parents=True, exist_ok=True)
        results = metrics.write_coco_results(
            folder / "coco_results.json", image_ids, pred, scores.mean(-1), keypoint_scores=scores
        )
        stats = metrics.coco_keypoint_ap(gt_file, results, image_ids=sorted(set(image_ids)))
        return {"ap": stats["AP"], **{k.lower(): v for k, v in stats.items() if k != "AP"}}
    return {}


# ---------------------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------------------


def save_checkpoint(
    path: Path, *, model, optimizer, scheduler, scaler, step: int, config: Config, best: dict | None = None
) -> Path:
    """Everything an exact resume needs: parameters, optimizer/scheduler/scaler state, the step and every
    RNG state. The config goes along as JSON text, for the record (a resume uses the config it is given)."""
    state = {
        "model": dist_utils.unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "step": int(step),
        "rng": ckpt.rng_state(),
        "config": config.to_json(),
        "format": 1,
    }
    return ckpt.save_atomic(state, path)


def load_weights(model: nn.Module, path: Path) -> dict:
    """Load the model parameters of a checkpoint (``weights_only=True``); returns the checkpoint dict."""
    state = ckpt.load(path)
    if "model" not in state:
        raise ValueError(f"{path} is not an h3r-train checkpoint (no 'model' entry; keys: {sorted(state)})")
    dist_utils.unwrap(model).load_state_dict(state["model"])
    return state


# ---------------------------------------------------------------------------------------------------------
# The training run
# ---------------------------------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train(
    config: Config,
    *,
    model: nn.Module | None = None,
    train_set=None,
    eval_set=None,
    stop_after_steps: int | None = None,
) -> RunResult:
    """Train ``config`` to the end (or resume it), evaluate, save, log and plot. Returns a RunResult.

    ``model``, ``train_set`` and ``eval_set`` replace what the config would build (the sweep and the tests
    pass their own). ``stop_after_steps`` stops the loop after that global step as if the process had been
    killed there (after the checkpoint of that step, if one is due): the schedule still spans the full run,
    which is what makes "stop, then resume" comparable with an uninterrupted run.
    """
    t0 = time.perf_counter()
    tc = config.train
    info = dist_utils.setup(
        "cuda"
        if tc.device.startswith("cuda") or (tc.device == "auto" and torch.cuda.is_available())
        else "cpu"
    )
    device = dist_utils.local_device(tc.device, info)
    out_dir = Path(tc.out_dir)
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.json").write_text(config.to_json())

    # -- data, codec, model ---------------------------------------------------------------------------------
    seed_everything(tc.seed)
    if train_set is None or eval_set is None:
        built = build_datasets(
            config, [r for r, s in (("train", train_set), ("eval", eval_set)) if s is None]
        )
        train_set = train_set if train_set is not None else built.pop(0)
        eval_set = eval_set if eval_set is not None else built.pop(0)
    input_size = tuple(train_set.input_size)
    codec = build_codec(config, input_size)
    loss_name, loss_fn = loss_for(codec, config.model.head)
    if model is None:
        model = build_network(config, train_set.num_keypoints)
    channels_last = tc.channels_last and device.type == "cuda"
    model = model.to(device, memory_format=torch.channels_last) if channels_last else model.to(device)

    # -- steps, optimizer, schedule, AMP --------------------------------------------------------------------
    steps_per_epoch = len(train_set) // tc.batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"train.batch_size={tc.batch_size} is larger than the training set ({len(train_set)})"
        )
    total_steps = tc.max_steps if tc.max_steps is not None else tc.epochs * steps_per_epoch
    optimizer = make_optimizer(model, config.optim)
    scheduler = make_scheduler(optimizer, config.optim, total_steps)
    amp = amp_dtype(device, tc.amp)
    # Loss scaling is needed for float16 only; bfloat16 has float32's exponent range.
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)

    # -- resume ---------------------------------------------------------------------------------------------
    step = 0
    resume = tc.resume
    if resume == "auto":
        resume = str(out_dir / "last.pt") if (out_dir / "last.pt").is_file() else None
    if resume is not None:
        state = load_weights(model, Path(resume))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        step = int(state["step"])
        ckpt.set_rng_state(state["rng"])  # last: building the model above consumed random numbers
        if step > total_steps:
            raise ValueError(f"checkpoint {resume} is at step {step}, past this run's {total_steps} steps")
    ddp_model = model
    if info.enabled:
        ddp_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    logger = (
        JsonlLogger(out_dir / "metrics.jsonl", resume_step=step if resume else None) if info.is_main else None
    )
    progress = None
    if tc.progress and info.is_main:
        from tqdm.auto import tqdm

        progress = tqdm(
            total=total_steps, initial=step, desc=f"train {config.codec.name}", dynamic_ncols=True
        )

    eval_kwargs = dict(
        batch_size=config.eval.batch_size,
        device=device,
        flip_test=config.eval.flip_test,
        decode_options=config.eval.decode,
        max_samples=config.eval.max_samples,
        failure_threshold=config.eval.failure_threshold,
        pckh_threshold=config.eval.pckh_threshold,
        amp=amp,
        channels_last=channels_last,
        num_workers=config.data.num_workers,
        info=info,
    )

    def run_eval(at_step: int) -> dict:
        result = evaluate(model, codec, eval_set, out_dir=out_dir, **eval_kwargs)
        if logger is not None:
            logger.log({"kind": "eval", "step": at_step, "epoch": at_step // steps_per_epoch, **result})
        return result

    def checkpoint_now(at_step: int) -> None:
        if info.is_main:
            save_checkpoint(
                out_dir / "last.pt",
                model=model,
                optimizer=optimizer,
                scheduler=scheduler,
                scaler=scaler,
                step=at_step,
                config=config,
            )
        dist_utils.barrier(info)

    # -- the loop -------------------------------------------------------------------------------------------
    final: dict = {}
    stopped = False
    while step < total_steps and not stopped:
        epoch, start = divmod(step, steps_per_epoch)
        index_lists = dist_utils.train_batches(len(train_set), tc.batch_size, tc.seed, epoch, info, start)
        index_lists = index_lists[: total_steps - step]
        for batch in batches(
            train_set, index_lists, config.data.num_workers, seed=dist_utils._mix(tc.seed, epoch)
        ):
            ddp_model.train()
            batch = to_device(batch, device, channels_last)
            # Targets on the training device, from a generator seeded by (seed, step, rank): reproducible,
            # independent of how many steps ran before a resume, different on each DDP process.
            generator = torch.Generator(device).manual_seed(dist_utils.step_seed(tc.seed, step, info.rank))
            enc = codec.encode(batch["keypoints"], batch["visible"], generator=generator)
            with autocast(device, amp):
                output = ddp_model(batch["image"])
            loss = loss_fn(output.float(), enc)  # the loss in float32, outside autocast
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if config.optim.grad_clip is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1

            if step % max(1, tc.log_every) == 0 or step == total_steps:
                mean_loss = float(dist_utils.all_reduce_mean(loss.detach(), info))
                if not math.isfinite(mean_loss):  # checked at log steps only: a sync per step costs on GPU
                    raise ValueError(
                        f"training loss is {mean_loss} at step {step} (epoch {epoch}); lower "
                        f"optim.lr (now {config.optim.lr}) or set optim.grad_clip"
                    )
                if logger is not None:
                    logger.log(
                        {
                            "kind": "train",
                            "step": step,
                            "epoch": epoch,
                            "loss": mean_loss,
                            "lr": scheduler.get_last_lr()[0],
                            "loss_name": loss_name,
                        }
                    )
                if progress is not None:
                    progress.set_postfix(loss=f"{mean_loss:.4f}")
            if progress is not None:
                progress.update(1)
            if step == total_steps:
                final = run_eval(step)
            elif tc.eval_every and step % tc.eval_every == 0:
                run_eval(step)
            if step == total_steps or (tc.checkpoint_every and step % tc.checkpoint_every == 0):
                checkpoint_now(step)
            if stop_after_steps is not None and step >= stop_after_steps:
                stopped = True
                break
    if progress is not None:
        progress.close()
    if not final and not stopped and logger is not None:
        # resumed from the checkpoint of a finished run: its final evaluation is already in the log
        last_eval = next((r for r in reversed(read_jsonl(logger.path)) if r.get("kind") == "eval"), {})
        final = {k: v for k, v in last_eval.items() if k not in ("kind", "step", "epoch")}

    history = read_jsonl(out_dir / "metrics.jsonl") if info.is_main else []
    if info.is_main and history:
        plot_curves(history, out_dir / "curves.png", title=f"{config.data.name} / {config.codec.name}")
    dist_utils.barrier(info)
    last = out_dir / "last.pt"
    return RunResult(
        config=config,
        model=model,
        codec=codec,
        out_dir=out_dir,
        steps=step,
        seconds=time.perf_counter() - t0,
        history=history,
        final=final,
        checkpoint=last if last.is_file() else None,
    )


def evaluate_checkpoint(
    config: Config, checkpoint_path: Path, *, shift: Sequence[float] = (0.0, 0.0)
) -> dict:
    """``h3r-eval``: build the model of ``config``, load ``checkpoint_path`` and evaluate on the eval split."""
    info = dist_utils.setup("cuda" if torch.cuda.is_available() and config.train.device != "cpu" else "cpu")
    device = dist_utils.local_device(config.train.device, info)
    (eval_set,) = build_datasets(config, ["eval"])
    codec = build_codec(config, eval_set.input_size)
    torch.manual_seed(config.train.seed)
    model = build_network(config, eval_set.num_keypoints)
    load_weights(model, Path(checkpoint_path))
    model.to(device)
    e = config.eval
    out_dir = Path(config.train.out_dir)
    return evaluate(
        model,
        codec,
        eval_set,
        batch_size=e.batch_size,
        device=device,
        flip_test=e.flip_test,
        decode_options=e.decode,
        shift=shift,
        max_samples=e.max_samples,
        failure_threshold=e.failure_threshold,
        pckh_threshold=e.pckh_threshold,
        amp=amp_dtype(device, config.train.amp),
        num_workers=config.data.num_workers,
        info=info,
        out_dir=out_dir if info.is_main else None,
    )


def summary(result: dict) -> str:
    """A one-line human summary of an evaluation dict (the numbers it holds, rounded)."""
    keys = [k for k in ("mean_error_px", "nme", "fr", "auc", "pckh", "ap") if k in result]
    return ", ".join(f"{k}={result[k]:.4g}" for k in keys) + f" ({result.get('num_samples', 0)} samples)"


__all__ = [
    "RunResult",
    "train",
    "evaluate",
    "evaluate_checkpoint",
    "predict",
    "build_codec",
    "build_datasets",
    "build_network",
    "make_optimizer",
    "make_scheduler",
    "lr_factor",
    "loss_for",
    "translate_images",
    "invert_affine",
    "apply_affine",
    "dataset_metrics",
    "save_checkpoint",
    "load_weights",
    "summary",
]
