"""What ``gsv`` and ``ivector`` share: their E-step (:func:`clip_stats`) and
:class:`EmbeddingClassifier` (a UBM as ``--backend map`` trains it, one vector per clip, a back
end on them, LLRs calibrated on clips held out of the back end)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from ..engine import LocalExecutor, resolve
from ..exceptions import ParameterError
from ..mixture import DiagGMM, accumulate
from ..progress import Progress
from ..scoring.verification import CalibrationWarning, bayes_threshold, fit_calibration
from .classifier import check_each
from .ubm import OpenSetClassifier

__all__ = ["GSV_COMPONENTS", "EmbeddingClassifier", "clip_stats"]

logger = logging.getLogger(__name__)

#: UBM size of the supervector backend when none is given: larger than --backend map's 64,
#: as the clip statistics feed a discriminative back end (dev hard speakers, 3 splits:
#: 95.7% at 256 against 95.0% at 64; 3x the training time).
GSV_COMPONENTS = 256


def clip_stats(
    clips: Sequence[np.ndarray], ubm: DiagGMM, *, executor: LocalExecutor | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each clip's Baum-Welch statistics under a fitted UBM, float64 (zero for a clip without
    frames): ``n`` (n_clips, K), ``n_k = sum_t gamma_tk``, and ``F`` (n_clips, K, D), ``F_k =
    sum_t gamma_tk (x_t - mu_k)``. ``executor`` runs the clips (the result does not depend on it).
    """
    prior = ubm.params_
    checked = check_each(clips, ubm.n_dims, min_frames=0)

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


class EmbeddingClassifier(OpenSetClassifier):
    """A UBM, one vector per clip (:meth:`vectors`), a back end scoring it per class, and LLRs
    (``verification_scores``) calibrated by ``calibration_`` (:meth:`_held_out_calibration`).
    Subclasses define those two, ``_check_own``, ``_embed``, ``_fit_back_end``, ``_scores``."""

    fitted_by = "calibration_"

    def fit(
        self, clips: Sequence[np.ndarray], labels: Sequence[str], *, ubm: DiagGMM | None = None,
        progress: Progress = None, executor: LocalExecutor | None = None,
    ) -> EmbeddingClassifier:  # fmt: skip
        """Train the UBM as :meth:`UBMClassifier.fit` does (unless ``ubm``, whose K wins), the
        clips' vectors, then the back end; self (ivector ticks ``progress`` per T-EM step)."""
        self._check_own()
        with resolve(executor, self.n_jobs) as ex:
            checked, labels = self._fit_ubm(clips, labels, ubm, ex)
            self._set_labels(labels)
            Z = self._fit_vectors(checked, ex, progress)
        self.calibration_ = None
        n_iter, converged = self._fit_back_end(Z, labels)
        self.fit_report_ = {
            y: {"n_clips": labels.count(y),
                "n_frames": sum(len(X) for X, lab in zip(checked, labels) if lab == y),
                "n_iter": n_iter, "converged": converged}
            for y in self.labels_
        }  # fmt: skip
        return self

    def _fit_vectors(self, clips: Sequence[np.ndarray], ex: LocalExecutor, progress: Progress):
        """The training clips' vectors, (n_clips, P)."""
        return self._embed(clips, ex)

    def vectors(
        self, clips: Sequence[np.ndarray], *, executor: LocalExecutor | None = None
    ) -> np.ndarray:
        """The clips' vectors (supervectors, i-vectors), (n_clips, P)."""
        check_each(clips, self.n_dims)
        return self._embed(clips, executor)

    def score_matrix(
        self, clips: Sequence[np.ndarray], *, executor: LocalExecutor | None = None
    ) -> np.ndarray:
        """Each clip's score for each class, (n_clips, n_labels), float64: gsv's linear scores
        (log posteriors up to a per-clip constant), ivector's calibrated cosines (LLRs)."""
        return self._scores(self.vectors(clips, executor=executor))

    def auto_threshold(self) -> float:
        """The Bayes threshold of calibrated LLRs at equal priors and costs, 0
        (:func:`~audiogmm.scoring.verification.bayes_threshold`)."""
        self._check_fitted()
        if self.calibration_ is None:
            raise ParameterError("reject='auto' needs calibrated scores, which this model has not "
                                 "(it had fewer than 2 training clips in some class): give a "
                                 "number")  # fmt: skip
        return bayes_threshold(0.5)

    def _held_out_calibration(
        self, Z: np.ndarray, labels: list[str],
        raw_scores: Callable[[np.ndarray, list[str], np.ndarray], np.ndarray],
    ) -> tuple[float, float] | None:  # fmt: skip
        """``fit_calibration`` ``(a, b)`` of the raw scores of clips ``Z`` (n_clips, P) held out
        of the back end (None below 2 clips in a class): ``raw_scores(Z_train, labels_train,
        Z_test)`` (n_test, M), classes sorted. ``min(4, smallest class)`` stratified folds
        (every class trains in every fold), drawn with ``random_state``."""
        y = np.array(labels)
        classes = sorted(set(labels))
        k = min(4, min(labels.count(c) for c in classes))
        if k < 2:
            return None
        rng = np.random.default_rng(self.random_state)
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

    def _calibrated(self, raw: np.ndarray) -> np.ndarray:
        """``a raw + b`` with ``(a, b) = calibration_``; ``raw`` itself without one."""
        if self.calibration_ is None:
            return raw
        a, b = self.calibration_
        return a * raw + b
