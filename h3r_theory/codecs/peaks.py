"""Batched building blocks shared by the decoders: peaks, local windows, separable Gaussians.

All functions work on (B, K, h, w) maps without any Python loop over keypoints.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor


class Peak(NamedTuple):
    """The first maximum of every map: cells ``ix``, ``iy`` (B, K) long and the peak ``value`` (B, K).

    ``lse`` (B, K) is the softmax normaliser ``log(sum(exp(map)))`` when :func:`scan_maps` was asked for it
    (and could compute it without gradients), else ``None``: see :func:`map_logsumexp`.
    """

    ix: Tensor
    iy: Tensor
    value: Tensor
    lse: Tensor | None = None


#: Bytes of maps per chunk of the CPU scan with the normaliser. The argmax reads the chunk from memory, then
#: the peaks and the ``exp`` read it again from cache. A chunk and its exp buffer much beyond a core's L2 cache
#: would be read from memory twice, while much smaller chunks pay each call's overhead (and its GIL hand-over)
#: more often.
SCAN_CHUNK_BYTES = 1 << 20
#: Bytes of maps per chunk of the argmax alone. It reads every cell once, so a chunk need not fit in cache,
#: and fewer, larger chunks cost fewer calls and GIL hand-overs (``benchmarks/codecs.py`` times the scan in
#: these chunks and in 1 MB ones). The last chunks shrink to :data:`SCAN_CHUNK_BYTES` so that the threads
#: finish together (:func:`run_chunks`).
ARGMAX_CHUNK_BYTES = 1 << 24
#: Below this many bytes of maps the scan runs on the calling thread alone, since handing work to the pool
#: costs a thread wake-up and GIL hand-overs, which a small input does not repay.
SCAN_THREAD_MIN_BYTES = 1 << 21


def argmax_cells(heatmaps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Location of the maximum of each map.

    Args:
        heatmaps: (B, K, h, w).
    Returns:
        ``ix`` and ``iy`` (B, K) long cell indices, and the peak values (B, K). Ties go to the first cell
        in row-major order, the same on CPU and CUDA. A NaN counts as the maximum (its map's peak value is
        NaN), so a map holding NaN or +inf anywhere has a non-finite peak: :meth:`HeatmapCodec.decode
        <h3r_theory.codecs.base.HeatmapCodec.decode>` checks the input's finiteness on the peaks alone.

    This is :func:`scan_maps` without the normaliser.
    """
    peak = scan_maps(heatmaps)
    return peak.ix, peak.iy, peak.value


