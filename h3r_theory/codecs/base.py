"""The codec protocol: ``encode`` keypoints into training targets, ``decode`` heatmaps into keypoints.

Every codec maps keypoints given in *input pixels* to heatmap cells through :mod:`h3r_theory.conventions`
and back, so that swapping a codec never changes the pixel convention silently.

Edge semantics shared by all codecs (``u`` is a keypoint's heatmap coordinate, ``w`` the heatmap width):

* outside the input image (``x < -0.5`` or ``x >= W - 0.5``, likewise in y) or invisible: weight 0, an
  all-zero target. In cells that is :func:`h3r_theory.conventions.heatmap_extent`, which follows the
  convention: ``[-0.5, w - 0.5)`` under ``pixel_center``, ``[-1/(2s), w - 1/(2s))`` under ``msra``;
* in the border band (inside the image but outside ``[0, w - 1]``: half a cell under ``pixel_center``, up
  to ``1 - 1/(2s)`` cells on the far side under ``msra``): cell-based codecs (:class:`Argmax`,
  :class:`RandomizedRounding`) clamp ``u`` onto ``[0, w - 1]``. Such a target is biased toward the inside,
  because no cell centre lies beyond the outermost one. Every ``decode`` returns points inside the
  cell-centre box ``[0, w - 1] x [0, h - 1]`` (DARK and UDP clamp their refined point onto it);
* non-finite visible keypoints and heatmaps holding NaN or +inf raise ``ValueError`` naming
  ``(batch, keypoint)`` (-inf cells are accepted in a map whose maximum is finite: a masked logit);
* a constant (e.g. all-zero) heatmap carries no location: ``decode`` returns the heatmap centre with
  score 0 rather than an arbitrary cell.

Precision: half-precision heatmaps (float16, bfloat16, as AMP produces) are decoded in float32, and the
coordinates and scores are returned in float32 as computed, not rounded back to the maps' dtype: bfloat16
holds 8 significant bits, so between 128 and 256 pixels it keeps only whole pixels, and rounding a sub-pixel
decode onto that grid would throw away up to 0.5 px (float16: up to 0.0625 px there), more than the decoders
remove. float32 and float64 maps are decoded and returned in their own dtype.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from .. import conventions
from ..checks import check_generator, check_heatmap_peaks, check_heatmaps, check_keypoints, check_visible
from .peaks import Peak, constant_maps, map_logsumexp, scan_maps

ACTIVATIONS = ("probabilities", "logits")
SCORES = ("peak", "mass")  # what decode's scores are: see HeatmapCodec.decode
HALF_DTYPES = (torch.float16, torch.bfloat16)  # decoded in float32, and their results stay float32


class Encoded:
    """Training targets for a batch: per-keypoint heatmaps and loss weights.

    Sparse codecs (one-hot and bilinear targets) store only the cells they touch, ``cells`` and ``values``
    of shape (B, K, P); the dense ``heatmaps`` (B, K, h, w) are built on first access. This keeps
    ``encode`` cheap (a dense one-hot batch of 1024 x 98 maps of 64 x 64 is 1.6 GB) and lets the
    cross-entropy loss use the cell index directly.

    Attributes:
        weights: (B, K) float, 1 where the keypoint is visible and on the heatmap, else 0.
        centers: (B, K, 2) float, the keypoints in heatmap cells (before any clamping), x then y.
        heatmap_size: (w, h) of the heatmaps.
    """

    def __init__(
        self,
        weights: Tensor,
        centers: Tensor,
        heatmap_size: tuple[int, int],
        *,
        heatmaps: Tensor | None = None,
        cells: Tensor | None = None,
        values: Tensor | None = None,
    ) -> None:
        if (heatmaps is None) == (cells is None):
            raise ValueError("Encoded needs either dense heatmaps or sparse cells/values, not both")
        self.weights = weights
        self.centers = centers
        self.heatmap_size = heatmap_size
        self.cells = cells
        self.values = values
        self._heatmaps = heatmaps

    @property
    def heatmaps(self) -> Tensor:
        """(B, K, h, w) dense targets; zero maps where ``weights == 0``."""
        if self._heatmaps is None:
            w, h = self.heatmap_size
            B, K, _ = self.cells.shape
            dense = self.values.new_zeros(B, K, h * w)
            dense.scatter_add_(-1, self.cells, self.values)
            self._heatmaps = dense.view(B, K, h, w)
        return self._heatmaps

    @property
    def indices(self) -> Tensor | None:
        """(B, K) long flat cell index ``y * w + x`` of a one-hot target, or ``None`` for other targets."""
        if self.cells is None or self.cells.shape[-1] != 1:
            return None
        return self.cells[..., 0]

    def __repr__(self) -> str:
        kind = "dense" if self.cells is None else f"sparse[{self.cells.shape[-1]} cells]"
        return f"Encoded({kind}, batch={tuple(self.weights.shape)}, heatmap_size={self.heatmap_size})"


class HeatmapCodec:
    """Base class: holds the sizes and convention, validates inputs, maps coordinates.

    Subclasses implement ``encode`` and ``_decode_cells`` (heatmaps -> cell coordinates), and
    :meth:`point_mass` when their decoder reads more than the peak cell; ``expected`` defaults to
    ``encode`` for deterministic codecs.
    """

    name: ClassVar[str] = "codec"
    #: How ``decode`` reads its input unless told otherwise: the output space of a network trained with this
    #: codec's default loss (see :func:`h3r_theory.losses.default_loss`).
    default_activation: ClassVar[str] = "probabilities"
    default_loss: ClassVar[str] = "mse"  # the loss it is trained with: a key of h3r_theory.losses.LOSSES
    #: True when ``encode`` draws random targets.
    stochastic: ClassVar[bool] = False

    def __init__(
        self,
        input_size: tuple[int, int],
        heatmap_size: tuple[int, int],
        convention: conventions.Convention = "pixel_center",
    ) -> None:
        self.input_size = conventions.check_size(input_size, "input_size")
        self.heatmap_size = conventions.check_size(heatmap_size, "heatmap_size")
        self.convention = conventions.check_convention(convention)

    # -- coordinates ---------------------------------------------------------------------------------
    def to_heatmap(self, xy: Tensor) -> Tensor:
        """Input pixels (..., 2) -> heatmap cells (..., 2)."""
        return conventions.input_to_heatmap(xy, self.input_size, self.heatmap_size, self.convention)

    def to_input(self, uv: Tensor) -> Tensor:
        """Heatmap cells (..., 2) -> input pixels (..., 2)."""
        return conventions.heatmap_to_input(uv, self.input_size, self.heatmap_size, self.convention)

    @property
    def stride(self) -> tuple[float, float]:
        """Input pixels per heatmap cell, (x, y)."""
        return conventions.stride(self.input_size, self.heatmap_size)

    # -- protocol ------------------------------------------------------------------------------------
    def encode(
        self, keypoints: Tensor, visible: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Encoded:
        raise NotImplementedError

    def expected(self, keypoints: Tensor, visible: Tensor | None = None) -> Encoded:
        """E[encode(keypoints)]; for a deterministic codec that is ``encode`` itself."""
        return self.encode(keypoints, visible)

    def decode(
        self, heatmaps: Tensor, activation: str | None = None, score: str = "peak", **options
    ) -> tuple[Tensor, Tensor]:
        """Heatmaps (B, K, h, w) -> keypoints (B, K, 2) in input pixels and scores (B, K).

        Both come back in the maps' dtype for float32 and float64 maps, and in float32 for float16 and
        bfloat16 maps, which are decoded in float32 (see the module docstring for what rounding back would
        cost).

        ``activation`` says what the maps hold: ``"logits"`` (raw outputs of a network trained with a softmax
        loss) or ``"probabilities"`` (the targets ``encode``/``expected`` produce, or outputs trained to
        match them). It defaults to the codec's :attr:`default_activation`, the space of a network trained
        with the codec's default loss, so ``decode(network_output)`` is right; decoding a *target* of a
        codec whose default is ``"logits"`` needs ``activation="probabilities"``.

        ``score`` says what the scores are:

        * ``"peak"`` (the default): each map's value at its first maximum, in the maps' own space (a logit
          for logit maps). This is what the peer toolbox reports, and it costs nothing beyond the argmax.
        * ``"mass"``: the probability that the cells the decoder reads hold (:meth:`point_mass`): for logit
          maps their share of the map's softmax, which needs the softmax normaliser of every map, one
          ``exp`` per cell: more work than reading the maps (``benchmarks/codecs.py`` times it). Scores
          that rank predictions across images (COCO AP) want this for logit maps, since a softmax is blind
          to a constant added to a map and its peak logit carries no absolute meaning.

        The coordinates do not depend on ``score``. ``options`` are the codec's decoder settings for this
        call only (e.g. ``method`` of :class:`RandomizedRounding`).
        """
        activation = self.default_activation if activation is None else activation
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {score!r}")
        check_heatmaps(heatmaps, self.heatmap_size, finite=False)
        maps = heatmaps.float() if heatmaps.dtype in HALF_DTYPES else heatmaps
        # The first maxima, and the softmax normaliser if the scores need it, in one pass over the maps.
        normaliser = score == "mass" and self._needs_normaliser(activation, options)
        peak = scan_maps(maps, normaliser=normaliser)
        # NaN or +inf anywhere in a map makes its peak non-finite: checked on the (B, K) peaks, not per cell.
        check_heatmap_peaks(peak.value)
        uv = self._decode_cells(maps, activation, peak, **options)
        scores = peak.value if score == "peak" else self.point_mass(maps, activation, peak, **options)
        # A constant map has no peak: report the centre of the heatmap, with zero confidence.
        constant = constant_maps(maps, peak.ix, peak.iy)
        if constant.any():
            w, h = self.heatmap_size
            centre = uv.new_tensor([(w - 1) / 2, (h - 1) / 2])
            uv = torch.where(constant[..., None], centre, uv)
            scores = scores.masked_fill(constant, 0.0)
        # maps.dtype: float32 for half-precision maps (see the module docstring), else the maps' own.
        return self.to_input(uv).to(maps.dtype), scores.to(maps.dtype)

    def point_mass(self, heatmaps: Tensor, activation: str, peak: Peak, **options) -> Tensor:
        """The ``"mass"`` scores (B, K): the probability that the cells the decoder reads hold.

        Here the peak cell's (decoders that read more cells override it, e.g. :class:`RandomizedRounding`'s
        window): ``exp(peak - logsumexp(map))`` for logit maps, the peak's value for probability maps.
        ``peak.lse`` is the normaliser when ``_needs_normaliser`` asked for it, else ``None``.
        """
        if activation == "probabilities":
            return peak.value
        lse = map_logsumexp(heatmaps, peak.value) if peak.lse is None else peak.lse
        return torch.exp(peak.value - lse)

    def _needs_normaliser(self, activation: str, options: dict) -> bool:
        """Whether :meth:`point_mass` reads ``peak.lse`` (the maps' softmax normaliser) for these settings.

        :meth:`decode` then computes it in the same pass over the maps as the argmax, while each chunk of
        maps is in cache (:func:`~h3r_theory.codecs.peaks.scan_maps`), instead of reading the maps twice.
        """
        return activation == "logits"

    def _decode_cells(self, heatmaps: Tensor, activation: str, peak: Peak, **options) -> Tensor:
        """(B, K, h, w) -> cell coordinates (B, K, 2); inputs validated, at least float32.

        ``peak`` holds the first maximum of every map, computed once by :meth:`decode`.
        """
        raise NotImplementedError

    # -- helpers for subclasses ----------------------------------------------------------------------
    def _prepare(
        self, keypoints: Tensor, visible: Tensor | None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Validate inputs; return heatmap coordinates ``uv`` (B, K, 2) and loss weights (B, K).

        Invisible keypoints may hold NaN; their ``uv`` is replaced by 0 so that no NaN reaches a target.
        """
        check_keypoints(keypoints, visible)
        check_generator(generator, keypoints.device)
        mask = check_visible(visible, keypoints)
        uv = self.to_heatmap(keypoints)
        inside = conventions.in_image(keypoints, self.input_size)  # = on the heatmap, see heatmap_extent
        weights = mask * inside.to(mask.dtype)
        uv = torch.where(weights[..., None] > 0, uv, torch.zeros_like(uv))
        return uv, weights

    def _clamp_to_cells(self, uv: Tensor) -> Tensor:
        """Clamp ``uv`` (..., 2) onto the cell-centre box ``[0, w-1] x [0, h-1]`` (the border band bias)."""
        w, h = self.heatmap_size
        return torch.stack((uv[..., 0].clamp(0, w - 1), uv[..., 1].clamp(0, h - 1)), dim=-1)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(input_size={self.input_size}, heatmap_size={self.heatmap_size}, "
            f"convention={self.convention!r})"
        )
