"""The model designs the studies compare: one backbone (the tiny CNN), several ways to read a keypoint.

A :class:`Variant` is plain data (a study config lists them by name) and three pure functions say what it
is: :func:`build_model` (the network), :func:`loss` (what training minimises) and :func:`predict` (input
pixels, and the predicted distribution over cells where there is one). The designs:

==================  =====================================================  ===================================
``loss``            trained on                                             read by
==================  =====================================================  ===================================
``codec``           the codec's own target and loss (argmax one-hot, DARK  the codec's own decoder
                    Gaussian + MSE, randomized rounding sample/expected
                    + spatial-softmax cross-entropy)
``codec+window``    the same cross-entropy plus ``coordinate_weight`` x    the codec's decoder (the window
                    the L1 distance in input PIXELS of the decoded point   mean, differentiable in the logits)
``integral``        L1 in input pixels of the softmax expectation of the   the softmax expectation
                    whole map (soft-argmax, Sun et al. ECCV 2018)
``offset``          cross-entropy to the codec's target on channel 0,      the peak cell of channel 0 plus the
                    plus L1 in pixels of a per-cell sub-cell offset        offset read at that cell
                    (channels 1, 2) on the 3 x 3 cells around the
                    keypoint's cell
==================  =====================================================  ===================================

``frozen_features`` (a probe, not a design): ``0`` trains the whole network. ``s > 0`` takes the stem and
stages (the backbone's features at strides 4, 8, 16) of the plain design (the same variant with
``frozen_features = 0``) trained at output stride ``s`` with learning rate ``donor_lr`` on the same seed
and budget, and keeps them fixed, weights and BatchNorm statistics; the laterals, the fusion and the head
are trained afresh at the run's own stride. Features that give a low error through a stride-4 readout,
read through a stride-16 one, separate what the backbone knows from what the readout can express.

``head_width``: the channels of the readout (the 3 x 3 fusion conv's output and the head's input), 0 for
the backbone's own ``2 x width``; ``strides`` and ``budgets``: the study's strides and training budgets a
design runs at (empty: all of them). ``donor_steps``: the budget the donor of a ``frozen_features`` probe is
trained for, 0 for the run's own (a readout trained longer than its features, on the same fixed features).

``fusion``: how the tiny CNN brings its stride-4 and stride-8 features down to a coarser output stride:
``"avgpool"`` (the package's fusion, ``trainers.models.layers.resample``) or ``"learned"`` (space to
depth, then a 1 x 1 conv back to the same width: every sub-cell feature keeps its own weights instead of
being averaged away).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from h3r_theory import codecs, losses
from h3r_theory.codecs import Encoded, HeatmapCodec, soft_argmax_cells

from ..models.layers import KeypointHead, conv_bn_act, init_backbone, resample
from ..models.tiny import TAP_STRIDES, TinyNet

LOSSES = ("codec", "codec+window", "integral", "offset")
FUSIONS = ("avgpool", "learned")


@dataclasses.dataclass(frozen=True)
class Variant:
    """One design: the codec (target, conventions, decoder), the loss and the backbone's options."""

    name: str
    codec: str = "randomized_rounding"
    options: dict = dataclasses.field(default_factory=dict)  # codec constructor options
    loss: str = "codec"  # one of LOSSES
    coordinate_weight: float = 1.0  # codec+window and offset: weight of the pixel term (per px)
    fusion: str = "avgpool"  # one of FUSIONS
    width: int = 16  # the tiny CNN's stem width
    frozen_features: int = 0  # 0, or the output stride of the donor whose stem and stages are kept fixed
    donor_lr: float = 0.0  # the donor's learning rate (required with frozen_features)
    head_width: int = 0  # channels of the fusion conv and the head's input; 0 = the backbone's 2 x width
    strides: tuple = ()  # the study's strides this design runs at; empty = every one
    budgets: tuple = ()  # the study's budgets (training steps) this design runs at; empty = every one
    donor_steps: int = 0  # the donor's budget with frozen_features; 0 = the run's own

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"variant {self.name!r}: loss must be one of {LOSSES}, got {self.loss!r}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"variant {self.name!r}: fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.codec not in codecs.available():
            raise ValueError(
                f"variant {self.name!r}: unknown codec {self.codec!r}; available: {codecs.available()}"
            )
        if not (isinstance(self.width, int) and not isinstance(self.width, bool) and self.width >= 1):
            raise ValueError(f"variant {self.name!r}: width must be an int >= 1, got {self.width!r}")
        weight = self.coordinate_weight
        if not (isinstance(weight, (int, float)) and 0 < float(weight) < 1e6):
            raise ValueError(f"variant {self.name!r}: coordinate_weight must be in (0, 1e6), got {weight!r}")
        frozen = self.frozen_features
        if not isinstance(frozen, int) or isinstance(frozen, bool) or frozen not in (0, *TAP_STRIDES):
            raise ValueError(
                f"variant {self.name!r}: frozen_features must be 0 (train everything) or a donor stride in "
                f"{TAP_STRIDES}, got {self.frozen_features!r}"
            )
        lr_ok = isinstance(self.donor_lr, (int, float)) and not isinstance(self.donor_lr, bool)
        if self.frozen_features and not (lr_ok and 0 < float(self.donor_lr) < 10):
            raise ValueError(
                f"variant {self.name!r}: frozen_features needs donor_lr in (0, 10), got {self.donor_lr!r}"
            )
        if not self.frozen_features and self.donor_lr != 0.0:
            raise ValueError(f"variant {self.name!r}: donor_lr is only used with frozen_features")
        hw = self.head_width
        if not (isinstance(hw, int) and not isinstance(hw, bool) and 0 <= hw <= 4096):
            raise ValueError(f"variant {self.name!r}: head_width must be an int in [0, 4096], got {hw!r}")
        if not isinstance(self.strides, (list, tuple)) or not all(
            isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in self.strides
        ):
            raise ValueError(
                f"variant {self.name!r}: strides must be a list of ints >= 1, got {self.strides!r}"
            )
        if not isinstance(self.budgets, (list, tuple)) or not all(
            isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in self.budgets
        ):
            raise ValueError(
                f"variant {self.name!r}: budgets must be a list of ints >= 1, got {self.budgets!r}"
            )
        ds = self.donor_steps
        if not (isinstance(ds, int) and not isinstance(ds, bool) and ds >= 0):
            raise ValueError(f"variant {self.name!r}: donor_steps must be an int >= 0, got {ds!r}")
        if ds and not self.frozen_features:
            raise ValueError(f"variant {self.name!r}: donor_steps is only used with frozen_features")
        # a list from YAML or JSON compares equal to the tuple
        object.__setattr__(self, "strides", tuple(self.strides))
        object.__setattr__(self, "budgets", tuple(self.budgets))
        if self.loss != "codec" and self.codec != "randomized_rounding":
            raise ValueError(
                f"variant {self.name!r}: loss {self.loss!r} is built on the randomized_rounding codec, "
                f"got codec {self.codec!r}"
            )


