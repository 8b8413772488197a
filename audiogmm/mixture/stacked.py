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
from . import kernels
from .estep import _Workspace, auto_chunk_size, chunk_stats, compute_dtype, gemm_weights, saturation
from .monitor import ConvergenceMonitor
from .mstep import Event, MLMaximiser
from .params import Params
from .stats import Stats

__all__ = ["StackedMaximiser", "StackedMonitor", "StackedParams", "StackedSource", "StackedStats"]

_WS = _Workspace()  # per-thread chunk buffers of the stacked E-step


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
        cap = chunk_size or auto_chunk_size(K)
        dtypes = self._dtypes(params, live)
        shift = [params.weights[c] @ params.means[c] for c in live]
        # centre on a shift exact in the compute dtype, as accumulate() does
        shift_c = [sh.astype(dt) for sh, dt in zip(shift, dtypes)]
        eff = np.array([sc.astype(np.float64) for sc in shift_c]).reshape(len(live), D)
        W: list[Any] = [None] * len(live)
        items: dict[Any, list[tuple[int, int, int]]] = {}
        for j, (c, dt) in enumerate(zip(live, dtypes)):
            n, chunk = self.n_frames[c], min(cap, max(1, self.n_frames[c]))
            items.setdefault(dt, []).extend((j, s, min(n, s + chunk)) for s in range(0, n, chunk))
        for dt in items:
            js = [j for j in range(len(live)) if dtypes[j] is dt]
            for j, Wj in zip(js, _gemm_weights(params, [live[j] for j in js], eff[js], dt)):
                W[j] = Wj
        ex = executor or LocalExecutor(1)
        # tasks of at most a chunk, and at least two per worker when the data allow
        total = sum(self.n_frames[c] for c in live)
        rows = min(cap, max(1, -(-total // (2 * ex.n_workers))))
        tasks = [(dt, t) for dt, its in items.items() for t in _pack(its, rows)]

        # per member, the same numba rule and saturation limit as accumulate() on its frames
        fast = [kernels.use_numba(self.n_frames[c] * K, None) for c in live]
        limit = [saturation(params.variances[c], dt) for c, dt in zip(live, dtypes)]

        def one(dt, task: list[tuple[int, int, int]]) -> list[tuple[int, np.ndarray, float]]:
            ws = _WS.get(cap, D, K, dt)
            out, off = [], 0
            for j, start, stop in task:
                m = stop - start
                rows = slice(off, off + m)
                g, lj = chunk_stats(
                    self.Xs[live[j]][start:stop], shift_c[j], W[j], limit[j], None,
                    ws.xx[rows], ws.L[rows], ws.lse[rows], fast[j],
                )  # fmt: skip
                out.append((j, g, lj))
                off += m
            return out

        G = np.zeros((len(live), K, 2 * D + 1))
        ll = [0.0] * len(live)
        for res in ex.map(one, tasks, star=True):
            for j, g, lj in res:
                G[j] += g  # each member's chunks in chunk order, as in accumulate()
                ll[j] += lj
        st = previous
        if st is None:
            st = StackedStats(
                np.zeros((C, K)), np.zeros((C, K, D)), np.zeros((C, K, D)),
                np.zeros(C), np.zeros(C), np.zeros((C, D)),
            )  # fmt: skip
        if not live:
            return st
        n = G[:, :, 2 * D].copy()
        F, S = G[:, :, D : 2 * D], G[:, :, :D]
        sh = np.array(shift).reshape(len(live), D)
        # Stats.recentre from the compute-dtype shift to the float64 one, row by row
        d = (eff - sh)[:, None, :]
        nd = n[:, :, None] * d
        st.n[live] = n
        st.F[live] = F + nd
        st.S[live] = S + 2.0 * d * F + nd * d
        st.loglik[live] = ll
        st.n_frames[live] = [float(self.n_frames[c]) for c in live]
        st.shift[live] = sh
        return st

    def _dtypes(self, params: StackedParams, live: list[int]) -> list[Any]:
        """:func:`~.estep.compute_dtype` of each running member (one stacked call when it can)."""
        f32 = [c for c in live if self.Xs[c].dtype == np.float32]
        if f32 and compute_dtype(
            self.Xs[f32[0]], params.weights[f32], params.means[f32], params.variances[f32]
        ) is np.float32:
            return [np.float32 if self.Xs[c].dtype == np.float32 else np.float64 for c in live]
        return [
            compute_dtype(self.Xs[c], params.weights[c], params.means[c], params.variances[c])
            for c in live
        ]


def _gemm_weights(params: StackedParams, members: list[int], eff: np.ndarray, dt) -> np.ndarray:
    """:func:`~.estep.gemm_weights` of each member about its shift ``eff[j]``, (R, 2D+1, K).

    One call for all: each member's means are centred first and the shift passed
    is zero, which gives the same numbers (``x - 0 == x``) as a call per member,
    since every other step of the formula is per component.
    """
    R, (_, K, D) = len(members), params.means.shape
    Wall = gemm_weights(
        params.weights[members].reshape(R * K),
        (params.means[members] - eff[:, None, :]).reshape(R * K, D),
        params.variances[members].reshape(R * K, D),
        np.zeros(D),
        dt,
    )
    return np.ascontiguousarray(Wall.reshape(2 * D + 1, R, K).transpose(1, 0, 2))


def _pack(items: list[tuple[int, int, int]], rows: int) -> list[list[tuple[int, int, int]]]:
    """Consecutive chunks grouped into tasks of at most ``rows`` frames (or one chunk)."""
    tasks: list[list[tuple[int, int, int]]] = []
    used = rows
    for it in items:
        m = it[2] - it[1]
        if used + m > rows:
            tasks.append([])
            used = 0
        tasks[-1].append(it)
        used += m
    return tasks


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

    def member(self, c: int) -> MLMaximiser:
        return MLMaximiser(self.var_floor[c], self.min_weight, self.min_count)

    def __call__(
        self, stats: StackedStats, params: StackedParams
    ) -> tuple[StackedParams, list[Event]]:
        run = self.monitor.running.copy()
        out = StackedParams(
            params.weights.copy(), params.means.copy(), params.variances.copy(), run
        )
        live = np.flatnonzero(run)
        K = params.means.shape[1]
        n = stats.n[live]
        # the common case, row by row exactly as maximise() does it, floor_weights() in
        # its first pass (nothing to clamp) and reseed() (nothing to re-seed)
        with np.errstate(divide="ignore", invalid="ignore"):
            dm = stats.F[live] / n[:, :, None]
            var = np.maximum(stats.S[live] / n[:, :, None] - dm**2, 0.0)
            w = n / n.sum(1, keepdims=True)
            fw = w * (1.0 / w.sum(1))[:, None]
        mw = min(self.min_weight, 1.0 / K)
        special = (n <= 0).any(1) | (fw < mw).any(1)
        if self.min_count is not None:
            thr = np.minimum(self.min_count, 0.5 * stats.n_frames[live] / K)
            weak = (n < thr[:, None]).sum(1)
            special |= (weak > 0) & (weak < K)
        ok = ~special
        out.means[live[ok]] = stats.shift[live[ok]][:, None, :] + dm[ok]
        out.variances[live[ok]] = np.maximum(var[ok], self.var_floor[live[ok]][:, None, :])
        out.weights[live[ok]] = fw[ok] / fw[ok].sum(1, keepdims=True)
        events: list[Event] = []
        for c in live[special]:
            p, ev = self.member(c)(stats.member(c), params.member(c))
            out.weights[c], out.means[c], out.variances[c] = p
            for e in ev:
                e["member"] = int(c)
                e["iteration"] = len(self.monitor.monitors[c].history)
            events += ev
        return out, events

