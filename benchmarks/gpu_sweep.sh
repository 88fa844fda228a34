#!/usr/bin/env bash
# The GPU checks of the resolution sweep, prepared to fit in about 8 minutes on one CUDA GPU:
#   1. the tests that touch CUDA (they run on the CPU elsewhere; here torch.cuda.is_available() is true);
#   2. a shortened `h3r-sweep --full` (HRNet-W18, 256 x 256, strides 4 and 16, 3 models, one seed,
#      300 steps): every column of the CPU sweep plus GPU latency;
#   3. HRNet-W18 training throughput at 256 x 256 with AMP and its peak GPU memory;
#   4. the studies of the residual error (trainers/studies) at the full grid of issue 22 (strides 4 / 8 / 16,
#      budgets 100 to 3000 steps, 3 seeds), on the GPU, resumable: each call of this script adds the runs
#      its time limit allows (STUDY_SECONDS per study, default 120), and their records go to docs/studies_full/.
# Everything goes to benchmarks/results/gpu_sweep/ (the machine is named in each file).
# Usage: bash benchmarks/gpu_sweep.sh    (from the repository root; PY=python to use another interpreter)
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=benchmarks/results/gpu_sweep
mkdir -p "$OUT"
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_sweep.sh: no CUDA device (torch.cuda.is_available() is False); nothing measured" >&2
  exit 2
fi
"$PY" -c "import torch; print(torch.cuda.get_device_name(0), torch.__version__)" | tee "$OUT/machine.txt"

echo "== 1. CUDA tests" | tee "$OUT/tests.txt"
timeout 120 "$PY" -m pytest -q -p no:cacheprovider \
  tests/test_compute.py tests/test_engine.py tests/test_codecs.py \
  -k "cuda or gpu or amp" 2>&1 | tail -20 | tee -a "$OUT/tests.txt"

echo "== 2. shortened h3r-sweep --full"
timeout 300 "$PY" -m trainers.sweep --full --no-progress --out "$OUT/sweep" \
  "strides=[4,16]" "seeds=[0]" "input_sizes=[]" base.train.max_steps=300 base.train.checkpoint_every=0 \
  "base.data.options={num_train: 20000, num_eval: 512, num_keypoints: 18, noise_distribution: gaussian}" \
  2>&1 | tail -40 | tee "$OUT/sweep.txt"

echo "== 3. HRNet-W18 256 x 256 AMP training throughput and peak memory"
timeout 120 "$PY" - <<'PYEOF' 2>&1 | tee "$OUT/hrnet_throughput.txt"
import time

import torch

from trainers import sweep as sw
from trainers.build import build_network

config = sw.base_config(sw.load_sweep(full=True).base, stride=4)
model = build_network(config, 18).cuda().to(memory_format=torch.channels_last)
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
for batch in (32, 64):
    x = torch.rand(batch, 3, 256, 256, device="cuda").to(memory_format=torch.channels_last)
    torch.cuda.reset_peak_memory_stats()
    for i in range(25):
        if i == 5:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(x).float().square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - t0) / 20
    peak = torch.cuda.max_memory_allocated() / 2**30
    print(f"batch {batch}: {batch / seconds:.0f} images/s, {1e3 * seconds:.1f} ms/step, peak {peak:.2f} GiB")
print(torch.cuda.get_device_name(0))
PYEOF

echo "== 4. the studies at full size (resumable: finished runs are read back)"
COMMON=(strides=[4,8,16] device=auto workers=1 out_dir=runs/studies_full)
declare -A BUDGETS=([convergence]="budgets=[100,300,1000,3000]" [representation]="budgets=[3000]")
for study in convergence representation; do
  timeout "${STUDY_SECONDS:-120}" "$PY" -m trainers.sweep --study "$study" "${COMMON[@]}" "${BUDGETS[$study]}" \
    2>&1 | tail -10 | tee -a "$OUT/studies.txt" || true   # stopped by the limit: the finished runs are kept
  "$PY" -m trainers.sweep --study "$study" --report "${COMMON[@]}" "${BUDGETS[$study]}" \
    "record_dir=docs/studies_full/$study" | tee -a "$OUT/studies.txt"
done
