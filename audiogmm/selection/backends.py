"""The other backends refitted per fold of :func:`~.cv.clip_folds` on the other folds' clips:
their held-out scores rank them for ``auto``; ``train --calibrate`` fits a calibration on them.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..engine import LocalExecutor, resolve
from ..exceptions import ParameterError
from ..mixture import DiagGMM
from .cv import clip_folds, per_fold, quiet_single_class

__all__ = ["backend_cv_scores", "calibrate_backend"]


def backend_cv_scores(
    clips: Sequence[np.ndarray], labels: Sequence[str], backends: Sequence[str],
    folds: np.ndarray, *, frame_step: int = 1, random_state: int | None = 0,
    executor: LocalExecutor | None = None,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Held-out scores (n_clips, n_labels) of every clip under each backend, per backend.

    Per fold of ``folds`` (:func:`clip_folds`; -1 rows stay NaN), one UBM is trained on
    the training clips (``map``'s own fit) and every other backend adapts from it with
    its defaults. The UBM must not see the held-out clips: with them held-out accuracy
    fell from 89% to 19% on the development sounds. Columns in sorted label order.
    """
    from ..models import BACKENDS

    labels = [str(y) for y in labels]
    names = sorted(set(labels))
    out = {b: np.full((len(clips), len(names)), np.nan) for b in backends}

    def fold_scores(train: np.ndarray, test: np.ndarray) -> dict[str, np.ndarray]:
        fit_on = ([clips[i][::frame_step] for i in train], [labels[i] for i in train])
        scored = [clips[i][::frame_step] for i in test]
        ubm = BACKENDS["map"](random_state=random_state).fit(*fit_on, executor=ex)
        got = {}
        for b in backends:
            clf = ubm  # map: the UBM's own fit (not adapted a second time)
            if b != "map":  # a backend whose fit takes no UBM (a new one) trains its own
                takes = "ubm" in inspect.signature(BACKENDS[b].fit).parameters
                given = {"ubm": ubm.ubm_} if takes else {}
                clf = BACKENDS[b](random_state=random_state).fit(*fit_on, executor=ex, **given)
            got[b] = np.full((len(test), len(names)), np.nan)
            got[b][:, [names.index(y) for y in clf.labels_]] = clf.score_matrix(scored, executor=ex)
        return got

    with resolve(executor, None) as ex, quiet_single_class(), warnings.catch_warnings():
        # MAP on a fold's few frames may lower the bound by rounding: noise for a ranking
        warnings.filterwarnings("ignore", "EM log-likelihood decreased", RuntimeWarning)
        for f, got in per_fold(folds, fold_scores, ex).items():
            for b in backends:
                out[b][folds == f] = got[b]
    return out


def calibrate_backend(
    clips: Sequence[np.ndarray], labels: Sequence[str], backend: str, *, n_folds: int = 3,
    p_target: float = 0.5, random_state: int | None = 0, executor: LocalExecutor | None = None,
    ubm: DiagGMM | None = None, **params: Any,
) -> dict[str, Any]:  # fmt: skip
    """A linear logistic calibration of ``backend``'s verification scores, on held-out folds.

    Per fold, the classifier (``params``, and the given ``ubm`` if any) is fitted on the
    other folds' clips; its ``score_samples`` of the held-out clips against every class
    are the trials (target for the clip's class), fitted at ``p_target``
    (:func:`~audiogmm.scoring.calibration.fit_calibration`).

    Returns
    -------
    dict
        ``slope``, ``offset`` (``llr = slope * score + offset``, nats), ``p_target``,
        ``n_target``, ``n_nontarget``: the ``calibration`` block of a model file.

    Raises
    ------
    ParameterError
        A backend without verification scores, or too few clips (every class needs 2).
    """
    from ..models import BACKENDS
    from ..scoring.calibration import fit_calibration

    cls = BACKENDS[backend]
    if not hasattr(cls, "score_samples"):
        raise ParameterError(f"--backend {backend} has no verification scores to calibrate")
    labels = [str(y) for y in labels]
    folds = clip_folds(labels, n_folds, random_state=random_state)
    if not (folds >= 0).any() or len(set(labels)) < 2:
        raise ParameterError("calibration needs 2 classes and 2 training clips in some class")
    given = {} if ubm is None else {"ubm": ubm}

    def fold_trials(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        clf = cls(random_state=random_state, **params).fit(
            [clips[i] for i in train], [labels[i] for i in train], executor=ex, **given
        )
        S = clf.score_samples([clips[i] for i in test], executor=ex)
        truth = np.array([labels[i] for i in test])[:, None] == np.array(clf.labels_)[None]
        return truth.ravel(), S.ravel()

    with resolve(executor, params.get("n_jobs")) as ex:  # the folds in parallel
        target, scores = zip(*per_fold(folds, fold_trials, ex).values())
    y, s = np.concatenate(target).astype(np.int64), np.concatenate(scores)
    a, b = fit_calibration(y, s, p_target=p_target)
    return {"slope": a, "offset": b, "p_target": p_target,
            "n_target": int(y.sum()), "n_nontarget": int(len(y) - y.sum())}  # fmt: skip
