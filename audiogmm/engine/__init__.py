"""Execution: one executor object runs independent tasks and is closed when done.

:class:`LocalExecutor` (threads, processes when asked) is the only executor today;
a Dask executor will offer the same ``map``/``close`` interface, so the EM loop
and the extraction run unchanged on it.
"""

from .local import LocalExecutor, default_workers, one_blas_thread, resolve

__all__ = ["LocalExecutor", "default_workers", "one_blas_thread", "resolve"]
