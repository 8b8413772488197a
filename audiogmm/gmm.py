"""Diagonal-covariance Gaussian mixtures trained by log-domain EM over mergeable statistics.

The module is split the scikit-learn way: small pure functions do the maths
(:func:`estimate_log_prob`, :func:`accumulate`, :func:`maximise`) and
:class:`DiagGMM` only orchestrates (validation, initialisation, the one EM loop,
floors, re-seeding, convergence, persistence).

The E-step of a chunk of frames is one GEMM::

    [ (x-c)**2, (x-c), 1 ]  @  [ -P/2 ; (mu-c)*P ; b ]   ->  (chunk, K) joint log-likelihoods

with ``P = 1/var`` and ``b_k = log w_k - (D log 2pi + sum log var_k + sum (mu_k-c)**2 P_k) / 2``;
then a fused row-wise log-sum-exp turns the block into responsibilities in
place, and a second GEMM ``gamma.T @ [(x-c)**2, (x-c), 1]`` yields S, F and n at
once. ``c`` is a shift near the data (the mixture's mean), which keeps float32
arithmetic accurate when features carry a large offset. Memory is
O(chunk_size x K) whatever the number of frames.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import os
import sys
import threading
import warnings
from collections.abc import Iterable, Iterator
from typing import Any, Callable, Literal, Union

import numpy as np

from . import _kernels
from ._parallel import chunk_map, single_threaded_blas
from .exceptions import ConvergenceWarning, ModelFileError, ParameterError
from .io import read_container, write_container
from .stats import Stats

__all__ = [
    "DiagGMM",
    "ConvergenceMonitor",
    "estimate_log_prob",
    "accumulate",
    "maximise",
    "log_likelihood",
    "stacked_log_likelihood",
    "auto_chunk_size",
]

logger = logging.getLogger(__name__)

_LOG_2PI = math.log(2.0 * math.pi)

ChunkSource = Union[Callable[[], Iterable[np.ndarray]], Iterable[np.ndarray]]


# ---------------------------------------------------------------------------------------
# pure maths
# ---------------------------------------------------------------------------------------


def estimate_log_prob(
    X: np.ndarray, weights: np.ndarray, means: np.ndarray, variances: np.ndarray
) -> np.ndarray:
    """Joint log-likelihoods ``log w_k + log N(x_t | mu_k, diag(var_k))`` (reference path).

    A direct, unchunked float64 evaluation meant for tests and small inputs.

    Parameters
    ----------
    X : ndarray of shape (n_frames, n_dims)
    weights : ndarray of shape (n_components,)
    means, variances : ndarray of shape (n_components, n_dims)

    Returns
    -------
    ndarray of shape (n_frames, n_components), float64, nats.
    """
    X = np.asarray(X, dtype=np.float64)
    prec = 1.0 / variances
    const = np.log(weights) - 0.5 * (
        X.shape[1] * _LOG_2PI + np.log(variances).sum(1) + (means**2 * prec).sum(1)
    )
    return const + (X**2) @ (-0.5 * prec).T + X @ (means * prec).T


def _gemm_weights(
    weights: np.ndarray, means: np.ndarray, variances: np.ndarray, shift: np.ndarray, dtype
) -> np.ndarray:
    """The (2D+1, K) matrix that maps ``[(x-c)**2, x-c, 1]`` to joint log-likelihoods."""
    prec = 1.0 / variances
    mc = means - shift
    b = np.log(weights) - 0.5 * (
        means.shape[1] * _LOG_2PI + np.log(variances).sum(1) + (mc**2 * prec).sum(1)
    )
    W = np.concatenate([-0.5 * prec.T, (mc * prec).T, b[None, :]], axis=0)
    return np.ascontiguousarray(W, dtype=dtype)


# Largest ratio (spread of the data / component variance) that float32 arithmetic handles:
# the expanded square loses ~eps32 * ratio nats, i.e. ~1e-2 nats at 1e5.
_F32_MAX_CONDITION = 1e5


def _compute_dtype(X: np.ndarray, weights: np.ndarray, means: np.ndarray, variances: np.ndarray):
    """float32 for float32 frames, unless a (near-)collapsed component needs float64.

    ``weights``/``means``/``variances`` may be stacked, shapes (..., K) and (..., K, D).
    """
    if X.dtype != np.float32:
        return np.float64
    w = weights[..., None] / weights.sum(axis=-1, keepdims=True)[..., None]
    mu = (w * means).sum(axis=-2, keepdims=True)
    spread = (w * (variances + (means - mu) ** 2)).sum(axis=-2, keepdims=True)
    if np.max(25.0 * spread / variances) > _F32_MAX_CONDITION:
        return np.float64
    return np.float32


def auto_chunk_size(n_components: int) -> int:
    """Frames per chunk so that a chunk's (chunk, K) block stays around 1 MB.

    Parameters
    ----------
    n_components : int
        Number of columns K of the block (all stacked components when scoring).
    """
    return int(min(16384, max(256, (1 << 18) // max(1, n_components))))


class _Workspace(threading.local):
    """Per-thread chunk buffers, so an EM pass allocates nothing N-sized."""

    def get(self, chunk: int, n_dims: int, n_cols: int, dtype) -> _Workspace:
        key = (chunk, n_dims, n_cols, np.dtype(dtype).char)
        if getattr(self, "key", None) != key:
            self.key = key
            self.xx = np.empty((chunk, 2 * n_dims + 1), dtype=dtype)
            self.xx[:, 2 * n_dims] = 1.0
            self.L = np.empty((chunk, n_cols), dtype=dtype)
            self.lse = np.empty(chunk, dtype=dtype)
            self.w = np.empty(chunk, dtype=dtype)
            self.out = np.empty((chunk, max(1, n_cols)), dtype=dtype)
        return self

    def fill(self, Xc: np.ndarray, shift: np.ndarray) -> int:
        m, D = Xc.shape
        xc = self.xx[:m, D : 2 * D]
        np.subtract(Xc, shift, out=xc, casting="unsafe")
        np.square(xc, out=self.xx[:m, :D])
        return m


_WS = _Workspace()


def accumulate(
    X: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    variances: np.ndarray,
    *,
    sample_weight: np.ndarray | None = None,
    shift: np.ndarray | None = None,
    chunk_size: int | None = None,
    n_threads: int | None = None,
    fast: bool = True,
    out: Stats | None = None,
) -> Stats:
    """E-step: sufficient statistics of ``X`` under a diagonal GMM, chunk by chunk.

    Parameters
    ----------
    X : ndarray of shape (n_frames, n_dims), float32 or float64
        Frames. float32 input is computed in float32 and accumulated in float64.
    weights : ndarray of shape (n_components,)
    means, variances : ndarray of shape (n_components, n_dims)
    sample_weight : ndarray of shape (n_frames,), optional
        Non-negative per-frame weights; statistics and log-likelihood are weighted.
    shift : ndarray of shape (n_dims,), optional
        Centre of the moments; default the mixture mean ``sum_k w_k mu_k``.
    chunk_size : int, optional
        Frames per chunk; default :func:`auto_chunk_size`.
    n_threads : int, optional
        Threads over chunks (default: all cores). Does not change the result.
    fast : bool, default=True
        Use the fused numba kernel (False: plain NumPy reference path).
    out : Stats, optional
        Statistics to add into (must share ``shift``); returned.

    Returns
    -------
    Stats
        float64 statistics; ``loglik`` is the (weighted) *sum* over frames in nats.
    """
    K, D = means.shape
    if shift is None:
        shift = out.shift if out is not None else weights @ means
    shift = np.asarray(shift, dtype=np.float64)
    dtype = _compute_dtype(X, weights, means, variances)
    chunk = min(chunk_size or auto_chunk_size(K), max(1, X.shape[0]))
    # centre on a shift that is exact in the compute dtype, so x - c loses nothing
    shift_c = shift.astype(dtype)
    shift_eff = shift_c.astype(np.float64)
    W = _gemm_weights(weights, means, variances, shift_eff, dtype)

    def one(start: int, stop: int) -> tuple[np.ndarray, float]:
        ws = _WS.get(chunk, D, K, dtype)
        m = ws.fill(X[start:stop], shift_c)
        L = ws.L[:m]
        np.matmul(ws.xx[:m], W, out=L)
        w = None
        if sample_weight is not None:
            w = ws.w[:m]
            w[:] = sample_weight[start:stop]
        _kernels.resp_inplace(L, w, ws.lse[:m], fast=fast)
        G = L.T @ ws.xx[:m]
        if w is None:
            return G, float(ws.lse[:m].sum(dtype=np.float64))
        return G, float(np.dot(ws.lse[:m].astype(np.float64), w))

    G = np.zeros((K, 2 * D + 1))
    loglik = 0.0
    for g, ll in chunk_map(one, X.shape[0], chunk, n_threads=n_threads):
        G += g  # in chunk order: identical for any number of threads
        loglik += ll
    n_frames = float(X.shape[0]) if sample_weight is None else float(np.sum(sample_weight))
    st = Stats(
        G[:, 2 * D].copy(), G[:, D : 2 * D].copy(), G[:, :D].copy(), loglik, n_frames, shift_eff
    )
    st = st.recentre(shift)
    return st if out is None else out + st


def stacked_log_likelihood(
    X: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    variances: np.ndarray,
    *,
    chunk_size: int | None = None,
    n_threads: int | None = None,
    fast: bool = True,
) -> np.ndarray:
    """Per-frame log-likelihood under each of M stacked mixtures, in one batched pass.

    Parameters
    ----------
    X : ndarray of shape (n_frames, n_dims)
    weights : ndarray of shape (n_mixtures, n_components)
    means, variances : ndarray of shape (n_mixtures, n_components, n_dims)

    Returns
    -------
    ndarray of shape (n_frames, n_mixtures), float64, nats.
    """
    M, K, D = means.shape
    dtype = _compute_dtype(X, weights, means, variances)
    w = weights.reshape(M * K) / M  # any common shift works; use the pooled mean
    shift_c = (w @ means.reshape(M * K, D)).astype(dtype)
    W = np.concatenate(
        [
            _gemm_weights(weights[i], means[i], variances[i], shift_c.astype(np.float64), dtype)
            for i in range(M)
        ],
        axis=1,
    )
    chunk = min(chunk_size or auto_chunk_size(M * K), max(1, X.shape[0]))
    out = np.empty((X.shape[0], M), dtype=np.float64)

    def one(start: int, stop: int) -> None:
        ws = _WS.get(chunk, D, M * K, dtype)
        m = ws.fill(X[start:stop], shift_c)
        np.matmul(ws.xx[:m], W, out=ws.L[:m])
        _kernels.segment_lse(ws.L[:m], K, ws.out[:m, :M], fast=fast)
        out[start:stop] = ws.out[:m, :M]

    for _ in chunk_map(one, X.shape[0], chunk, n_threads=n_threads):
        pass
    return out


def log_likelihood(
    X: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    variances: np.ndarray,
    *,
    chunk_size: int | None = None,
    n_threads: int | None = None,
    fast: bool = True,
) -> np.ndarray:
    """Per-frame log-likelihood ``log p(x_t)`` in nats, shape (n_frames,), float64."""
    return stacked_log_likelihood(
        X, weights[None], means[None], variances[None],
        chunk_size=chunk_size, n_threads=n_threads, fast=fast,
    )[:, 0]  # fmt: skip


def _floor_weights(w: np.ndarray, min_weight: float) -> np.ndarray:
    """Closest weights to ``w`` (max-likelihood sense) with every entry >= ``min_weight``.

    Water-filling: clamp the small ones to the floor and share the remaining mass
    among the others in proportion to their counts; repeat until stable.
    """
    K = w.shape[0]
    min_weight = min(min_weight, 1.0 / K)
    clamped = np.zeros(K, dtype=bool)
    out = w.copy()
    for _ in range(K):
        free_mass = 1.0 - min_weight * clamped.sum()
        tot = w[~clamped].sum()
        out = np.where(clamped, min_weight, w * (free_mass / tot) if tot > 0 else min_weight)
        newly = (out < min_weight) & ~clamped
        if not newly.any():
            break
        clamped |= newly
    return out / out.sum()


def maximise(
    stats: Stats,
    *,
    var_floor: np.ndarray | float = 0.0,
    min_weight: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """M-step: maximum-likelihood parameters from statistics, with floors.

    Parameters
    ----------
    stats : Stats
        Accumulated statistics (K components, D dims).
    var_floor : float or ndarray of shape (n_dims,)
        Absolute variance floor per dimension.
    min_weight : float
        Weight floor (applied by water-filling, so the weights still sum to 1).

    Returns
    -------
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_dims)
    variances : ndarray of shape (n_components, n_dims), each >= ``var_floor``

    Notes
    -----
    Components with zero occupancy get the global mean and variance; callers
    (:class:`DiagGMM`) re-seed them.
    """
    n = stats.n
    total = n.sum()
    safe = np.where(n > 0, n, 1.0)
    gF = stats.F.sum(0) / total
    gvar = np.maximum(stats.S.sum(0) / total - gF**2, 0.0)
    dm = stats.F / safe[:, None]
    var = stats.S / safe[:, None] - dm**2
    empty = n <= 0
    dm[empty] = gF
    var[empty] = gvar
    means = stats.shift + dm
    variances = np.maximum(var, var_floor)
    weights = _floor_weights(n / total, min_weight)
    return weights, means, variances


def _split_component(
    weights: np.ndarray, means: np.ndarray, variances: np.ndarray, src: int, dst: int
) -> None:
    """HTK ``MU``: halve ``src``'s weight into ``dst`` and move the means apart by +-0.2 sigma."""
    d = 0.2 * np.sqrt(variances[src])
    weights[src] *= 0.5
    weights[dst] = weights[src]
    means[dst] = means[src] + d
    means[src] = means[src] - d
    variances[dst] = variances[src]