def donor_budget(variant: Variant, steps: int) -> int:
    """The training steps of a ``frozen_features`` probe's donor for a run of ``steps``: ``donor_steps``, or
    the run's own budget when that is 0."""
    return variant.donor_steps or steps


def variant_from_dict(data: Any, where: str) -> Variant:
    """A :class:`Variant` from a config mapping; unknown keys fail, naming the valid ones."""
    names = [f.name for f in dataclasses.fields(Variant)]
    if not isinstance(data, dict) or "name" not in data:
        raise ValueError(f"{where} must be a mapping with a 'name', got {data!r}")
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid keys: {names}")
    return Variant(**{**data, "options": dict(data.get("options") or {})})


def build_codec(variant: Variant, input_size: tuple[int, int], stride: int) -> HeatmapCodec:
    """The variant's codec for a square or rectangular input (W, H) at an output stride."""
    W, H = input_size
    return codecs.build(
        variant.codec, input_size=(W, H), heatmap_size=(W // stride, H // stride), **variant.options
    )


class LearnedDownsample(nn.Module):
    """Space to depth by ``factor`` (each factor x factor block of cells becomes factor^2 channels), then a
    1 x 1 conv-BN-ReLU back to ``channels``: a downsampling whose weights see every sub-cell position."""

    def __init__(self, channels: int, factor: int) -> None:
        super().__init__()
        self.factor = factor
        self.mix = conv_bn_act(channels * factor * factor, channels, kernel=1)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, h, w) -> (B, C, h / factor, w / factor)."""
        return self.mix(F.pixel_unshuffle(x, self.factor))


class StudyNet(TinyNet):
    """The tiny CNN with the study's options: learned downsampling in the fusion, and ``channels`` output
    maps per keypoint (1: a heatmap; 3: a heatmap and an x, y sub-cell offset per cell).

    With ``fusion="avgpool"`` and one channel it is exactly ``trainers.models.tiny.TinyNet`` (the
    same parameters in the same order, built from the same random numbers)."""

    def __init__(
        self,
        num_keypoints: int,
        output_stride: int,
        width: int,
        fusion: str,
        channels: int,
        head_width: int = 0,
    ) -> None:
        super().__init__(num_keypoints, output_stride=output_stride, width=width)
        self.channels = channels
        self.features_frozen = False
        self.down = nn.ModuleDict()
        if fusion == "learned":
            for s in TAP_STRIDES:
                if s < output_stride:
                    self.down[str(s)] = LearnedDownsample(2 * width, output_stride // s)
            init_backbone(
                self.down
            )  # He-normal like the rest; drawn after the backbone, which stays the same
        readout = head_width or 2 * width
        if head_width:  # a wider readout: the fusion conv and the head drawn afresh, after the backbone
            self.fuse = conv_bn_act(2 * width * len(TAP_STRIDES), readout, kernel=3)
            init_backbone(self.fuse)
            self.head = KeypointHead(readout, num_keypoints, "heatmap")
        if channels != 1:  # a wider last conv, initialised like the heatmap head's (near zero: flat maps)
            self.head.conv = nn.Conv2d(readout, num_keypoints * channels, kernel_size=1)
            nn.init.normal_(self.head.conv.weight, std=1e-3)
            nn.init.zeros_(self.head.conv.bias)

    def freeze_features(self, donor_state: dict[str, Tensor]) -> None:
        """Load the stem and stages from a donor's state dict and keep them fixed: no gradients, and
        BatchNorm in eval mode even while the rest trains (its running statistics are the donor's)."""
        own = self.state_dict()
        for name, value in donor_state.items():
            if name.startswith(("stem.", "stages.")):
                own[name] = value.clone()
        self.load_state_dict(own)
        for module in (self.stem, self.stages):
            module.requires_grad_(False)
        self.features_frozen = True
        self.train(self.training)

    def train(self, mode: bool = True) -> StudyNet:
        """Set training mode (``mode``) everywhere but in frozen features, which stay in eval mode."""
        super().train(mode)
        if self.features_frozen:
            self.stem.eval()
            self.stages.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, K, h, w) maps, or (B, K, channels, h, w) with more than one channel."""
        lateral = [layer(f) for layer, f in zip(self.laterals, self.multiscale(x), strict=True)]
        fused = [
            self.down[str(s)](f) if str(s) in self.down else resample(f, s, self.output_stride)
            for f, s in zip(lateral, TAP_STRIDES, strict=True)
        ]
        out = self.head.conv(self.fuse(torch.cat(fused, dim=1)))
        if self.channels == 1:
            return out
        B, _, h, w = out.shape
        return out.reshape(B, self.num_keypoints, self.channels, h, w)


def build_model(variant: Variant, num_keypoints: int, stride: int) -> StudyNet:
    """The network of ``variant``: (B, 3, H, W) in [0, 1] -> (B, K, h, w), or (B, K, 3, h, w) for ``offset``.
    With ``frozen_features`` the caller loads the donor's features (:meth:`StudyNet.freeze_features`)."""
    channels = 3 if variant.loss == "offset" else 1
    return StudyNet(num_keypoints, stride, variant.width, variant.fusion, channels, variant.head_width)


