"""Fused row-wise log-sum-exp kernels (numba), with plain-NumPy twins.

The E-step spends its time in two GEMMs and in the row-wise
``max -> exp -> sum -> log -> normalise`` pass over the (chunk, K) block of joint
log-likelihoods: five full-size NumPy sweeps, or one in-place sweep per row here.
The kernels are serial (chunks run on threads, each call releasing the GIL). In
float32 the exponential is a branch-free polynomial that LLVM vectorises (libm's
``expf`` is scalar); in float64 it is libm's ``exp``, skipped for negligible terms.
The NumPy twins, built on :func:`row_max_and_sum` (the one NumPy log-sum-exp), are
the reference and the fallback (``AUDIOGMM_NO_NUMBA=1``). Small problems never
touch numba (:func:`use_numba`): importing it and loading the cached kernels costs
~0.7 s per process; ``AUDIOGMM_NUMBA=0`` / ``1`` overrides the size rule.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from typing import Any

import numpy as np

from ..exceptions import ParameterError

__all__ = [
    "HAVE_NUMBA",
    "NUMBA_MIN_WORK",
    "numba_cache_dir",
    "resp_inplace",
    "row_max_and_sum",
    "segment_lse",
    "use_numba",
]


# numba is imported, and the kernels compiled (or loaded from numba's cache), on the
# first call, not at import: `audiogmm --help` and code that never runs an E-step
# do not pay for it
HAVE_NUMBA = not os.environ.get("AUDIOGMM_NO_NUMBA") and bool(importlib.util.find_spec("numba"))

#: E-step passes over fewer (frames x columns) elements than this use NumPy. The fused
#: kernel saves ~5 ns per element (2-core x86_64, float32): ~10 ms on a pass of 2**21,
#: against ~0.7 s to import numba and load the cached kernels once per process, so
#: only fits that repeat such passes over many iterations (and classes) gain.
NUMBA_MIN_WORK = 1 << 21

#: A single pass (scoring) must save that load by itself: 2**27 elements (~1.3e8).
_SINGLE_PASS_FACTOR = 64


def use_numba(work: int, fast: bool | None = None, *, single_pass: bool = False) -> bool:
    """Whether a pass over ``work`` = n_frames x n_columns elements runs the numba kernel.

    ``fast=None``: when ``work >= NUMBA_MIN_WORK`` (64 times that for a ``single_pass``,
    i.e. scoring, not an E-step repeated by EM); True: whenever numba is available;
    False: never. ``AUDIOGMM_NUMBA=0`` vetoes numba, ``1`` overrides ``fast=None``.
    """
    if fast is False or not HAVE_NUMBA:
        return False
    env = os.environ.get("AUDIOGMM_NUMBA", "").strip().lower()
    if env not in ("", "auto", "0", "1"):
        raise ParameterError(f"AUDIOGMM_NUMBA must be 0, 1 or auto; got {env!r}")
    if env == "0":
        return False
    need = NUMBA_MIN_WORK * (_SINGLE_PASS_FACTOR if single_pass else 1)
    return bool(fast) or env == "1" or work >= need


def numba_cache_dir(package_dir: str, environ: dict | None = None) -> str | None:
    """Where numba should cache our kernels, or None to leave numba's choice alone.

    When the package folder is read-only (a system-wide install) and ``NUMBA_CACHE_DIR``
    is unset: ``$XDG_CACHE_HOME/audiogmm/numba`` (default ``~/.cache/audiogmm/numba``),
    so the compiled kernels survive the process in any writable home.
    """
    env = os.environ if environ is None else environ
    if env.get("NUMBA_CACHE_DIR") or os.access(package_dir, os.W_OK):
        return None
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "audiogmm", "numba")


#: Responsibilities below this are set to 0 by both kernels (float32 denormals start at
#: 1.2e-38 and make the statistics GEMM many times slower; 1e-30 changes no sum >= 1e-22).
NEGLIGIBLE_RESPONSIBILITY = 1e-30


#: Up to this many components, a row maximum is taken column by column: numpy's reduction
#: along a short contiguous last axis runs a slow inner loop per row (3-15x slower at
#: K = 4-16 over 2,000 rows); from about 32 columns on, the two are equal.
_COLUMN_MAX_LIMIT = 16


def _max_keepdims(L: np.ndarray, axis: int) -> np.ndarray:
    """``L.max(axis=axis, keepdims=True)``, bit for bit, NaN included (a max is exact)."""
    last = axis in (-1, L.ndim - 1)
    k = L.shape[-1]
    if not last or k > _COLUMN_MAX_LIMIT or k == 0:
        return L.max(axis=axis, keepdims=True)
    m = L[..., :1].copy()
    mv = m[..., 0]
    for j in range(1, k):
        np.maximum(mv, L[..., j], out=mv)
    return m


def row_max_and_sum(
    L: np.ndarray, axis: int = -1, *, inplace: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``m = max(L)`` and ``s = sum(exp(L - m))`` along ``axis`` (kept as size-1 axes).

    ``logsumexp(L) = m + log(s)``; callers that normalise compute ``(L - m) - log(s)``.
    With ``inplace=True``, ``L`` is overwritten by ``exp(L - m)``.
    """
    m = _max_keepdims(L, axis)
    E = L if inplace else np.empty_like(L)
    # exp of very negative differences underflows to 0 by design
    with np.errstate(under="ignore"):
        np.subtract(L, m, out=E)
        np.exp(E, out=E)
    return m, E.sum(axis=axis, keepdims=True)


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
    m, s = row_max_and_sum(L.reshape(n, total // seg, seg), axis=2)
    out[:] = (m + np.log(s))[:, :, 0]


@functools.lru_cache(maxsize=1)
def _compiled() -> Any:
    """Import numba and define the kernels (once per process)."""
    import numba
    import numba.extending

    cache_dir = numba_cache_dir(os.path.dirname(os.path.abspath(__file__)))
    if cache_dir is not None and not numba.config.CACHE_DIR:
        try:
            os.makedirs(cache_dir, exist_ok=True)
            numba.config.CACHE_DIR = cache_dir  # read when each function's cache is set up
        except OSError:  # no writable home either: numba's own fallbacks decide
            pass

    _LOG2E = np.float32(1.4426950408889634)
    _LN2_HI = np.float32(0.693359375)  # Cody-Waite split of ln 2
    _LN2_LO = np.float32(-2.12194440e-4)
    _F32_MIN_EXP = np.float32(-87.0)  # exp(-87) ~ 1.6e-38 is still a normal float32
    _F32_NEGLIGIBLE = np.float32(NEGLIGIBLE_RESPONSIBILITY)
    _F64_NEGLIGIBLE = -37.0  # exp(-37) < eps64 / 2: adding it to a sum >= 1 changes nothing

    @numba.njit(fastmath=True, cache=True, nogil=True, error_model="numpy")
    def _exp_shifted32(row, m, ib):  # pragma: no cover - compiled
        """row[j] <- exp(row[j] - m) for float32, branch-free so LLVM vectorises it.

        exp(d) = 2**t * exp(r), t = round(d / ln 2), |r| <= ln2 / 2; exp(r) by its
        degree-6 Taylor polynomial (relative error < 2e-7, float32's own rounding),
        2**t built directly in the exponent bits through the int32 view ``ib``.
        """
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
            # flush what cannot matter (s >= 1) to zero: left at ~1e-38, it turns into
            # denormals after scaling and slows the GEMM that follows many-fold
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
            # s >= 1 for a finite row; a row of -inf or NaN (a broken model) gives NaN,
            # never a ZeroDivisionError
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


def resp_inplace(
    L: np.ndarray, w: np.ndarray | None, lse: np.ndarray, *, fast: bool = True
) -> None:
    """Turn joint log-likelihoods into (weighted) responsibilities, in place.

    ``L`` (n_frames, K), C-contiguous, holds ``log w_k + log N(x_t | k)`` on entry and
    ``w_t * gamma_tk`` on exit (``w`` (n_frames,) or None, ``L``'s dtype); ``lse``
    (n_frames,) receives ``log p(x_t)`` in nats. ``fast``: the numba kernel if available.
    """
    if fast and HAVE_NUMBA:
        _compiled()[0](L, w if w is not None else lse, w is not None, lse)
    else:
        _resp_inplace_numpy(L, w, lse)


def segment_lse(L: np.ndarray, seg: int, out: np.ndarray, *, fast: bool = True) -> None:
    """Row-wise log-sum-exp over consecutive column blocks of width ``seg``.

    ``L`` (n_frames, n_blocks * seg): joint log-likelihoods of stacked mixtures of
    ``seg`` components, used as scratch; ``out`` (n_frames, n_blocks) receives
    ``log p(x_t | mixture b)`` in nats. ``fast``: the numba kernel if available.
    """
    if fast and HAVE_NUMBA:
        _compiled()[1](L, seg, out)
    else:
        _segment_lse_numpy(L, seg, out)
