"""Execution: one executor object runs independent tasks and is closed when done:
:class:`LocalExecutor` (threads; worker processes when asked), or
``audiogmm.engine.dask.DaskExecutor`` (from its module only: ``import audiogmm`` never
imports dask) with the same ``map``/``close``."""

from .local import LocalExecutor, default_workers, one_blas_thread, resolve  # noqa: F401

__all__ = ["LocalExecutor", "one_blas_thread"]
