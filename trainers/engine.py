"""Train a heatmap model with any codec: :func:`train` ``(config) -> RunResult``, to be read top to bottom.

The data flow of every step (see ``docs/design.md``)::

    batch of samples -> model(images) -> outputs (B, K, h, w)
                     -> codec.encode(keypoints) on the model's device, seeded per step -> targets
                     -> the codec's loss (h3r_theory.losses)(outputs, targets) -> backward -> optimizer + schedule
    evaluation (trainers.evaluate): outputs -> codec.decode -> input pixels -> inverse of the sample's
                 affine "matrix" -> ORIGINAL pixels -> the dataset's metric

What is built comes from :mod:`trainers.build`; what is measured from :mod:`trainers.evaluate`. This file
holds the run itself: the loop, resume and checkpoints.

Reproducibility: with a fixed seed, thread count and torch version on CPU a run is bit-for-bit
deterministic, and a run that is stopped and resumed from its checkpoint ends with the same parameters as an
uninterrupted one, with or without DataLoader workers (tested). The data order is a pure function of
(seed, epoch), each training sample's augmentation of (seed, epoch, sample index), the random targets of
randomized rounding come from a generator seeded by (seed, step, rank), and the checkpoint holds every other
piece of state (and the thread count and torch version, which a resume compares).

Safety (see :mod:`trainers.run_folder`): everything is built and checked (datasets and their options, codec,
decoder options, the checkpoint to resume and its stored config) before the first file is written; the
output folder is locked while the run uses it and a finished or started run is never overwritten without
``overwrite=True``; the final checkpoint is written before the final evaluation; Ctrl-C saves a checkpoint
of the last completed step before it stops the run (:class:`~trainers.guards.TrainingInterrupted`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from h3r_theory.codecs import HeatmapCodec

from . import checkpoint as ckpt
from . import distributed as dist_utils
from .build import (
    build_codec,
    build_datasets,
    build_network,
    check_evaluation,
    loss_for,
    make_optimizer,
    make_scheduler,
    report_skips,
)
from .config import Config
from .evaluate import evaluate
from .guards import (
    TrainingInterrupted,
    deferred_interrupt,
    nonfinite_loss_message,
    nonfinite_parameters_message,
    parameters_finite,
)
from .logging_utils import JsonlLogger, read_jsonl, write_text_atomic
from .plotting import save_curves
from .run_folder import RUN_FILES, config_differences, note, open_run_folder, refuse_if_in_use
from .runtime import amp_dtype, autocast, batches, to_device


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


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators (model initialisation, CPU augmentation)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _resume(path: Path, model, optimizer, scheduler, scaler, total_steps: int, config: Config) -> int:
    """Restore a checkpoint into the run's objects and the global RNGs; returns its step.

    Refused (ValueError, saying what differs) when the config stored in the checkpoint differs from
    ``config`` in a setting that shapes the trained parameters, when it has no stored config to compare,
    and when one of its parts is missing or malformed; a different thread count or torch version is
    allowed but noted, since bit-for-bit equality with an uninterrupted run then no longer holds."""
    state = ckpt.load(path)
    if not isinstance(state, dict) or not isinstance(state.get("config"), str):
        raise ValueError(
            f"cannot resume from {path}: it holds no stored config (not written by h3r-train), so its "
            "settings cannot be compared with this run's; start afresh in a new train.out_dir"
        )
    try:
        stored = json.loads(state["config"])
    except ValueError:
        stored = None
    if not isinstance(stored, dict):
        raise ValueError(f"cannot resume from {path}: its stored config is not a JSON mapping")
    diffs = config_differences(stored, json.loads(config.to_json()))
    if diffs:
        raise ValueError(
            f"cannot resume from {path}: its run had other settings ({'; '.join(diffs)}); use the "
            "same settings, or a new train.out_dir without train.resume"
        )
    step = state.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ValueError(f"cannot resume from {path}: its step must be an integer >= 0, got {step!r}")
    if step > total_steps:
        raise ValueError(f"checkpoint {path} is at step {step}, past this run's {total_steps} steps")
    state = ckpt.load_weights(model, path)
    env = ckpt.environment_differences(state)
    if env:
        note(f"resuming {path} under {', '.join(env)}: the result can differ in the last bits")
    parts = [
        ("optimizer", optimizer.load_state_dict),
        ("scheduler", scheduler.load_state_dict),
        ("scaler", scaler.load_state_dict),
        ("rng", ckpt.set_rng_state),  # last: building the model before this consumed random numbers
    ]
    for name, restore in parts:
        _restore_part(path, state, name, restore)
    return step


def _restore_part(path: Path, state: dict, name: str, restore) -> None:
    """``restore(state[name])``; a part missing or that its loader cannot read -> one ValueError naming it."""
    if not isinstance(state.get(name), dict):
        found = "missing" if name not in state else f"a {type(state[name]).__name__}, not a mapping"
        raise ValueError(f"cannot resume from {path}: its '{name}' state is {found}")
    try:
        restore(state[name])
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ValueError(f"cannot resume from {path}: its '{name}' state is malformed ({detail})") from None


def _resume_path(resume: str | None, out_dir: Path) -> Path | None:
    """``train.resume``: a checkpoint path, or ``"auto"`` = ``out_dir/last.pt`` when it exists."""
    if resume == "auto":
        return out_dir / "last.pt" if (out_dir / "last.pt").is_file() else None
    return Path(resume) if resume is not None else None


def _final_from_log(path: Path, at_step: int) -> dict:
    """The evaluation logged at ``at_step``: a run resumed after it finished does not evaluate again
    (unless that evaluation never completed, or the log is not there, as when a finished checkpoint is
    resumed into a new folder: then {} and the caller evaluates)."""
    records = read_jsonl(path) if path.is_file() else []
    last_eval = next(
        (r for r in reversed(records) if r.get("kind") == "eval" and r.get("step") == at_step), {}
    )
    return {k: v for k, v in last_eval.items() if k not in ("kind", "step", "epoch")}


def _logged(path: Path, kind: str, at_step: int) -> bool:
    """Whether the log at ``path`` holds a ``kind`` record of step ``at_step``."""
    records = read_jsonl(path) if path.is_file() else []
    return any(r.get("kind") == kind and r.get("step") == at_step for r in records)


def train(
    config: Config,
    *,
    model: nn.Module | None = None,
    train_set=None,
    eval_set=None,
    stop_after_steps: int | None = None,
    overwrite: bool = False,
) -> RunResult:
    """Train ``config`` to the end (or resume it), save, evaluate, log and plot. Returns a RunResult.

    ``model``, ``train_set`` and ``eval_set`` replace what the config would build (the sweep and the tests
    pass their own). ``stop_after_steps`` stops the loop after that global step as if the process had been
    killed there (after the checkpoint of that step, if one is due): the schedule still spans the full run,
    which is what makes "stop, then resume" comparable with an uninterrupted run. ``overwrite`` allows
    starting afresh in a folder that holds another run (its files are replaced); without it that is refused.
    """
    tc = config.train
    on_cuda = tc.device.startswith("cuda") or (tc.device == "auto" and torch.cuda.is_available())
    info = dist_utils.setup("cuda" if on_cuda else "cpu")
    device = dist_utils.local_device(tc.device, info)
    out_dir = Path(tc.out_dir)
    # Read-only and at once: a second run into a busy folder builds nothing; rank 0 checks, every rank stops.
    dist_utils.on_main(lambda: refuse_if_in_use(out_dir), info)
    return _train(config, info, device, out_dir, model, train_set, eval_set, stop_after_steps, overwrite)


def _train(
    config, info, device, out_dir, model, train_set, eval_set, stop_after_steps, overwrite
) -> RunResult:
    """The body of :func:`train`: build and check, then lock the output folder and run."""
    t0 = time.perf_counter()
    tc = config.train

    # -- data, codec, model: everything built and checked before the first file is written ----------------
    seed_everything(tc.seed)
    if train_set is None or eval_set is None:
        built = build_datasets(
            config, [r for r, s in (("train", train_set), ("eval", eval_set)) if s is None]
        )
        report_skips("h3r-train", built)  # what the loaders dropped, before the run starts
        train_set = train_set if train_set is not None else built.pop(0)
        eval_set = eval_set if eval_set is not None else built.pop(0)
    codec = build_codec(config, tuple(train_set.input_size))
    loss_name, loss_fn = loss_for(codec, config.model.head)
    if model is None:
        model = build_network(config, train_set.num_keypoints)
    check_evaluation(config, codec, eval_set.num_keypoints)
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

    # -- the output folder: checked and locked only now, after everything above was built and checked ------
    # train.resume=auto resumes only from a checkpoint that is there: a folder holding a run's config and log
    # but no last.pt is refused like any other folder holding a run, not silently replaced.
    resume = _resume_path(tc.resume, out_dir)
    lock = dist_utils.on_main(
        lambda: open_run_folder(out_dir, resuming=resume is not None, overwrite=overwrite), info
    )
    try:
        # -- resume, DDP, logs ----------------------------------------------------------------------------------
        step = 0
        if resume is not None:
            step = _resume(resume, model, optimizer, scheduler, scaler, total_steps, config)
        if info.is_main:  # every check passed: now the folder may change
            if resume is None:
                for name in (*RUN_FILES, "curves.png"):
                    (out_dir / name).unlink(
                        missing_ok=True
                    )  # a run being replaced (overwrite=True) or restarted
            write_text_atomic(out_dir / "config.json", config.to_json())
        ddp_model = model
        if info.enabled:
            ddp_model = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        logger = None
        if info.is_main:
            logger = JsonlLogger(out_dir / "metrics.jsonl", resume_step=step if resume is not None else None)
        progress = None
        if tc.progress and info.is_main:
            from tqdm.auto import tqdm

            progress = tqdm(
                total=total_steps, initial=step, desc=f"train {config.codec.name}", dynamic_ncols=True
            )

        def run_eval(at_step: int) -> dict:
            result = evaluate(
                model,
                codec,
                eval_set,
                config.eval,
                device=device,
                amp=amp,
                channels_last=channels_last,
                num_workers=config.data.num_workers,
                info=info,
                out_dir=out_dir,
            )
            if logger is not None:
                logger.log({"kind": "eval", "step": at_step, "epoch": at_step // steps_per_epoch, **result})
            return result

        def check_parameters(at_step: int, what: str) -> None:
            nonlocal finite_at
            if not parameters_finite(model):
                raise ValueError(nonfinite_parameters_message(at_step, finite_at, what, config))
            finite_at = at_step

        def log_train(at_step: int, epoch: int, loss, batch: dict, enc) -> None:
            mean_loss = float(dist_utils.all_reduce_mean(loss.detach(), info))
            if not math.isfinite(mean_loss):  # checked at log steps only: a sync per step costs on GPU
                raise ValueError(nonfinite_loss_message(mean_loss, at_step, epoch, batch, enc, model, config))
            # The loss was computed before this step's update: only the parameters show it overflowing.
            check_parameters(at_step, "checked at a log step, the loss still finite")
            if logger is not None:
                lr = scheduler.get_last_lr()[0]
                logger.log(
                    {
                        "kind": "train",
                        "step": at_step,
                        "epoch": epoch,
                        "loss": mean_loss,
                        "lr": lr,
                        "loss_name": loss_name,
                    }
                )
            if progress is not None:
                progress.set_postfix(loss=f"{mean_loss:.4f}")

        saved_step = step if resume is not None else None
        finite_at = step  # the last step at which the parameters were checked and found finite
        # A Ctrl-C during the checkpoint write or the evaluation of an evaluation step stops the run after
        # the checkpoint and before the evaluation's record: the resumed run evaluates that step first, from
        # the same parameters and RNG state, so the log is the uninterrupted run's. (The final step's
        # evaluation is caught up below, after the loop.)
        if resume is not None and 0 < step < total_steps and tc.eval_every and step % tc.eval_every == 0:
            if logger is not None and not _logged(logger.path, "eval", step):
                run_eval(step)

        def checkpoint_now(at_step: int) -> None:
            nonlocal saved_step
            # Never overwrite the last good checkpoint with non-finite weights.
            check_parameters(at_step, "before a checkpoint, which was not written")
            if info.is_main:
                with deferred_interrupt():
                    ckpt.save_checkpoint(
                        out_dir / "last.pt",
                        model=model,
                        optimizer=optimizer,
                        scheduler=scheduler,
                        scaler=scaler,
                        step=at_step,
                        config=config,
                    )
            saved_step = at_step
            dist_utils.barrier(info)

        # -- the loop -------------------------------------------------------------------------------------------
        final: dict = {}
        stopped = False
        try:
            while step < total_steps and not stopped:
                epoch, start = divmod(step, steps_per_epoch)
                index_lists = dist_utils.train_batches(
                    len(train_set), tc.batch_size, tc.seed, epoch, info, start
                )
                index_lists = index_lists[: total_steps - step]
                epoch_seed = dist_utils.mix_seed(tc.seed, epoch)
                if hasattr(train_set, "set_augmentation_seed"):  # before the loader copies it to its workers
                    train_set.set_augmentation_seed(epoch_seed)
                for batch in batches(train_set, index_lists, config.data.num_workers, seed=epoch_seed):
                    ddp_model.train()
                    batch = to_device(batch, device, channels_last)
                    # Targets on the training device, from a generator seeded by (seed, step, rank): reproducible,
                    # independent of how many steps ran before a resume, different on each DDP process.
                    generator = torch.Generator(device).manual_seed(
                        dist_utils.step_seed(tc.seed, step, info.rank)
                    )
                    enc = codec.encode(batch["keypoints"], batch["visible"], generator=generator)
                    with autocast(device, amp):
                        output = ddp_model(batch["image"])
                    loss = loss_fn(output.float(), enc)  # the loss in float32, outside autocast
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    # An update is applied whole, with its log record, or not at all: a Ctrl-C that lands
                    # between the two would checkpoint the step and lose its record for good.
                    with deferred_interrupt():
                        if config.optim.grad_clip is not None:
                            scaler.unscale_(optimizer)
                            nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
                        scaler.step(optimizer)
                        scaler.update()
                        scheduler.step()
                        step += 1
                        if step % max(1, tc.log_every) == 0 or step == total_steps:
                            log_train(step, epoch, loss, batch, enc)
                    if progress is not None:
                        progress.update(1)
                    # The checkpoint first: a failing evaluation must not lose the trained model.
                    if step == total_steps or (tc.checkpoint_every and step % tc.checkpoint_every == 0):
                        checkpoint_now(step)
                    if step == total_steps:
                        final = run_eval(step)
                    elif tc.eval_every and step % tc.eval_every == 0:
                        run_eval(step)
                    if stop_after_steps is not None and step >= stop_after_steps:
                        stopped = True
                        break
        except KeyboardInterrupt:
            if progress is not None:
                progress.close()
            if step > 0 and saved_step != step:
                checkpoint_now(step)
            last = out_dir / "last.pt"
            raise TrainingInterrupted(step, last if last.is_file() else None) from None
        if progress is not None:
            progress.close()
        if not final and not stopped and logger is not None:
            final = _final_from_log(logger.path, at_step=step)
            if not final and step == total_steps:  # the final evaluation of a finished run did not complete
                final = run_eval(step)

        history = read_jsonl(out_dir / "metrics.jsonl") if info.is_main else []
        # A finished checkpoint resumed into a new folder logs its evaluation only: no curve to draw.
        if info.is_main and any(r.get("kind") == "train" for r in history):
            save_curves(history, out_dir / "curves.png", title=f"{config.data.name} / {config.codec.name}")
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
    finally:
        if lock is not None:
            lock.release()


__all__ = ["RunResult", "TrainingInterrupted", "seed_everything", "train"]
