"""The threaded, chunked CPU paths of the decoders' building blocks equal the plain ones, bit for bit.

``scan_maps`` (argmax and softmax normaliser in one pass), ``onmap_patch`` (one row gather per patch row) and
DARK's shifted-kernel blur are checked against a single thread and a single chunk, against torch's own
operations, and against a full-map blur.
"""

from __future__ import annotations

import math
import multiprocessing
import threading
import time

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from h3r_theory import codecs
from h3r_theory.codecs import gaussian, peaks
from h3r_theory.codecs.peaks import onmap_patch, run_chunks, scan_maps


@pytest.fixture
def threaded(monkeypatch):
    """Thread even the tiny test maps, and give torch 2 threads (the tests run with OMP_NUM_THREADS=1)."""
    monkeypatch.setattr(peaks, "SCAN_THREAD_MIN_BYTES", 0)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _logits(b: int, k: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return 4 * torch.randn(b, k, h, w, generator=torch.Generator().manual_seed(seed))


def _same(a: peaks.Peak, b: peaks.Peak) -> bool:
    pairs = list(zip(a, b))
    return all(
        (x is None and y is None)
        or (x.dtype == y.dtype and torch.equal(x.nan_to_num(7.0), y.nan_to_num(7.0)))
        for x, y in pairs
    )


@pytest.mark.parametrize("shape", [(1, 1, 7, 5), (3, 5, 7, 5), (2, 17, 13, 11), (4, 3, 1, 1), (5, 7, 48, 64)])
@pytest.mark.parametrize("chunk_rows", [1, 3, 4, 1000])
@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_threaded_chunked_scan_equals_one_thread_one_chunk(threaded, shape, chunk_rows, threads, dtype):
    # Offsets put some peaks outside DIRECT_EXP_PEAKS, whose maps take the subtracted path, mixed in a chunk.
    offsets = torch.linspace(-100, 100, shape[0] * shape[1]).reshape(shape[0], shape[1], 1, 1)
    maps = (_logits(*shape) + offsets[torch.randperm(shape[0])]).to(dtype)
    n = shape[0] * shape[1]
    plain = scan_maps(maps, normaliser=True, threads=1, chunk_rows=n)
    assert plain.lse is not None
    assert _same(scan_maps(maps, normaliser=True, threads=threads, chunk_rows=chunk_rows), plain)
    assert _same(scan_maps(maps, threads=threads, chunk_rows=chunk_rows), plain._replace(lse=None))


def test_scan_with_nan_and_inf_in_the_last_chunk_and_ties(threaded):
    g = torch.Generator().manual_seed(1)
    maps = torch.randint(0, 3, (3, 7, 6, 5), generator=g).float()  # many ties: the first maximum wins
    maps[2, 6, 3, 2] = math.nan  # the last map, in the last chunk
    maps[2, 6, 4, 4] = math.nan  # a second NaN after it: the first one is reported
    maps[2, 5, 1, 1] = math.inf
    maps[1, 0, 0, 3] = -math.inf  # a masked logit in a map whose maximum is finite
    for chunk_rows in (1, 4, 21):
        peak = scan_maps(maps, normaliser=True, threads=2, chunk_rows=chunk_rows)
        assert _same(peak, scan_maps(maps, normaliser=True, threads=1, chunk_rows=21))
        flat = maps.flatten(-2)
        index = flat.argmax(-1)  # torch's first maximum, a NaN counting as the maximum
        assert torch.equal(peak.ix, index % 5) and torch.equal(peak.iy, index // 5)
        assert (int(peak.ix[2, 6]), int(peak.iy[2, 6])) == (2, 3) and math.isnan(peak.value[2, 6])
        assert math.isinf(peak.value[2, 5])
        finite = torch.isfinite(flat).all(-1) | (flat == -math.inf).any(-1) & ~flat.isnan().any(-1)
        finite &= ~(flat == math.inf).any(-1)
        torch.testing.assert_close(peak.lse[finite], torch.logsumexp(flat, -1)[finite], rtol=0, atol=2e-6)


@pytest.mark.parametrize("chunk_rows", [1, 5, 64])
def test_normaliser_equals_torch_logsumexp(threaded, chunk_rows):
    maps = _logits(6, 17, 48, 64, seed=2) + torch.linspace(-80, 80, 6)[:, None, None, None]
    peak = scan_maps(maps, normaliser=True, chunk_rows=chunk_rows)
    torch.testing.assert_close(peak.lse, torch.logsumexp(maps.flatten(-2), -1), rtol=1e-6, atol=1e-5)


def test_gradients_take_torchs_path():
    maps = _logits(2, 3, 8, 9).requires_grad_()
    peak = scan_maps(maps, normaliser=True)
    assert peak.lse is None and peak.value.requires_grad  # map_logsumexp then takes torch.logsumexp
    peak.value.sum().backward()
    assert maps.grad.sum() == 6  # one peak per map
    with torch.no_grad():
        assert scan_maps(maps, normaliser=True).lse is not None


# Few distinct values, so that maps are full of ties, with NaN, both infinities and both zeros among them.
_CELLS = st.sampled_from([0.0, -0.0, 1.0, 2.0, -3.0, math.inf, -math.inf, math.nan])


@settings(max_examples=200, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 7), st.integers(1, 6)),
    data=st.data(),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16]),
)
def test_first_maximum_by_rows_is_the_flat_first_maximum(shape, data, dtype):
    n, h, w = shape
    cells = data.draw(st.lists(_CELLS, min_size=n * h * w, max_size=n * h * w))
    maps = torch.tensor(cells, dtype=torch.float64).reshape(1, n, h, w).to(dtype)
    ix, iy, value = peaks.first_maximum_by_rows(maps)
    # numpy's argmax over the flattened maps: first maximum in row-major order, the first NaN if any
    expected = maps.double().reshape(n, h * w).numpy().argmax(-1)
    assert (iy[0] * w + ix[0]).tolist() == expected.tolist()
    assert torch.equal(
        value[0].double().nan_to_num(7.0), maps.double().reshape(n, -1)[range(n), expected].nan_to_num(7.0)
    )
    assert value.dtype == dtype


