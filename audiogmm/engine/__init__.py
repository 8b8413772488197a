"""Execution: one executor object runs independent tasks and is closed when done.

:class:`LocalExecutor` (threads, processes when asked) is the default;
``audiogmm.engine.dask.DaskExecutor`` (imported from its module only: ``import audiogmm``
never imports dask) has the same ``map``/``close``. :mod:`.policy` decides, once per
command, whether the work is large enough for worker processes.
"""

from .local import LocalExecutor, default_workers, one_blas_thread, resolve  # noqa: F401

__all__ = ["LocalExecutor", "one_blas_thread"]
