"""Execution: one executor object runs independent tasks and is closed when done.

:class:`LocalExecutor` (threads, processes when asked) is the default;
:class:`audiogmm.engine.dask.DaskExecutor` (imported from its module only, so that
``import audiogmm`` never imports dask) offers the same ``map``/``close`` interface,
so the EM loop and the extraction run unchanged on it. :mod:`.policy` decides, once per command,
whether the work is large enough for worker processes.
"""

from .local import LocalExecutor, default_workers, one_blas_thread, resolve

__all__ = ["LocalExecutor", "default_workers", "one_blas_thread", "resolve"]
