"""Models: shapes per model x stride x head, parameter counts, safe weight loading, memory format, dtype."""

from __future__ import annotations

import logging

import pytest
import torch

from trainers.models import MODELS, build_model, count_parameters, load_state_dict_file
from trainers.models.layers import resample

pytestmark = pytest.mark.usefixtures("one_thread")


def _expected_shape(B, K, H, W, stride, head):
    return (B, K, 2, H // stride, W // stride) if head == "binary" else (B, K, H // stride, W // stride)


# hrnet_w32 shares every code path with hrnet_w18: two of its cases keep the suite fast.
SHAPE_CASES = [
    (name, stride, head)
    for name in MODELS
    if name != "hrnet_w32"
    for stride in (4, 8, 16)
    for head in ("heatmap", "binary")
]
SHAPE_CASES += [("hrnet_w32", 4, "heatmap"), ("hrnet_w32", 16, "binary")]


@pytest.mark.parametrize("name, stride, head", SHAPE_CASES)
def test_output_shapes(name, stride, head):
    torch.manual_seed(0)
    model = build_model(name, num_keypoints=5, output_stride=stride, head=head)
    H, W = 64, 96  # non-square so a swapped height/width would show
    out = model(torch.randn(2, 3, H, W))
    assert tuple(out.shape) == _expected_shape(2, 5, H, W, stride, head)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert model.output_stride == stride and model.num_keypoints == 5


@pytest.mark.parametrize("stride", [1, 2])
def test_tiny_also_gives_fine_strides(stride):
    out = build_model("tiny", 3, output_stride=stride)(torch.randn(1, 3, 32, 48))
    assert tuple(out.shape) == (1, 3, 32 // stride, 48 // stride)


@pytest.mark.parametrize(
    "name, K, low, high",
    [
        # HRNetV2-W18 with the facial head: about 9.6 M in the HRNet facial-landmark paper; we get 9.66 M.
        ("hrnet_w18", 98, 9.5e6, 9.8e6),
        ("hrnet_w32", 98, 29.0e6, 30.0e6),
        ("mobilenetv2", 98, 0.4e6, 1.0e6),
        ("tiny", 98, 0.1e6, 0.5e6),
    ],
)
def test_parameter_counts_and_stride_independence(name, K, low, high):
    counts, layouts = [], []
    for stride in (4, 16):
        model = build_model(name, K, output_stride=stride)
        counts.append(count_parameters(model))
        layouts.append({k: tuple(v.shape) for k, v in model.state_dict().items()})
    assert low <= counts[0] <= high, f"{name}: {counts[0]} parameters"
    # Same parameters at every output stride: only the heatmap resolution changes in a sweep.
    assert counts[0] == counts[1] and layouts[0] == layouts[1]


def test_binary_head_layout_is_keypoint_major():
    model = build_model("tiny", 3, head="binary").eval()
    with torch.no_grad():
        model.head.conv.weight.zero_()
        model.head.conv.bias.copy_(torch.arange(6.0))
        out = model(torch.rand(1, 3, 32, 32))
    # Conv channel 2k + c is class c of keypoint k (class 1 = "keypoint in this cell").
    expected = torch.arange(6.0).reshape(1, 3, 2, 1, 1).expand_as(out)
    torch.testing.assert_close(out, expected)


def test_binary_head_has_two_channels_per_keypoint():
    heatmap = count_parameters(build_model("tiny", 7, head="heatmap"))
    binary = count_parameters(build_model("tiny", 7, head="binary"))
    fused = 32  # the tiny model's fused width (2 * 16) feeds a 1x1 conv with bias
    assert binary - heatmap == 7 * (fused + 1)


# Names and shapes of the official HRNetV2-W18 ImageNet checkpoint (hrnetv2_w18_imagenet_pretrained.pth).
OFFICIAL_W18_KEYS = {
    "conv1.weight": (64, 3, 3, 3),
    "bn2.running_var": (64,),
    "layer1.0.downsample.0.weight": (256, 64, 1, 1),
    "layer1.3.conv3.weight": (256, 64, 1, 1),
    "transition1.0.0.weight": (18, 256, 3, 3),
    "transition1.1.0.0.weight": (36, 256, 3, 3),
    "stage2.0.branches.1.3.conv2.weight": (36, 36, 3, 3),
    "stage2.0.fuse_layers.0.1.0.weight": (18, 36, 1, 1),
    "stage2.0.fuse_layers.1.0.0.0.weight": (36, 18, 3, 3),
    "transition2.2.0.0.weight": (72, 36, 3, 3),
    "stage3.3.fuse_layers.2.0.0.0.weight": (18, 18, 3, 3),
    "stage3.3.fuse_layers.2.0.1.0.weight": (72, 18, 3, 3),
    "transition3.3.0.0.weight": (144, 72, 3, 3),
    "stage4.2.branches.3.3.bn2.weight": (144,),
    "stage4.2.fuse_layers.0.3.0.weight": (18, 144, 1, 1),
    "stage4.2.fuse_layers.3.0.2.0.weight": (144, 18, 3, 3),
}


def test_hrnet_uses_the_official_key_layout():
    state = build_model("hrnet_w18", 4).state_dict()
    found = {k: tuple(state[k].shape) for k in OFFICIAL_W18_KEYS if k in state}
    assert found == OFFICIAL_W18_KEYS
    # Unchanged branches have no transition (None placeholders keep the official indices).
    assert not any(k.startswith(("transition2.0.", "transition2.1.", "transition3.0.")) for k in state)


# Names and shapes of torchvision's mobilenet_v2 ImageNet state dict for the blocks we keep (0..13).
TORCHVISION_MOBILENETV2_KEYS = {
    "features.0.0.weight": (32, 3, 3, 3),
    "features.1.conv.0.0.weight": (32, 1, 3, 3),
    "features.1.conv.1.weight": (16, 32, 1, 1),
    "features.2.conv.0.0.weight": (96, 16, 1, 1),
    "features.2.conv.1.0.weight": (96, 1, 3, 3),
    "features.2.conv.2.weight": (24, 96, 1, 1),
    "features.2.conv.3.running_mean": (24,),
    "features.13.conv.0.0.weight": (576, 96, 1, 1),
    "features.13.conv.2.weight": (96, 576, 1, 1),
}


def test_mobilenetv2_uses_the_torchvision_key_layout():
    state = build_model("mobilenetv2", 4).state_dict()
    found = {k: tuple(state[k].shape) for k in TORCHVISION_MOBILENETV2_KEYS if k in state}
    assert found == TORCHVISION_MOBILENETV2_KEYS
    assert (
        max(int(k.split(".")[1]) for k in state if k.startswith("features.")) == 13
    )  # stride-32 part dropped


def test_hrnet_backbone_checkpoint_loads_with_report(tmp_path):
    torch.manual_seed(1)
    source = build_model("hrnet_w18", 4)
    # An ImageNet-style file: backbone tensors only, plus classification layers this model does not have.
    state = {k: v for k, v in source.state_dict().items() if not k.startswith(("fuse.", "head."))}
    state["classifier.weight"] = torch.zeros(1000, 2048)
    state["incre_modules.0.0.conv1.weight"] = torch.zeros(32, 18, 1, 1)
    path = tmp_path / "hrnetv2_w18_imagenet_like.pth"
    torch.save({"state_dict": state}, path)

    model = build_model("hrnet_w18", 98, pretrained=path)
    report = model.pretrained_report
    assert sorted(report.unexpected) == ["classifier.weight", "incre_modules.0.0.conv1.weight"]
    assert report.missing and all(k.startswith(("fuse.", "head.")) for k in report.missing)
    assert not report.mismatched
    target = model.state_dict()
    assert all(torch.equal(target[k], v) for k, v in state.items() if k in target)


def test_pretrained_round_trip_unwraps_and_reports_shape_mismatch(tmp_path, caplog):
    torch.manual_seed(2)
    source = build_model("tiny", 5, head="binary")
    path = tmp_path / "tiny.pt"
    torch.save({"model": {"module." + k: v for k, v in source.state_dict().items()}}, path)

    same = build_model("tiny", 5, head="binary", pretrained=str(path))
    assert not same.pretrained_report.missing and not same.pretrained_report.unexpected
    x = torch.randn(1, 3, 32, 32)
    source.eval(), same.eval()
    torch.testing.assert_close(same(x), source(x), rtol=0, atol=0)

    with caplog.at_level(logging.WARNING, logger="trainers.models"):
        other = build_model("tiny", 3, head="binary", pretrained=path)  # different K: the head cannot load
    assert "2 shape mismatches" in caplog.text and "tiny.pt" in caplog.text
    report = other.pretrained_report
    assert {m.split(":")[0] for m in report.mismatched} == {"head.conv.weight", "head.conv.bias"}
    assert sorted(report.missing) == ["head.conv.bias", "head.conv.weight"]


class NotATensor:
    """A custom class: unpickling it would run arbitrary code paths, so weights_only must refuse it."""

    def __init__(self):
        self.payload = "x"


def test_unsafe_pickles_and_non_state_dicts_are_refused(tmp_path):
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"conv1.weight": torch.zeros(1), "extra": NotATensor()}, unsafe)
    with pytest.raises(ValueError, match="refusing to load .*unsafe.pth.*arbitrary unpickling"):
        build_model("tiny", 2, pretrained=unsafe)
    plain = tmp_path / "numbers.pth"
    torch.save({"lr": 0.1}, plain)
    with pytest.raises(ValueError, match="numbers.pth: entry 'lr' is a float"):
        load_state_dict_file(plain)
    unrelated = tmp_path / "unrelated.pth"
    torch.save({"something.else": torch.zeros(3)}, unrelated)
    with pytest.raises(ValueError, match="no tensor matches"):
        build_model("tiny", 2, pretrained=unrelated)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        build_model("tiny", 2, pretrained=tmp_path / "missing.pth")


