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
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..container import Validator, field_dict, field_list, jsonable, read_container, write_container
from ..engine import LocalExecutor
from ..exceptions import ModelFileError, ParameterError
from .classifier import HEADER_FIELDS as CLASSIFIER_FIELDS
from .classifier import GMMClassifier

__all__ = ["MAX_MEMBERS", "FusedClassifier", "fuse_scores"]

#: Most members a fused model may hold (each costs one feature extraction per clip).
MAX_MEMBERS = 4

_ARRAYS = ("weights", "means", "variances", "var_floors")
_MEMBER_KEYS = ("n_components", "priors", "random_state", "gmm_params", "training")


def _members(v: Any) -> list[dict[str, Any]]:
    items = field_list(v, "members", max_len=MAX_MEMBERS)
    if len(items) < 2:
        raise ValueError(f"a fused model needs 2 to {MAX_MEMBERS} members, got {len(items)}")
    out = []
    for i, item in enumerate(items):
        d = field_dict(item, f"members[{i}]")
        unknown = sorted(set(d) - set(_MEMBER_KEYS))
        if unknown or "n_components" not in d:
            raise ValueError(
                f"members[{i}]: unknown field(s) {unknown[:5]}"
                if unknown
                else f"members[{i}]: n_components is missing"
            )
        out.append({k: CLASSIFIER_FIELDS[k](val) for k, val in d.items()})
    return out


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


#: The fused file's own header fields (the pipeline adds ``feature_configs`` and others).
HEADER_FIELDS: dict[str, Validator] = {"labels": CLASSIFIER_FIELDS["labels"], "members": _members}


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

    _FILE_KIND = "FusedClassifier"

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

    def _file_parts(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        members, arrays = [], {}
        for i, m in enumerate(self.members):
            members.append(m._own_fields())
            for k in _ARRAYS:
                arrays[f"m{i}_{k}"] = getattr(m, f"{k}_")
        return {"labels": list(self.labels_), "members": members}, arrays

    def save(self, path: str | os.PathLike, *, extra: dict[str, Any] | None = None) -> None:
        """Write every member to one checksummed file (atomic, no pickle).

        Raises
        ------
        ParameterError
            When a member holds something :meth:`load` would refuse.
        """
        own, arrays = self._file_parts()
        header = jsonable({**(extra or {}), **own})
        try:  # the checks load() makes, so that every saved file loads
            self._from_file("the fused classifier to save", dict(header), arrays)
        except ModelFileError as e:
            raise ParameterError(f"cannot save {os.fspath(path)}: {e}") from None
        write_container(path, kind=self._FILE_KIND, header=header, arrays=arrays)

    @classmethod
    def load(
        cls, path: str | os.PathLike, *, header_fields: Mapping[str, Validator] | None = None
    ) -> FusedClassifier:
        """Read a file written by :meth:`save`, validating everything (see
        :meth:`GMMClassifier.load`; ``header_fields`` has the same meaning).

        Raises
        ------
        ModelFileError
            Any failed check, naming the file, the member and the field.
        """
        header, arrays = read_container(
            path,
            kind=cls._FILE_KIND,
            fields={**HEADER_FIELDS, **(header_fields or {})},
            required=("labels", "members"),
            unknown="keep" if header_fields is None else "refuse",
        )
        return cls._from_file(os.fspath(path), header, arrays)

    @classmethod
    def _from_file(
        cls, name: str, header: dict[str, Any], arrays: dict[str, np.ndarray]
    ) -> FusedClassifier:
        try:
            labels = HEADER_FIELDS["labels"](header.get("labels"))
            members = _members(header.get("members"))
        except (ValueError, TypeError) as e:
            raise ModelFileError(f"{name}: invalid header field: {e}") from None
        expected = {f"m{i}_{k}" for i in range(len(members)) for k in _ARRAYS}
        if set(arrays) != expected:
            raise ModelFileError(
                f"{name}: arrays {sorted(arrays)[:12]} are not those of {len(members)} members"
            )
        clfs = []
        for i, fields in enumerate(members):
            part = {k: arrays[f"m{i}_{k}"] for k in _ARRAYS}
            clfs.append(
                GMMClassifier._from_file(f"{name} (member {i})", {"labels": labels, **fields}, part)
            )
        try:
            out = cls(clfs)
        except ParameterError as e:
            raise ModelFileError(f"{name}: {e}") from None
        out.file_header_ = header
        return out