def donor_of(variant: Variant) -> Variant:
    """The plain design whose trained features a ``frozen_features`` probe reads: the probe's codec, loss and
    backbone width, trained whole with the package's own readout (average-pool fusion, the default head)."""
    return dataclasses.replace(
        variant,
        frozen_features=0,
        donor_lr=0.0,
        donor_steps=0,
        fusion="avgpool",
        head_width=0,
        strides=(),
        budgets=(),
    )


def same_design(a: Variant, b: Variant) -> bool:
    """Whether two variants train and read the same network: every field but where in a study's grid it
    runs (``strides``, ``budgets``), so that a study can read back another study's runs of a design on the
    part of the grid they share."""
    where = {"strides": (), "budgets": ()}
    return dataclasses.replace(a, **where) == dataclasses.replace(b, **where)


def non_default_fields(variant: Variant) -> dict:
    """The fields of ``variant`` that differ from :class:`Variant`'s defaults (a key that stays the same
    when a field is added with a default)."""
    out = {}
    for f in dataclasses.fields(Variant):
        value = getattr(variant, f.name)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if f.name == "name" or value != default:
            out[f.name] = value
    return out


def _stride(codec: HeatmapCodec) -> Tensor:
    return torch.tensor(codec.stride, dtype=torch.float32)


