"""The numba kernels behind :mod:`.kernels` (imported by it on first use, never directly).

They are module-level functions calling each other by global name: numba's on-disk cache
keys a function by its bytecode and its closure variables, and a compiled function held in
a closure pickles differently in every process, so closures recompiled on every run (about
1.3 s of CPU per command)."""

from __future__ import annotations

import numba
import numba.extending
import numpy as np

from .kernels import NEGLIGIBLE_RESPONSIBILITY

__all__ = ["resp_inplace_nb", "segment_lse_nb"]

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
def resp_inplace_nb(L, w, use_w, lse):  # pragma: no cover - compiled
    """:func:`.kernels.resp_inplace`'s kernel; ``w`` is ignored unless ``use_w``."""
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
def segment_lse_nb(L, seg, out):  # pragma: no cover - compiled
    """:func:`.kernels.segment_lse`'s kernel."""
    n, total = L.shape
    ib = np.empty(seg, dtype=np.int32)
    for i in range(n):
        for g in range(total // seg):
            row = L[i, g * seg : (g + 1) * seg]
            m = _row_max(row)
            s = _exp_shifted(row, m, ib)  # overwrites the block: scores only
            out[i, g] = m + np.log(s)
