"""Worker processes for :class:`~audiogmm.engine.local.LocalExecutor` (only when asked).

``forkserver`` workers (``spawn`` where it is missing) never inherit the parent's BLAS or
numba threads and start warm (the forkserver imports the front end once); a script asking
for processes needs the ``if __name__ == "__main__":`` guard. Unlike
:class:`concurrent.futures.ProcessPoolExecutor`, **a dead worker costs only its task**
(each worker runs one task at a time over its own pipe; the task is retried once in a fresh
worker, then gets :func:`on_worker_lost`'s answer or :class:`BrokenProcessPool`), and
**workers die with their parent** (a watchdog thread exits at end-of-file on a pipe whose
only write end the parent holds; on Linux also ``prctl(PR_SET_PDEATHSIG)``).
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Callable

__all__ = ["MAX_ATTEMPTS", "WorkerPool", "on_worker_lost"]

logger = logging.getLogger(__name__)

#: Times a task is started before its worker's death is final (the first run + one retry).
MAX_ATTEMPTS = 2

#: Imported once in the forkserver, so each worker starts warm. The front end needs
#: neither librosa nor scipy.signal (and importing librosa compiles numba code cold).
_PRELOAD = ["numpy", "scipy.fft", "soundfile", "soxr", "threadpoolctl",
            "audiogmm.features.extraction", "audiogmm.data.cache"]  # fmt: skip

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_START_TRIES = 10  # attempts to start a worker (~5 s in all) before the pool gives up


def on_worker_lost(handler: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable]:
    """Declare what a task function returns when its worker died on every attempt:
    ``handler(*args, reason=...)``, given the task's arguments and a sentence such as
    ``"worker process killed by SIGKILL (out of memory?) on each of 2 attempts"``, returns
    the task's result, so that a batch can skip the item and go on.

    Examples
    --------
    >>> def _lost(path, *, reason):
    ...     return ("skipped", path, reason)
    >>> @on_worker_lost(_lost)
    ... def work(path):
    ...     return ("ok", path, "")
    """

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.on_worker_lost = handler  # type: ignore[attr-defined]
        return fn
    return mark


def _die_with_parent() -> None:
    """In a worker: get SIGKILL when the parent dies (Linux), or exit if it is gone already."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # no prctl: the pipe EOF remains
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def _watch_parent(alive: Connection) -> None:
    """In a worker thread: exit the worker when the parent's end of ``alive`` closes."""
    with contextlib.suppress(EOFError, OSError):
        alive.recv_bytes()  # nothing is ever sent: this returns only at end-of-file
    os._exit(1)