# ---------------------------------------------------------------------------------------
# convergence
# ---------------------------------------------------------------------------------------


class ConvergenceMonitor:
    """Tracks the mean per-frame log-likelihood of EM and decides when to stop.

    Parameters
    ----------
    tol : float
        Stop when ``(ll_i - ll_{i-1}) < tol * max(1, |ll_{i-1}|)``.
    max_iter : int
        Maximum number of EM iterations.
    verbose : int
        If > 0, print one aligned line per iteration to stderr.
    drop_tol : float
        Relative decrease that triggers a warning (float32 arithmetic needs ~1e-5).
    scale : float
        Typical magnitude of one frame's log-likelihood terms (e.g. n_dims); the
        warning threshold is ``drop_tol * max(1, |ll|, scale)``.

    Attributes
    ----------
    history : list of float
        Mean log-likelihood per frame (nats) of the parameters at each E-step.
    """

    def __init__(
        self,
        tol: float,
        max_iter: int,
        verbose: int = 0,
        *,
        drop_tol: float = 1e-9,
        scale: float = 1.0,
    ) -> None:
        self.tol = tol
        self.drop_tol = drop_tol
        self.scale = scale
        self.max_iter = max_iter
        self.verbose = verbose
        self.history: list[float] = []

    def report(self, ll: float, *, reseeded: bool = False) -> None:
        if self.history and not reseeded:
            prev = self.history[-1]
            if ll < prev - self.drop_tol * max(1.0, abs(prev), self.scale):
                warnings.warn(
                    f"EM log-likelihood decreased from {prev:.10g} to {ll:.10g} "
                    f"(iteration {len(self.history)}); the data may be degenerate",
                    RuntimeWarning,
                    stacklevel=3,
                )
        if self.verbose:
            delta = ll - self.history[-1] if self.history else float("nan")
            print(f"{len(self.history):>6d} {ll:>16.8f} {delta:>+14.6e}", file=sys.stderr)
        self.history.append(ll)

    @property
    def converged(self) -> bool:
        if len(self.history) < 2:
            return False
        prev, cur = self.history[-2], self.history[-1]
        return abs(cur - prev) < self.tol * max(1.0, abs(prev))