def offset_targets(centers: Tensor, heatmap_size: tuple[int, int]) -> tuple[Tensor, Tensor, Tensor]:
    """The cells whose offsets are trained and their targets: the 3 x 3 cells around each keypoint's nearest
    cell, clamped onto the map. Returns flat cell indices (B, K, 9), offsets ``u - cell`` (B, K, 9, 2) in cells
    and a mask (B, K, 9) that is False for a cell clamped onto one already listed."""
    w, h = heatmap_size
    nearest = centers.round()
    span = torch.arange(-1, 2, device=centers.device, dtype=centers.dtype)
    dx, dy = span.repeat(3), span.repeat_interleave(3)
    cx = (nearest[..., 0:1] + dx).clamp(0, w - 1)
    cy = (nearest[..., 1:2] + dy).clamp(0, h - 1)
    unique = ((nearest[..., 0:1] + dx) == cx) & ((nearest[..., 1:2] + dy) == cy)
    cells = (cy * w + cx).long()
    offsets = centers[..., None, :] - torch.stack((cx, cy), dim=-1)
    return cells, offsets, unique


def loss(variant: Variant, codec: HeatmapCodec, output: Tensor, enc: Encoded) -> Tensor:
    """The training loss of a batch: ``output`` the network's (float32), ``enc`` the codec's targets."""
    if variant.loss == "codec":
        return losses.default_loss(codec)[1](output, enc)
    s = _stride(codec).to(output.device)
    if variant.loss == "integral":
        # Soft-argmax in cells, the error in input pixels (cells x stride: the convention is affine).
        return losses.coordinate_l1(soft_argmax_cells(output, "logits") * s, enc.centers * s, enc.weights)
    if variant.loss == "codec+window":
        ce = losses.default_loss(codec)[1](output, enc)
        decoded, _ = codec.decode(output, activation="logits")  # input px, differentiable in the logits
        truth = codec.to_input(enc.centers)
        return ce + variant.coordinate_weight * losses.coordinate_l1(decoded, truth, enc.weights)
    # "offset": channel 0 is the heatmap, channels 1 and 2 the offsets in cells
    ce = losses.default_loss(codec)[1](output[:, :, 0], enc)
    cells, target, unique = offset_targets(enc.centers, codec.heatmap_size)
    flat = output[:, :, 1:].flatten(-2)  # (B, K, 2, h w)
    predicted = flat.gather(-1, cells[:, :, None, :].expand(-1, -1, 2, -1)).transpose(-1, -2)  # (B, K, 9, 2)
    per_cell = ((predicted - target) * s).abs().sum(-1) * unique  # px, L1 over x and y
    per_keypoint = per_cell.sum(-1) / unique.sum(-1)
    return ce + variant.coordinate_weight * (per_keypoint * enc.weights).sum() / enc.weights.sum().clamp(
        min=1
    )


def offset_decode(output: Tensor, codec: HeatmapCodec) -> Tensor:
    """(B, K, 3, h, w) -> keypoints (B, K, 2) in input pixels: the peak cell of channel 0 plus the offset
    (channels 1, 2, in cells) stored at that cell."""
    heat = output[:, :, 0]
    w = heat.shape[-1]
    flat = heat.flatten(-2).argmax(-1)  # (B, K): the first maximum
    cell = torch.stack((flat % w, flat // w), dim=-1).to(output.dtype)
    offsets = output[:, :, 1:].flatten(-2).gather(-1, flat[:, :, None, None].expand(-1, -1, 2, 1))[..., 0]
    return codec.to_input(cell + offsets)


def predict(variant: Variant, codec: HeatmapCodec, output: Tensor) -> tuple[Tensor, Tensor | None]:
    """Keypoints (B, K, 2) in input pixels, and the predicted distribution over cells (B, K, h, w) when the
    design has one (a spatial softmax: every loss here except DARK's MSE), else ``None``."""
    if variant.loss == "offset":
        logits = output[:, :, 0]
        return offset_decode(output, codec), torch.softmax(logits.flatten(-2), -1).view_as(logits)
    if variant.loss == "integral":
        return codec.to_input(soft_argmax_cells(output, "logits")), torch.softmax(
            output.flatten(-2), -1
        ).view_as(output)
    coords, _ = codec.decode(output)
    if codec.default_activation == "logits":
        return coords, torch.softmax(output.flatten(-2), -1).view_as(output)
    return coords, None
