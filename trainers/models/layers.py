"""Building blocks shared by the backbones: conv-BN-act, stride resampling, multi-scale fusion, heads.

Every backbone here ends the same way: features from several strides are resampled to ONE target output
stride, concatenated, mixed, and turned into keypoint logits by a :class:`KeypointHead`. The mixing and
head weights do not depend on the target stride, so a model has exactly the same parameters at output
stride 4, 8 or 16 and a resolution sweep changes the heatmap resolution and nothing else.

Resampling follows the package's pixel convention (pixel centres at integers, ``align_corners=False``):
a cell of stride ``s`` covers input pixels ``[j*s - 0.5, (j+1)*s - 0.5)``, so going from stride ``s`` to
``2s`` averages 2 x 2 cells (``avg_pool2d``) and going from ``2s`` to ``s`` is bilinear interpolation
with ``align_corners=False``; both keep every cell centred where the convention says it is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

HEADS = ("heatmap", "binary")


def conv_bn_act(
    cin: int,
    cout: int,
    kernel: int = 3,
    stride: int = 1,
    groups: int = 1,
    act: type[nn.Module] | None = nn.ReLU,
) -> nn.Sequential:
    """``Sequential(conv, bn[, act])``; indices 0/1/2 match the key layout of torchvision and HRNet."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act is not None:
        layers.append(act(inplace=True))
    return nn.Sequential(*layers)


