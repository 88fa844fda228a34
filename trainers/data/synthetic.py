"""An embedded synthetic face-landmark dataset: generated on the fly, seeded, anti-aliased, no files.

Why it exists: the resolution experiment of the package (train at heatmap strides 4, 8, 16 and measure
how each codec's error grows with the stride, against the vanilla quantization floor and the Cramer-Rao
bound) is only meaningful on data whose pixels carry the sub-pixel position of every landmark, that a tiny
CNN can learn to well below a pixel on a laptop CPU, and whose noise model gives that bound. Real datasets
are neither free nor small; this one is both. What the experiment found on it (randomized rounding removes
the target's quantization bias; the trained error remains a roughly constant fraction of a cell, so it
still grows in pixels with the stride) is measured in ``docs/sweep/README.md`` and, for the causes,
``docs/studies/README.md``.

What an image is
----------------
A face-like deformable template of :data:`MAX_KEYPOINTS` = 18 landmarks (nose tip, chin, eye centres, eye
corners, mouth corners, lips, brows, jaw; :data:`LANDMARK_NAMES`), with left/right pairs
(:data:`FLIP_PAIRS`; "left" means image-left, smaller ``x`` in the upright face). Per image we draw a pose
(scale, in-plane rotation, aspect, position), a shape (three symmetric face proportions plus an iid jitter
per landmark), colours (background, gradient, skin, contrast gain), clutter blobs and pixel noise.

Every drawn thing is a sum of isotropic 2-D Gaussians, each *integrated over the pixel square* (analytic
box-filter coverage: the value of pixel ``(i, j)`` is the mass of the Gaussian inside
``[i - 0.5, i + 0.5) x [j - 0.5, j + 0.5)``, pixel centres at integers as in :mod:`h3r_theory.conventions`).
That makes the rendering exactly anti-aliased, so moving a landmark by 0.1 px changes the pixels, and it
makes it cheap: an integrated isotropic Gaussian is separable, ``G(x, y) = gx(x) gy(y)``, so a whole image
of ``N`` primitives is ONE batched matrix product ``(3H x N) @ (N x W)`` -- no Python loop. Pixel noise
is added as a random crop of a small seeded noise bank (:func:`add_bank_noise`), because drawing fresh
noise for every pixel would cost more than the rendering itself. The bank holds iid values, uniform
(``noise_distribution="uniform"``, the default) or Gaussian (``"gaussian"``), of std ``noise``; with Gaussian
noise every image is its clean render plus white Gaussian noise, the model under which
:mod:`trainers.bound` computes the Cramer-Rao lower bound of every keypoint. (The bank is per split: a
network trained on ``train`` cannot have memorised the noise of ``val``.)

Each landmark carries its own marker, a small Gaussian of a type-specific colour and width centred exactly
at the label (so the landmark is locally identifiable, and its intensity centroid is the label, see the
tests); mirror pairs share their appearance, so a flipped face is again a face. The rest of the face
(head, eye whites, mouth, brows) is context placed relative to the landmarks.

Determinism: item ``i`` of ``SyntheticLandmarks(seed=s, split=p)`` is a pure function of ``(s, p, i)``: it
is drawn from its own ``torch.Generator`` seeded by a 64-bit mix of the three, so it does not depend on
the batch it is drawn in, the number of workers or their order. Splits are disjoint random streams.

Exact translations: ``SyntheticLandmarks.batch(indices, shift=(dx, dy))`` re-renders the same faces moved by
a sub-pixel ``(dx, dy)`` px (:func:`translate_params`: every primitive and the background ramp move, the
labels move by exactly the same amount, the pixel noise stays fixed to the pixel grid like a sensor's),
instead of resampling an image, which would blur it.

Speed: ``python benchmarks/synthetic_speed.py`` measures :func:`render_batch`,
:meth:`SyntheticLandmarks.batch`, the re-rendered translations and the Cramer-Rao bound of
:mod:`trainers.bound` on the machine at hand (the numbers are not repeated here, since they depend on it).

Learnability (``python benchmarks/synthetic_learnability.py --size S --steps 1000 --threads 1``: a
147k-parameter CNN, stride-4 soft-argmax, L1 loss, batch 32, 1000 steps = 32k images, on 2 CPU cores
shared with other jobs (load average 5-10); mean Euclidean error on 512 ``val`` images):
64 x 64 -> 0.30 px in 266 s; 96 x 96 -> 0.27 px in 546 s; 128 x 128 -> 0.23 px in 1036 s. A plain
3-minute run at 64 x 64 gave 0.31 px. Hence the default ``image_size=(64, 64)``: a CPU reaches a third of
a pixel in minutes, far below the 0.38 * stride quantization floor of argmax decoding at strides 4-16.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from h3r_theory.conventions import check_size, flip_keypoints, flip_permutation

from ..seeding import mix_seed

# --------------------------------------------------------------------------------------------------
# The template. Units: face half-width = 1, x right, y down, origin at the face centre (upright face).
# Order is chosen so that every useful prefix keeps left/right pairs whole (see VALID_NUM_KEYPOINTS).

LANDMARK_NAMES: tuple[str, ...] = (
    "nose_tip", "chin",
    "eye_centre_l", "eye_centre_r",
    "mouth_corner_l", "mouth_corner_r",
    "eye_outer_l", "eye_outer_r",
    "eye_inner_l", "eye_inner_r",
    "upper_lip", "lower_lip",
    "brow_outer_l", "brow_outer_r",
    "brow_inner_l", "brow_inner_r",
    "jaw_l", "jaw_r",
)  # fmt: skip
MAX_KEYPOINTS = len(LANDMARK_NAMES)

_TEMPLATE = (
    (0.0, 0.15), (0.0, 0.98),
    (-0.42, -0.22), (0.42, -0.22),
    (-0.38, 0.55), (0.38, 0.55),
    (-0.68, -0.22), (0.68, -0.22),
    (-0.17, -0.22), (0.17, -0.22),
    (0.0, 0.46), (0.0, 0.66),
    (-0.74, -0.52), (0.74, -0.52),
    (-0.2, -0.5), (0.2, -0.5),
    (-0.9, 0.45), (0.9, 0.45),
)  # fmt: skip

# Marker appearance per landmark: additive RGB colour and width (face units). Pairs share both, so the
# mirror image of a face is a face; different types differ in colour and width, so each is identifiable.
_MARKER_COLOUR = (
    (0.45, 0.35, -0.15), (-0.4, -0.4, -0.3),
    (-0.6, -0.6, -0.5), (-0.6, -0.6, -0.5),
    (0.35, -0.4, 0.35), (0.35, -0.4, 0.35),
    (-0.4, -0.2, 0.45), (-0.4, -0.2, 0.45),
    (-0.3, 0.4, -0.3), (-0.3, 0.4, -0.3),
    (0.45, -0.3, -0.3), (-0.35, 0.25, 0.4),
    (-0.45, -0.45, 0.1), (-0.45, -0.45, 0.1),
    (0.45, 0.15, -0.35), (0.45, 0.15, -0.35),
    (0.4, 0.4, 0.4), (0.4, 0.4, 0.4),
)  # fmt: skip
_MARKER_SIGMA = (
    0.06, 0.05, 0.065, 0.065, 0.045, 0.045, 0.035, 0.035, 0.035, 0.035,
    0.045, 0.045, 0.04, 0.04, 0.04, 0.04, 0.05, 0.05,
)  # fmt: skip

FLIP_PAIRS: tuple[tuple[int, int], ...] = tuple(
    (i, i + 1) for i in range(MAX_KEYPOINTS - 1) if LANDMARK_NAMES[i].endswith("_l")
)
# Prefix lengths that do not split a left/right pair.
VALID_NUM_KEYPOINTS: tuple[int, ...] = tuple(
    k for k in range(1, MAX_KEYPOINTS + 1) if all((a < k) == (b < k) for a, b in FLIP_PAIRS)
)
DEFAULT_NUM_KEYPOINTS = 12

# Smallest marker width in pixels: below ~0.8 px a sampled Gaussian aliases and its centroid drifts from
# the label (the error falls like exp(-2 pi^2 sigma^2): 2e-7 px at 0.8 px).
MIN_SIGMA_PX = 0.8
_JITTER = 0.035  # per-landmark shape jitter, face units (std of a normal truncated at 2 std)
_FACE_RADIUS = 1.12  # bound on |template point| after shape changes, face units; keeps labels in the image
_NORMALIZER_UNITS = 1.36  # outer-eye-corner distance of the template (2 * 0.68), used for NME

SPLITS = {"train": 0, "val": 1, "test": 2}
_NUM_CLUTTER_FIELDS = 6  # uniforms per clutter blob: x, y, sigma, r, g, b
_NUM_FACE_UNIFORMS = 5 + 3 + 2 * MAX_KEYPOINTS + 9 + MAX_KEYPOINTS


def num_uniforms(clutter: int) -> int:
    """Length of the per-image uniform vector that :func:`sample_params` consumes."""
    return _NUM_FACE_UNIFORMS + _NUM_CLUTTER_FIELDS * clutter


# --------------------------------------------------------------------------------------------------
# Parameters -> scene -> image. Each step is a pure batched function.


@dataclass
class FaceParams:
    """Everything random about a batch of B images, in pixels where it has a unit (float64).

    keypoints (B, 18, 2) landmark positions, input pixels; scale (B,) face half-width, px; angle (B,)
    in-plane rotation, rad; visible (B, 18) 1/0; background (B, 3); gradient (B, 2) brightness change across
    the image along x and y; skin (B, 3) additive head colour; gain (B,) contrast of all face parts;
    clutter_xy (B, M, 2) px, clutter_sigma (B, M) px, clutter_colour (B, M, 3); noise (B, 3, H, W) or None.
    """

    keypoints: Tensor
    scale: Tensor
    angle: Tensor
    visible: Tensor
    background: Tensor
    gradient: Tensor
    skin: Tensor
    gain: Tensor
    clutter_xy: Tensor
    clutter_sigma: Tensor
    clutter_colour: Tensor
    noise: Tensor | None = None


def _normal(u: Tensor) -> Tensor:
    """Standard normals from uniforms in (0, 1), truncated at +-2 (no wild faces)."""
    u = u.clamp(1e-7, 1 - 1e-7)
    return (math.sqrt(2.0) * torch.erfinv(2.0 * u - 1.0)).clamp(-2.0, 2.0)


_MIN_FACE_PX = 8.0  # smallest face half-width worth drawing: below it the markers merge


def _largest_face(W: int, H: int, margin: float = 4.0) -> float:
    """Largest face half-width (px) whose landmarks stay ``margin`` px inside a W x H image at any pose."""
    largest = (min(W, H) / 2.0 - margin) / _FACE_RADIUS
    if largest < _MIN_FACE_PX:
        need = math.ceil(2 * (margin + _MIN_FACE_PX * _FACE_RADIUS))
        raise ValueError(f"image_size ({W}, {H}) is too small: a face needs min(W, H) >= {need} px")
    return largest


def sample_params(
    uniforms: Tensor,
    image_size: Sequence[int],
    *,
    clutter: int = 6,
    max_rotation: float = 25.0,
    scale_range: tuple[float, float] = (0.55, 0.9),
    occlusion: float = 0.0,
    margin: float = 4.0,
    noise: Tensor | None = None,
) -> FaceParams:
    """Turn uniforms ``(B, num_uniforms(clutter))`` in [0, 1) into :class:`FaceParams` (pure, batched).

    The distribution is mirror-symmetric: rotation, position and shape are drawn symmetrically and left
    and right landmarks get iid jitter, so a horizontally flipped sample is as likely as the original.

    Args:
        image_size: (W, H) in pixels.
        clutter: number of background clutter blobs M.
        max_rotation: in-plane rotation is uniform in [-max_rotation, max_rotation] degrees.
        scale_range: face size as fractions of the largest face that keeps every landmark ``margin`` px
            inside the image at any rotation.
        occlusion: probability that a landmark is hidden (its marker not drawn, ``visible = 0``).
        noise: optional (B, 3, H, W) zero-mean pixel noise, stored as is.
    """
    W, H = check_size(image_size, "image_size")
    u = uniforms.to(torch.float64)
    if u.dim() != 2 or u.shape[1] != num_uniforms(clutter):
        raise ValueError(
            f"uniforms must have shape (B, {num_uniforms(clutter)}) for clutter={clutter}, got {tuple(u.shape)}"
        )
    B = u.shape[0]
    offset = 0

    def take(n: int) -> Tensor:  # the next n uniforms of every row, (B, n)
        nonlocal offset
        offset += n
        return u[:, offset - n : offset]

    pose = take(5)
    shape3 = take(3)
    jitter = _normal(take(2 * MAX_KEYPOINTS)).view(B, MAX_KEYPOINTS, 2) * _JITTER
    colour = take(9)
    hidden = take(MAX_KEYPOINTS)
    cl = take(_NUM_CLUTTER_FIELDS * clutter).view(B, clutter, _NUM_CLUTTER_FIELDS)

    # Shape: symmetric proportions (eye spacing, mouth width, face length), then iid jitter per landmark.
    template = torch.tensor(_TEMPLATE, dtype=torch.float64, device=u.device).expand(B, -1, -1).clone()
    eye_group = torch.tensor([2, 3, 6, 7, 8, 9], device=u.device)
    mouth_group = torch.tensor([4, 5], device=u.device)
    template[:, eye_group, 0] *= 0.9 + 0.2 * shape3[:, 0:1]
    template[:, mouth_group, 0] *= 0.85 + 0.3 * shape3[:, 1:2]
    template[..., 1] *= 0.92 + 0.16 * shape3[:, 2:3]
    local = template + jitter

    # Pose: scale so that the face fits at any rotation, then rotation, aspect, position within the margin.
    largest = _largest_face(W, H, margin)
    lo, hi = scale_range
    scale = largest * (lo + (hi - lo) * pose[:, 0])
    angle = math.radians(max_rotation) * (2.0 * pose[:, 1] - 1.0)
    aspect = 0.92 + 0.16 * pose[:, 2]  # vertical stretch; <= 1.08 is covered by _FACE_RADIUS
    cos, sin = torch.cos(angle), torch.sin(angle)
    x = local[..., 0] * scale[:, None]
    y = local[..., 1] * (scale * aspect)[:, None]
    rotated = torch.stack([cos[:, None] * x - sin[:, None] * y, sin[:, None] * x + cos[:, None] * y], dim=-1)
    # _FACE_RADIUS makes this rare, but a stretched, jittered face could still be too tall for a small
    # image: shrink it (mirror-invariant, since the extent is) so every label provably fits.
    room = torch.tensor([W - 1.0 - 2 * margin, H - 1.0 - 2 * margin], dtype=torch.float64, device=u.device)
    extent = rotated.amax(dim=1) - rotated.amin(dim=1)  # (B, 2)
    shrink = (room / extent).amin(dim=-1).clamp(max=1.0)
    rotated, scale = rotated * shrink[:, None, None], scale * shrink
    # Centre uniform over the positions that keep every landmark inside [margin, size - 1 - margin].
    low = margin - rotated.amin(dim=1)  # (B, 2)
    high = room + margin - rotated.amax(dim=1)
    centre = low + (high - low).clamp(min=0.0) * pose[:, 3:5]
    keypoints = rotated + centre[:, None, :]

    visible = (hidden >= occlusion).to(torch.float64)
    background = 0.15 + 0.45 * colour[:, 0:3]
    gradient = 0.3 * (colour[:, 3:5] - 0.5)
    skin = torch.tensor([0.3, 0.2, 0.12], dtype=torch.float64, device=u.device) + 0.16 * (
        colour[:, 5:8] - 0.5
    )
    gain = 0.8 + 0.4 * colour[:, 8]

    size = torch.tensor([W - 1.0, H - 1.0], dtype=torch.float64, device=u.device)
    clutter_xy = cl[..., 0:2] * size
    clutter_sigma = min(W, H) * (0.03 + 0.07 * cl[..., 2])
    clutter_colour = 0.5 * (cl[..., 3:6] - 0.5)
    return FaceParams(
        keypoints, scale, angle, visible, background, gradient, skin, gain,
        clutter_xy, clutter_sigma, clutter_colour, noise,
    )  # fmt: skip


def mirror_params(params: FaceParams, width: int) -> FaceParams:
    """The parameters of the horizontally mirrored image: x -> width - 1 - x, rotation and x-gradient
    negated, left/right landmarks swapped (their appearance is shared, so this is again a valid face)."""
    perm = torch.tensor(flip_permutation(MAX_KEYPOINTS, FLIP_PAIRS), device=params.keypoints.device)
    clutter_xy = params.clutter_xy.clone()
    clutter_xy[..., 0] = (width - 1) - clutter_xy[..., 0]
    return replace(
        params,
        keypoints=flip_keypoints(params.keypoints, width, FLIP_PAIRS),
        angle=-params.angle,
        visible=params.visible[:, perm],
        gradient=params.gradient
        * torch.tensor([-1.0, 1.0], dtype=params.gradient.dtype, device=params.gradient.device),
        clutter_xy=clutter_xy,
        noise=None if params.noise is None else torch.flip(params.noise, dims=(-1,)),
    )


def translate_params(
    params: FaceParams, shift: Sequence[float] | Tensor, image_size: Sequence[int]
) -> FaceParams:
    """The parameters of the same faces moved by ``shift`` px: ``(dx, dy)`` for all, or (B, 2) per image.

    Every primitive follows (landmarks, hence markers and context; the head, placed from the nose tip;
    clutter), and so does the background ramp: shifting the linear ramp of :func:`render_scene` by ``d`` is
    the same as adding ``-(g_x d_x / W + g_y d_y / H)`` to the flat background. So the render of the result
    is exactly ``image(x - dx, y - dy)`` of the continuous scene, and its labels are ``keypoints + shift``.
    Pixel noise (``params.noise``) is left where it is: it belongs to the pixel grid, not to the scene.
    """
    W, H = check_size(image_size, "image_size")
    kp = params.keypoints
    d = torch.as_tensor(shift, dtype=kp.dtype, device=kp.device)
    if d.shape == (2,):
        d = d.expand(kp.shape[0], 2)
    if d.shape != (kp.shape[0], 2) or not torch.isfinite(d).all():
        raise ValueError(
            f"shift must be a finite (dx, dy) pair or a ({kp.shape[0]}, 2) tensor, got {shift!r}"
        )
    ramp = params.gradient[:, 0] * d[:, 0] / W + params.gradient[:, 1] * d[:, 1] / H  # (B,)
    return replace(
        params,
        keypoints=kp + d[:, None, :],
        clutter_xy=params.clutter_xy + d[:, None, :],
        background=params.background - ramp[:, None],
    )


@dataclass
class Scene:
    """A batch of images as sums of pixel-integrated isotropic Gaussians (all in pixels).

    centres (B, N, 2), sigmas (B, N), colours (B, N, 3) additive RGB; background (B, 3); gradient (B, 2);
    noise (B, 3, H, W) or None. The first ``MAX_KEYPOINTS`` primitives are the landmark markers.
    """

    centres: Tensor
    sigmas: Tensor
    colours: Tensor
    background: Tensor
    gradient: Tensor
    noise: Tensor | None = None


def _face_frame(params: FaceParams, local: Sequence[tuple[float, float]]) -> Tensor:
    """Map fixed face-unit points (P, 2) through each image's pose (no jitter): (B, P, 2) pixels.

    Used for the head, whose outline need not follow the landmark jitter. The face centre is recovered
    from the nose tip minus its rotated template offset.
    """
    p = torch.tensor(local, dtype=torch.float64, device=params.keypoints.device)
    cos, sin = torch.cos(params.angle)[:, None], torch.sin(params.angle)[:, None]
    s = params.scale[:, None]
    x, y = p[:, 0] * s, p[:, 1] * s
    nose = torch.tensor(_TEMPLATE[0], dtype=torch.float64, device=p.device) * s
    origin = (
        params.keypoints[:, 0, :]
        - torch.stack(
            [cos * nose[:, 0:1] - sin * nose[:, 1:2], sin * nose[:, 0:1] + cos * nose[:, 1:2]], dim=-1
        )[:, 0, :]
    )
    return torch.stack([cos * x - sin * y, sin * x + cos * y], dim=-1) + origin[:, None, :]


def _between(kp: Tensor, a: int, b: int, t: float) -> Tensor:
    return kp[:, a] + t * (kp[:, b] - kp[:, a])


def build_scene(params: FaceParams) -> Scene:
    """Lay out the primitives of each face: landmark markers, then context (head, eyes, mouth, brows),
    then clutter. Pure and batched; the markers are centred exactly on ``params.keypoints``."""
    kp = params.keypoints
    B = kp.shape[0]
    f64 = dict(dtype=torch.float64, device=kp.device)
    s = params.scale[:, None]
    gain = params.gain[:, None, None]

    # 1. Markers (B, 18): exactly at the labels; hidden landmarks get a zero colour.
    m_centres = kp
    m_sigmas = (torch.tensor(_MARKER_SIGMA, **f64) * s).clamp(min=MIN_SIGMA_PX)
    m_colours = torch.tensor(_MARKER_COLOUR, **f64) * gain * params.visible[..., None]

    # 2. Head: a soft face-coloured blob from five wide Gaussians in the face frame.
    head_local = ((0.0, 0.05), (-0.42, -0.35), (0.42, -0.35), (-0.38, 0.5), (0.38, 0.5))
    h_centres = _face_frame(params, head_local)
    h_sigmas = torch.tensor([0.55, 0.42, 0.42, 0.4, 0.4], **f64) * s
    h_colours = (
        params.skin[:, None, :].expand(B, 5, 3) * torch.tensor([0.55, 0.5, 0.5, 0.5, 0.5], **f64)[:, None]
    )

    # 3. Context that follows the landmarks: eye whites around the pupils, a mouth between corners and
    #    lips, a brow between the brow points. Symmetric in left/right by construction.
    parts = [
        (kp[:, 2], 0.12, (0.35, 0.35, 0.35)), (kp[:, 3], 0.12, (0.35, 0.35, 0.35)),
        (_between(kp, 2, 6, 0.55), 0.08, (0.3, 0.3, 0.3)), (_between(kp, 3, 7, 0.55), 0.08, (0.3, 0.3, 0.3)),
        (_between(kp, 2, 8, 0.55), 0.08, (0.3, 0.3, 0.3)), (_between(kp, 3, 9, 0.55), 0.08, (0.3, 0.3, 0.3)),
        (_between(kp, 4, 10, 0.5), 0.07, (-0.1, -0.3, -0.3)), (_between(kp, 5, 10, 0.5), 0.07, (-0.1, -0.3, -0.3)),
        (_between(kp, 4, 11, 0.5), 0.07, (-0.1, -0.3, -0.3)), (_between(kp, 5, 11, 0.5), 0.07, (-0.1, -0.3, -0.3)),
        (_between(kp, 10, 11, 0.5), 0.07, (-0.15, -0.3, -0.3)),
        (_between(kp, 12, 14, 0.5), 0.07, (-0.25, -0.25, -0.2)), (_between(kp, 13, 15, 0.5), 0.07, (-0.25, -0.25, -0.2)),
    ]  # fmt: skip
    p_centres = torch.stack([c for c, _, _ in parts], dim=1)
    p_sigmas = torch.tensor([w for _, w, _ in parts], **f64) * s
    p_colours = torch.tensor([c for _, _, c in parts], **f64) * gain

    M = params.clutter_xy.shape[1]
    centres = torch.cat([m_centres, h_centres, p_centres, params.clutter_xy], dim=1)
    sigmas = torch.cat([m_sigmas, h_sigmas, p_sigmas.expand(B, -1), params.clutter_sigma], dim=1)
    colours = torch.cat(
        [m_colours, h_colours, p_colours.expand(B, -1, -1), params.clutter_colour.reshape(B, M, 3)], dim=1
    )
    return Scene(centres, sigmas, colours, params.background, params.gradient, params.noise)


def pixel_gaussian(centres: Tensor, sigmas: Tensor, size: int) -> Tensor:
    """1-D Gaussians integrated over unit pixels: (..., size), entry i = mass in [i - 0.5, i + 0.5).

    centres, sigmas (...) in pixels, pixel centres at integers. Each row sums to the mass inside
    ``[-0.5, size - 0.5)``, i.e. 1 for a Gaussian well inside the image. Same dtype/device as centres.
    """
    edges = torch.arange(size + 1, dtype=centres.dtype, device=centres.device) - 0.5
    z = (edges - centres[..., None]) / (sigmas[..., None] * math.sqrt(2.0))
    # erf(b) - erf(a) cancels catastrophically in the tails (float32: 6e-8 absolute noise on every pixel,
    # enough to pull an intensity centroid by 0.01 px). On the side away from the centre use the
    # complementary function instead, which keeps the tails accurate relative to their size:
    # erf(b) - erf(a) = erfc(a) - erfc(b) = erfc(-b) - erfc(-a).
    upper, lower = torch.erfc(z), torch.erfc(-z)
    right = 0.5 * (upper[..., :-1] - upper[..., 1:])
    left = 0.5 * (lower[..., 1:] - lower[..., :-1])
    middle = (z[..., :-1] + z[..., 1:]) > 0  # pixel centre right of the Gaussian centre
    return torch.where(middle, right, left)


def render_scene(
    scene: Scene, image_size: Sequence[int], dtype: torch.dtype = torch.float32, clip: bool = True
) -> Tensor:
    """Render a :class:`Scene` to images (B, 3, H, W) of ``dtype``, in [0, 1] when ``clip``.

    Each primitive contributes ``colour * peak * gx(x) gy(y)`` with the pixel-integrated 1-D Gaussians of
    :func:`pixel_gaussian` and ``peak = 2 pi sigma^2`` so that ``colour`` is the brightness at its centre.
    The sum over primitives is one batched matmul. ``clip=False`` keeps the raw sum (for tests).
    """
    W, H = check_size(image_size, "image_size")
    centres = scene.centres.to(dtype)
    sigmas = scene.sigmas.to(dtype)
    B, N = sigmas.shape
    gx = pixel_gaussian(centres[..., 0], sigmas, W)  # (B, N, W)
    gy = pixel_gaussian(centres[..., 1], sigmas, H)  # (B, N, H)
    amplitude = scene.colours.to(dtype) * (2.0 * math.pi * sigmas**2)[..., None]  # (B, N, 3)
    left = amplitude.transpose(1, 2)[:, :, None, :] * gy.transpose(1, 2)[:, None, :, :]  # (B, 3, H, N)
    image = torch.bmm(left.reshape(B, 3 * H, N), gx).view(B, 3, H, W)
    # Background: flat colour plus a brightness ramp; the ramp is centred so that flipping negates it.
    ramp_x = (torch.arange(W, dtype=dtype, device=image.device) - (W - 1) / 2) / W
    ramp_y = (torch.arange(H, dtype=dtype, device=image.device) - (H - 1) / 2) / H
    grad = scene.gradient.to(dtype)
    shade = grad[:, 0, None, None] * ramp_x + grad[:, 1, None, None] * ramp_y[:, None]  # (B, H, W)
    # In place: a fresh 50 MB temporary costs as much as the matmul on a CPU (page faults).
    image.add_(scene.background.to(dtype)[:, :, None, None]).add_(shade[:, None])
    if scene.noise is not None:
        image.add_(scene.noise.to(dtype))
    return image.clamp_(0.0, 1.0) if clip else image


# --------------------------------------------------------------------------------------------------
# Front ends: a batch from one generator, and a Dataset whose items are pure functions of (seed, split, i).


NOISE_DISTRIBUTIONS = ("uniform", "gaussian")


def _check_options(
    num_keypoints: int,
    clutter: int,
    noise: float,
    max_rotation: float,
    occlusion: float,
    noise_distribution: str = "uniform",
) -> None:
    if not isinstance(num_keypoints, int) or num_keypoints not in VALID_NUM_KEYPOINTS:
        raise ValueError(
            f"num_keypoints must be one of {VALID_NUM_KEYPOINTS} (prefixes of the {MAX_KEYPOINTS}-landmark "
            f"template that keep left/right pairs whole), got {num_keypoints!r}"
        )
    if not isinstance(clutter, int) or clutter < 0:
        raise ValueError(f"clutter must be an int >= 0 (number of clutter blobs), got {clutter!r}")
    if not (isinstance(noise, (int, float)) and 0.0 <= noise <= 0.5):
        raise ValueError(f"noise must be a pixel-noise std in [0, 0.5], got {noise!r}")
    if noise_distribution not in NOISE_DISTRIBUTIONS:
        raise ValueError(
            f"noise_distribution must be one of {NOISE_DISTRIBUTIONS}, got {noise_distribution!r}"
        )
    if not (isinstance(max_rotation, (int, float)) and 0.0 <= max_rotation <= 90.0):
        raise ValueError(f"max_rotation must be in [0, 90] degrees, got {max_rotation!r}")
    if not (isinstance(occlusion, (int, float)) and 0.0 <= occlusion < 1.0):
        raise ValueError(f"occlusion must be a probability in [0, 1), got {occlusion!r}")


def noise_tiles(
    shape: Sequence[int],
    std: float,
    distribution: str,
    generator: torch.Generator | None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Zero-mean iid pixel noise of std ``std``: ``"uniform"`` on [-sqrt(3) std, sqrt(3) std] (the original
    choice, cheaper to draw) or ``"gaussian"`` (white Gaussian noise, what :mod:`trainers.bound` assumes)."""
    if distribution == "gaussian":
        return torch.randn(*shape, generator=generator, dtype=dtype) * std
    if distribution == "uniform":
        return (torch.rand(*shape, generator=generator, dtype=dtype) - 0.5) * (std * math.sqrt(12.0))
    raise ValueError(f"noise_distribution must be one of {NOISE_DISTRIBUTIONS}, got {distribution!r}")


