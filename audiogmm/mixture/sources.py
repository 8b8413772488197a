"""What EM reads: frames in memory, re-iterable chunks, a stack's frames, a shard store.
A source yields ``(X_chunk, sample_weight_chunk or None)`` on every pass, knows its frame
count after the first, and gathers rows by index (for initialisation)."""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Iterator
from typing import Any, Callable, Union

import numpy as np

from ..engine import LocalExecutor
from ..engine.local import tree_fold
from ..exceptions import ParameterError
from .checks import check_sample_weight, is_int
from .estep import accumulate, accumulate_many
from .stats import Params, Stats

__all__ = ["BLOCK_FRAMES", "ArraySource", "ChunkSource", "IterSource", "ShardSource",
           "StackedSource", "check_frames", "drop_tol"]  # fmt: skip

ChunkSource = Union[Callable[[], Iterable[np.ndarray]], Iterable[np.ndarray]]
#: Frames per map task: 2^17 frames x 60 dims x 4 B = 31 MB of reads, ~250 KB of Stats back.
BLOCK_FRAMES = 1 << 17
#: Frames per chunk of a plain pass over a store (global moments).
READ_FRAMES = 1 << 16


def check_frames(X: Any, *, n_dims: int | None = None, name: str = "X",
                 min_frames: int = 1) -> np.ndarray:  # fmt: skip
    """Frames checked at the public boundary: 2-D, real, finite, ``n_dims`` wide; ``X`` itself
    when float32/float64, else a float64 copy. The ParameterError names ``name``."""
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
    """An in-memory (or memory-mapped) array, validated by the caller."""

    def __init__(self, X: np.ndarray, sample_weight: np.ndarray | None = None) -> None:
        self.X, self.sample_weight = X, sample_weight
        self.n_frames = X.shape[0]
        self.drop_tol = drop_tol(X)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        yield self.X, self.sample_weight  # one piece: accumulate() chunks it

    def gather(self, idx: np.ndarray) -> np.ndarray:
        """Rows ``idx`` (sorted) as float64, shape (len(idx), n_dims)."""
        return np.asarray(self.X[idx], dtype=np.float64)


class IterSource:
    """Re-iterable chunks from a callable or a re-iterable, each validated on every pass;
    ``n_frames`` is known after the first."""

    def __init__(self, chunks: ChunkSource) -> None:
        if not callable(chunks) and iter(chunks) is chunks:
            raise ParameterError("fit_iter needs several passes over the data: pass a callable "
                                 "that returns a fresh iterable of arrays, or a list, not a "
                                 "one-shot iterator")  # fmt: skip
        self.chunks, self.n_dims, self.drop_tol, self.n_frames = chunks, None, 1e-9, 0

    def __iter__(self) -> Iterator[tuple[np.ndarray, None]]:
        it = self.chunks() if callable(self.chunks) else iter(self.chunks)
        n = 0
        for i, Xc in enumerate(it):
            Xc = check_frames(Xc, n_dims=self.n_dims, name=f"chunk {i}", min_frames=0)
            self.drop_tol = max(self.drop_tol, drop_tol(Xc))
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
    """The frames ``Xs`` (validated, unweighted) of C mixtures trained together; ``running``
    (C,) bool: the run's StackedMonitor's, which its ``stop`` updates in place."""

    def __init__(self, Xs: list[np.ndarray], running: np.ndarray) -> None:
        self.Xs, self.running = Xs, running

    def accumulate(self, params: Params, *, executor: LocalExecutor | None = None,
                   chunk_size: int | None = None, previous: Stats | None = None,
                   passes: int | None = None) -> Stats:  # fmt: skip
        """One E-step of the running members (stacked ``Stats``, one executor map); the
        others keep their rows of ``previous``, which is updated in place and returned;
        ``passes`` as for :func:`.estep.accumulate_many`."""
        C, K, D = params.means.shape
        live = [int(c) for c in np.flatnonzero(self.running)]
        z = np.zeros
        st = previous or Stats(z((C, K)), z((C, K, D)), z((C, K, D)), z(C), z(C), z((C, D)))
        shifts = np.array([params.weights[c] @ params.means[c] for c in live]).reshape(-1, D)
        st.n[live], st.F[live], st.S[live], st.loglik[live], st.n_frames[live] = accumulate_many(
            self.Xs, *params, live, shifts=shifts, chunk_size=chunk_size, executor=executor,
            passes=passes)
        st.shift[live] = shifts
        return st