# ImageNet channel statistics (RGB, images in [0, 1]), the ones torchvision and the HRNet ImageNet models
# were trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageNormalization(nn.Module):
    """``(x - mean) / std`` per RGB channel, so models take images in [0, 1] (the dataset contract) and
    ImageNet-pretrained weights still see the input statistics they were trained on.

    The statistics are non-persistent buffers: they follow ``.to(dtype/device)`` but stay out of the
    state dict, so checkpoints keep the official key layouts.
    """

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).reshape(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def check_stride(output_stride: int, allowed: Sequence[int], model: str) -> int:
    """Validate ``output_stride`` (a power of two the model supports)."""
    if not isinstance(output_stride, int) or output_stride not in allowed:
        raise ValueError(f"{model}: output_stride must be one of {tuple(allowed)}, got {output_stride!r}")
    return output_stride


def check_input(x: Tensor, multiple: int, model: str) -> None:
    """Inputs must be (B, 3, H, W) with H and W multiples of the model's coarsest stride."""
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{model}: images must have shape (B, 3, H, W), got {tuple(x.shape)}")
    H, W = x.shape[-2:]
    if H % multiple or W % multiple:
        raise ValueError(
            f"{model}: input height and width must be multiples of {multiple} (its coarsest "
            f"feature stride), got (H, W) = ({H}, {W})"
        )


def resample(x: Tensor, from_stride: int, to_stride: int) -> Tensor:
    """Resample features (B, C, h, w) from one stride to another (powers of two apart), see module doc."""
    if from_stride == to_stride:
        return x
    if from_stride < to_stride:
        factor = to_stride // from_stride
        return F.avg_pool2d(x, kernel_size=factor, stride=factor)
    factor = from_stride // to_stride
    h, w = x.shape[-2:]
    return F.interpolate(x, size=(h * factor, w * factor), mode="bilinear", align_corners=False)


def fuse_to_stride(features: Sequence[Tensor], strides: Sequence[int], to_stride: int) -> Tensor:
    """Resample each (B, C_i, H/s_i, W/s_i) map to ``to_stride`` and concatenate along channels."""
    return torch.cat([resample(f, s, to_stride) for f, s in zip(features, strides, strict=True)], dim=1)


def binary_prior_logit(num_cells: int) -> float:
    """Log-odds ``log(1 / (num_cells - 1))`` that one cell of a map of ``num_cells`` holds the keypoint.

    A keypoint falls in exactly one of the ``h * w`` cells, so before seeing an image each cell is the
    keypoint's with probability ``1 / (h w)``: the logit a calibrated per-cell classifier starts from
    (about -5.5 for 16 x 16 cells, -8.3 for 64 x 64).
    """
    if not isinstance(num_cells, int) or num_cells < 2:
        raise ValueError(f"num_cells must be an int >= 2, got {num_cells!r}")
    return -math.log(num_cells - 1)


class KeypointHead(nn.Module):
    """1x1 conv from features to per-keypoint logits.

    ``kind="heatmap"``: one channel per keypoint, output (B, K, h, w) -- Gaussian targets (MSE) or the
    logits of a spatial softmax (randomized rounding, argmax, soft-argmax).
    ``kind="binary"``: two logits per keypoint and cell, output (B, K, 2, h, w), **keypoint-major**: conv
    channel ``2k + c`` is class ``c`` of keypoint ``k``, where class 1 means "the keypoint is in this cell"
    and class 0 its complement (as :func:`h3r_theory.losses.binary_cross_entropy` trains them and the
    engine's ``sigmoid(output[:, :, 1])`` reads them). The authors' H3R release has the same 2K outputs
    laid out **class-major**, (N, 2, K, H, W) (conv channel ``cK + k``): its last conv loads here after
    permuting the output channels (ours ``2k + c`` <- theirs ``cK + k``), and the outputs then agree after
    ``.permute(0, 2, 1, 3, 4)`` (checked in notebook 09). The release ships no training code, so how its
    two channels were trained is not known.

    Initialisation. The conv weight starts near zero (std 1e-3) so initial maps are flat: a uniform spatial
    softmax and a near-zero regression target, neither favouring any cell. The heatmap head's bias is 0.
    The binary head's bias is set to the prior log-odds of a cell, :func:`binary_prior_logit` of ``h * w``
    (channel 1 to it, channel 0 to minus it), the first time the head runs in training mode, when the map
    size is known; a bias that was loaded (``load_state_dict`` with this head's keys) or set by hand
    (anything but all zeros) is left alone. Why: from bias 0 every cell starts at probability 1/2 instead
    of 1/(h w), and ``engine.train`` on the synthetic set stayed above 10 px in 200 steps; from the prior it
    reaches the heatmap head's error. The reduction of the loss (mean or sum over cells) and its form (BCE
    or a 2-class softmax per cell) made no difference at either start: the runs are listed in the message
    of commit 78f1b02, and tests/test_binary_head.py keeps a short ``engine.train`` run that fails from bias 0.
    """

    def __init__(self, in_channels: int, num_keypoints: int, kind: str = "heatmap") -> None:
        super().__init__()
        if kind not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {kind!r}")
        if not isinstance(num_keypoints, int) or num_keypoints < 1:
            raise ValueError(f"num_keypoints must be a positive int, got {num_keypoints!r}")
        self.kind = kind
        self.num_keypoints = num_keypoints
        channels = num_keypoints * (2 if kind == "binary" else 1)
        self.conv = nn.Conv2d(in_channels, channels, kernel_size=1)
        nn.init.normal_(self.conv.weight, std=1e-3)
        nn.init.zeros_(self.conv.bias)
        # The prior depends on h * w, which only the first input tells: see the class docstring.
        self.prior_pending = kind == "binary"

    @torch.no_grad()
    def init_prior(self, num_cells: int) -> None:
        """Binary head: bias of channel 1 <- ``binary_prior_logit(num_cells)``, channel 0 <- its negative,
        so that ``sigmoid`` of each channel starts at that channel's prior; marks the prior as set."""
        if self.kind != "binary":
            raise ValueError(f"init_prior applies to the binary head only, this head is {self.kind!r}")
        prior = binary_prior_logit(num_cells)
        bias = self.conv.bias.view(self.num_keypoints, 2)  # keypoint-major: (k, c) <- channel 2k + c
        bias[:, 0], bias[:, 1] = -prior, prior
        self.prior_pending = False

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        if prefix + "conv.bias" in state_dict:  # loaded weights keep their own bias
            self.prior_pending = False
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        if self.prior_pending and self.training:
            if self.conv.bias.any():  # set by hand before training: respected
                self.prior_pending = False
            else:
                self.init_prior(x.shape[-2] * x.shape[-1])
        out = self.conv(x)
        if self.kind == "binary":
            B, _, h, w = out.shape
            out = out.reshape(B, self.num_keypoints, 2, h, w)
        return out


def init_backbone(module: nn.Module) -> None:
    """He-normal convs (fan_out, as for ReLU nets), BN at identity; heads keep their own near-zero init."""
    head_convs = {id(m.conv) for m in module.modules() if isinstance(m, KeypointHead)}
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and id(m) not in head_convs:
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
