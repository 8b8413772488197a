"""What EM reads: frames in memory, or re-iterable chunks from disk; and the input checks.

A source yields ``(X_chunk, sample_weight_chunk or None)`` pairs on every pass,
knows its frame count after the first pass, and can gather a subsample of rows
by index (for initialisation).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Callable, Union

import numpy as np

from ..engine import LocalExecutor
from ..exceptions import ParameterError
from .estep import accumulate_many
from .params import Params
from .stats import Stats

__all__ = ["ArraySource", "ChunkSource", "IterSource", "StackedSource", "check_frames", "drop_tol"]

ChunkSource = Union[Callable[[], Iterable[np.ndarray]], Iterable[np.ndarray]]


def check_frames(
    X: Any, *, n_dims: int | None = None, name: str = "X", min_frames: int = 1
) -> np.ndarray:
    """Frames checked at the public boundary: 2-D, real, finite, ``n_dims`` wide.

    Returns ``X`` itself when float32/float64, else a float64 copy. The ParameterError
    names ``name``, the expected and the received shape, or the first bad frame.
    """
    X = np.asarray(X)
    if X.dtype not in (np.float32, np.float64):
        if X.dtype.kind not in "iufb":
            raise ParameterError(f"{name} must be numeric; got dtype {X.dtype}")
        X = X.astype(np.float64)
    if X.ndim != 2:
        hint = " (use X[:, None] for one-dimensional data)" if X.ndim == 1 else ""
        raise ParameterError(f"{name} must be 2-D (n_frames, n_dims); got shape {X.shape}{hint}")
    if n_dims is not None and X.shape[1] != n_dims:
        raise ParameterError(f"{name} has n_dims={X.shape[1]}, but the model has n_dims={n_dims}")
    if X.shape[1] == 0:
        raise ParameterError(f"{name} has zero dimensions")
    if X.shape[0] < min_frames:
        raise ParameterError(f"{name} has {X.shape[0]} frames; at least {min_frames} needed")
    step = max(1, (1 << 22) // max(1, X.shape[1]))  # blockwise: no N-sized temporary
    for start in range(0, X.shape[0], step):
        ok = np.isfinite(X[start : start + step]).all(axis=1)
        if not ok.all():
            first = start + int(np.argmin(ok))
            raise ParameterError(f"{name} contains NaN or inf, first at frame {first}")
    return X


def drop_tol(X: np.ndarray) -> float:
    """The relative drop of the log-likelihood EM tolerates on frames of ``X``'s dtype."""
    return 1e-5 if X.dtype == np.float32 else 1e-9


class ArraySource:
    """An in-memory (or memory-mapped) array as the EM data source (validated by the caller)."""

    def __init__(self, X: np.ndarray, sample_weight: np.ndarray | None = None) -> None:
        self.X, self.sample_weight = X, sample_weight
        self.n_frames = X.shape[0]
        self.drop_tol = drop_tol(X)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        # one piece: accumulate() chunks it and spreads the chunks over the executor
        yield self.X, self.sample_weight

    def gather(self, idx: np.ndarray) -> np.ndarray:
        """Rows ``idx`` (sorted) as float64, shape (len(idx), n_dims)."""
        return np.asarray(self.X[idx], dtype=np.float64)


class IterSource:
    """Re-iterable chunks from a callable or a re-iterable; validates every chunk.

    ``n_frames`` is known after the first complete pass.
    """

    def __init__(self, chunks: ChunkSource, n_dims: int | None = None) -> None:
        if not callable(chunks) and iter(chunks) is chunks:
            raise ParameterError(
                "fit_iter needs several passes over the data: pass a callable that "
                "returns a fresh iterable of arrays, or a list, not a one-shot iterator"
            )
        self.chunks = chunks
        self.n_dims = n_dims
        self.drop_tol = 1e-9
        self.n_frames = 0

    def __iter__(self) -> Iterator[tuple[np.ndarray, None]]:
        it = self.chunks() if callable(self.chunks) else iter(self.chunks)
        n = 0
        for i, Xc in enumerate(it):
            Xc = check_frames(Xc, n_dims=self.n_dims, name=f"chunk {i}", min_frames=0)
            self.drop_tol = max(self.drop_tol, drop_tol(Xc))
            if self.n_dims is None:
                self.n_dims = Xc.shape[1]
            n += Xc.shape[0]
            if Xc.shape[0]:
                yield Xc, None
        self.n_frames = n

    def gather(self, idx: np.ndarray) -> np.ndarray:
        """Rows ``idx`` (sorted, global frame indices) as float64, shape (len(idx), n_dims)."""
        out, pos = [], 0
        for Xc, _ in self:
            lo, hi = np.searchsorted(idx, [pos, pos + Xc.shape[0]])
            if hi > lo:
                out.append(np.asarray(Xc[idx[lo:hi] - pos], dtype=np.float64))
            pos += Xc.shape[0]
        return np.concatenate(out, axis=0)


class StackedSource:
    """The frames of C mixtures trained together (validated, no sample weights).

    Parameters
    ----------
    Xs : list of ndarray, each of shape (n_frames_c, n_dims), float32 or float64
    running : ndarray of shape (C,), bool
        The members to compute: the run's :class:`~.monitor.StackedMonitor`'s ``running``,
        which its ``stop`` updates in place.
    """

    def __init__(self, Xs: list[np.ndarray], running: np.ndarray) -> None:
        self.Xs, self.running = Xs, running

    def accumulate(
        self, params: Params, *, executor: LocalExecutor | None = None,
        chunk_size: int | None = None, previous: Stats | None = None,
    ) -> Stats:  # fmt: skip
        """One E-step of every running member in one executor map (stacked ``Stats``).

        Per member the arithmetic of :func:`~.estep.accumulate`. The other members keep
        their rows of ``previous``, which is updated in place and returned.
        """
        C, K, D = params.means.shape
        live = [int(c) for c in np.flatnonzero(self.running)]
        st = previous
        if st is None:
            z = np.zeros
            st = Stats(z((C, K)), z((C, K, D)), z((C, K, D)), z(C), z(C), z((C, D)))
        if not live:
            return st
        shifts = np.array([params.weights[c] @ params.means[c] for c in live]).reshape(-1, D)
        st.n[live], st.F[live], st.S[live], st.loglik[live], st.n_frames[live] = accumulate_many(
            self.Xs, params.weights, params.means, params.variances, live,
            shifts=shifts, chunk_size=chunk_size, executor=executor,
        )  # fmt: skip
        st.shift[live] = shifts
        return st
