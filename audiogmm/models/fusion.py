"""Late fusion of classifiers of the same labels, each on its own front end and of any backend:
a clip's score for a class is ``sum_m a_m S_m / n_m``, each member's scores per frame (``n_m``
the clip's frames: ml, map) or per clip (``n_m = 1``: gsv, ivector), weighted by
:func:`fit_fusion` (calibrated log posteriors up to a per-clip constant); files without
weights (ml members only) keep the old sum rule (:func:`fuse_scores`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..engine import LocalExecutor
from ..exceptions import ParameterError
from ..scoring.verification import bayes_threshold, newton_minimise
from .classifier import GMMClassifier, ModelFile, decide, raw_llr

__all__ = ["MAX_MEMBERS", "FusedClassifier", "fit_fusion"]

#: Most members a fused model may hold (each costs one feature extraction per clip).
MAX_MEMBERS = 4
#: L2 penalty on the fusion weights (per clip): negligible on overlapping scores, and
#: what keeps the weights finite when the held-out scores separate the classes.
FUSION_RIDGE = 1e-4


def fuse_scores(scores: Sequence[np.ndarray], n_frames: Sequence[np.ndarray],
                weights: Sequence[float] | None = None) -> np.ndarray:  # fmt: skip
    """Members' total log-likelihoods ``scores[m]`` (n_clips, n_labels) over ``n_frames[m]``
    (n_clips,) frames fused, (n_clips, n_labels): ``sum_m a_m S_m[i] / n_m[i]`` with the
    ``weights``, or with None the old sum rule ``sum_m S_m[i] n_0[i] / n_m[i]``."""
    per_frame = [np.asarray(S, dtype=np.float64)
                 / np.maximum(np.asarray(n, dtype=np.float64), 1.0)[:, np.newaxis]
                 for S, n in zip(scores, n_frames)]  # fmt: skip
    if weights is None:
        return sum(per_frame) * np.asarray(n_frames[0], dtype=np.float64)[:, np.newaxis]
    return sum(a * A for a, A in zip(weights, per_frame))


def fit_fusion(scores: Sequence[np.ndarray], n_frames: Sequence[np.ndarray],
               y: np.ndarray) -> list[float]:  # fmt: skip
    """One finite weight per member: ``P(c | clip) = softmax_c(sum_m a_m S_m[i, c] / n_m[i])``
    (FoCal/BOSARIS multi-class fusion) fitted by Newton on the mean cross-entropy plus
    ``FUSION_RIDGE / 2 * |a|^2``, on held-out :func:`fuse_scores` inputs with ``y`` (n_clips,)
    each clip's true column. ParameterError: no clips, or mismatched shapes."""
    y = np.asarray(y)
    X = np.stack([fuse_scores([S], [n], [1.0]) for S, n in zip(scores, n_frames)], axis=-1)
    if X.ndim != 3 or not len(X) or X.shape[0] != len(y):
        raise ParameterError(f"fusion needs held-out scores of the same clips as y; got {X.shape}")
    X = X - X.max(axis=1, keepdims=True)  # softmax is blind to a per-clip shift
    N, L, M = X.shape
    Xy = X[np.arange(N), y]  # (N, M)
    a = np.full(M, float(np.mean(n_frames[0])))  # the sum rule

    def loss(a: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        Z = X @ a
        lse = np.logaddexp.reduce(Z, axis=1)
        P = np.exp(Z - lse[:, None])
        EX = np.einsum("nl,nlm->nm", P, X)
        f = float(np.mean(lse - Xy @ a)) + 0.5 * FUSION_RIDGE * float(a @ a)
        g = (EX - Xy).mean(0) + FUSION_RIDGE * a
        H = np.einsum("nl,nlm,nlk->mk", P, X, X) / N - EX.T @ EX / N + FUSION_RIDGE * np.eye(M)
        return f, g, H
    return [float(v) for v in newton_minimise(loss, a)]


def member_frames(member: GMMClassifier, clips: Sequence[np.ndarray]) -> np.ndarray:
    """What the fusion divides ``member``'s scores of ``clips`` by (n_clips,): each clip's
    frames when its scores sum over them, else 1 (:attr:`GMMClassifier.scores_per_frame`)."""
    if member.scores_per_frame:
        return np.array([len(X) for X in clips])
    return np.ones(len(clips), dtype=np.int64)


class FusedClassifier(ModelFile):
    """``members``: 2 to :data:`MAX_MEMBERS` fitted classifiers of any backend (ml, map, gsv,
    ivector) with the same ``labels_`` and priors, one per front end and backend; ``weights``:
    one per member (:func:`fit_fusion`), None for the sum rule (ml and map members only).
    Attributes: those two, ``labels_`` and ``fit_report_`` (the first member's)."""

    def __init__(self, members: Sequence[GMMClassifier],
                 weights: Sequence[float] | None = None) -> None:  # fmt: skip
        members = list(members)
        if not 2 <= (n := len(members)) <= MAX_MEMBERS:
            raise ParameterError(f"a fused model needs 2 to {MAX_MEMBERS} members, got {n}")
        for i, m in enumerate(members):
            if not isinstance(m, GMMClassifier) or not hasattr(m, "labels_"):
                raise ParameterError(f"member {i} is not a fitted GMMClassifier")
            if list(m.labels_) != list(members[0].labels_):
                raise ParameterError(f"member {i} has other labels than member 0")
            if m.priors != members[0].priors:
                raise ParameterError(f"member {i} has other priors than member 0")
        if weights is None and not all(m.scores_per_frame for m in members):
            raise ParameterError("a fusion with a gsv or ivector member needs fitted weights")
        if weights is not None:
            weights = [float(a) for a in weights]
            if len(weights) != n or not all(map(math.isfinite, weights)):
                raise ParameterError(f"a fused model needs one finite weight per member; "
                                     f"got {weights!r} for {n}")  # fmt: skip
        self.members, self.weights = members, weights
        self.labels_, self.fit_report_ = list(members[0].labels_), members[0].fit_report_
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

    def score_matrix(self, clip_sets: Sequence[Sequence[np.ndarray]], *,
                     executor: LocalExecutor | None = None) -> np.ndarray:  # fmt: skip
        """:func:`fuse_scores` of the members' scores (n_clips, n_labels); ``clip_sets[m][i]``:
        clip ``i``'s frames (n_frames_mi >= 1, n_dims_m) under member ``m``'s front end."""
        if len(clip_sets) != len(self.members):
            raise ParameterError(f"{len(clip_sets)} sets of clips for {len(self.members)} members")
        n_clips = len(clip_sets[0])
        if any(len(c) != n_clips for c in clip_sets):
            raise ParameterError("every member needs the same clips")
        return fuse_scores(
            [m.score_matrix(clips, executor=executor) for m, clips in zip(self.members, clip_sets)],
            [member_frames(m, clips) for m, clips in zip(self.members, clip_sets)],
            self.weights,
        )

    def verification_scores(self, scores: np.ndarray, n_frames: np.ndarray | None = None,
                            ) -> np.ndarray:  # fmt: skip
        """Each class's LLR against the others (n_clips, n_labels), nats: the ``raw_llr`` of a
        :meth:`score_matrix` result (0 with one class), calibrated when weights were fitted
        (their logistic regression makes the fused scores log posteriors); ``n_frames``, as
        the single models take it, is not needed."""
        S = np.asarray(scores, dtype=np.float64)
        return np.zeros_like(S) if S.shape[1] < 2 else raw_llr(S)

    # open set as the single models: the best class's verification score against a threshold
    resolve_threshold = GMMClassifier.resolve_threshold
    rejection_scores = GMMClassifier.rejection_scores

    def auto_threshold(self) -> float:
        """0, the Bayes threshold of calibrated LLRs at equal priors and costs, when the
        weights were fitted (:func:`fit_fusion`); a file of the old sum rule has none."""
        if self.weights is None:
            raise ParameterError("reject='auto' needs a fusion with fitted weights (this file "
                                 "sums its members' scores, uncalibrated): give a number, the "
                                 "fused score of the best class against the others")  # fmt: skip
        return bayes_threshold(0.5)

    def log_proba_from_scores(self, scores: np.ndarray) -> np.ndarray:
        """Class log posteriors from a :meth:`score_matrix` result (softmax with log priors)."""
        return self.members[0].log_proba_from_scores(scores)

    def predict(self, clip_sets: Sequence[Sequence[np.ndarray]], *,
                reject: str | float | None = None) -> np.ndarray:  # fmt: skip
        """Most likely class of each clip (n_clips,), object, by the single models' rule
        (:func:`~audiogmm.models.classifier.decide`): ``classifier.UNKNOWN`` where the fused
        LLR of the best class is below the threshold ``reject`` means."""
        return decide(self, self.score_matrix(clip_sets), None, self.resolve_threshold(reject))

