"""Running the sweep: one training per (model, stride, input size, seed), then the record."""

from __future__ import annotations

import concurrent.futures as futures
import dataclasses
import inspect
import json
import math
import multiprocessing
import os
import sys
import time
from pathlib import Path

import torch

from .. import compute, sweep_stats
from ..build import build_codec, build_datasets, build_network
from ..data.batch_cache import BatchCache
from ..engine import seed_everything, train
from ..logging_utils import write_text_atomic
from ..run_folder import note
from ..runtime import one_thread_worker
from .config import SweepConfig, base_config
from .measure import build_decoders, fitted_temperature, measure, quantization_floor, store_temperature
from .report import COLUMNS, _plain, format_table, summarize_rows, targets, write_results


def machine_description() -> str:
    """A one-line description of where the sweep ran (for the README and the JSON record)."""
    cpu = compute.cpu_name()
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
    """``overwrite=True`` when the engine has it: a sweep re-run replaces its own unfinished run folders."""
    return {"overwrite": True} if "overwrite" in inspect.signature(train).parameters else {}


def run_name(job: dict) -> str:
    """The folder of a job under the sweep's ``out_dir``."""
    return f"{job['run'].name}_s{job['stride']}_in{job['input']}_seed{job['seed']}"


def job_config(sweep: SweepConfig, job: dict, out_dir: Path):
    """The trainers config of one job."""
    return base_config(
        sweep.base, stride=job["stride"], codec=job["run"], out_dir=str(out_dir / run_name(job)),
        seed=job["seed"], input_size=job["input"],
    )  # fmt: skip


def job_signature(sweep: SweepConfig, job: dict, out_dir: Path) -> dict:
    """Everything that shapes a job's numbers: its trainers config and the measurement settings. A finished
    job's record is read back only when its stored signature equals this one."""
    measurement = {k: getattr(sweep, k) for k in ("jitter_shifts", "eval_batch_size", "temperature_samples",
                                                  "bound", "model_width", "strides", "seeds", "input_sizes",
                                                  "input_stride", "input_seeds")}  # fmt: skip
    return _plain({"config": json.loads(job_config(sweep, job, out_dir).to_json()), "run": dataclasses.asdict(job["run"]),
                   "measurement": measurement})  # fmt: skip


_DATA: dict = {}  # per process: (seed, size) -> (train set, eval set, bound); the jobs of a seed share them


def _datasets(sweep: SweepConfig, config) -> tuple:
    key = (
        config.train.seed,
        json.dumps(dataclasses.asdict(config.data), sort_keys=True, default=str),
        sweep.bound,
    )
    if key not in _DATA:  # one train and one held-out set per (seed, size): every codec sees them
        _DATA.clear()  # the jobs of one (seed, size) are consecutive: free the last one's batches
        train_set, eval_set = (
            BatchCache(d) if hasattr(d, "batch") else d for d in build_datasets(config, ["train", "eval"])
        )
        # The validation faces that select the best decoder (never the held-out ones that report it): the
        # synthetic set's own "val" split; a real dataset has none here, and its selection says so.
        val_set = None
        if config.data.name == "synthetic":
            val_config = dataclasses.replace(config, data=dataclasses.replace(config.data, eval_split="val"))
            val_set = build_datasets(val_config, ["eval"])[0]
        bound = None
        if sweep.bound and getattr(eval_set, "noise_distribution", None) == "gaussian":
            from ..bound import dataset_bound

            n_eval = len(eval_set) if config.eval.max_samples is None else config.eval.max_samples
            bound = dataset_bound(eval_set, range(min(len(eval_set), n_eval)))
        _DATA[key] = (train_set, eval_set, val_set, bound)
    return _DATA[key]


