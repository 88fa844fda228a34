"""The Cramer-Rao lower bound of every synthetic keypoint: how well the images themselves allow it to be found.

The model is the synthetic set's own generator (:mod:`trainers.data.synthetic` with
``noise_distribution="gaussian"``)::

    image = render(theta; everything else) + n,    n iid N(0, sigma^2) per pixel and channel

with ``render`` the UNCLIPPED render of the face and ``theta`` the 36 coordinates of all 18 landmarks of
the face (the dataset labels a prefix of ``K`` of them; the others still move pixels, so they are unknowns
too). For Gaussian noise the Fisher information of ``theta`` is ``F = J^T J / sigma^2`` with
``J = d render / d theta`` (3 H W x 36), and every unbiased estimator has ``Cov >= F^-1``. The bound of
keypoint ``k`` is the 2 x 2 block ``(F^-1)_kk``; :func:`keypoint_bound` reports its RMS 2-D form
``sqrt(tr (F^-1)_kk)`` px, to compare with an RMS Euclidean error.

Why it is a valid lower bound for the images the dataset returns:

* every other parameter (pose, scale, shape, colours, clutter) is treated as KNOWN; knowing more can only
  shrink the bound, so the bound with those unknown would be at least as large;
* the dataset clips to [0, 1]; the clipped image is a function of the unclipped one, so it carries at most
  the same information (data processing), and the unclipped bound stays below the clipped one
  (:func:`clipped_fraction` says how many pixels clip, i.e. how loose that makes it);
* the noise bank is per split, so a network cannot have learnt the held-out noise.

It bounds UNBIASED estimators; a trained network is biased (towards its training distribution), so an
error below the bound is possible in principle, while an error far above it is capacity, data or decoding,
not the images.

How it is computed: by forward-mode autodiff (``torch.func.jvp``) through the renderer, in two exact ways.
:func:`fisher_information_jvp` pushes one tangent per keypoint coordinate through
:func:`~trainers.data.synthetic.render_scene` and forms ``J^T J`` from the full Jacobian images (the
reference). :func:`fisher_information` gets the same matrix much faster (its cost is a few batched
calls per batch instead of 36 full renders per image; ``benchmarks/synthetic_speed.py`` times it) from the
renderer's structure: only the primitive centres depend on ``theta`` (their Jacobian, ``dc / d theta``, by
``jvp`` through :func:`~trainers.data.synthetic.build_scene`), and a primitive is separable,
``colour * 2 pi s^2 * gx(x) gy(y)`` (its derivative along x is ``gx'(x) gy(y)``, ``gx'`` by ``jvp`` through
:func:`~trainers.data.synthetic.pixel_gaussian`), so every pixel sum in ``J^T J`` factors into products of
1-D inner products of length ``W`` and ``H``. The tests check the two against each other and both against
the closed form of a lone marker (:func:`lone_marker_bound`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import Tensor
from torch.func import jvp, vmap

from h3r_theory.conventions import check_size

from .data.synthetic import MAX_KEYPOINTS, FaceParams, Scene, build_scene, pixel_gaussian, render_scene

NUM_COORDINATES = 2 * MAX_KEYPOINTS  # theta: (x, y) of every landmark, landmark-major


def _check_noise(noise_std: float) -> float:
    if not (isinstance(noise_std, (int, float)) and math.isfinite(noise_std) and noise_std > 0):
        raise ValueError(f"noise_std must be a positive pixel-noise std, got {noise_std!r}")
    return float(noise_std)


def _as_float64(params: FaceParams) -> FaceParams:
    return replace(params, keypoints=params.keypoints.to(torch.float64), noise=None)


def _coordinate_tangents(params: FaceParams, j: int) -> Tensor:
    """The tangent of coordinate ``j`` of theta, set in every image at once (images are independent)."""
    t = torch.zeros_like(params.keypoints)
    t.view(t.shape[0], NUM_COORDINATES)[:, j] = 1.0
    return t


def centre_jacobian(params: FaceParams) -> Tensor:
    """``d centres / d theta`` of the scene's primitives: (B, N, 2, 36), float64.

    One ``jvp`` through ``build_scene`` per coordinate of theta, batched by ``vmap`` over the 36 tangents
    (each tangent moves that coordinate in every image at once: the images are independent).
    """
    params = _as_float64(params)

    def centres(keypoints: Tensor) -> Tensor:
        return build_scene(replace(params, keypoints=keypoints)).centres

    B = params.keypoints.shape[0]
    eye = torch.eye(NUM_COORDINATES, dtype=torch.float64, device=params.keypoints.device)
    tangents = eye.view(NUM_COORDINATES, 1, MAX_KEYPOINTS, 2).expand(-1, B, -1, -1)
    columns = vmap(lambda t: jvp(centres, (params.keypoints,), (t,))[1])(tangents)  # (36, B, N, 2)
    return columns.permute(1, 2, 3, 0)


def _profiles(centres: Tensor, sigmas: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """1-D pixel profiles (B, N, size) of the primitives and their derivatives with respect to the centre.

    Each profile depends only on its own centre, so one ``jvp`` with a tangent of ones gives every
    derivative at once."""
    return jvp(lambda c: pixel_gaussian(c, sigmas, size), (centres,), (torch.ones_like(centres),))


def centre_information(scene: Scene, image_size: Sequence[int]) -> Tensor:
    """``sum over pixels and channels of <dI/dc_n,a, dI/dc_m,b>`` for the primitive centres of a scene:
    (B, N, 2, N, 2) float64, px^-2 per unit noise variance (divide by sigma^2 for the Fisher information).

    ``I`` is the unclipped render; a primitive is ``a_n * gx_n(x) gy_n(y)`` with ``a_n = colour * 2 pi s^2``
    (B, N, 3), so the pixel sums factor into 1-D inner products (B, N, N) over x and over y.
    """
    W, H = check_size(image_size, "image_size")
    c = scene.centres.to(torch.float64)
    s = scene.sigmas.to(torch.float64)
    gx, dgx = _profiles(c[..., 0], s, W)  # (B, N, W)
    gy, dgy = _profiles(c[..., 1], s, H)  # (B, N, H)
    amplitude = scene.colours.to(torch.float64) * (2.0 * math.pi * s**2)[..., None]  # (B, N, 3)
    channels = amplitude @ amplitude.transpose(1, 2)  # (B, N, N): sum over RGB of a_n a_m

    def gram(a: Tensor, b: Tensor) -> Tensor:
        return a @ b.transpose(1, 2)  # (B, N, N) inner products along one image axis

    xx = channels * gram(dgx, dgx) * gram(gy, gy)
    xy = channels * gram(dgx, gx) * gram(gy, dgy)  # n moved along x, m along y
    yy = channels * gram(gx, gx) * gram(dgy, dgy)
    return torch.stack([torch.stack([xx, xy], dim=-1), torch.stack([xy.transpose(1, 2), yy], dim=-1)], dim=2)


def fisher_information(params: FaceParams, image_size: Sequence[int], noise_std: float) -> Tensor:
    """Fisher information of theta (B, 36, 36) float64 for renders of ``params`` plus N(0, noise_std^2).

    theta is landmark-major: coordinate ``2 k + a`` is axis ``a`` (0 = x, 1 = y) of landmark ``k``, input
    pixels; the information is in 1 / px^2. Exact (float64): ``M^T C M / sigma^2`` with ``C`` the
    :func:`centre_information` of the scene and ``M`` the :func:`centre_jacobian`; equal to
    :func:`fisher_information_jvp` to rounding.
    """
    sigma2 = _check_noise(noise_std) ** 2
    params = _as_float64(params)
    scene = build_scene(params)
    B, N = scene.sigmas.shape
    C = centre_information(scene, image_size).reshape(B, 2 * N, 2 * N)
    M = centre_jacobian(params).reshape(B, 2 * N, NUM_COORDINATES)
    return M.transpose(1, 2) @ C @ M / sigma2


def fisher_information_jvp(
    params: FaceParams, image_size: Sequence[int], noise_std: float, chunk: int = 8
) -> Tensor:
    """The same Fisher information as :func:`fisher_information`, from the full Jacobian images.

    One ``jvp`` through ``render_scene(build_scene(.), clip=False)`` per coordinate of theta, ``chunk``
    images at a time (the Jacobian of a chunk is chunk x 36 x 3HW float64). The reference the fast path is
    tested against; far slower.
    """
    W, H = check_size(image_size, "image_size")
    sigma2 = _check_noise(noise_std) ** 2
    params = _as_float64(params)
    out = []
    for start in range(0, params.keypoints.shape[0], chunk):
        part = _take(params, slice(start, start + chunk))

        def render(keypoints: Tensor, part: FaceParams = part) -> Tensor:
            scene = build_scene(replace(part, keypoints=keypoints))
            return render_scene(scene, (W, H), torch.float64, clip=False)

        J = torch.stack(
            [
                jvp(render, (part.keypoints,), (_coordinate_tangents(part, j),))[1].flatten(1)
                for j in range(NUM_COORDINATES)
            ],
            dim=1,
        )  # (b, 36, 3HW)
        out.append(J @ J.transpose(1, 2))
    return torch.cat(out) / sigma2


def _take(params: FaceParams, rows: slice) -> FaceParams:
    """The images ``rows`` of a batch of parameters."""
    fields = {k: v[rows] for k, v in vars(params).items() if isinstance(v, Tensor)}
    return replace(params, **fields)


def crlb_covariance(info: Tensor) -> Tensor:
    """Per-landmark 2 x 2 blocks of ``F^-1``: (B, 18, 2, 2) px^2 from Fisher information (B, 36, 36).

    A coordinate the image carries no information about (a hidden marker that nothing else follows) has
    a zero row and column; it gets an infinite variance and leaves the rest exact (its row is decoupled).
    """
    diag = torch.diagonal(info, dim1=-2, dim2=-1)
    blind = diag <= 1e-12 * diag.amax(dim=-1, keepdim=True)
    inverse = torch.linalg.inv(info + torch.diag_embed(blind.to(info.dtype)))
    idx = torch.arange(MAX_KEYPOINTS, device=info.device)
    blocks = inverse.view(-1, MAX_KEYPOINTS, 2, MAX_KEYPOINTS, 2)[:, idx, :, idx, :].transpose(0, 1)
    blind = blind.view(-1, MAX_KEYPOINTS, 2)
    return torch.where(blind[..., :, None] | blind[..., None, :], torch.inf, blocks)


def keypoint_bound(
    params: FaceParams, image_size: Sequence[int], noise_std: float, num_keypoints: int = MAX_KEYPOINTS
) -> Tensor:
    """RMS 2-D Cramer-Rao bound ``sqrt(tr (F^-1)_kk)`` (B, num_keypoints) px of the first keypoints."""
    cov = crlb_covariance(fisher_information(params, image_size, noise_std))
    return torch.diagonal(cov, dim1=-2, dim2=-1).sum(-1).sqrt()[:, :num_keypoints]


def dataset_bound(dataset, indices: Sequence[int] | None = None, chunk: int = 256) -> Tensor:
    """The bound (N, K) px of items ``indices`` (default: all) of a ``SyntheticLandmarks`` set.

    Uses the set's own ``noise`` as sigma and refuses a set whose noise is not Gaussian: for uniform
    noise the Gaussian formula is not the Cramer-Rao bound of those images (bounded noise has no finite
    Fisher information, the bound's regularity conditions fail).
    """
    if getattr(dataset, "noise_distribution", None) != "gaussian":
        raise ValueError(
            "the Cramer-Rao bound needs Gaussian pixel noise: build the synthetic set with "
            f"noise_distribution='gaussian' (got {getattr(dataset, 'noise_distribution', None)!r})"
        )
    indices = list(range(len(dataset))) if indices is None else list(indices)
    parts = [
        keypoint_bound(
            dataset.params(indices[i : i + chunk]), dataset.input_size, dataset.noise, dataset.num_keypoints
        )
        for i in range(0, len(indices), chunk)
    ]
    return torch.cat(parts)


def clipped_fraction(params: FaceParams, image_size: Sequence[int], noise_std: float) -> float:
    """Expected fraction of pixel values that clip at 0 or 1 under N(0, noise_std^2) noise: where it is
    not small, the clipped images carry less information than the bound assumes (the bound stays valid)."""
    _check_noise(noise_std)
    clean = render_scene(build_scene(_as_float64(params)), image_size, torch.float64, clip=False)
    normal = torch.distributions.Normal(0.0, float(noise_std))
    below = normal.cdf(-clean)  # P(clean + n < 0)
    above = 1.0 - normal.cdf(1.0 - clean)  # P(clean + n > 1)
    return float((below + above).mean())


def lone_marker_bound(peak: float, width: float, noise_std: float) -> float:
    """Closed-form per-axis CRLB (px) of the centre of ONE pixel-integrated Gaussian marker in white noise.

    The marker is the renderer's primitive: peak brightness ``peak`` (its ``colour``) and std ``width`` px,
    integrated over unit pixels, far from the border, in one channel; its amplitude is known. For a
    profile ``m(x)`` = mass of N(mu, width^2) in ``[x - 1/2, x + 1/2)`` the image is
    ``peak * 2 pi width^2 * m(x) m(y)`` and, with pixel sums replaced by integrals (exact up to aliasing
    terms that fall off like ``exp(-pi^2 width^2)``: 1.2e-4 relative at 1 px, 1.2e-8 at 1.5 px, see the tests),

        F_x = (peak * 2 pi width^2 / noise_std)^2 * D * S,
        D = integral m'(x)^2 dx = (1 - exp(-1 / (4 width^2))) / (sqrt(pi) width),
        S = integral m(y)^2 dy  = erf(1 / (2 width)) - (2 width / sqrt(pi)) (1 - exp(-1 / (4 width^2))),

    (``m' = phi(x + 1/2) - phi(x - 1/2)`` and ``m * m`` is a triangle convolved with N(0, 2 width^2)).
    For ``width -> inf``, ``D S -> 1 / (8 pi width^4)`` and the bound tends to
    ``noise_std / peak * sqrt(2 / pi)``, independent of the width: a wider blob has shallower slopes over
    proportionally more pixels, and in 2-D the two cancel. The box filter makes narrow markers slightly
    worse than that limit (+8.5 % at 1 px, +0.9 % at 3 px; the tests check both).
    """
    w = float(width)
    e = 1.0 - math.exp(-1.0 / (4.0 * w * w))
    D = e / (math.sqrt(math.pi) * w)
    S = math.erf(1.0 / (2.0 * w)) - 2.0 * w / math.sqrt(math.pi) * e
    info = (peak * 2.0 * math.pi * w * w / noise_std) ** 2 * D * S
    return 1.0 / math.sqrt(info)


__all__ = [
    "NUM_COORDINATES", "centre_jacobian", "centre_information", "fisher_information", "fisher_information_jvp", "crlb_covariance",
    "keypoint_bound", "dataset_bound", "clipped_fraction", "lone_marker_bound",
]  # fmt: skip
