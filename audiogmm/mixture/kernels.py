"""Fused row-wise log-sum-exp kernels (numba), with plain-NumPy twins.

The E-step's ``max -> exp -> sum -> log -> normalise`` pass over a (chunk, K) block is one
in-place sweep per row here (five full-size sweeps in NumPy); serial, releasing the GIL.
float32 uses a branch-free polynomial ``exp`` that LLVM vectorises. The NumPy twins, on
:func:`row_max_and_sum` (the one NumPy log-sum-exp), are the reference and the fallback
(``AUDIOGMM_NO_NUMBA=1``); small problems never load numba (:func:`use_numba`).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
from typing import Any

import numpy as np

from ..exceptions import ParameterError

__all__ = ["HAVE_NUMBA", "NUMBA_MIN_WORK", "numba_cache_dir", "resp_inplace", "row_max_and_sum",
           "segment_lse", "use_numba"]  # fmt: skip

# numba is imported (and the kernels compiled or loaded) on the first call, not at import
HAVE_NUMBA = not os.environ.get("AUDIOGMM_NO_NUMBA") and bool(importlib.util.find_spec("numba"))

#: E-step passes over fewer (frames x columns) elements use NumPy: numba saves ~5 ns per
#: element (~10 ms here) against ~0.7 s to load once, repaid only over many iterations.
NUMBA_MIN_WORK = 1 << 21
#: A single pass (scoring) must repay that load by itself.
_SINGLE_PASS_FACTOR = 64


def use_numba(work: int, fast: bool | None = None, *, single_pass: bool = False) -> bool:
    """Whether a pass over ``work`` = n_frames x n_columns elements runs the numba kernel:
    ``fast=None`` from ``NUMBA_MIN_WORK`` on (x64 for a ``single_pass``), True whenever
    available, False never. ``AUDIOGMM_NUMBA=0`` vetoes numba, ``1`` overrides None."""
    if fast is False or not HAVE_NUMBA:
        return False
    env = os.environ.get("AUDIOGMM_NUMBA", "").strip().lower()
    if env not in ("", "auto", "0", "1"):
        raise ParameterError(f"AUDIOGMM_NUMBA must be 0, 1 or auto; got {env!r}")
    need = NUMBA_MIN_WORK * (_SINGLE_PASS_FACTOR if single_pass else 1)
    return env != "0" and (bool(fast) or env == "1" or work >= need)


def numba_cache_dir(package_dir: str, environ: dict | None = None) -> str | None:
    """``$XDG_CACHE_HOME/audiogmm/numba`` (default under ``~/.cache``) when the package
    folder is read-only and ``NUMBA_CACHE_DIR`` unset; else None (numba's own choice)."""
    env = os.environ if environ is None else environ
    if env.get("NUMBA_CACHE_DIR") or os.access(package_dir, os.W_OK):
        return None
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "audiogmm", "numba")


#: Responsibilities below this become 0 in both kernels: float32 denormals (< 1.2e-38) slow
#: the statistics GEMM many-fold, and 1e-30 changes no sum >= 1e-22.
NEGLIGIBLE_RESPONSIBILITY = 1e-30
#: Up to this many columns a row maximum is taken column by column (numpy's reduction
#: along a short last axis is 3-15x slower at K = 4-16).
_COLUMN_MAX_LIMIT = 16


def _max_keepdims(L: np.ndarray) -> np.ndarray:
    """``L.max(-1, keepdims=True)``, bit for bit, NaN included (a max is exact)."""
    if not 0 < L.shape[-1] <= _COLUMN_MAX_LIMIT:
        return L.max(-1, keepdims=True)
    m = L[..., :1].copy()
    mv = m[..., 0]
    for j in range(1, L.shape[-1]):
        np.maximum(mv, L[..., j], out=mv)
    return m


def row_max_and_sum(L: np.ndarray, *, inplace: bool = False) -> tuple:
    """``m = max(L)`` and ``s = sum(exp(L - m))`` along the last axis (kept), so that
    ``logsumexp(L) = m + log(s)``; ``inplace=True`` overwrites ``L`` by ``exp(L - m)``."""
    m = _max_keepdims(L)
    E = L if inplace else np.empty_like(L)
    # exp of very negative differences underflows to 0 by design
    with np.errstate(under="ignore"):
        np.subtract(L, m, out=E)
        np.exp(E, out=E)
    return m, E.sum(-1, keepdims=True)


def _resp_inplace_numpy(L: np.ndarray, w: np.ndarray | None, lse: np.ndarray) -> None:
    m, s = row_max_and_sum(L, inplace=True)
    L /= s
    # negligible responsibilities to exact zeros: as denormals they slow the GEMM after
    np.copyto(L, 0.0, where=L < NEGLIGIBLE_RESPONSIBILITY)
    lse[:] = (m + np.log(s))[:, 0]
    if w is not None:
        L *= w[:, None]


