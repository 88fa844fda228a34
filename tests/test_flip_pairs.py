"""Flip pairs: every list is an involution of its markup, and on real annotations mirroring + swapping the
pairs gives back (up to a similarity) the same shape, which a wrong pairing would not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import real_samples_dir

from h3r_theory.conventions import flip_keypoints
from trainers.data.flip_pairs import FLIP_PAIRS, NUM_KEYPOINTS, check_flip_pairs, flip_pairs_for


@pytest.mark.parametrize("name", sorted(FLIP_PAIRS))
def test_pairs_are_an_involution(name):
    K = NUM_KEYPOINTS[name]
    perm = check_flip_pairs(K, FLIP_PAIRS[name])
    assert sorted(perm) == list(range(K))
    assert [perm[perm[i]] for i in range(K)] == list(range(K))
    assert perm != list(range(K))  # every markup has left/right points


def test_pair_counts_and_axis_points():
    # points left on the symmetry axis: WFLW 33-axis, 300W 17 (jaw tip, nose ridge/base, lip mids)
    axis = {name: NUM_KEYPOINTS[name] - 2 * len(p) for name, p in FLIP_PAIRS.items()}
    assert axis == {
        "wflw": 10,
        "300w": 10,
        "cofw68": 10,
        "ibug68": 10,
        "cofw": 7,
        "aflw": 3,
        "mpii": 4,
        "coco": 1,
    }


def test_bad_pairs_are_rejected():
    with pytest.raises(ValueError, match="more than one"):
        check_flip_pairs(4, [(0, 1), (1, 2)])
    with pytest.raises(ValueError, match="out of range"):
        check_flip_pairs(4, [(0, 4)])
    with pytest.raises(ValueError, match="itself"):
        check_flip_pairs(4, [(2, 2)])
    with pytest.raises(ValueError, match="no flip pairs"):
        flip_pairs_for("nope")
    with pytest.raises(ValueError, match="98 keypoints"):
        flip_pairs_for("wflw", 68)


def _similarity_residual(src: np.ndarray, dst: np.ndarray) -> float:
    """RMS residual of the best similarity (scale, rotation, translation) mapping src onto dst, / dst size."""
    s, d = src - src.mean(0), dst - dst.mean(0)
    zs, zd = s[:, 0] + 1j * s[:, 1], d[:, 0] + 1j * d[:, 1]
    a = np.vdot(zs, zd) / np.vdot(zs, zs)  # complex least squares = similarity fit
    return float(np.sqrt(np.mean(np.abs(a * zs - zd) ** 2)) / np.sqrt(np.mean(np.abs(zd) ** 2)))


def _mirror_residuals(records, pairs):
    good, unswapped = [], []
    for r in records:
        kp = torch.as_tensor(r.keypoints)[None]
        vis = r.visibility > 0
        mirrored = flip_keypoints(kp, 1000, pairs)[0].numpy()
        plain = flip_keypoints(kp, 1000, [])[0].numpy()
        perm = check_flip_pairs(len(vis), pairs)
        both = vis & vis[perm]
        good.append(_similarity_residual(mirrored[both], r.keypoints[both]))
        unswapped.append(_similarity_residual(plain[both], r.keypoints[both]))
    return np.array(good), np.array(unswapped)


@pytest.mark.real_samples
@pytest.mark.parametrize("name", ["wflw", "300w", "cofw", "aflw", "coco"])
def test_mirrored_shape_matches_on_real_annotations(name):
    from trainers.data.coco import load_coco_keypoints

    folder = real_samples_dir(f"mmpose/{name}")
    records = load_coco_keypoints(folder / f"test_{name}.json", folder, name)
    good, unswapped = _mirror_residuals(records, FLIP_PAIRS[name])
    assert (good < unswapped).all()
    if name == "coco":  # bodies in action poses are far from symmetric; the swap must still help
        return
    # A similarity cannot model head yaw, so the residual is not 0; but it is far below the unswapped one,
    # and leaving out ANY single pair makes it worse: each pair is a true left/right correspondence.
    assert good.max() < 0.3 and (good < unswapped / 3).all(), (good, unswapped)
    pairs = FLIP_PAIRS[name]
    for i in range(len(pairs)):
        without, _ = _mirror_residuals(records, pairs[:i] + pairs[i + 1 :])
        assert np.median(without) > np.median(good), f"pair {pairs[i]} does not help"


@pytest.mark.real_samples
def test_mirrored_shape_matches_on_mpii_and_cofw68():
    from trainers.data.cofw import load_cofw68
    from trainers.data.mpii import load_mpii_json

    folder = real_samples_dir("mmpose/mpii")
    good, unswapped = _mirror_residuals(load_mpii_json(folder / "test_mpii.json", folder), FLIP_PAIRS["mpii"])
    assert np.median(good) < np.median(unswapped)
    data = real_samples_dir("cofw68_benchmark/COFW68_Data")
    records = load_cofw68(data / "test_annotations")[:100]
    good, unswapped = _mirror_residuals(records, FLIP_PAIRS["cofw68"])
    assert (good < unswapped).all() and np.median(good) < 0.2  # profile faces reach ~0.45
