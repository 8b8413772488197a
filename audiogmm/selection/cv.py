"""Held-out scores on training clips: per K (of :mod:`.mixed` classifiers), the other
backends (``auto``) and calibration (``train --calibrate``); and ``auto``'s decisions, rules on
:class:`Option` data that return the name of one (a more complex choice must beat the simple
default by more than the noise: :func:`beats_default`). Folds hold out whole **clips**, never
frames: frame-level criteria count a clip's correlated frames as independent and pick ever
larger K."""

from __future__ import annotations

import logging
import math
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from ..engine import LocalExecutor, one_blas_thread, resolve
from ..exceptions import ParameterError
from ..mixture import DiagGMM
from ..models import BACKENDS
from ..models.classifier import class_llr
from ..models.fusion import fuse_scores
from ..models.ubm import UBM_COMPONENTS
from ..scoring.verification import CalibrationWarning, fit_calibration
from .mixed import fit_mixed_task, quiet_single_class

__all__ = ["COMPONENT_GRID", "ComponentSelection", "Option", "backend_cv_scores",
           "backend_fold_scores", "beats_default", "calibrate_backend", "calibration_block",
           "choose_components", "choose_fusion", "clip_folds", "cv_scores", "fold_scores",
           "forward_fusion", "held_out", "max_components", "median_cap", "ml_calibration",
           "one_standard_error", "per_fold", "search_down", "supported_grid",
           "within_one_se"]  # fmt: skip

logger = logging.getLogger(__name__)

#: Candidate numbers of components per class for ``--components auto``. K=2 was dropped:
#: it was 10-20 points below the best K in every cross-validation on the development
#: corpus, and a class too small for 4 components is capped below it anyway.
COMPONENT_GRID = (4, 8, 16, 32)

#: Frames of training data required per component (a cap, applied before any CV).
FRAMES_PER_COMPONENT = 50


def clip_folds(labels: Sequence[str], n_folds: int, *, random_state: int | None = 0) -> np.ndarray:
    """Fold of each clip (n_clips,), in ``[0, n_folds)``: each label's clips shuffled (one stream
    per label) and dealt round-robin; a single-clip label's clip gets -1 (never held out)."""
    if not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise ParameterError(f"n_folds must be an int >= 2; got {n_folds!r}")
    labels = np.array([str(y) for y in labels], dtype=str)
    folds = np.full(len(labels), -1, dtype=np.int64)
    names = np.unique(labels)
    for lab, ss in zip(names, np.random.SeedSequence(random_state).spawn(len(names))):
        idx = np.flatnonzero(labels == lab)
        if len(idx) > 1:
            order = np.random.default_rng(ss).permutation(len(idx))
            start = int(np.random.default_rng(ss).integers(n_folds))  # spread the remainders
            folds[idx[order]] = (start + np.arange(len(idx))) % n_folds
    return folds


