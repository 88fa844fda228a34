"""Why the budget's closure to the held-out MSE is looser for argmax than for randomized rounding.

The budget's parts add up exactly to the MSE over the noise draws; the closure compares them with the MSE
of the held-out set's own images, which is ONE draw. This script retrains the convergence study's argmax
run at stride 4, 100 steps, seed 0 (the same code path as the study, on one thread) and prints the MSE of
the set's own images and of six fresh noise draws: the spread between draws is the closure's noise.
Run: .venv/bin/python docs/studies/closure_check.py  (about a minute on one core)
"""

import torch

from trainers.studies import budget, runner, variants

torch.set_num_threads(1)
study = runner.load_study("convergence")
variant = variants.Variant(name="argmax", codec="argmax")
config = runner.run_config(study, 4, 100, 0.012, 0)
train_set, _, test_set, _ = runner.datasets(config, 256)
codec = variants.build_codec(variant, (128, 128), 4)
runner.seed_everything(0)
model = variants.build_model(variant, 12, 4)
runner.train_steps(model, variant, codec, config, train_set)
model.eval()
indices = list(range(256))
with torch.no_grad():
    batch = test_set.batch(indices)
    own = runner._predict(model, variant, codec, batch["image"])[0]
    fresh = [
        runner._predict(model, variant, codec, im)[0]
        for im in budget.noise_draws(test_set, indices, 6, seed=0)
    ]
truth = batch["keypoints"].double()


def mse(p):
    return float((p - truth).pow(2).sum(-1).mean())


print(f"argmax, stride 4, 100 steps, seed 0: MSE of the set's own images {mse(own):.3f} px^2; "
      f"of 6 fresh noise draws {', '.join(f'{mse(p):.3f}' for p in fresh)} px^2")  # fmt: skip
