"""The decisions of ``--preset auto``, from cross-validated accuracies and scores.

Each takes what :func:`audiogmm.models.selection.cv_scores` measured and returns a choice:
:func:`search_down` (the K grid from the largest down, stopping where a smaller K cannot
win), :func:`choose_components` (the largest K within one standard error of the best),
:func:`one_standard_error` (the simplest front end within one standard error of the
best), :func:`forward_fusion` (greedy late-fusion members) and :func:`choose_fusion` (the
largest fusion within one standard error of the best). :mod:`audiogmm.pipeline.tuning`
runs them in that order.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .fusion import fuse_scores

__all__ = [
    "choose_components",
    "choose_fusion",
    "forward_fusion",
    "one_standard_error",
    "search_down",
    "within_one_se",
]

logger = logging.getLogger(__name__)


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


def choose_components(options: Sequence[tuple[str, int, float]], n: int) -> str:
    """The largest single K within one standard error of the best CV accuracy.

    Parameters
    ----------
    options : sequence of (name, n_correct, K)
        One per single K (``"K=<k>"``), plus per-class K with ``K = inf`` (one choice
        per class: the most flexible option).
    n : int
        Clips scored.

    Returns
    -------
    str
        The name of the largest single K whose accuracy is within one standard error
        (:func:`within_one_se`) of the best option's; per-class only when it leads every
        single K by more than one standard error.

    Each cross-validation model is fitted on (n_folds - 1) / n_folds of the clips and
    every second frame (a third of what the final model gets, with 3 folds and a frame
    step of 2), and a class's best K grows with its data, so the CV curve peaks at a
    smaller K than the final fit's. Among the K the noise cannot tell apart, the largest
    suits the final model. A K that overfits the clips shows as such in the CV too (its
    models see less data), so this never keeps a K the CV finds clearly worse. On the
    development corpus this chose K=8 instead of 4 on all three realsounds splits and
    K=16 instead of 8 on one speaker split and one sound split, and was never less
    accurate on the test side (README "Presets and tuning").
    """
    within = within_one_se(options, n)
    singles = [o for o in within if math.isfinite(o[2])]
    if not singles:
        return next(o[0] for o in within if not math.isfinite(o[2]))
    return max(singles, key=lambda o: o[2])[0]


def choose_fusion(options: Sequence[tuple[str, int, float]], n: int) -> str:
    """The option with the most members among those within one SE of the best accuracy.

    Parameters
    ----------
    options : sequence of (name, n_correct, n_members)
        The front end alone, then each forward-selection step.
    n : int
        Clips scored.

    The reverse of :func:`one_standard_error`, on purpose: a late fusion adds the
    members' scores with no fitted weight, so a member more cannot overfit the training
    clips the way a component more can; it costs only time. On every development set
    and split, the fusion of all candidates was at least as accurate on the test side
    as the option the one-standard-error rule kept (README "Presets and tuning"). So
    the largest fusion is kept unless a smaller option is better by more than the noise.
    Ties: the higher accuracy, then the earlier option.
    """
    within = within_one_se(options, n)
    return max(within, key=lambda o: (o[2], o[1], -options.index(o)))[0]


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
        ``cv(name, ks)`` returns a :class:`~audiogmm.models.selection.ComponentSelection`.
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
