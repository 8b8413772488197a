"""What the back ends over a UBM's clip statistics (``gsv``, ``ivector``) share.

:func:`clip_stats` is their one E-step: each clip's zeroth and first-order Baum-Welch
statistics under the UBM. :class:`EmbeddingClassifier` trains the UBM as ``--backend
map`` does, keeps the fit report, and turns a back end's class scores into verification
scores calibrated to LLRs (:func:`held_out_calibration`, on clips held out of the back
end) and open-set decisions on them.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..engine import LocalExecutor, resolve
from ..exceptions import ParameterError
from ..mixture import DiagGMM, accumulate
from ..mixture.sources import check_frames
from ..scoring.calibration import CalibrationWarning, bayes_threshold, fit_calibration
from .classifier import GMMClassifier
from .ubm import UNKNOWN, UBMClassifier, parse_reject

__all__ = ["GSV_COMPONENTS", "EmbeddingClassifier", "clip_stats"]

logger = logging.getLogger(__name__)

#: UBM size of the supervector backend when none is given: larger than --backend map's 64,
#: as the clip statistics feed a discriminative back end (dev hard speakers, 3 splits:
#: 95.7% at 256 against 95.0% at 64; 3x the training time).
GSV_COMPONENTS = 256


def clip_stats(
    clips: Sequence[np.ndarray], ubm: DiagGMM, *, executor: LocalExecutor | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each clip's zeroth and first-order Baum-Welch statistics under a fitted UBM.

    The one E-step of the back ends over a UBM (:func:`supervectors`, the i-vector
    extractor): :func:`~audiogmm.mixture.accumulate` on each clip, float64. A clip without
    frames gets zero statistics; ``executor`` runs the clips concurrently (the result does
    not depend on it).

    Returns
    -------
    n : ndarray of shape (n_clips, K)
        ``n_k = sum_t gamma_tk``.
    F : ndarray of shape (n_clips, K, D)
        ``F_k = sum_t gamma_tk (x_t - mu_k)``: centred on each component's UBM mean.
    """
    prior = ubm.params_
    checked = [
        check_frames(X, n_dims=ubm.n_dims, name=f"clip {i}", min_frames=0)
        for i, X in enumerate(clips)
    ]

    def one(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # one clip's statistics, serially: the executor parallelises over clips
        s = accumulate(X, prior)
        return s.n, s.F - s.n[:, None] * (prior.means - s.shift)

    K, D = prior.means.shape
    if not checked:
        return np.zeros((0, K)), np.zeros((0, K, D))
    with resolve(executor, getattr(ubm, "n_jobs", None)) as ex:
        parts = list(ex.map(one, checked))
    return np.stack([n for n, _ in parts]), np.stack([F for _, F in parts])


def held_out_calibration(
    Z: np.ndarray,
    labels: list[str],
    raw_scores: Callable[[np.ndarray, list[str], np.ndarray], np.ndarray],
    seed: int | None,
) -> tuple[float, float] | None:
    """``fit_calibration`` of the raw verification scores of clips held out of the back end.

    Parameters
    ----------
    Z : ndarray of shape (n_clips, P)
        The clips' vectors (supervectors, i-vectors), with their ``labels``.
    labels : list of str, length n_clips
    raw_scores : callable
        ``raw_scores(Z_train, labels_train, Z_test)``: the back end trained on the first
        two, the raw score of each test clip against each class (sorted), (n_test, M).
    seed : int or None
        Of the fold assignment: stratified folds (``min(4, smallest class)``, so every
        class trains in every fold); every held-out clip is scored against every class.

    Returns
    -------
    (a, b) or None
        None below 2 clips in a class.
    """
    y = np.array(labels)
    classes = sorted(set(labels))
    k = min(4, min(labels.count(c) for c in classes))
    if k < 2:
        return None
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=np.int64)
    for c in classes:
        idx = np.flatnonzero(y == c)
        fold[rng.permutation(idx)] = np.arange(len(idx)) % k
    raw = np.empty((len(y), len(classes)))
    for f in range(k):
        out = fold == f
        raw[out] = raw_scores(Z[~out], list(y[~out]), Z[out])
    target = (y[:, None] == np.array(classes)[None, :]).astype(np.int64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CalibrationWarning)
        a, b = fit_calibration(target.ravel(), raw.ravel())
    for w in caught:  # easy training data: nothing the user can act on at train time
        logger.info("calibration: %s", w.message)
    return a, b