def _worker_main(conn: Connection, alive: Connection) -> None:
    """One worker: run ``(fn, args)`` tasks from ``conn`` until None or end-of-file."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _die_with_parent()
    threading.Thread(target=_watch_parent, args=(alive,), daemon=True).start()
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if msg is None:
            return
        fn, args = msg
        try:
            out: tuple[bool, Any] = (True, fn(*args))
        except BaseException as exc:  # noqa: BLE001 - shipped back to the caller's future
            out = (False, exc)
        try:
            conn.send(out)
        except (EOFError, OSError):
            return
        except Exception as exc:  # the result or the exception does not pickle
            conn.send((False, RuntimeError(f"task result could not be sent back: {exc!r}")))


def _describe_death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (out of memory?)" if -exitcode == signal.SIGKILL else ""
        return f"worker process killed by {name}{hint}"
    return f"worker process exited with code {exitcode}"


@dataclass
class _Task:
    future: Future
    fn: Callable[..., Any]
    args: tuple
    attempts: int = 0
    deaths: list[str] = field(default_factory=list)


@dataclass
class _Worker:
    process: Any
    conn: Connection
    task: _Task | None = None


class WorkerPool(Executor):
    """A pool of up to ``n_workers`` processes (started on demand) that survives the death
    of its workers (see the module notes). Tasks and their arguments must pickle."""

    def __init__(self, n_workers: int) -> None:
        self._n = int(n_workers)
        self._ctx = _context()
        self._pending: deque[_Task] = deque()
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._wake_lock = threading.Lock()
        self._closing = False
        self._manager: threading.Thread | None = None
        self._names = itertools.count()
        # the parent keeps the only write end: workers watch for its end-of-file
        self._alive_r, self._alive_w = self._ctx.Pipe(duplex=False)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        if kwargs:
            raise TypeError("WorkerPool.submit takes positional arguments only")
        fut: Future = Future()
        with self._lock:
            if self._closing:
                raise RuntimeError("cannot submit to a pool that is shut down")
            self._pending.append(_Task(fut, fn, args))
            if self._manager is None:
                self._manager = threading.Thread(target=self._manage, name="audiogmm-workers",
                                                 daemon=True)  # fmt: skip
                self._manager.start()
        self._wake()
        return fut

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closing = True
            if cancel_futures:
                while self._pending:
                    self._pending.popleft().future.cancel()
            manager = self._manager
        self._wake()
        if manager is None:  # never used: no worker to stop
            self._close_pipes()
        elif wait:
            manager.join()

    def _wake(self) -> None:
        with self._wake_lock:
            if self._wake_w < 0:  # closed: the manager is done (never write to a reused fd)
                return
            with contextlib.suppress(BlockingIOError):  # full: the manager wakes anyway
                os.write(self._wake_w, b"x")

    def _close_pipes(self) -> None:
        with self._wake_lock:
            fds, self._wake_r, self._wake_w = (self._wake_r, self._wake_w), -1, -1
        for fd in fds:
            if fd >= 0:
                os.close(fd)
        self._alive_r.close()
        self._alive_w.close()

    def _start_worker(self) -> _Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        for attempt in range(_START_TRIES):
            proc = self._ctx.Process(
                target=_worker_main, args=(child, self._alive_r), daemon=True,
                name=f"audiogmm-worker-{next(self._names)}",
            )  # fmt: skip
            try:
                proc.start()
                break
            except OSError:
                # the forkserver was just killed: multiprocessing restarts it once
                # its death is visible (waitpid), a moment later
                if attempt == _START_TRIES - 1:
                    parent.close()
                    child.close()
                    raise
                time.sleep(0.1 * (attempt + 1))
        child.close()
        w = _Worker(proc, parent)
        self._workers.append(w)
        return w

    def _dispatch(self) -> bool:
        """Give pending tasks to idle workers (started as needed); True when the manager
        may stop: closing, nothing pending or running."""
        with self._lock:
            while self._pending:
                idle = next((w for w in self._workers if w.task is None), None)
                if idle is None and len(self._workers) >= self._n:
                    break
                task = self._pending[0]
                if task.attempts == 0 and task.future.cancelled():
                    self._pending.popleft()
                    continue
                w = idle or self._start_worker()  # may raise: the task stays queued
                self._pending.popleft()
                if task.attempts == 0 and not task.future.set_running_or_notify_cancel():
                    continue  # cancelled meanwhile
                try:
                    w.conn.send((task.fn, task.args))
                except (OSError, EOFError):  # the worker is dead: its sentinel will say so
                    self._pending.appendleft(task)
                    break
                except Exception as exc:  # the task does not pickle
                    task.future.set_exception(exc)
                    continue
                task.attempts += 1
                w.task = task
            busy = any(w.task is not None for w in self._workers)
            return self._closing and not self._pending and not busy

    def _lost(self, w: _Worker) -> None:
        """Worker ``w`` died: retry its task in a fresh worker, or give up on it."""
        _reap(w.process)  # its pipe broke; if it lingers it is of no use now
        why = _describe_death(w.process.exitcode)
        w.conn.close()
        self._workers.remove(w)
        task, w.task = w.task, None
        if task is None:
            return
        task.deaths.append(why)
        if task.attempts < MAX_ATTEMPTS:
            logger.warning("%s while running a task; retrying it in a fresh worker", why)
            with self._lock:
                self._pending.appendleft(task)
            return
        reason = "; then ".join(task.deaths)
        if len(set(task.deaths)) == 1:
            reason = f"{why} on each of {len(task.deaths)} attempts"
        handler = getattr(task.fn, "on_worker_lost", None)
        if handler is None:
            task.future.set_exception(BrokenProcessPool(reason))
            return
        try:
            task.future.set_result(handler(*task.args, reason=reason))
        except Exception as exc:
            task.future.set_exception(exc)

    def _manage(self) -> None:
        try:
            while not self._dispatch():
                by_conn = {w.conn: w for w in self._workers}
                by_sentinel = {w.process.sentinel: w for w in self._workers}
                ready = wait([self._wake_r, *by_conn, *by_sentinel])
                if self._wake_r in ready:
                    os.read(self._wake_r, 4096)
                done: set[int] = set()
                for obj in ready:
                    w = by_conn.get(obj) or by_sentinel.get(obj)
                    if w is None or id(w) in done:
                        continue
                    done.add(id(w))
                    self._collect(w)
        except BaseException as exc:  # pragma: no cover - a bug here must not hang callers
            logger.exception("worker pool manager failed")
            self._fail_all(exc)
        finally:
            self._stop_workers()
            self._close_pipes()

    def _collect(self, w: _Worker) -> None:
        """Read the result ``w`` sent, or handle its death."""
        try:
            if not w.conn.poll():
                if w.process.is_alive():
                    return
                raise EOFError
            ok, value = w.conn.recv()
        except (EOFError, OSError):
            self._lost(w)
            return
        task, w.task = w.task, None
        if task is not None:  # a worker only answers tasks
            (task.future.set_result if ok else task.future.set_exception)(value)

    def _fail_all(self, exc: BaseException) -> None:  # pragma: no cover - see _manage
        with self._lock:
            tasks = list(self._pending) + [w.task for w in self._workers if w.task]
            self._pending.clear()
        for t in tasks:
            if not t.future.done():
                t.future.set_exception(BrokenProcessPool(f"worker pool failed: {exc!r}"))

    def _stop_workers(self) -> None:
        for w in self._workers:
            with contextlib.suppress(OSError, EOFError):
                w.conn.send(None)
        for w in self._workers:
            _reap(w.process)
            w.conn.close()
        self._workers.clear()


def _reap(process: Any) -> None:
    process.join(timeout=5)
    if process.is_alive():  # stuck: kill it
        process.kill()
        process.join()


def _context() -> multiprocessing.context.BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")  # pragma: no cover - not on Linux
