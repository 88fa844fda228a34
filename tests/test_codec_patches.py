"""The fast paths of the decoders' building blocks give the same values as the plain ones, bit for bit."""

from __future__ import annotations

import math

import pytest
import torch

from h3r_theory.codecs.peaks import BORDERS, argmax_cells, gather_patch, gather_window


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("size", [(64, 48), (16, 16), (10, 20), (5, 5)])  # (h, w)
@pytest.mark.parametrize("radius", [1, 3, 7])
def test_gather_patch_equals_gather_window(border, size, radius):
    h, w = size
    g = torch.Generator().manual_seed(radius * 100 + h)
    maps = torch.rand(3, 7, h, w, generator=g)
    ix = torch.randint(0, w, (3, 7), generator=g)
    iy = torch.randint(0, h, (3, 7), generator=g)
    ix[0, 0], iy[0, 1], ix[1, 0], iy[1, 0] = 0, h - 1, w - 1, 0  # corners and edges
    values, _, _, inside = gather_window(maps, ix, iy, radius, border)
    patch, inside_x, inside_y = gather_patch(maps, ix, iy, radius, border)
    mask = inside_y[..., :, None] & inside_x[..., None, :]
    if border == "zero":
        patch = torch.where(mask, patch, torch.zeros(()))
    assert torch.equal(mask.flatten(-2), inside)
    assert torch.equal(patch.flatten(-2), values)


def _row_major_argmax(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The reference: torch's first maximum over the flattened map."""
    w = maps.shape[-1]
    flat = maps.flatten(-2)
    index = flat.argmax(-1)
    return index % w, index // w, flat.gather(-1, index[..., None])[..., 0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_argmax_cells_first_maximum_ties_and_nan(dtype):
    g = torch.Generator().manual_seed(0)
    maps = torch.randint(0, 3, (4, 5, 6, 7), generator=g).to(dtype)  # many ties
    maps[0, 0] = 0.0  # constant map: cell (0, 0)
    maps[1, 1, 2, 3] = math.nan  # a NaN counts as the maximum
    maps[2, 2, 4, 1] = math.inf
    maps[3, 3] = -math.inf
    ix, iy, peak = argmax_cells(maps)
    rx, ry, rpeak = _row_major_argmax(maps)
    assert torch.equal(ix, rx) and torch.equal(iy, ry)
    assert torch.equal(peak.isnan(), rpeak.isnan())
    assert torch.equal(peak.nan_to_num(0.0), rpeak.nan_to_num(0.0))
    assert (int(ix[1, 1]), int(iy[1, 1])) == (3, 2) and math.isnan(peak[1, 1])
    assert (int(ix[0, 0]), int(iy[0, 0])) == (0, 0)
