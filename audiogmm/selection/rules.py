"""The decisions of ``--preset auto``, from cross-validated accuracies and scores.

The rules are data in, name out: every candidate is an :class:`Option` (its name, the
held-out clips it got right, and its complexity), and each rule returns the name of one.
Each takes what :func:`audiogmm.selection.cv.cv_scores` measured and returns a choice:
:func:`search_down` (the K grid from the largest down, stopping where a smaller K cannot
win), :func:`choose_components` (the default K unless another beats it by more than the
noise), :func:`one_standard_error` (the simplest front end within one standard error of the
best), :func:`forward_fusion` (greedy late-fusion members) and :func:`choose_fusion` (the
front end alone unless a fusion beats it by more than the noise): every more complex
choice must beat the simple default by more than the noise (:func:`beats_default`).
:mod:`audiogmm.selection.search` runs them in that order.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from ..models.fusion import fuse_scores

__all__ = [
    "Option",
    "beats_default",
    "choose_components",
    "choose_fusion",
    "forward_fusion",
    "one_standard_error",
    "search_down",
    "within_one_se",
]

logger = logging.getLogger(__name__)


class Option(NamedTuple):
    """One candidate of a rule.

    Attributes
    ----------
    name : str
        What the rule returns when it picks this option.
    correct : int
        Held-out clips it classified correctly.
    complexity : float
        Orders the options (smaller is simpler): K, a rank, a member count.
    """

    name: str
    correct: int
    complexity: float


def within_one_se(
    options: Sequence[tuple[str, int, float]], n: int
) -> list[tuple[str, int, float]]:
    """The options whose accuracy is within one binomial standard error of the best.

    Parameters
    ----------
    options : sequence of (name, n_correct, complexity)
    n : int
        Clips scored.
    """
    best = max(c for _, c, _ in options)
    p = best / n
    floor = best - math.sqrt(p * (1 - p) / n) * n
    return [o for o in options if o[1] >= floor]


def one_standard_error(options: Sequence[tuple[str, int, float]], n: int) -> str:
    """The one-standard-error rule: the simplest option within one SE of the best accuracy.

    Parameters
    ----------
    options : sequence of (name, n_correct, complexity)
        Complexity orders the options (smaller is simpler).
    n : int
        Clips scored.

    CV accuracies of two options often differ by a few clips in a few hundred, which is
    noise; so (Breiman et al. 1984; Hastie et al., ESL 7.10) the simplest option whose
    accuracy is within ``sqrt(p (1 - p) / n)`` of the best one's ``p`` is kept. Model
    selection uses it for the front ends alone, in order of cost: a costlier front end
    must be better by more than the noise. (For K see :func:`choose_components`, for
    fusions :func:`choose_fusion`: both keep the largest option within the noise.)
    """
    return min((k, name) for name, _, k in within_one_se(options, n))[1]


def beats_default(
    options: Sequence[tuple[str, int, float]], default: str, n: int, *, n_se: float = 1.0
) -> str:
    """``default``, unless another option beats it by more than the noise; then the best.

    Parameters
    ----------
    options : sequence of (name, n_correct, complexity)
        Complexity breaks ties between the options that beat the default (simpler first).
    default : str
        The name of the simple choice (today's default), one of ``options``.
    n : int
        Clips scored.
    n_se : float > 0
        Standard errors an option must win by (2 for another backend, see
        :func:`~audiogmm.selection.steps.step_backend`).

    Never choose on noise: a more complex choice (a bigger K, a fusion, another backend)
    must be right on more clips than the default by more than one binomial standard
    error of the default's accuracy, ``sqrt(p (1 - p) n)`` clips, after a continuity
    correction of one clip (counts are whole: at 87 of 88 the standard error is 0.99
    clips, and one clip more is not evidence). The default is therefore kept on every
    data set where the CV cannot tell the options apart.
    """
    base = next(o for o in options if o[0] == default)[1]
    p = base / n
    margin = n_se * math.sqrt(p * (1 - p) * n) + 1.0
    better = [o for o in options if o[1] - base > margin]
    if not better:
        return default
    return max(better, key=lambda o: (o[1], -o[2]))[0]


def choose_components(
    options: Sequence[tuple[str, int, float]], n: int, default: str | None = None
) -> str:
    """The number of components: the default K unless another beats it by more than the noise.

    Parameters
    ----------
    options : sequence of (name, n_correct, K)
        One per single K (``"K=<k>"``), plus per-class K with ``K = inf`` (one choice
        per class: the most flexible option).
    n : int
        Clips scored.
    default : str, optional
        The default's option (``"K=16"``); :func:`beats_default` decides. Without it (the
        data cannot support the default K), the largest single K within one standard
        error (:func:`within_one_se`) of the best.

    Returns
    -------
    str
        The name of the chosen option.

    Each cross-validation model is fitted on (n_folds - 1) / n_folds of the clips and
    every second frame, so the CV curve peaks at a smaller K than the final fit's: where
    the default K cannot be scored, the largest K the noise cannot tell from the best
    suits the final model.
    """
    if default is not None and any(o[0] == default for o in options):
        return beats_default(options, default, n)
    within = within_one_se(options, n)
    singles = [o for o in within if math.isfinite(o[2])]
    if not singles:
        return next(o[0] for o in within if not math.isfinite(o[2]))
    return max(singles, key=lambda o: o[2])[0]


def choose_fusion(options: Sequence[tuple[str, int, float]], n: int) -> str:
    """The front end alone (``options[0]``), unless a fusion beats it by more than the noise.

    Parameters
    ----------
    options : sequence of (name, n_correct, n_members)
        The front end alone, then each forward-selection step.
    n : int
        Clips scored.

    A fusion costs a decode-free but full extra scoring per member and, on the hard
    speakers, a fusion chosen from a CV difference of one clip in 88 lost to the
    default; so the rule is :func:`beats_default` (ties between fusions that beat the
    front end alone: the fewer members).
    """
    return beats_default(options, options[0][0], n)


def search_down(cv: Any, name: str, grid: Sequence[int]) -> Any:
    """Cross-validate ``grid`` from the largest K down, stopping where smaller K cannot win.

    Each K is scored after the larger ones; the search stops after the first K whose
    accuracy is below the best so far. :func:`choose_components` keeps the largest K
    within one standard error of the best, so a smaller K could change the choice only by
    becoming the best, which needs accuracy to rise again as K falls (it did not on any
    development set). Small K are cheap, but each costs the same fold set-up and k-means
    starts: on data that needs large models this saves a quarter to a third of the search.

    Parameters
    ----------
    cv : callable
        ``cv(name, ks)`` returns a :class:`~audiogmm.selection.cv.ComponentSelection`.
    name : str
        Front end.
    grid : sequence of int
        Supported K values.

    Returns
    -------
    ComponentSelection
        Over the K values scored.
    """
    ks = sorted(grid, reverse=True)
    sel = cv(name, ks[:2])  # the two largest: one comparison before any stop
    for k in ks[2:]:
        acc = {g: sel.accuracy_counts(sel.scores[g])[0] for g in sel.grid}
        if acc[sel.grid[0]] < max(acc.values()):
            logger.info("front end %s: K below %d not tried (K=%d is below the best)",
                        name, sel.grid[0], sel.grid[0])  # fmt: skip
            break
        sel = sel.merged(cv(name, [k]))
    return sel


def forward_fusion(
    start: str,
    pool: Sequence[str],
    scores: Mapping[str, np.ndarray],
    n_frames: Mapping[str, Sequence[int]],
    correct: Any,
    max_members: int,
) -> list[tuple[list[str], int]]:
    """Greedy forward selection of late-fusion members (Caruana et al. 2004).

    From ``start``, add the candidate of ``pool`` whose fusion with the members so far
    scores most correct clips (the earliest on ties), until ``max_members`` members
    or the pool is used up.

    Parameters
    ----------
    start : str
        First member (its frame counts scale the fused totals, :func:`fuse_scores`).
    pool : sequence of str
        Other candidates, in order of preference; their score rows are the same clips.
    scores : mapping of str to ndarray of shape (n_clips, n_labels)
        Cross-validated held-out totals per candidate.
    n_frames : mapping of str to sequence of int
        Frames behind each clip's totals, per candidate.
    correct : callable
        Score matrix to the number of correctly classified clips.
    max_members : int
        Most members of a fusion.

    Returns
    -------
    list of (members, n_correct)
        One entry per step: the members after it, in order of addition.
    """
    members, left, path = [start], list(pool), []
    while left and len(members) < max_members:
        tried = [
            correct(fuse_scores([scores[m] for m in (*members, c)],
                                [n_frames[m] for m in (*members, c)]))
            for c in left
        ]  # fmt: skip
        best = int(np.argmax(tried))  # the first of equals: the simpler, cheaper candidate
        members.append(left.pop(best))
        path.append((list(members), tried[best]))
    return path
