"""The codec invariants, one function each, for any codec the kit can wrap.

Every function has the signature ``fn(codec, claims=DEFAULT_CLAIMS, *, space=DEFAULT_SPACE, max_examples=50,
seed=0) -> InvariantResult`` where ``codec`` is a codec class or factory ``(input_size, heatmap_size) ->
codec`` or an adapter from :mod:`h3r_theory.testing.adapters`. Errors are measured per axis in heatmap
cells (and input pixels); float round-off is allowed on top of every claim, ``16 eps max(w, h)`` cells
(1.2e-4 cells for float32 on a 64-cell map).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from hypothesis import strategies as st
from torch import Tensor

from .. import conventions
from . import frames
from . import strategies as S
from .claims import DEFAULT_CLAIMS, Claims
from .result import NOT_APPLICABLE, InvariantResult
from .search import Observation, run_search
from .subject import CodecFactory, Subject, as_factory

SearchSpace = S.SearchSpace
DEFAULT_SPACE = S.DEFAULT_SPACE
MAX_SHIFT = 3  # cells, per axis, of the shift-equivariance check
STAT_MAX_CELLS = 32  # the statistical checks decode claims.samples dense maps per keypoint


# -- cases and shared helpers --------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One drawn example: a geometry, keypoints in cells, a dtype, and invariant-specific extras."""

    geometry: S.Geometry
    convention: str
    cells: tuple = ()
    dtype: torch.dtype = torch.float64
    extra: tuple = ()  # (name, value) pairs, e.g. ("shift (cells)", (1, 0))

    def keypoints(self, subject: Subject) -> Tensor:
        """(1, K, 2) input pixels in ``dtype`` (mapped from cells in float64)."""
        uv = torch.tensor([list(self.cells)], dtype=torch.float64).reshape(1, -1, 2)
        return subject.to_input(uv).to(self.dtype)

    def describe(self) -> str:
        (W, H), (w, h) = self.geometry.input_size, self.geometry.heatmap_size
        text = f"heatmap {w}x{h}, input {W}x{H}, {self.convention}, {str(self.dtype).replace('torch.', '')}"
        if self.cells:
            uv = torch.tensor([list(self.cells)], dtype=torch.float64).reshape(1, -1, 2)
            px = frames.heatmap_to_input(uv, (W, H), (w, h), self.convention)[0].tolist()
            text += f"; keypoints {_pts(self.cells)} cells = {_pts(px)} px"
        for name, value in self.extra:
            text += f"; {name} {value}"
        return text


def _pts(points) -> str:
    return "[" + ", ".join(f"({p[0]:.6g}, {p[1]:.6g})" for p in points) + "]"


def _allowance(dtype: torch.dtype, geometry: S.Geometry) -> float:
    """Float round-off allowed on top of a claim, in cells."""
    return 16 * torch.finfo(dtype).eps * max(geometry.heatmap_size)


def _axis_error(subject: Subject, got_px: Tensor, want_px: Tensor) -> tuple[Tensor, Tensor]:
    """Per-keypoint worst per-axis error (..., K) in cells and in px; NaN counts as infinite."""
    diff = (got_px.double().cpu() - want_px.double().cpu()).abs()
    diff = torch.where(torch.isnan(diff), torch.full_like(diff, math.inf), diff)
    cells = diff / subject.cell_px().abs()
    return cells.amax(-1), diff.amax(-1)


def _worst(cells: Tensor, px: Tensor) -> tuple[float, float, int]:
    flat = cells.reshape(-1)
    i = int(flat.argmax())
    return float(flat[i]), float(px.reshape(-1)[i]), i


def _sample(
    convention: str,
    claims: Claims,
    space: SearchSpace,
    seed: int,
    *,
    border=True,
    dtype=torch.float64,
    margin_extra: float = 0.0,
    extra=None,
):
    """The fixed cases of a failing invariant's measurement: one keypoint each, spread over the interior of
    a seeded sample of realistic geometries, and (``border``) between the image's edge and the interior."""
    from .diagnose import border_cells, interior_margin, sample_geometries, spread_cells

    def build() -> dict[str, list]:
        groups: dict[str, list] = {"interior": []}
        if border:
            groups["border"] = []
        for g in sample_geometries(space, seed):
            margin = interior_margin(g, claims.margin_cells) + margin_extra
            if min(g.heatmap_size) < S.min_cells_for(margin):
                continue
            for j, uv in enumerate(spread_cells(g, margin, 48).tolist()):
                more = tuple(extra(j)) if extra else ()
                groups["interior"].append(Case(g, convention, (tuple(uv),), dtype, more))
            if border:
                for j, uv in enumerate(border_cells(g, convention, margin, 32).tolist()):
                    more = tuple(extra(j)) if extra else ()
                    groups["border"].append(Case(g, convention, (tuple(uv),), dtype, more))
        return groups

    return build


