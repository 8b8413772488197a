"""Threads or worker processes: decided once per command, from the estimated work.

Threads are the default. The front end spends most of its time in code that
releases the GIL (decoding, FFTs, BLAS), so threads already use the cores, start
instantly and share the imported modules. Worker processes avoid what is left of
the GIL, but each command pays for starting them (a forkserver, the imports in it,
one fork per worker): about 1-3 s on a 2-core machine. They pay for themselves
only on long jobs, so a command asks for them only when its estimated work, the
total audio duration, reaches :data:`PROCESS_MIN_AUDIO_S`.

The caller estimates the work (the CLI reads the files' headers, which is cheap)
and builds one executor per command with :func:`executor_for_work`; every stage of
the command reuses it. ``n_jobs`` still caps the workers, and ``n_jobs=1`` never
starts a process.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass

from ..exceptions import ParameterError
from .local import LocalExecutor, default_workers

__all__ = ["PROCESS_MIN_AUDIO_S", "Plan", "count_until", "executor_for_work", "plan"]

logger = logging.getLogger("audiogmm.engine")

#: Seconds of audio from which a command uses worker processes instead of threads:
#: 20,000 s = 5.6 h, ~15 s of single-core extraction at ~1,300x real time. Measured with
#: `audiogmm extract -j 2` on the 2-core development machine (busy, ``speech`` preset):
#: processes lost at 2,331 s of audio (5.5 s vs 4.7 s), tied at 11,170 s (31.8 s vs
#: 32.1 s) and won at 22,340 s (42 s vs 65 s); see the README, "Performance". Counted in
#: audio seconds, not frames: the front end costs about the same per second of audio at a
#: 10 or a 20 ms hop (1,165x and 1,290x real time for ``speech`` and ``general``).
#: ``AUDIOGMM_PROCESSES=0/1`` overrides the rule.
PROCESS_MIN_AUDIO_S = 20_000.0


@dataclass(frozen=True)
class Plan:
    """How a command runs its tasks.

    Attributes
    ----------
    n_workers : int >= 1
    processes : bool
        Worker processes for isolated tasks (feature extraction); threads otherwise.
    work_s : float
        The estimate the decision was made on (seconds of audio; may stop counting
        early once the threshold is reached).
    reason : str
        One line for the ``-v`` log.
    """

    n_workers: int
    processes: bool
    work_s: float
    reason: str


def _env_processes() -> bool | None:
    env = os.environ.get("AUDIOGMM_PROCESSES", "").strip().lower()
    if env in ("", "auto"):
        return None
    if env in ("0", "1"):
        return env == "1"
    raise ParameterError(f"AUDIOGMM_PROCESSES must be 0, 1 or auto; got {env!r}")


def plan(work_s: float, n_jobs: int | None = None) -> Plan:
    """Threads or processes for ``work_s`` seconds of audio to process, at most ``n_jobs`` workers.

    Parameters
    ----------
    work_s : float >= 0
        Estimated audio duration of the command, in seconds.
    n_jobs : int >= 1 or None
        Worker cap; None means :func:`~audiogmm.engine.default_workers`.

    Returns
    -------
    Plan

    Notes
    -----
    ``AUDIOGMM_PROCESSES=0`` / ``1`` overrides the size rule (never / always
    processes when there is more than one worker).

    Examples
    --------
    >>> plan(500, 2).processes, plan(50_000, 2).processes, plan(50_000, 1).processes
    (False, True, False)
    """
    n = default_workers() if n_jobs is None else int(n_jobs)
    if n < 1:
        raise ParameterError(f"n_jobs must be None or an int >= 1; got {n_jobs!r}")
    forced = _env_processes()
    if n == 1:
        return Plan(1, False, work_s, "1 worker: in this thread")
    if forced is not None:
        how = "processes" if forced else "threads"
        return Plan(n, forced, work_s, f"{n} {how} (AUDIOGMM_PROCESSES)")
    big = work_s >= PROCESS_MIN_AUDIO_S
    rel = ">=" if big else "<"
    how = "worker processes" if big else "threads"
    return Plan(
        n, big, work_s,
        f"{n} {how}: ~{work_s:,.0f} s of audio {rel} {PROCESS_MIN_AUDIO_S:,.0f} s",
    )  # fmt: skip


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
