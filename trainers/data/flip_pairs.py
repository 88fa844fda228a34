"""Left/right keypoint pairs of every supported markup, for horizontal flip.

Each list names every mirrored pair once, as ``(left_index, right_index)`` in 0-based keypoint order; the
points not listed lie on the symmetry axis (nose ridge, chin, pelvis, ...). The orders are those of the
datasets' own files (WFLW / 300W / COFW / AFLW markups, MPII joint ids, COCO keypoint names); each list is
declared once, in the dataset's :class:`~trainers.data.specs.DatasetSpec`.
:func:`check_flip_pairs` verifies that the permutation a list defines is an involution.
"""

from __future__ import annotations

from collections.abc import Sequence

from h3r_theory.conventions import flip_permutation

from .specs import SPECS

# The pairs are declared with each dataset in :mod:`trainers.data.specs`; these tables are views of them.
FLIP_PAIRS: dict[str, list[tuple[int, int]]] = {name: list(s.flip_pairs) for name, s in SPECS.items()}
NUM_KEYPOINTS: dict[str, int] = {name: s.num_keypoints for name, s in SPECS.items()}


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