def _prepare(codec, claims: Claims, space: SearchSpace) -> tuple[CodecFactory, Subject, Claims]:
    """The factory, a subject at the space's probe geometry, and ``claims`` with its defaults resolved for
    this codec (strict for this package's codecs, a millicell for others: :meth:`Claims.resolved`)."""
    probe = S.probe_geometry(space)
    factory = as_factory(codec, claims.convention, probe=probe)
    return factory, factory(*probe), claims.resolved(factory.native)


def _build(factory: CodecFactory, case: Case) -> Subject:
    return factory(case.geometry.input_size, case.geometry.heatmap_size)


def _na(name: str, why: str) -> InvariantResult:
    return InvariantResult(name=name, status=NOT_APPLICABLE, note=why)


def _too_small(name: str, space: SearchSpace, min_cells: int) -> InvariantResult | None:
    if S.fits(space, min_cells):
        return None
    return _na(name, f"needs heatmaps of at least {min_cells} cells per side for this margin")


@st.composite
def _inside_case(draw, space, convention, margin, max_cells=None, dtypes=None, count=None, extra=None):
    geometry = draw(S.geometries(space, S.min_cells_for(margin), max_cells))
    cells = draw(S.keypoints_inside(geometry, margin, max_keypoints=count or 6))
    dtype = draw(dtypes) if dtypes is not None else torch.float64
    return Case(geometry, convention, tuple(cells), dtype, tuple(extra(draw) if extra else ()))


# -- 1. round trip -------------------------------------------------------------------------------------


def round_trip(
    codec,
    claims: Claims = DEFAULT_CLAIMS,
    *,
    space=DEFAULT_SPACE,
    max_examples=50,
    seed=0,
    activation="probabilities",
) -> InvariantResult:
    """``decode(expected(x))`` (``decode(encode(x))`` if deterministic) is ``x`` within
    ``claims.round_trip_cells`` per axis, for keypoints ``claims.margin_cells`` inside, float32 and float64.

    With ``activation="logits"`` the targets are decoded as ``log(target)`` logits (the optimum of a softmax
    cross-entropy loss); reported as ``round_trip_logits``.
    """
    name = "round_trip" if activation == "probabilities" else "round_trip_logits"
    factory, probe, claims = _prepare(codec, claims, space)
    if probe.stochastic and not probe.has_expected:
        return _na(name, "stochastic encoder without expected(): no deterministic target to decode")
    if activation == "logits" and not probe.has_activation:
        return _na(name, "decode takes no activation argument")
    if too_small := _too_small(name, space, S.min_cells_for(claims.margin_cells)):
        return too_small

    def check(case: Case) -> Observation:
        subject = _build(factory, case)
        kp = case.keypoints(subject)
        maps, _ = subject.targets(kp)
        if activation == "logits":
            maps = torch.log(maps.clamp(min=0) + 1e-30)
        decoded, _ = subject.decode(maps, activation=activation)
        cells, px = _axis_error(subject, decoded, kp)
        worst, worst_px, i = _worst(cells, px)
        roundoff = _allowance(subject.precision(case.dtype), case.geometry)
        allowed = claims.round_trip_cells + roundoff
        finding = ""
        if not worst <= allowed:
            got = decoded.reshape(-1, 2)[i].tolist()
            finding = (
                f"keypoint {i} decoded at ({got[0]:.6g}, {got[1]:.6g}) px, off by {worst:.4g} cells "
                f"({worst_px:.4g} px), more than the {allowed:.3g} allowed"
            )
        return Observation(worst <= allowed, worst, worst_px, case.describe(), finding, roundoff)

    strategy = _inside_case(space, factory.convention, claims.margin_cells, dtypes=S.dtypes())
    return run_search(
        name,
        strategy,
        check,
        max_examples=max_examples,
        seed=seed,
        tolerance=claims.round_trip_cells,
        sample=_sample(factory.convention, claims, space, seed),
    )


def round_trip_logits(codec, claims: Claims = DEFAULT_CLAIMS, **kw) -> InvariantResult:
    """:func:`round_trip` of ``log(target)`` decoded as logits; applies where ``claims.logits_round_trip``."""
    if not claims.logits_round_trip:
        return _na("round_trip_logits", "not claimed (Claims.logits_round_trip=False)")
    return round_trip(codec, claims, activation="logits", **kw)


# -- 2. stochastic encoders ----------------------------------------------------------------------------


def _stat_case(space, convention, margin):
    seeds = st.integers(0, 2**32 - 1)
    return _inside_case(
        space, convention, margin, max_cells=STAT_MAX_CELLS, count=3, extra=lambda d: [("seed", d(seeds))]
    )


def _samples(subject: Subject, case: Case, n: int) -> tuple[Tensor, Tensor]:
    """``n`` seeded samples of the targets of ``case``'s keypoints: (n, K, h, w), and the keypoints (1, K, 2)."""
    kp = case.keypoints(subject)
    generator = torch.Generator().manual_seed(dict(case.extra)["seed"])
    maps, _ = subject.encode(kp.expand(n, -1, -1).contiguous(), generator=generator)
    return maps, kp


