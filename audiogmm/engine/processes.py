"""Worker processes for :class:`~audiogmm.engine.local.LocalExecutor`, only when asked
(README, "Dying workers"): ``forkserver`` workers, which inherit no BLAS or numba threads and
start warm; **a dead worker costs only its task** (retried once in a fresh worker, then
:func:`~audiogmm.engine.local.on_worker_lost`'s answer or :class:`BrokenProcessPool`), and
**workers die with their parent**. A script asking for them needs the
``if __name__ == "__main__":`` guard."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import threading
import time
import warnings
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, NamedTuple

__all__ = ["MAX_ATTEMPTS", "WorkerPool", "close_all"]

logger = logging.getLogger(__name__)

#: Times a task is started before its worker's death is final (the first run + one retry).
MAX_ATTEMPTS = 2

#: Imported once in the forkserver, so each worker starts warm. The front end needs
#: neither librosa nor scipy (importing librosa compiles numba code cold; scipy.fft, no
#: longer used, cost 0.1 s of every start).
_PRELOAD = ["numpy", "soundfile", "soxr", "threadpoolctl",
            "audiogmm.features.extraction", "audiogmm.data.cache"]  # fmt: skip

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_START_TRIES = 10  # attempts to start a worker (~5 s in all) before the pool gives up


def _watch_parent(alive: Connection) -> None:
    """In a worker thread: exit the worker when the parent's end of ``alive`` closes."""
    with contextlib.suppress(EOFError, OSError):
        alive.recv_bytes()  # nothing is ever sent: this returns only at end-of-file
    os._exit(1)


def _worker_main(conn: Connection, alive: Connection) -> None:
    """One worker: run ``(fn, args)`` tasks from ``conn`` until None or end-of-file."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    # die with the parent: SIGKILL when the forkserver (which exits with it) dies, and exit at
    # end-of-file on ``alive``, whose only write end the parent holds (even mid-task)
    with contextlib.suppress(OSError, AttributeError):  # no prctl: the pipe EOF remains
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(alive,), daemon=True).start()
    with contextlib.suppress(EOFError, OSError):  # the parent is gone
        while (msg := conn.recv()) is not None:
            fn, args, level = msg
            try:
                out: tuple[bool, Any] = (True, _captured(fn, args, level))
            except BaseException as exc:  # noqa: BLE001 - shipped back to the caller's future
                out = (False, exc)
            try:
                conn.send(out)
            except (EOFError, OSError):
                raise
            except Exception as exc:  # the result or the exception does not pickle
                conn.send((False, RuntimeError(f"task result could not be sent back: {exc!r}")))


class _Collect(logging.Handler):
    """Keeps the records of a task, their messages formatted (the arguments may not pickle)."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        record.msg, record.args = record.getMessage(), None
        record.exc_info = record.exc_text = None
        self.records.append(record)


def _captured(fn: Callable[..., Any], args: tuple, level: int) -> tuple[Any, list, list]:
    """``fn(*args)`` in a worker, with the warnings it issued (message, category) and the
    ``audiogmm`` log records from ``level`` (the parent's) on: the parent re-issues both
    under its own filters and handlers (:func:`_reissue`), as if the task ran in a thread."""
    log = logging.getLogger("audiogmm")
    handler, before = _Collect(level), (log.level, log.propagate)
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False  # the worker has no handlers of its own: nothing printed here
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # the parent's filters decide
            value = fn(*args)
    finally:
        log.removeHandler(handler)
        log.level, log.propagate = before
    return value, [(str(w.message), w.category) for w in caught], handler.records


def _reissue(caught: list, records: list) -> None:
    """In the parent: a task's warnings and log records (:func:`_captured`), re-issued here."""
    for message, category in caught:
        warnings.warn(message, category, stacklevel=2)
    for record in records:
        logging.getLogger(record.name).handle(record)  # the logger's filters apply


def _describe_death(exitcode: int | None) -> str:
    if exitcode is None or exitcode >= 0:
        return f"worker process exited with code {exitcode}"
    try:
        name = signal.Signals(-exitcode).name
    except ValueError:
        name = f"signal {-exitcode}"
    hint = " (out of memory?)" if -exitcode == signal.SIGKILL else ""
    return f"worker process killed by {name}{hint}"


class _Worker(NamedTuple):
    process: Any
    conn: Connection


