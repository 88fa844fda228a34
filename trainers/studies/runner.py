"""Run a study: many small trainings, each in its own worker process on one thread, resumable run by run.

A study (``trainers/configs/study_*.yaml``) is a grid: every variant (:mod:`.variants`) x stride x
training budget (steps) x seed, and for the selection seed every learning rate of ``lrs``. The other seeds
train at the learning rate that gave the lowest error on the VALIDATION split (the synthetic ``val``
faces, never the reported held-out ``test`` faces) for the same variant, stride and budget. A
``followups`` entry adds a variant derived from the best of several, picked the same way.

Each finished run is one JSON record in ``<out_dir>/runs/``, written atomically; a study started again
reads them back and runs only what is missing, so it can be completed over several sittings and a killed
run loses only itself. One run (:func:`run_job`)::

    seed everything; build the train / val / test sets and the variant's network at the stride
    train ``budget`` steps: the same batches, targets and schedule as trainers.engine.train
    measure on the 256 test faces (trainers.studies.budget): the error, the error budget over noise draws,
    the displacement slope over one cell of motion, the KL to the expected target; the val error

Runs go to ``workers`` processes (default: one per core) with one torch thread each; a run's numbers do
not depend on the worker count (tested). Progress: one line per finished run, with the ETA.
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from .. import distributed as dist_utils
from ..bound import dataset_bound
from ..build import make_optimizer, make_scheduler
from ..config import (
    Config,
    apply_section_overrides,
    from_dict,
    read_yaml_mapping,
    resolve_config_path,
)
from ..config import validate as validate_config
from ..data.synthetic import SyntheticLandmarks
from ..engine import seed_everything
from ..logging_utils import write_text_atomic
from ..runtime import batches, one_thread_worker, to_device
from . import budget as budget_lib
from . import variants as variants_lib

STUDY_KEYS = (
    "title", "base", "variants", "followups", "strides", "seeds", "budgets", "lrs", "selection_seed",
    "noise_draws", "shifts_per_cell", "bins", "num_eval", "eval_batch_size", "workers", "out_dir",
    "record_dir", "seconds_per_step", "device",
)  # fmt: skip


@dataclasses.dataclass
class Study:
    title: str
    base: dict  # a trainers config: data, optim, train (batch size, seed ignored)
    variants: list  # list[Variant]
    strides: list
    seeds: list
    budgets: list  # training steps
    lrs: list  # candidate learning rates, chosen on the selection seed's val split
    followups: list = dataclasses.field(default_factory=list)  # list[dict]: best of ``from`` + ``change``
    selection_seed: int = 0
    noise_draws: int = 4  # R: the set's own image + R - 1 fresh draws
    shifts_per_cell: int = 4  # displacement shifts j s / n, j = 0 .. n - 1, along both axes
    bins: int = 8  # sub-cell fraction bins of the phase part
    num_eval: int = 256  # test faces and val faces
    eval_batch_size: int = 128
    workers: int = 0  # 0 = one per core
    out_dir: str = "runs/studies/study"
    record_dir: str | None = None  # where --report writes the committed record (json, md, figures)
    seconds_per_step: float = 0.14  # for the CPU-time estimate printed before a study starts
    device: str = "cpu"  # "cpu", "cuda", "cuda:N" or "auto" (CUDA when there is one)


def _list(value: Any, key: str, source: str, kind=int, minimum: float = 0) -> list:
    ok = (
        isinstance(value, list)
        and value
        and all(isinstance(v, kind) and not isinstance(v, bool) and v >= minimum for v in value)
    )
    if not ok or len(set(value)) != len(value):
        raise ValueError(
            f"{source}: {key} must be a non-empty list of distinct {kind.__name__}s >= {minimum}, got {value!r}"
        )
    return value


def study_from_dict(data: dict, source: str) -> Study:
    """Validate a study mapping (unknown keys fail, naming the valid ones)."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: the top level must be a mapping")
    unknown = sorted(set(data) - set(STUDY_KEYS))
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown}; valid keys: {list(STUDY_KEYS)}")
    for key in ("title", "base", "variants", "strides", "seeds", "budgets", "lrs"):
        if key not in data:
            raise ValueError(f"{source}: missing key {key!r}")
    data = dict(data)
    data["variants"] = [
        variants_lib.variant_from_dict(v, f"{source}: variants[{i}]")
        for i, v in enumerate(data["variants"] or [])
    ]
    if not data["variants"]:
        raise ValueError(f"{source}: variants must list at least one design")
    study = Study(**data)
    _list(study.strides, "strides", source, minimum=1)
    _list(study.seeds, "seeds", source)
    _list(study.budgets, "budgets", source, minimum=1)
    _list(study.lrs, "lrs", source, kind=float, minimum=1e-12)
    if study.selection_seed not in study.seeds:
        raise ValueError(f"{source}: selection_seed {study.selection_seed} is not in seeds {study.seeds}")
    for key, low in (
        ("noise_draws", 2),
        ("shifts_per_cell", 2),
        ("bins", 1),
        ("num_eval", 1),
        ("eval_batch_size", 1),
    ):
        value = getattr(study, key)
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
            raise ValueError(f"{source}: {key} must be an int >= {low}, got {value!r}")
    if not (
        isinstance(study.device, str) and (study.device in ("cpu", "auto") or study.device.startswith("cuda"))
    ):
        raise ValueError(f"{source}: device must be cpu, auto, cuda or cuda:N, got {study.device!r}")
    if not (isinstance(study.workers, int) and study.workers >= 0):
        raise ValueError(f"{source}: workers must be an int >= 0 (0 = one per core), got {study.workers!r}")
    names = [v.name for v in study.variants]
    for i, f in enumerate(study.followups):
        where = f"{source}: followups[{i}]"
        if not isinstance(f, dict) or set(f) != {"name", "from", "change"}:
            raise ValueError(f"{where} must have exactly the keys name, from, change, got {f!r}")
        missing = [n for n in f["from"] if n not in names]
        if missing or not f["from"]:
            raise ValueError(f"{where}: 'from' must name variants of this study, unknown: {missing}")
        bad = sorted(
            set(f["change"]) - {fl.name for fl in dataclasses.fields(variants_lib.Variant)} - {"name"}
        )
        if bad:
            raise ValueError(f"{where}: change has unknown variant key(s) {bad}")
        names.append(f["name"])
    for v in study.variants:
        for key, grid in (("strides", study.strides), ("budgets", study.budgets)):
            outside = [x for x in getattr(v, key) if x not in grid]
            if outside:
                raise ValueError(
                    f"{source}: variant {v.name!r}: {key} {outside} not in the study's {key} {grid}"
                )
    if len(set(names)) != len(names):
        raise ValueError(f"{source}: variant names must be unique, got {names}")
    for stride in study.strides:
        base = run_config(study, stride, study.budgets[0], study.lrs[0], study.seeds[0])
        W, H = base.data.input_size
        if W % 16 or H % 16 or W % stride:
            raise ValueError(
                f"{source}: input {W}x{H} does not suit stride {stride} (multiples of 16 and of the stride)"
            )
    return study


