"""Late fusion: one decision from classifiers of the same labels on different features.

Each member is a :class:`~audiogmm.models.GMMClassifier` trained on its own front end
(the pipeline keeps the feature configurations; this module knows nothing of audio).
A clip's fused score for a class is the sum over members of that member's total
log-likelihood, each rescaled to the first member's frame count: the members' per-frame
average log-likelihoods are added, on the scale of the first member's total, so that
priors and posteriors work as for one classifier. With equal frame rates this is the
plain sum of the members' totals.

The file holds every member's arrays (``m<i>_weights``, ``m<i>_means``,
``m<i>_variances``, ``m<i>_var_floors``) and, in the header, the shared ``labels`` and
one ``members`` entry per member with the classifier's own fields; each member goes
through the same checks as a single :class:`GMMClassifier` file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..engine import LocalExecutor
from ..exceptions import ParameterError
from ..io.tables import MAX_MEMBERS
from .classifier import GMMClassifier

__all__ = ["MAX_MEMBERS", "FusedClassifier", "fuse_scores"]


def fuse_scores(scores: Sequence[np.ndarray], n_frames: Sequence[np.ndarray]) -> np.ndarray:
    """Members' total log-likelihoods fused: each rescaled to the first member's frames, added.

    Parameters
    ----------
    scores : sequence of ndarray, each of shape (n_clips, n_labels)
        One score matrix per member (totals over the frames counted in ``n_frames``).
    n_frames : sequence of ndarray, each of shape (n_clips,)
        Frames behind each clip's totals, per member.

    Returns
    -------
    ndarray of shape (n_clips, n_labels), float64
        ``sum_m S_m[i] * n_0[i] / n_m[i]``.
    """
    n0 = np.asarray(n_frames[0], dtype=np.float64)
    total = np.zeros(np.shape(scores[0]))
    for S, n in zip(scores, n_frames):
        scale = n0 / np.maximum(np.asarray(n, dtype=np.float64), 1.0)
        total += np.asarray(S, dtype=np.float64) * scale[:, np.newaxis]
    return total


class FusedClassifier:
    """Several classifiers of the same labels, one per front end, decided together.

    Parameters
    ----------
    members : sequence of GMMClassifier
        2 to :data:`MAX_MEMBERS` fitted classifiers with the same ``labels_`` (in the
        same order) and the same priors.

    Attributes
    ----------
    members : list of GMMClassifier
    labels_ : list of str
    fit_report_ : dict
        The first member's per-class training report.
    """

    def __init__(self, members: Sequence[GMMClassifier]) -> None:
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
        self.members = members
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
        self,
        clip_sets: Sequence[Sequence[np.ndarray]],
        *,
        executor: LocalExecutor | None = None,
    ) -> np.ndarray:
        """Fused total log-likelihood of every clip under every class.

        Parameters
        ----------
        clip_sets : sequence of sequences of ndarray
            ``clip_sets[m][i]``: clip ``i``'s frames under member ``m``'s front end,
            shape (n_frames_mi, n_dims_m), n_frames_mi >= 1.
        executor : LocalExecutor, optional

        Returns
        -------
        ndarray of shape (n_clips, n_labels), float64
            ``sum_m S_m[i] * n_0i / n_mi`` in nats, columns in the order of ``labels_``.
        """
        if len(clip_sets) != len(self.members):
            raise ParameterError(
                f"{len(clip_sets)} sets of clips for {len(self.members)} members"
            )
        n_clips = len(clip_sets[0])
        if any(len(c) != n_clips for c in clip_sets):
            raise ParameterError("every member needs the same clips")
        if not n_clips:
            return np.zeros((0, len(self.labels_)))
        return fuse_scores(
            [m.score_matrix(clips, executor=executor) for m, clips in zip(self.members, clip_sets)],
            [np.array([len(X) for X in clips]) for clips in clip_sets],
        )

    def log_proba_from_scores(self, scores: np.ndarray) -> np.ndarray:
        """Class log posteriors from a :meth:`score_matrix` result (softmax with log priors)."""
        return self.members[0].log_proba_from_scores(scores)

    def predict(self, clip_sets: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
        """Most likely class of each clip, shape (n_clips,), dtype object."""
        LP = self.log_proba_from_scores(self.score_matrix(clip_sets))
        if not len(LP):
            return np.array([], dtype=object)
        return np.array(self.labels_, dtype=object)[LP.argmax(1)]

    # -- persistence -------------------------------------------------------------------------

    def save(self, path: str | os.PathLike, *, extra: dict[str, Any] | None = None) -> None:
        """Write every member to one checksummed file; see :func:`audiogmm.io.save`."""
        from ..io import save

        save(self, path, extra=extra)

    @classmethod
    def load(cls, path: str | os.PathLike) -> FusedClassifier:
        """Read a file written by :meth:`save`; see :func:`audiogmm.io.load`."""
        from ..io import load

        return load(path, cls)