def test_first_maximum_by_rows_carries_gradients_to_the_peak_cell():
    maps = _logits(2, 3, 5, 6).double().requires_grad_()
    ix, iy, value = peaks.first_maximum_by_rows(maps)
    value.sum().backward()
    expected = torch.zeros_like(maps)
    expected.flatten(-2).scatter_(-1, (iy * 6 + ix)[..., None], 1.0)
    assert torch.equal(maps.grad, expected)


def test_bad_scan_arguments_are_named():
    maps = _logits(1, 2, 4, 4)
    with pytest.raises(ValueError, match="threads"):
        scan_maps(maps, threads=0)
    with pytest.raises(ValueError, match="chunk_rows"):
        scan_maps(maps, chunk_rows=0)
    with pytest.raises(ValueError, match="radius"):
        onmap_patch(maps, torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 2, dtype=torch.long), 2)


def test_run_chunks_hands_out_every_chunk_once_to_the_caller_and_the_helpers():
    taken: list[tuple[int, int, str]] = []
    lock = threading.Lock()

    def worker(next_chunk) -> None:
        while (span := next_chunk()) is not None:
            with lock:
                taken.append((*span, threading.current_thread().name))
            time.sleep(0.002)  # long enough that each thread gets some

    run_chunks(worker, 23, 4, threads=3)  # 6 chunks: rows 0-3, 4-7, ..., 20-22
    assert sorted(t[:2] for t in taken) == [(0, 4), (4, 8), (8, 12), (12, 16), (16, 20), (20, 23)]
    names = {t[2] for t in taken}
    assert threading.current_thread().name in names  # the caller works too
    assert len(names) == 3
    taken.clear()
    run_chunks(worker, 5, 10, threads=4)  # one chunk: the calling thread alone
    assert taken == [(0, 5, threading.current_thread().name)]
    with pytest.raises(ValueError, match="chunk_rows"):
        run_chunks(worker, 5, 0)


def test_run_chunks_raises_a_helpers_error_after_every_thread_stopped():
    seen: list[int] = []

    def worker(next_chunk) -> None:
        while (span := next_chunk()) is not None:
            if span[0] == 8:
                raise RuntimeError("chunk 8 failed")
            seen.append(span[0])
            time.sleep(0.002)

    with pytest.raises(RuntimeError, match="chunk 8 failed"):
        run_chunks(worker, 400, 4, threads=2)
    assert 8 not in seen and len(seen) < 99  # the others stopped early instead of scanning every chunk


def _scan_in_child(queue) -> None:
    peaks.SCAN_THREAD_MIN_BYTES = 0
    peak = scan_maps(_logits(3, 4, 5, 6), normaliser=True, threads=2, chunk_rows=2)
    queue.put(peak.lse.sum().item())


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_a_forked_child_scans_with_its_own_pool(threaded):
    scan_maps(_logits(3, 4, 5, 6), threads=2, chunk_rows=2)  # the parent's pool exists before the fork
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_scan_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("the scan in a forked child hung (a pool inherited without its threads)")
    expected = scan_maps(_logits(3, 4, 5, 6), normaliser=True, threads=1).lse.sum().item()
    assert queue.get(timeout=5) == expected


@pytest.mark.parametrize("size", [(48, 64), (15, 15), (20, 16)])  # (h, w)
@pytest.mark.parametrize("radius", [1, 3, 7])
def test_onmap_patch_row_gather_equals_torch_unfold(size, radius):
    h, w = size
    g = torch.Generator().manual_seed(radius)
    maps = torch.rand(5, 7, h, w, generator=g)
    ix, iy = torch.randint(0, w, (5, 7), generator=g), torch.randint(0, h, (5, 7), generator=g)
    ix[0, 0], iy[0, 0], ix[4, 6], iy[4, 6] = 0, 0, w - 1, h - 1  # corners: the patch is moved onto the map
    patch, x0, y0 = onmap_patch(maps, ix, iy, radius)
    plain, px0, py0 = onmap_patch(maps.requires_grad_(), ix, iy, radius)  # torch's unfold path
    assert torch.equal(patch, plain.detach()) and torch.equal(x0, px0) and torch.equal(y0, py0)
    size_ = 2 * radius + 1
    assert (x0 == (ix - radius).clamp(0, w - size_)).all() and (y0 == (iy - radius).clamp(0, h - size_)).all()
    b, k = 4, 6
    cells = maps.detach()[b, k, y0[b, k] : y0[b, k] + size_, x0[b, k] : x0[b, k] + size_]
    assert torch.equal(patch[b, k], cells)


