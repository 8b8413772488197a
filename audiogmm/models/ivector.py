"""I-vectors (Dehak et al. 2011) of one UBM, with LDA, WCCN and cosine scoring.

A clip's mean supervector is ``mu + sigma T w``, ``w ~ N(0, I_R)``; given its statistics ``n, f``
(:func:`whitened_stats`) the posterior of ``w`` has precision ``L_u = I + sum_k n_uk T_k' T_k``
and mean ``w_u = L_u^-1 T' f_u``, the i-vector. ``T`` is trained by EM (Kenny et al. 2005,
:func:`train_tv`). The cosines to the class means are calibrated to LLRs as in ``gsv``."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..engine import LocalExecutor, one_blas_thread, resolve
from ..exceptions import ParameterError
from ..mixture import ConvergenceMonitor, DiagGMM
from ..mixture.checks import is_int, need
from ..progress import Progress, reporter
from .ubm import EmbeddingClassifier, clip_stats

__all__ = ["IVECTOR_COMPONENTS", "IVectorClassifier", "extract_ivectors", "train_tv",
           "whitened_stats"]

logger = logging.getLogger(__name__)

#: UBM size of the i-vector backend when none is given: a total-variability space needs
#: the finer UBM (Kaldi and SIDEKIT recipes use 512-2048 on large corpora).
IVECTOR_COMPONENTS = 256

#: Clips per block of the T-EM's E-step (bounds its memory to a block's R x R matrices).
_BLOCK = 256
#: Ridge on the within-class scatters, relative to their mean eigenvalue.
_RIDGE = 1e-9


def whitened_stats(
    clips: Sequence[np.ndarray], ubm: DiagGMM, *, executor: LocalExecutor | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each clip's ``n`` (n_clips, K) and ``f`` (n_clips, K * D): :func:`clip_stats`'s
    ``F_uk / sigma_k`` in (k, d) order."""
    n, F = clip_stats(clips, ubm, executor=executor)
    f = F / np.sqrt(ubm.params_.variances)
    return n, f.reshape(len(f), f.shape[1] * f.shape[2])


def _posteriors(T: np.ndarray, n: np.ndarray, f: np.ndarray):
    """Cholesky factors of ``L_u``, ``b_u = T' f_u`` and ``w_u``, for clips ``n, f``."""
    K, R = n.shape[1], T.shape[1]
    Tk = T.reshape(K, -1, R)
    TT = (np.swapaxes(Tk, 1, 2) @ Tk).reshape(K, R * R)
    L = (n @ TT).reshape(len(n), R, R) + np.eye(R)
    chol = np.linalg.cholesky(L)
    b = f @ T
    y = np.linalg.solve(chol, b[:, :, None])  # L = c c': w = c'^-1 c^-1 b
    w = np.linalg.solve(np.swapaxes(chol, 1, 2), y)[:, :, 0]
    return chol, b, w


def extract_ivectors(T: np.ndarray, n: np.ndarray, f: np.ndarray) -> np.ndarray:
    """The i-vectors ``w_u`` (n_clips, R) of clips' :func:`whitened_stats` ``n, f`` under the
    (whitened) total-variability matrix ``T`` (K * D, R)."""
    out = np.zeros((len(n), T.shape[1]))
    with one_blas_thread():
        for s in range(0, len(n), _BLOCK):
            out[s : s + _BLOCK] = _posteriors(T, n[s : s + _BLOCK], f[s : s + _BLOCK])[2]
    return out


