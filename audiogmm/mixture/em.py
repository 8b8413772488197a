"""THE EM loop. Every fit runs through :func:`run`.

``fit``, ``fit_iter``, every ``n_init`` restart, every round of split
initialisation and every class of a classifier differ only in the data source,
the starting parameters, the maximiser, the monitor and the executor they pass.
The loop also runs C mixtures of one K at once: a :class:`~.sources.StackedSource`,
stacked :class:`Params`, an :class:`~.mstep.MLMaximiser` with a
:class:`~.monitor.StackedMonitor`; each member stops on its own and its result equals
that of a run of its own (:func:`unstack`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..engine import LocalExecutor
from .estep import accumulate
from .monitor import ConvergenceMonitor
from .mstep import Maximiser
from .params import Params
from .sources import StackedSource
from .stats import Stats

__all__ = ["EMResult", "best_of", "run", "source_stats", "unstack"]


@dataclass
class EMResult:
    """What one EM run produced: the parameters after the last M-step, the mean
    log-likelihood per frame (nats) at each E-step, whether the change fell below ``tol``,
    the M-steps taken, the maximiser's events (re-seeded components, each with the
    ``iteration`` in ``history`` of the E-step after it) and the last E-step's statistics.

    For a stacked run ``params`` and ``stats`` are stacked, ``history``, ``converged``
    and ``n_iter`` are lists over members, and each event names its ``member``.
    """

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
    """One E-step over every chunk of ``source``, merged in source order.

    A stacked source computes its running members (the others keep their rows of
    ``previous``); a source with a ``stats`` method (a shard store) maps its own
    blocks and sums them in a fixed tree (:mod:`audiogmm.mixture.shards`).
    """
    if isinstance(source, StackedSource):
        return source.accumulate(params, executor=executor, chunk_size=chunk_size, previous=previous)
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
    """Run EM from ``params`` (not modified) until ``monitor`` says stop.

    Each iteration: accumulate statistics over the source (:func:`source_stats`),
    report the mean log-likelihood to the monitor, and, unless it says stop, maximise.
    ``source``: an Array, Iter, Shard or StackedSource; ``maximiser``: ``(stats, params)
    -> (params, events)`` (ML, MAP, stacked ML); ``monitor`` (a fresh Convergence or
    StackedMonitor per run) owns ``tol``, ``max_iter`` and the drop warning, and hears of
    re-seeding M-steps through their events; ``executor`` runs each E-step's chunks.
    """
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
    """The result of a stacked run as one :class:`EMResult` per member (each as if run alone)."""
    return [
        EMResult(
            result.params.member(c), list(hist), result.converged[c], result.n_iter[c],
            [{k: v for k, v in e.items() if k != "member"} for e in result.events
             if e["member"] == c],
            result.stats.member(c),
        )  # fmt: skip
        for c, hist in enumerate(result.history)
    ]


def best_of(results: list[EMResult]) -> tuple[int, EMResult]:
    """The run with the highest final mean log-likelihood (the first on ties)."""
    i = int(np.argmax([r.final_mean_loglik for r in results]))
    return i, results[i]
