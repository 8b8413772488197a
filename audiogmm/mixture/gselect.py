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
from .estep import compute_dtype, gemm_weights
from .params import Params

__all__ = ["select_scores"]

_LOG_2PI = float(np.log(2.0 * np.pi))


def select_scores(
    X: np.ndarray,
    ubm: Params,
    weights: np.ndarray,
    means: np.ndarray,
    variances: np.ndarray,
    *,
    top_c: int,
    chunk_size: int | None = None,
    executor: LocalExecutor | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame log-likelihoods of M models and of the UBM over the UBM's top-C components.

    Parameters
    ----------
    X : ndarray of shape (n_frames, n_dims), float32 or float64
    ubm : Params
        The selecting mixture, K components.
    weights : ndarray of shape (n_models, n_components)
    means, variances : ndarray of shape (n_models, n_components, n_dims)
        Models sharing the UBM's component indexing (MAP-adapted from it).
    top_c : int in [1, n_components]
        Components kept per frame.
    chunk_size : int, optional
        Frames per chunk (default: memory of the gathered block ~ 4M values).
    executor : LocalExecutor, optional
        Runs the chunks (default: serially); results do not depend on it.

    Returns
    -------
    models : ndarray of shape (n_frames, n_models), float64
        ``log sum_{k in sel_t} w_mk N(x_t | mu_mk, var_mk)`` in nats.
    ubm : ndarray of shape (n_frames,), float64
        The same sum under the UBM.
    """
    M, K, D = means.shape
    C = int(min(max(1, top_c), K))
    dtype = compute_dtype(X, ubm.weights, ubm.means, ubm.variances)
    shift = (ubm.weights @ ubm.means).astype(dtype).astype(np.float64)
    Wu = gemm_weights(ubm.weights, ubm.means, ubm.variances, shift, dtype)
    # per-model component terms about the same shift, float64: b + x.(mu P) - x^2 P / 2
    prec = 1.0 / variances
    lin = (means - shift) * prec
    bias = np.log(weights) - 0.5 * (
        D * _LOG_2PI + np.log(variances).sum(2) + ((means - shift) ** 2 * prec).sum(2)
    )
    chunk = chunk_size or max(64, min(4096, (1 << 22) // max(1, M * C * D)))
    n = X.shape[0]
    out_m = np.empty((n, M))
    out_u = np.empty(n)

    def lse(a: np.ndarray, axis: int) -> np.ndarray:
        mx = a.max(axis=axis, keepdims=True)
        return (mx + np.log(np.exp(a - mx).sum(axis=axis, keepdims=True))).squeeze(axis)

    def one(start: int, stop: int) -> None:
        xc = np.asarray(X[start:stop], dtype=dtype) - shift.astype(dtype)
        L = (xc * xc) @ Wu[:D] + xc @ Wu[D : 2 * D] + Wu[2 * D]
        if C < K:
            idx = np.argpartition(-L, C - 1, axis=1)[:, :C]
        else:
            idx = np.broadcast_to(np.arange(K), L.shape)
        out_u[start:stop] = lse(np.take_along_axis(L, idx, 1).astype(np.float64), 1)
        x = xc.astype(np.float64)
        # gathered (M, m, C, D) blocks of the selected components of every model
        ll = bias[:, idx]
        ll += np.einsum("td,mtcd->mtc", x, lin[:, idx])
        ll -= 0.5 * np.einsum("td,mtcd->mtc", x * x, prec[:, idx])
        out_m[start:stop] = lse(ll, 2).T

    ex = executor or LocalExecutor(1)
    bounds = [(s, min(n, s + chunk)) for s in range(0, n, chunk)]
    for _ in ex.map(one, bounds, star=True):
        pass
    return out_m, out_u