def scan_maps(
    heatmaps: Tensor, normaliser: bool = False, threads: int | None = None, chunk_rows: int | None = None
) -> Peak:
    """The first maximum of every map and, if ``normaliser``, its softmax normaliser, in one read of the maps.

    Args:
        heatmaps: (B, K, h, w).
        normaliser: also compute ``lse`` (B, K) = log(sum(exp(map))), the softmax normaliser of logit maps
            (left ``None`` when gradients are wanted: :func:`map_logsumexp` then takes torch's own).
        threads: CPU threads to scan with, the calling one included (``None``: ``torch.get_num_threads()``,
            so ``OMP_NUM_THREADS=1`` keeps it on the calling thread); maps under
            :data:`SCAN_THREAD_MIN_BYTES` use one.
        chunk_rows: maps per chunk on the CPU (``None``: :data:`SCAN_CHUNK_BYTES` worth with the normaliser,
            :data:`ARGMAX_CHUNK_BYTES` without).
    Returns:
        :class:`Peak`, ties to the first cell in row-major order, a NaN counting as the maximum.

    On CPU (float32, float64) the maps are cut into chunks that the threads take one after the other
    (:func:`run_chunks`). Per chunk: numpy's ``argmax`` (a single read of every cell, where torch's reductions
    over a short last axis, ``amax(-1)`` over 64 cells or ``max(dim=-1)``, take more than one memory pass:
    ``benchmarks/codecs.py`` prints them side by side), the peaks, and for the normaliser
    ``sum(exp(map))`` while the chunk is still in cache (the peak is subtracted first only where it lies
    outside :data:`DIRECT_EXP_PEAKS`). numpy releases the GIL in these calls, so the threads run in
    parallel. A chunk is computed the same way whichever thread takes it, so the result does not depend on
    the number of threads, bit for bit. Elsewhere (CUDA, half precision): the row maxima (``amax``), the
    first row holding the largest of them, then the first column of that row; the normaliser is
    :func:`map_logsumexp`'s.
    """
    h, w = heatmaps.shape[-2:]
    lead = heatmaps.shape[:-2]
    want_lse = normaliser and not (torch.is_grad_enabled() and heatmaps.requires_grad)
    if heatmaps.device.type != "cpu" or heatmaps.dtype not in (torch.float32, torch.float64):
        ix, iy, value = first_maximum_by_rows(heatmaps)
        lse = map_logsumexp(heatmaps, value) if want_lse else None
        return Peak(ix, iy, value, lse)
    flat = heatmaps.reshape(-1, h * w)  # a view for contiguous maps
    n = flat.shape[0]
    maps = flat.detach()
    if not maps.is_contiguous():
        maps = maps.contiguous()
    if chunk_rows is None:
        chunk_bytes = SCAN_CHUNK_BYTES if want_lse else ARGMAX_CHUNK_BYTES
        chunk_rows = max(1, chunk_bytes // max(1, h * w * maps.element_size()))
    values = maps.numpy()
    index = np.empty(n, dtype=np.intp)
    top = np.empty(n, dtype=values.dtype) if want_lse else None  # the normaliser reads the peaks per chunk
    sums = np.empty(n, dtype=values.dtype) if want_lse else None
    shift = np.zeros(n, dtype=values.dtype) if want_lse else None

    def worker(chunks: Callable[[], tuple[int, int] | None]) -> None:
        buffer = np.empty((min(chunk_rows, n), h * w), dtype=values.dtype) if want_lse else None  # per thread
        while (span := chunks()) is not None:
            _scan_chunk(values, index, top, sums, shift, buffer, *span)

    smallest = max(1, SCAN_CHUNK_BYTES // max(1, h * w * maps.element_size()))
    run_chunks(worker, n, chunk_rows, _threads_for(maps, threads), min_rows=min(smallest, chunk_rows))
    flat_index = torch.from_numpy(index).to(torch.long)
    if top is None or (torch.is_grad_enabled() and heatmaps.requires_grad):
        # One gather of the n peaks after the scan costs less than one per chunk; from ``flat``, which
        # carries gradients when they are wanted.
        value = flat.gather(-1, flat_index[:, None])[:, 0]
    else:
        value = torch.from_numpy(top)  # read in the scan, from cache
    lse = None
    if want_lse:
        with np.errstate(divide="ignore", invalid="ignore"):  # log(0) = -inf, as in torch
            lse = torch.from_numpy(np.log(sums) + shift).reshape(lead)
    iy, ix = (torch.from_numpy(part) for part in np.divmod(index, w))
    return Peak(ix.reshape(lead), iy.reshape(lead), value.reshape(lead), lse)


#: Maps whose peak lies in this range get their normaliser as log(sum(exp(map))), without subtracting the peak
#: first (one operation per cell fewer): exp(64) times 2^31 cells is still finite in float32, and the cells
#: that underflow (below -87) lie more than 70 below a peak >= -16, where exp(-70) is far below the float32
#: resolution of the sum. Other maps (and only they) take sum(exp(map - peak)).
DIRECT_EXP_PEAKS = (-16.0, 64.0)


def _scan_chunk(
    values: np.ndarray,
    index: np.ndarray,
    top: np.ndarray | None,
    sums: np.ndarray | None,
    shift: np.ndarray | None,
    buffer: np.ndarray | None,
    a: int,
    b: int,
) -> None:
    """Maps ``a .. b - 1`` of ``values`` (N, h w): argmax into ``index``; with ``sums``, the peak into ``top`` and
    per map ``sum(exp(map - shift))`` into ``sums`` and the ``shift`` used (0, or the peak outside
    DIRECT_EXP_PEAKS), through the thread's own ``buffer``. The argmax reads the chunk from memory; the rest
    reads it from cache."""
    chunk = values[a:b]
    np.argmax(chunk, axis=-1, out=index[a:b])  # first maximum; a NaN wins, as in torch
    if sums is None:
        return
    top[a:b] = chunk[np.arange(b - a), index[a:b]]
    part = buffer[: b - a]
    # A map with a large peak overflows here and one holding NaN or inf gives NaN: both as torch would,
    # without numpy's warnings (the first are recomputed below, the others are refused by the caller).
    with np.errstate(over="ignore", invalid="ignore"):
        np.exp(chunk, out=part)
        np.sum(part, axis=-1, out=sums[a:b])
        low, high = DIRECT_EXP_PEAKS
        peaks = top[a:b]
        far = np.flatnonzero(~((peaks >= low) & (peaks <= high)))  # rare: these maps again, peak subtracted
        if far.size:
            np.exp(chunk[far] - peaks[far, None], out=part[: far.size])
            sums[a + far] = part[: far.size].sum(-1)
            shift[a + far] = peaks[far]


def run_chunks(
    worker: Callable[[Callable[[], tuple[int, int] | None]], None],
    n: int,
    chunk_rows: int,
    threads: int | None = None,
    min_rows: int | None = None,
) -> None:
    """Run ``worker`` on ``threads`` threads, the calling one included, over chunks of rows ``0 .. n - 1``.

    Each ``worker(next_chunk)`` calls ``next_chunk()`` for the ``(start, stop)`` of the next chunk not yet
    taken, ``None`` once none is left, so every row is handed out once. Why chunks taken one after the other
    rather than a fixed share per thread: a thread slowed down (by torch's OpenMP threads, which spin for a
    while after each parallel operation on the same cores, or by another process) then takes fewer chunks
    instead of holding up the rest. Chunks hold ``chunk_rows`` rows while many are left, then shrink to a
    quarter of what is left per thread, down to ``min_rows`` (``None``: ``chunk_rows``), so that the last
    ones are small and the threads finish together. ``threads`` (``None``: ``torch.get_num_threads()``) is
    capped at the number of ``chunk_rows`` chunks. ``worker`` must release the GIL for the threads to run in
    parallel (numpy's array operations do) and write disjoint outputs; its first exception is raised here
    once every thread has stopped.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    threads = torch.get_num_threads() if threads is None else threads
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    threads = max(1, min(threads, -(-n // chunk_rows)))
    smallest = chunk_rows if min_rows is None else max(1, min(min_rows, chunk_rows))
    taken = [0]  # rows handed out so far
    lock = threading.Lock()
    failed = threading.Event()

    def next_chunk() -> tuple[int, int] | None:
        with lock:
            start = taken[0]
            if start >= n or failed.is_set():
                return None
            size = min(chunk_rows, max(smallest, -(-(n - start) // (4 * threads))))
            taken[0] = min(n, start + size)
            return start, taken[0]

    def guarded() -> None:
        try:
            worker(next_chunk)
        except BaseException:
            failed.set()  # the other threads stop at their next chunk
            raise

    futures = [_scan_pool(threads - 1).submit(guarded) for _ in range(threads - 1)]
    try:
        guarded()
    finally:
        errors = [future.exception() for future in futures]  # waits for every helper
    for error in errors:
        if error is not None:
            raise error


def _threads_for(tensor: Tensor, threads: int | None) -> int | None:
    """One thread for a tensor under :data:`SCAN_THREAD_MIN_BYTES`, else ``threads``."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be an integer >= 1 or None, got {threads!r}")
    return 1 if tensor.numel() * tensor.element_size() < SCAN_THREAD_MIN_BYTES else threads


_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _scan_pool(workers: int) -> ThreadPoolExecutor:
    """A pool of ``workers`` helper threads for :func:`run_chunks`, one per process and size (a forked child
    gets a fresh one: threads do not survive ``fork``)."""
    key = (workers, os.getpid())
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = ThreadPoolExecutor(workers, thread_name_prefix="h3r-scan")
            _POOLS[key] = pool
        return pool


def first_maximum_by_rows(heatmaps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The first maximum of every map, in row-major order, from its row maxima.

    Args:
        heatmaps: (B, K, h, w), any floating dtype and device.
    Returns:
        ``ix``, ``iy`` (B, K) long and the peak values (B, K), which carry gradients when ``heatmaps`` do.

    Three steps: the maximum of every row, ``amax(-1)`` (N, h), the one read of every cell; the first row
    whose maximum is the largest, ``iy``; the first column of that row holding it, ``ix``. That is the first
    maximum in row-major order, ties and NaN included: a NaN makes its row's maximum NaN (``amax``
    propagates it) and counts as the largest in both argmaxes, as in numpy and torch. :func:`scan_maps`
    takes this path where numpy's argmax cannot run (CUDA, half precision). On the CPU in float32 it is
    not worth a switch: right after a torch operation it took 16.7-19.6 ms where the threaded numpy scan
    took 16.4-18.9 ms (although ``amax`` runs on torch's own threads, which the scan's second thread
    competes with), back to back 14.4-18.7 ms against 12.5-14.7 ms (five runs of ``benchmarks/codecs.py
    --quick``, its two ``first maximum`` rows, in ``benchmarks/results/codecs_ratios_2core.txt``). Called
    directly on CPU float32 or float64 maps (as that benchmark does; ``decode`` never sends them here), the
    two small argmaxes, over N x h row maxima and N rows of w cells, are numpy's, where torch's
    index-tracking reductions are slower (the benchmark's ``torch.max(dim=-1)`` row against numpy's argmax),
    so that the comparison is with this method at its fastest.
    """
    h, w = heatmaps.shape[-2:]
    lead = heatmaps.shape[:-2]
    maps = heatmaps.reshape(-1, h, w)
    n = maps.shape[0]
    row_max = maps.detach().amax(-1)  # (N, h)
    iy = _first_argmax(row_max)
    first_cell = torch.arange(n, device=maps.device) * h + iy
    rows = maps.reshape(n * h, w).index_select(0, first_cell)  # (N, w): the row of each peak
    ix = _first_argmax(rows.detach())
    value = rows.gather(-1, ix[:, None])[:, 0]
    return ix.reshape(lead), iy.reshape(lead), value.reshape(lead)


def _first_argmax(values: Tensor) -> Tensor:
    """Index (N,) long of the first maximum of each row of ``values`` (N, M), a NaN counting as the largest:
    numpy's argmax on the CPU in float32 and float64, torch's elsewhere."""
    if values.device.type == "cpu" and values.dtype in (torch.float32, torch.float64):
        return torch.from_numpy(values.contiguous().numpy().argmax(-1)).to(torch.long)
    return values.argmax(-1)


def constant_maps(heatmaps: Tensor, ix: Tensor, iy: Tensor) -> Tensor:
    """(B, K) bool, True where a map holds one value everywhere (it then has no location).

    ``ix, iy`` are the maps' first-maximum cells from :func:`argmax_cells`: a constant map has its first
    maximum at cell (0, 0), so only those maps are scanned (usually none), not the whole batch.
    """
    candidates = (ix | iy) == 0  # ix = iy = 0 (both are >= 0)
    if not candidates.any():
        return candidates  # all False: no map to scan
    constant = torch.zeros_like(candidates)
    flat = heatmaps.flatten(-2)[candidates]
    constant[candidates] = flat.amax(-1) == flat.amin(-1)
    return constant


def map_logsumexp(heatmaps: Tensor, peak: Tensor, chunk_cells: int = 1 << 18) -> Tensor:
    """log(sum(exp(map))) of every map (B, K, h, w) -> (B, K), given its maximum ``peak`` (B, K).

    The softmax normaliser of a logit map, which the scores need. ``torch.logsumexp`` over a large batch
    builds full-size temporaries; here the maps are processed in chunks of about ``chunk_cells`` cells
    (1 MB of float32) through one reused buffer small enough to stay in cache. Each chunk costs three torch
    calls, so much smaller chunks pay the per-call overhead more often and much larger ones fall out of
    cache (``benchmarks/codecs.py`` times this part as a multiple of a memory pass).
    """
    h, w = heatmaps.shape[-2:]
    if torch.is_grad_enabled() and (heatmaps.requires_grad or peak.requires_grad):
        # The in-place buffer below cannot carry gradients; a differentiable decode takes torch's own.
        return torch.logsumexp(heatmaps.flatten(-2), dim=-1)
    flat = heatmaps.reshape(-1, h * w)
    top = peak.reshape(-1, 1)
    rows = max(1, chunk_cells // (h * w))
    out = flat.new_empty(flat.shape[0])
    buffer = flat.new_empty(min(rows, flat.shape[0]), h * w)
    for start in range(0, flat.shape[0], rows):
        stop = min(start + rows, flat.shape[0])
        part = buffer[: stop - start]
        torch.sub(flat[start:stop], top[start:stop], out=part)
        part.exp_()
        torch.sum(part, dim=-1, out=out[start:stop])
    return (out.log_() + top[:, 0]).reshape(peak.shape)


def window_offsets(radius: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Offsets (P,) in x and y of a (2r+1) x (2r+1) window, row-major (y outer, x inner)."""
    span = torch.arange(-radius, radius + 1, device=device)
    dy, dx = torch.meshgrid(span, span, indexing="ij")
    return dx.reshape(-1), dy.reshape(-1)


BORDERS = ("zero", "reflect", "replicate")


def gather_window(
    heatmaps: Tensor, ix: Tensor, iy: Tensor, radius: int, border: str = "zero"
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The (2r+1)^2 cells around ``(ix, iy)`` of every map.

    Args:
        heatmaps: (B, K, h, w); ix, iy: (B, K) long centre cells.
        border: what window cells beyond the map border hold: ``"zero"``, ``"reflect"`` (mirrored about the
            outermost cell, ``x[-1] = x[1]``) or ``"replicate"`` (the outermost cell repeated).
    Returns:
        values (B, K, P), their cell coordinates x and y (B, K, P) as longs, and an ``inside`` mask (B, K, P)
        that is False for window cells beyond the map border.
    """
    h, w = heatmaps.shape[-2:]
    size = 2 * radius + 1
    # Per axis first, (B, K, 2r+1), then one outer sum or product per result: each (B, K, P) temporary
    # is a fresh allocation, which costs more than its arithmetic.
    span = torch.arange(-radius, radius + 1, device=heatmaps.device)
    x1, y1 = ix[..., None] + span, iy[..., None] + span
    inside = ((y1 >= 0) & (y1 < h))[..., :, None] & ((x1 >= 0) & (x1 < w))[..., None, :]
    if border == "reflect":
        rx, ry = _reflect(x1, w), _reflect(y1, h)
    else:
        rx, ry = x1, y1
    flat = (ry.clamp(0, h - 1) * w)[..., :, None] + rx.clamp(0, w - 1)[..., None, :]
    values = heatmaps.flatten(-2).gather(-1, flat.flatten(-2))
    inside = inside.flatten(-2)
    if border == "zero":
        values = values.masked_fill(~inside, 0.0)
    x = x1[..., None, :].expand(*x1.shape[:-1], size, size).flatten(-2)  # row-major: y outer, x inner
    y = y1[..., :, None].expand(*y1.shape[:-1], size, size).flatten(-2)
    return values, x, y, inside


def gather_patch(
    heatmaps: Tensor, ix: Tensor, iy: Tensor, radius: int, border: str = "zero"
) -> tuple[Tensor, Tensor, Tensor]:
    """The (2r+1) x (2r+1) patch around ``(ix, iy)`` of every map: the cells of :func:`gather_window`.

    A patch that lies on the map is copied by :func:`onmap_patch`; only the patches that cross the border
    are gathered cell by cell, with a (B, K, 2r+1, 2r+1) index built one axis at a time, which costs several
    full-size integer operations per cell. Both copy the same values, so the result is the same bit for bit.

    Args:
        heatmaps: (B, K, h, w); ix, iy: (B, K) long centre cells; border: ``"zero"``, ``"reflect"`` or
            ``"replicate"``, as in :func:`gather_window`.
    Returns:
        ``patch`` (B, K, 2r+1, 2r+1), rows y - r .. y + r, columns x - r .. x + r, and ``inside_x``,
        ``inside_y`` (B, K, 2r+1) bool, False for columns and rows beyond the border. Under ``"zero"`` the
        off-map cells of ``patch`` hold the nearest on-map cell's value, not 0: the caller applies the masks
        (their outer product is the window's ``inside`` mask).
    """
    h, w = heatmaps.shape[-2:]
    size = 2 * radius + 1
    span = torch.arange(-radius, radius + 1, device=heatmaps.device)
    x = ix[..., None] + span
    y = iy[..., None] + span
    inside_x, inside_y = (x >= 0) & (x < w), (y >= 0) & (y < h)
    if size > h or size > w:
        return _indexed_patch(heatmaps, x, y, border), inside_x, inside_y
    patch, x0, y0 = onmap_patch(heatmaps, ix, iy, radius)
    n = ix.numel()
    patch = patch.reshape(n, size, size)
    crosses = ((x0 != ix - radius) | (y0 != iy - radius)).reshape(-1).nonzero()[:, 0]
    if crosses.numel():
        patch[crosses] = _indexed_patch(
            heatmaps.reshape(-1, h, w),
            x.reshape(n, size)[crosses],
            y.reshape(n, size)[crosses],
            border,
            crosses,
        )
    return patch.reshape(*ix.shape, size, size), inside_x, inside_y


def onmap_patch(heatmaps: Tensor, ix: Tensor, iy: Tensor, radius: int) -> tuple[Tensor, Tensor, Tensor]:
    """The (2r+1) x (2r+1) patch of every map nearest to the one centred on ``(ix, iy)`` that lies on the map.

    Args:
        heatmaps: (B, K, h, w) with ``2r + 1 <= h, w``; ix, iy: (B, K) long centre cells.
    Returns:
        ``patch`` (B, K, 2r+1, 2r+1) and its first column ``x0`` and row ``y0`` (B, K) long:
        ``x0 = clamp(ix - r, 0, w - 2r - 1)``, likewise ``y0``. It holds every on-map cell of the centred
        patch, which is this one shifted by ``(ix - r - x0, iy - r - y0)`` cells.

    Without gradients, every patch row is one row of the view ``(cells - S + 1, S)`` of the flat maps with
    strides (1, 1) (row ``i`` holds cells ``i .. i + S - 1``), and one ``index_select`` of the ``S`` rows of
    each patch copies them, several times faster than indexing ``unfold``'s 5-D view, which is used when
    gradients are wanted (``benchmarks/codecs.py`` times both). Both copy the same values.
    """
    h, w = heatmaps.shape[-2:]
    size = 2 * radius + 1
    if size > h or size > w:
        raise ValueError(f"radius {radius} needs maps of at least {size} x {size} cells, got {h} x {w}")
    x0 = (ix - radius).clamp(0, w - size)
    y0 = (iy - radius).clamp(0, h - size)
    maps = heatmaps.reshape(-1, h, w)
    n = maps.shape[0]
    if torch.is_grad_enabled() and heatmaps.requires_grad:
        windows = maps.unfold(1, size, 1).unfold(2, size, 1)  # (N, h - S + 1, w - S + 1, S, S), a view
        patch = windows[torch.arange(n, device=maps.device), y0.reshape(-1), x0.reshape(-1)]
        return patch.reshape(*ix.shape, size, size), x0, y0
    flat = maps.detach().reshape(-1)  # contiguous: a view of contiguous maps, else a copy
    rows = flat.as_strided((flat.numel() - size + 1, size), (1, 1))
    first = torch.arange(n, device=maps.device) * (h * w) + y0.reshape(-1) * w + x0.reshape(-1)
    starts = first[:, None] + torch.arange(size, device=maps.device) * w  # (N, S) first cell of each row
    patch = rows.index_select(0, starts.reshape(-1))
    return patch.reshape(*ix.shape, size, size), x0, y0


def _indexed_patch(heatmaps: Tensor, x: Tensor, y: Tensor, border: str, maps: Tensor | None = None) -> Tensor:
    """Cells at rows ``y`` and columns ``x`` (..., S), off-map ones mapped per ``border``: (..., S, S).

    Without ``maps``, ``heatmaps`` is (B, K, h, w) and ``x, y`` are (B, K, S); with ``maps`` (M,) long,
    ``heatmaps`` is (N, h, w), ``x, y`` are (M, S) and patch ``m`` is read from map ``maps[m]`` (no copy of
    those maps is made).
    """
    h, w = heatmaps.shape[-2:]
    if border == "reflect":
        x, y = _reflect(x, w), _reflect(y, h)
    x, y = x.clamp(0, w - 1), y.clamp(0, h - 1)
    index = (y * w)[..., :, None] + x[..., None, :]  # (..., S, S) cell indices within a map
    size = x.shape[-1]
    if maps is not None:
        return heatmaps.reshape(-1)[index + (maps * (h * w))[:, None, None]]
    return heatmaps.flatten(-2).gather(-1, index.flatten(-2)).unflatten(-1, (size, size))


def _reflect(t: Tensor, size: int) -> Tensor:
    """Indices mirrored about cells 0 and size - 1 (one reflection; farther ones are clamped by the caller)."""
    t = torch.where(t < 0, -t, t)
    return torch.where(t > size - 1, 2 * (size - 1) - t, t)


def cell_grid(size: int, like: Tensor) -> Tensor:
    """Cell-centre coordinates 0..size-1 with ``like``'s dtype and device."""
    return torch.arange(size, dtype=like.dtype, device=like.device)


def gaussian_profiles(centers: Tensor, heatmap_size: tuple[int, int], sigma: float) -> tuple[Tensor, Tensor]:
    """Unnormalised 1-D Gaussians exp(-(t - c)^2 / (2 sigma^2)) along x (B, K, w) and y (B, K, h).

    A 2-D isotropic Gaussian is their outer product, ``gy[..., :, None] * gx[..., None, :]``: building the
    two profiles costs O(w + h) per keypoint instead of O(w * h) exponentials.
    """
    w, h = heatmap_size
    gx = torch.exp(-((cell_grid(w, centers) - centers[..., 0:1]) ** 2) / (2 * sigma**2))
    gy = torch.exp(-((cell_grid(h, centers) - centers[..., 1:2]) ** 2) / (2 * sigma**2))
    return gx, gy


def gaussian_maps(centers: Tensor, heatmap_size: tuple[int, int], sigma: float, weights: Tensor) -> Tensor:
    """(B, K, h, w) Gaussians of peak 1 at ``centers`` (B, K, 2) cells, zeroed where ``weights`` is 0."""
    gx, gy = gaussian_profiles(centers, heatmap_size, sigma)
    gy = gy * weights[..., None]
    return gy[..., :, None] * gx[..., None, :]


def gaussian_kernel_1d(sigma: float, radius: int, like: Tensor) -> Tensor:
    """A normalised 1-D Gaussian kernel of 2r+1 taps, dtype/device of ``like``."""
    t = torch.arange(-radius, radius + 1, dtype=like.dtype, device=like.device)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    return kernel / kernel.sum()