class _Rows:
    """Virtual frames ``[start, stop)`` of a store (every ``stride``-th), read on ``[a:b]``."""

    dtype = np.dtype(np.float32)

    def __init__(self, store: Any, stride: int, start: int, stop: int) -> None:
        self.store, self.stride, self.start = store, stride, start
        self.shape = (stop - start, store.n_dims)

    def __getitem__(self, key: slice) -> np.ndarray:
        a, b, _ = key.indices(self.shape[0])  # callers slice non-empty, contiguous ranges
        a, b, s = self.start + a, self.start + b, self.stride
        rows = self.store.read_rows(a * s, (b - 1) * s + 1)
        return rows if s == 1 else np.ascontiguousarray(rows[::s])


def _frame_weights(store: Any, stride: int, clip_weight, a: int, b: int) -> np.ndarray | None:
    """Per-frame sample weights of virtual frames ``[a, b)`` from per-clip weights."""
    if clip_weight is None:
        return None
    idx = np.arange(a, b, dtype=np.int64) * stride
    return clip_weight[np.searchsorted(store.clip_start, idx, side="right") - 1]


def _block_stats(store: Any, stride: int, clip_weight, params: Params, shift: np.ndarray,
                 chunk_size: int | None, passes: int | None, start: int,
                 stop: int) -> Stats:  # fmt: skip
    """One map task: statistics of virtual frames ``[start, stop)``, chunk by chunk, serially."""
    sw = _frame_weights(store, stride, clip_weight, start, stop)
    return accumulate(_Rows(store, stride, start, stop), params, sample_weight=sw, shift=shift,
                      chunk_size=chunk_size, passes=passes)  # fmt: skip


class ShardSource:
    """A shard store (``n_frames``, ``n_dims``, ``clip_start``, ``read_rows``, ``read_index``,
    e.g. :func:`audiogmm.data.shards.open_store`), frames ``0, stride, 2*stride, ...``;
    ``clip_weight`` (n_clips,) >= 0: each clip's frames' weight; ``block_frames`` per map task,
    blocks counted from frame 0 and summed in :func:`tree_fold`'s fixed tree (results depend
    on it and the chunk size, never on shard files, workers, executor or completion order)."""

    def __init__(self, store: Any, *, stride: int = 1, clip_weight: np.ndarray | None = None,
                 block_frames: int = BLOCK_FRAMES) -> None:  # fmt: skip
        for name, v in (("stride", stride), ("block_frames", block_frames)):
            if not (is_int(v) and v > 0):
                raise ParameterError(f"{name} must be an int > 0; got {v!r}")
        clip_weight = check_sample_weight(clip_weight, len(store.clip_start), "clip_weight", "clip")
        self.store, self.stride, self.clip_weight = store, int(stride), clip_weight
        self.block_frames, self.n_dims = block_frames, store.n_dims
        self.n_frames = -(-store.n_frames // self.stride)
        self.drop_tol = 1e-5  # float32 frames

    def _ranges(self, size: int) -> list[tuple[int, int]]:
        return [(a, min(self.n_frames, a + size)) for a in range(0, self.n_frames, size)]

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        for a, b in self._ranges(READ_FRAMES):
            w = _frame_weights(self.store, self.stride, self.clip_weight, a, b)
            yield _Rows(self.store, self.stride, a, b)[:], w

    def gather(self, idx: np.ndarray) -> np.ndarray:
        """Virtual rows ``idx`` (sorted) as float64, shape (len(idx), n_dims)."""
        rows = np.asarray(idx, dtype=np.int64) * self.stride
        return self.store.read_index(rows).astype(np.float64)

    def stats(self, params: Params, *, shift: np.ndarray, executor: Any = None,
              chunk_size: int | None = None, passes: int | None = None) -> Stats:  # fmt: skip
        """One E-step about ``shift`` (n_dims,) on ``executor`` (default serial; its ``map``
        must yield in task order); ``block_frames`` should be a multiple of ``chunk_size``;
        ``passes`` as for :func:`.estep.accumulate_many`."""
        store = self.store
        if hasattr(store, "reader"):  # ship the shard list, not the clip index
            store = store.reader(clip_ranges=self.clip_weight is not None)
        task = functools.partial(_block_stats, store, self.stride, self.clip_weight, params,
                                 np.asarray(shift, dtype=np.float64), chunk_size,
                                 passes)  # fmt: skip
        blocks, executor = self._ranges(self.block_frames), executor or LocalExecutor(1)
        if hasattr(executor, "map_reduce"):  # Dask: the same tree, summed on the workers
            return executor.map_reduce(task, blocks, operator.add, star=True)
        return tree_fold(executor.map(task, blocks, isolated=True, star=True), operator.add)
