"""The local executor: threads in this process, worker processes only when asked.

Each task runs on one thread with BLAS limited to one thread (two pools alternating on every
chunk made a 2-core E-step 10-100x slower than its GEMMs). Results come back *in task
order*, so any reduction by the caller is bit-identical for any number of workers, as is
:func:`tree_fold`, whoever runs it. The front end mostly releases the GIL, so threads use
the cores too; worker processes cost 0.2-3 s to start (:meth:`LocalExecutor.warm` starts
them in the background)."""

from __future__ import annotations

import functools
import importlib
import itertools
import logging
import os
import sys
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from typing import Any, Callable, TypeVar

from ..exceptions import ParameterError

__all__ = ["PROCESS_MIN_AUDIO_S", "SAMPLE_FILES", "SELECTION_PROCESS_MIN_AUDIO_S", "LocalExecutor",
           "audio_work", "count_until", "default_workers", "executor_for_work", "on_worker_lost",
           "one_blas_thread", "resolve", "tree_fold", "windowed"]  # fmt: skip

T = TypeVar("T")
logger = logging.getLogger("audiogmm.engine")

#: Seconds of audio (not frames: the cost per second barely moves with the hop) from which a
#: command uses worker processes: 5.6 h, measured in the README ("Threads or processes").
PROCESS_MIN_AUDIO_S = 20_000.0

#: The same for ``--preset auto``, whose cross-validation fits hold the GIL: its many whole
#: fits run in worker processes, started while the features are extracted. Measured on two
#: cores: 906 s of training audio 19% faster than on threads, 309 s and 243 s 5-15% slower
#: (README, "Presets and tuning").
SELECTION_PROCESS_MIN_AUDIO_S = 600.0

_in_worker = threading.local()  # set in worker threads: nested maps run inline


