"""Randomized rounding (H3R): an unbiased, lossless heatmap quantization (Yu & Tao, TPAMI 2021).

Idea. A keypoint at heatmap coordinate ``u = i + e`` (``i = floor(u)``, ``e`` its fractional part) is
rounded *up* with probability ``e`` and *down* with probability ``1 - e``, independently per axis, and a
one-hot target is placed at the sampled cell. A fresh sample is drawn for every batch.

* Unbiased: ``E[q(u)] = i (1 - e) + (i + 1) e = u``; per-axis variance ``e (1 - e)``.
* The expectation over samples is the bilinear distribution over the 4 neighbouring cells,
  ``p(i, j) = (1 - ex)(1 - ey)``, ``p(i+1, j) = ex (1 - ey)``, ``p(i, j+1) = (1 - ex) ey``,
  ``p(i+1, j+1) = ex ey`` (see :meth:`RandomizedRounding.expected`).
* Lossless: the mean cell under that distribution is exactly ``u``, so a decoder that takes the
  probability-weighted mean of the activation points recovers the sub-cell position.

Target. ``target="sample"`` (the paper, the default) makes ``encode`` draw a fresh one-hot sample per call;
``target="expected"`` makes it return the bilinear distribution itself: the same expected gradient of the
spatial-softmax cross-entropy (which is linear in the target), without the sampling noise. The loss
(:func:`h3r_theory.losses.spatial_softmax_cross_entropy`) takes either: a one-hot target as cell indices, the
bilinear one as a dense distribution.

Which pairing is lossless (derived in :mod:`h3r_theory.theory`):

* network trained with spatial-softmax cross-entropy on the samples -> its softmax converges to the bilinear
  distribution -> ``decode(logits)`` (``activation="logits"``, the default: softmax over the activation
  points' logits);
* heatmaps that already hold probabilities (the ``expected`` targets, or sigmoid outputs of a per-pixel
  BCE head) -> ``decode(probs, activation="probabilities")`` (normalise the activation points' mass).
  Passing per-pixel BCE *logits* as ``"logits"`` weights cells by the odds ``p / (1 - p)`` and is biased.

Decoders (``method``), each the weighted mean of a set of activation points, each lossless on the expected
map because each set contains its whole 2 x 2 support:

* ``"window"`` (the default): the (2r+1)^2 cells around the maximum (``r >= 1``);
* ``"topk"``: the ``k`` largest cells (``k >= 4``; the authors' release uses ``k = 9``);
* ``"2x2"``: the argmax cell plus, on each axis, its larger neighbour: the smallest set that holds the
  bilinear support, so the one least diluted by the cells a trained network spreads mass onto.

The default is the 3 x 3 window, chosen from the default sweep's measurement on trained networks
(``docs/sweep/sweep.md``: the tiny CNN, 128 x 128 input, 3 seeds, 256 held-out faces each). At stride 16,
sampled targets, mean error [95 % interval]: window 2.847 [2.692, 3.002] px, 5 x 5 window 2.848, top-9 2.847,
top-4 2.801, 2 x 2 2.786 [2.623, 2.950]; jitter sd over re-rendered sub-pixel shifts 0.159 [0.151, 0.167] px
for the window, 0.147 (5 x 5) and 0.150 (top-9) with overlapping intervals, against 0.209 (top-4) and 0.231
[0.213, 0.250] (2 x 2). The 2 x 2 decoder has the lowest mean error at every stride of that sweep, but its
interval overlaps the window's each time, while its extra jitter lies outside the intervals at strides 8 and
16; the larger sets are not established as better on either count. The 3 x 3 window is kept: as accurate and
as smooth as any within the measurement, the cheapest of those, and local (a secondary peak elsewhere in the
map cannot pull it, as it can ``topk``); ``method="2x2"`` where error matters more than jitter.

Calibration. A network trained with the cross-entropy can come out over- or under-confident; its logits
divided by a temperature ``T`` (``decode(..., temperature=T)``) give a sharper (T < 1) or flatter (T > 1)
distribution to average. :func:`fit_temperature` fits ``T`` on training maps (``h3r-sweep`` stores it in the
checkpoint). The cross-entropy-optimal ``T`` need not lower the decode error: in the sweep cited above it came
out 0.94-0.97 and every calibrated decoder of the stride sweep had a slightly higher mean error than its
uncalibrated twin (window, stride 16: 2.899 px against 2.847), within the intervals.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..checks import check_heatmaps, check_int, check_positive, check_temperature
from .base import Encoded, HeatmapCodec
from .peaks import Peak, gather_window, map_logsumexp

DECODE_METHODS = ("window", "topk", "2x2")
TARGETS = ("sample", "expected")


def _floor_and_fraction(uv: Tensor) -> tuple[Tensor, Tensor]:
    floor = torch.floor(uv)
    return floor.long(), uv - floor


class RandomizedRounding(HeatmapCodec):
    """Randomized-rounding codec.

    Args:
        input_size, heatmap_size: (width, height) in pixels and cells.
        convention: pixel convention, see :mod:`h3r_theory.conventions`.
        method: default decoder, ``"window"``, ``"topk"`` or ``"2x2"``.
        k: number of activation points for ``"topk"`` (>= 4 for losslessness; 9 in the authors' release);
            a ``k`` beyond the number of cells uses every cell (the same result).
        radius: half-size of the ``"window"`` decoder (1 -> 3 x 3); a radius beyond the map is capped at the
            one whose window covers the whole map from any cell (the same result, without the cost).
        target: what ``encode`` returns, ``"sample"`` (a fresh one-hot draw per call) or ``"expected"``
            (the bilinear distribution, deterministic).
        temperature: default temperature of the ``"logits"`` decode, see :func:`fit_temperature`.
    """

    name = "randomized_rounding"
    default_activation = "logits"
    default_loss = "spatial_softmax_cross_entropy"
    stochastic = True

    def __init__(
        self,
        input_size: tuple[int, int],
        heatmap_size: tuple[int, int],
        convention: str = "pixel_center",
        method: str = "window",
        k: int = 9,
        radius: int = 1,
        target: str = "sample",
        temperature: float = 1.0,
    ) -> None:
        super().__init__(input_size, heatmap_size, convention)
        self.method, self.k, self.radius = _check_decoder(method, k, radius, self.heatmap_size)
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        self.target = target
        self.stochastic = target == "sample"  # an instance attribute: ``expected`` targets are deterministic
        self.temperature = check_temperature(temperature)

    def encode(
        self, keypoints: Tensor, visible: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Encoded:
        """One training target per keypoint: a one-hot draw (``target="sample"``) or :meth:`expected`.

        A draw rounds each axis up with probability ``frac(u)``.

        Args:
            keypoints: (B, K, 2) input pixels; visible: (B, K) or None; generator: a ``torch.Generator`` on
                the keypoints' device, for reproducible samples (unused for ``target="expected"``).
        Returns:
            :class:`Encoded` with one cell per keypoint (``indices`` (B, K)) for a draw, four (the bilinear
            weights) for the expectation; dense ``heatmaps`` on demand.
        """
        uv, weights = self._prepare(keypoints, visible, generator)
        if self.target == "expected":
            return self._bilinear(uv, weights)
        floor, frac = _floor_and_fraction(self._clamp_to_cells(uv))
        draw = torch.rand(frac.shape, generator=generator, device=uv.device, dtype=uv.dtype)
        cell = floor + (draw < frac).long()  # frac == 0 never rounds up, so cell stays inside the map
        w, _ = self.heatmap_size
        flat = (cell[..., 1] * w + cell[..., 0])[..., None]
        return Encoded(weights, uv, self.heatmap_size, cells=flat, values=weights[..., None].clone())

    def expected(self, keypoints: Tensor, visible: Tensor | None = None) -> Encoded:
        """E[encode]: the bilinear weights on the 4 cells around each keypoint (they sum to 1)."""
        uv, weights = self._prepare(keypoints, visible)
        return self._bilinear(uv, weights)

    def _bilinear(self, uv: Tensor, weights: Tensor) -> Encoded:
        floor, frac = _floor_and_fraction(self._clamp_to_cells(uv))
        w, h = self.heatmap_size
        ex, ey = frac[..., 0], frac[..., 1]
        x0, y0 = floor[..., 0], floor[..., 1]
        # On the last row/column frac is 0, so the "+1" neighbour has weight 0; clamp only its index.
        x1, y1 = (x0 + 1).clamp(max=w - 1), (y0 + 1).clamp(max=h - 1)
        cells = torch.stack((y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1), dim=-1)
        values = torch.stack(((1 - ex) * (1 - ey), ex * (1 - ey), (1 - ex) * ey, ex * ey), dim=-1)
        return Encoded(weights, uv, self.heatmap_size, cells=cells, values=values * weights[..., None])

    def decode(
        self,
        heatmaps: Tensor,
        activation: str | None = None,
        score: str = "peak",
        method: str | None = None,
        k: int | None = None,
        radius: int | None = None,
        temperature: float | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Weighted mean of the activation points, in input pixels (B, K, 2), and scores (B, K).

        ``activation="logits"`` (the default, see :attr:`default_activation`): weights = softmax over the
        points' logits divided by ``temperature``. ``"probabilities"``: weights = the points' values
        (negatives count as 0), normalised; a temperature other than 1 is refused there (it is defined on
        logits). ``score``: ``"peak"`` (the peak's value) or ``"mass"`` (:meth:`point_mass`: the softmax
        mass, over the whole map, that the points hold), see :meth:`HeatmapCodec.decode`. ``method``,
        ``k``, ``radius`` and ``temperature`` override the codec's settings for this call only.
        """
        return super().decode(
            heatmaps, activation, score, method=method, k=k, radius=radius, temperature=temperature
        )

    def _settings(
        self,
        activation: str,
        method: str | None = None,
        k: int | None = None,
        radius: int | None = None,
        temperature: float | None = None,
    ) -> tuple[str, int, int, float]:
        """This call's decoder settings (the options :meth:`decode` passes on): the overrides given, else the
        codec's; validated."""
        method, k, radius = _check_decoder(
            method or self.method,
            self.k if k is None else k,
            self.radius if radius is None else radius,
            self.heatmap_size,
        )
        temperature = self.temperature if temperature is None else check_temperature(temperature)
        if activation == "probabilities" and temperature != 1.0:
            raise ValueError(
                f"temperature applies to logits; got temperature={temperature} with probabilities"
            )
        return method, k, radius, temperature

    def _needs_normaliser(self, activation: str, options: dict) -> bool:
        # The mass of a logits decode at temperature 1 needs the map's normaliser (another temperature
        # scales the map first: _scaled_lse).
        temperature = options.get("temperature")
        return activation == "logits" and (self.temperature if temperature is None else temperature) == 1.0

    def _decode_cells(self, heatmaps: Tensor, activation: str, peak: Peak, **options) -> Tensor:
        method, k, radius, temperature = self._settings(activation, **options)
        cells = self._weighted_cells(heatmaps, activation, peak, method, k, radius, temperature)
        if temperature != 1.0 and not bool(torch.isfinite(cells).all()):
            # The maps were checked finite: the logits divided by the temperature overflowed.
            largest = float(heatmaps.detach().abs().amax())
            raise ValueError(
                f"temperature={temperature!r} makes the decode non-finite: logits up to {largest:.3g} in "
                f"magnitude, divided by it, overflow {heatmaps.dtype}; use a temperature >= "
                f"{largest / torch.finfo(heatmaps.dtype).max:.3g}"
            )
        return cells

    def _weighted_cells(
        self,
        heatmaps: Tensor,
        activation: str,
        peak: Peak,
        method: str,
        k: int,
        radius: int,
        temperature: float,
    ) -> Tensor:
        """The decoded cells (B, K, 2): the weighted mean of the ``method``'s points."""
        h, w = heatmaps.shape[-2:]
        if method == "window" and 2 * radius + 1 <= min(h, w):
            return window_mean(heatmaps, peak, radius, activation, temperature)
        values, x, y, inside = activation_points(heatmaps, peak, method, k, radius)
        weights = _point_weights(values, inside, peak, activation, temperature)
        mass = weights.sum(-1, keepdim=True)
        weights = weights / mass.clamp(min=torch.finfo(mass.dtype).tiny)
        uv = torch.stack(((weights * x).sum(-1), (weights * y).sum(-1)), dim=-1)
        # No positive mass among the points (e.g. an all-negative probability map): use the peak cell.
        peak_uv = torch.stack((peak.ix, peak.iy), dim=-1).to(uv.dtype)
        return torch.where(mass == 0, peak_uv, uv)

    def point_mass(self, heatmaps: Tensor, activation: str, peak: Peak, **options) -> Tensor:
        """The probability the activation points hold (B, K): their share of the map's softmax at the
        temperature (logits), or the sum of their values, negatives counting as 0 (probabilities)."""
        method, k, radius, temperature = self._settings(activation, **options)
        values, _, _, inside = activation_points(heatmaps, peak, method, k, radius)
        total = _point_weights(values, inside, peak, activation, temperature).sum(-1)
        if activation == "probabilities":
            return total
        top = peak.value.detach() / temperature
        if temperature != 1.0:
            lse_map = _scaled_lse(heatmaps, peak, 1.0 / temperature)
        else:
            lse_map = map_logsumexp(heatmaps, peak.value) if peak.lse is None else peak.lse
        return torch.exp(top + torch.log(total) - lse_map)  # total = sum exp(point / T - top) >= 1


def _point_weights(values: Tensor, inside: Tensor, peak: Peak, activation: str, temperature: float) -> Tensor:
    """Unnormalised weights (B, K, P) of the activation points: ``exp(value / T - peak / T)`` for logits, the
    values clamped at 0 for probabilities; 0 for points beyond the border."""
    if activation == "probabilities":
        return values.clamp(min=0) * inside  # cells outside the map carry no mass
    # The softmax over the points, shifted by their maximum (the peak: each point set holds the peak cell)
    # as torch.softmax shifts it (its gradient does not depend on the shift), without its kernel's cost on a
    # last axis of a few cells.
    top = peak.value.detach()
    logits = values.masked_fill(~inside, float("-inf"))
    if temperature != 1.0:
        logits, top = logits / temperature, top / temperature
    return torch.exp(logits - top[..., None])


def window_mean(
    heatmaps: Tensor, peak: Peak, radius: int, activation: str, temperature: float = 1.0
) -> Tensor:
    """The ``"window"`` decode (B, K, 2) in cells: the weighted mean of the (2r+1)^2 cells around each peak.

    The same weights as the general path (:func:`activation_points` with ``_point_weights``), with fewer,
    larger operations: one ``gather`` of the window nearest to the centred one that lies on the map (the
    (2r+1)^2 offsets of its first cell, no per-cell border arithmetic), then one matrix product of the
    weights with the columns (1, x, y) for the mass and the two weighted sums. A window that crosses the
    border is read moved onto the map, the cells it gains given weight 0. Needs ``2r + 1 <= h, w``.
    """
    h, w = heatmaps.shape[-2:]
    size = 2 * radius + 1
    ix, iy = peak.ix.reshape(-1), peak.iy.reshape(-1)
    x0, y0 = (ix - radius).clamp_(0, w - size), (iy - radius).clamp_(0, h - size)  # the window's first cell
    span = torch.arange(size, device=heatmaps.device)
    dx, dy = span.repeat(size), span.repeat_interleave(size)  # (S^2,) row-major: y outer, x inner
    values = heatmaps.reshape(-1, h * w).gather(1, (y0 * w + x0)[:, None] + (dy * w + dx))  # (N, S^2)
    if activation == "logits":
        top = peak.value.detach().reshape(-1, 1)
        if temperature != 1.0:
            values, top = values / temperature, top / temperature
        weights = torch.exp(values - top)
    else:
        weights = values.clamp(min=0)
    # Where the peak is within r of the border the window was moved onto the map (centre cx, cy != r in it):
    # keep only the cells of the centred window, columns and rows within r of the peak. Rare, so per subset.
    cx, cy = ix - x0, iy - y0
    moved = ((cx != radius) | (cy != radius)).nonzero()[:, 0]
    if moved.numel():
        keep = ((dx - cx[moved, None]).abs() <= radius) & ((dy - cy[moved, None]).abs() <= radius)
        weights = weights.index_put((moved,), weights[moved] * keep)
    # One product for the mass and the two weighted sums: columns 1, x, y of the window's cells.
    sums = weights @ torch.stack((torch.ones_like(dx), dx, dy), dim=-1).to(weights.dtype)  # (N, 3)
    mass = sums[:, :1]
    uv = sums[:, 1:] / mass.clamp(min=torch.finfo(mass.dtype).tiny) + torch.stack((x0, y0), dim=-1)
    if activation != "logits":  # a logit window holds the peak's exp(0) = 1: its mass is never 0
        # No positive mass in the window (an all-negative probability map): use the peak cell.
        uv = torch.where(mass == 0, torch.stack((ix, iy), dim=-1).to(uv.dtype), uv)
    return uv.reshape(*peak.ix.shape, 2)


def _scaled_lse(heatmaps: Tensor, peak: Peak, scale: float) -> Tensor:
    """log-sum-exp of ``scale * map`` per map (B, K), for a temperature ``1 / scale``."""
    return map_logsumexp(heatmaps * scale, peak.value * scale)


def activation_points(
    heatmaps: Tensor, peak: Peak, method: str, k: int, radius: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The cells a decoder averages: values (B, K, P), their x and y cells (B, K, P) and an on-map mask.

    ``method`` is one of :data:`DECODE_METHODS`; ``peak`` the maps' first maxima. Off-map cells (only the
    window reaches beyond the border) have ``inside`` False and must carry no weight.
    """
    w = heatmaps.shape[-1]
    if method == "topk":
        values, flat = heatmaps.flatten(-2).topk(k, dim=-1)
        return values, flat % w, flat // w, torch.ones_like(values, dtype=torch.bool)
    if method == "window":
        return gather_window(heatmaps, peak.ix, peak.iy, radius)
    # "2x2": the peak and its larger neighbour per axis; an off-map neighbour counts as smaller.
    h = heatmaps.shape[-2]
    flat = heatmaps.flatten(-2)
    ix, iy = peak.ix, peak.iy
    # The four neighbours, left, right, above, below, read from clamped cells; off-map ones lose below.
    cross = torch.stack(
        (
            iy * w + (ix - 1).clamp(min=0),
            iy * w + (ix + 1).clamp(max=w - 1),
            (iy - 1).clamp(min=0) * w + ix,
            (iy + 1).clamp(max=h - 1) * w + ix,
        ),
        dim=-1,
    )
    low = torch.finfo(heatmaps.dtype).min
    near = flat.gather(-1, cross)
    on_map = torch.stack((ix >= 1, ix <= w - 2, iy >= 1, iy <= h - 2), dim=-1)
    near = near.masked_fill(~on_map, low)
    sx = torch.where(near[..., 1] > near[..., 0], 1, -1)
    sy = torch.where(near[..., 3] > near[..., 2], 1, -1)
    # The peak, its x neighbour, its y neighbour, the diagonal.
    x = torch.stack((ix, ix + sx, ix, ix + sx), dim=-1)
    y = torch.stack((iy, iy, iy + sy, iy + sy), dim=-1)
    inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    values = flat.gather(-1, y.clamp(0, h - 1) * w + x.clamp(0, w - 1))
    return values.masked_fill(~inside, 0.0), x, y, inside


def fit_temperature(
    logits: Tensor,
    keypoints: Tensor,
    codec: RandomizedRounding,
    visible: Tensor | None = None,
    bounds: tuple[float, float] = (0.05, 20.0),
    iterations: int = 60,
) -> float:
    """The temperature ``T`` that minimises the spatial-softmax cross-entropy of ``logits / T`` against the
    expected (bilinear) target of ``keypoints``, over the visible keypoints.

    Why this objective: it is the training loss itself. The cross-entropy is linear in the target, so its
    mean over the random one-hot draws equals the cross-entropy against their expectation, and fitting ``T``
    to it on training maps is the classic temperature scaling of a classifier (Guo et al., ICML 2017), with
    no sampling noise. It is convex in ``1 / T`` (a log-sum-exp of a linear function minus a linear term),
    so the minimum is unique and found by bisection of its derivative. The decode error would be the other
    choice, but it is not smooth in ``T`` and mixes the calibration with the decoder's own bias. On exact
    logits, ``log`` of the expected map, the fit returns ``T = 1`` and the calibrated decode stays lossless.

    Args:
        logits: (B, K, h, w) network outputs on training images (any float dtype; computed in float32+).
        keypoints: (B, K, 2) their keypoints in input pixels; visible: (B, K) or None.
        codec: gives the target (``codec.expected``) and the coordinate convention.
        bounds: the search range of ``T``; a result on a bound means the optimum lies at or beyond it.
        iterations: bisection steps on ``1 / T`` (60 halve the bracket to its float64 resolution).
    Returns:
        ``T`` as a float: > 1 means the network is over-confident (its distribution is too sharp).
    """
    lo, hi = (check_positive(b, "bounds") for b in bounds)
    if not lo < hi:
        raise ValueError(f"bounds must be (low, high) with low < high, got {bounds}")
    iterations = check_int(iterations, "iterations", 1)
    check_heatmaps(logits, codec.heatmap_size, "logits")
    target = codec.expected(keypoints.to(torch.float64), visible)
    z = logits.flatten(-2).to(torch.float64 if logits.dtype == torch.float64 else torch.float32)
    weights = target.weights.to(z.dtype)
    if not weights.sum() > 0:
        raise ValueError("fit_temperature needs at least one visible keypoint on the heatmap")
    # E_q[z]: the target's mean logit per map, from its 4 sparse cells.
    target_mean = (target.values.to(z.dtype) * z.gather(-1, target.cells)).sum(-1) / weights.clamp(min=1e-30)

    def slope(beta: float) -> float:
        """d/d beta of the mean cross-entropy at beta = 1 / T: E_softmax(beta z)[z] - E_q[z], weighted."""
        model_mean = (torch.softmax(beta * z, dim=-1) * z).sum(-1)
        return float(((model_mean - target_mean) * weights).sum() / weights.sum())

    beta_lo, beta_hi = 1.0 / hi, 1.0 / lo  # slope increases with beta (convexity)
    if slope(beta_lo) >= 0:
        return hi
    if slope(beta_hi) <= 0:
        return lo
    for _ in range(iterations):
        mid = 0.5 * (beta_lo + beta_hi)
        if slope(mid) > 0:
            beta_hi = mid
        else:
            beta_lo = mid
        if beta_hi - beta_lo <= 1e-12 * beta_hi:
            break
    return 1.0 / (0.5 * (beta_lo + beta_hi))


def _check_decoder(method: str, k: int, radius: int, heatmap_size: tuple[int, int]) -> tuple[str, int, int]:
    """Validate decoder settings; returns them with ``k`` and ``radius`` as ints, capped at the map's size."""
    if method not in DECODE_METHODS:
        raise ValueError(f"method must be one of {DECODE_METHODS}, got {method!r}")
    k = check_int(k, "k", 1)
    radius = check_int(radius, "radius", 0)
    w, h = heatmap_size
    # A k beyond the map's size uses every cell; a window of radius max(w, h) - 1 covers the whole map
    # from any cell, so larger radii give the same result at a cost that grows as radius^2.
    return method, min(k, w * h), min(radius, max(w, h) - 1)