def run_job(sweep: SweepConfig, job: dict, out_dir: Path, base_input: int, progress: bool = False) -> dict:
    """Train one job, measure every decoder; returns ``{"rows", "conditional", "train_size", "cpu_seconds"}``.
    A pure function of the sweep and the job at a given thread count (the data cache is exact)."""
    cpu0 = time.process_time()
    run, seed, stride, size = job["run"], job["seed"], job["stride"], job["input"]
    config = job_config(sweep, job, out_dir)
    config.train.progress = progress  # the step bar of this run
    train_set, eval_set, val_set, bound = _datasets(sweep, config)
    seed_everything(seed)  # same initial parameters at every stride and codec of a seed
    model = build_network(config, train_set.num_keypoints, sweep.model_width)
    t0, c0 = time.perf_counter(), time.process_time()
    result = train(config, model=model, train_set=train_set, eval_set=eval_set, **_train_kwargs())
    train_cpu = time.process_time() - c0
    train_wall = time.perf_counter() - t0
    codec = build_codec(config, tuple(eval_set.input_size))
    cost = compute.measure_compute(
        result.model, tuple(eval_set.input_size), devices=("cpu",), repeats=sweep.latency_repeats, warmup=2
    )
    temperature = fitted_temperature(result.model, codec, train_set, sweep.temperature_samples)
    if temperature is not None:
        temperature = store_temperature(result.checkpoint, temperature, sweep.temperature_samples)
    motion = None
    if sweep.motion == "cell":  # one whole cell of motion, along both axes
        motion = [j * codec.stride[0] / sweep.shifts_per_cell for j in range(sweep.shifts_per_cell)]
    measured = measure(
        result.model,
        codec,
        build_decoders(run, codec, temperature),
        eval_set,
        sweep.jitter_shifts,
        batch_size=sweep.eval_batch_size,
        max_samples=config.eval.max_samples,
        bound=bound,
        motion=motion,
        noise_draws=sweep.noise_draws,
    )
    validation = {}
    if val_set is not None:  # unmoved validation faces only: what the selection of a decoder reads
        for name, m in measure(result.model, codec, build_decoders(run, codec, temperature), val_set, [0.0],
                               batch_size=sweep.eval_batch_size, max_samples=config.eval.max_samples).items():  # fmt: skip
            validation[name] = m["mean_error_px"]
    w, h = codec.heatmap_size
    floor = quantization_floor(stride)
    rows, conditional = [], []
    for name, m in measured.items():
        sweeps = []
        if size == base_input and seed in sweep.seeds:
            sweeps.append("stride")
        if stride == sweep.input_stride and (size in sweep.input_sizes or "stride" in sweeps):
            sweeps.append("input")
        rows.append({
            "sweep": "+".join(sweeps),
            "codec": name,
            "model": run.name,
            "trained_as": run.codec,
            "target": run.options.get("target", "sample") if run.codec == "randomized_rounding" else "",
            "seed": seed,
            "stride": stride,
            "input": size,
            "heatmap": f"{w}x{h}",
            **{k: m.get(k, float("nan")) for k in ("nme", "mean_error_px", "rms_error_px", "mean_error_shifted_px", "jitter_sd_px")},
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
            "val_mean_error_px": validation.get(name, float("nan")),
            "slope": m.get("slope", float("nan")),
            "wobble_px": m.get("wobble_px", float("nan")),
            **budget_columns(m),
        })  # fmt: skip
        conditional += sweep_stats.conditional_error_rows(
            m["conditional"], codec=name, stride=stride, input=size, seed=seed
        )
    return {"rows": rows, "conditional": conditional, "train_size": len(train_set), "train_wall": train_wall,
            "cpu_seconds": time.process_time() - cpu0}  # fmt: skip


def budget_columns(measured: dict) -> dict:
    """The error budget's parts (px^2), its closure and the noise sd over the Cramer-Rao bound, as row
    columns (NaN without a budget)."""
    b = measured.get("budget")
    nan = float("nan")
    out = {k: (b[k] if b else nan) for k in ("noise_var_px2", "offset_px2", "phase_px2", "per_face_px2")}
    out["budget_closure"] = measured.get("budget_closure", nan)
    ratio = b.get("noise_var_over_bound") if b else None
    out["noise_sd_over_bound"] = math.sqrt(ratio) if ratio is not None else nan
    return out


