"""Fused row-wise log-sum-exp kernels (numba), with plain-NumPy twins.

The E-step spends its time in two GEMMs and in the row-wise
``max -> exp -> sum -> log -> normalise`` pass over the (chunk, K) block of joint
log-likelihoods. NumPy does that pass as five full-size sweeps with temporaries;
the numba kernels here do it in one sweep per row, in place.
They are serial on purpose: parallelism comes from running chunks on several
threads (see ``_parallel.py``), each kernel call releasing the GIL.
The NumPy versions are the reference the tests compare against and the fallback
when numba is unavailable (``AUDIOGMM_NO_NUMBA=1`` forces it).
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["HAVE_NUMBA", "resp_inplace", "segment_lse"]

try:  # numba ships with librosa, but keep a pure-NumPy path for odd platforms
    if os.environ.get("AUDIOGMM_NO_NUMBA"):
        raise ImportError("disabled by AUDIOGMM_NO_NUMBA")
    import numba

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only without numba
    HAVE_NUMBA = False


def _resp_inplace_numpy(L: np.ndarray, w: np.ndarray | None, lse: np.ndarray) -> None:
    m = L.max(axis=1, keepdims=True)
    # exp of very negative joint log-likelihoods underflows to 0 by design
    with np.errstate(under="ignore"):
        np.subtract(L, m, out=L)
        np.exp(L, out=L)
    s = L.sum(axis=1, keepdims=True)
    L /= s
    lse[:] = (m + np.log(s))[:, 0]
    if w is not None:
        L *= w[:, None]


def _segment_lse_numpy(L: np.ndarray, seg: int, out: np.ndarray) -> None:
    n, total = L.shape
    V = L.reshape(n, total // seg, seg)
    m = V.max(axis=2)
    with np.errstate(under="ignore"):
        s = np.exp(V - m[:, :, None]).sum(axis=2)
    out[:] = m + np.log(s)


if HAVE_NUMBA:

    @numba.njit(parallel=False, fastmath=False, cache=True, nogil=True)
    def _resp_inplace_nb(L, w, use_w, lse):  # pragma: no cover - compiled
        n, k = L.shape
        for i in numba.prange(n):
            row = L[i]
            m = row[0]
            for j in range(1, k):
                if row[j] > m:
                    m = row[j]
            s = 0.0
            for j in range(k):
                e = np.exp(row[j] - m)
                row[j] = e
                s += e
            lse[i] = m + np.log(s)
            scale = 1.0 / s
            if use_w:
                scale *= w[i]
            for j in range(k):
                row[j] *= scale

    @numba.njit(parallel=False, fastmath=False, cache=True, nogil=True)
    def _segment_lse_nb(L, seg, out):  # pragma: no cover - compiled
        n, total = L.shape
        n_seg = total // seg
        for i in numba.prange(n):
            row = L[i]
            for g in range(n_seg):
                base = g * seg
                m = row[base]
                for j in range(base + 1, base + seg):
                    if row[j] > m:
                        m = row[j]
                s = 0.0
                for j in range(base, base + seg):
                    s += np.exp(row[j] - m)
                out[i, g] = m + np.log(s)


def resp_inplace(
    L: np.ndarray, w: np.ndarray | None, lse: np.ndarray, *, fast: bool = True
) -> None:
    """Turn joint log-likelihoods into (weighted) responsibilities, in place.

    Parameters
    ----------
    L : ndarray of shape (n_frames, n_components), float32 or float64, C-contiguous
        On entry ``log w_k + log N(x_t | k)``; on exit ``w_t * gamma_tk``.
    w : ndarray of shape (n_frames,) or None
        Per-frame sample weights, same dtype as ``L``.
    lse : ndarray of shape (n_frames,)
        Receives ``log p(x_t)`` (the row-wise log-sum-exp), nats.
    fast : bool
        Use the fused numba kernel when available.
    """
    if fast and HAVE_NUMBA:
        _resp_inplace_nb(L, w if w is not None else lse, w is not None, lse)
    else:
        _resp_inplace_numpy(L, w, lse)


def segment_lse(L: np.ndarray, seg: int, out: np.ndarray, *, fast: bool = True) -> None:
    """Row-wise log-sum-exp over consecutive column blocks of width ``seg``.

    Parameters
    ----------
    L : ndarray of shape (n_frames, n_blocks * seg)
        Joint log-likelihoods of several stacked mixtures, block after block.
    seg : int
        Components per mixture.
    out : ndarray of shape (n_frames, n_blocks)
        Receives ``log p(x_t | mixture b)`` in nats.
    fast : bool
        Use the fused numba kernel when available.
    """
    if fast and HAVE_NUMBA:
        _segment_lse_nb(L, seg, out)
    else:
        _segment_lse_numpy(L, seg, out)