def unbiased(
    codec, claims: Claims = DEFAULT_CLAIMS, *, space=DEFAULT_SPACE, max_examples=30, seed=0
) -> InvariantResult:
    """A stochastic encoder is unbiased: the mean of ``decode`` over ``claims.samples`` seeded samples lies
    within 6 standard errors (from the samples' own variance) of the keypoint, plus the claimed round trip."""
    name = "unbiased"
    factory, probe, claims = _prepare(codec, claims, space)
    if not probe.stochastic:
        return _na(name, "deterministic encoder (its mean error and bias are in the diagnosis)")
    if too_small := _too_small(name, space, S.min_cells_for(claims.margin_cells)):
        return too_small
    n = int(claims.samples)

    def check(case: Case) -> Observation:
        subject = _build(factory, case)
        maps, kp = _samples(subject, case, n)
        decoded, _ = subject.decode(maps, activation="probabilities")
        decoded = decoded.double().cpu()
        mean, sd = decoded.mean(0), decoded.std(0)  # (K, 2) px
        cell = subject.cell_px()
        # 6 standard errors from the samples' own spread, plus 6/n cells: an outcome one cell away with a
        # probability below 6/n can be missing from all n samples (with probability about exp(-6)).
        slack = claims.round_trip_cells + _allowance(case.dtype, case.geometry) + 6 / n
        bound = 6 * sd / math.sqrt(n) + slack * cell
        err = (mean - kp[0].double()).abs()
        excess = (err - bound) / cell
        worst, worst_px, _ = _worst((err / cell).amax(-1), err.amax(-1))
        ok = bool((excess <= 0).all())
        finding = ""
        if not ok:
            k, axis = divmod(int(excess.reshape(-1).argmax()), 2)
            finding = (
                f"the mean of {n} decoded samples of keypoint {k} is ({mean[k, 0]:.6g}, {mean[k, 1]:.6g}) px, "
                f"off by {err[k, axis] / cell[axis]:.4g} cells along {'xy'[axis]}; 6 standard errors allow "
                f"{bound[k, axis] / cell[axis]:.3g}"
            )
        return Observation(ok, worst, worst_px, case.describe(), finding)

    strategy = _stat_case(space, factory.convention, claims.margin_cells)
    return run_search(name, strategy, check, max_examples=max_examples, seed=seed, tolerance=None)


