"""THE EM loop. Every fit runs through :func:`run`.

``fit``, ``fit_iter``, every ``n_init`` restart, every round of split
initialisation and every class of a classifier differ only in the data source,
the starting parameters, the maximiser, the monitor and the executor they pass.
Nothing else in audiogmm loops accumulate -> maximise.
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
from .stats import Stats

__all__ = ["EMResult", "best_of", "run", "source_stats"]


@dataclass
class EMResult:
    """What one EM run produced.

    Attributes
    ----------
    params : Params
        The parameters after the last M-step.
    history : list of float
        Mean log-likelihood per frame (nats) at each E-step.
    converged : bool
        Stopped because the change fell below ``tol`` (not at ``max_iter``).
    n_iter : int
        M-steps taken.
    events : list of dict
        What the maximiser reported (e.g. re-seeded components), each with the
        ``iteration`` (index in ``history``) of the E-step that followed it.
    stats : Stats
        Statistics of the last E-step (under the parameters before the last M-step,
        or under ``params`` when no M-step followed).
    """

    params: Params
    history: list[float]
    converged: bool
    n_iter: int
    events: list[dict[str, Any]] = field(default_factory=list)
    stats: Stats | None = None

    @property
    def final_mean_loglik(self) -> float:
        return self.history[-1]


def source_stats(
    source, params: Params, *, executor: LocalExecutor | None = None, chunk_size: int | None = None
) -> Stats:
    """One E-step over every chunk of ``source``, merged in source order.

    A source with a ``stats`` method (a shard store) maps its own canonical blocks
    on the executor and sums them in a fixed tree (:mod:`audiogmm.mixture.shards`).
    """
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
    source,
    params: Params,
    *,
    maximiser: Maximiser,
    monitor: ConvergenceMonitor,
    executor: LocalExecutor | None = None,
    chunk_size: int | None = None,
) -> EMResult:
    """Run EM from ``params`` until ``monitor`` says stop.

    Each iteration: accumulate statistics over the source (chunks through the
    executor, merged in a fixed order), report the mean log-likelihood to the
    monitor, and, unless it says stop, maximise.

    Parameters
    ----------
    source : ArraySource or IterSource
        Yields ``(X_chunk, sample_weight_chunk)`` pairs on every pass.
    params : Params
        Starting parameters (not modified).
    maximiser : Maximiser
        ``(stats, params) -> (params, events)``: ML, MAP, ...
    monitor : ConvergenceMonitor
        Owns ``tol``, ``max_iter`` and the drop warning; a fresh one per run.
    executor : LocalExecutor, optional
        Runs the chunks of each E-step (default: serially).
    chunk_size : int, optional
        Frames per E-step chunk.

    Returns
    -------
    EMResult
    """
    events: list[dict[str, Any]] = []
    reseeded = False
    while True:
        stats = source_stats(source, params, executor=executor, chunk_size=chunk_size)
        monitor.report(stats.mean_loglik, reseeded=reseeded)
        if monitor.stop():
            break
        params, new_events = maximiser(stats, params)
        for e in new_events:
            e["iteration"] = len(monitor.history)
        events += new_events
        reseeded = bool(new_events)
    return EMResult(
        params,
        list(monitor.history),
        monitor.converged,
        monitor.n_iter,
        events,
        stats,
    )


def best_of(results: list[EMResult]) -> tuple[int, EMResult]:
    """The run with the highest final mean log-likelihood (the first on ties)."""
    i = int(np.argmax([r.final_mean_loglik for r in results]))
    return i, results[i]