def _segment_lse_numpy(L: np.ndarray, seg: int, out: np.ndarray) -> None:
    n, total = L.shape
    m, s = row_max_and_sum(L.reshape(n, total // seg, seg))
    out[:] = (m + np.log(s))[:, :, 0]


@functools.lru_cache(maxsize=1)
def _compiled() -> Any:
    """Import numba and define the kernels (once per process)."""
    import numba
    import numba.extending
    cache_dir = numba_cache_dir(os.path.dirname(os.path.abspath(__file__)))
    if cache_dir is not None and not numba.config.CACHE_DIR:
        # no writable home either (OSError): numba's own fallbacks decide
        with contextlib.suppress(OSError):
            os.makedirs(cache_dir, exist_ok=True)
            numba.config.CACHE_DIR = cache_dir  # read when each function's cache is set up

    _LOG2E = np.float32(1.4426950408889634)
    _LN2_HI = np.float32(0.693359375)  # Cody-Waite split of ln 2
    _LN2_LO = np.float32(-2.12194440e-4)
    _F32_MIN_EXP = np.float32(-87.0)  # exp(-87) ~ 1.6e-38 is still a normal float32
    _F32_NEGLIGIBLE = np.float32(NEGLIGIBLE_RESPONSIBILITY)
    _F64_NEGLIGIBLE = -37.0  # exp(-37) < eps64 / 2: adding it to a sum >= 1 changes nothing

    @numba.njit(fastmath=True, cache=True, nogil=True, error_model="numpy")
    def _exp_shifted32(row, m, ib):  # pragma: no cover - compiled
        # exp(d) = 2**t exp(r), t = round(d / ln 2): exp(r) by its degree-6 Taylor
        # polynomial (error < 2e-7), 2**t in the exponent bits through the int32 view ib
        k = row.shape[0]
        fb = ib[:k].view(np.float32)
        for j in range(k):
            d = max(row[j] - m, _F32_MIN_EXP)
            t = np.floor(d * _LOG2E + np.float32(0.5))
            r = d - t * _LN2_HI - t * _LN2_LO
            p = r * (np.float32(1 / 120) + r * np.float32(1 / 720))
            p = r * (np.float32(1 / 6) + r * (np.float32(1 / 24) + p))
            row[j] = np.float32(1.0) + r * (np.float32(1.0) + r * (np.float32(0.5) + p))
            ib[j] = (np.int32(t) + np.int32(127)) << 23
        s = np.float32(0.0)
        for j in range(k):
            e = row[j] * fb[j]
            e = e if e > _F32_NEGLIGIBLE else np.float32(0.0)
            row[j] = e
            s += e
        return s

    @numba.njit(fastmath=False, cache=True, nogil=True)
    def _exp_shifted64(row, m, ib):  # pragma: no cover - compiled
        s = 0.0
        for j in range(row.shape[0]):
            d = row[j] - m
            e = np.exp(d) if d > _F64_NEGLIGIBLE else 0.0
            row[j] = e
            s += e
        return s

    def _exp_shifted(row, m, ib):  # pragma: no cover - typed stub, see overload below
        raise NotImplementedError

    @numba.extending.overload(_exp_shifted)
    def _exp_shifted_overload(row, m, ib):  # pragma: no cover - compiled
        # pick the float32 or float64 exponential at compile time, from the array type
        if row.dtype == numba.float32:
            return lambda row, m, ib: _exp_shifted32(row, m, ib)
        return lambda row, m, ib: _exp_shifted64(row, m, ib)

    @numba.njit(cache=True, nogil=True)
    def _row_max(row):  # pragma: no cover - compiled
        m = row[0]
        for j in range(1, row.shape[0]):
            if row[j] > m:
                m = row[j]
        return m

    @numba.njit(cache=True, nogil=True)
    def _resp_inplace_nb(L, w, use_w, lse):  # pragma: no cover - compiled
        n, k = L.shape
        ib = np.empty(k, dtype=np.int32)
        for i in range(n):
            row = L[i]
            m = _row_max(row)
            s = _exp_shifted(row, m, ib)
            lse[i] = m + np.log(s)
            # s >= 1 for a finite row; -inf or NaN rows give NaN, not ZeroDivisionError
            scale = 1.0 / s if s > 0.0 else np.nan
            if use_w:
                scale *= w[i]
            for j in range(k):
                row[j] *= scale

    @numba.njit(cache=True, nogil=True)
    def _segment_lse_nb(L, seg, out):  # pragma: no cover - compiled
        n, total = L.shape
        ib = np.empty(seg, dtype=np.int32)
        for i in range(n):
            for g in range(total // seg):
                row = L[i, g * seg : (g + 1) * seg]
                m = _row_max(row)
                s = _exp_shifted(row, m, ib)  # overwrites the block: scores only
                out[i, g] = m + np.log(s)
    return _resp_inplace_nb, _segment_lse_nb


def resp_inplace(L: np.ndarray, w: np.ndarray | None, lse: np.ndarray, *,
                 fast: bool = True) -> None:  # fmt: skip
    """Joint log-likelihoods ``L`` (n_frames, K), C-contiguous, into responsibilities
    ``w_t * gamma_tk`` in place (``w`` (n_frames,) or None); ``lse`` (n_frames,) gets
    ``log p(x_t)`` in nats. ``fast``: the numba kernel if available."""
    if fast and HAVE_NUMBA:
        _compiled()[0](L, w if w is not None else lse, w is not None, lse)
    else:
        _resp_inplace_numpy(L, w, lse)


def segment_lse(L: np.ndarray, seg: int, out: np.ndarray, *, fast: bool = True) -> None:
    """Row-wise log-sum-exp of ``L`` (n_frames, n_blocks * seg; scratch) over blocks of
    ``seg`` columns into ``out`` (n_frames, n_blocks), nats. ``fast`` as for resp_inplace."""
    if fast and HAVE_NUMBA:
        _compiled()[1](L, seg, out)
    else:
        _segment_lse_numpy(L, seg, out)
