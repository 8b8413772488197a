"""The E-step and scoring. A chunk's joint log-likelihoods are one GEMM (:func:`gemm_weights`)::

    [(x-c)**2, x-c, 1] @ [-P/2; (mu-c) P; b] -> (chunk, K),  P = 1/var,
    b_k = log w_k - (D log 2pi + sum log var_k + sum (mu_k-c)**2 P_k) / 2

A fused log-sum-exp (:mod:`.kernels`) makes them responsibilities in place; a second GEMM
``gamma.T @ [(x-c)**2, x-c, 1]`` gives S, F and n at once. The shift ``c`` (the mixture
mean) keeps float32 accurate under large offsets. Memory: O(chunk_size x K) per worker."""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from ..engine import LocalExecutor
from . import kernels
from .stats import Params, Stats, recentred

__all__ = ["accumulate", "accumulate_many", "auto_chunk_size", "estimate_log_prob", "gemm_weights",
           "log_likelihood", "log_softmax", "select_scores", "stacked_log_likelihood"]  # fmt: skip

_LOG_2PI = math.log(2.0 * math.pi)

# Largest (data spread / component variance) float32 handles: it loses ~eps32 * ratio nats.
_F32_MAX_CONDITION = 1e5
# Largest quadratic form sum_d (x_d - c_d)**2 / var_d per dtype: a chunk that overflows is
# redone with x - c saturated there (about -1e200 nats a frame, never -inf or NaN).
_MAX_FORM = {np.dtype(np.float32): 1e30, np.dtype(np.float64): 1e200}
# float32 also needs means within 1e18 and every precision 1/var in its normal range.
_F32_MAX_REACH = 1e18
_F32_VAR_RANGE = (1e-30, 1e30)


def gemm_weights(weights: np.ndarray, means: np.ndarray, variances: np.ndarray,
                 shift: np.ndarray, dtype) -> np.ndarray:  # fmt: skip
    """The (..., 2D+1, K) matrices, in ``dtype``, mapping ``[(x-c)**2, x-c, 1]`` to joint
    log-likelihoods of (stacked) mixtures: ``weights`` (..., K), ``means``/``variances``
    (..., K, D), ``shift`` ``c`` (..., D). A stack computes each mixture's matrix bit for bit
    as alone (elementwise, its sums along D), in a few calls instead of a few per mixture."""
    prec = 1.0 / variances
    mc = means - shift[..., None, :]
    with np.errstate(divide="ignore"):  # an empty slot (weight 0) has log-weight -inf
        logw = np.log(weights)
    b = logw - 0.5 * (means.shape[-1] * _LOG_2PI + np.log(variances).sum(-1)
                      + (mc**2 * prec).sum(-1))  # fmt: skip
    W = np.concatenate([-0.5 * np.swapaxes(prec, -1, -2), np.swapaxes(mc * prec, -1, -2),
                        b[..., None, :]], axis=-2)  # fmt: skip
    return np.ascontiguousarray(W, dtype=dtype)


def estimate_log_prob(X: np.ndarray, weights: np.ndarray, means: np.ndarray,
                      variances: np.ndarray) -> np.ndarray:  # fmt: skip
    """Joint log-likelihoods ``log w_k + log N(x_t | mu_k, var_k)`` (n_frames, K), nats, of
    ``X`` (n_frames, D): unchunked float64, centred on the mixture mean."""
    shift = weights @ means
    xc = np.asarray(X, dtype=np.float64) - shift
    W = gemm_weights(weights, means, variances, shift, np.float64)
    D = xc.shape[1]
    return xc**2 @ W[:D] + xc @ W[D : 2 * D] + W[2 * D]


def log_softmax(S: np.ndarray) -> np.ndarray:
    """Row-wise ``S - logsumexp(S)`` of log scores (n_rows, n_cols): float64 log posteriors."""
    S = np.asarray(S, dtype=np.float64)
    if not np.isfinite(S).all():
        # +inf entries share the row's mass; a row of -inf (or NaN) becomes uniform
        top = S.max(axis=-1, keepdims=True)
        S = np.where(top == np.inf, np.where(S == np.inf, 0.0, -np.inf), S)
        S = np.where(np.isnan(S).any(-1, keepdims=True) | (top == -np.inf), 0.0, S)
    m, s = kernels.row_max_and_sum(S)
    # subtract the max first: at scores of 1e17, m + log(s) would round back to m
    return (S - m) - np.log(s)