def rounding_frequency(
    codec, claims: Claims = DEFAULT_CLAIMS, *, space=DEFAULT_SPACE, max_examples=30, seed=0
) -> InvariantResult:
    """A stochastic one-hot encoder samples one of the 4 cells around ``u`` and rounds up along each axis
    with probability ``frac(u)`` (within 6 binomial standard errors over ``claims.samples`` samples)."""
    name = "rounding_frequency"
    factory, probe, claims = _prepare(codec, claims, space)
    if not probe.stochastic:
        return _na(name, "deterministic encoder")
    w, h = probe.heatmap_size
    sample, _ = probe.encode(
        probe.to_input(torch.tensor([[[w / 2.0 - 0.3, h / 2.0 - 0.3]]], dtype=torch.float64))
    )
    if int((sample != 0).sum()) != 1:
        return _na(name, "samples are not one-hot maps")
    n = int(claims.samples)

    def check(case: Case) -> Observation:
        subject = _build(factory, case)
        maps, kp = _samples(subject, case, n)
        w = subject.heatmap_size[0]
        nonzero = (maps != 0).flatten(-2).sum(-1)
        if not bool((nonzero == 1).all()):
            return Observation(False, None, None, case.describe(), "a sample is not a one-hot map")
        flat = maps.flatten(-2).abs().argmax(-1).cpu()
        cell = torch.stack((flat % w, flat // w), dim=-1).double()  # (n, K, 2)
        uv = _clamp_box(subject, subject.to_heatmap(kp[0].double().cpu()))
        floor = torch.floor(uv)
        up = cell - floor
        if not bool(((up == 0) | (up == 1)).all()):
            bad = int((~((up == 0) | (up == 1))).any(-1).any(0).nonzero()[0])
            return Observation(
                False,
                None,
                None,
                case.describe(),
                f"keypoint {bad} sampled a cell that is not one of its 4 neighbours",
            )
        freq, frac = up.mean(0), uv - floor
        bound = 6 * torch.sqrt(frac * (1 - frac) / n) + 1e-12
        err = (freq - frac).abs()
        ok = bool((err <= bound).all())
        finding = ""
        if not ok:
            k, axis = divmod(int((err - bound).reshape(-1).argmax()), 2)
            finding = (
                f"keypoint {k} rounded up along {'xy'[axis]} in {freq[k, axis]:.4f} of {n} samples, but its "
                f"fractional part is {frac[k, axis]:.4f} (6 standard errors: {bound[k, axis]:.3g})"
            )
        return Observation(ok, float(err.max()), None, case.describe(), finding)

    strategy = _stat_case(space, factory.convention, claims.margin_cells)
    return run_search(name, strategy, check, max_examples=max_examples, seed=seed, unit="probability")


def _clamp_box(subject: Subject, uv: Tensor) -> Tensor:
    w, h = subject.heatmap_size
    return torch.stack((uv[..., 0].clamp(0, w - 1), uv[..., 1].clamp(0, h - 1)), dim=-1)


def reproducible(
    codec, claims: Claims = DEFAULT_CLAIMS, *, space=DEFAULT_SPACE, max_examples=20, seed=0
) -> InvariantResult:
    """Seeded ``encode`` repeats itself; a stochastic one differs between seeds; a deterministic one
    always repeats itself."""
    name = "reproducible"
    factory, probe, claims = _prepare(codec, claims, space)
    if probe.stochastic and not probe.torch_native:
        return _na(name, "stochastic numpy codec: it draws from its own random state, the kit cannot seed it")

    @st.composite
    def case(draw):
        geometry = draw(S.geometries(space, 2, STAT_MAX_CELLS))
        return Case(geometry, factory.convention, extra=(("seed", draw(st.integers(0, 2**31 - 2))),))

    def check(case: Case) -> Observation:
        subject = _build(factory, case)
        s = dict(case.extra)["seed"]
        w, h = subject.heatmap_size
        g = torch.Generator().manual_seed(s)
        uv = torch.rand(1, 64, 2, generator=g, dtype=torch.float64) * torch.tensor([w - 1.0, h - 1.0])
        kp = subject.to_input(uv)
        if not subject.stochastic:
            same = torch.equal(subject.encode(kp)[0], subject.encode(kp)[0])
            return Observation(
                same, inputs=case.describe(), finding="" if same else "encode(x) twice differs"
            )
        a = subject.encode(kp, generator=torch.Generator().manual_seed(s))[0]
        b = subject.encode(kp, generator=torch.Generator().manual_seed(s))[0]
        c = subject.encode(kp, generator=torch.Generator().manual_seed(s + 1))[0]
        if not torch.equal(a, b):
            return Observation(False, inputs=case.describe(), finding="two encodes with the same seed differ")
        if torch.equal(a, c):
            return Observation(
                False,
                inputs=case.describe(),
                finding="seeds s and s + 1 drew identical targets for 64 keypoints",
            )
        return Observation(True)

    return run_search(name, case(), check, max_examples=max_examples, seed=seed)


# -- 3. equivariance -----------------------------------------------------------------------------------


def _map_tolerance(maps: Tensor, subject: Subject | None = None) -> float:
    """Round-off allowed between two targets: relative to the peak, at the precision the codec computed in
    (a numpy codec's float32 targets are compared at float32 precision, though the adapter widens them)."""
    dtype = subject.precision(maps.dtype) if subject is not None else maps.dtype
    rel = 1e-9 if dtype == torch.float64 else 1e-5
    return rel * max(1.0, float(maps.abs().max()))


def shift_equivariance(
    codec, claims: Claims = DEFAULT_CLAIMS, *, space=DEFAULT_SPACE, max_examples=50, seed=0
) -> InvariantResult:
    """Moving keypoints by whole cells ``(dx, dy)`` moves their targets by ``(dx, dy)`` cells (compared
    where both maps lie on the heatmap) and their decoded positions by the same shift in pixels."""
    name = "shift_equivariance"
    factory, _, claims = _prepare(codec, claims, space)
    margin = claims.margin_cells + MAX_SHIFT
    if too_small := _too_small(name, space, S.min_cells_for(margin)):
        return too_small

    @st.composite
    def case(draw):
        geometry = draw(S.geometries(space, S.min_cells_for(margin)))
        cells = draw(S.grid_keypoints(geometry, margin))
        shift = draw(st.tuples(st.integers(-MAX_SHIFT, MAX_SHIFT), st.integers(-MAX_SHIFT, MAX_SHIFT)))
        return Case(geometry, factory.convention, tuple(cells), extra=(("shift (cells)", shift),))

    def check(case: Case) -> Observation:
        subject = _build(factory, case)
        dx, dy = dict(case.extra)["shift (cells)"]
        uv = torch.tensor([list(case.cells)], dtype=torch.float64).reshape(1, -1, 2)
        kp = subject.to_input(uv)
        moved = subject.to_input(uv + torch.tensor([dx, dy], dtype=torch.float64))
        a, b = subject.targets(kp)[0], subject.targets(moved)[0]
        w, h = subject.heatmap_size
        b_part = b[..., max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)]
        a_part = a[..., max(0, -dy) : h + min(0, -dy), max(0, -dx) : w + min(0, -dx)]
        map_err, map_tol = float((b_part - a_part).abs().max()), _map_tolerance(a, subject)
        cells, px = _axis_error(subject, subject.decode(b)[0] - subject.decode(a)[0], moved - kp)
        worst, worst_px, i = _worst(cells, px)
        roundoff = _allowance(subject.precision(torch.float64), case.geometry)
        allowed = claims.equivariance_cells + roundoff
        if not map_err <= map_tol:
            finding = f"the targets of the moved keypoints differ from the shifted targets by {map_err:.3g}"
        elif not worst <= allowed:
            finding = f"keypoint {i}'s decoded position moved by the shift plus {worst:.4g} cells ({worst_px:.4g} px)"
        else:
            finding = ""
        return Observation(not finding, worst, worst_px, case.describe(), finding, roundoff)

    shifts = [(1, 0), (0, 1), (-2, 1), (3, -3), (-1, -2), (2, 3)]
    sample = _sample(
        factory.convention,
        claims,
        space,
        seed,
        border=False,
        margin_extra=MAX_SHIFT,
        extra=lambda j: [("shift (cells)", shifts[j % len(shifts)])],
    )
    return run_search(
        name,
        case(),
        check,
        max_examples=max_examples,
        seed=seed,
        tolerance=claims.equivariance_cells,
        sample=sample,
    )


def flip_equivariance(
    codec, claims: Claims = DEFAULT_CLAIMS, *, space=DEFAULT_SPACE, max_examples=50, seed=0
) -> InvariantResult:
    """Horizontal flip commutes with the codec under its convention.

    Decoding the mirrored targets gives the mirrored decode, moved by the convention's flip offset
    (:func:`h3r_theory.conventions.heatmap_flip_offset`: 0 for ``pixel_center`` and ``udp``, ``(s - 1) / s``
    cells for ``msra``); where that offset is 0 the targets of the mirrored keypoints also equal the
    mirrored targets.
    """
    name = "flip_equivariance"
    factory, _, claims = _prepare(codec, claims, space)
    margin = claims.margin_cells
    if too_small := _too_small(name, space, S.min_cells_for(margin)):
        return too_small

    @st.composite
    def case(draw):
        geometry = draw(S.geometries(space, S.min_cells_for(margin)))
        return Case(geometry, factory.convention, tuple(draw(S.grid_keypoints(geometry, margin))))

    def check(case: Case) -> Observation:
        subject = _build(factory, case)
        W = subject.input_size[0]
        offset = frames.heatmap_flip_offset(subject.input_size, subject.heatmap_size, subject.convention)
        kp = case.keypoints(subject)
        a = subject.targets(kp)[0]
        mirrored = conventions.flip_heatmaps(a)
        finding = ""
        decoded = subject.decode(a)[0].double().cpu()
        want = frames.flip_x(decoded, W, subject.convention)
        want[..., 0] -= offset * float(subject.cell_px()[0])
        cells, px = _axis_error(subject, subject.decode(mirrored)[0], want)
        worst, worst_px, i = _worst(cells, px)
        roundoff = _allowance(subject.precision(torch.float64), case.geometry)
        allowed = claims.equivariance_cells + roundoff
        if not worst <= allowed:
            finding = (
                f"keypoint {i}: decoding the mirrored targets is off the mirrored decode by {worst:.4g} cells "
                f"({worst_px:.4g} px; flip offset of the convention {offset:.4g} cells)"
            )
        if abs(offset) < 1e-12:  # the flip is exact: the mirrored keypoints must give the mirrored targets
            b = subject.targets(frames.flip_x(kp, W, subject.convention))[0]
            map_err = float((b - mirrored).abs().max())
            cells_b, px_b = _axis_error(
                subject, subject.decode(b)[0], frames.flip_x(decoded, W, subject.convention)
            )
            worst_b, worst_px_b, j = _worst(cells_b, px_b)
            if worst_b > worst:
                worst, worst_px = worst_b, worst_px_b
            if not finding and not (map_err <= _map_tolerance(a, subject) and worst_b <= allowed):
                finding = (
                    f"keypoint {j}: the targets of the mirrored keypoint differ from the mirrored targets by "
                    f"{map_err:.3g} and decode {worst_b:.4g} cells ({worst_px_b:.4g} px) off the mirrored decode"
                )
        return Observation(not finding, worst, worst_px, case.describe(), finding, roundoff)

    return run_search(
        name,
        case(),
        check,
        max_examples=max_examples,
        seed=seed,
        tolerance=claims.equivariance_cells,
        sample=_sample(factory.convention, claims, space, seed),
    )


# -- 4. dtype, device, shape ---------------------------------------------------------------------------


def dtype_device_shape(
    codec, claims: Claims = DEFAULT_CLAIMS, *, space=DEFAULT_SPACE, max_examples=20, seed=0
) -> InvariantResult:
    """``encode``/``expected`` give (B, K, h, w) maps and (B, K) weights, ``decode`` (B, K, 2) and (B, K),
    all in the keypoints' dtype and on their device (cuda where available)."""
    name = "dtype_device_shape"
    factory, probe, claims = _prepare(codec, claims, space)
    if not probe.torch_native:
        return _na(name, "numpy codec: the adapter returns float64 CPU tensors")

    @st.composite
    def case(draw):
        geometry = draw(S.geometries(space, 2, STAT_MAX_CELLS))
        extra = (
            ("device", draw(S.devices())),
            ("batch", draw(st.integers(1, 3))),
            ("keypoints", draw(st.integers(1, 5))),
        )
        return Case(geometry, factory.convention, dtype=draw(S.dtypes()), extra=extra)

    def check(case: Case) -> Observation:
        subject = _build(factory, case)
        extra = dict(case.extra)
        device, B, K = extra["device"], extra["batch"], extra["keypoints"]
        w, h = subject.heatmap_size
        g = torch.Generator().manual_seed(0)
        uv = torch.rand(B, K, 2, generator=g, dtype=torch.float64) * torch.tensor([w - 1.0, h - 1.0])
        kp = subject.to_input(uv).to(case.dtype).to(device)
        gen = torch.Generator(device=device).manual_seed(0) if subject.stochastic else None
        problems = []
        outputs = [("encode", subject.encode(kp, generator=gen))]
        if subject.stochastic:
            outputs.append(("expected", subject.expected(kp)))
        for label, (maps, weights) in outputs:
            problems += _mismatch(f"{label} heatmaps", maps, (B, K, h, w), case.dtype, device)
            problems += _mismatch(f"{label} weights", weights, (B, K), case.dtype, device)
        coords, scores = subject.decode(outputs[-1][1][0])
        problems += _mismatch("decoded keypoints", coords, (B, K, 2), case.dtype, device)
        problems += _mismatch("scores", scores, (B, K), case.dtype, device)
        return Observation(not problems, inputs=case.describe(), finding="; ".join(problems))

    return run_search(name, case(), check, max_examples=max_examples, seed=seed)


def _mismatch(label: str, t: Tensor, shape: tuple, dtype: torch.dtype, device: torch.device) -> list[str]:
    found = []
    if tuple(t.shape) != shape:
        found.append(f"{label} have shape {tuple(t.shape)}, not {shape}")
    if t.dtype != dtype:
        found.append(f"{label} are {t.dtype}, not {dtype}")
    if t.device.type != device.type:
        found.append(f"{label} are on {t.device}, not {device}")
    return found


def float32_matches_float64(
    codec, claims: Claims = DEFAULT_CLAIMS, *, space=DEFAULT_SPACE, max_examples=30, seed=0
) -> InvariantResult:
    """Targets in float32 match float64 within 1e-5 of their peak, decodes within ``claims.float32_cells``."""
    name = "float32_matches_float64"
    factory, probe, claims = _prepare(codec, claims, space)
    if not probe.torch_native:
        return _na(name, "numpy codec: the adapter returns float64 CPU tensors")
    if too_small := _too_small(name, space, S.min_cells_for(claims.margin_cells)):
        return too_small

    @st.composite
    def case(draw):
        geometry = draw(S.geometries(space, S.min_cells_for(claims.margin_cells)))
        cells = draw(S.grid_keypoints(geometry, claims.margin_cells, max_keypoints=6))
        return Case(geometry, factory.convention, tuple(cells))

    def check(case: Case) -> Observation:
        subject = _build(factory, case)
        kp = case.keypoints(subject)
        maps64, maps32 = subject.targets(kp)[0], subject.targets(kp.float())[0]
        map_err = float((maps32.double() - maps64).abs().max())
        cells, px = _axis_error(subject, subject.decode(maps32)[0], subject.decode(maps64)[0])
        worst, worst_px, i = _worst(cells, px)
        finding = ""
        if not map_err <= 1e-5 * max(1.0, float(maps64.abs().max())):
            finding = f"float32 targets differ from float64 by {map_err:.3g}"
        elif not worst <= claims.float32_cells:
            finding = (
                f"keypoint {i} decodes {worst:.4g} cells ({worst_px:.4g} px) apart in float32 and float64"
            )
        return Observation(not finding, worst, worst_px, case.describe(), finding)

    return run_search(
        name, case(), check, max_examples=max_examples, seed=seed, tolerance=claims.float32_cells
    )


# -- 5. edge semantics ---------------------------------------------------------------------------------

EDGE_LAYOUT = (
    ("inside, visible", 1, 1),
    ("inside, invisible", 0, 0),
    ("NaN, invisible", 0, 0),
    ("off the left", 1, 0),
    ("off the right", 1, 0),
    ("off the top", 1, 0),
    ("off the bottom", 1, 0),
    ("left band", 1, 1),
    ("right band", 1, 1),
    ("top band", 1, 1),
    ("bottom band", 1, 1),
)  # (what, visible, expected weight)


def edge_semantics(
    codec, claims: Claims = DEFAULT_CLAIMS, *, space=DEFAULT_SPACE, max_examples=40, seed=0
) -> InvariantResult:
    """Invisible and off-map keypoints (outside the input image, see
    :func:`~h3r_theory.conventions.heatmap_extent`) get weight 0 and an all-zero map; every map is finite (NaN
    is allowed for invisible keypoints); a keypoint in the border band (on the map, beyond the outermost
    cell centre) gets weight 1 and decodes within ``claims.border_band_cells`` (+ the round trip) of its
    clamp onto the cell-centre box."""
    name = "edge_semantics"
    factory, _, claims = _prepare(codec, claims, space)
    band_claim = claims.border_band_cells
    band_tolerance = None if band_claim is None else band_claim + claims.round_trip_cells

    @st.composite
    def case(draw):
        geometry = draw(S.geometries(space))
        inside = draw(S.keypoints_inside(geometry, count=1))
        off = draw(S.keypoints_off_heatmap(geometry, factory.convention))
        band = draw(S.keypoints_in_border_band(geometry, factory.convention))
        cells = inside * 2 + [(math.nan, 0.0)] + off + band
        return Case(geometry, factory.convention, tuple(cells))

    visible = torch.tensor([[v for _, v, _ in EDGE_LAYOUT]], dtype=torch.float64)
    want = [wt for _, _, wt in EDGE_LAYOUT]

    def check(case: Case) -> Observation:
        subject = _build(factory, case)
        kp = case.keypoints(subject)
        outputs = [("encode", subject.encode(kp, visible))]
        if subject.stochastic and subject.has_expected:
            outputs.append(("expected", subject.expected(kp, visible)))
        for label, (maps, weights) in outputs:
            got = (weights.reshape(-1) > 0).long().tolist()
            for k, (what, _, wt) in enumerate(EDGE_LAYOUT):
                if got[k] != wt:
                    return _edge_fail(
                        case,
                        f"{label}: the {what} keypoint {k} got weight {float(weights.reshape(-1)[k]):.3g}, not {wt}",
                    )
            if not bool(torch.isfinite(maps).all()):
                return _edge_fail(case, f"{label}: a target map holds a non-finite value")
            for k in range(len(want)):
                if want[k] == 0 and bool((maps[0, k] != 0).any()):
                    return _edge_fail(
                        case, f"{label}: the {EDGE_LAYOUT[k][0]} keypoint {k} has a non-zero map"
                    )
            if not bool((maps[0, 0] != 0).any()):
                return _edge_fail(case, f"{label}: the inside, visible keypoint 0 has an all-zero map")
        if claims.border_band_cells is None:
            return Observation(True)
        band = slice(7, 11)
        decoded = subject.decode(outputs[-1][1][0])[0][:, band]
        clamped = subject.to_input(_clamp_box(subject, subject.to_heatmap(kp[:, band].double().cpu())))
        cells, px = _axis_error(subject, decoded, clamped)
        worst, worst_px, i = _worst(cells, px)
        allow = _allowance(torch.float64, case.geometry)
        uv = subject.to_heatmap(decoded.double().cpu())
        w, h = subject.heatmap_size
        lim = torch.tensor([w - 1.0, h - 1.0], dtype=torch.float64)
        outside = ((uv < -allow) | (uv > lim + allow)).any(-1).reshape(-1)  # (4,) per band keypoint
        bound = claims.border_band_cells + claims.round_trip_cells + allow
        bad = outside | ~(cells.reshape(-1) <= bound)
        finding = ""
        if bad.any():
            j = int(bad.nonzero()[0])
            (u, v), (gu, gv) = case.cells[7 + j], uv.reshape(-1, 2)[j].tolist()
            where = "outside the cell-centre box, " if outside[j] else ""
            finding = (
                f"the {EDGE_LAYOUT[7 + j][0]} keypoint ({u:.4g}, {v:.4g}) decodes at ({gu:.4g}, {gv:.4g}) cells, "
                f"{where}{float(cells.reshape(-1)[j]):.4g} cells from its clamp onto the cell-centre box "
                f"({bound:.3g} allowed)"
            )
        return Observation(not finding, worst, worst_px, case.describe(), finding, allow)

    return run_search(name, case(), check, max_examples=max_examples, seed=seed, tolerance=band_tolerance)


def _edge_fail(case: Case, finding: str) -> Observation:
    return Observation(False, inputs=case.describe(), finding=finding)


def constant_heatmaps(
    codec, claims: Claims = DEFAULT_CLAIMS, *, space=DEFAULT_SPACE, max_examples=20, seed=0
) -> InvariantResult:
    """A constant map (all zero, or any other value) has no peak: it decodes to the heatmap centre with
    score 0, in every activation ``decode`` accepts."""
    name = "constant_heatmaps"
    factory, _, claims = _prepare(codec, claims, space)

    @st.composite
    def case(draw):
        value = draw(st.floats(-10, 10, allow_nan=False).filter(lambda v: v != 0))
        return Case(draw(S.geometries(space)), factory.convention, extra=(("constant", value),))

    def check(case: Case) -> Observation:
        subject = _build(factory, case)
        w, h = subject.heatmap_size
        maps = torch.stack((torch.zeros(h, w), torch.full((h, w), dict(case.extra)["constant"])))[
            None
        ].double()
        centre = subject.to_input(torch.tensor([[[(w - 1) / 2, (h - 1) / 2]] * 2], dtype=torch.float64))
        for activation in ("probabilities", "logits") if subject.has_activation else ("probabilities",):
            coords, scores = subject.decode(maps, activation=activation)
            cells, _ = _axis_error(subject, coords, centre)
            if not float(cells.max()) <= _allowance(torch.float64, case.geometry):
                got = _pts(coords.reshape(-1, 2).tolist())
                return _edge_fail(
                    case, f"decode({activation}) put the constant maps at {got} px, not the centre"
                )
            if not bool((scores == 0).all()):
                return _edge_fail(
                    case,
                    f"decode({activation}) scored the constant maps {scores.reshape(-1).tolist()}, not 0",
                )
        return Observation(True)

    return run_search(name, case(), check, max_examples=max_examples, seed=seed)


# -- 6. bad input --------------------------------------------------------------------------------------


def bad_input(
    codec, claims: Claims = DEFAULT_CLAIMS, *, space=DEFAULT_SPACE, max_examples=10, seed=0
) -> InvariantResult:
    """NaN/inf visible keypoints, NaN/inf heatmaps and wrong shapes or dtypes raise ``ValueError``; for a
    non-finite value the message contains its ``(batch, keypoint)`` (``claims.error_location``)."""
    name = "bad_input"
    factory, _, claims = _prepare(codec, claims, space)

    @st.composite
    def case(draw):
        return Case(draw(S.geometries(space, 2, 16)), factory.convention)

    def check(case: Case) -> Observation:
        subject = _build(factory, case)
        w, h = subject.heatmap_size
        centre = subject.to_input(torch.tensor([[[(w - 1) / 2, (h - 1) / 2]]], dtype=torch.float64))
        kp = centre.expand(2, 3, 2).clone()
        nan_kp, inf_kp = kp.clone(), kp.clone()
        nan_kp[1, 2, 0] = math.nan
        inf_kp[1, 2, 1] = math.inf
        nan_maps, inf_maps = (
            torch.zeros(2, 3, h, w, dtype=torch.float64),
            torch.zeros(2, 3, h, w, dtype=torch.float64),
        )
        nan_maps[0, 1, h // 2, w // 2] = math.nan
        inf_maps[1, 0, 0, 0] = math.inf
        fit = subject.expected if subject.stochastic and subject.has_expected else subject.encode
        cases = [
            (
                "encode(keypoints with a NaN at (batch, keypoint) = (1, 2))",
                lambda: subject.encode(nan_kp),
                (1, 2),
            ),
            ("targets(keypoints with an inf at (1, 2))", lambda: fit(inf_kp), (1, 2)),
            (
                "decode(heatmaps with a NaN at (batch, keypoint) = (0, 1))",
                lambda: subject.decode(nan_maps),
                (0, 1),
            ),
            ("decode(heatmaps with an inf at (1, 0))", lambda: subject.decode(inf_maps), (1, 0)),
            (
                f"decode(heatmaps of shape (1, 3, {h + 1}, {w}))",
                lambda: subject.decode(torch.zeros(1, 3, h + 1, w)),
                None,
            ),
        ]
        if subject.torch_native:
            cases += [
                ("encode(keypoints of shape (3, 2))", lambda: subject.encode(torch.zeros(3, 2)), None),
                (
                    "encode(integer keypoints)",
                    lambda: subject.encode(torch.zeros(1, 3, 2, dtype=torch.long)),
                    None,
                ),
                (
                    "encode(keypoints (1, 3, 2), visible of shape (3,))",
                    lambda: subject.encode(kp[:1], torch.ones(3)),
                    None,
                ),
            ]
        for what, call, where in cases:
            try:
                call()
            except ValueError as exc:
                location = claims.error_location
                if where is not None and location and subject.torch_native:
                    expected = location.format(b=where[0], k=where[1])
                    if expected not in str(exc):
                        return _edge_fail(case, f"{what} raised ValueError without naming {expected}: {exc}")
                continue
            except Exception as exc:  # noqa: BLE001 - any other type is the finding
                return _edge_fail(case, f"{what} raised {type(exc).__name__}, not ValueError: {exc}")
            return _edge_fail(case, f"{what} returned without an error")
        return Observation(True)

    return run_search(name, case(), check, max_examples=max_examples, seed=seed)