def held_out(folds: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``{f: (train, test)}`` (clip indices) of each fold that holds out some clip."""
    held = [f for f in range(int(folds.max(initial=-1)) + 1) if (folds == f).any()]
    return {f: (np.flatnonzero(folds != f), np.flatnonzero(folds == f)) for f in held}


def per_fold(folds: np.ndarray, fit_score: Callable[[np.ndarray, np.ndarray], Any], ex) -> dict:
    """``{f: fit_score(train, test)}`` of each :func:`held_out` fold, in parallel."""
    split = held_out(folds)
    return dict(zip(split, ex.map(lambda s: fit_score(*s), split.values())))


def max_components(n_frames: int) -> int:
    """The largest K allowed for a class with ``n_frames`` training frames (>= 1)."""
    return max(1, int(n_frames) // FRAMES_PER_COMPONENT)


def supported_grid(labels: Sequence[str], n_frames: Sequence[int], grid: Sequence[int],
                   n_folds: int) -> tuple[int, ...]:  # fmt: skip
    """The sorted values of ``grid`` (the smallest always) that half of the labels can use in CV:
    a fold's fit sees ``(n_folds - 1) / n_folds`` of a class's frames (``n_frames``: per clip);
    a K above most caps would only refit the smaller models."""
    cap = median_cap(labels, n_frames, used=(n_folds - 1, n_folds))
    ks = sorted({int(k) for k in grid})
    return tuple(k for i, k in enumerate(ks) if i == 0 or k <= cap)


def median_cap(labels: Sequence[str], n_frames: Sequence[int], *,
               used: tuple[int, int] = (1, 1)) -> int:  # fmt: skip
    """The largest K half of the labels can support, a fit seeing ``a / b = used`` of the frames."""
    per_label: Counter[str] = Counter()
    for y, n in zip(labels, n_frames):
        per_label[str(y)] += int(n)
    a, b = used
    caps = sorted(max_components(n * a // b) for n in per_label.values())
    return caps[(len(caps) - 1) // 2] if caps else 1


@dataclass
class ComponentSelection:
    """Held-out scores of every training clip at each K of ``grid``: ``labels`` (the score
    columns); ``y``, ``folds``, ``n_frames`` (n_clips,): class index, fold (-1: never held out),
    frames; ``scores[k]`` (n_clips, n_labels): total log-likelihood (nats) under each class at
    K (capped by :func:`max_components`), NaN rows never held out; ``caps``: each class's cap on
    all its frames; ``frame_step``: the scores used every ``frame_step``-th frame."""

    grid: tuple[int, ...]
    labels: list[str]
    y: np.ndarray
    folds: np.ndarray
    n_frames: np.ndarray
    scores: dict[int, np.ndarray] = field(default_factory=dict)
    caps: dict[str, int] = field(default_factory=dict)
    frame_step: int = 1

    @property
    def held(self) -> np.ndarray:
        """Mask of the clips that were held out once."""
        return self.folds >= 0

    @property
    def scored_frames(self) -> np.ndarray:
        """The frames each clip's scores sum (n_clips,): every ``frame_step``-th one."""
        return -(-self.n_frames // self.frame_step)

    def accuracy_counts(self, scores: np.ndarray) -> tuple[int, int]:
        """(correct, total) of argmax decisions over the held-out clips."""
        h = self.held
        return int((scores[h].argmax(1) == self.y[h]).sum()), int(h.sum())

    def choose(self) -> dict[str, int]:
        """Per-class K: the best held-out log-likelihood per frame of the class's own clips (the
        smaller K on ties and for a class never held out). Fit with :meth:`capped` of it."""
        out = {}
        for j, lab in enumerate(self.labels):
            m = self.held & (self.y == j)  # none held out: every ll is 0, the smallest K wins
            ll = {k: self.scores[k][m, j].sum() / max(1, self.n_frames[m].sum()) for k in self.grid}
            out[lab] = max(self.grid, key=lambda k: (ll[k], -k))
        return out

    def capped(self, choice: Mapping[str, int]) -> dict[str, int]:
        """``choice`` limited by each class's cap on all its frames (:func:`max_components`)."""
        return {lab: min(int(k), self.caps[lab]) for lab, k in choice.items()}

    def merged(self, other: ComponentSelection) -> ComponentSelection:
        """These scores and ``other``'s over the union of the grids (same clips and folds)."""
        same = self.labels == other.labels and all(
            np.array_equal(getattr(self, a), getattr(other, a)) for a in ("y", "folds", "n_frames")
        )
        if not same:
            raise ParameterError("cannot merge selections of different clips, labels or folds")
        scores = {**self.scores, **other.scores}
        return ComponentSelection(tuple(sorted(scores)), self.labels, self.y, self.folds,
                                  self.n_frames, scores, dict(self.caps), self.frame_step)

    def composite(self, choice: Mapping[str, int]) -> np.ndarray:
        """The score matrix of a per-class choice: column ``y`` from ``scores[choice[y]]``."""
        return np.stack([self.scores[choice[lab]][:, j] for j, lab in enumerate(self.labels)], 1)


def cv_scores(clips: Sequence[np.ndarray], labels: Sequence[str], *,
              grid: Sequence[int] = COMPONENT_GRID, n_folds: int = 3, random_state: int | None = 0,
              frame_step: int = 1, executor: LocalExecutor | None = None,
              **params: Any) -> ComponentSelection:  # fmt: skip
    """Score every training clip, held out by clip, under classifiers of each grid K: per fold
    and K, one (``params``; each class at ``min(K, cap)`` of its fold's training frames) fitted
    on the other folds' clips, using every ``frame_step``-th frame (dev corpus: step 2 gave the
    same accuracies within 2 clips of 428-491, at half the cost)."""
    grid = tuple(sorted({int(k) for k in grid}))
    if not grid or grid[0] < 1:
        raise ParameterError(f"grid must hold integers >= 1; got {grid!r}")
    if len(clips) != len(labels):
        raise ParameterError(f"{len(clips)} clips but {len(labels)} labels")
    labels = [str(y) for y in labels]
    names, y = np.unique(labels, return_inverse=True)
    names = names.tolist()
    folds = clip_folds(labels, n_folds, random_state=random_state)
    if not isinstance(frame_step, (int, np.integer)) or frame_step < 1:
        raise ParameterError(f"frame_step must be an int >= 1; got {frame_step!r}")
    n_frames = np.array([X.shape[0] for X in clips])
    caps = {lab: max_components(n_frames[y == j].sum()) for j, lab in enumerate(names)}
    scores = {k: np.full((len(clips), len(names)), np.nan) for k in grid}
    sel = ComponentSelection(grid, names, y, folds, n_frames, scores, caps, frame_step)
    # one fit per fold and distinct classifier (a K above every cap is the same one)
    split = held_out(folds)
    trained = {f: [int(n_frames[train][y[train] == j].sum()) for j in range(len(names))]
               for f, (train, _) in split.items()}  # fmt: skip
    key_of = {(f, k): (f, tuple(min(k, max_components(n)) for n in frames))
              for f, frames in trained.items() for k in grid}  # fmt: skip
    tasks = list(dict.fromkeys(key_of.values()))

    def args(task: tuple[int, tuple[int, ...]]) -> tuple:
        f, ks = task
        train, test = split[f]
        return ([clips[i][::frame_step] for i in train], [labels[i] for i in train],
                dict(zip(names, ks)), [clips[i][::frame_step] for i in test], random_state,
                params)  # fmt: skip
    with resolve(executor, params.get("n_jobs")) as ex:
        # whole fits in parallel (each inline, in a worker process when the executor has
        # them): a 5-iteration EM split into chunks keeps the cores waiting on small steps
        done = dict(zip(tasks, ex.map(fold_scores, map(args, tasks), isolated=True,
                                      star=True)))  # fmt: skip
    for (f, k), key in key_of.items():
        sel.scores[k][folds == f] = done[key]
    return sel


def fold_scores(train: Sequence[np.ndarray], train_labels: Sequence[str],
                ks: Mapping[str, int], test: Sequence[np.ndarray], random_state: int | None,
                params: Mapping[str, Any]) -> np.ndarray:  # fmt: skip
    """One fold of :func:`cv_scores` (a task, which may run in a worker process): the scores
    (n_test, n_labels) of the ``test`` clips under a :func:`.mixed.fit_mixed` classifier (class ``y``
    at ``ks[y]`` components, ``params``) fitted on the ``train`` clips, all in this thread."""
    clf = fit_mixed_task(train, train_labels, ks, random_state, params)
    with one_blas_thread():
        return clf.score_matrix(test, executor=LocalExecutor(1))


def backend_cv_scores(groups: Sequence[tuple[Sequence[np.ndarray],
                                             Sequence[str] | Mapping[str, str]]],
                      labels: Sequence[str], folds: np.ndarray, *, frame_step: int = 1,
                      random_state: int | None = 0,
                      executor: LocalExecutor | None = None) -> dict[str, np.ndarray]:  # fmt: skip
    """Held-out scores (n_clips, n_labels; sorted labels; NaN rows never held out) of every clip
    under each backend, per backend. ``groups``: ``(clips, backends)`` per front end, the same
    files in the same order; ``backends`` a list, or a mapping of output key -> backend (the
    same backend on two front ends). Per fold and group, one UBM (``map``'s own fit) on the training
    clips only (one that saw the held-out clips fell from 89% to 19% on the dev sounds), every
    other backend of the group adapting from it with its defaults; on every
    ``frame_step``-th frame, but for the per-clip statistics of gsv and ivector
    (:func:`backend_fold_scores`). Every (group, fold) is one
    task of one executor map, the group of the most frames first: the workers stay busy
    across groups (3 folds of 2 groups on 2 workers: 3 rounds, not 4), and each task's
    scores are the same wherever it runs."""
    labels = [str(y) for y in labels]
    names = sorted(set(labels))
    groups = [(clips, dict(bs) if isinstance(bs, Mapping) else {b: b for b in bs})
              for clips, bs in groups]  # fmt: skip
    held = held_out(folds)
    order = sorted(range(len(groups)), key=lambda g: -sum(len(X) for X in groups[g][0]))
    keys = [(g, f) for g in order for f in held]
    tasks = []
    for g, f in keys:
        clips, bs = groups[g]
        # map alone uses only every frame_step-th frame: thinned here, before the task's
        # clips cross to a worker (the same scores as thinning in the task)
        pre, step = (frame_step, 1) if set(bs.values()) == {"map"} else (1, frame_step)
        tasks.append(([clips[i][::pre] for i in held[f][0]], [labels[i] for i in held[f][0]],
                      [clips[i][::pre] for i in held[f][1]], tuple(bs.values()), names,
                      random_state, step))  # fmt: skip
    out = {key: np.full((len(labels), len(names)), np.nan) for _, bs in groups for key in bs}
    with resolve(executor, None) as ex, quiet_single_class(), warnings.catch_warnings():
        # MAP on a fold's few frames may lower the bound by rounding: noise for a ranking
        warnings.filterwarnings("ignore", "EM log-likelihood decreased", RuntimeWarning)
        for (g, f), got in zip(keys, ex.map(backend_fold_scores, tasks, isolated=True, star=True)):
            for key, b in groups[g][1].items():
                out[key][folds == f] = got[b]
    return out


def backend_fold_scores(train: Sequence[np.ndarray], train_labels: Sequence[str],
                        test: Sequence[np.ndarray], backends: Sequence[str], names: list[str],
                        random_state: int | None, frame_step: int = 1) -> dict[str, np.ndarray]:  # fmt: skip
    """One fold of :func:`backend_cv_scores` (a task, which may run in a worker process): per
    backend, the scores (n_test, len(names)) of the ``test`` clips, NaN for a class the fold's
    training clips lack, all in this thread. The fold's UBM (:data:`UBM_COMPONENTS`) is map's,
    else the first backend's own, and every other backend adapts from it.

    map fits and scores every ``frame_step``-th frame (its scores cost a pass per class). The
    UBM of another backend trains on the same frames (its ``subsample`` times ``frame_step``),
    and gsv's and ivector's per-clip statistics use every frame, as their final models do:
    one pass over the UBM per clip, and on the 9 dev speaker splits gsv's CV from every third
    frame understated its test-side lead (README "Presets and tuning", session 17)."""
    ex = LocalExecutor(1)
    with one_blas_thread():
        got, ubm = {}, None
        for b in sorted(backends, key=lambda b: b != "map"):  # map first: its UBM is the fold's
            if b == "map":
                clf = BACKENDS[b](random_state=random_state).fit(
                    [X[::frame_step] for X in train], train_labels, executor=ex)
                S = clf.score_matrix([X[::frame_step] for X in test], executor=ex)
            else:  # scored, never verified: no calibration
                clf = BACKENDS[b](UBM_COMPONENTS, random_state=random_state)
                clf.subsample *= frame_step  # X[::a][::b] = X[::ab]: map's frames
                clf.fit(train, train_labels, executor=ex, ubm=ubm, calibrate=False)
                S = clf.score_matrix(test, executor=ex)
            ubm = clf.ubm_ if ubm is None else ubm
            got[b] = np.full((len(test), len(names)), np.nan)
            got[b][:, [names.index(y) for y in clf.labels_]] = S
    return got


def calibrate_backend(clips: Sequence[np.ndarray], labels: Sequence[str], backend: str, *,
                      random_state: int | None = 0, executor: LocalExecutor | None = None,
                      ubm: DiagGMM | None = None, **params: Any) -> dict[str, Any]:  # fmt: skip
    """A linear logistic calibration (:func:`~audiogmm.scoring.verification.fit_calibration`)
    of ``backend``'s verification scores on 3 held-out folds, each fitted (``params``, the given
    ``ubm``) on the other folds, its ``score_samples`` of the held-out clips against every class
    the trials: the model file's ``calibration`` block, ``slope``, ``offset`` (``llr = slope *
    score + offset``, nats), ``p_target`` (0.5), ``n_target``, ``n_nontarget``. ParameterError:
    too few clips (every class needs 2)."""
    cls = BACKENDS[backend]
    labels = [str(y) for y in labels]
    folds = clip_folds(labels, 3, random_state=random_state)
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
    return calibration_block(np.concatenate(target), np.concatenate(scores))


def calibration_block(target: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """The model file's ``calibration`` block: :func:`fit_calibration` of held-out trials
    ``target`` (1 target, 0 non-target) with verification ``scores``, at prior 0.5."""
    y = np.asarray(target).astype(np.int64)
    a, b = fit_calibration(y, scores)
    return {"slope": a, "offset": b, "p_target": 0.5,
            "n_target": int(y.sum()), "n_nontarget": int(len(y) - y.sum())}  # fmt: skip


def ml_calibration(sel: ComponentSelection, S: np.ndarray) -> dict[str, Any] | None:
    """The calibration block of an ml model's verification scores (:func:`class_llr`) from
    the held-out CV scores ``S`` (n_clips, n_labels) of ``sel``'s clips: no fit of its own.
    None without two classes or a held-out clip; separable trials (easy data) are logged."""
    llr = class_llr(S[sel.held], sel.scored_frames[sel.held])
    target = sel.y[sel.held][:, None] == np.arange(S.shape[1])[None, :]
    keep = np.isfinite(llr).all(axis=1)
    if S.shape[1] < 2 or not keep.any():
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CalibrationWarning)
        block = calibration_block(target[keep].ravel(), llr[keep].ravel())
    for w in caught:  # easy training data: nothing the user can act on at train time
        logger.info("calibration: %s", w.message)
    return block


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
    accuracies often differ by a few clips in hundreds, which is noise (Hastie et al., ESL 7.10)."""
    return min((o[2], o[0]) for o in within_one_se(options, n))[1]


def beats_default(options: Sequence[Option], default: str, n: int, *,
                  n_se: float | Mapping[str, float] = 1.0) -> str:  # fmt: skip
    """``default``, unless another option is right on more clips by ``n_se`` binomial SEs
    (``sqrt(p (1 - p) n)`` clips; a mapping: by option name, 1 for the others) plus one of
    continuity correction (at 87 of 88 the SE is 0.99 clips, and one clip is no evidence);
    then the best, ties to the simpler."""
    base = next(o[1] for o in options if o[0] == default)
    p = base / n
    se = math.sqrt(p * (1 - p) * n)

    def margin(name: str) -> float:
        return (n_se.get(name, 1.0) if isinstance(n_se, Mapping) else n_se) * se + 1.0

    better = [o for o in options if o[1] - base > margin(o[0])]
    return max(better, key=lambda o: (o[1], -o[2]))[0] if better else default


def choose_components(options: Sequence[Option], n: int, default: str | None = None) -> str:
    """K: ``default`` (``"K=16"``) unless another option beats it (:func:`beats_default`), of
    ``("K=<k>", correct, k)`` and per-class (``k = inf``). Without the default, the largest single
    K within one SE of the best: a CV fit sees less data than the final one, so peaks earlier."""
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
    """The :class:`ComponentSelection` of ``cv(name, ks)`` over ``grid``, largest K first,
    stopping after the first K below the best so far (accuracy never rose again as K fell on the
    dev sets; a quarter to a third of the search saved where large models are needed)."""
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


def forward_fusion(start: str, pool: Sequence[str], scores: Mapping[str, np.ndarray],
                   n_frames: Mapping[str, Sequence[int]], correct: Any,
                   max_members: int) -> list[tuple[list[str], int]]:  # fmt: skip
    """Greedy forward selection of late-fusion members (Caruana et al. 2004): from ``start``,
    add the candidate of ``pool`` whose fusion (``scores``: held-out totals (n_clips, n_labels),
    over ``n_frames``) is ``correct`` on most clips (the earliest on ties), up to
    ``max_members``. Returns (members, n_correct) per step."""
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
