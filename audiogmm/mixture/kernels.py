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

__all__ = ["HAVE_NUMBA", "NUMBA_MIN_RUN_WORK", "NUMBA_MIN_WORK", "numba_cache_dir", "resp_inplace",
           "row_max_and_sum", "segment_lse", "use_numba"]  # fmt: skip

# numba is imported (and the kernels compiled or loaded) on the first call, not at import
HAVE_NUMBA = not os.environ.get("AUDIOGMM_NO_NUMBA") and bool(importlib.util.find_spec("numba"))

#: E-step passes over fewer (frames x columns) elements use NumPy: numba saves ~5 ns per
#: element (~10 ms here) against ~0.7 s to load once, repaid only over many iterations.
NUMBA_MIN_WORK = 1 << 21
#: ... and so do EM runs whose passes add up to fewer elements than this (when the caller
#: knows the run's length): warm, the kernel saves ~1 ns (a UBM of 256 on dev speech) to
#: 4.7 ns (bench_em's K=256 fit) of wall time per element on two cores, and loading numba in
#: a command costs ~0.4 s: break-even at 0.9-4e8. A UBM of 256 on the dev hard speakers
#: (22,830 frames, 11 passes a round: 6.4e7) was 0.2-0.6 s faster without.
NUMBA_MIN_RUN_WORK = 1 << 27
#: A single pass (scoring) must repay that load by itself: it saves ~4.4 ns per element on
#: one core, ~2.2 ns of wall time on two, so past ~2^28 elements; map's scoring of the dev
#: hard speakers (1.4e8) took 1.65 s with numba and 1.0 s without.
_SINGLE_PASS_FACTOR = 256


def use_numba(work: int, fast: bool | None = None, *, single_pass: bool = False,
              passes: int | None = None) -> bool:  # fmt: skip
    """Whether a pass over ``work`` = n_frames x n_columns elements runs the numba kernel:
    ``fast=None`` from ``NUMBA_MIN_WORK`` on (x256 for a ``single_pass``) and, when the pass
    is one of a run of ``passes`` (None: unknown), from ``NUMBA_MIN_RUN_WORK`` elements over
    the run; True whenever available, False never. ``AUDIOGMM_NUMBA=0`` vetoes numba, ``1``
    overrides None."""
    if fast is False or not HAVE_NUMBA:
        return False
    env = os.environ.get("AUDIOGMM_NUMBA", "").strip().lower()
    if env not in ("", "auto", "0", "1"):
        raise ParameterError(f"AUDIOGMM_NUMBA must be 0, 1 or auto; got {env!r}")
    need = NUMBA_MIN_WORK * (_SINGLE_PASS_FACTOR if single_pass else 1)
    big = work >= need and (passes is None or work * passes >= NUMBA_MIN_RUN_WORK)
    return env != "0" and (bool(fast) or env == "1" or big)


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
    """Import numba and the kernel's module (once per process). numba reads its cache folder
    when a function is decorated, so it is set first."""
    import numba
    cache_dir = numba_cache_dir(os.path.dirname(os.path.abspath(__file__)))
    if cache_dir is not None and not numba.config.CACHE_DIR:
        # no writable home either (OSError): numba's own fallbacks decide
        with contextlib.suppress(OSError):
            os.makedirs(cache_dir, exist_ok=True)
            numba.config.CACHE_DIR = cache_dir
    from . import compiled
    return {np.dtype(np.float32): compiled.blocks_lse32,
            np.dtype(np.float64): compiled.blocks_lse64}


#: The kernels' ``w`` when there are no weights (never read), per dtype.
_NO_WEIGHTS = {np.dtype(t): np.zeros(0, t) for t in (np.float32, np.float64)}


def _kernel_can_run(fast: bool, L: np.ndarray, w: np.ndarray | None, out: np.ndarray) -> bool:
    # weights in L's dtype; any float output (scores are kept as float64), C-contiguous, so
    # that the 2-D view of a 1-D output is a view, not a copy
    return (fast and HAVE_NUMBA and L.dtype in _NO_WEIGHTS and L.flags.c_contiguous
            and (w is None or (w.dtype == L.dtype and w.flags.c_contiguous))
            and out.dtype in _NO_WEIGHTS and out.flags.c_contiguous)  # fmt: skip


def resp_inplace(L: np.ndarray, w: np.ndarray | None, lse: np.ndarray, *,
                 fast: bool = True) -> None:  # fmt: skip
    """Joint log-likelihoods ``L`` (n_frames, K), C-contiguous, into responsibilities
    ``w_t * gamma_tk`` in place (``w`` (n_frames,) or None); ``lse`` (n_frames,) gets
    ``log p(x_t)`` in nats. ``fast``: the numba kernel if available."""
    if _kernel_can_run(fast, L, w, lse):
        weights = _NO_WEIGHTS[L.dtype] if w is None else w
        _compiled()[L.dtype](L, L.shape[1], weights, w is not None, lse.reshape(-1, 1), True)
    else:
        _resp_inplace_numpy(L, w, lse)


def segment_lse(L: np.ndarray, seg: int, out: np.ndarray, *, fast: bool = True) -> None:
    """Row-wise log-sum-exp of ``L`` (n_frames, n_blocks * seg; scratch) over blocks of
    ``seg`` columns into ``out`` (n_frames, n_blocks), nats. ``fast`` as for resp_inplace."""
    if _kernel_can_run(fast, L, None, out):
        _compiled()[L.dtype](L, seg, _NO_WEIGHTS[L.dtype], False, out, False)
    else:
        _segment_lse_numpy(L, seg, out)
