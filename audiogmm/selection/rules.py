"""The decisions of ``--preset auto``: each rule takes :class:`Option` data (held-out clips
``correct`` of ``n``; smaller ``complexity`` is simpler) and returns the name of one. A more
complex choice must beat the simple default by more than the noise (:func:`beats_default`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from ..models.fusion import fuse_scores

__all__ = ["Option", "beats_default", "choose_components", "choose_fusion", "forward_fusion",
           "one_standard_error", "search_down", "within_one_se"]  # fmt: skip

logger = logging.getLogger(__name__)


class Option(NamedTuple):
    """A candidate: its name, held-out clips ``correct``, ``complexity`` (K, a rank, members)."""

    name: str
    correct: int
    complexity: float


def within_one_se(options: Sequence[Option], n: int) -> list[Option]:
    """The options within one binomial SE of the best, over ``n`` clips."""
    best = max(o[1] for o in options)
    p = best / n
    floor = best - math.sqrt(p * (1 - p) / n) * n
    return [o for o in options if o[1] >= floor]


def one_standard_error(options: Sequence[Option], n: int) -> str:
    """The simplest option within one SE of the best (the front ends, in order of cost): CV
    accuracies often differ by a few clips in hundreds, which is noise (Hastie et al., ESL 7.10).
    """
    return min((o[2], o[0]) for o in within_one_se(options, n))[1]


def beats_default(options: Sequence[Option], default: str, n: int, *, n_se: float = 1.0) -> str:
    """``default``, unless another option is right on more clips by ``n_se`` binomial SEs
    (``sqrt(p (1 - p) n)`` clips) plus one of continuity correction (at 87 of 88 the SE is 0.99
    clips, and one clip is no evidence); then the best, ties to the simpler.
    """
    base = next(o[1] for o in options if o[0] == default)
    p = base / n
    margin = n_se * math.sqrt(p * (1 - p) * n) + 1.0
    better = [o for o in options if o[1] - base > margin]
    return max(better, key=lambda o: (o[1], -o[2]))[0] if better else default


def choose_components(options: Sequence[Option], n: int, default: str | None = None) -> str:
    """K: ``default`` (``"K=16"``) unless another option beats it (:func:`beats_default`), of
    ``("K=<k>", correct, k)`` and per-class (``k = inf``). Without the default, the largest single
    K within one SE of the best: a CV fit sees less data than the final one, so peaks earlier.
    """
    if default is not None and any(o[0] == default for o in options):
        return beats_default(options, default, n)
    within = within_one_se(options, n)
    singles = [o for o in within if math.isfinite(o[2])]
    if not singles:
        return next(o[0] for o in within if not math.isfinite(o[2]))
    return max(singles, key=lambda o: o[2])[0]


def choose_fusion(options: Sequence[Option], n: int) -> str:
    """The front end alone (``options[0]``) unless a fusion beats it (:func:`beats_default`):
    a fusion costs a scoring per member, and one chosen on one clip in 88 lost on test."""
    return beats_default(options, options[0][0], n)


def search_down(cv: Any, name: str, grid: Sequence[int]) -> Any:
    """The :class:`~.cv.ComponentSelection` of ``cv(name, ks)`` over ``grid``, largest K first,
    stopping after the first K below the best so far (accuracy never rose again as K fell on the
    dev sets; a quarter to a third of the search saved where large models are needed).
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
    start: str, pool: Sequence[str], scores: Mapping[str, np.ndarray],
    n_frames: Mapping[str, Sequence[int]], correct: Any, max_members: int,
) -> list[tuple[list[str], int]]:  # fmt: skip
    """Greedy forward selection of late-fusion members (Caruana et al. 2004): from ``start``,
    add the candidate of ``pool`` whose fusion (``scores``: held-out totals (n_clips, n_labels),
    over ``n_frames``) is ``correct`` on most clips (the earliest on ties), up to
    ``max_members``. Returns (members, n_correct) per step.
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
