"""THE EM loop, :func:`run`: every fit, restart, split round and class differs only in the
source, starting parameters, maximiser, monitor and executor it passes. A stack of C
mixtures (:class:`~.sources.StackedSource`, stacked :class:`Params`, a
:class:`~.monitor.StackedMonitor`) runs at once, each member as alone (:func:`unstack`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..engine import LocalExecutor
from .estep import accumulate
from .monitor import ConvergenceMonitor
from .mstep import Maximiser
from .params import Params
from .sources import StackedSource
from .stats import Stats

__all__ = ["EMResult", "run", "source_stats", "unstack"]


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
    events: list[dict[str, Any]] = field(default_factory=list)
    stats: Stats | None = None

    @property
    def final_mean_loglik(self) -> float:
        return self.history[-1]


def source_stats(
    source, params: Params, *, executor: LocalExecutor | None = None,
    chunk_size: int | None = None, previous: Stats | None = None,
) -> Stats:  # fmt: skip
    """One E-step over ``source`` in source order; a stacked source computes its running
    members (the others keep ``previous``'s rows), a shard source its own blocks."""
    if isinstance(source, StackedSource):
        return source.accumulate(params, executor=executor, chunk_size=chunk_size,
                                 previous=previous)  # fmt: skip
    shift = params.weights @ params.means
    if hasattr(source, "stats"):
        return source.stats(params, shift=shift, executor=executor, chunk_size=chunk_size)
    total = Stats.zeros(params.n_components, params.n_dims, shift=shift)
    for Xc, sw in source:
        total = accumulate(
            Xc, params, sample_weight=sw, shift=shift, chunk_size=chunk_size,
            executor=executor, out=total,
        )  # fmt: skip
    return total


def run(
    source, params: Params, *, maximiser: Maximiser, monitor: ConvergenceMonitor,
    executor: LocalExecutor | None = None, chunk_size: int | None = None,
) -> EMResult:  # fmt: skip
    """EM from ``params`` (not modified): E-step, report to ``monitor``, and, unless it
    says stop, ``maximiser(stats, params) -> (params, events)``. ``source``: an Array,
    Iter, Shard or StackedSource; ``monitor`` (fresh per run) owns ``tol``, ``max_iter``
    and the drop warning; ``executor`` runs each E-step's chunks."""
    events: list[dict[str, Any]] = []
    reseeded: list[dict[str, Any]] = []
    stats = None
    while True:
        stats = source_stats(source, params, executor=executor, chunk_size=chunk_size,
                             previous=stats)  # fmt: skip
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
        EMResult(
            result.params.member(c), list(hist), result.converged[c], result.n_iter[c],
            [{k: v for k, v in e.items() if k != "member"} for e in result.events
             if e["member"] == c],
            result.stats.member(c),
        )  # fmt: skip
        for c, hist in enumerate(result.history)
    ]

