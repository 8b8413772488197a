"""The ``audiogmm`` command and ``python -m audiogmm``: :mod:`audiogmm.cli` in a process whose
BLAS starts on one thread."""

import os

#: Set to 1 (unless the user set them) before numpy is imported. Every command runs BLAS on
#: one thread anyway (:func:`audiogmm.engine.one_blas_thread`; its executor gives the
#: parallelism), but a BLAS loaded with a thread pool spins the pool up at import: about
#: 0.1-0.2 s of CPU per command, and 5 % of the wall time of a train on two cores.
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def one_blas_thread_env() -> None:
    """Set :data:`BLAS_THREAD_VARS` to 1 where unset; effective only before numpy loads."""
    for var in BLAS_THREAD_VARS:
        os.environ.setdefault(var, "1")


def main() -> None:
    """The console entry point."""
    one_blas_thread_env()
    from .cli import main as cli_main

    cli_main(prog_name="audiogmm")


if __name__ == "__main__":
    main()
