"""MobileNetV2 (Sandler et al., CVPR 2018) truncated at stride 16, with stride 4/8/16 features fused.

The backbone is the MobileNetV2 trunk up to and including the 96-channel stage (stride 16); the stride-32
stages (160, 320, 1280 channels) are dropped because a landmark heatmap never needs them and they hold
most of the parameters. Inverted-residual settings ``(expansion t, channels c, repeats n, stride s)``:

    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1)

Features are tapped after the last block of the 24- (stride 4), 32- (stride 8) and 96-channel (stride 16)
stages, reduced by 1x1 conv-BN-ReLU laterals to ``neck`` channels each, resampled to the output stride
(:func:`.layers.fuse_to_stride`), concatenated, mixed by one 3x3 conv-BN-ReLU and read out by the head.
The parameters do not depend on the output stride.

Names follow torchvision's ``mobilenet_v2`` (``features.<i>.conv.<j>``), so an ImageNet state dict of
that layout loads into ``features`` with ``strict=False`` (its ``features.14`` onwards and ``classifier``
are reported as unexpected).
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
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1))
TAP_STRIDES = (4, 8, 16)
TAP_AFTER_STAGE = (1, 2, 4)  # the last 24-, 32- and 96-channel blocks: strides 4, 8, 16


def round_channels(channels: float, divisor: int = 8) -> int:
    """Width rounded to the nearest multiple of ``divisor``, never below 90% of the request (MobileNet)."""
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * channels else rounded


class InvertedResidual(nn.Module):
    """1x1 expand (none if t = 1), 3x3 depthwise, 1x1 linear projection; identity shortcut if shapes agree."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(conv_bn_act(cin, hidden, kernel=1, act=nn.ReLU6))
        layers += [
            conv_bn_act(hidden, hidden, kernel=3, stride=stride, groups=hidden, act=nn.ReLU6),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)
        self.use_shortcut = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        return x + out if self.use_shortcut else out


class MobileNetV2Fused(nn.Module):
    """MobileNetV2 trunk (to stride 16) + stride 4/8/16 fusion + keypoint head.

    Args:
        num_keypoints: K.
        output_stride: one of 1, 2, 4, 8, 16.
        head: ``"heatmap"`` -> (B, K, H/s, W/s) or ``"binary"`` -> (B, K, 2, H/s, W/s).
        width: MobileNet width multiplier (1.0 = the standard widths).
        neck: channels of each lateral and of the fused features.

    Input (B, 3, H, W) with H, W multiples of 16.
    """

    def __init__(
        self,
        num_keypoints: int,
        output_stride: int = 4,
        head: str = "heatmap",
        width: float = 1.0,
        neck: int = 64,
    ) -> None:
        super().__init__()
        self.output_stride = check_stride(output_stride, OUTPUT_STRIDES, "mobilenetv2")
        self.normalize = ImageNormalization()  # images arrive in [0, 1]
        if not width > 0:
            raise ValueError(f"mobilenetv2: width multiplier must be > 0, got {width!r}")
        self.num_keypoints = num_keypoints
        self.input_multiple = TAP_STRIDES[-1]

        cin = round_channels(32 * width)
        blocks: list[nn.Module] = [conv_bn_act(3, cin, 3, stride=2, act=nn.ReLU6)]
        taps, tap_channels = [], []
        for stage, (t, c, n, s) in enumerate(SETTINGS):
            cout = round_channels(c * width)
            for i in range(n):
                blocks.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
            if stage in TAP_AFTER_STAGE:
                taps.append(len(blocks) - 1)
                tap_channels.append(cout)
        self.features = nn.Sequential(*blocks)
        self.taps = tuple(taps)
        self.laterals = nn.ModuleList(conv_bn_act(c, neck, kernel=1) for c in tap_channels)
        self.fuse = conv_bn_act(neck * len(TAP_STRIDES), neck, kernel=3)
        self.head = KeypointHead(neck, num_keypoints, head)
        init_backbone(self)

    def multiscale(self, x: Tensor) -> list[Tensor]:
        """Trunk features at strides 4, 8, 16 (24, 32, 96 channels at width 1)."""
        check_input(x, self.input_multiple, "mobilenetv2")
        x = self.normalize(x)
        out = []
        for i, block in enumerate(self.features):
            x = block(x)
            if i in self.taps:
                out.append(x)
        return out

    def forward(self, x: Tensor) -> Tensor:
        lateral = [layer(f) for layer, f in zip(self.laterals, self.multiscale(x), strict=True)]
        return self.head(self.fuse(fuse_to_stride(lateral, TAP_STRIDES, self.output_stride)))