def render_batch(
    batch_size: int,
    image_size: Sequence[int] = (64, 64),
    num_keypoints: int = DEFAULT_NUM_KEYPOINTS,
    generator: torch.Generator | None = None,
    *,
    clutter: int = 6,
    noise: float = 0.03,
    max_rotation: float = 25.0,
    occlusion: float = 0.0,
    noise_distribution: str = "uniform",
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor, Tensor]:
    """Draw and render ``batch_size`` random faces from ``generator`` (CPU).

    ``noise`` is the std of the pixel noise, ``noise_distribution`` its law (:func:`noise_tiles`).
    Returns images (B, 3, H, W) ``dtype`` in [0, 1], keypoints (B, K, 2) ``dtype`` in input pixels
    (pixel centres at integers), visible (B, K) ``dtype`` (1 = marker drawn).
    """
    W, H = check_size(image_size, "image_size")
    _check_options(num_keypoints, clutter, noise, max_rotation, occlusion, noise_distribution)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    D = num_uniforms(clutter)
    uniforms = torch.rand(batch_size, D + 3, generator=generator, dtype=torch.float64)
    params = sample_params(
        uniforms[:, :D], (W, H), clutter=clutter, max_rotation=max_rotation, occlusion=occlusion
    )
    images = render_scene(build_scene(params), (W, H), dtype, clip=False)
    if noise > 0:
        bank = noise_tiles((_NOISE_TILES, 3, 2 * H, 2 * W), noise, noise_distribution, generator, dtype)
        add_bank_noise(images, bank, uniforms[:, D:])
    images.clamp_(0.0, 1.0)
    return images, params.keypoints[:, :num_keypoints].to(dtype), params.visible[:, :num_keypoints].to(dtype)


