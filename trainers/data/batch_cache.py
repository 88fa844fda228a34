"""A dataset wrapper that remembers the batches it has rendered, for runs that read the same batches.

Within one seed of the resolution sweep every model and every stride trains on the same batches in the same
order (the data order is a function of the seed and the epoch) and is measured on the same moved faces, so
the synthetic renderer would draw each of them once per run. :class:`BatchCache` draws each batch once and
hands the same tensors to every later request. That is exact, because the items are pure functions of their
indices (``tests/test_sweep.py`` checks that a sweep gives the same numbers with and without it), and it saves
the render of every batch after the first run of a seed (``benchmarks/synthetic_speed.py`` times the
renderer on this machine).

Everything else (length, sizes, normaliser, records, ...) is the wrapped dataset's own.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence


class BatchCache:
    """Wrap a dataset that has ``batch(indices, shift=None)``; ``batch`` then renders each (indices, shift)
    once. The cached tensors are shared: callers must not modify them in place (the engine does not).

    ``max_items`` bounds the memory: the cache is emptied when it would hold more images than that (a
    128 x 128 float32 image is 192 KiB, so the default 8192 is 1.5 GiB at most).
    """

    def __init__(self, dataset, max_items: int = 8192) -> None:
        if not hasattr(dataset, "batch"):
            raise TypeError(f"BatchCache needs a dataset with a batch() method, got {type(dataset).__name__}")
        self.wrapped = dataset
        self._shifts = "shift" in inspect.signature(dataset.batch).parameters
        self._cache: dict[tuple, dict] = {}
        self._items = 0
        self.max_items = int(max_items)
        self.hits = 0
        self.misses = 0

    def batch(self, indices: Sequence[int], shift: Sequence[float] | None = None) -> dict:
        """``dataset.batch(indices, shift)``, rendered on the first request and shared afterwards."""
        offset = (0.0, 0.0) if shift is None else tuple(float(s) for s in shift)
        moved = offset != (0.0, 0.0)
        if moved and not self._shifts:
            raise TypeError(f"{type(self.wrapped).__name__}.batch takes no shift")
        key = (tuple(int(i) for i in indices), offset if moved else None)
        found = self._cache.get(key)
        if found is None:
            self.misses += 1
            found = (
                self.wrapped.batch(list(key[0]), shift=key[1]) if moved else self.wrapped.batch(list(key[0]))
            )
            if self._items + len(key[0]) > self.max_items:
                self._cache.clear()
                self._items = 0
            self._cache[key] = found
            self._items += len(key[0])
        else:
            self.hits += 1
        return dict(found)  # a new dict over the shared tensors: a caller may replace keys, not edit tensors

    def __len__(self) -> int:
        return len(self.wrapped)

    def __getitem__(self, i: int) -> dict:
        return self.wrapped[i]

    def __getattr__(self, name: str):
        # Only called for names this wrapper lacks: the dataset's sizes, normaliser, records, options.
        if name.startswith("__") or name == "wrapped":
            raise AttributeError(name)
        return getattr(self.wrapped, name)
