"""Worker processes for :class:`~audiogmm.engine.local.LocalExecutor` (only when asked).

A ``forkserver`` (``spawn`` where it is missing) pool: workers never inherit the
parent's threads (BLAS, numba) the way ``fork`` children do. The forkserver
imports the heavy front-end modules once, so every forked worker starts warm.
Like any spawn or forkserver pool, workers import the caller's ``__main__``: a
script that asks for processes needs the ``if __name__ == "__main__":`` guard.
Threads (the default) have no such requirement.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

__all__ = ["process_pool"]

# imported once by the forkserver, so forked workers start warm (librosa's lazy
# imports cost seconds per process otherwise)
_PRELOAD = [
    "numpy",
    "scipy.signal",
    "soundfile",
    "soxr",
    "threadpoolctl",
    "librosa.core.spectrum",
    "librosa.filters",
    "librosa.feature",
    "audiogmm.features",
    "audiogmm.data.cache",
]


def _context() -> multiprocessing.context.BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")  # pragma: no cover - not on Linux


def process_pool(n_workers: int) -> ProcessPoolExecutor:
    """A new pool of ``n_workers`` processes; the caller shuts it down."""
    return ProcessPoolExecutor(max_workers=n_workers, mp_context=_context())
