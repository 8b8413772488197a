"""Model selection on training clips only: clip-stratified folds, per-class K, mixed-K classifiers.

Frames of one clip are strongly correlated, so every held-out estimate here holds
out whole **clips**, never frames: a class's K is the grid value with the largest
cross-validated held-out log-likelihood of its own clips. Frame-level criteria
(BIC on the training frames, frame folds) count one clip's thousand similar frames
as a thousand independent observations and pick ever larger K, which is exactly
the overfit seen with 32 components on 9 clips per class.

A classifier whose classes have different K is stored as an ordinary stacked
:class:`~audiogmm.models.GMMClassifier` of the largest K: a class with fewer
components is padded by splitting its heaviest components into identical halves
(same mean and variance, half the weight each), which leaves its density, and so
every score, unchanged.

The decision rules ``--preset auto`` applies to the cross-validated accuracies live here
too: :func:`search_down` (the K grid from the largest down, stopping where a smaller K
cannot win), :func:`choose_components` (the largest K within one standard error of the
best), :func:`one_standard_error` (the simplest front end within one standard error of
the best), :func:`forward_fusion` (greedy late-fusion members) and
:func:`choose_fusion` (the largest fusion within one standard error of the best).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..engine import LocalExecutor, resolve
from ..exceptions import ParameterError
from ..mixture import DiagGMM
from .classifier import GMMClassifier
from .fusion import fuse_scores

__all__ = [
    "COMPONENT_GRID",
    "ComponentSelection",
    "choose_components",
    "choose_fusion",
    "clip_folds",
    "cv_scores",
    "fit_mixed",
    "forward_fusion",
    "max_components",
    "one_standard_error",
    "pad_components",
    "search_down",
    "supported_grid",
    "within_one_se",
]

logger = logging.getLogger(__name__)

#: Candidate numbers of components per class for ``--components auto``. K=2 was dropped:
#: it was 10-20 points below the best K in every cross-validation on the development
#: corpus, and a class too small for 4 components is capped below it anyway.
COMPONENT_GRID = (4, 8, 16, 32)

#: Frames of training data required per component (a cap, applied before any CV).
FRAMES_PER_COMPONENT = 50


def clip_folds(labels: Sequence[str], n_folds: int, *, random_state: int | None = 0) -> np.ndarray:
    """Fold of each clip, stratified per label; clips of a single-clip label are never held out.

    Each label's clips are shuffled (one stream per label) and dealt round-robin to
    the folds, so every fold holds out about ``1 / n_folds`` of every label.

    Parameters
    ----------
    labels : sequence of str, length n_clips
    n_folds : int >= 2
    random_state : int or None

    Returns
    -------
    ndarray of shape (n_clips,), int
        Fold index in ``[0, n_folds)``, or -1 for a clip that is always trained on.
    """
    if not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise ParameterError(f"n_folds must be an int >= 2; got {n_folds!r}")
    labels = [str(y) for y in labels]
    folds = np.full(len(labels), -1, dtype=np.int64)
    by_label: dict[str, list[int]] = {}
    for i, y in enumerate(labels):
        by_label.setdefault(y, []).append(i)
    seeds = np.random.SeedSequence(random_state).spawn(len(by_label))
    for (_, idx), ss in zip(sorted(by_label.items()), seeds):
        if len(idx) < 2:
            continue
        order = np.random.default_rng(ss).permutation(len(idx))
        start = int(np.random.default_rng(ss).integers(n_folds))  # spread the remainders
        for rank, j in enumerate(order):
            folds[idx[j]] = (start + rank) % n_folds
    return folds


def max_components(n_frames: int) -> int:
    """The largest K allowed for a class with ``n_frames`` training frames (>= 1)."""
    return max(1, int(n_frames) // FRAMES_PER_COMPONENT)


def supported_grid(
    labels: Sequence[str], n_frames: Sequence[int], grid: Sequence[int], n_folds: int
) -> tuple[int, ...]:
    """The values of ``grid`` that at least half of the labels can use in cross-validation.

    A class fitted on the other folds' clips (``(n_folds - 1) / n_folds`` of its
    frames) is capped at :func:`max_components` of them; a K above the cap of most
    classes mostly refits the smaller models, so it is not a distinct candidate and
    its fits are skipped. The smallest value is always kept.

    Parameters
    ----------
    labels : sequence of str, length n_clips
    n_frames : sequence of int, length n_clips
        Frames of each clip.
    grid : sequence of int > 0
    n_folds : int >= 2

    Returns
    -------
    tuple of int
        Sorted.
    """
    per_label: dict[str, int] = {}
    for y, n in zip(labels, n_frames):
        per_label[str(y)] = per_label.get(str(y), 0) + int(n)
    caps = sorted(max_components(n * (n_folds - 1) // n_folds) for n in per_label.values())
    median_cap = caps[(len(caps) - 1) // 2] if caps else 1  # at least half the labels reach it
    ks = sorted({int(k) for k in grid})
    return tuple(k for i, k in enumerate(ks) if i == 0 or k <= median_cap)


def pad_components(gmm: DiagGMM, n_components: int) -> DiagGMM:
    """The same density with ``n_components`` components: split heaviest ones into equal halves.

    Parameters
    ----------
    gmm : DiagGMM
        A fitted mixture with at most ``n_components`` components.
    n_components : int

    Returns
    -------
    DiagGMM
        A new mixture; ``score_samples`` equals ``gmm``'s up to rounding.
    """
    w, m, v = gmm.weights_.copy(), gmm.means_.copy(), gmm.variances_.copy()
    if w.shape[0] > n_components:
        raise ParameterError(f"cannot pad {w.shape[0]} components down to {n_components}")
    while w.shape[0] < n_components:
        k = int(np.argmax(w))
        w[k] /= 2
        w, m, v = np.append(w, w[k]), np.vstack([m, m[k]]), np.vstack([v, v[k]])
    out = DiagGMM(n_components, **{k: v for k, v in gmm.get_params().items() if k != "n_components"})
    out.weights_, out.means_, out.variances_ = w, m, v
    out.var_floor_ = gmm.var_floor_
    return out


def fit_mixed(
    clips: Sequence[np.ndarray],
    labels: Sequence[str],
    n_components: Mapping[str, int],
    *,
    random_state: int | None = 0,
    executor: LocalExecutor | None = None,
    **params: Any,
) -> GMMClassifier:
    """A :class:`GMMClassifier` whose class ``y`` has ``n_components[y]`` components.

    Labels with the same K are trained together by one ``GMMClassifier(K).fit``;
    the results are stacked at the largest K with :func:`pad_components`.

    Parameters
    ----------
    clips : sequence of ndarray, each of shape (n_frames_i, n_dims)
    labels : sequence of str, length n_clips
    n_components : mapping of label to int > 0
        Must cover every label.
    random_state : int or None
    executor : LocalExecutor, optional
    **params
        Other :class:`GMMClassifier` / :class:`DiagGMM` parameters (``max_iter``, ...).

    Returns
    -------
    GMMClassifier
        Fitted, with ``n_components`` the largest K and each ``fit_report_[y]``
        holding that class's own ``n_components``.
    """
    labels = [str(y) for y in labels]
    missing = sorted(set(labels) - set(n_components))
    if missing:
        raise ParameterError(f"no number of components given for label(s) {missing}")
    groups: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        groups.setdefault(int(n_components[y]), []).append(i)
    k_max = max(groups)
    out = GMMClassifier(k_max, random_state=random_state, **params)
    models: dict[str, DiagGMM] = {}
    report: dict[str, Any] = {}
    with resolve(executor, params.get("n_jobs")) as ex, _quiet_single_class():
        for k, idx in sorted(groups.items()):
            sub = GMMClassifier(k, random_state=random_state, **params).fit(
                [clips[i] for i in idx], [labels[i] for i in idx], executor=ex
            )
            for y in sub.labels_:
                models[y] = pad_components(sub.models_[y], k_max)
                report[y] = {**sub.fit_report_[y], "n_components": k}
    out.labels_ = sorted(models)
    out.models_ = {y: models[y] for y in out.labels_}
    out._stack()
    out.fit_report_ = {y: report[y] for y in out.labels_}
    return out


class _OneClassFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("only one class")


@contextmanager
def _quiet_single_class():
    # a group of fit_mixed may hold one label: the classifier's one-class warning is noise here
    log, flt = logging.getLogger(GMMClassifier.__module__), _OneClassFilter()
    log.addFilter(flt)
    try:
        yield
    finally:
        log.removeFilter(flt)


@dataclass
class ComponentSelection:
    """Cross-validated scores of every training clip under every grid K (held out by clip).

    Attributes
    ----------
    grid : tuple of int
        Candidate K values.
    labels : list of str
        Class order of the score columns.
    y : ndarray of shape (n_clips,), int
        Class index of each clip.
    folds : ndarray of shape (n_clips,), int
        Fold of each clip (-1: never held out).
    n_frames : ndarray of shape (n_clips,), int
    scores : dict of int to ndarray of shape (n_clips, n_labels)
        Total held-out log-likelihood (nats) of each clip under each class at that
        grid K (a class's K is capped by :func:`max_components`); rows of
        never-held-out clips are NaN.
    caps : dict of str to int
        The cap of each class on all its training frames (:func:`max_components`).
    """

    grid: tuple[int, ...]
    labels: list[str]
    y: np.ndarray
    folds: np.ndarray
    n_frames: np.ndarray
    scores: dict[int, np.ndarray] = field(default_factory=dict)
    caps: dict[str, int] = field(default_factory=dict)

    @property
    def held(self) -> np.ndarray:
        """Mask of the clips that were held out once."""
        return self.folds >= 0

    def accuracy_counts(self, scores: np.ndarray) -> tuple[int, int]:
        """(correct, total) of argmax decisions over the held-out clips."""
        h = self.held
        return int((scores[h].argmax(1) == self.y[h]).sum()), int(h.sum())

    def heldout_loglik(self, k: int) -> dict[str, float]:
        """Mean held-out log-likelihood per frame of each class's own clips at grid K."""
        out = {}
        for j, lab in enumerate(self.labels):
            m = self.held & (self.y == j)
            if m.any():
                out[lab] = float(self.scores[k][m, j].sum() / self.n_frames[m].sum())
        return out

    def choose(self) -> dict[str, int]:
        """Per-class K: the grid value with the best held-out log-likelihood of the class's clips.

        A class never held out (a single clip) takes the smallest grid K. Ties go to
        the smaller K (a K above a class's cap in every fold ties with the cap).
        Fit with :meth:`capped` of the result.
        """
        ll = {k: self.heldout_loglik(k) for k in self.grid}
        out = {}
        for lab in self.labels:
            cands = [k for k in self.grid if lab in ll[k]]
            out[lab] = max(cands, key=lambda k: (ll[k][lab], -k)) if cands else self.grid[0]
        return out

    def capped(self, choice: Mapping[str, int]) -> dict[str, int]:
        """``choice`` limited by each class's cap on all its frames (:func:`max_components`)."""
        return {lab: min(int(k), self.caps[lab]) for lab, k in choice.items()}

    def merged(self, other: ComponentSelection) -> ComponentSelection:
        """These scores and ``other``'s, over the union of the grids.

        Both must come from :func:`cv_scores` on the same clips, labels and folds (the
        same ``random_state``), so that one K can be added to a search already run.

        Raises
        ------
        ParameterError
            The clips, labels or folds differ.
        """
        same = (
            self.labels == other.labels
            and np.array_equal(self.y, other.y)
            and np.array_equal(self.folds, other.folds)
            and np.array_equal(self.n_frames, other.n_frames)
        )
        if not same:
            raise ParameterError("cannot merge selections of different clips, labels or folds")
        scores = {**self.scores, **other.scores}
        return ComponentSelection(tuple(sorted(scores)), self.labels, self.y, self.folds,
                                  self.n_frames, scores, dict(self.caps))  # fmt: skip

    def composite(self, choice: Mapping[str, int]) -> np.ndarray:
        """The score matrix of a per-class choice: column ``y`` from ``scores[choice[y]]``."""
        S = np.empty_like(self.scores[self.grid[0]])
        for j, lab in enumerate(self.labels):
            S[:, j] = self.scores[choice[lab]][:, j]
        return S


def cv_scores(
    clips: Sequence[np.ndarray],
    labels: Sequence[str],
    *,
    grid: Sequence[int] = COMPONENT_GRID,
    n_folds: int = 3,
    random_state: int | None = 0,
    frame_step: int = 1,
    executor: LocalExecutor | None = None,
    **params: Any,
) -> ComponentSelection:
    """Score every training clip, held out by clip, under classifiers of each grid K.

    For each fold and each K, one classifier (each class at ``min(K, cap)``
    components, cap from the class's frames in that fold's training clips) is
    fitted on the other folds' clips and scores the fold's clips against every
    class in one batched pass. The result supports both global choices (accuracy
    per K) and per-class ones (:meth:`ComponentSelection.choose`).

    Parameters
    ----------
    clips : sequence of ndarray, each of shape (n_frames_i, n_dims)
    labels : sequence of str, length n_clips
    grid : sequence of int > 0
    n_folds : int >= 2
    random_state : int or None
        Seeds the folds and the fits.
    frame_step : int >= 1
        Fit on every ``frame_step``-th frame of each training clip, and score every
        ``frame_step``-th frame of each held-out clip: neighbouring frames overlap and
        are nearly redundant (with a 40 ms window and a 20 ms hop, every second frame
        still covers every sample), so a step of 2 halves the cost of the search. On
        the development corpus, held-out clips scored whole or at step 2 gave the
        same CV accuracies within 2 clips of 428-491.
    executor : LocalExecutor, optional
    **params
        Passed to the classifiers (``max_iter``, ``tol``, ``init``, ...).

    Returns
    -------
    ComponentSelection
    """
    grid = tuple(sorted({int(k) for k in grid}))
    if not grid or grid[0] < 1:
        raise ParameterError(f"grid must hold integers >= 1; got {grid!r}")
    if len(clips) != len(labels):
        raise ParameterError(f"{len(clips)} clips but {len(labels)} labels")
    labels = [str(y) for y in labels]
    names = sorted(set(labels))
    index = {lab: j for j, lab in enumerate(names)}
    y = np.array([index[lab] for lab in labels])
    folds = clip_folds(labels, n_folds, random_state=random_state)
    if not isinstance(frame_step, (int, np.integer)) or frame_step < 1:
        raise ParameterError(f"frame_step must be an int >= 1; got {frame_step!r}")
    n_frames = np.array([X.shape[0] for X in clips])
    sel = ComponentSelection(grid, names, y, folds, n_frames)
    nan = np.full((len(clips), len(names)), np.nan)
    sel.scores = {k: nan.copy() for k in grid}
    caps = {lab: max_components(n_frames[y == j].sum()) for j, lab in enumerate(names)}
    with resolve(executor, params.get("n_jobs")) as ex:
        for f in range(n_folds):
            test = np.flatnonzero(folds == f)
            if not len(test):
                continue
            train = np.flatnonzero(folds != f)
            fit_clips = [clips[i][::frame_step] for i in train]
            # caps from the whole clips: decimated frames carry about the same information
            frames = {lab: int(n_frames[train][y[train] == j].sum()) for j, lab in enumerate(names)}
            done: dict[tuple[int, ...], np.ndarray] = {}
            for k in grid:
                ks = {lab: min(k, max_components(n)) for lab, n in frames.items()}
                key = tuple(ks[lab] for lab in names)
                if key not in done:  # K above every cap: same classifier as before
                    clf = fit_mixed(
                        fit_clips,
                        [labels[i] for i in train],
                        ks,
                        random_state=random_state,
                        executor=ex,
                        **params,
                    )
                    done[key] = clf.score_matrix([clips[i][::frame_step] for i in test], executor=ex)
                sel.scores[k][test] = done[key]
    sel.caps = caps
    return sel


# -- decision rules of model selection (audiogmm.pipeline.tuning) -------------------------


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