def default_workers() -> int:
    """One worker per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


RECORD_NAME = "sweep_run.json"  # a finished job's rows, in its run folder
MARKER_NAME = ".h3r-sweep"  # marks a folder as a sweep's output folder


def open_sweep_folder(out_dir: Path, overwrite: bool) -> None:
    """The folder rules of ``h3r-sweep``: a file, or a non-empty folder that is not a sweep's (no marker and
    no ``results/sweep.json``: e.g. an ``h3r-train`` run or a folder of your own), is refused unless
    ``overwrite``; the sweep's own folder is resumed (finished jobs are read back)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(
            f"--out {out_dir} is a file, not a folder: give a folder for the sweep's runs and results"
        )
    if out_dir.is_dir() and any(out_dir.iterdir()):
        ours = (out_dir / MARKER_NAME).is_file() or (out_dir / "results" / "sweep.json").is_file()
        if not ours and not overwrite:
            held = [n for n in ("last.pt", "config.json", "metrics.jsonl") if (out_dir / n).exists()]
            what = f"an h3r-train run ({', '.join(held)})" if held else "files that are not a sweep's"
            raise ValueError(
                f"{out_dir} holds {what}; the sweep would write its runs and results there: use another --out, "
                "or --overwrite to write into it anyway"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    marker = out_dir / MARKER_NAME
    if not marker.is_file():
        marker.write_text("h3r-sweep output folder: finished runs are read back from their sweep_run.json\n")


def finished_job(sweep: SweepConfig, job: dict, out_dir: Path, overwrite: bool) -> dict | None:
    """The stored result of a finished job with the same signature, else None. A stored result of OTHER
    settings is refused (naming the run) unless ``overwrite``, which runs the job again."""
    path = out_dir / run_name(job) / RECORD_NAME
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
        signature, result = stored["signature"], stored["result"]
    except (OSError, ValueError, KeyError, TypeError):
        note(f"{path} is unreadable: that run is trained again")
        return None
    if signature != job_signature(sweep, job, out_dir):
        if overwrite:
            return None
        raise ValueError(
            f"{path} is a finished run of other settings; re-running it would replace it: use another --out, "
            "or --overwrite to train every changed run again"
        )
    return result


def run_sweep(
    sweep: SweepConfig,
    progress: bool = True,
    log=print,
    command: str | None = None,
    workers: int | None = None,
    overwrite: bool = False,
) -> dict:
    """Train every job of :func:`sweep_jobs` not already finished in ``out_dir``, measure every decoder,
    write the results; returns the record.

    ``workers``: trainings in parallel, each in its own process on one torch thread (default: one per core;
    0 = in this process, with its thread count and the training's step bar). The numbers are those of a
    serial run on one thread (tested). ``progress``: one line per finished training (which, elapsed, ETA
    from the cost of the trainings so far). ``command`` is the command line to record with the results.
    Folder rules: :func:`open_sweep_folder`, one sweep per folder at a time (a lock), finished jobs read
    back (:func:`finished_job`): a killed sweep resumes where it stopped.
    """
    from ..run_folder import acquire_lock

    t_start, cpu_start = time.perf_counter(), time.process_time()
    machine = machine_description()  # now, so that its load average is the one the sweep started under
    out_dir = Path(sweep.out_dir)
    open_sweep_folder(out_dir, overwrite)
    lock = acquire_lock(out_dir)
    try:
        (out_dir / "results").mkdir(parents=True, exist_ok=True)
        probe = base_config(sweep.base)
        base_input = int(probe.data.input_size[0])
        jobs = sweep_jobs(sweep, base_input)
        workers = default_workers() if workers is None else workers
        if workers < 0:
            raise ValueError(f"workers must be >= 0 (0 = in this process), got {workers}")
        if workers:  # the trainings run in workers on one thread each, not on this process's threads
            machine = machine.replace(
                f"({torch.get_num_threads()} threads)", f"({workers} worker processes of 1 thread)"
            )
        steps = int(probe.train.max_steps or 0) or 1
        costs = [_job_cost(j, steps) for j in jobs]
        results: list[dict | None] = [finished_job(sweep, j, out_dir, overwrite) for j in jobs]
        todo = [i for i, r in enumerate(results) if r is None]
        if progress and len(todo) < len(jobs):
            print(f"sweep: {len(jobs) - len(todo)} of {len(jobs)} trainings already finished in {out_dir}: read back",
                  file=sys.stderr, flush=True)  # fmt: skip
        total_cost, done_cost = sum(costs[i] for i in todo), 0.0

        def finished(i: int, result: dict) -> None:
            nonlocal done_cost
            results[i] = result
            path = out_dir / run_name(jobs[i]) / RECORD_NAME
            write_text_atomic(
                path,
                json.dumps(_plain({"signature": job_signature(sweep, jobs[i], out_dir), "result": result})),
            )
            done_cost += costs[i]
            if progress:
                elapsed = time.perf_counter() - t_start
                eta = elapsed / done_cost * (total_cost - done_cost)
                first = result["rows"][0]
                print(f"sweep run {todo.index(i) + 1}/{len(todo)} done: {run_name(jobs[i])}, error "
                      f"{first['mean_error_px']:.3f} px ({first['codec']}) (elapsed {_format_seconds(elapsed)}, "
                      f"ETA {_format_seconds(eta)})", file=sys.stderr, flush=True)  # fmt: skip

        if workers == 0:
            _DATA.clear()  # nothing from an earlier sweep in this process
            for i in todo:
                finished(i, run_job(sweep, jobs[i], out_dir, base_input, progress))
        elif todo:
            context = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited torch threads
            with futures.ProcessPoolExecutor(
                min(workers, len(todo)), mp_context=context, initializer=one_thread_worker
            ) as pool:
                pending = {pool.submit(run_job, sweep, jobs[i], out_dir, base_input): i for i in todo}
                try:
                    for future in futures.as_completed(pending):
                        finished(pending[future], future.result())
                except BaseException:
                    for future in pending:
                        future.cancel()
                    raise
        rows = [row for r in results for row in r["rows"]]
        conditional = [c for r in results for c in r["conditional"]]
        record = {
            "title": sweep.title,
            "machine": machine,
            "wall_seconds": time.perf_counter() - t_start,
            "cpu_seconds": time.process_time()
            - cpu_start
            + sum(results[i]["cpu_seconds"] for i in todo if workers),
            "workers": workers,
            "command": command,
            "columns": COLUMNS,
            "rows": rows,
            "conditional": conditional,
            "sweep": _plain(dataclasses.asdict(sweep)),
            "base_input": base_input,
            "train_size": results[0]["train_size"] if results else 0,
            "eval_size": rows[0]["num_samples"] if rows else 0,
        }
        record["summary"] = summarize_rows(rows)
        record["targets"] = targets(record["summary"], rows, base_input)
        write_results(record, out_dir / "results")
    finally:
        lock.release()
    log(format_table(record))
    return record
