"""Chunk-parallel execution for the E-step and scoring.

Why threads over chunks instead of multi-threaded BLAS plus a parallel numba
kernel: the two thread pools (OpenBLAS and numba) alternate on every chunk and
OpenBLAS's spinning workers starve numba's, which made a 2-core E-step 10-100x
slower than its two GEMMs. Here each chunk runs entirely on one thread (BLAS
limited to one thread, serial fused kernel, both release the GIL), chunks are
spread over ``n_threads`` threads, and per-chunk results are combined *in chunk
order*, so the result is bit-identical whatever the number of threads.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, TypeVar

__all__ = ["chunk_map", "default_threads", "single_threaded_blas"]

T = TypeVar("T")

_lock = threading.Lock()
_pools: dict[int, ThreadPoolExecutor] = {}
_controller = None
_depth = 0


def default_threads() -> int:
    """Worker threads used when ``n_threads`` is None: ``AUDIOGMM_THREADS`` or the core count."""
    env = os.environ.get("AUDIOGMM_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def _pool(n: int) -> ThreadPoolExecutor:
    with _lock:
        if n not in _pools:
            _pools[n] = ThreadPoolExecutor(n, thread_name_prefix="audiogmm")
        return _pools[n]


@contextmanager
def single_threaded_blas():
    """Limit BLAS to one thread for the duration (re-entrant, process-wide)."""
    global _controller, _depth
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        yield
        return
    with _lock:
        if _controller is None:
            _controller = ThreadpoolController()
        _depth += 1
        first = _depth == 1
    try:
        if first:
            with _controller.limit(limits=1, user_api="blas"):
                yield
        else:
            yield
    finally:
        with _lock:
            _depth -= 1


def chunk_map(
    fn: Callable[[int, int], T], n: int, chunk: int, *, n_threads: int | None = None
) -> Iterator[T]:
    """Apply ``fn(start, stop)`` to consecutive chunks of ``range(n)``; yield results in order.

    Results are yielded lazily, so a caller that reduces them as they come holds
    only a few chunk results at a time, whatever ``n`` is.

    Parameters
    ----------
    fn : callable (start, stop) -> T
        Must be thread-safe (use thread-local buffers).
    n : int
        Number of rows.
    chunk : int
        Rows per chunk.
    n_threads : int or None
        Threads to use; None means :func:`default_threads`.
    """
    bounds = [(s, min(n, s + chunk)) for s in range(0, n, chunk)]
    threads = min(n_threads or default_threads(), len(bounds))
    if threading.current_thread().name.startswith("audiogmm"):
        threads = 1  # already inside a worker: nesting on the same pool could deadlock
    with single_threaded_blas():
        if threads <= 1:
            for s, e in bounds:
                yield fn(s, e)
            return
        pool = _pool(threads)
        window = 4 * threads  # bounded look-ahead: few results alive at once
        pending: deque = deque()
        for b in bounds:
            pending.append(pool.submit(fn, *b))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
