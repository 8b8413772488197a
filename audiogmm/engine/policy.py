"""Threads or worker processes: decided once per command, from the estimated work.

Threads are the default: the front end mostly runs code that releases the GIL (decoding,
FFTs, BLAS), so threads use the cores, start instantly and share the imported modules.
Worker processes cost about 1-3 s to start on a 2-core machine, so a command asks for them
only when its audio reaches :data:`PROCESS_MIN_AUDIO_S`; ``n_jobs=1`` never starts one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import NamedTuple

from ..exceptions import ParameterError
from .local import LocalExecutor, default_workers

__all__ = ["PROCESS_MIN_AUDIO_S", "Plan", "count_until", "executor_for_work", "plan"]

logger = logging.getLogger("audiogmm.engine")

#: Seconds of audio from which a command uses worker processes instead of threads (5.6 h,
#: ~15 s of single-core extraction): `audiogmm extract -j 2` on 2 cores lost with processes
#: at 2,331 s of audio, tied at 11,170 s and won at 22,340 s (README, "Performance"). In
#: audio seconds, not frames: the front end costs about the same at a 10 or a 20 ms hop.
#: ``AUDIOGMM_PROCESSES=0/1`` overrides the rule.
PROCESS_MIN_AUDIO_S = 20_000.0


class Plan(NamedTuple):
    """How a command runs its tasks: ``n_workers``, ``processes`` (else threads), and the
    ``reason`` for the log."""

    n_workers: int
    processes: bool
    reason: str


def plan(work_s: float, n_jobs: int | None = None) -> Plan:
    """Threads or processes for ``work_s`` seconds of audio, on at most ``n_jobs`` workers
    (None: :func:`~audiogmm.engine.default_workers`).

    Examples
    --------
    >>> plan(500, 2).processes, plan(50_000, 2).processes, plan(50_000, 1).processes
    (False, True, False)
    """
    n = default_workers() if n_jobs is None else int(n_jobs)
    if n < 1:
        raise ParameterError(f"n_jobs must be None or an int >= 1; got {n_jobs!r}")
    env = os.environ.get("AUDIOGMM_PROCESSES", "").strip().lower()
    if env not in ("", "auto", "0", "1"):
        raise ParameterError(f"AUDIOGMM_PROCESSES must be 0, 1 or auto; got {env!r}")
    if n == 1:
        return Plan(1, False, "1 worker: in this thread")
    if env in ("0", "1"):
        how = "processes" if env == "1" else "threads"
        return Plan(n, env == "1", f"{n} {how} (AUDIOGMM_PROCESSES)")
    big = work_s >= PROCESS_MIN_AUDIO_S
    how, rel = ("worker processes", ">=") if big else ("threads", "<")
    why = f"~{work_s:,.0f} s of audio {rel} {PROCESS_MIN_AUDIO_S:,.0f} s"
    return Plan(n, big, f"{n} {how}: {why}")


def count_until(values: Iterable[float], limit: float) -> float:
    """Sum ``values`` but stop as soon as the sum reaches ``limit`` (a lazy estimate)."""
    total = 0.0
    for v in values:
        total += v
        if total >= limit:
            break
    return total


def executor_for_work(work_s: float, n_jobs: int | None = None) -> LocalExecutor:
    """The one executor of a command, built from :func:`plan` (logged at INFO, i.e. ``-v``)."""
    p = plan(work_s, n_jobs)
    logger.info("executor: %s", p.reason)
    return LocalExecutor(p.n_workers, processes=p.processes)