def load_study(name: str, overrides: list[str] = ()) -> Study:
    """A study by bundled name (``convergence`` -> trainers/configs/study_convergence.yaml) or path."""
    candidate = Path(name)
    path = candidate if candidate.suffix in (".yaml", ".yml") else resolve_config_path(f"study_{name}")
    data = apply_section_overrides(
        read_yaml_mapping(path), overrides, STUDY_KEYS, "study", "budgets=[30,100] or base.train.batch_size=8"
    )
    return study_from_dict(data, str(path))


def run_config(study: Study, stride: int, steps: int, lr: float, seed: int) -> Config:
    """The trainers config of one run (optimizer, schedule, batch size, data options)."""
    data = json.loads(json.dumps(study.base))
    data.setdefault("model", {})["output_stride"] = stride
    data.setdefault("optim", {})["lr"] = lr
    train = data.setdefault("train", {})
    train.update(max_steps=steps, seed=seed)
    return validate_config(from_dict(data, Config, "study base"))


# ---------------------------------------------------------------------------------------------------------
# Jobs and records
# ---------------------------------------------------------------------------------------------------------


def job_key(job: dict) -> str:
    return f"{job['variant']}_s{job['stride']}_n{job['steps']}_seed{job['seed']}_lr{job['lr']:g}"