@pytest.mark.parametrize("name", ["tiny", "mobilenetv2", "hrnet_w18"])
@pytest.mark.parametrize("head", ["heatmap", "binary"])
def test_channels_last_gives_the_same_output(name, head, device):
    torch.manual_seed(3)
    model = build_model(name, 4, output_stride=8, head=head).to(device).eval()
    x = torch.randn(2, 3, 64, 64, device=device)
    with torch.no_grad():
        reference = model(x)
        model = model.to(memory_format=torch.channels_last)
        out = model(x.to(memory_format=torch.channels_last))
    assert out.shape == reference.shape
    # Relative to the output scale: an untrained net in eval mode (BN at its initial running stats) can
    # give large outputs, and channels_last changes the summation order of every conv.
    scale = reference.abs().max()
    torch.testing.assert_close(out / scale, reference / scale, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["tiny", "mobilenetv2", "hrnet_w18"])
def test_float64_works_and_agrees_with_float32(name, device):
    torch.manual_seed(4)
    model = build_model(name, 3, output_stride=4).to(device).eval()
    x = torch.randn(1, 3, 64, 64, device=device)
    with torch.no_grad():
        single = model(x)
        double = model.double()(x.double())
    assert double.dtype == torch.float64 and double.device == x.device
    # Relative to the output scale (see the channels_last test).
    scale = double.abs().max()
    torch.testing.assert_close(single.double() / scale, double / scale, rtol=0, atol=1e-4)


