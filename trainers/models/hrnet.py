"""HRNetV2 (Wang et al., "Deep High-Resolution Representation Learning for Visual Recognition", TPAMI 2020).

The backbone keeps four parallel branches at strides 4, 8, 16 and 32 with widths ``C, 2C, 4C, 8C``
(``C = 18`` for W18, ``32`` for W32) and repeatedly exchanges information between them. The
"HRNetV2" representation of the facial-landmark paper upsamples all four branches to the finest one and
concatenates them (``15C`` channels); a 1x1 conv-BN-ReLU mixes them and a 1x1 conv gives the heatmaps.

Stage layout (the configuration of the ImageNet and facial-landmark models):

========  ==================================================  ========  ===========
stage     blocks                                              modules   branches
========  ==================================================  ========  ===========
stem      3x3 s2 conv (64) + 3x3 s2 conv (64)                 -         stride 4
layer1    4 bottlenecks, 64 -> 256                            -         1
stage2    4 basic blocks per branch                           1         2
stage3    4 basic blocks per branch                           4         3
stage4    4 basic blocks per branch                           3         4
========  ==================================================  ========  ===========

Module names follow the official checkpoints (``conv1, bn1, conv2, bn2, layer1, transition1, stage2,
transition2, stage3, transition3, stage4``, with ``branches`` and ``fuse_layers`` inside each module and
``None`` placeholders kept in the lists so indices agree), so ``hrnetv2_w18_imagenet_pretrained.pth``
loads into the backbone with ``strict=False``; its classification layers are reported as unexpected.

Configurable output stride: the four branches are resampled to the TARGET stride (bilinear up from
coarser branches, 2x2 average pooling down from finer ones, see :mod:`.layers`) before the concat, so
the model has identical parameters at every output stride (the mixing conv is 1x1), and stride 4 is
exactly the HRNetV2 head. Inside the backbone, upsampling in the fuse layers is bilinear with
``align_corners=False`` (the official pose code uses nearest, the facial code bilinear): the choice
that keeps feature cells centred where the package's pixel convention puts them.
"""

from __future__ import annotations

import torch.nn.functional as F
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

OUTPUT_STRIDES = (1, 2, 4, 8, 16, 32)
BRANCH_STRIDES = (4, 8, 16, 32)
NUM_MODULES = (1, 4, 3)  # stage2, stage3, stage4
NUM_BLOCKS = 4


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity shortcut (widths are equal inside the HRNet branches)."""

    expansion = 1

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4), with a projection shortcut when the widths differ."""

    expansion = 4

    def __init__(self, cin: int, planes: int) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


def _exchange(cin: int, cout: int, source: int, target: int) -> nn.Module | None:
    """The path from branch ``source`` to branch ``target`` inside a fuse layer.

    Coarser -> finer: a 1x1 conv-BN to the target width (upsampled in ``forward``). Finer -> coarser:
    ``target - source`` stride-2 3x3 convs, ReLU between them but not after the last one (the sum is
    activated once, after all inputs are added). Same branch: ``None`` (identity).
    """
    if source == target:
        return None
    if source > target:
        return conv_bn_act(cin, cout, kernel=1, act=None)
    steps = []
    for step in range(target - source):
        last = step == target - source - 1
        steps.append(
            conv_bn_act(cin, cout if last else cin, kernel=3, stride=2, act=None if last else nn.ReLU)
        )
    return nn.Sequential(*steps)


class HighResolutionModule(nn.Module):
    """Parallel branches of basic blocks, then every branch receives the sum of all branches."""

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(*[BasicBlock(c) for _ in range(NUM_BLOCKS)]) for c in channels
        )
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(_exchange(channels[j], channels[i], j, i) for j in range(len(channels)))
            for i in range(len(channels))
        )
        self.relu = nn.ReLU(inplace=False)

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        out = []
        for i, paths in enumerate(self.fuse_layers):
            total = xs[i]
            for j, path in enumerate(paths):
                if j == i:
                    continue
                y = path(xs[j])
                if j > i:  # coarser branch: bring it up to this branch's grid
                    y = F.interpolate(y, size=xs[i].shape[-2:], mode="bilinear", align_corners=False)
                total = total + y
            out.append(self.relu(total))
        return out


