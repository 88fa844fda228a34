"""Soft-argmax / integral regression (Sun et al., ECCV 2018): the coordinate is the mean of the map.

The network's logits are turned into a distribution by a spatial softmax and the keypoint is its
expectation, a differentiable function of the logits, trained with an L1 loss on the coordinates
(:func:`h3r_theory.losses.coordinate_l1`). The target heatmap of :meth:`SoftArgmax.encode` is a normalised
Gaussian at the unquantized centre; its mean is the centre up to terms of order exp(-2 pi^2 sigma^2) away
from the border (about 3e-9 cells for sigma = 1).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..checks import check_sigma
from .base import Encoded, HeatmapCodec
from .peaks import Peak, cell_grid, gaussian_maps


def soft_argmax_cells(heatmaps: Tensor, activation: str = "logits") -> Tensor:
    """Differentiable expectation of the cell coordinates, (B, K, h, w) -> (B, K, 2) in cells.

    ``"logits"``: softmax over the whole map. ``"probabilities"``: the map's values (negatives as 0)
    normalised by their sum; a map with no positive mass gives the heatmap centre.
    """
    h, w = heatmaps.shape[-2:]
    if activation == "logits":
        probs = torch.softmax(heatmaps.flatten(-2), dim=-1).unflatten(-1, (h, w))
    else:
        # Divide by the peak first: the sum of maps holding values near the float maximum (3e38 in float32)
        # would overflow to inf and make every weight 0.
        mass = heatmaps.clamp(min=0)
        mass = mass / mass.flatten(-2).amax(-1).clamp(min=torch.finfo(mass.dtype).tiny)[..., None, None]
        total = mass.flatten(-2).sum(-1)[..., None, None]
        uniform = torch.full_like(mass, 1.0 / (h * w))
        probs = torch.where(total > 0, mass / total.clamp(min=torch.finfo(mass.dtype).tiny), uniform)
    x = (probs.sum(-2) * cell_grid(w, heatmaps)).sum(-1)
    y = (probs.sum(-1) * cell_grid(h, heatmaps)).sum(-1)
    return torch.stack((x, y), dim=-1)


class SoftArgmax(HeatmapCodec):
    """Integral regression: normalised Gaussian targets, decode = expectation of the (softmax) map.

    Args:
        sigma: standard deviation of the target distribution, in cells.
    """

    name = "soft_argmax"
    default_activation = "logits"
    default_loss = "coordinate_l1"

    def __init__(
        self,
        input_size: tuple[int, int],
        heatmap_size: tuple[int, int],
        convention: str = "pixel_center",
        sigma: float = 1.0,
    ) -> None:
        super().__init__(input_size, heatmap_size, convention)
        self.sigma = check_sigma(sigma)

    def encode(
        self, keypoints: Tensor, visible: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Encoded:
        """Normalised Gaussian distributions (each visible map sums to 1) centred at the keypoints."""
        uv, weights = self._prepare(keypoints, visible, generator)
        maps = gaussian_maps(uv, self.heatmap_size, self.sigma, weights)
        total = maps.flatten(-2).sum(-1)[..., None, None]
        maps = maps / total.clamp(min=torch.finfo(maps.dtype).tiny)
        return Encoded(weights, uv, self.heatmap_size, heatmaps=maps)

    def _decode_cells(self, heatmaps: Tensor, activation: str, peak: Peak) -> Tensor:
        return soft_argmax_cells(heatmaps, activation)