def test_training_step_reaches_every_parameter():
    torch.manual_seed(5)
    model = build_model("tiny", 3, output_stride=8, head="binary")
    model(torch.randn(2, 3, 32, 32)).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        build_model("resnet", 3)
    with pytest.raises(ValueError, match="output_stride must be one of"):
        build_model("tiny", 3, output_stride=3)
    with pytest.raises(ValueError, match="head must be one of"):
        build_model("tiny", 3, head="offset")
    with pytest.raises(ValueError, match="hrnet_w18 has width 18"):
        build_model("hrnet_w18", 3, width=32)
    with pytest.raises(ValueError, match="multiples of 16.*\\(40, 64\\)"):
        build_model("tiny", 3)(torch.randn(1, 3, 40, 64))
    with pytest.raises(ValueError, match="\\(B, 3, H, W\\)"):
        build_model("tiny", 3)(torch.randn(1, 1, 64, 64))


def test_resampling_keeps_cell_centres_where_the_pixel_convention_puts_them():
    # Feature value = input-pixel x of the cell centre: (j + 0.5) * s - 0.5 under the pixel-centre rule.
    def centres(stride, cells):
        x = (torch.arange(cells, dtype=torch.float64) + 0.5) * stride - 0.5
        return x.expand(1, 1, cells, cells).clone()  # square map, the ramp runs along x

    down = resample(centres(4, 16), 4, 16)
    torch.testing.assert_close(down, centres(16, 4))
    up = resample(centres(16, 4), 16, 4)
    # Bilinear interpolation is exact on a ramp away from the border (it clamps at the first/last half cell).
    torch.testing.assert_close(up[..., 2:-2], centres(4, 16)[..., 2:-2])
    assert not torch.allclose(up[..., :1], centres(4, 16)[..., :1])  # the clamped border, for contrast


@pytest.mark.parametrize("name", ["tiny", "mobilenetv2", "hrnet_w18"])
def test_models_normalise_unit_range_images_with_imagenet_statistics(name):
    from trainers.models.layers import IMAGENET_MEAN, IMAGENET_STD

    model = build_model(name, 2)
    mean = torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1).expand(1, 3, 2, 2)
    torch.testing.assert_close(model.normalize(mean), torch.zeros(1, 3, 2, 2))
    torch.testing.assert_close(
        model.normalize(mean + torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1)), torch.ones(1, 3, 2, 2)
    )
    # Non-persistent: checkpoints keep the official key layouts.
    assert not any(k.startswith("normalize.") for k in model.state_dict())
    assert model.double().normalize.mean.dtype == torch.float64
