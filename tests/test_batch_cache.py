"""BatchCache: the sweep's shared renders are exact (same tensors as rendering anew, same sweep numbers)."""

from __future__ import annotations

import math

import pytest
import torch
from test_sweep import TINY

from trainers import sweep as sw
from trainers.data.batch_cache import BatchCache
from trainers.data.synthetic import SyntheticLandmarks


def _dataset() -> SyntheticLandmarks:
    return SyntheticLandmarks(24, (32, 32), 4, seed=3, split="val", noise_distribution="gaussian")


def test_cached_batches_equal_fresh_renders_and_are_rendered_once():
    plain, cached = _dataset(), BatchCache(_dataset())
    for indices, shift in (
        ([0, 5, 7], None),
        ([0, 5, 7], (0.5, 0.0)),
        ([2, 1], (0.25, 0.75)),
        ([0, 5, 7], None),
    ):
        fresh = plain.batch(indices) if shift is None else plain.batch(indices, shift=shift)
        got = cached.batch(indices, shift=shift)
        assert fresh.keys() == got.keys()
        for key in fresh:
            assert torch.equal(fresh[key], got[key]), (indices, shift, key)
    assert (cached.misses, cached.hits) == (3, 1)
    # A zero shift is the unmoved batch: one entry, not two.
    cached.batch([2, 1], shift=(0.0, 0.0))
    cached.batch([2, 1])
    assert cached.misses == 4


def test_cache_delegates_the_dataset_and_is_bounded():
    data = _dataset()
    cached = BatchCache(data, max_items=4)
    assert len(cached) == len(data) and cached.input_size == data.input_size
    assert cached.normalizer(0) == data.normalizer(0)
    cached.batch([0, 1, 2])
    cached.batch([3, 4])  # 5 items > 4: the cache starts afresh before storing this batch
    cached.batch([0, 1, 2])
    assert cached.misses == 3
    with pytest.raises(TypeError, match="batch"):
        BatchCache([1, 2, 3])


def test_sweep_numbers_are_the_same_with_and_without_the_cache(tmp_path, monkeypatch):
    def run(folder):
        config = sw.sweep_from_dict({**TINY, "input_sizes": [], "seeds": [0], "out_dir": str(folder)}, "TINY")
        return sw.run_sweep(config, progress=False, log=lambda text: None, workers=0)["rows"]

    cached = run(tmp_path / "cached")
    monkeypatch.setattr(sw.run, "BatchCache", lambda dataset: dataset)
    plain = run(tmp_path / "plain")
    timing = {"gflops", "latency_ms_cpu", "train_seconds", "train_cpu_seconds"}
    assert len(cached) == len(plain) > 0
    for a, b in zip(cached, plain, strict=True):
        for key, value in a.items():
            if key in timing:
                continue
            same = value == b[key] or (isinstance(value, float) and math.isnan(value) and math.isnan(b[key]))
            assert same, (a["codec"], a["stride"], key, value, b[key])
