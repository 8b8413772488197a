"""The numba kernels behind :mod:`.kernels` (imported by it on first use, never directly).

Self-contained functions, calling no other compiled function, at module level:

* numba keys its on-disk cache by a function's bytecode and closure cells, and a compiled
  function held in a closure pickles differently in every process, so kernels that were
  closures over other kernels compiled again in every command (about 1.3 s of CPU);
* a kernel that calls another runs, when freshly compiled, with the callee inlined and
  optimised together (under ``fastmath``, fused multiply-adds and a vectorised sum), but
  when loaded from the cache it is linked to the callee's own code: the float32
  responsibilities differed in the last bit between a process that compiled and one that
  loaded. Self-contained, the same machine code runs either way (``tests/test_coldstart.py``).
"""

from __future__ import annotations

import numba
import numpy as np

from .kernels import NEGLIGIBLE_RESPONSIBILITY

__all__ = ["blocks_lse32", "blocks_lse64"]

_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)  # Cody-Waite split of ln 2
_LN2_LO = np.float32(-2.12194440e-4)
_F32_MIN_EXP = np.float32(-87.0)  # exp(-87) ~ 1.6e-38 is still a normal float32
_F32_NEGLIGIBLE = np.float32(NEGLIGIBLE_RESPONSIBILITY)
_F64_NEGLIGIBLE = -37.0  # exp(-37) < eps64 / 2: adding it to a sum >= 1 changes nothing


@numba.njit(fastmath=True, cache=True, nogil=True, error_model="numpy")
def blocks_lse32(L, seg, w, use_w, out, normalise):  # pragma: no cover - compiled
    """For each row of ``L`` (n, n_blocks * seg) float32 and each block of ``seg`` columns:
    ``out[i, g]`` = the block's log-sum-exp; the block is overwritten by ``exp(x - max)``,
    or (``normalise``) by its softmax times ``w[i]`` (``use_w``; else ``w`` is not read)."""
    n, total = L.shape
    ib = np.empty(seg, dtype=np.int32)
    fb = ib.view(np.float32)
    for i in range(n):
        for g in range(total // seg):
            row = L[i, g * seg : (g + 1) * seg]
            m = row[0]
            for j in range(1, seg):
                if row[j] > m:
                    m = row[j]
            # exp(d) = 2**t exp(r), t = round(d / ln 2): exp(r) by its degree-6 Taylor
            # polynomial (error < 2e-7), 2**t in the exponent bits through the int32 view ib
            for j in range(seg):
                d = max(row[j] - m, _F32_MIN_EXP)
                t = np.floor(d * _LOG2E + np.float32(0.5))
                r = d - t * _LN2_HI - t * _LN2_LO
                p = r * (np.float32(1 / 120) + r * np.float32(1 / 720))
                p = r * (np.float32(1 / 6) + r * (np.float32(1 / 24) + p))
                row[j] = np.float32(1.0) + r * (np.float32(1.0) + r * (np.float32(0.5) + p))
                ib[j] = (np.int32(t) + np.int32(127)) << 23
            s = np.float32(0.0)
            for j in range(seg):
                e = row[j] * fb[j]
                e = e if e > _F32_NEGLIGIBLE else np.float32(0.0)
                row[j] = e
                s += e
            out[i, g] = m + np.log(s)
            if normalise:
                # s >= 1 for a finite row; -inf or NaN rows give NaN, not ZeroDivisionError
                scale = 1.0 / s if s > 0.0 else np.nan
                if use_w:
                    scale *= w[i]
                for j in range(seg):
                    row[j] *= scale


# float64 needs IEEE arithmetic (no fastmath): a second kernel, not a branch of the first
@numba.njit(cache=True, nogil=True)
def blocks_lse64(L, seg, w, use_w, out, normalise):  # pragma: no cover - compiled
    """:func:`blocks_lse32` for float64, with NumPy's ``exp``."""
    n, total = L.shape
    for i in range(n):
        for g in range(total // seg):
            row = L[i, g * seg : (g + 1) * seg]
            m = row[0]
            for j in range(1, seg):
                if row[j] > m:
                    m = row[j]
            s = 0.0
            for j in range(seg):
                d = row[j] - m
                e = np.exp(d) if d > _F64_NEGLIGIBLE else 0.0
                row[j] = e
                s += e
            out[i, g] = m + np.log(s)
            if normalise:
                scale = 1.0 / s if s > 0.0 else np.nan
                if use_w:
                    scale *= w[i]
                for j in range(seg):
                    row[j] *= scale