def all_variants(study: Study, records: dict) -> list[tuple[variants_lib.Variant, bool]]:
    """The study's variants, then each followup once its parent is known: ``(variant, resolved)``."""
    out = [(v, True) for v in study.variants]
    for f in study.followups:
        best = best_variant(study, records, f["from"])
        if best is None:
            out.append((variants_lib.Variant(name=f["name"]), False))
            continue
        change = dict(f["change"])
        out.append((dataclasses.replace(best, name=f["name"], **change), True))
    return out


def selection_error(
    study: Study, records: dict, variant: str, stride: int, steps: int
) -> dict[float, float] | None:
    """``{lr: val error}`` of the selection seed's runs, or None while one is missing."""
    out = {}
    for lr in study.lrs:
        key = job_key(
            {"variant": variant, "stride": stride, "steps": steps, "seed": study.selection_seed, "lr": lr}
        )
        if key not in records:
            return None
        out[lr] = records[key]["val_mean_error_px"]
    return out


def chosen_lr(study: Study, records: dict, variant: str, stride: int, steps: int) -> float | None:
    errors = selection_error(study, records, variant, stride, steps)
    return None if errors is None else min(errors, key=lambda lr: (errors[lr], lr))


def best_variant(study: Study, records: dict, names: list[str]) -> variants_lib.Variant | None:
    """Of ``names``, the variant with the lowest val error at the largest stride and budget (selection seed,
    its chosen learning rate); None while a run it needs is missing."""
    stride, steps = max(study.strides), max(study.budgets)
    scored = []
    for v in study.variants:
        if v.name in names:
            errors = selection_error(study, records, v.name, stride, steps)
            if errors is None:
                return None
            scored.append((min(errors.values()), v.name, v))
    return min(scored)[2]


def jobs(study: Study, records: dict) -> tuple[list[dict], int]:
    """The runs that can start now (not finished, their learning rate known), in priority order: variants in
    config order, the selection seed first; and the number still waiting on a selection."""
    ready, waiting = [], 0
    for variant, resolved in all_variants(study, records):
        for seed in sorted(study.seeds, key=lambda s: s != study.selection_seed):
            for stride in study.strides:
                if variant.strides and stride not in variant.strides:
                    continue
                for steps in study.budgets:
                    if variant.budgets and steps not in variant.budgets:
                        continue
                    if not resolved:
                        waiting += len(study.lrs) if seed == study.selection_seed else 1
                        continue
                    if seed == study.selection_seed:
                        lrs = study.lrs
                    else:
                        lr = chosen_lr(study, records, variant.name, stride, steps)
                        if lr is None:
                            waiting += 1
                            continue
                        lrs = [lr]
                    for lr in lrs:
                        job = {"variant": variant.name, "stride": stride, "steps": steps, "seed": seed, "lr": lr,
                               "spec": dataclasses.asdict(variant)}  # fmt: skip
                        key = job_key(job)
                        if key not in records:
                            ready.append(job)
                        elif not variants_lib.same_design(
                            variants_lib.Variant(**records[key]["job"]["spec"]), variant
                        ):
                            # compared as designs: a record written before a field existed has its default
                            raise ValueError(
                                f"{study.out_dir}/runs/{key}.json holds a run of another design under the name "
                                f"{variant.name!r}: rename the variant or use another out_dir"
                            )
    return ready, waiting