# ---------------------------------------------------------------------------------------
# chunk sources
# ---------------------------------------------------------------------------------------


class _ArraySource:
    """An in-memory (or memory-mapped) array as the EM data source."""

    def __init__(self, X: np.ndarray, sample_weight: np.ndarray | None) -> None:
        self.X, self.sample_weight = X, sample_weight
        self.drop_tol = 1e-5 if X.dtype == np.float32 else 1e-9

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        # one piece: accumulate() chunks it and spreads the chunks over threads
        yield self.X, self.sample_weight

    def gather(self, idx: np.ndarray) -> np.ndarray:
        return np.asarray(self.X[idx], dtype=np.float64)


class _IterSource:
    """Re-iterable chunks from a callable or a re-iterable; validates every chunk."""

    def __init__(self, chunks: ChunkSource, n_dims: int | None = None) -> None:
        if not callable(chunks):
            if iter(chunks) is chunks:
                raise ParameterError(
                    "fit_iter needs several passes over the data: pass a callable that "
                    "returns a fresh iterable of arrays, or a list, not a one-shot iterator"
                )
        self.chunks = chunks
        self.n_dims = n_dims
        self.drop_tol = 1e-9

    def __iter__(self) -> Iterator[tuple[np.ndarray, None]]:
        it = self.chunks() if callable(self.chunks) else iter(self.chunks)
        for i, Xc in enumerate(it):
            Xc = _check_X(Xc, n_dims=self.n_dims, name=f"chunk {i}", min_frames=0)
            if Xc.dtype == np.float32:
                self.drop_tol = 1e-5
            if self.n_dims is None:
                self.n_dims = Xc.shape[1]
            if Xc.shape[0]:
                yield Xc, None

    def gather(self, idx: np.ndarray) -> np.ndarray:
        out, pos = [], 0
        for Xc, _ in self:
            lo, hi = np.searchsorted(idx, [pos, pos + Xc.shape[0]])
            if hi > lo:
                out.append(np.asarray(Xc[idx[lo:hi] - pos], dtype=np.float64))
            pos += Xc.shape[0]
        return np.concatenate(out, axis=0)