def tv_estep(
    T: np.ndarray, n: np.ndarray, f: np.ndarray, *, executor: LocalExecutor | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """The T-EM's E-step under ``T`` (K * D, R) over clips ``n, f`` (blocks run by ``executor``,
    summed in order): ``C = sum_u f_u w_u'`` (K * D, R), ``A = sum_u n_uk (L_u^-1 + w_u w_u')``
    (K, R, R) and the bound ``sum_u (b_u' w_u - log det L_u) / 2`` (nats; ``b_u = T' f_u``)."""
    K, R = n.shape[1], T.shape[1]

    def block(s: int) -> tuple[np.ndarray, np.ndarray, float]:
        nb, fb = n[s : s + _BLOCK], f[s : s + _BLOCK]
        chol, b, w = _posteriors(T, nb, fb)
        inv_c = np.linalg.inv(chol)
        cov = np.swapaxes(inv_c, 1, 2) @ inv_c + w[:, :, None] * w[:, None, :]  # L^-1 + ww'
        A = (nb.T @ cov.reshape(len(nb), R * R)).reshape(K, R, R)
        logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum()
        return fb.T @ w, A, 0.5 * (float(np.sum(b * w)) - float(logdet))

    C, A, bound = np.zeros_like(T), np.zeros((K, R, R)), 0.0
    with resolve(executor, 1) as ex:
        for c, a, lb in ex.map(block, range(0, len(n), _BLOCK)):
            C, A, bound = C + c, A + a, bound + lb
    return C, A, bound


def tv_maximise(C: np.ndarray, A: np.ndarray, T: np.ndarray) -> np.ndarray:
    """The T-EM's M-step ``T_k = C_k A_k^-1`` from :func:`tv_estep`'s ``C, A``: the new ``T``
    (K * D, R); a component no clip touched keeps its rows of ``T``."""
    K, R = A.shape[0], A.shape[1]
    Ck = C.reshape(K, -1, R)
    new = T.reshape(K, -1, R).copy()
    # A_k >= n_k I: positive definite exactly when the component has data
    live = np.trace(A, axis1=1, axis2=2) > 0
    new[live] = np.swapaxes(np.linalg.solve(A[live], np.swapaxes(Ck[live], 1, 2)), 1, 2)
    return new.reshape(T.shape)


def train_tv(n: np.ndarray, f: np.ndarray, rank: int, *, n_iter: int = 5,
             executor: LocalExecutor | None = None,
             progress: Progress = None) -> tuple[np.ndarray, list[float]]:  # fmt: skip
    """``T`` (K * D, ``rank`` <= ``min(n_clips, K * D)``) after ``n_iter`` EM iterations on
    clips ``n, f`` from the top principal directions of their per-frame ``f`` (deterministic),
    and the bound per frame of each E-step (nats; the last under that ``T``); ``progress``
    after each iteration."""
    U, KD = f.shape
    if not 0 < rank <= min(U, KD):
        raise ParameterError(f"rank must be in [1, {min(U, KD)}] for {U} clips; got {rank}")
    frames = max(float(n.sum()), 1.0)
    D = KD // n.shape[1]
    per = f / np.maximum(np.repeat(n, D, axis=1), 1.0)  # MAP-like offsets of each clip
    monitor = ConvergenceMonitor(0.0, n_iter, scale=1.0)
    # small dense problems: one BLAS thread is much faster than a pool on a busy machine
    with one_blas_thread(), reporter(progress, n_iter, "Training the i-vector extractor") as tick:
        # the top principal directions, scaled by their singular values s_i / sqrt(U), from
        # the (n_clips, n_clips) Gram matrix (n_clips << K * D): per' v_i = s_i u_i
        V = np.linalg.eigh(per @ per.T)[1][:, ::-1][:, :rank]
        T = per.T @ V / math.sqrt(U)
        while True:
            C, A, bound = tv_estep(T, n, f, executor=executor)
            monitor.report(bound / frames)
            if monitor.stop():
                break
            T = tv_maximise(C, A, T)
            tick()
    return T, list(monitor.history)


def _class_means(Z: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """The mean row of each class (sorted), (M, P)."""
    y = np.asarray(labels)
    return np.stack([Z[y == c].mean(0) for c in sorted(set(labels))])


def lda(Z: np.ndarray, labels: Sequence[str], dim: int) -> np.ndarray:
    """Linear discriminant analysis of ``Z`` (n, P) with ``labels`` (n,): the ``dim`` (<=
    ``min(M - 1, P)``) generalised eigenvectors of ``S_b v = lambda S_w v`` (``S_w`` with a
    tiny ridge) by decreasing ``lambda``, scaled so that ``v' S_w v = 1``, (P, dim)."""
    means = _class_means(Z, labels)
    idx, counts = np.unique(np.asarray(labels), return_inverse=True, return_counts=True)[1:]
    d = Z - means[idx]
    Sw = d.T @ d / len(Z)
    dm = means - counts @ means / counts.sum()
    Sb = (dm * counts[:, None]).T @ dm / counts.sum()
    if not np.trace(Sw + Sb) > 0:  # every vector the same: no direction is better
        return np.eye(Z.shape[1])[:, :dim]
    # whiten S_w (ridged on the total scatter's scale: a small CV fold can have one clip per
    # class, S_w = 0), then a standard symmetric problem
    w, U = np.linalg.eigh(_ridged(Sw, Sw + Sb))
    W = U / np.sqrt(w)  # W' S_w W = I
    V = np.linalg.eigh(W.T @ Sb @ W)[1]
    return (W @ V)[:, ::-1][:, :dim]


def wccn(Y: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """Within-class covariance normalisation (Hatch et al. 2006): lower-triangular ``B`` (P, P),
    ``B B' = W^-1``, ``W = (1/M) sum_c (1/n_c) sum_{i in c} (y_i - m_c)(y_i - m_c)'`` + ridge."""
    y = np.asarray(labels)
    classes = sorted(set(labels))
    P = Y.shape[1]
    W = np.zeros((P, P))
    for c in classes:
        d = Y[y == c] - Y[y == c].mean(0)
        W += d.T @ d / len(d)
    W /= len(classes)
    total = np.cov(Y.T, bias=True).reshape(P, P)
    if not np.trace(total) > 0:
        return np.eye(P)
    return np.linalg.cholesky(np.linalg.inv(_ridged(W, total)))


def _ridged(S: np.ndarray, total: np.ndarray) -> np.ndarray:
    """``S`` plus a tiny ridge relative to its mean variance (``total``'s where ``S`` is ~0)."""
    scale = max(float(np.trace(S)), 1e-6 * float(np.trace(total)))
    return S + _RIDGE * scale / len(S) * np.eye(len(S))


def _unit(X: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norm > 0, norm, 1.0)


def cosine_back_end(
    Z: np.ndarray, labels: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LDA then WCCN of training i-vectors ``Z`` (n, R) of >= 2 classes: ``centre`` (R,),
    ``projection`` (R, L = min(M - 1, R)) and ``class_means`` (M, L), the unit-length means of
    the classes' unit-length ``(z - centre) @ projection``, scored by cosine (:func:`_cosines`)."""
    centre = Z.mean(0)
    Zc = Z - centre
    A = lda(Zc, labels, min(len(set(labels)) - 1, Z.shape[1]))
    P = A @ wccn(Zc @ A, labels)
    return centre, P, _unit(_class_means(_unit(Zc @ P), labels))


def _cosines(back: tuple[np.ndarray, np.ndarray, np.ndarray], Z: np.ndarray) -> np.ndarray:
    centre, P, means = back
    return _unit((Z - centre) @ P) @ means.T


class IVectorClassifier(EmbeddingClassifier):
    """I-vectors of one UBM, with LDA + WCCN and cosine scoring against the class means.

    Parameters
    ----------
    n_components : int > 0, default=256
        UBM components K (:data:`IVECTOR_COMPONENTS`).
    rank : int > 0, default=100
        Dimension R of the total-variability subspace, capped at training to the number of
        clips minus the number of classes (a full-rank within-class scatter) and at ``K * D``
        (dev hard speakers, 3 splits, 344 clips: 100 beat 60 and 150 by 1.5 points).
    n_iter : int >= 0, default=5
        EM iterations of ``T`` (there, 5 were within one clip of 10 and 3, at half the cost).
    subsample, priors, n_jobs, random_state, **gmm_params
        As for :class:`UBMClassifier` (``random_state``: of the UBM and the calibration folds).

    Attributes
    ----------
    labels_, ubm_, calibration_
        As for :class:`~audiogmm.models.GSVClassifier` (calibrating the cosines).
    T_ : ndarray of shape (K * D, R)
        Total-variability matrix (whitened by the UBM's standard deviations).
    centre_, projection_, class_means_ : ndarray
        The back end (:func:`cosine_back_end`): (R,), (R, L), (n_labels, L).
    tv_history_ : list of float
        The T-EM's bound per frame at each E-step (nats, non-decreasing).
    """

    own_params = ("rank", "n_iter", "subsample")

    def __init__(self, n_components: int = IVECTOR_COMPONENTS, *, rank: int = 100, n_iter: int = 5,
                 subsample: int = 4, priors: dict[str, float] | None = None,
                 n_jobs: int | None = None, random_state: int | None = 0,
                 **gmm_params: Any) -> None:  # fmt: skip
        self._keep(locals())

    def _check_own(self) -> None:
        need(self, is_int(self.rank) and self.rank >= 1, "rank", "an integer >= 1")
        need(self, is_int(self.n_iter) and self.n_iter >= 0, "n_iter", "an integer >= 0")

    def _fit_vectors(self, clips: Sequence[np.ndarray], ex: LocalExecutor, progress: Progress):
        """Train the i-vector extractor; the training clips' i-vectors."""
        n, f = whitened_stats(clips, self.ubm_, executor=ex)
        M = len(self.labels_)
        rank = max(1, min(int(self.rank), len(clips) - M, f.shape[1]))
        if rank < self.rank:
            logger.info("i-vectors: rank %d for %d clips of %d classes", rank, len(clips), M)
        self.T_, self.tv_history_ = train_tv(
            n, f, rank, n_iter=int(self.n_iter), executor=ex, progress=progress
        )
        return extract_ivectors(self.T_, n, f)

    #: The clips' i-vectors, (n_clips, R): :meth:`vectors` under the name the README gives.
    ivectors = EmbeddingClassifier.vectors

    def _embed(self, clips: Sequence[np.ndarray], ex: LocalExecutor | None) -> np.ndarray:
        return extract_ivectors(self.T_, *whitened_stats(clips, self.ubm_, executor=ex))

    def _fit_back_end(self, Z: np.ndarray, labels: list[str], calibrate: bool,
                      ex: LocalExecutor | None = None) -> tuple[int, bool]:  # fmt: skip
        """The cosine back end and its calibration (its folds on ``ex``'s threads);
        (T-EM iterations, True)."""
        if len(self.labels_) < 2:
            self.centre_, self.projection_ = Z.mean(0), np.zeros((Z.shape[1], 1))
            self.class_means_ = np.zeros((1, 1))
        else:
            with one_blas_thread():
                self.centre_, self.projection_, self.class_means_ = cosine_back_end(Z, labels)
            if calibrate:
                self.calibration_, _ = self._held_out_calibration(
                    Z, labels, lambda Ztr, ytr, Zte: _cosines(cosine_back_end(Ztr, ytr), Zte), ex
                )
        return len(self.tv_history_) - 1, True

    def _scores(self, Z: np.ndarray) -> np.ndarray:
        return self._calibrated(_cosines((self.centre_, self.projection_, self.class_means_), Z))

    def verification_scores(self, S: np.ndarray, n_frames: np.ndarray) -> np.ndarray:
        """The scores of :meth:`score_matrix`: LLRs already (0 with one class)."""
        return np.asarray(S, dtype=np.float64)