def _steps_per_design(study: Study, strides: tuple = (), budgets: tuple = ()) -> int:
    """Training steps of one design's runs: every stride and budget (of ``strides`` and ``budgets`` when
    given), both rates on the selection seed, the chosen one on each other seed."""
    count = len([s for s in study.strides if not strides or s in strides])
    steps = sum(n for n in study.budgets if not budgets or n in budgets)
    return count * steps * (len(study.lrs) + len(study.seeds) - 1)


def _designs(study: Study) -> list[tuple[int, tuple, tuple]]:
    """(width, strides, budgets) of every variant and followup (a followup's from its ``change``, else the
    default)."""
    default = variants_lib.Variant
    return [(v.width, v.strides, v.budgets) for v in study.variants] + [
        (f["change"].get("width", default.width), tuple(f["change"].get("strides", ())),
         tuple(f["change"].get("budgets", ())))
        for f in study.followups
    ]  # fmt: skip


def _donors(study: Study) -> list[tuple[int, int]]:
    """(width, steps) of the donors of the ``frozen_features`` probes: one per probe, seed and budget it is
    trained for (a donor two probes or budgets share is trained once, so this is an upper bound)."""
    out = []
    for v in study.variants:
        if v.frozen_features:
            budgets = [n for n in study.budgets if not v.budgets or n in v.budgets]
            steps = [v.donor_steps] if v.donor_steps else budgets
            out += [(v.width, n) for n in steps for _ in study.seeds]
    return out


def total_steps(study: Study) -> int:
    """Training steps of the whole grid (every variant and followup, every run, the probes' donors)."""
    designs = sum(_steps_per_design(study, s, b) for _, s, b in _designs(study))
    return designs + sum(n for _, n in _donors(study))


def width_cost(width: int) -> float:
    """A training step's CPU time relative to the tiny CNN's default width 16: (width / 16) ** 1.7, fitted to
    one measurement (1 thread, batch 16, 128 px, the 2-core VM: 0.40x at width 8, 3.2-3.4x at width 32; the
    fit gives 0.31x and 3.25x)."""
    return (width / 16) ** 1.7


def cpu_seconds(study: Study) -> float:
    """The grid's training CPU time on 1 thread: its steps at ``seconds_per_step``, each variant's (and
    followup's) weighted by :func:`width_cost` (a followup's width is its ``change``'s, else the default)."""
    designs = sum(width_cost(w) * _steps_per_design(study, s, b) for w, s, b in _designs(study))
    donors = sum(width_cost(w) * n for w, n in _donors(study))
    return (designs + donors) * study.seconds_per_step