def default_workers() -> int:
    """Workers used when ``n_jobs`` is None: ``AUDIOGMM_THREADS`` or the usable core count."""
    env = os.environ.get("AUDIOGMM_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ParameterError(f"AUDIOGMM_THREADS must be an integer; got {env!r}") from None
    return max(1, len(os.sched_getaffinity(0)))


@functools.lru_cache(maxsize=1)
def _blas_controller(n_modules: int) -> Any:
    """threadpoolctl's BLAS view (a 3 ms scan), redone after imports (they may load a BLAS)."""
    from threadpoolctl import ThreadpoolController
    del n_modules  # the cache key only
    return ThreadpoolController()


def on_worker_lost(handler: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable]:
    """Declare what a task function returns when its worker process died on every attempt
    (:mod:`~audiogmm.engine.processes`): ``handler(*args, reason=...)`` (reason: e.g. "worker
    process killed by SIGKILL (out of memory?) on each of 2 attempts"), so that a batch can
    skip the item and go on. Here, not in ``processes``: declaring it starts no process
    machinery (multiprocessing costs ~10 ms to import)."""

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.on_worker_lost = handler  # type: ignore[attr-defined]
        return fn
    return mark


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Limit BLAS to one thread inside the ``with`` block: small products run faster on
    one thread than on a waking pool, and results do not depend on the BLAS settings."""
    if getattr(_in_worker, "active", False):
        yield  # a worker thread runs inside its map's limit already
        return
    with _blas_controller(len(sys.modules)).limit(limits=1, user_api="blas"):
        yield


class LocalExecutor(AbstractContextManager):
    """Run independent tasks on ``n_workers`` threads (None: :func:`default_workers`), or in
    as many worker processes for ``map(..., isolated=True)`` when ``processes`` (a library
    call never starts processes unless asked). Pools start on first use; a map called from
    inside a worker runs inline, so nesting never deadlocks."""

    def __init__(self, n_workers: int | None = None, *, processes: bool = False) -> None:
        n = default_workers() if n_workers is None else n_workers
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ParameterError(f"n_workers must be None or an int >= 1; got {n_workers!r}")
        self.n_workers, self.processes = n, bool(processes)
        self._pools: dict[bool, ThreadPoolExecutor] | None = {}  # by ``processes``; None: closed
        self._lock = threading.Lock()
        self._warming: list[Future] | None = None  # warm(): the workers' start-up

    def __repr__(self) -> str:
        return f"LocalExecutor(n_workers={self.n_workers}, processes={self.processes})"

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Shut the pools down (waits for running tasks). Safe to call twice."""
        with self._lock:
            pools, self._pools = self._pools or {}, None
        for pool in pools.values():
            pool.shutdown(wait=True, cancel_futures=True)

    def _pool(self, processes: bool) -> ThreadPoolExecutor:
        with self._lock:
            if self._pools is None:
                raise RuntimeError("this executor is closed")
            if processes not in self._pools:
                if processes:
                    from .processes import WorkerPool  # multiprocessing only when asked

                    pool = WorkerPool(self.n_workers)
                else:  # its threads marked, so that a map inside a task runs inline
                    pool = ThreadPoolExecutor(self.n_workers, thread_name_prefix="audiogmm",
                                              initializer=setattr,
                                              initargs=(_in_worker, "active", True))  # fmt: skip
                self._pools[processes] = pool
            return self._pools[processes]

    def warm(self, modules: Sequence[str] = ()) -> None:
        """Start the worker processes now, in the background, each importing ``modules``
        (with ``processes`` and more than one worker; else nothing): until they are up, an
        isolated task submitted from this thread runs on a thread instead, so that their
        start-up overlaps the work."""
        if self.processes and self.n_workers > 1 and self._warming is None:
            try:
                pool = self._pool(True)
            except ValueError as exc:  # no forkserver on this platform (Windows)
                self.processes, self._warming = False, []
                logger.warning("worker processes could not start (%s); running on threads", exc)
                return
            self._warming = [pool.submit(_import, tuple(modules)) for _ in range(self.n_workers)]

    def _warm(self, wait: bool = False) -> bool:
        """Whether the workers :meth:`warm` started are up (``wait``: once they are), True
        without it. A start-up that failed (no forkserver allowed here, ...) turns this
        executor's processes off, with one warning: the work goes on on threads."""
        if self._warming is None:
            return True
        if wait:
            futures_wait(self._warming)
        if not all(f.done() for f in self._warming):
            return False
        failed = next((f.exception() for f in self._warming if f.exception()), None)
        if failed is not None and self.processes:
            self.processes = False
            logger.warning("worker processes could not start (%s); running on threads", failed)
        return True

    def map(self, fn: Callable[..., T], items: Iterable[Any], *, isolated: bool = False,
            star: bool = False) -> Iterator[T]:  # fmt: skip
        """Yield ``fn(item)`` (``fn(*item)`` with ``star``; ``fn`` thread-safe) for every item,
        in item order, lazily, ``4 * n_workers`` items ahead. ``isolated``: no shared state,
        so it may run in a worker process (``fn``, top-level, and the items must pickle),
        also when this map runs inside a task of a thread (a worker thread never waits on
        its own pool: other maps there run inline)."""
        nested = getattr(_in_worker, "active", False)
        if isolated:  # did warm()'s workers fail to start? (a thread task waits to know)
            self._warm(wait=nested)
        procs = isolated and self.processes and self.n_workers > 1
        inline = self.n_workers <= 1 or (nested and not procs)
        # threads while the workers start (warm)
        threads = self._pool(False) if procs and not nested and not self._warm() else None
        with nullcontext() if procs and threads is None else one_blas_thread():  # threads
            # share this BLAS (its thread count changes the products' rounding)
            if inline:
                yield from (fn(*it) if star else fn(it) for it in items)
                return
            pool = self._pool(procs)  # fn itself goes to a process: no lambda around it

            def submit(it: Any) -> Future:
                args = it if star else (it,)
                if threads is not None and (not self._warm() or not self.processes):
                    return threads.submit(fn, *args)  # the workers are starting, or failed to
                return pool.submit(fn, *args)
            yield from windowed(submit, items, 4 * self.n_workers)


def _import(modules: tuple[str, ...]) -> None:
    """A worker's warm-up task: import ``modules``."""
    for name in modules:
        importlib.import_module(name)


def windowed(submit: Callable[[Any], Any], items: Iterable[Any], window: int) -> Iterator[Any]:
    """The results of ``submit(item)`` futures in item order, at most ``window`` in flight;
    the rest are cancelled if the caller stops or a task fails."""
    pending: deque = deque()
    try:
        for it in items:
            pending.append(submit(it))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        with suppress(Exception):  # a lost Dask client cannot cancel; nothing to do then
            for fut in pending:
                fut.cancel()


def tree_fold(items: Iterable[T], combine: Callable[[T, T], T]) -> T:
    """Fold ``items`` (in index order) with ``combine(left, right)`` along a tree fixed by
    the item index alone (a binary counter: equal-sized partial results merge as soon as
    both exist, the rest fold right to left), holding O(log n) partial results.
    ``combine`` may be ``operator.add`` or a Dask task on two futures: the same bits.

    Examples
    --------
    >>> tree_fold(["a", "b", "c", "d", "e"], lambda x, y: f"({x}{y})")
    '(((ab)(cd))e)'"""
    stack: list[tuple[int, T]] = []
    for x in items:
        size, node = 1, x
        while stack and stack[-1][0] == size:
            size, node = 2 * size, combine(stack.pop()[1], node)
        stack.append((size, node))
    if not stack:
        raise ParameterError("nothing to reduce")
    total = stack.pop()[1]
    while stack:
        total = combine(stack.pop()[1], total)
    return total


def resolve(executor: LocalExecutor | None, n_jobs: int | None = None):
    """A context yielding ``executor`` as is, or a new one for ``n_jobs`` that it closes."""
    return LocalExecutor(n_jobs) if executor is None else nullcontext(executor)


def count_until(values: Iterable[float], limit: float) -> float:
    """Sum ``values`` but stop as soon as the sum reaches ``limit`` (a lazy estimate)."""
    total = 0.0
    for total in itertools.accumulate(values):
        if total >= limit:
            break
    return total


#: Headers read to estimate the audio in a long file list from the files' sizes.
SAMPLE_FILES = 32


def audio_work(paths: Sequence[str], seconds_of: Callable[[str], float], limit: float) -> float:
    """Seconds of audio in ``paths`` as far as the executor choice needs them: ``seconds_of``
    (a header read, ~0.1 ms) summed until ``limit`` (:func:`count_until`). A list of more
    than twice :data:`SAMPLE_FILES` first gets an estimate, the durations of that many evenly
    spaced files scaled by the sizes of all (one ``stat`` each), returned when it is below a
    quarter of ``limit``: threads for sure, and an estimate that a skewed sample misled costs
    speed, never a result. Each header is read at most once."""
    n, known = len(paths), {}
    if n > 2 * SAMPLE_FILES:
        sizes = [_size(p) for p in paths]
        pick = sorted({i * (n - 1) // (SAMPLE_FILES - 1) for i in range(SAMPLE_FILES)})
        seen = sum(sizes[i] for i in pick)
        if seen > 0:
            known = {i: seconds_of(paths[i]) for i in pick}
            estimate = sum(known.values()) * (sum(sizes) / seen)
            if estimate < limit / 4:
                return estimate
    return count_until((known[i] if i in known else seconds_of(p) for i, p in enumerate(paths)),
                       limit)  # fmt: skip


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:  # the extraction reports the file; it adds no work
        return 0


def executor_for_work(work_s: float, n_jobs: int | None = None, *,
                      min_audio_s: float = PROCESS_MIN_AUDIO_S) -> LocalExecutor:  # fmt: skip
    """The one executor of a command, for ``work_s`` seconds of audio on ``n_jobs`` workers
    (None: :func:`default_workers`): processes from ``min_audio_s`` on (model selection:
    :data:`SELECTION_PROCESS_MIN_AUDIO_S`), else threads (``AUDIOGMM_PROCESSES=0/1``
    overrides); the choice is logged at INFO (``-v``)."""
    n = default_workers() if n_jobs is None else n_jobs
    env = os.environ.get("AUDIOGMM_PROCESSES", "").strip().lower()
    if env not in ("", "auto", "0", "1"):
        raise ParameterError(f"AUDIOGMM_PROCESSES must be 0, 1 or auto; got {env!r}")
    if env in ("0", "1"):
        procs, why = env == "1", "AUDIOGMM_PROCESSES"
    else:
        procs = work_s >= min_audio_s
        why = f"~{work_s:,.0f} s of audio {'>=' if procs else '<'} {min_audio_s:,.0f} s"
    how = "worker processes" if procs else "threads"
    logger.info("executor: %s", f"{n} {how} ({why})" if n != 1 else "1 worker: in this thread")
    return LocalExecutor(n, processes=procs and n != 1)
