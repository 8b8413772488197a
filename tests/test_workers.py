"""Worker processes: a dead worker costs only its task; workers die with their parent."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import psutil
import pytest
import soundfile as sf

from audiogmm.engine import LocalExecutor
from audiogmm.engine.local import on_worker_lost
from audiogmm.engine.processes import WorkerPool

from .conftest_audio import speech_like
from .conftest_hostile import console_script, script_env, speaker_clips

# -- task functions (top level: they run in worker processes) ---------------------------


def _lost(item, *, reason):
    return ("lost", item, reason)


@on_worker_lost(_lost)
def _task(item):
    """``("ok", item, pid)``; an item ``("die", marker)`` SIGKILLs its worker, once per
    missing ``marker`` file (``marker=None``: on every attempt)."""
    if isinstance(item, tuple) and item[0] == "die":
        marker = item[1]
        if marker is None or not os.path.exists(marker):
            if marker is not None:
                open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
    return ("ok", item, os.getpid())


def _task_without_handler(item):
    if item == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    return item


def _raises(item):
    raise ValueError(f"bad item {item}")


def test_a_worker_killed_once_is_retried_in_a_fresh_worker(tmp_path):
    marker = str(tmp_path / "died-once")
    items = [0, 1, ("die", marker), 3, 4, 5]
    with LocalExecutor(2, processes=True) as ex:
        out = list(ex.map(_task, items, isolated=True))
    assert [o[0] for o in out] == ["ok"] * 6, out
    assert [o[1] for o in out] == items
    assert os.path.exists(marker)


def test_a_worker_killed_twice_costs_only_its_task():
    items = [0, 1, ("die", None), 3, 4, 5, 6, 7]
    with LocalExecutor(2, processes=True) as ex:
        out = list(ex.map(_task, items, isolated=True))
    assert [o[1] for o in out] == items
    kinds = [o[0] for o in out]
    assert kinds == ["ok", "ok", "lost", "ok", "ok", "ok", "ok", "ok"], out
    assert "SIGKILL" in out[2][2] and "2 attempts" in out[2][2], out[2]


def test_without_a_handler_the_lost_task_raises_and_the_others_finish():
    pool = WorkerPool(2)
    try:
        futs = [pool.submit(_task_without_handler, x) for x in ["a", "die", "b", "c"]]
        assert futs[0].result(60) == "a"
        assert futs[2].result(60) == "b" and futs[3].result(60) == "c"
        with pytest.raises(BrokenProcessPool, match="SIGKILL"):
            futs[1].result(60)
        assert pool.submit(_task_without_handler, "after").result(60) == "after"
    finally:
        pool.shutdown()


def _pid(item):
    return item, os.getpid()


def _pids_from_a_nested_map(ex_and_items):
    ex, items = ex_and_items
    return [pid for _, pid in ex.map(_pid, items, isolated=True)]


def _warns_and_logs(item):
    import logging
    import warnings

    warnings.warn(f"careful with {item}", UserWarning, stacklevel=2)
    logging.getLogger("audiogmm.test").warning("logged %s", item)
    logging.getLogger("audiogmm.test").debug("not wanted %s", item)
    return item


def test_warm_runs_tasks_on_threads_until_the_workers_are_up_then_in_them():
    with LocalExecutor(2, processes=True) as ex:
        ex.warm(["tests.slow_to_import"])  # the workers are up a second from now
        early = list(ex.map(_pid, range(4), isolated=True))
        while not all(f.done() for f in ex._warming):  # noqa: SLF001 - the test's own wait
            time.sleep(0.01)
        late = list(ex.map(_pid, range(20), isolated=True))
    assert [x for x, _ in early] == list(range(4)) and [x for x, _ in late] == list(range(20))
    assert {pid for _, pid in early} == {os.getpid()}  # on threads: no wait for the start-up
    assert os.getpid() not in {pid for _, pid in late}  # then only in the workers


def test_workers_that_cannot_start_leave_the_work_to_threads(monkeypatch, caplog):
    # e.g. a sandbox without a forkserver: `train --preset auto` goes on, on threads
    def refuse(self):
        raise OSError("no forkserver here")

    monkeypatch.setattr(WorkerPool, "_start_worker", refuse)
    with caplog.at_level("WARNING", logger="audiogmm"), LocalExecutor(2, processes=True) as ex:
        ex.warm()
        first = list(ex.map(_pid, range(6), isolated=True))
        nested = list(ex.map(_pids_from_a_nested_map, [(ex, range(3))]))
        later = list(ex.map(_pid, range(6), isolated=True))
    assert [x for x, _ in first] == list(range(6)) and [x for x, _ in later] == list(range(6))
    assert {pid for _, pid in first + later} == {os.getpid()} and nested == [[os.getpid()] * 3]
    warned = [r.getMessage() for r in caplog.records if "could not start" in r.getMessage()]
    assert len(warned) == 1 and "no forkserver here" in warned[0], caplog.text


def test_a_platform_without_a_forkserver_leaves_the_work_to_threads(monkeypatch, caplog):
    import multiprocessing

    real = multiprocessing.get_context

    def no_forkserver(method=None):
        if method == "forkserver":
            raise ValueError("cannot find context for 'forkserver'")
        return real(method)

    monkeypatch.setattr(multiprocessing, "get_context", no_forkserver)
    with caplog.at_level("WARNING", logger="audiogmm"), LocalExecutor(2, processes=True) as ex:
        ex.warm()
        out = list(ex.map(_pid, range(5), isolated=True))
    assert out == [(i, os.getpid()) for i in range(5)]
    assert "could not start" in caplog.text and "forkserver" in caplog.text


def test_an_isolated_map_inside_a_thread_task_goes_to_the_worker_processes():
    # (step_front_end's front ends run on threads, each one's CV fits in the workers)
    with LocalExecutor(2, processes=True) as ex, LocalExecutor(2) as threads:
        out = list(ex.map(_pids_from_a_nested_map, [(ex, range(5)), (ex, range(5, 9))]))
        inline = list(threads.map(_pids_from_a_nested_map, [(threads, range(3))]))
    assert [len(p) for p in out] == [5, 4]
    assert os.getpid() not in {pid for p in out for pid in p}
    assert inline == [[os.getpid()] * 3]  # a map of threads inside a thread task: inline


def test_warnings_and_log_records_of_a_worker_task_reach_the_parent(caplog):
    with LocalExecutor(2, processes=True) as ex, caplog.at_level("INFO", logger="audiogmm"):
        with pytest.warns(UserWarning, match="careful with 3"):
            assert list(ex.map(_warns_and_logs, [3, 4], isolated=True)) == [3, 4]
    got = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert ("audiogmm.test", "WARNING", "logged 3") in got
    assert ("audiogmm.test", "WARNING", "logged 4") in got
    assert not any("not wanted" in m for *_, m in got)  # below the parent's level: not sent


def test_workers_killed_after_close_all_fail_their_tasks_without_retry_or_warning(caplog):
    # Ctrl-C in the CLI: close_all(), then every worker killed; before, each death was
    # "worker process killed by SIGKILL (out of memory?) ... retrying it in a fresh worker"
    import multiprocessing

    from audiogmm.engine.processes import close_all

    pool = WorkerPool(2)
    try:
        futs = [pool.submit(_sleepy, i) for i in range(4)]
        deadline = time.monotonic() + 30
        while len(multiprocessing.active_children()) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # both workers inside their task
        with caplog.at_level("WARNING", logger="audiogmm"):
            close_all()
            for child in multiprocessing.active_children():
                child.kill()
            for f in futs:
                with pytest.raises(BrokenProcessPool, match="shut down"):
                    f.result(30)
        assert not [r for r in caplog.records if "retrying" in r.getMessage()], caplog.text
        assert not multiprocessing.active_children()  # no fresh worker was started
    finally:
        pool.shutdown()


def test_task_exceptions_come_back_as_themselves():
    with WorkerPool(1) as pool:
        with pytest.raises(ValueError, match="bad item 7"):
            pool.submit(_raises, 7).result(60)


def test_unpicklable_task_fails_alone():
    with WorkerPool(1) as pool:
        bad = pool.submit(_task, lambda: None)
        good = pool.submit(_task, 1)
        with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
            bad.result(60)
        assert good.result(60)[0] == "ok"


def test_shutdown_stops_every_worker():
    pool = WorkerPool(2)
    pids = {pool.submit(_task, i).result(60)[2] for i in range(6)}
    pool.shutdown(wait=True)
    time.sleep(0.2)
    assert not [p for p in pids if psutil.pid_exists(p) and _running(p)], pids


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


# -- killing the parent ----------------------------------------------------------------

_PARENT = textwrap.dedent(
    """
    import sys, time
    from audiogmm.engine import LocalExecutor
    from tests.test_workers import _sleepy

    if __name__ == "__main__":
        with LocalExecutor(2, processes=True) as ex:
            for _ in ex.map(_sleepy, range(8), isolated=True):
                pass
    """
)


def _sleepy(i):
    time.sleep(60)  # busy: a worker that is not waiting on its pipe
    return i


def _alive(procs) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            pass
    return out


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _kill_and_check(proc: subprocess.Popen, seen: dict, sig: int) -> None:
    try:
        os.kill(proc.pid, sig)
        proc.wait(timeout=10)
        limit = time.monotonic() + 10
        while _alive(seen.values()) and time.monotonic() < limit:
            time.sleep(0.1)
        survivors = _alive(seen.values())
        assert not survivors, "still alive 10 s after the parent died: " + ", ".join(
            f"{p.pid} {' '.join(p.cmdline()[:4])}" for p in survivors
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for p in _alive(seen.values()):  # only processes of this run, by pid
            with contextlib.suppress(psutil.Error):
                p.kill()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_of_a_killed_library_caller_exit(sig, tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(_PARENT)
    proc = subprocess.Popen([sys.executable, str(script)], env=script_env(), cwd=tmp_path,
                            start_new_session=True)  # fmt: skip
    seen: dict[int, psutil.Process] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        kids = _descendants(proc.pid)
        for p in kids:
            seen.setdefault(p.pid, p)
        # workers are the forkserver's children, grandchildren of the parent
        workers = [p for p in _alive(kids) if p.ppid() != proc.pid]
        if len(workers) >= 2:
            break
        time.sleep(0.05)
    assert len(seen) >= 3, f"expected a forkserver and two workers, saw {seen}"
    time.sleep(0.5)  # the workers are inside their 60 s tasks now
    for p in _descendants(proc.pid):
        seen.setdefault(p.pid, p)
    _kill_and_check(proc, seen, sig)


# -- the CLI ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_data(tmp_path_factory):
    """A DATA folder with two 10-minute FLACs (workers busy for seconds) and real clips."""
    d = tmp_path_factory.mktemp("long")
    (d / "a").mkdir()
    (d / "b").mkdir()
    y = np.tile(speech_like(16000, 2.0, seed=5), 300)
    sf.write(d / "a" / "long.flac", y, 16000)
    shutil.copy(d / "a" / "long.flac", d / "b" / "long2.flac")
    for c in speaker_clips("ast_en", 4):
        shutil.copy(c, d / "a" / c.name)
    for c in speaker_clips("flite_slt", 4):
        shutil.copy(c, d / "b" / c.name)
    return d


def _holding(proc: psutil.Process, suffix: str) -> str | None:
    """The path of an open file of ``proc`` ending in ``suffix``, if any."""
    try:
        for f in proc.open_files():
            if f.path.endswith(suffix):
                return f.path
    except psutil.Error:
        pass
    return None


# the CLI picks threads by default; AUDIOGMM_PROCESSES=1 makes it use worker processes
_PROCS_ENV = {"AUDIOGMM_PROCESSES": "1"}


def test_sigkill_of_the_cli_leaves_no_process_alive(long_data, tmp_path):
    cmd = [*console_script(), "-q", "extract", str(long_data), "--cache", str(tmp_path / "c"),
           "-j", "2"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=script_env(**_PROCS_ENV), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    seen: dict[int, psutil.Process] = {}
    deadline = time.monotonic() + 60
    busy = False
    while time.monotonic() < deadline and proc.poll() is None and not busy:
        for p in _descendants(proc.pid):
            seen.setdefault(p.pid, p)
            busy = busy or _holding(p, ".flac") is not None
        time.sleep(0.01)
    assert busy, "no worker was seen working on a file before the run ended"
    for p in _descendants(proc.pid):
        seen.setdefault(p.pid, p)
    assert len(seen) >= 2, f"expected worker processes, saw {seen}"
    _kill_and_check(proc, seen, signal.SIGKILL)


def test_killed_worker_costs_only_its_file(long_data, tmp_path):
    """SIGKILL the worker busy on long.flac (twice: first try and retry); the batch finishes."""
    target = os.path.realpath(long_data / "a" / "long.flac")
    cmd = [*console_script(), "-q", "extract", str(long_data), "--cache", str(tmp_path / "c"),
           "-j", "2", "--json"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=script_env(**_PROCS_ENV), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True, text=True)  # fmt: skip
    seen: dict[int, psutil.Process] = {}
    killed: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            for p in _descendants(proc.pid):
                seen.setdefault(p.pid, p)
                if len(killed) < 2 and p.pid not in killed and _holding(p, "long.flac") == target:
                    with contextlib.suppress(psutil.Error):
                        p.kill()
                        killed.add(p.pid)
            time.sleep(0.003)
        out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for p in _alive(seen.values()):
            with contextlib.suppress(psutil.Error):
                p.kill()
    assert killed, "never caught a worker on long.flac (cannot test)"
    assert "Traceback" not in err, err[-3000:]
    assert proc.returncode == 0, err[-3000:]
    res = json.loads(out)
    skipped = {os.path.basename(s["path"]): s["reason"] for s in res["skipped"]}
    assert set(skipped) <= {"long.flac"}, f"files other than the killed one were lost: {skipped}"
    assert res["n_extracted"] + res["n_cached"] + len(skipped) == res["n_files"]
    if len(killed) == 2:  # killed on the first try and on the retry: skipped, with a reason
        assert "long.flac" in skipped and "SIGKILL" in skipped["long.flac"], res


def _slow(item):
    time.sleep(0.3)
    return ("ok", item, os.getpid())


@on_worker_lost(_lost)
def _slow_lost(item):
    return _slow(item)


def _forkserver_of_this_process() -> list[psutil.Process]:
    return [
        p
        for p in psutil.Process().children()
        if "forkserver" in " ".join(p.cmdline()) and p.status() != psutil.STATUS_ZOMBIE
    ]


def test_killing_an_idle_worker_or_the_forkserver_loses_nothing():
    pool = WorkerPool(2)
    try:
        pids = {pool.submit(_slow, i).result(60)[2] for i in range(4)}
        for pid in pids:  # idle workers die: the next tasks get fresh ones
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
        assert [pool.submit(_slow, i).result(60)[1] for i in range(4)] == list(range(4))
        futs = [pool.submit(_slow_lost, i) for i in range(8)]
        time.sleep(0.1)
        servers = _forkserver_of_this_process()
        assert servers
        for p in servers:  # takes its busy workers with it (PR_SET_PDEATHSIG)
            p.kill()
        out = [f.result(120) for f in futs]
        assert [o[1] for o in out] == list(range(8))
        assert all(o[0] in ("ok", "lost") for o in out), out
        assert pool.submit(_task, "after").result(60)[0] == "ok"
    finally:
        pool.shutdown()


def _square(x):
    return x * x


def test_many_tasks_and_repeated_shutdown():
    pool = WorkerPool(2)
    futs = [pool.submit(_square, i) for i in range(3000)]
    assert [f.result(120) for f in futs] == [i * i for i in range(3000)]
    pool.shutdown()
    pool.shutdown()  # idempotent
    with pytest.raises(RuntimeError):
        pool.submit(_square, 1)
    unused = WorkerPool(2)
    unused.shutdown()
    unused.shutdown()


def test_a_worker_that_cannot_start_fails_its_task_not_the_pool(monkeypatch):
    # the pool's manager thread used to die with every task, and later ones hung
    real, calls = WorkerPool._start_worker, []

    def flaky(self):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("no forkserver")
        return real(self)

    monkeypatch.setattr(WorkerPool, "_start_worker", flaky)
    pool = WorkerPool(1)
    try:
        with pytest.raises(BrokenProcessPool, match="no forkserver"):
            pool.submit(_square, 2).result(60)
        assert pool.submit(_square, 3).result(30) == 9
    finally:
        pool.shutdown()