def _transition(previous: list[int], current: list[int]) -> nn.ModuleList:
    """Adapt existing branches whose width changes (3x3 conv) and spawn new ones from the coarsest branch.

    A new branch ``i`` is reached by ``i + 1 - len(previous)`` stride-2 3x3 conv-BN-ReLUs, as in the
    official layout (only the last one changes the width). ``None`` keeps an unchanged branch.
    """
    layers: list[nn.Module | None] = []
    for i, cout in enumerate(current):
        if i < len(previous):
            layers.append(conv_bn_act(previous[i], cout, 3) if previous[i] != cout else None)
            continue
        steps, cin = [], previous[-1]
        for step in range(i + 1 - len(previous)):
            width = cout if step == i - len(previous) else cin
            steps.append(conv_bn_act(cin, width, 3, stride=2))
            cin = width
        layers.append(nn.Sequential(*steps))
    return nn.ModuleList(layers)


class HRNetV2(nn.Module):
    """HRNetV2-W``width`` with a keypoint head at a configurable output stride.

    Args:
        num_keypoints: K.
        width: C, the width of the stride-4 branch (18 or 32 for the published models).
        output_stride: stride of the output heatmaps, one of 1, 2, 4, 8, 16, 32.
        head: ``"heatmap"`` -> (B, K, H/s, W/s) or ``"binary"`` -> (B, K, 2, H/s, W/s).

    Input (B, 3, H, W) with H, W multiples of 32.
    """

    def __init__(
        self, num_keypoints: int, width: int = 18, output_stride: int = 4, head: str = "heatmap"
    ) -> None:
        super().__init__()
        self.output_stride = check_stride(output_stride, OUTPUT_STRIDES, f"hrnet_w{width}")
        self.normalize = ImageNormalization()  # images arrive in [0, 1]
        self.num_keypoints = num_keypoints
        self.width = width
        self.input_multiple = BRANCH_STRIDES[-1]
        channels = [width * 2**i for i in range(4)]

        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(Bottleneck(64, 64), *[Bottleneck(256, 64) for _ in range(NUM_BLOCKS - 1)])

        self.transition1 = _transition([256], channels[:2])
        self.stage2 = nn.Sequential(*[HighResolutionModule(channels[:2]) for _ in range(NUM_MODULES[0])])
        self.transition2 = _transition(channels[:2], channels[:3])
        self.stage3 = nn.Sequential(*[HighResolutionModule(channels[:3]) for _ in range(NUM_MODULES[1])])
        self.transition3 = _transition(channels[:3], channels)
        self.stage4 = nn.Sequential(*[HighResolutionModule(channels) for _ in range(NUM_MODULES[2])])

        concat = sum(channels)
        self.fuse = conv_bn_act(concat, concat, kernel=1)
        self.head = KeypointHead(concat, num_keypoints, head)
        init_backbone(self)

    @staticmethod
    def _enter(transition: nn.ModuleList, xs: list[Tensor]) -> list[Tensor]:
        # Existing branches continue from themselves; new branches start from the coarsest one.
        out = []
        for i, layer in enumerate(transition):
            source = xs[i] if i < len(xs) else xs[-1]
            out.append(source if layer is None else layer(source))
        return out

    def features(self, x: Tensor) -> list[Tensor]:
        """The four branch outputs, strides 4, 8, 16, 32, widths C, 2C, 4C, 8C."""
        check_input(x, self.input_multiple, f"hrnet_w{self.width}")
        x = self.normalize(x)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.layer1(x)
        xs = self.stage2(self._enter(self.transition1, [x]))
        xs = self.stage3(self._enter(self.transition2, xs))
        return self.stage4(self._enter(self.transition3, xs))

    def forward(self, x: Tensor) -> Tensor:
        fused = fuse_to_stride(self.features(x), BRANCH_STRIDES, self.output_stride)
        return self.head(self.fuse(fused))