def saturation(variances: np.ndarray, dtype, *, per_mixture: bool = False) -> Any:
    """Largest |x - c| kept by :func:`fill_rows`: beyond it the form passes ``_MAX_FORM``;
    over all of ``variances`` (..., K, D), or one per mixture of a stack (...,)."""
    max_prec = np.max(1.0 / variances, axis=(-2, -1) if per_mixture else None)
    return np.sqrt(_MAX_FORM[np.dtype(dtype)] / (variances.shape[-1] * max_prec))


def float32_safe(weights: np.ndarray, means: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """Whether float32 can run the E-step of each mixture of a stack (weights (..., K),
    means/variances (..., K, D)): bool (...). Not when a (near-)collapsed component or the
    model's scale could overflow ``(x - c)**2 / var`` in float32."""
    with np.errstate(all="ignore"):  # extreme members are refused by the first tests
        # a precision (or its square term) that float32 cannot hold
        held = ((_F32_VAR_RANGE[0] <= variances.min(axis=(-2, -1)))
                & (variances.max(axis=(-2, -1)) <= _F32_VAR_RANGE[1]))  # fmt: skip
        # data at this scale: (x - c)**2 would overflow float32 (frames far beyond the model
        # are saturated in fill_rows, so the frames themselves are not scanned)
        near = np.abs(means).max(axis=(-2, -1)) <= _F32_MAX_REACH
        w = weights[..., None] / weights.sum(axis=-1, keepdims=True)[..., None]
        mu = (w * means).sum(axis=-2, keepdims=True)
        spread = (w * (variances + (means - mu) ** 2)).sum(axis=-2, keepdims=True)
        ill = (25.0 * spread / variances).max(axis=(-2, -1)) > _F32_MAX_CONDITION
    return held & near & ~ill


def compute_dtype(X: np.ndarray, weights: np.ndarray, means: np.ndarray, variances: np.ndarray):
    """float32 for float32 frames, unless :func:`float32_safe` fails; parameters may be
    stacked (..., K[, D]), float64 then if any mixture needs it."""
    if X.dtype != np.float32 or not float32_safe(weights, means, variances).all():
        return np.float64
    return np.float32


def auto_chunk_size(n_components: int) -> int:
    """Frames per chunk so that a (chunk, n_components) block stays around 1 MB."""
    return int(min(16384, max(256, (1 << 18) // max(1, n_components))))


class _Workspace(threading.local):
    """Per-thread chunk buffers, so an E-step pass allocates nothing N-sized."""

    def get(self, chunk: int, n_dims: int, n_cols: int, dtype) -> _Workspace:
        key = (chunk, n_dims, n_cols, np.dtype(dtype).char)
        if getattr(self, "key", None) != key:
            self.key = key
            self.xx = np.empty((chunk, 2 * n_dims + 1), dtype=dtype)
            self.xx[:, 2 * n_dims] = 1.0
            self.L = np.empty((chunk, n_cols), dtype=dtype)
            self.lse, self.w = np.empty(chunk, dtype=dtype), np.empty(chunk, dtype=dtype)
        return self


def fill_rows(xx: np.ndarray, Xc: np.ndarray, shift: np.ndarray, limit: float | None) -> None:
    """``[(x-c)**2, x-c, 1]`` rows of ``Xc`` into ``xx`` (last column already 1), ``x-c``
    saturated to +-``limit`` when given."""
    D = Xc.shape[1]
    xc = xx[:, D : 2 * D]
    with np.errstate(over="ignore", invalid="ignore"):  # overflow: the caller retries
        np.subtract(Xc, shift, out=xc, casting="unsafe")
        if limit is not None:  # see _MAX_FORM: finite input gives finite scores
            np.clip(xc, -limit, limit, out=xc)
        np.square(xc, out=xx[:, :D])


_WS = _Workspace()


def accumulate(X: np.ndarray, params: Params, *, sample_weight: np.ndarray | None = None,
               shift: np.ndarray | None = None, chunk_size: int | None = None,
               executor: LocalExecutor | None = None, fast: bool | None = None,
               out: Stats | None = None, passes: int | None = None) -> Stats:  # fmt: skip
    """E-step: float64 statistics of frames ``X`` (n_frames, n_dims) under ``params``, by
    :func:`accumulate_many` (pure, inputs trusted). ``sample_weight`` (n_frames,); ``shift``
    (n_dims,) the moments' centre (default ``out``'s, else the mixture mean); ``out``:
    statistics to add into, returned; ``fast``, ``passes`` as there."""
    if shift is None:
        shift = out.shift if out is not None else params.weights @ params.means
    n, F, S, ll, nf = accumulate_many(
        [X], params.weights[None], params.means[None], params.variances[None], [0],
        shifts=np.asarray(shift, dtype=np.float64)[None], sample_weights=[sample_weight],
        chunk_size=chunk_size, executor=executor, fast=fast, passes=passes,
    )  # fmt: skip
    st = Stats(n[0], F[0], S[0], float(ll[0]), float(nf[0]), np.array(shift, dtype=np.float64))
    return st if out is None else out + st


def accumulate_many(Xs: list[np.ndarray], weights: np.ndarray, means: np.ndarray,
                    variances: np.ndarray, members: list[int], *, shifts: np.ndarray,
                    sample_weights: list[np.ndarray | None] | None = None,
                    chunk_size: int | None = None, executor: LocalExecutor | None = None,
                    fast: bool | None = None,
                    passes: int | None = None) -> tuple[np.ndarray, ...]:  # fmt: skip
    """THE E-step of mixtures ``members`` of a stack, each on its own frames ``Xs[c]``
    (n_frames_c, n_dims), weighted by ``sample_weights[c]``, in one executor map; per member
    the arithmetic of a run of its own, whatever the executor. ``weights`` (n_members, K),
    ``means``/``variances`` (n_members, K, n_dims); ``shifts`` (R, n_dims) centre the R
    ``members``; ``fast``: numba for large calls (None, :func:`.kernels.use_numba`, which
    ``passes``, the E-steps of the run this one belongs to, informs), always or never.
    Returns n (R, K), F and S (R, K, n_dims), loglik and n_frames (R,)."""
    R, K, D = len(members), means.shape[1], means.shape[2]
    sws = sample_weights or [None] * R
    cap = chunk_size or auto_chunk_size(K)
    # the parameters' work once per distinct mixture, for all at once: one row when one
    # mixture is broadcast over the stack (many frame sets, as clip_stats), else each member's
    same = all(a.strides[0] == 0 for a in (weights, means, variances))
    uniq = members[:1] if same else list(members)
    row = [0] * R if same else list(range(R))  # member j's row of uniq
    pw, pm, pv = weights[uniq], means[uniq], variances[uniq]
    safe = float32_safe(pw, pm, pv)
    dtypes = [np.float32 if Xs[c].dtype == np.float32 and safe[row[j]] else np.float64
              for j, c in enumerate(members)]  # fmt: skip
    # centre on a shift exact in the compute dtype, so that x - c loses nothing
    shift_c = [sh.astype(dt) for sh, dt in zip(shifts, dtypes)]
    eff = np.array([sc.astype(np.float64) for sc in shift_c]).reshape(R, D)
    n_of = [Xs[c].shape[0] for c in members]
    keys = [(row[j], dtypes[j], eff[j].tobytes()) for j in range(R)]
    first = {k: j for j, k in reversed(list(enumerate(keys)))}  # each distinct W's first member
    at = [row[j] for j in first.values()]
    W64 = gemm_weights(pw[at], pm[at], pv[at], eff[list(first.values())], np.float64)
    cast = {k: np.ascontiguousarray(w, dtype=k[1]) for k, w in zip(first, W64)}
    W = [cast[k] for k in keys]
    items: dict = {}
    for j, dt in enumerate(dtypes):
        n, chunk = n_of[j], min(cap, max(1, n_of[j]))
        items.setdefault(dt, []).extend((j, s, min(n, s + chunk)) for s in range(0, n, chunk))
    ex = executor or LocalExecutor(1)
    # tasks of at most a chunk, and at least two per worker when the data allow
    # (one member: one chunk per task whatever the workers, as any executor can run it)
    workers = ex.n_workers if R > 1 else 1
    rows = min(cap, max(1, -(-sum(n_of) // (2 * workers))))
    tasks = [(dt, t) for dt, its in items.items() for t in _pack(its, rows)]
    use_fast = [kernels.use_numba(n_of[j] * K, fast, passes=passes) for j in range(R)]
    lims = {dt: saturation(pv, dt, per_mixture=True) for dt in set(dtypes)}
    limit = [float(lims[dt][row[j]]) for j, dt in enumerate(dtypes)]

    def one(dt, task: list[tuple[int, int, int]]) -> list[tuple[int, np.ndarray, float]]:
        ws = _WS.get(cap, D, K, dt)
        rows, off = [], 0  # the task's chunks one after another in the workspace
        for j, start, stop in task:
            rows.append((j, start, stop, slice(off, off + stop - start)))
            off += stop - start
        # responsibilities are row by row: one call for all the task's chunks (most of a small
        # member's time was the calls), unless they differ in kernel or weighting
        kinds = {(use_fast[j], sws[j] is None) for j, _, _, _ in rows}
        batched, gs = len(kinds) == 1, []
        # the first pass may overflow (far frames): such a chunk is redone below, saturated
        with np.errstate(over="ignore", invalid="ignore"):
            for j, start, stop, r in rows:
                if sws[j] is not None:  # in the compute dtype, as the kernel scales by it
                    ws.w[r] = sws[j][start:stop]
                fill_rows(ws.xx[r], Xs[members[j]][start:stop], shift_c[j], None)
                np.matmul(ws.xx[r], W[j], out=ws.L[r])
                if not batched:
                    kernels.resp_inplace(ws.L[r], None if sws[j] is None else ws.w[r],
                                         ws.lse[r], fast=use_fast[j])  # fmt: skip
            if batched:
                fast, unweighted = next(iter(kinds))
                kernels.resp_inplace(ws.L[:off], None if unweighted else ws.w[:off],
                                     ws.lse[:off], fast=fast)  # fmt: skip
            for _, _, _, r in rows:
                gs.append(ws.L[r].T @ ws.xx[r])  # (K, 2D + 1): S, F and n at once
        res = []
        for (j, start, stop, r), g in zip(rows, gs):
            w = None if sws[j] is None else ws.w[r]
            xx, L, lse = ws.xx[r], ws.L[r], ws.lse[r]
            if not (np.isfinite(lse).all() and np.isfinite(g).all()):  # overflowed (rare)
                fill_rows(xx, Xs[members[j]][start:stop], shift_c[j], limit[j])
                np.matmul(xx, W[j], out=L)
                kernels.resp_inplace(L, w, lse, fast=use_fast[j])
                g = L.T @ xx
            lj = lse.sum(dtype=np.float64) if w is None else np.dot(lse.astype(np.float64), w)
            res.append((j, g, float(lj)))
        return res
    G = np.zeros((R, K, 2 * D + 1))
    ll = np.zeros(R)
    for res in ex.map(one, tasks, star=True):
        for j, g, lj in res:
            G[j] += g  # each member's chunks in chunk order: the same for any executor
            ll[j] += lj
    nf = np.array([float(n) if sw is None else float(np.sum(sw)) for n, sw in zip(n_of, sws)])
    n = G[:, :, 2 * D].copy()
    # from the compute-dtype shift to the float64 one
    F, S = recentred(n, G[:, :, D : 2 * D], G[:, :, :D], (eff - shifts)[:, None, :])
    return n, F, S, ll, nf


def _pack(items: list[tuple[int, int, int]], rows: int) -> list[list[tuple[int, int, int]]]:
    """Consecutive chunks grouped into tasks of at most ``rows`` frames (or one chunk)."""
    tasks: list[list[tuple[int, int, int]]] = []
    used = rows
    for it in items:
        if used + it[2] - it[1] > rows:
            tasks.append([])
            used = 0
        tasks[-1].append(it)
        used += it[2] - it[1]
    return tasks


def stacked_log_likelihood(X: np.ndarray, weights: np.ndarray, means: np.ndarray,
                           variances: np.ndarray, *, chunk_size: int | None = None,
                           executor: LocalExecutor | None = None,
                           fast: bool | None = None) -> np.ndarray:  # fmt: skip
    """Per-frame log-likelihood (n_frames, M), nats, of ``X`` under M stacked mixtures
    (``weights`` (M, K), ``means``/``variances`` (M, K, D)) in one batched pass; other
    arguments as for :func:`accumulate_many` (numba only for very large calls)."""
    M, K, D = means.shape
    dtype = compute_dtype(X, weights, means, variances)
    w = weights.reshape(M * K) / M  # any common shift works; use the pooled mean
    shift_c = (w @ means.reshape(M * K, D)).astype(dtype)
    c64 = shift_c.astype(np.float64)
    # (2D + 1, M * K): member i's columns i * K .. i * K + K - 1
    W = np.ascontiguousarray(gemm_weights(weights, means, variances, c64, dtype).transpose(
        1, 0, 2).reshape(2 * D + 1, M * K))  # fmt: skip
    chunk = min(chunk_size or auto_chunk_size(M * K), max(1, X.shape[0]))
    out = np.empty((X.shape[0], M), dtype=np.float64)
    limit = saturation(variances, dtype)
    fast = kernels.use_numba(X.shape[0] * M * K, fast, single_pass=True)

    def one(start: int, stop: int) -> None:
        m, ws = stop - start, _WS.get(chunk, D, M * K, dtype)
        for lim in (None, limit):  # saturate only a chunk that overflowed (rare)
            fill_rows(ws.xx[:m], X[start:stop], shift_c, lim)
            np.matmul(ws.xx[:m], W, out=ws.L[:m])
            # in the compute dtype, stored as float64
            kernels.segment_lse(ws.L[:m], K, out[start:stop], fast=fast)
            if np.isfinite(out[start:stop]).all():
                break
    _each_chunk(executor, one, X.shape[0], chunk)
    return out


def _each_chunk(executor: LocalExecutor | None, one, n: int, chunk: int) -> None:
    """``one(start, stop)`` on every chunk of ``range(n)`` (default serially)."""
    ranges = [(s, min(n, s + chunk)) for s in range(0, n, chunk)]
    list((executor or LocalExecutor(1)).map(one, ranges, star=True))


def log_likelihood(X: np.ndarray, params: Params, *, chunk_size: int | None = None,
                   executor: LocalExecutor | None = None,
                   fast: bool | None = None) -> np.ndarray:  # fmt: skip
    """Per-frame log-likelihood ``log p(x_t)`` in nats, shape (n_frames,), float64."""
    return stacked_log_likelihood(
        X, params.weights[None], params.means[None], params.variances[None],
        chunk_size=chunk_size, executor=executor, fast=fast,
    )[:, 0]  # fmt: skip


def select_scores(X: np.ndarray, ubm: Params, weights: np.ndarray, means: np.ndarray,
                  variances: np.ndarray, *, top_c: int, chunk_size: int | None = None,
                  executor: LocalExecutor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-C scoring (Kaldi ``gselect``): per-frame log-likelihoods (n_frames, M) of M models
    MAP-adapted from ``ubm`` (K components; ``weights`` (M, K), ``means``/``variances``
    (M, K, n_dims)) and of the UBM (n_frames,), float64 nats, each summed over the UBM's
    ``top_c`` (in [1, K]) best components of each frame of ``X`` (n_frames, n_dims)."""
    M, K, D = means.shape
    C = int(min(max(1, top_c), K))
    dtype = compute_dtype(X, ubm.weights, ubm.means, ubm.variances)
    shift = (ubm.weights @ ubm.means).astype(dtype).astype(np.float64)
    Wu = gemm_weights(ubm.weights, ubm.means, ubm.variances, shift, dtype)
    # per component k, the (2D + 1, M) GEMM weights of every model's joint log-likelihood
    Wm = gemm_weights(weights, means, variances, shift, np.float64)  # (M, 2D + 1, K)
    Wm = np.ascontiguousarray(Wm.transpose(2, 1, 0), dtype=dtype)  # (K, 2D + 1, M)
    chunk = chunk_size or max(256, min(16384, (1 << 21) // max(1, C * M)))
    n = X.shape[0]
    out_m = np.empty((n, M))
    out_u = np.empty(n)

    def one(start: int, stop: int) -> None:
        m = stop - start
        xx = np.empty((m, 2 * D + 1), dtype=dtype)
        xx[:, 2 * D] = 1.0
        fill_rows(xx, X[start:stop], shift.astype(dtype), saturation(ubm.variances, dtype))
        L = xx @ Wu  # (m, K): the UBM, every component
        idx = (np.argpartition(-L, C - 1, axis=1)[:, :C] if C < K
               else np.broadcast_to(np.arange(K), L.shape))  # fmt: skip
        sel = np.ascontiguousarray(np.take_along_axis(L, idx, 1), dtype=np.float64)
        kernels.segment_lse(sel, C, out_u[start:stop, None], fast=False)
        # group the (frame, selected component) pairs by component: one small GEMM each
        flat = idx.ravel()
        order = np.argsort(flat, kind="stable")
        counts = np.bincount(flat, minlength=K)
        rows = xx[order // C]
        R = np.empty((m * C, M), dtype=dtype)
        pos = 0
        for k in np.flatnonzero(counts):
            end = pos + counts[k]
            np.matmul(rows[pos:end], Wm[k], out=R[pos:end])
            pos = end
        ll = np.empty_like(R)
        ll[order] = R
        # in the compute dtype, as the full path's fused log-sum-exp (the one kernel)
        blocks = np.ascontiguousarray(ll.reshape(m, C, M).transpose(0, 2, 1)).reshape(m, M * C)
        kernels.segment_lse(blocks, C, out_m[start:stop], fast=False)
    _each_chunk(executor, one, n, chunk)
    return out_m, out_u