def read_records(folder: Path) -> dict:
    """Every finished run's record in ``folder/runs`` by key; a torn or foreign file is reported and skipped
    (it is run again)."""
    out = {}
    for path in sorted((folder / "runs").glob("*.json")):
        try:
            record = json.loads(path.read_text())
            key = job_key(record["job"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            print(
                f"h3r-sweep: ignoring unreadable run record {path} ({error}); that run runs again",
                file=sys.stderr,
            )
            continue
        if key != path.stem:
            print(f"h3r-sweep: ignoring {path}: its record is of run {key}", file=sys.stderr)
            continue
        out[key] = record
    return out


# ---------------------------------------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------------------------------------


_DATA: dict = {}  # per process: (seed, input, options) -> (train, val, test, bound); a worker runs many jobs


def datasets(config: Config, num_eval: int):
    """The train, val and test sets of a run's seed (val and test: ``num_eval`` faces each) and the
    Cramer-Rao bound (N, K) px of the test faces; cached in the process."""
    options = dict(config.data.options)
    options.pop("num_eval", None)
    num_train = options.pop("num_train", 2048)
    key = (config.train.seed, tuple(config.data.input_size), json.dumps(options, sort_keys=True), num_eval)
    if key not in _DATA:
        _DATA.clear()
        make = lambda n, split: SyntheticLandmarks(  # noqa: E731
            n, tuple(config.data.input_size), seed=config.train.seed, split=split, **options
        )
        test = make(num_eval, "test")
        _DATA[key] = (make(num_train, "train"), make(num_eval, "val"), test, dataset_bound(test))
    return _DATA[key]


def train_steps(model, variant, codec, config: Config, train_set) -> float:
    """``config.train.max_steps`` steps of the variant's loss, with the batches, per-step target generator,
    optimizer and schedule of :func:`trainers.engine.train` (same parameters, bit for bit, for the plain
    codec loss: tested); returns the last loss."""
    tc = config.train
    device = next(model.parameters()).device
    info = dist_utils.DistInfo()
    optimizer = make_optimizer(model, config.optim)
    scheduler = make_scheduler(optimizer, config.optim, tc.max_steps)
    steps_per_epoch = len(train_set) // tc.batch_size
    step, last = 0, math.nan
    seed_everything(tc.seed)  # as the engine does before its loop
    while step < tc.max_steps:
        epoch, start = divmod(step, steps_per_epoch)
        index_lists = dist_utils.train_batches(len(train_set), tc.batch_size, tc.seed, epoch, info, start)
        index_lists = index_lists[: tc.max_steps - step]
        for batch in batches(train_set, index_lists, 0, seed=dist_utils.mix_seed(tc.seed, epoch)):
            model.train()
            batch = to_device(batch, device, channels_last=False)
            generator = torch.Generator(device).manual_seed(dist_utils.step_seed(tc.seed, step, 0))
            enc = codec.encode(batch["keypoints"], batch["visible"], generator=generator)
            value = variants_lib.loss(variant, codec, model(batch["image"]).float(), enc)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            if config.optim.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            last = float(value.detach())
    return last


@torch.no_grad()
def _predict(model, variant, codec, images) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Keypoints (B, K, 2) float64 px and the predicted distribution (or None), on the CPU."""
    out = model(images.to(next(model.parameters()).device)).float()
    coords, probs = variants_lib.predict(variant, codec, out)
    return coords.to("cpu", torch.float64), None if probs is None else probs.cpu()


def measure_run(model, variant, codec, study: Study, val_set, test_set, bound) -> dict:
    """The error, the error budget, the displacement slope and the KL of a trained model (see
    :mod:`.budget`); every number in input px (px^2 for the budget) over the labelled test keypoints."""
    model.eval()
    n, B = len(test_set), study.eval_batch_size
    chunks = [list(range(i, min(i + B, n))) for i in range(0, n, B)]
    s = float(codec.stride[0])
    shifts = [j * s / study.shifts_per_cell for j in range(study.shifts_per_cell)]
    draws, moved, truth, visible, kl_parts = [], [], [], [], []
    for idx in chunks:
        batch = test_set.batch(idx)
        own, probs = _predict(model, variant, codec, batch["image"])
        fresh = budget_lib.noise_draws(test_set, idx, study.noise_draws - 1, seed=test_set.seed)
        draws.append(torch.stack([own] + [_predict(model, variant, codec, im)[0] for im in fresh]))
        moved.append(torch.stack([own] + [
            _predict(model, variant, codec, test_set.batch(idx, shift=(t, t))["image"])[0] for t in shifts[1:]
        ]))  # fmt: skip
        truth.append(batch["keypoints"].to(torch.float64))
        visible.append(batch["visible"])
        if probs is not None:
            expected = codecs_expected(codec, batch["keypoints"], batch["visible"])
            weight = batch["visible"] * expected.weights
            kl_parts.append(
                (budget_lib.kl_to_expected(probs, expected.heatmaps, weight), float(weight.sum()))
            )
    draws, moved = torch.cat(draws, 1), torch.cat(moved, 1)
    truth, visible = torch.cat(truth), torch.cat(visible)
    labelled = visible > 0
    err2 = (draws[0] - truth).pow(2).sum(-1)[labelled]
    result = {
        "mean_error_px": float(err2.sqrt().mean()),
        "rms_error_px": float(err2.mean().sqrt()),
        "mse_px2": float(err2.mean()),
        "nme": float(err2.sqrt().mean()) / test_set.normalizer(0),
        "budget": budget_lib.error_budget(
            draws, truth, visible, budget_lib.sub_cell_fraction(truth, codec), study.bins, bound[:n]
        ),
        "displacement": budget_lib.displacement_slope(moved, shifts, visible),
        "kl_nats": (sum(k * w for k, w in kl_parts) / max(sum(w for _, w in kl_parts), 1))
        if kl_parts
        else None,
    }
    result["budget_closure"] = result["budget"]["sum_px2"] / result["mse_px2"]
    result["val_mean_error_px"] = val_error(model, variant, codec, val_set, B)
    return result


def val_error(model, variant, codec, val_set, batch_size: int) -> float:
    """Mean 2-D error (px) over the labelled keypoints of the validation faces."""
    model.eval()
    errors = []
    for start in range(0, len(val_set), batch_size):
        batch = val_set.batch(list(range(start, min(start + batch_size, len(val_set)))))
        coords, _ = _predict(model, variant, codec, batch["image"])
        d = (coords - batch["keypoints"].to(torch.float64)).pow(2).sum(-1).sqrt()
        errors.append(d[batch["visible"] > 0])
    return float(torch.cat(errors).mean())


def codecs_expected(codec, keypoints, visible):
    """The bilinear expected randomized-rounding target of these keypoints on ``codec``'s grid."""
    from h3r_theory import codecs

    rr = codecs.build("randomized_rounding", input_size=codec.input_size, heatmap_size=codec.heatmap_size,
                      convention=codec.convention)  # fmt: skip
    return rr.expected(keypoints, visible)


def _device(study: Study) -> torch.device:
    if study.device == "cpu":
        return torch.device("cpu")
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(auto if study.device == "auto" else study.device)


def train_plain(study: Study, variant, stride: int, steps: int, lr: float, seed: int):
    """Build and train one run's network from its seed; returns (model, codec, config, last loss)."""
    config = run_config(study, stride, steps, lr, seed)
    train_set = datasets(config, study.num_eval)[0]
    codec = variants_lib.build_codec(variant, tuple(config.data.input_size), stride)
    seed_everything(seed)  # the same initial backbone for every variant and stride of a seed
    model = variants_lib.build_model(variant, train_set.num_keypoints, stride).to(_device(study))
    return model, codec, config, train_steps(model, variant, codec, config, train_set)


def donor_features(study: Study, variant, steps: int, seed: int) -> tuple[dict, dict]:
    """The trained state of a ``frozen_features`` probe's donor (its plain design at the donor stride, the
    probe's seed and budget, ``donor_lr``), and a note on it (key, val error). Trained once, then read back
    from ``<out_dir>/donors/`` (written atomically: two workers needing it at once both train it, and the
    results are the same)."""
    donor = variants_lib.donor_of(variant)
    fields = {k: v for k, v in variants_lib.non_default_fields(donor).items() if k != "name"}
    spec = json.dumps(fields, sort_keys=True)  # the design, not its name: probes of one donor share it
    digest = hashlib.sha1(spec.encode()).hexdigest()[:10]
    key = f"donor_{digest}_s{variant.frozen_features}_n{steps}_seed{seed}_lr{variant.donor_lr:g}"
    path = Path(study.out_dir) / "donors" / f"{key}.pt"
    if path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        return saved["state"], saved["note"]
    model, codec, config, _ = train_plain(
        study, donor, variant.frozen_features, steps, variant.donor_lr, seed
    )
    val_set = datasets(config, study.num_eval)[1]
    note = {"key": key, "spec": dataclasses.asdict(donor), "stride": variant.frozen_features,
            "lr": variant.donor_lr, "val_mean_error_px": val_error(model, donor, codec, val_set,
                                                                   study.eval_batch_size)}  # fmt: skip
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    torch.save({"state": state, "note": note}, partial)
    os.replace(partial, path)
    return state, note


def run_job(job: dict, study: Study) -> dict:
    """Train and measure one run; returns its record (the job, the numbers, times, machine)."""
    wall, cpu = time.perf_counter(), time.process_time()
    variant = variants_lib.Variant(**job["spec"])
    config = run_config(study, job["stride"], job["steps"], job["lr"], job["seed"])
    train_set, val_set, test_set, bound = datasets(config, study.num_eval)
    codec = variants_lib.build_codec(variant, tuple(config.data.input_size), job["stride"])
    donor_note = None
    if variant.frozen_features:
        donor_steps = variants_lib.donor_budget(variant, job["steps"])
        donor_state, donor_note = donor_features(study, variant, donor_steps, job["seed"])
    seed_everything(job["seed"])  # the same initial backbone for every variant and stride of a seed
    model = variants_lib.build_model(variant, train_set.num_keypoints, job["stride"])
    if variant.frozen_features:
        model.freeze_features(donor_state)
    model = model.to(_device(study))
    t0 = time.perf_counter()
    last_loss = train_steps(model, variant, codec, config, train_set)
    train_seconds = time.perf_counter() - t0
    measured = measure_run(model, variant, codec, study, val_set, test_set, bound)
    return {
        "job": {k: job[k] for k in ("variant", "stride", "steps", "seed", "lr", "spec")},
        **measured,
        **({"donor": donor_note} if donor_note else {}),
        "final_loss": last_loss,
        "train_seconds": train_seconds,
        "wall_seconds": time.perf_counter() - wall,
        "cpu_seconds": time.process_time() - cpu,
        "threads": torch.get_num_threads(),
        "device": str(next(model.parameters()).device),
        "torch": torch.__version__,
    }


# ---------------------------------------------------------------------------------------------------------
# The study
# ---------------------------------------------------------------------------------------------------------


def _fmt_seconds(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return (
        f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
        if seconds >= 3600
        else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    )


def _cost(steps: int, width: int = variants_lib.Variant.width) -> float:
    """A run's relative cost for the ETA: its steps (weighted by :func:`width_cost`) plus its measurement
    (about 70 steps' worth: 8 forward passes of the 256 test faces)."""
    return (steps + 70.0) * width_cost(width)


def _interleave(lists: list[list]) -> list:
    """Round-robin over several studies' ready runs, so that each advances."""
    out = []
    for i in range(max((len(x) for x in lists), default=0)):
        out.extend(x[i] for x in lists if i < len(x))
    return out


def run_studies(studies: list[Study], workers: int | None = None, log=print) -> dict:
    """Run every missing run of ``studies`` (resumable, one pool, their runs interleaved); they must share
    one ``out_dir``, where a run two studies hold in common (same key, same design) is run once. Returns
    the records by key."""
    from ..run_folder import acquire_lock

    folders = {Path(s.out_dir) for s in studies}
    if len(folders) != 1:
        raise ValueError(f"studies run together must share out_dir, got {sorted(map(str, folders))}")
    folder = folders.pop()
    (folder / "runs").mkdir(parents=True, exist_ok=True)
    workers = workers if workers is not None else (studies[0].workers or len(os.sched_getaffinity(0)))
    lock = acquire_lock(folder)  # one study process per folder: a second is refused, naming the owner
    try:
        records = read_records(folder)
        per_step = studies[0].seconds_per_step
        for study in studies:
            ready, waiting = jobs(study, records)
            log(f"study {study.title!r}: {len(ready) + waiting} runs to go of the grid of "
                f"{total_steps(study):,} training steps ({_fmt_seconds(cpu_seconds(study))} of CPU at "
                f"{per_step} s/step on 1 thread at width 16, plus about 10 s of measurement per run)")  # fmt: skip
        log(f"{len(records)} runs already finished in {folder}/runs are read back; {workers or 1} worker(s)")
        context = multiprocessing.get_context("spawn")
        pool = (
            futures.ProcessPoolExecutor(workers, mp_context=context, initializer=one_thread_worker)
            if workers
            else None
        )
        capacity, in_flight, t_start, finished_now, done_cost = (
            max(workers, 1),
            {},
            time.perf_counter(),
            0,
            0.0,
        )
        try:
            while True:
                lists = [jobs(s, records) for s in studies]
                waiting = sum(w for _, w in lists)
                ready = [j for j in _interleave([r for r, _ in lists]) if job_key(j) not in in_flight]
                while ready and len(in_flight) < capacity:
                    job = ready.pop(0)
                    in_flight[job_key(job)] = (job, pool.submit(run_job, job, studies[0]) if pool else None)
                if not in_flight:
                    if waiting:
                        raise RuntimeError(f"{waiting} runs wait on a selection that no run can provide")
                    break
                if pool is None:
                    key, (job, _) = next(iter(in_flight.items()))
                    finished = [(key, job, run_job(job, studies[0]))]
                else:
                    done, _ = futures.wait(
                        [f for _, f in in_flight.values()], return_when=futures.FIRST_COMPLETED
                    )
                    finished = [(k, j, f.result()) for k, (j, f) in in_flight.items() if f in done]
                for key, job, record in finished:
                    del in_flight[key]
                    write_text_atomic(folder / "runs" / f"{key}.json", json.dumps(record, indent=1))
                    records[key] = record
                    finished_now += 1
                    done_cost += _cost(job["steps"], job["spec"]["width"])
                    left = [jobs(s, records) for s in studies]
                    left_cost = sum(_cost(j["steps"], j["spec"]["width"]) for r, _ in left for j in r) + sum(
                        w * _cost(max(s.budgets)) for s, (_, w) in zip(studies, left)
                    )  # a run waiting on a selection counted at the largest budget: an upper bound
                    elapsed = time.perf_counter() - t_start
                    log(f"run {len(records)} ({finished_now} now, {sum(len(r) + w for r, w in left)} to go): {key}: "
                        f"{record['mean_error_px']:.3f} px, val {record['val_mean_error_px']:.3f} px, "
                        f"{record['wall_seconds']:.0f} s (elapsed {_fmt_seconds(elapsed)}, "
                        f"ETA {_fmt_seconds(elapsed * left_cost / done_cost)})")  # fmt: skip
        finally:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
    finally:
        lock.release()
    return records


def main(argv: list[str] | None = None) -> int:
    """``h3r-sweep --study NAME [--report] [--workers N] [key=value ...]``."""
    parser = argparse.ArgumentParser(prog="h3r-sweep --study", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--study",
        required=True,
        help="convergence | representation | a study YAML path; several, comma-separated",
    )
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core)")
    parser.add_argument("--report", action="store_true", help="only write the record from the finished runs")
    parser.add_argument("--dry-run", action="store_true", help="list the runs that would start, and stop")
    parser.add_argument("overrides", nargs="*", help="study keys, dotted: budgets=[30,100] seeds=[0]")
    args = parser.parse_args(argv)
    try:
        if args.workers is not None and args.workers < 0:
            raise ValueError(f"--workers must be >= 0, got {args.workers}")
        studies = [load_study(name, args.overrides) for name in args.study.split(",")]
        if args.dry_run:
            for study in studies:
                ready, waiting = jobs(study, read_records(Path(study.out_dir)))
                for job in ready:
                    print(job_key(job))
                print(f"{study.title}: {len(ready)} runs ready, {waiting} waiting on a selection; the whole grid "
                      f"is {total_steps(study):,} steps, {_fmt_seconds(cpu_seconds(study))} of CPU")  # fmt: skip
            return 0
        if not args.report:
            run_studies(studies, args.workers, log=lambda m: print(m, file=sys.stderr, flush=True))
        from .report import write_record

        for study in studies:
            paths = write_record(study)
            print("wrote " + ", ".join(str(p) for p in paths.values()))
        return 0
    except (ValueError, OSError) as error:
        print(f"h3r-sweep: {error}", file=sys.stderr)
        return 2
