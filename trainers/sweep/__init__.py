"""``h3r-sweep``: the resolution sweep, the package's central experiment.

What is measured: how a trained model's error depends on the heatmap stride, for vanilla targets and for
randomized rounding (Yu & Tao, TPAMI 2021, arXiv:2009.00225). The paper's claim is about the quantization:
a vanilla target rounds a keypoint to its cell, which costs ``(sqrt(2) + asinh(1)) / 6 = 0.3826`` cells
(``0.3826 x stride`` input pixels) even for a perfect network, while randomized rounding's target is
unbiased and its expectation decodes losslessly. Whether the TRAINED error then stops growing with the
stride is this package's question; the answer on the synthetic faces is in ``docs/sweep/README.md`` (the
sweep) and ``docs/studies/README.md`` (the studies of why: ``h3r-sweep --study``, :mod:`trainers.studies`).

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
    -> per decoder: error, RMS error / Cramer-Rao bound, jitter sd, displacement slope (motion: cell),
       the error budget over a fresh noise draw (noise_draws >= 2), error conditional on the sub-cell
       position (per axis), the vanilla floor, the error on validation faces (which selects the best)

Then: mean and 95 % Student-t interval over seeds of every number (:mod:`trainers.sweep_stats`), the
targets as measured checks (:func:`~trainers.sweep.report.targets`), and the files ``runs/sweep/results/sweep.{csv,json,md}``,
``runs.csv`` (one row per run and seed), ``conditional.csv`` and the figures ``sweep.png`` (error vs
stride, with bands, the vanilla floor and the bound), ``flops.png`` (NME vs FLOPs, both sweeps),
``conditional.png`` (signed/absolute error vs the true sub-cell position).

Motion: with ``motion: cell`` (the default sweep's) the held-out faces are rendered again moved by ``j s / n``
px along both axes (``n = shifts_per_cell``, one whole cell); with ``motion: grid`` by every pair of the
per-axis ``jitter_shifts`` (exact, :meth:`trainers.data.synthetic.SyntheticLandmarks.batch`; other datasets
fall back to bilinear resampling, which blurs). A translation-equivariant predictor keeps ``pred - label`` constant;
``jitter_sd_px`` is per keypoint the sd of the 2-D error vector over the shifts, ``sqrt(var(ex) + var(ey))``,
averaged over keypoints and images.

Run it::

    h3r-sweep                                  # default: trainers/configs/sweep.yaml, CPU, one worker per core
    h3r-sweep --workers 0                      # in this process (its thread count, the step bar)
    h3r-sweep --full                           # sweep_full.yaml: the same sweep at full size (GPU)
    h3r-sweep seeds=[0] input_sizes=[] base.train.max_steps=50   # any key of the sweep config, dotted

The package: :mod:`.config` (the grid as plain data), :mod:`.measure` (one trained model, every decoder),
:mod:`.run` (the trainings in worker processes, resumable, the folder rules), :mod:`.report` (numbers over
seeds, paired differences, targets, tables), :mod:`.figures`, :mod:`.cli`.

Everything is seeded; nothing is downloaded.
"""

from __future__ import annotations

from .cli import main
from .config import (
    SWEEP_KEYS,
    Decoder,
    ModelRun,
    SweepConfig,
    _model_run,
    base_config,
    load_sweep,
    set_dotted,
    sweep_from_dict,
)
from .figures import plot_sweep
from .measure import (
    _shifted_batch,
    build_decoders,
    fitted_temperature,
    jitter_sd,
    measure,
    predict_shifted,
    quantization_floor,
    shift_grid,
    store_temperature,
)
from .report import (
    COLUMNS,
    SUMMARY_VALUES,
    conditional_lines,
    format_table,
    headline_lines,
    main_decoders,
    pooled_conditional,
    summarize_rows,
    targets,
    write_results,
)
from .run import machine_description, run_sweep, sweep_jobs

__all__ = [
    "COLUMNS", "SUMMARY_VALUES", "SWEEP_KEYS", "Decoder", "ModelRun", "SweepConfig", "base_config",
    "build_decoders", "conditional_lines", "fitted_temperature", "format_table", "headline_lines", "jitter_sd",
    "load_sweep", "machine_description", "main", "main_decoders", "measure", "plot_sweep", "pooled_conditional",
    "predict_shifted", "quantization_floor", "run_sweep", "set_dotted", "shift_grid", "store_temperature",
    "summarize_rows", "sweep_from_dict", "sweep_jobs", "targets", "write_results", "_model_run", "_shifted_batch",
]  # fmt: skip
