"""Backbones and heads for heatmap regression: HRNetV2-W18/W32, MobileNetV2 (fused), and a tiny CNN.

    from trainers.models import build_model
    model = build_model("hrnet_w18", num_keypoints=98, output_stride=4, head="heatmap")
    model(images)  # (B, 3, H, W) -> (B, K, H // s, W // s) logits; head="binary" -> (B, K, 2, H // s, W // s)

Models take images in [0, 1] (the dataset contract) and normalise them with the ImageNet mean and std
inside ``forward``, so ImageNet-pretrained weights see the statistics they were trained on. Every model
exposes ``num_keypoints``, ``output_stride`` and ``input_multiple`` (H and W must be multiples
of it). Parameters do not depend on ``output_stride``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from torch import nn

from .hrnet import HRNetV2
from .layers import HEADS, KeypointHead, count_parameters
from .mobilenetv2 import MobileNetV2Fused
from .tiny import TinyNet
from .weights import LoadReport, load_pretrained, load_state_dict_file

__all__ = [
    "MODELS",
    "HEADS",
    "build_model",
    "count_parameters",
    "load_pretrained",
    "load_state_dict_file",
    "LoadReport",
    "HRNetV2",
    "MobileNetV2Fused",
    "TinyNet",
    "KeypointHead",
]

MODELS = ("hrnet_w18", "hrnet_w32", "mobilenetv2", "tiny")
_HRNET_WIDTHS = {"hrnet_w18": 18, "hrnet_w32": 32}
log = logging.getLogger(__name__)


def build_model(
    name: str,
    num_keypoints: int,
    output_stride: int = 4,
    head: str = "heatmap",
    pretrained: str | Path | None = None,
    width: float | None = None,
) -> nn.Module:
    """Build a model by name.

    Args:
        name: one of :data:`MODELS`.
        num_keypoints: K, the number of output maps.
        output_stride: heatmap stride (4, 8, 16 for every model; also 1, 2, and 32 for HRNet).
        head: ``"heatmap"`` (one channel per keypoint) or ``"binary"`` (two logits per keypoint and cell).
        pretrained: path to a local weight file (e.g. the official ``hrnetv2_w18_imagenet_pretrained.pth``)
            loaded with ``weights_only=True`` and ``strict=False``; the report of missing/unexpected keys is
            logged and kept as ``model.pretrained_report``. Never downloaded.
        width: ``tiny``: stem width (int, default 16); ``mobilenetv2``: width multiplier (default 1.0);
            HRNet: must be None or equal to the width in the name.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {MODELS}")
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    if name in _HRNET_WIDTHS:
        if width is not None and width != _HRNET_WIDTHS[name]:
            raise ValueError(f"{name} has width {_HRNET_WIDTHS[name]}; got width={width!r}")
        model: nn.Module = HRNetV2(num_keypoints, _HRNET_WIDTHS[name], output_stride, head)
    elif name == "mobilenetv2":
        model = MobileNetV2Fused(
            num_keypoints, output_stride, head, width=1.0 if width is None else float(width)
        )
    else:
        model = TinyNet(num_keypoints, output_stride, head, width=16 if width is None else width)
    if pretrained is not None:
        report = load_pretrained(model, pretrained)
        # Missing head keys are normal for a backbone checkpoint; a shape mismatch usually is not.
        (log.warning if report.mismatched else log.info)("%s", report.summary())
    return model
