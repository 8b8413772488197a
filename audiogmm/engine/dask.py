"""The Dask executor: the local executor's ``map``/``close`` on a ``dask.distributed``
cluster (``import audiogmm`` never imports dask).

Per ``map``, ``fn`` goes to the cluster once, as a task of its own (computed again if the
worker holding it dies, unlike scattered data); each task then carries only its item. A dead
worker's task is re-run, a raising one twice (tasks are pure: the same bits); a lost
scheduler raises :class:`ClusterError`."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import CancelledError
from typing import Any, Callable, TypeVar

from ..exceptions import ClusterError, ParameterError
from .local import LocalExecutor, tree_fold, windowed

__all__ = ["DaskExecutor", "parse_spec"]

T = TypeVar("T")

# BLAS pools off in worker processes: each task runs on its worker's one thread
_ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_SESSIONS = itertools.count()  # unique task keys per map
_LOST = ("lost the Dask scheduler {!r} mid-run ({}); the run stopped: restart the scheduler "
         "and re-run (with --resume to continue from the last EM checkpoint)")  # fmt: skip


def parse_spec(spec: str) -> tuple[str, Any]:
    """``"local:N"`` -> ``("local", N)``; ``"tcp://host:port"`` (or ``tls://``) ->
    ``("address", spec)``."""
    m = re.match(r"^local:(\d+)$", spec)
    if m and int(m.group(1)) >= 1:
        return "local", int(m.group(1))
    if re.match(r"^(tcp|tls|inproc)://[^\s/]+$", spec):
        return "address", spec
    raise ParameterError(f"--dask must be local:N (N >= 1 workers on this machine) or a scheduler "
                         f"address such as tcp://HOST:8786; got {spec!r}")


def _value(x: T) -> T:
    return x


def _call(fn: Callable[..., T], item: Any, star: bool) -> T:
    return fn(*item) if star else fn(item)  # on a worker: ``fn`` is the resolved future


class DaskExecutor(contextlib.AbstractContextManager):
    """Run independent tasks on a Dask cluster: in order, lazily, with a bounded look-ahead.

    Parameters
    ----------
    spec : str
        ``"local:N"``: start a ``LocalCluster`` of N single-threaded worker processes
        (closed with the executor); ``"tcp://HOST:PORT"``: join a running scheduler.
    processes : bool, default=True
        For ``local:N``: worker processes (False: threads in this process, for tests).
    timeout : float, default=30
        Seconds to connect to the scheduler."""

    def __init__(self, spec: str, *, processes: bool = True, timeout: float = 30.0) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            msg = "--dask needs dask.distributed: pip install 'audiogmm[dask]'"
            raise ParameterError(msg) from None
        self.spec, self._cluster = spec, None
        kind, value = parse_spec(spec)
        if kind == "local":
            extra = {"env": _ONE_THREAD} if processes else {}  # env: worker processes only
            self._cluster = LocalCluster(n_workers=value, threads_per_worker=1,
                                         processes=processes, dashboard_address=None,
                                         **extra)  # fmt: skip
            self.client = Client(self._cluster, set_as_default=False)
        else:
            try:
                self.client = Client(value, timeout=timeout, set_as_default=False)
            except (OSError, TimeoutError) as e:
                raise ClusterError(f"cannot reach the Dask scheduler at {value} ({e}); start "
                                   f"one with `dask scheduler` and workers with `dask worker "
                                   f"{value}`") from None
        try:
            self.n_workers = max(1, sum(self.client.nthreads().values()))
        except Exception:  # pragma: no cover - reported by the first map
            self.n_workers = 1
        self._local = LocalExecutor()  # the maps that must stay in this process

    def __repr__(self) -> str:
        return f"DaskExecutor({self.spec!r}, n_workers={self.n_workers})"

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the client (and the LocalCluster it started). Safe to call twice."""
        if self.client is not None:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._local.close()
        self.client, self._cluster = None, None

    def map(self, fn: Callable[..., T], items: Iterable[Any], *, isolated: bool = False,
            star: bool = False) -> Iterator[T]:  # fmt: skip
        """:meth:`LocalExecutor.map`; ``isolated`` tasks run on the workers (``fn`` and the
        items picklable, ``fn`` shipped once per call), others on a local thread pool."""
        if not isolated:
            if self.client is None:
                raise RuntimeError("this executor is closed")
            yield from self._local.map(fn, items, star=star)
            return
        with self._session(fn, star) as (leaf, _):
            yield from windowed(leaf, items, 4 * self.n_workers)

    def map_reduce(self, fn: Callable[..., T], items: Iterable[Any],
                   combine: Callable[[T, T], T], *, star: bool = False) -> T:  # fmt: skip
        """``tree_fold(map(fn, items), combine)`` with the map *and* the tree on the workers:
        each node is a ``combine`` task on two futures, so the client receives one result
        (e.g. one 248 KB ``Stats``), with the bits of an in-process ``tree_fold``.
        ``fn``, the items and ``combine`` must be picklable."""
        with self._session(fn, star) as (leaf, submit):
            return tree_fold(map(leaf, items), lambda a, b: submit(combine, a, b)).result()

    @contextlib.contextmanager
    def _session(self, fn: Callable[..., T], star: bool) -> Iterator[tuple[Callable, Callable]]:
        """Send ``fn`` once; yield ``(leaf(item) -> future, submit(func, *args) -> future)``."""
        client = self.client
        if client is None:
            raise RuntimeError("this executor is closed")
        if client.status != "running":
            raise ClusterError(_LOST.format(self.spec, f"client status {client.status!r}"))
        tag, count, remote = f"audiogmm-{os.getpid()}-{next(_SESSIONS)}", itertools.count(), None

        def submit(func: Callable[..., Any], *args: Any) -> Any:
            return client.submit(func, *args, retries=2, pure=False, key=f"{tag}-{next(count)}")
        try:
            remote = submit(_value, fn)
            yield (lambda it: submit(_call, remote, it, star)), submit
        except Exception as e:
            from distributed.client import ClosedClientError
            from distributed.comm.core import CommClosedError
            # the scheduler went away (not an OSError: a task's own I/O error, e.g. a shard
            # missing on a worker, stays as it is)
            if isinstance(e, (CommClosedError, ClosedClientError, CancelledError)):
                raise ClusterError(_LOST.format(self.spec, f"{type(e).__name__}: {e}")) from None
            raise
        finally:
            if remote is not None:
                with contextlib.suppress(Exception):
                    remote.release()
