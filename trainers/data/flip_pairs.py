"""Left/right keypoint pairs of every supported markup, for horizontal flip.

Each list names every mirrored pair once, as ``(left_index, right_index)`` in 0-based keypoint order; the
points not listed lie on the symmetry axis (nose ridge, chin, pelvis, ...). The orders are those of the
datasets' own files (WFLW / 300W / COFW / AFLW markups, MPII joint ids, COCO keypoint names).
:func:`check_flip_pairs` verifies that the permutation a list defines is an involution.
"""

from __future__ import annotations

from collections.abc import Sequence

from h3r_theory.conventions import flip_permutation


def _mirror(first: Sequence[int], second: Sequence[int]) -> list[tuple[int, int]]:
    if len(first) != len(second):
        raise ValueError("mirrored index runs must have the same length")
    return list(zip(first, second))


# WFLW (98): contour 0..32 around 16, brows 33..41 / 42..50, nose 51..59 (55..59 the base), eyes 60..67 /
# 68..75 (60 and 72 the outer corners), outer lip 76..87, inner lip 88..95, pupils 96 / 97.
WFLW_FLIP_PAIRS = (
    _mirror(range(0, 16), range(32, 16, -1))
    + _mirror(range(33, 38), range(46, 41, -1))  # upper brow arcs
    + _mirror(range(38, 42), range(50, 46, -1))  # lower brow arcs
    + _mirror((55, 56), (59, 58))
    + _mirror(range(60, 65), range(72, 67, -1))  # eye upper lids, corner to corner
    + _mirror((65, 66, 67), (75, 74, 73))  # eye lower lids
    + _mirror((76, 77, 78), (82, 81, 80))
    + _mirror((87, 86), (83, 84))
    + _mirror((88, 89), (92, 91))
    + _mirror((95,), (93,))
    + [(96, 97)]
)

# iBUG 68-point markup (300W, COFW-68, 300VW, menpo): jaw 0..16, brows 17..21 / 22..26, nose 27..35,
# eyes 36..41 / 42..47, outer mouth 48..59, inner mouth 60..67.
IBUG68_FLIP_PAIRS = (
    _mirror(range(0, 8), range(16, 8, -1))
    + _mirror(range(17, 22), range(26, 21, -1))
    + _mirror((31, 32), (35, 34))
    + _mirror((36, 37, 38, 39, 40, 41), (45, 44, 43, 42, 47, 46))
    + _mirror((48, 49, 50), (54, 53, 52))
    + _mirror((59, 58), (55, 56))
    + _mirror((60, 61), (64, 63))
    + [(67, 65)]
)

# COFW (29): brow ends 0/1 and 2/3 interleaved left/right, eye corners 8/9 (outer) ..., pupils 16/17,
# nose wings 18/19, mouth corners 22/23; 20, 21, 24..28 on the axis.
COFW_FLIP_PAIRS = [
    (0, 1),
    (2, 3),
    (4, 6),
    (5, 7),
    (8, 9),
    (10, 11),
    (12, 14),
    (13, 15),
    (16, 17),
    (18, 19),
    (22, 23),
]

# AFLW (19): brows 0..2 / 3..5, eyes 6..8 / 9..11, nose 12..14 (13 the tip), mouth 15..17, chin 18.
AFLW_FLIP_PAIRS = [(0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9), (12, 14), (15, 17)]

# MPII joint ids: 0 r-ankle 1 r-knee 2 r-hip 3 l-hip 4 l-knee 5 l-ankle 6 pelvis 7 thorax 8 neck 9 head top
# 10 r-wrist 11 r-elbow 12 r-shoulder 13 l-shoulder 14 l-elbow 15 l-wrist.
MPII_FLIP_PAIRS = [(0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)]

# COCO: 0 nose, then (left, right) eye, ear, shoulder, elbow, wrist, hip, knee, ankle.
COCO_FLIP_PAIRS = [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)]

FLIP_PAIRS: dict[str, list[tuple[int, int]]] = {
    "wflw": WFLW_FLIP_PAIRS,
    "300w": IBUG68_FLIP_PAIRS,
    "cofw68": IBUG68_FLIP_PAIRS,
    "ibug68": IBUG68_FLIP_PAIRS,
    "cofw": COFW_FLIP_PAIRS,
    "aflw": AFLW_FLIP_PAIRS,
    "mpii": MPII_FLIP_PAIRS,
    "coco": COCO_FLIP_PAIRS,
}

NUM_KEYPOINTS: dict[str, int] = {
    "wflw": 98,
    "300w": 68,
    "cofw68": 68,
    "ibug68": 68,
    "cofw": 29,
    "aflw": 19,
    "mpii": 16,
    "coco": 17,
}


def check_flip_pairs(num_keypoints: int, flip_pairs: Sequence[tuple[int, int]]) -> list[int]:
    """Return the flip permutation, raising ``ValueError`` unless it is a proper involution.

    Every index must be in range, appear at most once, and no pair may map a point onto itself.
    """
    for a, b in flip_pairs:
        if a == b:
            raise ValueError(f"flip pair ({a}, {b}) pairs a keypoint with itself")
    perm = flip_permutation(num_keypoints, flip_pairs)
    if any(perm[perm[i]] != i for i in range(num_keypoints)):  # cannot happen after the checks above
        raise ValueError(f"flip pairs do not define an involution: {list(flip_pairs)}")
    return perm


def flip_pairs_for(dataset: str, num_keypoints: int | None = None) -> list[tuple[int, int]]:
    """The pairs of ``dataset`` (a key of :data:`FLIP_PAIRS`), checked against ``num_keypoints`` if given."""
    if dataset not in FLIP_PAIRS:
        raise ValueError(f"no flip pairs known for dataset {dataset!r}; known: {sorted(FLIP_PAIRS)}")
    if num_keypoints is not None and num_keypoints != NUM_KEYPOINTS[dataset]:
        raise ValueError(
            f"dataset {dataset!r} has {NUM_KEYPOINTS[dataset]} keypoints, records have {num_keypoints}"
        )
    return list(FLIP_PAIRS[dataset])