_NOISE_TILES = 8


def add_bank_noise(images: Tensor, bank: Tensor, picks: Tensor) -> Tensor:
    """Add to each image (B, 3, H, W), in place, a crop of the noise ``bank`` (T, 3, 2H, 2W).

    ``picks`` (B, 3) uniforms in [0, 1) choose the tile and the x, y offset of each crop. Why a bank:
    drawing 3 x H x W fresh numbers per image costs more than rendering the whole batch, while T x H x W
    crops of a few tiles are plenty of variety for pixel noise.
    """
    T, H, W = bank.shape[0], images.shape[-2], images.shape[-1]
    tile = (picks[:, 0] * T).long().tolist()
    dx = (picks[:, 1] * W).long().tolist()
    dy = (picks[:, 2] * H).long().tolist()
    # One stacked copy and one in-place add, not an add per image: each torch call on a (3, H, W) slice is
    # split over the intra-op threads, and that fork/join costs more than the add itself when a core is busy
    # (measured: 1.3 ms for a batch of 16 on one thread, 128 ms on two threads beside another process).
    crops = torch.stack([bank[t, :, y : y + H, x : x + W] for t, x, y in zip(tile, dx, dy, strict=True)])
    return images.add_(crops)


def item_seed(seed: int, split: str, index: int) -> int:
    """The 63-bit generator seed of item ``index`` of ``split`` (a pure function of the three)."""
    return mix_seed(seed, SPLITS[split], index)