_POOLS: weakref.WeakSet = weakref.WeakSet()  # this process's pools, for close_all()


def close_all() -> None:
    """Mark every pool of this process closing (Ctrl-C, before its workers are killed): a task
    whose worker then dies fails at once, without a retry or a "killed" warning."""
    for pool in list(_POOLS):
        pool.interrupt()


class WorkerPool(ThreadPoolExecutor):
    """Up to ``n_workers`` worker processes (started on demand): each task is driven by a
    thread of this pool that sends it to an idle worker and waits for its answer or its
    death (see the module notes). Tasks and their arguments must pickle."""

    def __init__(self, n_workers: int) -> None:
        super().__init__(n_workers, thread_name_prefix="audiogmm-workers")
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(_PRELOAD)
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._closing = False
        # the parent keeps the only write end: workers watch for its end-of-file
        self._alive_r, self._alive_w = self._ctx.Pipe(duplex=False)
        _POOLS.add(self)

    def interrupt(self) -> None:
        """Close at once (:func:`close_all`): no task retried, no worker started."""
        with self._lock:
            self._closing = True

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future:
        return super().submit(self._run, fn, args)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait, cancel_futures=cancel_futures)
        with self._lock:  # a task still running stops its worker itself
            self._closing, idle, self._idle = True, self._idle, []
        for w in idle:
            _stop(w)
        if wait:
            self._alive_r.close()
            self._alive_w.close()

    def _run(self, fn: Callable[..., Any], args: tuple) -> Any:
        """Run one task on an idle worker, retried in a fresh one after a death."""
        deaths: list[str] = []
        while len(deaths) < MAX_ATTEMPTS:
            w = self._take()
            try:
                w.conn.send((fn, args, logging.getLogger("audiogmm").getEffectiveLevel()))
                wait([w.conn, w.process.sentinel])
                if not w.conn.poll():
                    raise EOFError  # only the sentinel: it died without an answer
                ok, value = w.conn.recv()
            except (OSError, EOFError):
                _stop(w)
                if self._closing:  # killed on purpose (Ctrl-C): no retry, no warning
                    raise BrokenProcessPool("the worker pool was shut down") from None
                deaths.append(_describe_death(w.process.exitcode))
                if len(deaths) < MAX_ATTEMPTS:
                    logger.warning("%s while running a task; retrying it in a fresh worker",
                                   deaths[-1])  # fmt: skip
                continue
            finally:  # e.g. the task does not pickle: the worker is fine
                self._give_back(w)
            if not ok:
                raise value
            result, caught, records = value
            _reissue(caught, records)
            return result
        reason = "; then ".join(deaths)
        if len(set(deaths)) == 1:
            reason = f"{deaths[0]} on each of {len(deaths)} attempts"
        handler = getattr(fn, "on_worker_lost", None)
        if handler is None:
            raise BrokenProcessPool(reason)
        return handler(*args, reason=reason)

    def _take(self) -> _Worker:
        """An idle live worker, or a new one (a failure to start one fails the task)."""
        with self._lock:
            if self._closing:  # close_all(): start no worker the interrupt would not kill
                raise BrokenProcessPool("the worker pool was shut down")
            w = self._idle.pop() if self._idle else None
        if w is not None and w.process.is_alive():
            return w
        if w is not None:  # died idle: not this task's fault
            _stop(w)
        try:
            return self._start_worker()
        except Exception as exc:
            raise BrokenProcessPool(f"worker process failed: {exc!r}") from exc

    def _give_back(self, w: _Worker) -> None:
        """Keep a live worker for the next task, unless the pool is closing; else stop it."""
        with self._lock:
            if not self._closing and w.process.is_alive():
                self._idle.append(w)
                return
        _stop(w)

    def _start_worker(self) -> _Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        for attempt in range(_START_TRIES):
            proc = self._ctx.Process(target=_worker_main, args=(child, self._alive_r), daemon=True)
            try:
                with self._start_lock:
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
        return _Worker(proc, parent)


def _stop(w: _Worker) -> None:
    """Ask a worker to exit (if it reads its pipe), wait (killed if stuck), close its pipe."""
    with contextlib.suppress(OSError, EOFError):
        w.conn.send(None)
    w.process.join(timeout=5)
    if w.process.is_alive():
        w.process.kill()
        w.process.join()
    w.conn.close()
