"""EM over a feature shard store: canonical blocks mapped on an executor, a fixed tree sum.

:class:`ShardSource` is an EM data source over a store (any object with ``n_frames``,
``n_dims``, ``clip_start``, ``read_rows`` and ``read_index``, e.g. from
:func:`audiogmm.data.shards.open_store`). Its ``stats`` cuts the frames into
*canonical* blocks of ``block_frames`` counted from frame 0 of the store, maps
``accumulate(block)`` on the executor (threads, processes or Dask workers) and sums
the blocks' :class:`Stats` in a fixed binary tree over the block index: the result is
bit-identical for any shard size, number of workers, executor and completion order.
A task holds one E-step chunk at a time (:class:`_Rows` reads it when asked).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from ..engine.local import tree_fold
from ..exceptions import ParameterError
from .checks import is_int
from .estep import accumulate
from .params import Params
from .stats import Stats

__all__ = ["BLOCK_FRAMES", "ShardSource", "tree_sum"]

#: Frames per map task: 2^17 frames x 60 dims x 4 B = 31 MB of reads, ~250 KB of Stats back.
BLOCK_FRAMES = 1 << 17
#: Frames per chunk of a plain pass (global moments, init gathering).
READ_FRAMES = 1 << 16


def tree_sum(items: Iterable[Stats]) -> Stats:
    """Sum in the fixed binary tree of :func:`audiogmm.engine.local.tree_fold`.

    The tree depends only on the number of items, so any producer that yields
    them in index order gives the same bits.
    """
    return tree_fold(items, operator.add)


class _Rows:
    """A lazy (n, n_dims) float32 view of virtual frames ``[start, stop)`` of a source: what
    :func:`accumulate` uses (``shape``, ``dtype``, ``ndim``, ``[a:b]`` slices read on demand)."""

    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, store: Any, stride: int, start: int, stop: int) -> None:
        self.store, self.stride, self.start = store, stride, start
        self.shape = (stop - start, store.n_dims)

    def __getitem__(self, key: slice) -> np.ndarray:
        a, b, step = key.indices(self.shape[0])
        if step != 1:
            raise ParameterError("_Rows supports contiguous slices only")
        return read_virtual(self.store, self.stride, self.start + a, self.start + b)


def read_virtual(store: Any, stride: int, a: int, b: int) -> np.ndarray:
    """Virtual frames ``[a, b)`` (store frames ``a*stride, (a+1)*stride, ...``), float32."""
    if b <= a:
        return np.empty((0, store.n_dims), dtype=np.float32)
    rows = store.read_rows(a * stride, (b - 1) * stride + 1)
    return rows if stride == 1 else np.ascontiguousarray(rows[::stride])


def frame_weights(
    store: Any, stride: int, clip_weight: np.ndarray | None, a: int, b: int
) -> np.ndarray | None:
    """Per-frame sample weights of virtual frames ``[a, b)`` from per-clip weights."""
    if clip_weight is None:
        return None
    idx = np.arange(a, b, dtype=np.int64) * stride
    clip = np.searchsorted(store.clip_start, idx, side="right") - 1
    return clip_weight[clip]


def block_stats(
    store: Any, stride: int, clip_weight: np.ndarray | None, params: Params, shift: np.ndarray,
    chunk_size: int | None, start: int, stop: int,
) -> Stats:  # fmt: skip
    """One map task: statistics of virtual frames ``[start, stop)``, chunk by chunk, serially."""
    X = _Rows(store, stride, start, stop)
    sw = frame_weights(store, stride, clip_weight, start, stop)
    return accumulate(X, params, sample_weight=sw, shift=shift, chunk_size=chunk_size)


class ShardSource:
    """EM data source over a shard store, with frame subsampling and per-clip weights.

    Keeps store frames ``0, stride, 2*stride, ...`` (``n_frames`` counts those);
    ``clip_weight`` (n_clips,): every frame's non-negative sample weight, per clip (e.g.
    to balance labels); ``block_frames`` per map task: results depend on it (and on the
    E-step chunk size), never on the shard files or the executor.
    """

    def __init__(
        self, store: Any, *, stride: int = 1, clip_weight: np.ndarray | None = None,
        block_frames: int = BLOCK_FRAMES,
    ) -> None:  # fmt: skip
        for name, v in (("stride", stride), ("block_frames", block_frames)):
            if not (is_int(v) and v > 0):
                raise ParameterError(f"{name} must be an int > 0; got {v!r}")
        if clip_weight is not None:
            clip_weight = np.asarray(clip_weight, dtype=np.float64)
            if clip_weight.shape != (len(store.clip_start),):
                raise ParameterError(
                    f"clip_weight must have shape ({len(store.clip_start)},) (one per clip); "
                    f"got {clip_weight.shape}"
                )
            if not (np.isfinite(clip_weight).all() and (clip_weight >= 0).all()):
                raise ParameterError("clip_weight must be finite and >= 0")
        self.store, self.stride, self.clip_weight = store, int(stride), clip_weight
        self.block_frames = block_frames
        self.n_frames = -(-store.n_frames // self.stride)
        self.n_dims = store.n_dims
        self.drop_tol = 1e-5  # float32 frames

    def _ranges(self, size: int) -> list[tuple[int, int]]:
        return [(a, min(self.n_frames, a + size)) for a in range(0, self.n_frames, size)]

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        for a, b in self._ranges(READ_FRAMES):
            yield (
                read_virtual(self.store, self.stride, a, b),
                frame_weights(self.store, self.stride, self.clip_weight, a, b),
            )

    def gather(self, idx: np.ndarray) -> np.ndarray:
        """Virtual rows ``idx`` (sorted) as float64, shape (len(idx), n_dims)."""
        rows = np.asarray(idx, dtype=np.int64) * self.stride
        return self.store.read_index(rows).astype(np.float64)

    def stats(
        self, params: Params, *, shift: np.ndarray, executor: Any = None,
        chunk_size: int | None = None,
    ) -> Stats:  # fmt: skip
        """One E-step about ``shift`` (n_dims,): canonical blocks mapped, summed in a fixed tree.

        ``executor`` (a LocalExecutor or DaskExecutor whose ``map`` yields in task order)
        runs the blocks, default serially here; ``block_frames`` should be a multiple of
        the E-step ``chunk_size``.
        """
        store = self.store
        if hasattr(store, "reader"):  # ship the shard list, not the clip index
            store = store.reader(clip_ranges=self.clip_weight is not None)
        task = functools.partial(
            block_stats, store, self.stride, self.clip_weight, params,
            np.asarray(shift, dtype=np.float64), chunk_size,
        )  # fmt: skip
        blocks = self._ranges(self.block_frames)
        if executor is None:
            return tree_sum(task(a, b) for a, b in blocks)
        if hasattr(executor, "map_reduce"):  # Dask: the same tree, summed on the workers
            return executor.map_reduce(task, blocks, operator.add, star=True)
        return tree_sum(executor.map(task, blocks, isolated=True, star=True))
