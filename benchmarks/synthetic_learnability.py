"""Is the synthetic dataset learnable to sub-pixel accuracy by a tiny CNN on a CPU in a few minutes?

A self-contained check (no trainer, no codec needed): a ~100k-parameter CNN with a stride-4 output is
trained with integral regression (soft-argmax over the stride-4 logits, L1 loss in input pixels) on
``SyntheticLandmarks(split="train")`` drawn on the fly, then evaluated on the ``val`` split. The reported
error is the mean Euclidean distance between prediction and label in input pixels.

    python benchmarks/synthetic_learnability.py --size 64 --minutes 3
    python benchmarks/synthetic_learnability.py --size 64 --steps 1000   # same work under any CPU load

Measured (2 CPU cores shared with other jobs, --steps 1000 --threads 1): 64 x 64 -> 0.30 px val mean
error in 266 s; 96 x 96 -> 0.27 px in 546 s; 128 x 128 -> 0.23 px in 1036 s; --size 64 --minutes 3 ->
0.31 px. With heavy CPU contention use --threads 1 (OpenMP threads on oversubscribed cores stall).
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn

from trainers.data.synthetic import SyntheticLandmarks


def conv_bn(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class Residual(nn.Module):
    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.body = conv_bn(channels, channels, dilation=dilation)

    def forward(self, x):
        return x + self.body(x)


class TinyNet(nn.Module):
    """Stride-4 heatmap logits (B, K, H/4, W/4). Dilated blocks give a receptive field (~70 px) wide
    enough to see the whole face, which is what tells a left landmark from its mirror twin."""

    def __init__(self, num_keypoints: int, width: int = 48):
        super().__init__()
        self.net = nn.Sequential(
            conv_bn(3, 24),
            conv_bn(24, 32, stride=2),
            conv_bn(32, width, stride=2),
            *[Residual(width, d) for d in (1, 2, 4, 8, 2, 1)],
            nn.Conv2d(width, num_keypoints, 1),
        )

    def forward(self, x):
        return self.net(x)


def soft_argmax(logits: torch.Tensor, stride: int) -> torch.Tensor:
    """(B, K, h, w) logits -> (B, K, 2) expected position in input pixels (pixel-centre convention)."""
    B, K, h, w = logits.shape
    prob = logits.flatten(2).softmax(-1).view(B, K, h, w)
    u = torch.arange(w, dtype=logits.dtype)
    v = torch.arange(h, dtype=logits.dtype)
    uv = torch.stack([(prob.sum(2) * u).sum(-1), (prob.sum(3) * v).sum(-1)], dim=-1)
    return (uv + 0.5) * stride - 0.5  # heatmap cells -> input pixels, u = (x + 0.5) / s - 0.5


@torch.no_grad()
def evaluate(model: nn.Module, data: SyntheticLandmarks, stride: int, batch: int = 128) -> float:
    model.eval()
    errors = []
    for start in range(0, len(data), batch):
        b = data.batch(range(start, min(start + batch, len(data))))
        pred = soft_argmax(model(b["image"]), stride)
        errors.append((pred - b["keypoints"]).norm(dim=-1).flatten())
    model.train()
    return torch.cat(errors).mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--keypoints", type=int, default=12)
    parser.add_argument("--minutes", type=float, default=3.0, help="training time budget")
    parser.add_argument(
        "--steps", type=int, default=None, help="train this many steps instead (load-independent)"
    )
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--width", type=int, default=48)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--val", type=int, default=512)
    parser.add_argument(
        "--noise-distribution",
        default="uniform",
        choices=("uniform", "gaussian"),
        help="law of the pixel noise",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    stride = 4
    size = (args.size, args.size)
    noise = {"noise_distribution": args.noise_distribution}
    train = SyntheticLandmarks(10**9, size, args.keypoints, seed=0, split="train", **noise)
    val = SyntheticLandmarks(args.val, size, args.keypoints, seed=0, split="val", **noise)
    model = TinyNet(args.keypoints, args.width)
    params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    budget = args.minutes * 60.0
    start = time.perf_counter()
    step, seen = 0, 0
    print(
        f"image {size}, K={args.keypoints}, params={params}, stride {stride}, batch {args.batch}, "
        f"{args.noise_distribution} pixel noise"
    )
    while True:
        elapsed = time.perf_counter() - start
        progress = step / args.steps if args.steps else elapsed / budget
        if progress >= 1.0:
            break
        # Cosine decay over the steps, or over wall time so that the schedule ends with the budget.
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * progress))
        for group in optimizer.param_groups:
            group["lr"] = lr
        b = train.batch(range(seen, seen + args.batch))
        seen += args.batch
        pred = soft_argmax(model(b["image"]), stride)
        loss = (pred - b["keypoints"]).abs().sum(-1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if step % 100 == 0:
            print(f"step {step} t={elapsed:.0f}s lr={lr:.2e} train L1={loss.item():.3f} px", flush=True)
    train_time = time.perf_counter() - start
    err = evaluate(model, val, stride)
    print(
        f"RESULT size={args.size} K={args.keypoints} params={params} steps={step} images={seen} "
        f"train_time={train_time:.0f}s val_mean_error={err:.3f}px "
        f"NME={err / val.normalizer(0):.4f} (normalizer {val.normalizer(0):.1f}px)"
    )


if __name__ == "__main__":
    main()