class _Records:
    """A light, lazy ``dataset.records``: record i is ``{"id", "split", "normalizer"}``."""

    def __init__(self, num: int, split: str, normalizer: float):
        self._num, self._split, self._normalizer = num, split, normalizer

    def __len__(self) -> int:
        return self._num

    def __getitem__(self, i: int) -> dict:
        if not -self._num <= i < self._num:
            raise IndexError(f"record {i} out of range for {self._num} records")
        return {"id": i % self._num, "split": self._split, "normalizer": self._normalizer}


class SyntheticLandmarks(torch.utils.data.Dataset):
    """The synthetic face-landmark dataset (see the module docstring), following the sample contract.

    Item ``i`` is a dict: image float32 (3, H, W) in [0, 1]; keypoints float32 (K, 2) input pixels;
    visible float32 (K,); matrix float64 (2, 3) identity (no crop: original pixels = input pixels); index i.

    ``normalizer(i)`` is FIXED: the outer-eye-corner distance of the template at the mean face scale
    (pixels), so NME is the pixel error divided by one constant and results stay comparable across
    strides and codecs: 1.36 template units x the mean face half-width; 24.7 px at 64 x 64, 52.8 px at
    128 x 128.
    """

    def __init__(
        self,
        num_samples: int,
        image_size: Sequence[int] = (64, 64),
        num_keypoints: int = DEFAULT_NUM_KEYPOINTS,
        seed: int = 0,
        split: str = "train",
        *,
        clutter: int = 6,
        noise: float = 0.03,
        max_rotation: float = 25.0,
        occlusion: float = 0.0,
        noise_distribution: str = "uniform",
    ):
        if not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.input_size = check_size(image_size, "image_size")
        _check_options(num_keypoints, clutter, noise, max_rotation, occlusion, noise_distribution)
        self.noise_distribution = noise_distribution
        self.num_samples, self.num_keypoints, self.seed, self.split = num_samples, num_keypoints, seed, split
        self.clutter, self.noise, self.max_rotation, self.occlusion = clutter, noise, max_rotation, occlusion
        self.flip_pairs = [(a, b) for a, b in FLIP_PAIRS if b < num_keypoints]
        self.keypoint_names = LANDMARK_NAMES[:num_keypoints]
        W, H = self.input_size
        largest = _largest_face(W, H)
        self._normalizer = _NORMALIZER_UNITS * largest * (0.55 + 0.9) / 2.0
        self.records = _Records(num_samples, split, self._normalizer)
        self._bank: Tensor | None = None  # built on first use, so that pickling to workers stays cheap

    def __len__(self) -> int:
        return self.num_samples

    def _noise_bank(self) -> Tensor:
        """(8, 3, 2H, 2W) float32 zero-mean iid noise of std ``noise`` and law ``noise_distribution``; a pure
        function of seed and split."""
        if self._bank is None:
            W, H = self.input_size
            g = torch.Generator().manual_seed(item_seed(self.seed, self.split, -1))
            shape = (_NOISE_TILES, 3, 2 * H, 2 * W)
            self._bank = noise_tiles(shape, self.noise, self.noise_distribution, g, torch.float32)
        return self._bank

    def normalizer(self, index: int) -> float:
        """NME normaliser in pixels (fixed; see the class docstring)."""
        return self._normalizer

    def _check_index(self, i: int) -> int:
        if not -self.num_samples <= i < self.num_samples:
            raise IndexError(f"index {i} out of range for SyntheticLandmarks of {self.num_samples} samples")
        return i % self.num_samples

    def batch(self, indices: Sequence[int], shift: Sequence[float] | Tensor | None = None) -> dict:
        """Stacked items for ``indices`` (the fast path for a training engine): the same keys as an item
        with a leading batch dimension, ``index`` a long tensor (B,). Bit-identical to stacking items.

        ``shift``: ``(dx, dy)`` px, or (B, 2), re-renders the faces translated exactly by that much
        (:func:`translate_params`; ``keypoints`` moved by the same amount, the same pixel noise), for
        measuring how predictions follow sub-pixel motion. ``None`` (or zero) is the item itself.
        """
        idx = [self._check_index(int(i)) for i in indices]
        if not idx:
            raise ValueError("indices must not be empty")
        W, H = self.input_size
        D = num_uniforms(self.clutter)
        uniforms = self._uniforms(idx)
        params = sample_params(
            uniforms[:, :D], (W, H), clutter=self.clutter, max_rotation=self.max_rotation,
            occlusion=self.occlusion,
        )  # fmt: skip
        if shift is not None:
            params = translate_params(params, shift, (W, H))
        images = render_scene(build_scene(params), (W, H), torch.float32, clip=False)
        if self.noise > 0:
            add_bank_noise(images, self._noise_bank(), uniforms[:, D:])
        images.clamp_(0.0, 1.0)
        K = self.num_keypoints
        return {
            "image": images,
            "keypoints": params.keypoints[:, :K].to(torch.float32),
            "visible": params.visible[:, :K].to(torch.float32),
            "matrix": torch.eye(2, 3, dtype=torch.float64).expand(len(idx), 2, 3).clone(),
            "index": torch.tensor(idx, dtype=torch.long),
        }

    def __getitem__(self, i: int) -> dict:
        item = {k: v[0] for k, v in self.batch([i]).items()}
        item["index"] = int(item["index"])
        return item

    def _uniforms(self, idx: Sequence[int]) -> Tensor:
        """(B, num_uniforms + 3) float64: each row from its own generator seeded by :func:`item_seed`."""
        n = num_uniforms(self.clutter) + 3  # + noise tile, dx, dy
        uniforms = torch.empty(len(idx), n, dtype=torch.float64)
        g = torch.Generator()
        for row, i in enumerate(idx):  # independent of batch composition, worker count and order
            g.manual_seed(item_seed(self.seed, self.split, i))
            uniforms[row] = torch.rand(n, generator=g, dtype=torch.float64)
        return uniforms

    def params(self, indices: Sequence[int]) -> FaceParams:
        """The :class:`FaceParams` behind ``indices`` (without pixel noise), for tests and figures."""
        idx = [self._check_index(int(i)) for i in indices]
        return sample_params(
            self._uniforms(idx)[:, : num_uniforms(self.clutter)], self.input_size, clutter=self.clutter,
            max_rotation=self.max_rotation, occlusion=self.occlusion,
        )  # fmt: skip


__all__ = [
    "LANDMARK_NAMES", "MAX_KEYPOINTS", "FLIP_PAIRS", "VALID_NUM_KEYPOINTS", "DEFAULT_NUM_KEYPOINTS",
    "FaceParams", "Scene", "sample_params", "mirror_params", "translate_params", "build_scene",
    "pixel_gaussian", "render_scene", "render_batch", "add_bank_noise", "noise_tiles", "NOISE_DISTRIBUTIONS",
    "item_seed", "num_uniforms", "SyntheticLandmarks",
]  # fmt: skip
