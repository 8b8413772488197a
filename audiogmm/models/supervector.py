"""GMM supervectors (Campbell, Sturim & Reynolds 2006): a clip's MAP-adapted UBM means as
offsets scaled by ``sqrt(w_k) / sigma_k`` (:func:`supervectors`; their inner product is the
linearised KL kernel), classified by scikit-learn's multinomial logistic regression (the
``sklearn`` extra, imported only here) into log posteriors up to a constant; a class's
verification score is its posterior odds over its prior odds, an LLR."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..engine import LocalExecutor, one_blas_thread
from ..exceptions import ConvergenceWarning, ParameterError
from ..mixture import DiagGMM, log_softmax
from ..mixture.checks import is_real, need
from .ubm import GSV_COMPONENTS, EmbeddingClassifier, clip_stats

__all__ = ["GSVClassifier", "supervectors"]

#: Iteration budget of each logistic regression.
_MAX_ITER = 1000


def supervectors(clips: Sequence[np.ndarray], ubm: DiagGMM, *, relevance: float = 16.0,
                 executor: LocalExecutor | None = None) -> np.ndarray:  # fmt: skip
    """MAP-mean supervectors (n_clips, K * D), float64, of clips under a fitted UBM: row ``i``
    is ``sqrt(w_k) (mu'_ikd - mu_kd) / sigma_kd`` in (k, d) order, ``mu'_ik - mu_k = F_ik /
    (n_ik + relevance)`` (:func:`clip_stats`; 0 where ``n_ik = 0``); ``executor`` as there."""
    prior = ubm.params_
    scale = np.sqrt(prior.weights)[:, None] / np.sqrt(prior.variances)
    n, F = clip_stats(clips, ubm, executor=executor)
    r = float(relevance)
    if not r >= 0:
        raise ParameterError(f"relevance must be a number >= 0 (inf: the prior); got {relevance!r}")
    den = (n + r)[:, :, None]
    # a component without frames keeps the prior (offset 0), also when r = 0
    off = np.divide(F, den, out=np.zeros_like(F), where=den > 0)
    return (off * scale).reshape(len(F), F.shape[1] * F.shape[2])


def log_odds(log_post: np.ndarray) -> np.ndarray:
    """Log odds ``log p / (1 - p)`` of log probabilities ``log_post`` (<= 0), precise at
    both ends; ``+inf`` where ``p == 1``."""
    lp = np.minimum(np.asarray(log_post, dtype=np.float64), 0.0)
    with np.errstate(divide="ignore"):  # p == 1: log(1 - p) = -inf, odds +inf
        # log(1 - e^lp): expm1 near p = 1, log1p near p = 0 (Maechler's log1mexp)
        l1m = np.where(lp > -math.log(2.0), np.log(-np.expm1(lp)), np.log1p(-np.exp(lp)))
    return lp - l1m


def raw_llr(S: np.ndarray) -> np.ndarray:
    """Posterior log odds of each class over its prior odds 1 : (M - 1), clipped finite, from
    class scores ``S`` (n_clips, M >= 2) that are log posteriors up to a per-clip constant."""
    return np.clip(log_odds(log_softmax(S)) + math.log(S.shape[1] - 1), -1e6, 1e6)


def _logistic(Z: np.ndarray, labels: Sequence[str], C: float,
              seed: int | None) -> tuple[np.ndarray, np.ndarray, int]:  # fmt: skip
    """Multinomial logistic regression ``(coef (M, P), intercept (M,), n_iter)``, classes sorted."""
    from sklearn.linear_model import LogisticRegression  # the sklearn extra, only here

    lr = LogisticRegression(C=C, max_iter=_MAX_ITER, random_state=seed)
    # small dense problems: one BLAS thread is ~100x faster than a pool on a busy machine
    with one_blas_thread(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lr.fit(Z, labels)
    for w in caught:  # sklearn's ConvergenceWarning, as ours
        warnings.warn(f"logistic regression: {w.message}", ConvergenceWarning, stacklevel=3)
    coef, icpt = lr.coef_, lr.intercept_
    if coef.shape[0] == 1:  # two classes: sklearn's one decision function z as (-z/2, z/2)
        coef, icpt = np.concatenate([-coef, coef]) / 2, np.array([-icpt[0], icpt[0]]) / 2
    return coef, icpt, int(np.max(lr.n_iter_))


class GSVClassifier(EmbeddingClassifier):
    """GMM supervectors of one UBM, classified by multinomial logistic regression.

    Parameters
    ----------
    n_components : int > 0, default=256
        UBM components K (:data:`GSV_COMPONENTS`).
    relevance : float >= 0, default=4.0
        MAP relevance of each clip's means (:func:`supervectors`); below map's 16, as a clip
        has far fewer frames than a class (dev hard speakers: 4 beat 16 by 0.3-0.9 points).
    C : float > 0, default=10.0
        Inverse L2 strength of the logistic regression, on supervectors of RMS length 1.
    subsample, priors, n_jobs, random_state, **gmm_params
        As for :class:`UBMClassifier` (priors on top of the training proportions).

    Attributes
    ----------
    labels_, ubm_, calibration_
        As for :class:`UBMClassifier` and :class:`~audiogmm.models.ubm.EmbeddingClassifier`.
    coef_ : ndarray of shape (n_labels, K * D)
    intercept_ : ndarray of shape (n_labels,)
        Class score of a supervector ``s``: ``coef_ @ s + intercept_``.
    """

    own_params = ("relevance", "C", "subsample")

    def __init__(self, n_components: int = GSV_COMPONENTS, *, relevance: float = 4.0,
                 C: float = 10.0, subsample: int = 4, priors: dict[str, float] | None = None,
                 n_jobs: int | None = None, random_state: int | None = 0,
                 **gmm_params: Any) -> None:  # fmt: skip
        self._keep(locals())

    def _check_own(self) -> None:
        need(self, is_real(self.C) and self.C > 0, "C", "a finite number > 0")
        r = self.relevance
        need(self, is_real(r, finite=False) and r >= 0, "relevance", "a number >= 0")

    def _embed(self, clips: Sequence[np.ndarray], ex: LocalExecutor | None) -> np.ndarray:
        return supervectors(clips, self.ubm_, relevance=self.relevance, executor=ex)

    def _fit_back_end(self, sv: np.ndarray, labels: list[str]) -> tuple[int, bool]:
        """The logistic regression and its calibration; (n_iter, converged)."""
        if len(self.labels_) < 2:
            self.coef_, self.intercept_ = np.zeros((1, sv.shape[1])), np.zeros(1)
            return 0, True
        # one global scale (the RMS length of the training supervectors) makes C mean
        # the same for any K and D; it is folded into the stored coefficients
        scale = float(np.sqrt(np.mean(np.sum(sv * sv, 1)))) or 1.0
        Z, basis = sv / scale, None
        if Z.shape[0] < Z.shape[1]:
            # the L2-penalised weights lie in the span of the training vectors: the same
            # problem on coordinates in a basis of it, n_clips instead of K * D unknowns
            with one_blas_thread():
                basis = np.linalg.svd(Z, full_matrices=False)[2]  # (n_clips, K * D)
            Z = Z @ basis.T
        C, seed = float(self.C), self.random_state
        coef, icpt, n_iter = _logistic(Z, labels, C, seed)

        def raw(Ztr, ytr, Zte):
            c, i, _ = _logistic(Ztr, ytr, C, seed)
            return raw_llr(Zte @ c.T + i)
        self.calibration_ = self._held_out_calibration(Z, labels, raw)
        coef = (coef if basis is None else coef @ basis) / scale
        self.coef_, self.intercept_ = np.asarray(coef, np.float64), np.asarray(icpt, np.float64)
        return n_iter, n_iter < _MAX_ITER

    def _scores(self, sv: np.ndarray) -> np.ndarray:
        return sv @ self.coef_.T + self.intercept_

    def verification_scores(self, S: np.ndarray, n_frames: np.ndarray) -> np.ndarray:
        """Each class's LLR against all the others (n_clips, n_labels), nats (0 with one class):
        the :func:`raw_llr` of ``S``, calibrated by :attr:`calibration_` when there is one."""
        return np.zeros_like(S) if S.shape[1] < 2 else self._calibrated(raw_llr(S))