def _check_X(
    X: Any, *, n_dims: int | None = None, name: str = "X", min_frames: int = 1
) -> np.ndarray:
    """Validate frames at the public boundary: 2-D, float, finite, right width."""
    X = np.asarray(X)
    if X.dtype not in (np.float32, np.float64):
        if X.dtype.kind not in "iufb":
            raise ParameterError(f"{name} must be numeric; got dtype {X.dtype}")
        X = X.astype(np.float64)
    if X.ndim != 2:
        hint = " (use X[:, None] for one-dimensional data)" if X.ndim == 1 else ""
        raise ParameterError(f"{name} must be 2-D (n_frames, n_dims); got shape {X.shape}{hint}")
    if n_dims is not None and X.shape[1] != n_dims:
        raise ParameterError(f"{name} has n_dims={X.shape[1]}, but the model has n_dims={n_dims}")
    if X.shape[1] == 0:
        raise ParameterError(f"{name} has zero dimensions")
    if X.shape[0] < min_frames:
        raise ParameterError(f"{name} has {X.shape[0]} frames; at least {min_frames} needed")
    step = max(1, (1 << 22) // max(1, X.shape[1]))  # blockwise: no N-sized temporary
    for start in range(0, X.shape[0], step):
        ok = np.isfinite(X[start : start + step]).all(axis=1)
        if not ok.all():
            first = start + int(np.argmin(ok))
            raise ParameterError(f"{name} contains NaN or inf, first at frame {first}")
    return X


# ---------------------------------------------------------------------------------------
# the estimator
# ---------------------------------------------------------------------------------------


class DiagGMM:
    """Diagonal-covariance Gaussian mixture trained by log-domain EM.

    Parameters
    ----------
    n_components : int > 0, default=1
        Number of mixture components K (any value, not only powers of two).
    max_iter : int >= 0, default=100
        Maximum EM iterations after initialisation.
    tol : float >= 0, default=1e-4
        Convergence threshold on the relative change of the mean per-frame
        log-likelihood.
    var_floor : float >= 0, default=0.01
        Variance floor relative to the global variance of the training data
        (HTK uses 0.01).
    var_floor_abs : float > 0, default=1e-8
        Absolute minimum variance, for dimensions with (near-)zero global variance.
    min_weight : float >= 0, default=1e-5
        Weight floor (Kaldi's ``min-gaussian-weight``).
    min_count : float >= 0, default=10.0
        A component whose occupancy (soft frame count) falls below
        ``min(min_count, n_frames / (2 K))`` is re-seeded by splitting the heaviest
        component (Kaldi's ``min-gaussian-occupancy``).
    init : {"kmeans++", "split"}, default="kmeans++"
        ``"kmeans++"``: k-means++ seeding and a few Lloyd steps on a subsample.
        ``"split"``: start from one component and split the heaviest ones (HTK
        ``MU``, +-0.2 sigma) up to K, with ``split_iter`` EM rounds in between.
    n_init : int > 0, default=1
        Number of initialisations; the fit with the best final log-likelihood wins.
    init_max_samples : int > 0, default=50000
        Size of the random subsample used for initialisation.
    split_iter : int >= 0, default=3
        EM iterations after each split round (``init="split"``).
    weights_init : ndarray of shape (n_components,), optional
        User-provided initial weights (default uniform when ``means_init`` is given).
    means_init : ndarray of shape (n_components, n_dims), optional
        User-provided initial means; skips ``init`` (as in scikit-learn).
    variances_init : ndarray of shape (n_components, n_dims), optional
        User-provided initial variances (default the global variance).
    random_state : int, numpy Generator or None, default=None
        Seed for every random choice (subsample, seeding, sampling).
    chunk_size : int or None, default=None
        Frames per E-step chunk; None picks ~1 MB blocks. Does not change results
        beyond floating-point rounding.
    n_jobs : int or None, default=None
        Threads over chunks (None: all cores, or ``AUDIOGMM_THREADS``). Results are
        bit-identical for any value.
    verbose : int, default=0
        Print per-iteration progress to stderr when > 0.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_dims)
    variances_ : ndarray of shape (n_components, n_dims)
    var_floor_ : ndarray of shape (n_dims,)
        The absolute variance floor in force.
    history_ : list of float
        Mean per-frame log-likelihood (nats) at each EM iteration.
    converged_ : bool
    n_iter_ : int
    fit_report_ : dict
        Training summary: frames, iterations, re-seeding events, timing.

    Notes
    -----
    Degenerate data never yields NaN parameters. Frames that are all identical (or
    dimensions with zero variance) give a valid model whose variances sit at
    ``var_floor_abs``, with a RuntimeWarning. A component whose occupancy collapses
    is re-seeded (see ``min_count``) and reported in ``fit_report_["reseeded"]``.
    Fewer frames than components, NaN/inf, or a wrong shape raise ParameterError.
    float32 frames are computed in float32 (float64 statistics), except when a
    collapsed component makes float32 inaccurate; then that E-step runs in float64.

    See Also
    --------
    audiogmm.classifier.GMMClassifier : one DiagGMM per class.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(1000, 2))
    >>> gmm = DiagGMM(3, random_state=0).fit(X)
    >>> gmm.means_.shape
    (3, 2)
    """

    _FILE_KIND = "DiagGMM"

    def __init__(
        self,
        n_components: int = 1,
        *,
        max_iter: int = 100,
        tol: float = 1e-4,
        var_floor: float = 0.01,
        var_floor_abs: float = 1e-8,
        min_weight: float = 1e-5,
        min_count: float = 10.0,
        init: Literal["kmeans++", "split"] = "kmeans++",
        n_init: int = 1,
        init_max_samples: int = 50_000,
        split_iter: int = 3,
        weights_init: np.ndarray | None = None,
        means_init: np.ndarray | None = None,
        variances_init: np.ndarray | None = None,
        random_state: int | np.random.Generator | None = None,
        chunk_size: int | None = None,
        n_jobs: int | None = None,
        verbose: int = 0,
    ) -> None:
        self.n_components = n_components
        self.max_iter = max_iter
        self.tol = tol
        self.var_floor = var_floor
        self.var_floor_abs = var_floor_abs
        self.min_weight = min_weight
        self.min_count = min_count
        self.init = init
        self.n_init = n_init
        self.init_max_samples = init_max_samples
        self.split_iter = split_iter
        self.weights_init = weights_init
        self.means_init = means_init
        self.variances_init = variances_init
        self.random_state = random_state
        self.chunk_size = chunk_size
        self.n_jobs = n_jobs
        self.verbose = verbose

    # -- scikit-learn style plumbing --------------------------------------------------------

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters, as in scikit-learn."""
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params: Any) -> DiagGMM:
        """Set constructor parameters; unknown names raise ParameterError."""
        valid = set(self._param_names())
        for k, v in params.items():
            if k not in valid:
                raise ParameterError(f"unknown parameter {k!r}; valid: {sorted(valid)}")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        parts = []
        for name, p in sig.parameters.items():
            if name == "self":
                continue
            v = getattr(self, name)
            if name == "n_components":
                parts.append(repr(v))
            elif isinstance(v, np.ndarray):
                parts.append(f"{name}=<array {v.shape}>")
            elif v is not p.default and not (type(v) is type(p.default) and v == p.default):
                parts.append(f"{name}={v!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def _validate_params(self) -> None:
        def need(cond: bool, name: str, what: str) -> None:
            if not cond:
                raise ParameterError(f"{name} must be {what}; got {getattr(self, name)!r}")

        def is_int(v: Any) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        need(is_int(self.n_components) and self.n_components > 0, "n_components", "an int > 0")
        need(is_int(self.max_iter) and self.max_iter >= 0, "max_iter", "an int >= 0")
        need(self.tol >= 0, "tol", ">= 0")
        need(self.var_floor >= 0, "var_floor", ">= 0")
        need(self.var_floor_abs > 0, "var_floor_abs", "> 0")
        need(0 <= self.min_weight < 1.0 / self.n_components, "min_weight", "in [0, 1/K)")
        need(self.min_count >= 0, "min_count", ">= 0")
        need(self.init in ("kmeans++", "split"), "init", "'kmeans++' or 'split'")
        need(is_int(self.n_init) and self.n_init > 0, "n_init", "an int > 0")
        need(
            is_int(self.init_max_samples) and self.init_max_samples > 0,
            "init_max_samples",
            "an int > 0",
        )
        need(is_int(self.split_iter) and self.split_iter >= 0, "split_iter", "an int >= 0")
        need(
            self.n_jobs is None or (is_int(self.n_jobs) and self.n_jobs > 0),
            "n_jobs",
            "None or an int > 0",
        )
        need(
            self.chunk_size is None or (is_int(self.chunk_size) and self.chunk_size > 0),
            "chunk_size",
            "None or an int > 0",
        )

    def _check_fitted(self) -> None:
        if not hasattr(self, "means_"):
            raise ParameterError(
                f"this {type(self).__name__} is not fitted yet; call fit() or load() first"
            )

    @property
    def n_dims(self) -> int:
        """Feature dimension D of a fitted model."""
        self._check_fitted()
        return self.means_.shape[1]

    @property
    def _chunk(self) -> int:
        return self.chunk_size or auto_chunk_size(self.n_components)

    # -- E-step / M-step on the current parameters -------------------------------------------

    def accumulate(
        self, X: np.ndarray, weights: np.ndarray | None = None, *, out: Stats | None = None
    ) -> Stats:
        """Sufficient statistics of ``X`` under the current parameters (pure; model unchanged).

        Parameters
        ----------
        X : ndarray of shape (n_frames, n_dims)
        weights : ndarray of shape (n_frames,), optional
            Non-negative per-frame sample weights.
        out : Stats, optional
            Statistics to add into.

        Returns
        -------
        Stats
        """
        self._check_fitted()
        X = _check_X(X, n_dims=self.n_dims, min_frames=0)
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64)
            if weights.shape != (X.shape[0],):
                raise ParameterError(
                    f"weights must have shape ({X.shape[0]},); got {weights.shape}"
                )
            if not np.all(np.isfinite(weights)) or np.any(weights < 0):
                raise ParameterError("weights must be finite and >= 0")
        return self._accumulate(X, weights, out=out)

    def _accumulate(self, X, weights=None, *, out=None) -> Stats:
        return accumulate(
            X,
            self.weights_,
            self.means_,
            self.variances_,
            sample_weight=weights,
            chunk_size=self._chunk,
            n_threads=self.n_jobs,
            shift=None if out is None else out.shift,
            out=out,
        )

    def _stats_over(self, source) -> Stats:
        shift = self.weights_ @ self.means_
        total = Stats.zeros(self.n_components, self.means_.shape[1], shift=shift)
        for Xc, sw in source:
            total = accumulate(
                Xc, self.weights_, self.means_, self.variances_,
                sample_weight=sw, shift=shift, chunk_size=self._chunk, out=total,
                n_threads=self.n_jobs,
            )  # fmt: skip
        return total

    def maximise(self, stats: Stats) -> DiagGMM:
        """M-step: set the parameters from ``stats`` (floors and re-seeding applied).

        Returns
        -------
        self
        """
        if stats.n_components != self.n_components:
            raise ParameterError(
                f"stats have {stats.n_components} components; the model has {self.n_components}"
            )
        floor = getattr(self, "var_floor_", None)
        if floor is None:
            F, S = stats.F.sum(0), stats.S.sum(0)
            gvar = np.maximum(S / stats.n.sum() - (F / stats.n.sum()) ** 2, 0.0)
            floor = self.var_floor_ = np.maximum(self.var_floor * gvar, self.var_floor_abs)
        w, m, v = maximise(stats, var_floor=floor, min_weight=self.min_weight)
        self.weights_, self.means_, self.variances_ = w, m, v
        self._reseed(stats)
        return self

    def _reseed(self, stats: Stats) -> list[int]:
        """Re-seed under-occupied components by splitting the heaviest one (logged)."""
        K = self.n_components
        thr = min(self.min_count, 0.5 * stats.n_frames / K)
        weak = [int(k) for k in np.flatnonzero(stats.n < thr)]
        if not weak or len(weak) == K:
            return []
        w, m, v = self.weights_, self.means_, self.variances_
        strong = np.ones(K, dtype=bool)
        strong[weak] = False
        for k in weak:
            src = int(np.flatnonzero(strong)[np.argmax(w[strong])])
            _split_component(w, m, v, src, k)
            strong[k] = True
            event = {
                "iteration": getattr(self, "_iteration", 0),
                "component": k,
                "occupancy": float(stats.n[k]),
                "split_from": src,
            }
            self.__dict__.setdefault("_events", []).append(event)
            logger.info(
                "component %d had occupancy %.3g < %.3g; re-seeded by splitting component %d",
                k, stats.n[k], thr, src,
            )  # fmt: skip
        self.weights_ = w / w.sum()
        return weak

    # -- initialisation ----------------------------------------------------------------------

    def _init_params(self, Xs: np.ndarray, rng: np.random.Generator) -> None:
        K, D = self.n_components, Xs.shape[1]
        if self.means_init is not None:
            m = np.array(self.means_init, dtype=np.float64)
            w = (
                np.full(K, 1.0 / K)
                if self.weights_init is None
                else np.array(self.weights_init, dtype=np.float64)
            )
            if self.variances_init is None:
                v = np.tile(np.maximum(Xs.var(0), self.var_floor_), (K, 1))
            else:
                v = np.array(self.variances_init, dtype=np.float64)
            if m.shape != (K, D) or v.shape != (K, D) or w.shape != (K,):
                raise ParameterError(
                    f"means_init/variances_init must have shape ({K}, {D}) and weights_init "
                    f"({K},); got {m.shape}, {v.shape}, {w.shape}"
                )
            if not (np.all(np.isfinite(m)) and np.all(v > 0) and np.all(w >= 0)):
                raise ParameterError("initial parameters must be finite with variances > 0")
            self.weights_, self.means_, self.variances_ = w / w.sum(), m, v
        elif self.init == "kmeans++":
            # small products run faster on one BLAS thread than on a waking pool
            small = Xs.shape[0] * K * D < 50_000_000
            with single_threaded_blas() if small else contextlib.nullcontext():
                labels = _kmeans(Xs, self.n_components, rng)
            resp = np.zeros((Xs.shape[0], self.n_components))
            resp[np.arange(Xs.shape[0]), labels] = 1.0
            shift = Xs.mean(0)
            Xc = Xs - shift
            st = Stats(resp.sum(0), resp.T @ Xc, resp.T @ Xc**2, 0.0, float(Xs.shape[0]), shift)
            self.weights_, self.means_, self.variances_ = maximise(
                st, var_floor=self.var_floor_, min_weight=self.min_weight
            )
            self._reseed(st)
        else:
            self._split_init(Xs)

    def _split_init(self, Xs: np.ndarray) -> None:
        K = self.n_components
        self.weights_ = np.ones(1)
        self.means_ = Xs.mean(0, keepdims=True)
        self.variances_ = np.maximum(Xs.var(0, keepdims=True), self.var_floor_)
        k = 1
        while k < K:
            n_split = min(k, K - k)
            order = np.argsort(-self.weights_, kind="stable")[:n_split]
            w = np.concatenate([self.weights_, np.zeros(n_split)])
            m = np.concatenate([self.means_, np.zeros((n_split, Xs.shape[1]))])
            v = np.concatenate([self.variances_, np.ones((n_split, Xs.shape[1]))])
            for j, src in enumerate(order):
                _split_component(w, m, v, int(src), k + j)
            k += n_split
            self.weights_, self.means_, self.variances_ = w, m, v
            for _ in range(self.split_iter):
                st = accumulate(Xs, w, m, v, chunk_size=self._chunk, n_threads=self.n_jobs)
                w, m, v = maximise(st, var_floor=self.var_floor_, min_weight=0.0)
            self.weights_, self.means_, self.variances_ = w, m, v

    # -- fitting -----------------------------------------------------------------------------

    def fit(
        self, X: np.ndarray, y: None = None, *, sample_weight: np.ndarray | None = None
    ) -> DiagGMM:
        """Estimate the parameters with EM.

        Parameters
        ----------
        X : ndarray of shape (n_frames, n_dims), float32 or float64
            Training frames. float32 is computed in float32 with float64 statistics.
        y : ignored
        sample_weight : ndarray of shape (n_frames,), optional
            Non-negative per-frame weights.

        Returns
        -------
        self

        Raises
        ------
        ParameterError
            Bad parameters, or X not 2-D, non-finite, or with fewer frames than components.
        """
        self._validate_params()
        X = _check_X(X)
        if X.shape[0] < self.n_components:
            raise ParameterError(
                f"n_components={self.n_components} but X has {X.shape[0]} frames; "
                "use fewer components or more data"
            )
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight, dtype=np.float64)
            if sample_weight.shape != (X.shape[0],) or np.any(sample_weight < 0):
                raise ParameterError(
                    f"sample_weight must be non-negative with shape ({X.shape[0]},)"
                )
        return self._fit(_ArraySource(X, sample_weight))

    def fit_iter(self, chunks: ChunkSource) -> DiagGMM:
        """Estimate the parameters with EM from data streamed in chunks (out of core).

        Parameters
        ----------
        chunks : callable returning an iterable of arrays, or a re-iterable (e.g. a list)
            Each pass over the data calls ``chunks()`` (or iterates it) afresh; every
            chunk is an array of shape (n_i, n_dims). Use memory-mapped ``.npy`` files
            or a generator function reading from disk for data larger than memory.

        Returns
        -------
        self
        """
        self._validate_params()
        source = _IterSource(chunks)
        return self._fit(source)

    @staticmethod
    def _global_stats(source) -> Stats | None:
        """One pass of plain moments (a single unit-variance component has gamma = 1)."""
        total, source.n_frames = None, 0
        for Xc, sw in source:
            source.n_frames += Xc.shape[0]
            if total is None:
                D = Xc.shape[1]
                one = (np.ones(1), np.zeros((1, D)), np.ones((1, D)))
                total = Stats.zeros(1, D, shift=np.asarray(Xc[0], dtype=np.float64))
            total = accumulate(Xc, *one, sample_weight=sw, shift=total.shift, out=total)
        return total

    def _fit(self, source) -> DiagGMM:
        import time

        t0 = time.perf_counter()
        rng = np.random.default_rng(self.random_state)
        g = self._global_stats(source)
        if g is None:
            raise ParameterError("fit_iter: the chunks hold no frames")
        n_dims = g.n_dims
        n_total = source.n_frames
        if n_total < self.n_components:
            raise ParameterError(
                f"n_components={self.n_components} but the data hold {n_total} frames"
            )
        gmean = g.shift + g.F[0] / g.n[0]
        gvar = np.maximum(g.S[0] / g.n[0] - (g.F[0] / g.n[0]) ** 2, 0.0)
        zero_dims = np.flatnonzero(gvar <= self.var_floor_abs)
        if zero_dims.size:
            warnings.warn(
                f"X has (near) zero variance in dimension(s) {zero_dims.tolist()[:10]}; "
                f"their variances are set to var_floor_abs={self.var_floor_abs:g}",
                RuntimeWarning,
                stacklevel=3,
            )
        best = None
        for init_round in range(self.n_init):
            self.var_floor_ = np.maximum(self.var_floor * gvar, self.var_floor_abs)
            self._events: list[dict[str, Any]] = []
            self._iteration = 0  # index in history_ of the E-step that follows a re-seed
            m = min(self.init_max_samples, n_total)
            idx = np.sort(rng.choice(n_total, size=m, replace=False))
            self._init_params(source.gather(idx), rng)
            monitor = ConvergenceMonitor(
                self.tol, self.max_iter, self.verbose, drop_tol=source.drop_tol, scale=n_dims
            )
            n_iter, reseeded = 0, False
            while True:
                stats = self._stats_over(source)
                monitor.report(stats.mean_loglik, reseeded=reseeded)
                converged = monitor.converged and not reseeded
                if converged or n_iter >= self.max_iter:
                    break
                before = len(self._events)
                self._iteration = len(monitor.history)
                self.maximise(stats)
                reseeded = len(self._events) > before
                n_iter += 1
            final = monitor.history[-1]
            if best is None or final > best[0]:
                best = (
                    final,
                    (self.weights_.copy(), self.means_.copy(), self.variances_.copy()),
                    list(monitor.history),
                    converged,
                    n_iter,
                    list(self._events),
                    init_round,
                )
        final, params, history, converged, n_iter, events, which = best
        self.weights_, self.means_, self.variances_ = params
        self.history_ = history
        self.converged_ = converged
        self.n_iter_ = n_iter
        self.fit_report_ = {
            "n_frames": n_total,
            "n_dims": n_dims,
            "n_components": self.n_components,
            "n_iter": n_iter,
            "converged": converged,
            "final_mean_loglik": final,
            "history": list(history),
            "best_init": which,
            "reseeded": events,
            "n_reseeded": len(events),
            "global_mean_norm": float(np.linalg.norm(gmean)),
            "seconds": time.perf_counter() - t0,
        }
        if not converged and self.max_iter > 0:
            warnings.warn(
                f"EM did not converge in max_iter={self.max_iter} iterations "
                f"(tol={self.tol:g}); raise max_iter, loosen tol, or try init='split'",
                ConvergenceWarning,
                stacklevel=2,
            )
        return self

    # -- inference ---------------------------------------------------------------------------

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """Per-frame log-likelihood ``log p(x_t)`` in nats.

        Parameters
        ----------
        X : ndarray of shape (n_frames, n_dims)

        Returns
        -------
        ndarray of shape (n_frames,), float64
        """
        self._check_fitted()
        X = _check_X(X, n_dims=self.n_dims, min_frames=0)
        return log_likelihood(
            X, self.weights_, self.means_, self.variances_,
            chunk_size=self._chunk, n_threads=self.n_jobs,
        )  # fmt: skip

    def score(self, X: np.ndarray, y: None = None) -> float:
        """Mean per-frame log-likelihood of ``X`` in nats."""
        return float(self.score_samples(X).mean())

    def log_likelihood_total(self, X: np.ndarray) -> float:
        """Total log-likelihood of ``X`` summed over frames, in nats."""
        return float(self.score_samples(X).sum())

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Posterior component probabilities, shape (n_frames, n_components)."""
        self._check_fitted()
        X = _check_X(X, n_dims=self.n_dims, min_frames=0)
        L = estimate_log_prob(X, self.weights_, self.means_, self.variances_)
        L -= L.max(1, keepdims=True)
        with np.errstate(under="ignore"):  # far components underflow to 0 by design
            P = np.exp(L)
        return P / P.sum(1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Most likely component per frame, shape (n_frames,)."""
        return self.predict_proba(X).argmax(1)

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw frames from the mixture.

        Returns
        -------
        X : ndarray of shape (n_samples, n_dims)
        labels : ndarray of shape (n_samples,), the component of each frame
        """
        self._check_fitted()
        if n_samples < 1:
            raise ParameterError(f"n_samples must be >= 1; got {n_samples}")
        rng = np.random.default_rng(self.random_state)
        labels = rng.choice(self.n_components, size=n_samples, p=self.weights_)
        X = self.means_[labels] + rng.standard_normal((n_samples, self.n_dims)) * np.sqrt(
            self.variances_[labels]
        )
        return X, labels

    def _n_parameters(self) -> int:
        K, D = self.means_.shape
        return 2 * K * D + K - 1

    def bic(self, X: np.ndarray) -> float:
        """Bayesian information criterion on ``X`` (lower is better)."""
        return -2 * self.log_likelihood_total(X) + self._n_parameters() * math.log(len(X))

    def aic(self, X: np.ndarray) -> float:
        """Akaike information criterion on ``X`` (lower is better)."""
        return -2 * self.log_likelihood_total(X) + 2 * self._n_parameters()

    # -- persistence -------------------------------------------------------------------------

    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            "weights": self.weights_,
            "means": self.means_,
            "variances": self.variances_,
            "var_floor": self.var_floor_,
        }

    def _header(self) -> dict[str, Any]:
        params = _jsonable({k: v for k, v in self.get_params().items() if not k.endswith("_init")})
        if not isinstance(self.random_state, (int, type(None))):
            params["random_state"] = None
        return {"params": params, "training": _jsonable(getattr(self, "fit_report_", {}))}

    def save(self, path: str | os.PathLike) -> None:
        """Write the model to one ``.npz`` file (no pickle, checksummed, atomic).

        See Also
        --------
        DiagGMM.load
        """
        self._check_fitted()
        write_container(path, kind=self._FILE_KIND, header=self._header(), arrays=self._arrays())

    @classmethod
    def load(cls, path: str | os.PathLike) -> DiagGMM:
        """Read a model written by :meth:`save`, validating everything.

        Raises
        ------
        ModelFileError
            Missing, truncated or tampered file, another format version, or invalid
            parameters (non-finite, variances <= 0, weights not summing to 1).
        """
        header, arrays = read_container(path, kind=cls._FILE_KIND)
        name = os.fspath(path)
        try:
            params = dict(header["params"])
            gmm = cls(**params)
        except (KeyError, TypeError) as e:
            raise ModelFileError(f"{name}: bad parameter block in header ({e})") from e
        w, m, v, f = (arrays.get(k) for k in ("weights", "means", "variances", "var_floor"))
        _validate_params_arrays(name, w, m, v)
        if f is None or f.shape != (m.shape[1],) or not np.all(np.isfinite(f)) or np.any(f <= 0):
            raise ModelFileError(f"{name}: invalid var_floor array")
        if m.shape[0] != gmm.n_components:
            raise ModelFileError(
                f"{name}: header says n_components={gmm.n_components}, arrays have {m.shape[0]}"
            )
        gmm.weights_, gmm.means_, gmm.variances_, gmm.var_floor_ = w, m, v, f
        gmm.fit_report_ = header.get("training", {})
        gmm.history_ = list(gmm.fit_report_.get("history", []))
        return gmm


def _validate_params_arrays(name: str, w, m, v) -> None:
    """Shared checks for loaded mixture parameters (one mixture or a stack of them)."""
    if w is None or m is None or v is None:
        raise ModelFileError(f"{name}: missing weights, means or variances")
    if m.ndim < 2 or v.shape != m.shape or w.shape != m.shape[:-1]:
        raise ModelFileError(
            f"{name}: inconsistent shapes weights {w.shape}, means {m.shape}, variances {v.shape}"
        )
    for label, a in (("weights", w), ("means", m), ("variances", v)):
        if a.dtype != np.float64:
            raise ModelFileError(f"{name}: {label} have dtype {a.dtype}, expected float64")
        if not np.all(np.isfinite(a)):
            raise ModelFileError(f"{name}: {label} contain NaN or inf")
    if np.any(v <= 0):
        raise ModelFileError(f"{name}: variances must be > 0")
    if np.any(w < 0) or not np.allclose(w.sum(-1), 1.0, rtol=0, atol=1e-6):
        raise ModelFileError(f"{name}: weights must be >= 0 and sum to 1; sums {w.sum(-1)}")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


# ---------------------------------------------------------------------------------------
# k-means++ initialisation
# ---------------------------------------------------------------------------------------


def _sq_dists(X: np.ndarray, C: np.ndarray, x2: np.ndarray | None = None) -> np.ndarray:
    """Squared Euclidean distances (n, k); ``x2`` caches the rows' squared norms."""
    x2 = np.einsum("ij,ij->i", X, X) if x2 is None else x2
    d = X @ (-2.0 * C.T)
    d += x2[:, None]
    d += np.einsum("ij,ij->i", C, C)[None, :]
    return np.maximum(d, 0.0, out=d)


def _kmeans(X: np.ndarray, K: int, rng: np.random.Generator, n_lloyd: int = 10) -> np.ndarray:
    """k-means++ seeding (greedy, 2 + log K trials) then a few Lloyd steps; returns labels."""
    n = X.shape[0]
    scale = X.std(0)
    scale[scale == 0] = 1.0
    Z = (X - X.mean(0)) / scale  # seed in standardised space so no dimension dominates
    z2 = np.einsum("ij,ij->i", Z, Z)
    centers = np.empty((K, X.shape[1]))
    centers[0] = Z[rng.integers(n)]
    closest = _sq_dists(Z, centers[:1], z2)[:, 0]
    trials = 2 + int(math.log(K))
    for k in range(1, K):
        pot = closest.sum()
        if pot <= 0:
            centers[k:] = Z[rng.integers(n, size=K - k)]
            break
        cand = np.searchsorted(np.cumsum(closest), rng.random(trials) * pot)
        cand = np.minimum(cand, n - 1)
        d = np.minimum(closest[None, :], _sq_dists(Z, Z[cand], z2).T)
        best = int(np.argmin(d.sum(1)))
        centers[k] = Z[cand[best]]
        closest = d[best]
    lab = _sq_dists(Z, centers, z2).argmin(1)
    for _ in range(n_lloyd):
        centers = _cluster_means(Z, lab, centers)
        new = _sq_dists(Z, centers, z2).argmin(1)
        if np.array_equal(new, lab):
            break
        lab = new
    return lab


def _cluster_means(Z: np.ndarray, lab: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Mean of each cluster (sort + reduceat: no N x K one-hot, no slow ``np.add.at``)."""
    K = centers.shape[0]
    order = np.argsort(lab, kind="stable")
    counts = np.bincount(lab, minlength=K)
    present = np.flatnonzero(counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[present]
    out = centers.copy()  # an empty cluster keeps its centre
    out[present] = np.add.reduceat(Z[order], starts, axis=0) / counts[present, None]
    return out
