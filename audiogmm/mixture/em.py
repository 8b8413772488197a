"""THE EM loop, :func:`run`, and when it stops (:class:`ConvergenceMonitor`, the hmmlearn habit).
Every fit, restart, split round and class differs only in the source, starting parameters,
maximiser, monitor and executor; a stack of C mixtures runs at once, each as alone."""

from __future__ import annotations

import logging
import sys
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine import LocalExecutor
from .estep import accumulate
from .mstep import Maximiser
from .sources import StackedSource
from .stats import Params, Stats

__all__ = ["ConvergenceMonitor", "EMResult", "StackedMonitor", "run", "source_stats", "unstack"]

logger = logging.getLogger(__name__)


class ConvergenceMonitor:
    """Tracks EM's mean per-frame log-likelihood (``history``, nats) and decides when to stop.

    Converged when ``|ll_i - ll_{i-1}| < tol * max(1, |ll_{i-1}|)``, stopped after ``max_iter``
    M-steps (``n_iter``); ``verbose > 0`` prints each report to stderr. A drop beyond
    ``drop_tol * max(1, |ll|, scale)`` warns (float32 needs ~1e-5; ``scale``: e.g. n_dims)."""

    def __init__(self, tol: float, max_iter: int, verbose: int = 0, *, drop_tol: float = 1e-9,
                 scale: float = 1.0) -> None:  # fmt: skip
        self.tol, self.max_iter, self.verbose = tol, max_iter, verbose
        self.drop_tol, self.scale = drop_tol, scale
        self.history: list[float] = []
        self.n_iter, self._after_reseed = 0, False

    def report(self, ll: float, *, reseeded: bool = False) -> None:
        """Record a new E-step's mean log-likelihood; ``reseeded``: after a re-seeding M-step,
        which may lower it (no drop warning, no convergence decision)."""
        if self.history and not reseeded:
            prev = self.history[-1]
            if ll < prev - self.drop_tol * max(1.0, abs(prev), self.scale):
                warnings.warn(f"EM log-likelihood decreased from {prev:.10g} to {ll:.10g} "
                              f"(iteration {len(self.history)}); the data may be degenerate",
                              RuntimeWarning, stacklevel=4)  # fmt: skip
        logger.debug("EM iteration %d: mean log-likelihood %.8f nats/frame", len(self.history), ll)
        if self.verbose:
            delta = ll - self.history[-1] if self.history else float("nan")
            print(f"{len(self.history):>6d} {ll:>16.8f} {delta:>+14.6e}", file=sys.stderr)
        self.history.append(ll)
        self._after_reseed = reseeded

    @property
    def converged(self) -> bool:
        """Whether the last two reports differ by less than ``tol`` (relative)."""
        if len(self.history) < 2 or self._after_reseed:
            return False
        prev, cur = self.history[-2], self.history[-1]
        return abs(cur - prev) < self.tol * max(1.0, abs(prev))

    @property
    def max_passes(self) -> int:
        """The most E-steps a run under this monitor takes (``max_iter`` M-steps, one more)."""
        return self.max_iter + 1

    def stop(self) -> bool:
        """Whether EM should stop now; otherwise one more M-step is counted."""
        if self.converged or self.n_iter >= self.max_iter:
            return True
        self.n_iter += 1
        return False


class StackedMonitor:
    """One :class:`ConvergenceMonitor` per member of a stack, each stopping on its own;
    ``running`` (n_members,) bool: those not stopped yet (updated in place by :meth:`stop`)."""

    def __init__(self, monitors: list[ConvergenceMonitor]) -> None:
        self.monitors = monitors
        self.running = np.ones(len(monitors), dtype=bool)

    def report(self, lls: np.ndarray, *, reseeded: Any = False) -> None:
        """Each running member's mean log-likelihood; ``reseeded``: the last M-step's events."""
        again = {e["member"] for e in reseeded or ()}
        for c in np.flatnonzero(self.running):
            self.monitors[c].report(float(lls[c]), reseeded=c in again)

    def stop(self) -> bool:
        """Stop the members whose monitor says so; True when none is left running."""
        for c in np.flatnonzero(self.running):
            if self.monitors[c].stop():
                self.running[c] = False
        return not self.running.any()

    #: the longest member's (the members of a stack share ``max_iter`` in every fit)
    max_passes = property(lambda self: max(m.max_passes for m in self.monitors))
    history = property(lambda self: [m.history for m in self.monitors])
    converged = property(lambda self: [m.converged for m in self.monitors])
    n_iter = property(lambda self: [m.n_iter for m in self.monitors])


@dataclass
class EMResult:
    """One EM run: final parameters, mean log-likelihood per frame (nats) per E-step,
    convergence, M-steps taken, the maximiser's events (each with the ``iteration`` of the
    E-step after it) and the last statistics. Stacked: lists over members, events name
    their ``member``."""

    params: Params
    history: list[float] | list[list[float]]
    converged: bool | list[bool]
    n_iter: int | list[int]
    events: list[dict[str, Any]]
    stats: Stats


def source_stats(source, params: Params, *, executor: LocalExecutor | None = None,
                 chunk_size: int | None = None, previous: Stats | None = None,
                 passes: int | None = None) -> Stats:  # fmt: skip
    """One E-step over ``source`` in source order; a stacked source computes its running
    members (the others keep ``previous``'s rows), a shard source its own blocks; ``passes``:
    the E-steps of the run (numba's kernels load only where a run repays it)."""
    if isinstance(source, StackedSource):
        return source.accumulate(params, executor=executor, chunk_size=chunk_size,
                                 previous=previous, passes=passes)  # fmt: skip
    shift = params.weights @ params.means
    if hasattr(source, "stats"):
        return source.stats(params, shift=shift, executor=executor, chunk_size=chunk_size,
                            passes=passes)  # fmt: skip
    return sum(accumulate(Xc, params, sample_weight=sw, shift=shift, chunk_size=chunk_size,
                          executor=executor, passes=passes) for Xc, sw in source)  # fmt: skip


def run(source, params: Params, *, maximiser: Maximiser, monitor: ConvergenceMonitor,
        executor: LocalExecutor | None = None, chunk_size: int | None = None) -> EMResult:
    """EM from ``params`` (not modified): E-step, report to ``monitor``, and, unless it
    says stop, ``maximiser(stats, params) -> (params, events)``. ``source``: an Array,
    Iter, Shard or StackedSource; ``monitor`` (fresh per run) owns ``tol``, ``max_iter``
    and the drop warning; ``executor`` runs each E-step's chunks."""
    events, reseeded, stats = [], [], None
    while True:
        stats = source_stats(source, params, executor=executor, chunk_size=chunk_size,
                             previous=stats, passes=monitor.max_passes)  # fmt: skip
        monitor.report(stats.mean_loglik, reseeded=reseeded)
        if monitor.stop():
            break
        params, reseeded = maximiser(stats, params)
        for e in reseeded:  # a stacked maximiser numbers its events by each member's history
            e.setdefault("iteration", len(monitor.history))
        events += reseeded
    return EMResult(params, list(monitor.history), monitor.converged, monitor.n_iter, events, stats)


def unstack(result: EMResult) -> list[EMResult]:
    """A stacked run's result as one :class:`EMResult` per member."""
    return [
        EMResult(result.params.member(c), list(hist), result.converged[c], result.n_iter[c],
                 [{k: v for k, v in e.items() if k != "member"} for e in result.events
                  if e["member"] == c],
                 result.stats.member(c))  # fmt: skip
        for c, hist in enumerate(result.history)
    ]

