"""Late fusion: one decision from classifiers of the same labels on different features.

Each member is a :class:`~audiogmm.models.GMMClassifier` trained on its own front end
(the pipeline keeps the feature configurations; this module knows nothing of audio).
A clip's fused score for a class is ``sum_m a_m S_m / n_m``: each member's per-frame
average log-likelihood of the class, weighted. The weights ``a_m`` are fitted by
multinomial logistic regression on held-out scores (:func:`fit_fusion`, run by
``--preset auto`` on its cross-validation scores), so the fused scores are calibrated
class log posteriors up to a per-clip constant, and a weak member counts for less.
Files written before the weights existed hold none: they keep the old rule, each
member's total rescaled to the first member's frame count and added.

The file (:mod:`audiogmm.io`) holds every member's arrays and fields, each checked as
a single :class:`GMMClassifier` file's, and the ``fusion_weights``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..engine import LocalExecutor
from ..exceptions import ParameterError
from ..io.tables import MAX_MEMBERS
from ..scoring.calibration import newton_minimise
from .classifier import GMMClassifier, ModelFile
from .supervector import raw_llr

__all__ = ["FusedClassifier", "fit_fusion"]

#: L2 penalty on the fusion weights (per clip): negligible on overlapping scores, and
#: what keeps the weights finite when the held-out scores separate the classes.
FUSION_RIDGE = 1e-4


def fuse_scores(
    scores: Sequence[np.ndarray], n_frames: Sequence[np.ndarray],
    weights: Sequence[float] | None = None,
) -> np.ndarray:  # fmt: skip
    """Members' total log-likelihoods fused into one score matrix, (n_clips, n_labels).

    ``scores[m]`` (n_clips, n_labels): member ``m``'s totals over ``n_frames[m]`` (n_clips,)
    frames. With ``weights`` (one per member, :func:`fit_fusion`) the result is
    ``sum_m a_m S_m[i] / n_m[i]``; with None, the sum rule of files without weights,
    ``sum_m S_m[i] n_0[i] / n_m[i]``.
    """
    per_frame = [np.asarray(S, dtype=np.float64) / np.maximum(np.asarray(n, dtype=np.float64),
                                                              1.0)[:, np.newaxis]
                 for S, n in zip(scores, n_frames)]  # fmt: skip
    if weights is None:
        return sum(per_frame) * np.asarray(n_frames[0], dtype=np.float64)[:, np.newaxis]
    return sum(a * A for a, A in zip(weights, per_frame))


def fit_fusion(
    scores: Sequence[np.ndarray], n_frames: Sequence[np.ndarray], y: np.ndarray
) -> list[float]:
    """Member weights of a fusion by multinomial logistic regression on held-out scores.

    Fits ``P(c | clip) = softmax_c(sum_m a_m S_m[i, c] / n_m[i])`` (a linear fusion with
    one weight per member, shared by the classes: FoCal/BOSARIS multi-class fusion) by
    Newton's method on the mean cross-entropy plus ``FUSION_RIDGE / 2 * |a|^2``.

    Parameters
    ----------
    scores : sequence of ndarray, each of shape (n_clips, n_labels)
        Held-out total log-likelihoods of each member (clips never trained on).
    n_frames : sequence of ndarray, each of shape (n_clips,)
    y : ndarray of shape (n_clips,), int
        Column of each clip's true class.

    Returns
    -------
    list of float
        One finite weight per member (ParameterError: no clips, or mismatched shapes).
    """
    y = np.asarray(y)
    X = np.stack([fuse_scores([S], [n], [1.0]) for S, n in zip(scores, n_frames)], axis=-1)
    if X.ndim != 3 or not len(X) or X.shape[0] != len(y):
        raise ParameterError(f"fusion needs held-out scores of the same clips as y; got {X.shape}")
    X = X - X.max(axis=1, keepdims=True)  # softmax is blind to a per-clip shift
    N, L, M = X.shape
    Xy = X[np.arange(N), y]  # (N, M)
    a = np.full(M, float(np.mean(n_frames[0])) if len(n_frames[0]) else 1.0)  # the sum rule

    def loss(a: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        Z = X @ a
        lse = np.logaddexp.reduce(Z, axis=1)
        P = np.exp(Z - lse[:, None])
        EX = np.einsum("nl,nlm->nm", P, X)
        f = float(np.mean(lse - Xy @ a)) + 0.5 * FUSION_RIDGE * float(a @ a)
        g = (EX - Xy).mean(0) + FUSION_RIDGE * a
        H = np.einsum("nl,nlm,nlk->mk", P, X, X) / N - EX.T @ EX / N + FUSION_RIDGE * np.eye(M)
        return f, g, H

    a = newton_minimise(loss, a)
    return [float(v) for v in a]


class FusedClassifier(ModelFile):
    """Several classifiers of the same labels, one per front end, decided together.

    Parameters
    ----------
    members : sequence of GMMClassifier
        2 to :data:`MAX_MEMBERS` fitted classifiers with the same ``labels_`` (in the
        same order) and the same priors.
    weights : sequence of float, optional
        One per member (:func:`fit_fusion`); None keeps the sum rule of older files.

    Attributes
    ----------
    members, weights, labels_
        As given; the shared labels.
    fit_report_ : dict
        The first member's per-class training report.
    """

    def __init__(
        self, members: Sequence[GMMClassifier], weights: Sequence[float] | None = None
    ) -> None:
        members = list(members)
        if not 2 <= len(members) <= MAX_MEMBERS:
            raise ParameterError(
                f"a fused model needs 2 to {MAX_MEMBERS} members, got {len(members)}"
            )
        for i, m in enumerate(members):
            if not isinstance(m, GMMClassifier) or not hasattr(m, "labels_"):
                raise ParameterError(f"member {i} is not a fitted GMMClassifier")
            if list(m.labels_) != list(members[0].labels_):
                raise ParameterError(f"member {i} has other labels than member 0")
            if m.priors != members[0].priors:
                raise ParameterError(f"member {i} has other priors than member 0")
        if weights is not None:
            weights = [float(a) for a in weights]
            if len(weights) != len(members) or not all(map(math.isfinite, weights)):
                raise ParameterError(f"a fused model needs one finite weight per member; "
                                     f"got {weights!r} for {len(members)}")  # fmt: skip
        self.members = members
        self.weights = weights
        self.labels_ = list(members[0].labels_)
        self.fit_report_ = members[0].fit_report_
        self.timing_: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"FusedClassifier({len(self.members)} members, {len(self.labels_)} labels)"

    @property
    def n_components(self) -> int:
        """The largest number of components of any member."""
        return max(m.n_components for m in self.members)

    @property
    def n_dims(self) -> tuple[int, ...]:
        """Feature dimension of each member."""
        return tuple(m.n_dims for m in self.members)

    def score_matrix(
        self, clip_sets: Sequence[Sequence[np.ndarray]], *, executor: LocalExecutor | None = None
    ) -> np.ndarray:
        """Fused total log-likelihood of every clip under every class, (n_clips, n_labels).

        ``clip_sets[m][i]``: clip ``i``'s frames under member ``m``'s front end, shape
        (n_frames_mi >= 1, n_dims_m). The result is :func:`fuse_scores` of the members' totals,
        columns in the order of ``labels_``.
        """
        if len(clip_sets) != len(self.members):
            raise ParameterError(f"{len(clip_sets)} sets of clips for {len(self.members)} members")
        n_clips = len(clip_sets[0])
        if any(len(c) != n_clips for c in clip_sets):
            raise ParameterError("every member needs the same clips")
        if not n_clips:
            return np.zeros((0, len(self.labels_)))
        return fuse_scores(
            [m.score_matrix(clips, executor=executor) for m, clips in zip(self.members, clip_sets)],
            [np.array([len(X) for X in clips]) for clips in clip_sets],
            self.weights,
        )

    def verification_scores(self, scores: np.ndarray) -> np.ndarray:
        """Each class's LLR against all the others from :meth:`score_matrix`, (n_clips, n_labels).

        ``log [p(c | x) / (1 - p(c | x))] + log(M - 1)``, nats (0 with one class), as
        :class:`~audiogmm.models.GSVClassifier` scores; calibrated when the fusion weights
        were fitted (:func:`fit_fusion`).
        """
        S = np.asarray(scores, dtype=np.float64)
        return np.zeros_like(S) if S.shape[1] < 2 else raw_llr(S)

    def log_proba_from_scores(self, scores: np.ndarray) -> np.ndarray:
        """Class log posteriors from a :meth:`score_matrix` result (softmax with log priors)."""
        return self.members[0].log_proba_from_scores(scores)

    def predict(self, clip_sets: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
        """Most likely class of each clip, shape (n_clips,), dtype object."""
        LP = self.log_proba_from_scores(self.score_matrix(clip_sets))
        if not len(LP):
            return np.array([], dtype=object)
        return np.array(self.labels_, dtype=object)[LP.argmax(1)]

