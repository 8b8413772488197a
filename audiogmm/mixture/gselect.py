"""Top-C Gaussian selection (Kaldi ``gselect``, Reynolds' C = 5) and scoring on the selection.

Adapted models stay close to their UBM, so the few UBM components that dominate a
frame dominate it in every adapted model too. One full pass over the UBM picks
the ``C`` best components per frame; every model is then evaluated on those
``C`` components only (and so is the UBM, so that the log-likelihood ratio
compares like with like). With K = 256 and C = 5 the per-model work falls from
K to C components per frame.
"""

from __future__ import annotations

import numpy as np

from ..engine import LocalExecutor
from . import kernels
from .estep import compute_dtype, fill_rows, gemm_weights, saturation
from .params import Params

__all__ = ["select_scores"]

def select_scores(
    X: np.ndarray, ubm: Params, weights: np.ndarray, means: np.ndarray, variances: np.ndarray,
    *, top_c: int, chunk_size: int | None = None, executor: LocalExecutor | None = None,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Per-frame log-likelihoods of M models and of the UBM over the UBM's top-C components.

    ``X`` (n_frames, n_dims); ``ubm`` the selecting mixture of K components;
    ``weights`` (M, K), ``means``/``variances`` (M, K, n_dims): models sharing the UBM's
    component indexing (MAP-adapted from it); ``top_c`` in [1, K]; ``chunk_size``
    default a gathered block of ~4M values; the ``executor`` does not change results.
    Returns ``log sum_{k in sel_t} w_mk N(x_t | mu_mk, var_mk)`` (n_frames, M) and the
    same sum under the UBM (n_frames,), float64 nats.
    """
    M, K, D = means.shape
    C = int(min(max(1, top_c), K))
    dtype = compute_dtype(X, ubm.weights, ubm.means, ubm.variances)
    shift = (ubm.weights @ ubm.means).astype(dtype).astype(np.float64)
    Wu = gemm_weights(ubm.weights, ubm.means, ubm.variances, shift, dtype)
    # per component k, the (2D + 1, M) matrix mapping [(x-c)**2, x-c, 1] to every model's
    # joint log-likelihood of that component: the same formula as the full E-step
    Wm = np.stack(
        [gemm_weights(weights[i], means[i], variances[i], shift, np.float64) for i in range(M)],
        axis=2,
    )  # (2D + 1, K, M)
    Wm = np.ascontiguousarray(Wm.transpose(1, 0, 2), dtype=dtype)  # (K, 2D + 1, M)
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
        if C < K:
            idx = np.argpartition(-L, C - 1, axis=1)[:, :C]
        else:
            idx = np.broadcast_to(np.arange(K), L.shape)
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
        res = np.empty((m, M), dtype=dtype)
        kernels.segment_lse(blocks, C, res, fast=False)
        out_m[start:stop] = res

    ex = executor or LocalExecutor(1)
    bounds = [(s, min(n, s + chunk)) for s in range(0, n, chunk)]
    for _ in ex.map(one, bounds, star=True):
        pass
    return out_m, out_u
