#!/usr/bin/env bash
# The learning-rate scan behind the default sweep's batch 16 and lr 1.2e-2 (docs/sweep/README.md, "Budget"):
# three models (argmax; the Gaussian target read by DARK; the sampled-target randomized rounding) at stride 4,
# 128 px, 100 steps, 3 seeds, for the previous setting (batch 32, lr 3e-3) and batch 16 at four learning
# rates. Prints, per setting, each model's mean error and 95 % interval over the seeds (px), from the
# headline of its sweep.md. A setting whose results exist is not run again.
#   bash docs/sweep/lr_scan.sh [out_dir]      # about 10 minutes on 2 idle CPU cores
set -euo pipefail
out=${1:-runs/lr_scan}
python=${PYTHON:-.venv/bin/python}
models='models=[{name: argmax, codec: argmax}, {name: gaussian, codec: dark, options: {sigma: 1.0}},
    {name: randomized_rounding, codec: randomized_rounding}]'
for setting in "32 3.0e-3" "16 3.0e-3" "16 6.0e-3" "16 1.2e-2" "16 2.4e-2"; do
    read -r batch lr <<<"$setting"
    folder="$out/b${batch}_lr${lr}"
    [ -f "$folder/results/sweep.md" ] || "$python" -m trainers.sweep strides=[4] seeds=[0,1,2] input_sizes=[] bound=false jitter_shifts=[0.0] \
        "$models" base.train.batch_size="$batch" base.optim.lr="$lr" out_dir="$folder" --no-progress >/dev/null
    for model in argmax gaussian randomized_rounding; do  # gaussian: the Gaussian target read by DARK
        cell=$(grep -m1 "^| $model |" "$folder/results/sweep.md" | cut -d'|' -f3)
        echo "batch $batch, lr $lr, $model:$cell"
    done
done
