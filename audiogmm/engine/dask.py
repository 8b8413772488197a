"""The Dask executor: the local executor's ``map``/``close``, run on a ``dask.distributed`` cluster.

:class:`DaskExecutor` has the interface of :class:`~audiogmm.engine.LocalExecutor`
(``map(fn, items, *, isolated, star)`` yielding results *in task order*, lazily,
with a bounded look-ahead; ``close``; a context manager), so the one EM loop and
the extraction run unchanged on it. Per ``map`` call, ``fn`` (e.g. a
``functools.partial`` holding this iteration's parameters, a few hundred KB) is
scattered to every worker once (``broadcast=True``); each task message then
carries only its item. The caller reduces the ordered results in a fixed order,
or :meth:`DaskExecutor.map_reduce` runs the same fixed tree
(:func:`audiogmm.engine.reduce.tree_fold`) as tasks on the workers, so the result
does not depend on which worker finished first, nor on where it was summed.

Faults: a task whose worker dies is re-run on another worker by the scheduler
(up to ``distributed.scheduler.allowed-failures`` times); a task that raises is
retried ``retries`` times. Tasks are pure functions of their inputs, so a
re-run gives the same bits. A lost scheduler raises :class:`ClusterError`.

``dask`` is imported here only: ``import audiogmm`` never imports it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any, Callable, TypeVar

from ..exceptions import ClusterError, ParameterError
from .local import LocalExecutor
from .reduce import tree_fold

__all__ = ["DaskExecutor", "parse_spec"]

logger = logging.getLogger("audiogmm.engine")

T = TypeVar("T")

# BLAS pools off in worker processes: each task runs on its worker's one thread
_ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_LOCAL = re.compile(r"^local:(\d+)$")


def parse_spec(spec: str) -> tuple[str, Any]:
    """``"local:N"`` -> ``("local", N)``; ``"tcp://host:port"`` (or ``tls://``) -> ``("address", spec)``."""
    m = _LOCAL.match(spec)
    if m and int(m.group(1)) >= 1:
        return "local", int(m.group(1))
    if re.match(r"^(tcp|tls|inproc)://[^\s/]+$", spec):
        return "address", spec
    raise ParameterError(
        f"--dask must be local:N (N >= 1 workers on this machine) or a scheduler "
        f"address such as tcp://HOST:8786; got {spec!r}"
    )


def _call(fn: Callable[..., T], item: Any, star: bool) -> T:
    # runs on a worker: ``fn`` arrives as the scattered object, resolved by Dask
    return fn(*item) if star else fn(item)


def _lost(e: BaseException) -> bool:
    from concurrent.futures import CancelledError

    from distributed.client import ClosedClientError
    from distributed.comm.core import CommClosedError

    # a closed comm or client, a failed reconnect, futures cancelled as the scheduler went away
    # (not OSError: a task's own I/O error, e.g. a shard missing on a worker, stays as it is)
    lost = (CommClosedError, ClosedClientError, CancelledError)
    return isinstance(e, lost)


class DaskExecutor:
    """Run independent tasks on a Dask cluster: in order, lazily, with a bounded look-ahead.

    Parameters
    ----------
    spec : str
        ``"local:N"``: start a ``LocalCluster`` of N single-threaded worker
        processes (closed with the executor); ``"tcp://HOST:PORT"``: join a running
        scheduler (``dask scheduler`` + ``dask worker``).
    processes : bool, default=True
        For ``local:N``: worker processes (False: threads in this process, for tests).
    retries : int >= 0, default=2
        Re-runs of a task that raised (a dead worker's tasks are re-run anyway).
    timeout : float, default=30
        Seconds to connect to the scheduler.
    client : distributed.Client, optional
        Use this client instead (not closed by :meth:`close`).

    Examples
    --------
    >>> with DaskExecutor("local:2") as ex:                       # doctest: +SKIP
    ...     list(ex.map(abs, [-1, -2]))
    [1, 2]
    """

    def __init__(
        self,
        spec: str | None = None,
        *,
        processes: bool = True,
        retries: int = 2,
        timeout: float = 30.0,
        client: Any = None,
    ) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ParameterError(
                "--dask needs dask.distributed: pip install 'audiogmm[dask]'"
            ) from None
        self.retries = int(retries)
        self._cluster = None
        self._own_client = client is None
        if client is not None:
            self.client, self.spec = client, "client"
        else:
            if spec is None:
                raise ParameterError("DaskExecutor needs a spec (local:N or tcp://HOST:PORT)")
            kind, value = parse_spec(spec)
            self.spec = spec
            if kind == "local":
                extra = {"env": _ONE_THREAD} if processes else {}  # env: worker processes only
                self._cluster = LocalCluster(
                    n_workers=value, threads_per_worker=1, processes=processes,
                    dashboard_address=None, **extra,
                )  # fmt: skip
                self.client = Client(self._cluster, set_as_default=False)
            else:
                try:
                    self.client = Client(value, timeout=timeout, set_as_default=False)
                except (OSError, TimeoutError) as e:
                    raise ClusterError(
                        f"cannot reach the Dask scheduler at {value} ({e}); start one with "
                        "`dask scheduler` and workers with `dask worker " + value + "`"
                    ) from None
        self.n_workers = max(1, self._n_threads())
        self._local = LocalExecutor()  # the maps that must stay in this process

    def _n_threads(self) -> int:
        try:
            return sum(self.client.nthreads().values())
        except Exception:  # pragma: no cover - reported by the first map
            return 1

    def __repr__(self) -> str:
        return f"DaskExecutor({self.spec!r}, n_workers={self.n_workers})"

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the client (and the LocalCluster it started). Safe to call twice."""
        if self._own_client and self.client is not None:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._local.close()
        self.client, self._cluster = None, None

    def map(
        self,
        fn: Callable[..., T],
        items: Iterable[Any],
        *,
        isolated: bool = False,
        star: bool = False,
    ) -> Iterator[T]:
        """Apply ``fn`` to every item on the workers; yield the results in item order, lazily.

        Parameters
        ----------
        fn : callable
            With ``isolated=True``: picklable (e.g. a ``functools.partial`` of a
            top-level function), shipped to the workers once per call.
        items : iterable
            Task arguments (picklable), consumed as results are requested.
        isolated : bool
            The task touches no shared state and may run on a worker. Other maps
            (closures over in-memory arrays, e.g. the chunks of an initialisation
            subsample) run here, on a local thread pool, as in :class:`LocalExecutor`.
        star : bool
            Call ``fn(*item)`` instead of ``fn(item)``.
        """
        if self.client is None:
            raise RuntimeError("this executor is closed")
        if isolated and self.client.status != "running":
            raise ClusterError(self._lost_message(f"client status {self.client.status!r}"))
        if not isolated:
            yield from self._local.map(fn, items, star=star)
            return
        try:
            yield from self._run(fn, items, star)
        except Exception as e:
            if _lost(e):
                raise ClusterError(self._lost_message(e)) from None
            raise

    def _run(self, fn: Callable[..., T], items: Iterable[Any], star: bool) -> Iterator[T]:
        client = self.client
        [fn_remote] = client.scatter([fn], broadcast=True, hash=False)
        window = 4 * max(self.n_workers, 1)
        pending: deque = deque()
        count = 0
        try:
            for it in items:
                pending.append(
                    client.submit(
                        _call, fn_remote, it, star, retries=self.retries, pure=False,
                        key=f"audiogmm-{os.getpid()}-{id(pending)}-{count}",
                    )
                )  # fmt: skip
                count += 1
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            with contextlib.suppress(Exception):  # a lost client cannot cancel; nothing to do
                for fut in pending:  # the caller stopped early or a task failed
                    fut.cancel()
                fn_remote.release()

    def map_reduce(
        self,
        fn: Callable[..., T],
        items: Iterable[Any],
        combine: Callable[[T, T], T],
        *,
        star: bool = False,
    ) -> T:
        """``tree_fold(map(fn, items), combine)`` with the map *and* the tree on the workers.

        Every item becomes a task and every node of the fixed tree of
        :func:`audiogmm.engine.reduce.tree_fold` a ``combine`` task on two futures,
        so the client receives one result (e.g. one 248 KB ``Stats``) instead of one
        per task, and the bits equal an in-process ``tree_fold`` of the ordered results.
        ``fn``, the items and ``combine`` must be picklable; ``fn`` is shipped once.
        """
        if self.client is None:
            raise RuntimeError("this executor is closed")
        if self.client.status != "running":
            raise ClusterError(self._lost_message(f"client status {self.client.status!r}"))
        client = self.client
        tag = f"audiogmm-{os.getpid()}-{id(items)}"
        try:
            [fn_remote] = client.scatter([fn], broadcast=True, hash=False)
            leaves = (
                client.submit(_call, fn_remote, it, star, retries=self.retries, pure=False,
                              key=f"{tag}-map-{i}")
                for i, it in enumerate(items)
            )  # fmt: skip
            count = iter(range(1 << 62))

            def node(left: Any, right: Any) -> Any:
                return client.submit(
                    combine, left, right, retries=self.retries, pure=False,
                    key=f"{tag}-sum-{next(count)}",
                )  # fmt: skip

            try:
                return tree_fold(leaves, node).result()
            finally:
                with contextlib.suppress(Exception):
                    fn_remote.release()
        except Exception as e:
            if _lost(e):
                raise ClusterError(self._lost_message(e)) from None
            raise

    def _lost_message(self, e: BaseException | str) -> str:
        why = e if isinstance(e, str) else f"{type(e).__name__}: {e}"
        return (
            f"lost the Dask scheduler {self.spec!r} mid-run ({why}); "
            "the run stopped: restart the scheduler and re-run (with --resume to continue "
            "from the last EM checkpoint)"
        )
