"""A tiny CNN (~0.3 M parameters) for CPU tests and the heatmap-resolution sweep.

Four stages at strides 2, 4, 8, 16 (widths ``w, 2w, 4w, 6w``; ``w = 16`` by default); each stage is a
stride-2 3x3 conv-BN-ReLU followed by one residual block of two 3x3 convs (the stride-2 stage has no
block). Its stride 4/8/16 outputs are fused exactly like the larger models (:mod:`.layers`): 1x1
laterals to ``2w`` channels, resampled to the output stride, concatenated, a 3x3 conv-BN-ReLU, the head.
The parameters do not depend on the output stride, so a sweep over strides changes the heatmap
resolution with everything else fixed.
"""

from __future__ import annotations

from torch import Tensor, nn

from .layers import (
    ImageNormalization,
    KeypointHead,
    check_input,
    check_stride,
    conv_bn_act,
    fuse_to_stride,
    init_backbone,
)

OUTPUT_STRIDES = (1, 2, 4, 8, 16)
TAP_STRIDES = (4, 8, 16)


class ResidualBlock(nn.Module):
    """Two 3x3 conv-BN with an identity shortcut."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_act(channels, channels, 3), conv_bn_act(channels, channels, 3, act=None)
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(x + self.body(x))


class TinyNet(nn.Module):
    """Small multi-scale CNN with a keypoint head at a configurable output stride.

    Args:
        num_keypoints: K.
        output_stride: one of 1, 2, 4, 8, 16.
        head: ``"heatmap"`` -> (B, K, H/s, W/s) or ``"binary"`` -> (B, K, 2, H/s, W/s).
        width: ``w``, the stem width (16 -> about 0.3 M parameters).

    Input (B, 3, H, W) with H, W multiples of 16.
    """

    def __init__(
        self, num_keypoints: int, output_stride: int = 4, head: str = "heatmap", width: int = 16
    ) -> None:
        super().__init__()
        self.output_stride = check_stride(output_stride, OUTPUT_STRIDES, "tiny")
        self.normalize = ImageNormalization()  # images arrive in [0, 1]
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"tiny: width must be a positive int, got {width!r}")
        self.num_keypoints = num_keypoints
        self.input_multiple = TAP_STRIDES[-1]
        w = width
        self.stem = conv_bn_act(3, w, 3, stride=2)
        self.stages = nn.ModuleList(
            nn.Sequential(conv_bn_act(cin, cout, 3, stride=2), ResidualBlock(cout))
            for cin, cout in ((w, 2 * w), (2 * w, 4 * w), (4 * w, 6 * w))
        )
        self.laterals = nn.ModuleList(conv_bn_act(c, 2 * w, kernel=1) for c in (2 * w, 4 * w, 6 * w))
        self.fuse = conv_bn_act(2 * w * len(TAP_STRIDES), 2 * w, kernel=3)
        self.head = KeypointHead(2 * w, num_keypoints, head)
        init_backbone(self)

    def multiscale(self, x: Tensor) -> list[Tensor]:
        """Features at strides 4, 8, 16 (2w, 4w, 6w channels)."""
        check_input(x, self.input_multiple, "tiny")
        x = self.normalize(x)
        x = self.stem(x)
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out

    def forward(self, x: Tensor) -> Tensor:
        lateral = [layer(f) for layer, f in zip(self.laterals, self.multiscale(x), strict=True)]
        return self.head(self.fuse(fuse_to_stride(lateral, TAP_STRIDES, self.output_stride)))
