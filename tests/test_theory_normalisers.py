"""Normalisers under the landmark-box crop, and the mean quantization NME they imply."""

from __future__ import annotations

import pytest
import torch

from h3r_theory import codecs
from h3r_theory.theory import normalisers, quantization


def _faces(n: int = 50, k: int = 10, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    size = 40 + 300 * torch.rand(n, 1, 1, generator=g, dtype=torch.float64)
    offset = 500 * torch.rand(n, 1, 2, generator=g, dtype=torch.float64)
    return offset + size * torch.rand(n, k, 2, generator=g, dtype=torch.float64)


def test_crop_of_a_known_box():
    # Landmarks spanning 100 x 50 px: the crop's side is 1.25 * 100 = 125 image px, resized to 256.
    face = torch.tensor([[[10.0, 20.0], [110.0, 70.0], [60.0, 45.0]]], dtype=torch.float64)
    points, scale = normalisers.landmark_box_crop(face, box_scale=1.25, size=256)
    assert scale.item() == pytest.approx(256 / 125)
    assert points[0, 2].tolist() == pytest.approx([127.5, 127.5])  # the box centre -> the crop's centre
    assert points[0, 1, 0] - points[0, 0, 0] == pytest.approx(100 * 256 / 125)
    d = normalisers.cropped_normalisers(face, (0, 1))
    assert d.item() == pytest.approx(float(torch.tensor([100.0, 50.0]).norm()) * 256 / 125)


def test_normalisers_do_not_depend_on_the_image_scale_or_position():
    faces = _faces()
    base = normalisers.cropped_normalisers(faces, (0, 1))
    moved = normalisers.cropped_normalisers(
        3.5 * faces + torch.tensor([7.0, -40.0], dtype=torch.float64), (0, 1)
    )
    torch.testing.assert_close(base, moved)
    points, _ = normalisers.landmark_box_crop(faces, box_scale=1.25, size=256)
    # Every landmark lies inside the crop: the box is enlarged, never cut.
    assert points.min() >= (256 - 1) / 2 - 128 / 1.25 - 1e-9
    assert points.max() <= (256 - 1) / 2 + 128 / 1.25 + 1e-9


def test_expected_nme_is_the_mean_of_the_per_face_terms():
    m = float(quantization.mean_quantization_error("round", 2))
    one = torch.tensor([100.0, 100.0], dtype=torch.float64)
    assert normalisers.expected_quantization_nme(one, 4) == pytest.approx(m * 4 / 100)
    spread = torch.tensor(
        [50.0, 150.0], dtype=torch.float64
    )  # same mean distance, more weight on the small face
    assert normalisers.expected_quantization_nme(spread, 4) == pytest.approx(m * 4 * (1 / 50 + 1 / 150) / 2)
    assert normalisers.expected_quantization_nme(spread, 4) > normalisers.expected_quantization_nme(one, 4)


def test_expected_nme_agrees_with_the_argmax_codec_on_cropped_faces():
    """Through the real codec: random faces, cropped to 256, quantized at stride 4, NME per face vs m s / d."""
    faces = _faces(n=400, k=30, seed=1)
    points, _ = normalisers.landmark_box_crop(faces)
    d = normalisers.cropped_normalisers(faces, (0, 1))
    codec = codecs.build("argmax", input_size=(256, 256), heatmap_size=(64, 64))
    xy, _ = codec.decode(codec.encode(points).heatmaps, activation="probabilities")
    nme = ((xy - points).norm(dim=-1).mean(dim=-1) / d).mean()
    expected = normalisers.expected_quantization_nme(d, 4)
    assert float(nme) == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize(
    "call",
    [
        lambda: normalisers.landmark_box_crop(torch.zeros(3, 2)),
        lambda: normalisers.landmark_box_crop(torch.zeros(1, 3, 2)),  # a box of size 0
        lambda: normalisers.landmark_box_crop(torch.rand(1, 3, 2), box_scale=0),
        lambda: normalisers.expected_quantization_nme(torch.tensor([1.0, 0.0]), 4),
        lambda: normalisers.expected_quantization_nme(torch.tensor([1.0]), 0),
    ],
)
def test_bad_input_is_refused(call):
    with pytest.raises(ValueError):
        call()
