"""The ``audiogmm`` command and ``python -m audiogmm``: :mod:`audiogmm.cli` in a process whose
BLAS starts on one thread and whose allocator keeps freed memory for reuse."""

import os

#: Set to 1 (unless the user set them) before numpy is imported. Every command runs BLAS on
#: one thread anyway (:func:`audiogmm.engine.one_blas_thread`; its executor gives the
#: parallelism), but a BLAS loaded with a thread pool spins the pool up at import: about
#: 0.1-0.2 s of CPU per command, and 5 % of the wall time of a train on two cores.
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

#: glibc ``mallopt`` settings (bytes): arrays up to 16 MB come from the heap, and up to 64 MB
#: of freed heap is kept for the next arrays. With glibc's defaults, each clip's arrays
#: (about 1 MB each) are mapped, faulted in and returned to the system again, and on two
#: threads the unmapping stalls the other core: extraction took 10-15 % longer.
MALLOC_OPTIONS = {"M_MMAP_THRESHOLD": (-3, 16 << 20), "M_TRIM_THRESHOLD": (-1, 64 << 20)}


def one_blas_thread_env() -> None:
    """Set :data:`BLAS_THREAD_VARS` to 1 where unset; effective only before numpy loads."""
    for var in BLAS_THREAD_VARS:
        os.environ.setdefault(var, "1")


def keep_freed_memory() -> bool:
    """Apply :data:`MALLOC_OPTIONS` with glibc's ``mallopt``, unless the user tunes malloc
    (a ``MALLOC_*`` variable is set); False where there is no such allocator (nothing done)."""
    if any(k.startswith("MALLOC_") for k in os.environ):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows): its own allocator
        return False
    return all(mallopt(param, value) == 1 for param, value in MALLOC_OPTIONS.values())


def main() -> None:
    """The console entry point."""
    one_blas_thread_env()
    keep_freed_memory()
    from .cli import main as cli_main

    cli_main(prog_name="audiogmm")


if __name__ == "__main__":
    main()
