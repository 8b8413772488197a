"""Many mixtures of the same K trained together: one E-step, one M-step per iteration for all.

A classifier trains one small mixture per class. Done one class at a time, every
EM iteration of every class pays fixed costs (an executor map with its BLAS
limit, the statistics bookkeeping, an M-step of a dozen small NumPy calls).
Here the parameters of C mixtures with the same K are stacked, and
:func:`audiogmm.mixture.em.run` iterates them all at once:

* :class:`StackedSource` holds each member's frames. Its E-step packs the
  members' chunks into tasks of about one chunk of frames each and runs them in
  one executor map; every frame is scored against its own member's K components
  only (never frames x (C K)), with memory O(chunk x K) per worker.
* :class:`StackedMaximiser` does the ML M-step of all running members with
  array operations over the stack; a member that needs weight flooring, an empty
  component or re-seeding goes through :class:`~.mstep.MLMaximiser` itself.
* :class:`StackedMonitor` keeps one :class:`~.monitor.ConvergenceMonitor` per
  member. A member that has stopped keeps its parameters and statistics; the
  others go on.

Every member's arithmetic is the arithmetic of a separate run: the same chunk
boundaries, the same GEMM shapes and operands, the same kernel calls, and
element-wise or per-row operations where the stack is processed at once, so the
results are bit-identical to training each member alone (a test checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine import LocalExecutor
from .estep import accumulate_many
from .monitor import ConvergenceMonitor
from .mstep import Event, maximise_stack
from .params import Params
from .stats import Stats

__all__ = ["StackedMaximiser", "StackedMonitor", "StackedParams", "StackedSource", "StackedStats"]

@dataclass
class StackedParams:
    """The parameters of C mixtures with the same K and D.

    Parameters
    ----------
    weights : ndarray of shape (n_members, n_components), float64
    means, variances : ndarray of shape (n_members, n_components, n_dims), float64
    running : ndarray of shape (n_members,), bool
        Members still iterating; the others keep their parameters.
    """

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray
    running: np.ndarray

    @classmethod
    def of(cls, members: list[Params]) -> StackedParams:
        """Stack ``members`` (all running)."""
        return cls(
            np.stack([p.weights for p in members]),
            np.stack([p.means for p in members]),
            np.stack([p.variances for p in members]),
            np.ones(len(members), dtype=bool),
        )

    def member(self, c: int) -> Params:
        """Member ``c`` as its own :class:`Params` (copies)."""
        return Params(self.weights[c].copy(), self.means[c].copy(), self.variances[c].copy())


@dataclass(eq=False)
class StackedStats:
    """Sufficient statistics of C mixtures (see :class:`~.stats.Stats`), one row per member.

    Shapes: ``n`` (C, K), ``F`` and ``S`` (C, K, D), ``loglik`` and ``n_frames`` (C,),
    ``shift`` (C, D).
    """

    n: np.ndarray
    F: np.ndarray
    S: np.ndarray
    loglik: np.ndarray
    n_frames: np.ndarray
    shift: np.ndarray

    @property
    def mean_loglik(self) -> np.ndarray:
        """Mean log-likelihood per frame of each member (nats), shape (C,)."""
        return self.loglik / self.n_frames

    def member(self, c: int) -> Stats:
        """Member ``c`` as its own :class:`Stats` (copies)."""
        return Stats(
            self.n[c].copy(), self.F[c].copy(), self.S[c].copy(),
            float(self.loglik[c]), float(self.n_frames[c]), self.shift[c].copy(),
        )  # fmt: skip


class StackedSource:
    """The frames of C mixtures to train together (validated by the caller).

    Parameters
    ----------
    Xs : list of ndarray, each of shape (n_frames_c, n_dims), float32 or float64
        Frames of each member, in memory or memory-mapped; no sample weights.
    """

    def __init__(self, Xs: list[np.ndarray]) -> None:
        self.Xs = Xs
        self.n_frames = [X.shape[0] for X in Xs]
        self.drop_tol = [1e-5 if X.dtype == np.float32 else 1e-9 for X in Xs]

    def __len__(self) -> int:
        return len(self.Xs)

    def accumulate(
        self,
        params: StackedParams,
        *,
        executor: LocalExecutor | None = None,
        chunk_size: int | None = None,
        previous: StackedStats | None = None,
    ) -> StackedStats:
        """One E-step of every running member, in one executor map.

        Per member this is :func:`audiogmm.mixture.em.source_stats`: the same
        shift, compute dtype, chunk boundaries, GEMMs and kernel calls, chunk
        results reduced in chunk order. Members that are not running keep their
        rows of ``previous``, which is updated in place and returned (the loop has
        no further use for the statistics of the step before).
        """
        C, K, D = params.means.shape
        live = [int(c) for c in np.flatnonzero(params.running)]
        st = previous
        if st is None:
            st = StackedStats(
                np.zeros((C, K)), np.zeros((C, K, D)), np.zeros((C, K, D)),
                np.zeros(C), np.zeros(C), np.zeros((C, D)),
            )  # fmt: skip
        if not live:
            return st
        shifts = np.array([params.weights[c] @ params.means[c] for c in live]).reshape(-1, D)
        st.n[live], st.F[live], st.S[live], st.loglik[live], st.n_frames[live] = accumulate_many(
            self.Xs, params.weights, params.means, params.variances, live,
            shifts=shifts, chunk_size=chunk_size, executor=executor,
        )  # fmt: skip
        st.shift[live] = shifts
        return st


class StackedMonitor:
    """One :class:`~.monitor.ConvergenceMonitor` per member; stops each member on its own.

    Parameters
    ----------
    monitors : list of ConvergenceMonitor
        A fresh one per member.

    Attributes
    ----------
    running : ndarray of shape (n_members,), bool
        Members that have not stopped yet.
    """

    def __init__(self, monitors: list[ConvergenceMonitor]) -> None:
        self.monitors = monitors
        self.running = np.ones(len(monitors), dtype=bool)

    def report(self, lls: np.ndarray, *, reseeded: Any = False) -> None:
        """Report each running member's mean log-likelihood.

        ``reseeded`` is the event list of the M-step before (each event names its
        ``member``), or False.
        """
        again = {e["member"] for e in reseeded} if reseeded else set()
        for c in np.flatnonzero(self.running):
            self.monitors[c].report(float(lls[c]), reseeded=c in again)

    def stop(self) -> bool:
        """Stop the members whose monitor says so; True when none is left running."""
        for c in np.flatnonzero(self.running):
            if self.monitors[c].stop():
                self.running[c] = False
        return not self.running.any()

    @property
    def history(self) -> list[list[float]]:
        return [m.history for m in self.monitors]

    @property
    def converged(self) -> list[bool]:
        return [m.converged for m in self.monitors]

    @property
    def n_iter(self) -> list[int]:
        return [m.n_iter for m in self.monitors]


@dataclass(frozen=True)
class StackedMaximiser:
    """:class:`~.mstep.MLMaximiser` for every running member of a stack at once.

    Parameters
    ----------
    var_floor : ndarray of shape (n_members, n_dims)
        Each member's absolute variance floor.
    monitor : StackedMonitor
        Says which members are still running (only those are updated) and numbers
        each member's events by its own iteration.
    min_weight, min_count
        As for :class:`~.mstep.MLMaximiser`.
    """

    var_floor: np.ndarray
    monitor: StackedMonitor
    min_weight: float = 0.0
    min_count: float | None = None

    def __call__(
        self, stats: StackedStats, params: StackedParams
    ) -> tuple[StackedParams, list[Event]]:
        run = self.monitor.running.copy()
        out = StackedParams(
            params.weights.copy(), params.means.copy(), params.variances.copy(), run
        )
        live = np.flatnonzero(run)
        w, m, v, evs = maximise_stack(
            stats.n[live], stats.F[live], stats.S[live], stats.shift[live],
            stats.n_frames[live], var_floor=self.var_floor[live],
            min_weight=self.min_weight, min_count=self.min_count,
        )  # fmt: skip
        out.weights[live], out.means[live], out.variances[live] = w, m, v
        events: list[Event] = []
        for c, ev in zip(live, evs):
            for e in ev:  # numbered by the member's own history
                e["member"] = int(c)
                e["iteration"] = len(self.monitor.monitors[c].history)
            events += ev
        return out, events