class EmbeddingClassifier(GMMClassifier):
    """What the back ends over a UBM's clip statistics (gsv, ivector) share.

    A UBM trained as ``--backend map`` trains it, one vector per clip, a back end giving
    each clip a score per class (:meth:`score_matrix`), verification scores calibrated to
    LLRs (:meth:`llr_from_scores`) and open-set rejection on them. Subclasses set
    ``calibration_`` in ``fit`` and define :meth:`score_matrix` and :meth:`llr_from_scores`.
    """

    #: The subclass's own constructor parameters (its file block and its repr).
    own_params: tuple[str, ...] = ()

    def __init__(
        self,
        n_components: int = GSV_COMPONENTS,
        *,
        subsample: int = 4,
        priors: dict[str, float] | None = None,
        n_jobs: int | None = None,
        random_state: int | None = 0,
        **gmm_params: Any,
    ) -> None:
        super().__init__(
            n_components, priors=priors, n_jobs=n_jobs, random_state=random_state, **gmm_params
        )
        self.subsample = subsample

    def __repr__(self) -> str:
        own = "".join(f", {k}={getattr(self, k)!r}" for k in self.own_params)
        extra = "".join(f", {k}={v!r}" for k, v in sorted(self.gmm_params.items()))
        return f"{type(self).__name__}({self.n_components}{own}{extra})"

    def _ubm_classifier(self) -> UBMClassifier:
        """The GMM-UBM whose UBM (and checks of K, subsample) this back end shares."""
        return UBMClassifier(
            self.n_components, subsample=self.subsample, n_jobs=self.n_jobs,
            random_state=self.random_state, **self.gmm_params,
        )  # fmt: skip

    def _fit_ubm(self, clips, labels, ubm, progress, ex) -> list[str]:
        """Train (or take) the UBM as ``--backend map`` does; the labels as str."""
        labels = [str(y) for y in labels]
        # UBMClassifier validates the clips and trains the UBM exactly as --backend map does
        self.ubm_ = (
            self._ubm_classifier().fit(clips, labels, ubm=ubm, progress=progress, executor=ex).ubm_
        )
        self.n_components = self.ubm_.n_components
        self.labels_ = sorted(set(labels))
        if len(self.labels_) < 2:
            logger.warning("only one class (%r): every clip will be given that label", labels[0])
        return labels

    def _report(self, clips, labels: list[str], n_iter: int, converged: bool) -> None:
        self.fit_report_ = {
            y: {
                "n_clips": labels.count(y),
                "n_frames": int(sum(len(X) for X, lab in zip(clips, labels) if lab == y)),
                "n_iter": n_iter,
                "converged": converged,
            }  # fmt: skip
            for y in self.labels_
        }
        self.ubm_report_ = dict(getattr(self.ubm_, "fit_report_", {}))

    def _check_fitted(self) -> None:
        if not hasattr(self, "calibration_"):
            raise ParameterError(
                f"this {type(self).__name__} is not fitted yet; call fit() or load()"
            )

    @property
    def n_dims(self) -> int:
        """Feature dimension D of a fitted classifier."""
        self._check_fitted()
        return self.ubm_.n_dims

    def _checked_clips(self, clips: Sequence[np.ndarray]) -> None:
        self._check_fitted()
        for i, X in enumerate(clips):
            check_frames(X, n_dims=self.n_dims, name=f"clip {i}", min_frames=1)

    def llr_from_scores(self, S: np.ndarray) -> np.ndarray:
        """Verification scores (calibrated LLRs) from a :meth:`score_matrix` result."""
        raise NotImplementedError

    def score_samples(
        self, clips: Sequence[np.ndarray], *, executor: LocalExecutor | None = None
    ) -> np.ndarray:
        """Verification scores: each class's LLR against all the others, (n_clips, n_labels),
        nats (:meth:`llr_from_scores` of :meth:`score_matrix`; 0 with one class).
        """
        return self._llr(self.score_matrix(clips, executor=executor))

    def _llr(self, S: np.ndarray) -> np.ndarray:
        return np.zeros_like(S) if S.shape[1] < 2 else self.llr_from_scores(S)

    def _calibrated(self, raw: np.ndarray) -> np.ndarray:
        """``a raw + b`` with ``(a, b) = calibration_``; ``raw`` itself without one."""
        if self.calibration_ is None:
            return raw
        a, b = self.calibration_
        return a * raw + b

    def resolve_threshold(self, reject: str | float | None) -> float | None:
        """The LLR threshold (nats) that ``reject`` (None, "auto" or a number) means.

        ``"auto"`` is the Bayes threshold of calibrated LLRs at equal priors and costs,
        ``0`` (:func:`~audiogmm.scoring.calibration.bayes_threshold`): a clip is rejected
        when the evidence is against its best class. ParameterError for ``"auto"`` on a
        model whose scores are not calibrated, or a bad value.
        """
        self._check_fitted()
        auto = None if self.calibration_ is None else bayes_threshold(0.5)
        return parse_reject(reject, auto, "reject='auto' needs calibrated scores, which this "
                            "model has not (it had fewer than 2 training clips in some class): "
                            "give a number")  # fmt: skip

    def predict(
        self, clips: Sequence[np.ndarray], *, reject: str | float | None = None
    ) -> np.ndarray:
        """Most likely class of each clip, (n_clips,), object; :data:`~audiogmm.models.ubm.UNKNOWN`
        when its LLR is below the threshold ``reject`` means (:meth:`resolve_threshold`).
        """
        thr = self.resolve_threshold(reject)
        S = self.score_matrix(clips)
        out = np.array(self.labels_, dtype=object)[self.log_proba_from_scores(S).argmax(1)]
        if thr is not None:
            out[self.rejection_scores(S, np.array([len(X) for X in clips])) < thr] = UNKNOWN
        return out

    def rejection_scores(self, S: np.ndarray, n_frames: np.ndarray) -> np.ndarray:
        """The score each clip's best class is rejected on: its LLR (:meth:`llr_from_scores` of
        ``S``, a :meth:`score_matrix`), (n_clips,); ``n_frames`` is unused here (the per-frame
        LLR of ``--backend map`` needs it).
        """
        best = self.log_proba_from_scores(S).argmax(1)
        return self._llr(S)[np.arange(len(best)), best]