def _full_blur_3x3(maps: torch.Tensor, ix: torch.Tensor, iy: torch.Tensor, sigma: float) -> torch.Tensor:
    """The reference: the whole map blurred (zero padding, float64), read on the 3 x 3 cells.

    The map is blurred on a grid one cell wider on every side: the 3 x 3 cells of an edge argmax reach one
    cell beyond the map, where the blur of the zero-padded map is not 0.
    """
    radius = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    b, k, h, w = maps.shape
    pad = radius + 1
    flat = F.pad(maps.double().reshape(b * k, 1, h, w), (pad, pad, pad, pad))
    flat = F.conv2d(F.conv2d(flat, kernel[None, None, :, None]), kernel[None, None, None, :])
    padded = flat.reshape(b, k, h + 2, w + 2)  # cells -1 .. h and -1 .. w
    rows = (iy[..., None] + torch.arange(3))[..., :, None]  # padded coordinates: y - 1 .. y + 1
    cols = (ix[..., None] + torch.arange(3))[..., None, :]
    index = (rows * (w + 2) + cols).flatten(-2)
    return padded.flatten(-2).gather(-1, index).unflatten(-1, (3, 3))


@pytest.mark.parametrize("size", [(48, 64), (16, 16), (15, 15), (10, 20)])  # (h, w); 10 < 15: the gather path
@pytest.mark.parametrize("sigma", [1.0, 2.0])
def test_dark_local_blur_equals_the_full_map_blur(threaded, size, sigma):
    h, w = size
    g = torch.Generator().manual_seed(int(10 * sigma) + h)
    maps = torch.rand(4, 9, h, w, generator=g)
    ix, iy = torch.randint(0, w, (4, 9), generator=g), torch.randint(0, h, (4, 9), generator=g)
    ix[0, :3], iy[0, 3:6], ix[1, :3], iy[1, 3:6] = 0, 0, w - 1, h - 1  # on every edge
    local = gaussian._blurred_3x3(maps, ix, iy, sigma, "zero")
    reference = _full_blur_3x3(maps, ix, iy, sigma)
    torch.testing.assert_close(local.double(), reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "name,options,decode_options",
    [
        ("argmax", {}, {}),
        ("randomized_rounding", {}, {}),
        ("randomized_rounding", {"method": "2x2"}, {"activation": "probabilities"}),
        ("dark", {}, {}),
        ("udp", {}, {}),
    ],
)
def test_threaded_decode_equals_one_thread(monkeypatch, name, options, decode_options):
    codec = codecs.build(name, input_size=(256, 192), heatmap_size=(64, 48), **options)
    maps = _logits(9, 17, 48, 64, seed=3)
    if codec.default_activation == "probabilities" or decode_options:
        maps = maps.flatten(-2).softmax(-1).view_as(maps)
    maps[8, 16, 47, 63] = maps[8, 16].max() + 1  # a peak in the last cell of the last map
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        plain = codec.decode(maps, **decode_options)
        monkeypatch.setattr(peaks, "SCAN_THREAD_MIN_BYTES", 0)
        monkeypatch.setattr(peaks, "SCAN_CHUNK_BYTES", 5 * 48 * 64 * 4)  # 5 maps a chunk: 31 chunks
        torch.set_num_threads(2)
        fast = codec.decode(maps, **decode_options)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(fast[0], plain[0]) and torch.equal(fast[1], plain[1])
    bad = maps.clone()
    bad[8, 16, 0, 0] = math.nan  # NaN in the last chunk is still refused, naming its map
    with pytest.raises(ValueError, match=r"\(8, 16\)"):
        codec.decode(bad, **decode_options)


def test_the_torch_path_of_cuda_and_half_precision_agrees_with_the_numpy_path():
    g = torch.Generator().manual_seed(5)
    maps = torch.randint(0, 4, (3, 4, 6, 7), generator=g).float()  # ties
    maps[2, 3, 5, 6] = math.nan
    fast = scan_maps(maps, normaliser=True)
    ix, iy, value = peaks.first_maximum_by_rows(maps)  # what CUDA runs
    assert torch.equal(fast.ix, ix) and torch.equal(fast.iy, iy)
    assert torch.equal(fast.value.nan_to_num(7.0), value.nan_to_num(7.0))
    half = scan_maps(maps.bfloat16(), normaliser=True)  # not numpy's: the torch path, normaliser included
    assert torch.equal(half.ix, ix) and torch.equal(half.iy, iy) and half.lse.dtype == torch.bfloat16
    finite = ~maps.flatten(-2).isnan().any(-1)
    torch.testing.assert_close(half.lse.float()[finite], fast.lse[finite], rtol=1e-2, atol=0)
