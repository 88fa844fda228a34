"""What kind of error a codec makes: not only that an invariant fails, but why.

Run on a fixed, seeded sample of realistic geometries (:func:`sample_geometries`), with keypoints spread
evenly over the interior of the map (so that their sub-cell fractions are uniform), :func:`diagnose`
reports, in words and numbers:

* **scale and offset**: the fit ``decode(encode(x)) = a x + b`` per axis, when it explains the round-trip
  error (a decode scale of ``W / (W - 1)``, an offset of half a cell), with the error left after correcting;
* **the convention** under which the codec is consistent (:func:`infer_convention`): which convention its
  encode follows (where it puts the peak for a keypoint), which its decode follows (where it reads a
  symmetric peak), and whether that is the one claimed;
* **quantization**: for a lossy codec, the mean 2-D error against the rounding floor
  ``(sqrt(2) + asinh(1)) / 6`` cells (:func:`h3r_theory.theory.quantization.mean_quantization_error`), and
  the bias as a function of the sub-cell fraction (the pull toward cell centres);
* **a stochastic encoder**: the bias and the variance of the decoded samples against ``e (1 - e)``, the
  variance of randomized rounding at sub-cell fraction ``e``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from fractions import Fraction

import torch
from torch import Tensor

from . import frames
from .strategies import DEFAULT_SPACE, Geometry, SearchSpace

#: Keypoints per geometry in the fits: evenly spaced, so quantization residuals average out to O(1/N).
FIT_KEYPOINTS = 256
#: Worst mismatch, in cells over the interior, for a convention to count as the one decode follows.
CONVENTION_TOLERANCE = 0.05
#: Largest share of encoded peaks off the convention's nearest cell for encode to count as following it.
ENCODE_TOLERANCE = 0.01
#: Keypoints and samples of the stochastic profile.
STOCHASTIC_KEYPOINTS = 16


# -- geometries and keypoints --------------------------------------------------------------------------


def sample_geometries(space: SearchSpace = DEFAULT_SPACE, seed: int = 0, count: int = 3) -> list[Geometry]:
    """A fixed, seeded sample of realistic geometries of ``space``: strides 2 to 8 (4 first), maps of at
    least 8 cells per side where the space allows; the space's own geometry when it fixes one."""
    if space.input_size is not None and space.heatmap_size is not None:
        return [Geometry(tuple(space.input_size), tuple(space.heatmap_size))]
    rng = random.Random(seed)
    strides = [s for s in (4, 2, 8, 3, 6) if s <= space.max_stride] or [1]
    if space.input_size is not None:
        W, H = space.input_size
        found = [
            Geometry((W, H), (W // sx, H // sy))
            for sx in strides
            for sy in strides
            if sx == sy and W % sx == 0 and H % sy == 0 and W // sx >= 2 and H // sy >= 2
        ]
        return found[:count] or [Geometry((W, H), (W, H))]
    if space.heatmap_size is not None:
        w, h = space.heatmap_size
        return [Geometry((w * s, h * s), (w, h)) for s in strides[:count]]
    cap = max(2, space.max_cells)
    found = [Geometry((min(48, cap) * strides[0], min(64, cap) * strides[0]), (min(48, cap), min(64, cap)))]
    while len(found) < count:
        w, h = rng.randint(min(8, cap), cap), rng.randint(min(8, cap), cap)
        s = rng.choice(strides)
        found.append(Geometry((w * s, h * s), (w, h)))
    return found


def interior_margin(geometry: Geometry, claimed: float = 0.0) -> float:
    """Cells kept free at each border for "interior" keypoints: the claimed margin, and at least 5 cells
    (a Gaussian target of sigma 2 cells truncated at the border is biased; the diagnosis is about the
    interior) where the map has room, else a quarter of its side."""
    side = min(geometry.heatmap_size)
    return max(float(claimed), min(5.0, math.floor((side - 1) / 4)))


def spread_cells(geometry: Geometry, margin: float, n: int = FIT_KEYPOINTS) -> Tensor:
    """(n, 2) keypoints in cells over ``[margin, w - 1 - margin] x [margin, h - 1 - margin]``: x evenly
    spaced, y evenly spaced in another order (golden-ratio steps), so both axes' fractions are uniform."""
    w, h = geometry.heatmap_size
    i = torch.arange(n, dtype=torch.float64)
    t = (i + 0.5) / n
    r = torch.remainder(i * 0.6180339887498949 + 0.5 / n, 1.0)
    lo_u, hi_u = margin, max(margin, w - 1 - margin)
    lo_v, hi_v = margin, max(margin, h - 1 - margin)
    return torch.stack((lo_u + t * (hi_u - lo_u), lo_v + r * (hi_v - lo_v)), dim=-1)


def border_cells(geometry: Geometry, convention: str, margin: float, n: int = 64) -> Tensor:
    """(n, 2) keypoints in cells between the image's edge and ``margin`` cells inside, on each side in turn,
    the other axis in the interior."""
    w, h = geometry.heatmap_size
    (u0, u1), (v0, v1) = frames.heatmap_extent(geometry.heatmap_size, geometry.input_size, convention)
    inner = spread_cells(geometry, margin, n)
    t = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    depth_lo_u, depth_hi_u = u0 + t * (margin - u0), (w - 1 - margin) + t * (u1 - (w - 1 - margin))
    depth_lo_v, depth_hi_v = v0 + t * (margin - v0), (h - 1 - margin) + t * (v1 - (h - 1 - margin))
    side = torch.arange(n) % 4
    u = torch.where(side == 0, depth_lo_u, torch.where(side == 1, depth_hi_u, inner[:, 0]))
    v = torch.where(side == 2, depth_lo_v, torch.where(side == 3, depth_hi_v, inner[:, 1]))
    # keep strictly inside the image box (its upper edge is open)
    u = torch.minimum(u, torch.tensor(u1 - 1e-6 * max(1.0, abs(u1)), dtype=torch.float64))
    v = torch.minimum(v, torch.tensor(v1 - 1e-6 * max(1.0, abs(v1)), dtype=torch.float64))
    return torch.stack((u, v), dim=-1)


# -- the convention a codec follows --------------------------------------------------------------------


@dataclass(frozen=True)
class ConventionFit:
    """Which convention a codec's encode and decode follow.

    Attributes:
        encode: the convention whose ``u(x)`` predicts where encode puts the peak, or ``None``.
        decode: the convention whose ``x(u)`` predicts where decode reads a symmetric peak at cell ``u``.
        consistent: a convention both follow (the codec is consistent under it), or ``None``.
        mismatch: convention -> (share of encoded peaks off its nearest cell, worst decode mismatch over the
            interior in cells).
        geometry: where it was measured.
        encode_fit, decode_fit: per axis ``(a, b)`` of ``peak cell = a x + b`` and ``x = a u + b`` (px).
        border: where ``decode``'s convention is found in the interior, how far (``worst_cells``) it reads
            the centre of a cell one cell in from a side off that convention, and at which ``cell`` and
            ``axis`` (``offset_cells`` signed); empty otherwise.
    """

    encode: str | None
    decode: str | None
    consistent: str | None
    mismatch: dict = field(default_factory=dict)
    geometry: Geometry | None = None
    encode_fit: tuple = ()
    decode_fit: tuple = ()
    note: str = ""
    border: dict = field(default_factory=dict)


def _fit(x: Tensor, y: Tensor) -> tuple[float, float]:
    """Least-squares ``y = a x + b`` (1-D float64 tensors)."""
    A = torch.stack((x, torch.ones_like(x)), dim=-1)
    sol = torch.linalg.lstsq(A, y[:, None]).solution[:, 0]
    return float(sol[0]), float(sol[1])


def _peak_cells(maps: Tensor) -> Tensor:
    """(..., 2) the (column, row) of each map's first maximum."""
    w = maps.shape[-1]
    flat = maps.flatten(-2).argmax(-1)
    return torch.stack((flat % w, flat // w), dim=-1).double()


def _blobs(cells: Tensor, geometry: Geometry, sigma: float = 1.0) -> Tensor:
    """(1, n, h, w) float64 Gaussian blobs of ``sigma`` cells centred exactly on ``cells`` (n, 2)."""
    w, h = geometry.heatmap_size
    gx = torch.exp(-((torch.arange(w, dtype=torch.float64) - cells[:, :1]) ** 2) / (2 * sigma**2))
    gy = torch.exp(-((torch.arange(h, dtype=torch.float64) - cells[:, 1:]) ** 2) / (2 * sigma**2))
    return (gy[:, :, None] * gx[:, None, :])[None]


def _convention_geometry(factory, probe) -> Geometry:
    """The probe geometry when its stride is at least 2 (conventions differ there), else one that is."""
    if probe is not None:
        (W, H), (w, h) = probe
        if W >= 2 * w and H >= 2 * h and min(w, h) >= 8:
            return Geometry(tuple(probe[0]), tuple(probe[1]))
    return Geometry((64, 64), (16, 16)) if probe is None else Geometry(tuple(probe[0]), tuple(probe[1]))


def infer_convention(factory, probe=None, geometry: Geometry | None = None) -> ConventionFit:
    """Find the convention under which ``factory``'s codec is consistent.

    Encode: keypoints spread over the interior are encoded; a convention fits when each map's peak is the
    cell nearest to its ``u(x)`` for all but ``ENCODE_TOLERANCE`` of them (rounding and lossless codecs
    alike put the peak on the nearest cell). Decode: where the codec reads the centre of integer cells of
    the interior (``_read_centres``), and a line fitted to ``x`` against the cell; a convention fits
    when its ``x(u)`` matches it within ``CONVENTION_TOLERANCE``. A codec that rounds with ``floor(x / s)``
    follows ``corner``; one that rounds ``x / s`` follows ``msra``. Where decode follows a convention in the
    interior, the same reading one cell in from each side (``_edge_cells``) says whether the border is
    decoded apart (``ConventionFit.border``).
    """
    geometry = geometry or _convention_geometry(factory, probe)
    try:
        subject = factory.under("pixel_center")(geometry.input_size, geometry.heatmap_size)
        margin = interior_margin(geometry)
        n = 2 * FIT_KEYPOINTS if subject.stochastic and not subject.has_expected else FIT_KEYPOINTS
        cells = spread_cells(geometry, margin, n)
        kp = subject.to_input(cells)[None]  # any convention: only x matters here, and it is stated in px
        maps, _ = subject.targets(kp)
        peaks = _peak_cells(maps.double().cpu())[0]  # (n, 2)
        grid = torch.round(spread_cells(geometry, margin, 32))
        decoded = _read_centres(subject, grid, geometry, maps)
        edge = _edge_cells(geometry, grid)
        edge_decoded = _read_centres(subject, edge, geometry, maps) if len(edge) else None
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the invariants report the codec's failures
        return ConventionFit(
            None, None, None, geometry=geometry, note=f"not inferred: {type(exc).__name__}: {exc}"
        )
    x = kp[0].double()
    enc_fit = tuple(_fit(x[:, a], peaks[:, a]) for a in range(2))
    dec_fit = tuple(_fit(grid[:, a], decoded[:, a]) for a in range(2))
    mismatch = {}
    for c in frames.CONVENTIONS:
        scale, offset = frames.scale_and_offset(geometry.input_size, geometry.heatmap_size, c)
        dec = 0.0
        predicted = torch.stack([torch.floor(scale[a] * x[:, a] + offset[a] + 0.5) for a in range(2)], -1)
        enc = float((predicted != peaks).double().mean())  # share of peaks off the nearest cell under c
        for a in range(2):
            us = grid[:, a]
            x_c = (us - offset[a]) / scale[a]
            fitted = dec_fit[a][0] * us + dec_fit[a][1]
            dec = max(dec, float(((fitted - x_c) * scale[a]).abs().max()))
        mismatch[c] = (enc, dec)
    encode = min(mismatch, key=lambda c: mismatch[c][0])
    decode = min(mismatch, key=lambda c: mismatch[c][1])
    encode = encode if mismatch[encode][0] <= ENCODE_TOLERANCE else None
    decode = decode if mismatch[decode][1] <= CONVENTION_TOLERANCE else None
    both = [
        c
        for c in frames.CONVENTIONS
        if mismatch[c][0] <= ENCODE_TOLERANCE and mismatch[c][1] <= CONVENTION_TOLERANCE
    ]
    claimed = getattr(factory, "convention", None)
    consistent = claimed if claimed in both else (both[0] if both else None)
    if encode is not None and encode not in both and both:
        encode = both[0]
    if decode is not None and decode not in both and both:
        decode = both[0]
    border = {}
    if decode is not None and edge_decoded is not None:
        scale, offset = frames.scale_and_offset(geometry.input_size, geometry.heatmap_size, decode)
        off = torch.stack(
            [(edge_decoded[:, a] * scale[a] + offset[a]) - edge[:, a] for a in range(2)], -1
        )  # (n, 2) cells: where decode reads the cell's centre, minus the cell
        worst = off.abs().argmax()
        j, a = divmod(int(worst), 2)
        border = {
            "worst_cells": float(off.abs().max()),
            "cell": edge[j].tolist(),
            "axis": "xy"[a],
            "offset_cells": float(off[j, a]),
        }
    return ConventionFit(encode, decode, consistent, mismatch, geometry, enc_fit, dec_fit, border=border)


#: Sub-cell step of the decode probe: peaks at ``u - DELTA`` and ``u + DELTA`` are decoded and averaged.
DELTA = 0.125


def _read_centres(subject, cells: Tensor, geometry: Geometry, like: Tensor) -> Tensor:
    """(n, 2) px where ``subject`` reads the centre of each cell (n, 2): the mean of its decodes of two
    Gaussian peaks at ``cell - DELTA`` and ``cell + DELTA`` (both axes).

    Not one peak at the cell itself: a decoder that steps toward the higher neighbour (a quarter cell, as
    Megvii's) reads an exactly symmetric peak by the sign of its own round-off; the two mirrored peaks
    cancel any such odd response, and any decoder symmetric about the cell reads their mean exactly there.
    """
    reads = []
    for step in (-DELTA, DELTA):
        maps = _blobs(cells + step, geometry).to(like.dtype).to(like.device)
        reads.append(subject.decode(maps)[0].double().cpu()[0])
    return (reads[0] + reads[1]) / 2


def _edge_cells(geometry: Geometry, grid: Tensor) -> Tensor:
    """(n, 2) cells one cell in from each side (cells 1 and ``w - 2`` along x, the other axis in the
    interior, and the same along y): where a decoder that treats the border apart reads differently. One
    cell in, not the outermost cells, so that both probe peaks lie on the cell-centre box."""
    w, h = geometry.heatmap_size
    if min(w, h) < 4:
        return torch.zeros(0, 2, dtype=torch.float64)
    u, v = grid[: len(grid) // 4, 0], grid[: len(grid) // 4, 1]
    rows = [torch.stack((torch.full_like(v, c), v), -1) for c in (1.0, w - 2.0)]
    rows += [torch.stack((u, torch.full_like(u, c)), -1) for c in (1.0, h - 2.0)]
    return torch.cat(rows)


# -- naming a scale ------------------------------------------------------------------------------------


def name_scale(scale: float, W: int, w: int) -> str:
    """``scale`` as a fraction and, where it is one, as a ratio of the geometry (``W / (W - 1)``, ...)."""
    named = {
        "W/(W-1)": W / (W - 1) if W > 1 else None,
        "(W-1)/W": (W - 1) / W,
        "w/(w-1)": w / (w - 1) if w > 1 else None,
        "(w-1)/w": (w - 1) / w,
        "W(w-1)/(w(W-1))": W * (w - 1) / (w * (W - 1)) if W > 1 else None,
        "w(W-1)/(W(w-1))": w * (W - 1) / (W * (w - 1)) if w > 1 else None,
        "s": W / w,
        "1/s": w / W,
    }
    text = f"{scale:.6g}"
    for label, value in named.items():
        if value is not None and value != 1 and abs(scale - value) <= 2e-5 * abs(value):
            exact = Fraction(value).limit_denominator(10**6)
            return f"{text} = {exact.numerator}/{exact.denominator} = {label}"
    small = Fraction(scale).limit_denominator(16)  # a plain ratio such as 3/2; larger ones would fit anything
    if small.denominator > 1 and abs(float(small) - scale) <= 2e-5 * abs(scale):
        text += f" = {small.numerator}/{small.denominator}"
    return text


# -- the diagnosis -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Diagnosis:
    """The findings, in words (``lines``) and numbers (``data``, JSON-able)."""

    lines: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)


def _round_trip(subject, cells: Tensor) -> tuple[Tensor, Tensor]:
    """Keypoints (n, 2) px and their decodes (n, 2) px, float64."""
    kp = subject.to_input(cells)[None]
    maps, _ = subject.targets(kp)
    decoded, _ = subject.decode(maps, activation="probabilities")
    return kp[0].double(), decoded.double().cpu()[0]


def rounding_floor() -> float:
    """The mean 2-D error of rounding to the nearest cell, ``(sqrt(2) + asinh(1)) / 6`` cells."""
    from ..theory.quantization import mean_quantization_error

    return float(mean_quantization_error("round", 2))


def diagnose(factory, claims, space: SearchSpace = DEFAULT_SPACE, seed: int = 0) -> Diagnosis:
    """The diagnosis of ``factory`` (a :class:`~h3r_theory.testing.CodecFactory`) under ``claims``."""
    lines: list[str] = []
    data: dict = {}
    geometries = sample_geometries(space, seed)
    data["geometries"] = [
        f"{g.heatmap_size[0]}x{g.heatmap_size[1]} of {g.input_size[0]}x{g.input_size[1]}" for g in geometries
    ]
    try:
        _diagnose_fit(factory, claims, geometries, lines, data)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the invariants report the codec's failures
        lines.append(f"round-trip fit not run: {type(exc).__name__}: {str(exc)[:120]}")
    fit = infer_convention(
        factory, geometry=next((g for g in geometries if min(g.heatmap_size) >= 8), geometries[0])
    )
    data["convention"] = {
        "claimed": factory.convention,
        "source": getattr(factory, "convention_source", "claimed"),
        "encode": fit.encode,
        "decode": fit.decode,
        "consistent": fit.consistent,
        "mismatch_cells": {c: list(v) for c, v in fit.mismatch.items()},
    }
    lines.append(_convention_line(factory, fit))
    try:
        probe = factory(geometries[0].input_size, geometries[0].heatmap_size)
        if probe.stochastic:
            _diagnose_stochastic(factory, claims, geometries, seed, lines, data)
    except (Exception, SystemExit) as exc:  # noqa: BLE001
        lines.append(f"stochastic profile not run: {type(exc).__name__}: {str(exc)[:120]}")
    return Diagnosis(lines, data)


def _convention_line(factory, fit: ConventionFit) -> str:
    line = _convention_words(factory, fit)
    border = fit.border
    if border and border["worst_cells"] > CONVENTION_TOLERANCE:
        (u, v), axis = border["cell"], border["axis"]
        line += (
            f"; that holds in the interior only: one cell in from the border decode differs from "
            f"{fit.decode} by up to {border['worst_cells']:.3g} cells (the centre of cell ({u:g}, {v:g}) read "
            f"{border['offset_cells']:+.3g} cells off along {axis})"
        )
    return line


def _convention_words(factory, fit: ConventionFit) -> str:
    if fit.note:
        return f"convention {fit.note}"
    enc = (
        f"encode follows {fit.encode} ({frames.FORMULAS[fit.encode]})"
        if fit.encode
        else "encode follows no known convention"
    )
    dec = f"decode follows {fit.decode}" if fit.decode else "decode follows no known convention"
    if fit.decode is None and fit.decode_fit and fit.mismatch:
        nearest = min(fit.mismatch, key=lambda c: fit.mismatch[c][1])
        lines = ", ".join(
            f"{'xy'[i]} = {a:.6g} {'uv'[i]} {b:+.4g} px" for i, (a, b) in enumerate(fit.decode_fit)
        )
        dec += (
            f" (it reads the centre of cell (u, v) at {lines}; the nearest, {nearest}, is off by up to "
            f"{fit.mismatch[nearest][1]:.3g} cells over the interior, {CONVENTION_TOLERANCE:g} allowed)"
        )
    if fit.encode is None and fit.decode is None:
        return f"convention: {enc}, {dec}"
    claimed = factory.convention
    if fit.consistent is None:
        return f"convention: {enc}, but {dec}: consistent under none"
    if fit.consistent == claimed and getattr(factory, "convention_source", "claimed") == "inferred":
        return (
            f"convention: consistent under {claimed}, the convention inferred for this report ({enc}, {dec})"
        )
    if fit.consistent == claimed:
        return f"convention: consistent under {claimed}, as claimed ({enc}, {dec})"
    return (
        f"convention: consistent under {fit.consistent}, NOT the claimed {claimed} ({enc}); "
        f"pass --convention {fit.consistent} (Claims(convention={fit.consistent!r}))"
    )


def _diagnose_fit(factory, claims, geometries, lines, data) -> None:
    fits, quantization = [], {"errors": [], "signed": [], "fraction": [], "where": []}
    for g in geometries:
        subject = factory(g.input_size, g.heatmap_size)
        margin = interior_margin(g, claims.margin_cells)
        cells = spread_cells(g, margin)
        kp, decoded = _round_trip(subject, cells)
        cell_px = subject.cell_px()
        err = (decoded - kp) / cell_px  # (n, 2) signed, cells
        entry = {
            "geometry": f"{g.heatmap_size[0]}x{g.heatmap_size[1]} of {g.input_size[0]}x{g.input_size[1]}",
            "cell_px": cell_px.tolist(),
            "axes": [],
        }
        for a in range(2):
            scale, offset = _fit(kp[:, a], decoded[:, a])
            residual = decoded[:, a] - (scale * kp[:, a] + offset)
            spread = (kp[:, a].max() - kp[:, a].min()) / 2
            entry["axes"].append(
                {
                    "scale": scale,
                    "offset_px": offset,
                    "mean_px": float((decoded[:, a] - kp[:, a]).mean()),
                    "scale_cells": float(abs(scale - 1) * spread / cell_px[a]),
                    "error_cells": float(err[:, a].abs().max()),
                    "error_px": float((decoded[:, a] - kp[:, a]).abs().max()),
                    "residual_cells": float((residual / cell_px[a]).abs().max()),
                    "residual_px": float(residual.abs().max()),
                    "name": name_scale(scale, g.input_size[a], g.heatmap_size[a]),
                }
            )
        fits.append(entry)
        uv = subject.to_heatmap(kp)
        quantization["where"].append((entry["geometry"], margin, float(err.norm(dim=-1).mean())))
        quantization["errors"].append(err.norm(dim=-1))
        quantization["signed"].append(err.reshape(-1))
        quantization["fraction"].append((uv - torch.floor(uv)).reshape(-1))
    data["fit"] = fits
    worst = max(fits, key=lambda f: max(ax["error_cells"] for ax in f["axes"]))
    # Only a line that explains the error is reported: beside a quantization, the rounding residuals of
    # evenly spaced keypoints tilt a fitted line by more than a tenth of a cell, so its scale means nothing
    # (a constant offset then shows as the quantization's mean bias).
    explained = [
        a
        for a in range(2)
        if worst["axes"][a]["error_cells"] > max(0.01, 4 * worst["axes"][a]["residual_cells"])
    ]
    for a in explained:
        entry, ax = worst, worst["axes"][a]
        cell = entry["cell_px"][a]
        same = all(f["axes"][a]["name"].split(" = ")[-1] == ax["name"].split(" = ")[-1] for f in fits)
        where = (
            f" (the same ratio in all {len(fits)} geometries)"
            if same and len(fits) > 1 and "/" in ax["name"]
            else ""
        )
        if ax["scale_cells"] < 0.02:  # the scale moves no keypoint by a fiftieth of a cell: an offset
            what = f"decode offset {ax['mean_px']:+.4g} px = {ax['mean_px'] / cell:+.4g} cells (scale 1)"
        else:
            what = f"decode scale {ax['name']}{where}, offset {ax['offset_px']:+.4g} px"
        rest = f"error {ax['error_px']:.4g} px before, {ax['residual_px']:.3g} px after correcting"
        lines.append(
            f"scale/offset along {'xy'[a]}: decode(encode(x)) = {ax['scale']:.6g} x {ax['offset_px']:+.4g} px on "
            f"{entry['geometry']}: {what}; {rest}"
        )
    errors = torch.cat(quantization["errors"])
    mean_2d = float(errors.mean())
    floor = rounding_floor()
    data["quantization"] = {"mean_2d_cells": mean_2d, "floor_cells": floor}
    if explained or mean_2d <= 0.01:
        if not explained:
            lines.append(
                f"round trip: mean 2-D error {mean_2d:.3g} cells in the interior (no quantization: below 0.01 cells)"
            )
        return
    signed = torch.cat(quantization["signed"])
    frac = torch.cat(quantization["fraction"])
    d = frac - torch.round(frac)  # signed distance from the nearest cell centre, [-0.5, 0.5]
    slope = float((signed * d).sum() / (d * d).sum())
    bins = torch.clamp((frac * 8).long(), max=7)
    profile = [float(signed[bins == i].mean()) if bool((bins == i).any()) else None for i in range(8)]
    explained_share = _fraction_explains(signed, frac)
    quantizing = mean_2d >= QUANTIZING_SHARE * floor and explained_share >= QUANTIZING_EXPLAINED
    data["quantization"].update(
        {
            "centre_pull": -slope,
            "bias_by_fraction": profile,
            "bias_mean": float(signed.mean()),
            "explained_by_fraction": explained_share,
            "quantizing": quantizing,
            "by_geometry": [
                {"geometry": g, "margin_cells": m, "mean_2d_cells": e} for g, m, e in quantization["where"]
            ],
        }
    )
    if not quantizing:
        by = ", ".join(f"{e:.3g} on {g} ({m:g} cells inside)" for g, m, e in quantization["where"])
        lines.append(
            f"round trip: mean 2-D error {mean_2d:.3g} cells in the interior = {mean_2d / floor:.3f} x the "
            f"rounding floor {floor:.4f}, not a quantization (centre pull {-slope:.2f}; the sub-cell fraction "
            f"explains {explained_share:.2f} of the error's variance; a quantizer's error is at least "
            f"{QUANTIZING_SHARE:g} x the floor and mostly a function of the fraction); by geometry: {by}"
        )
        return
    lines.append(
        f"quantization: mean 2-D error {mean_2d:.4f} cells = {mean_2d / floor:.3f} x the rounding floor "
        f"{floor:.4f} = (sqrt(2) + asinh(1)) / 6; mean bias {float(signed.mean()):+.3f} cells"
    )
    table = " ".join("-" if v is None else f"{v:+.2f}" for v in profile)
    lines.append(
        f"quantization: centre pull {-slope:.2f} (the decode moves {-slope:.2f} x the distance to the nearest cell "
        f"centre toward it; 0: none, 1: snaps to centres); mean signed error by sub-cell fraction in eighths: {table}"
    )


#: A codec is called quantizing when its mean 2-D interior error is at least this share of the rounding
#: floor and the sub-cell fraction explains at least ``QUANTIZING_EXPLAINED`` of its variance: a rounding
#: codec's error is a function of the fraction alone (round: 1.00 x the floor, all of it explained), while
#: an error that grows near the border or in one geometry is not one.
QUANTIZING_SHARE = 0.25
QUANTIZING_EXPLAINED = 0.5
#: Bins of the sub-cell fraction for the share of the error it explains.
FRACTION_BINS = 32


def _fraction_explains(signed: Tensor, frac: Tensor, bins: int = FRACTION_BINS) -> float:
    """The share of the variance of the signed errors (n,) that their sub-cell fractions (n,) explain: one
    minus the within-bin variance over the total, the fraction cut in ``bins`` equal bins."""
    total = float(((signed - signed.mean()) ** 2).sum())
    if total <= 0:
        return 1.0
    index = torch.clamp((frac * bins).long(), max=bins - 1)
    means = torch.zeros(bins, dtype=signed.dtype).index_add_(0, index, signed)
    counts = torch.zeros(bins, dtype=signed.dtype).index_add_(0, index, torch.ones_like(signed))
    within = float(((signed - (means / counts.clamp(min=1))[index]) ** 2).sum())
    return 1.0 - within / total


def _diagnose_stochastic(factory, claims, geometries, seed, lines, data) -> None:
    g = next((g for g in geometries if max(g.heatmap_size) <= 32), None)
    if g is None:
        w, h = (min(16, v) for v in geometries[0].heatmap_size)
        s = geometries[0].input_size[0] // geometries[0].heatmap_size[0]
        g = Geometry((w * s, h * s), (w, h))
    subject = factory(g.input_size, g.heatmap_size)
    n, k = int(claims.samples), STOCHASTIC_KEYPOINTS
    margin = interior_margin(g, claims.margin_cells)
    w, h = g.heatmap_size
    i = torch.arange(k, dtype=torch.float64)
    e = (i + 0.5) / k  # sub-cell fractions, x and y in different orders
    base = torch.floor(spread_cells(g, margin + 1, k))
    cells = torch.stack((base[:, 0] + e, base[:, 1] + e.flip(0)), dim=-1)
    cells = torch.stack((cells[:, 0].clamp(0, w - 1), cells[:, 1].clamp(0, h - 1)), dim=-1)
    kp = subject.to_input(cells)[None]
    generator = torch.Generator().manual_seed(seed)
    maps, _ = subject.encode(kp.expand(n, -1, -1).contiguous(), generator=generator)
    decoded, _ = subject.decode(maps, activation="probabilities")
    uv = subject.to_heatmap(decoded.double().cpu())  # (n, k, 2) cells
    true = cells
    frac = true - torch.floor(true)
    bias = uv.mean(0) - true  # (k, 2)
    var = uv.var(0)  # (k, 2) cells^2
    rr = frac * (1 - frac)
    se = torch.sqrt(var / n).clamp(min=1e-12)
    ratio = float(var.sum() / rr.sum())
    worst_bias = float(bias.abs().max())
    z = float((bias.abs() / se).max())
    data["stochastic"] = {
        "samples": n,
        "fraction": frac.reshape(-1).tolist(),
        "bias_cells": bias.reshape(-1).tolist(),
        "variance_cells2": var.reshape(-1).tolist(),
        "variance_over_e1e": ratio,
    }
    verdict = "unbiased within 6 standard errors" if z <= 6 else f"BIASED ({z:.1f} standard errors)"
    j = int((bias.abs() / se).reshape(-1).argmax())
    lines.append(
        f"stochastic encoder ({n} samples of {k} keypoints at sub-cell fractions 1/{2 * k} .. {2 * k - 1}/{2 * k}, "
        f"{g.heatmap_size[0]}x{g.heatmap_size[1]} map): {verdict}, largest bias {worst_bias:.3g} cells at "
        f"e = {float(frac.reshape(-1)[j]):.3f}; decode variance {ratio:.3f} x e(1 - e) (randomized rounding: 1)"
    )
