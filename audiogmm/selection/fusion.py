"""Fusions of backends (``train --backend gsv+ml --preset speaker+general``): the members
named by ``+``-joined presets and backends, their fits on the training clips and on held-out
folds (side by side, as tasks of the executor), and the weights of
:func:`~audiogmm.models.fusion.fit_fusion` on the held-out scores; from clips
(:func:`fit_fused`) or from labelled files (:func:`train_fused`)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..data import ExtractionResult, Record, RunOptions, extract_many_configs
from ..engine import LocalExecutor, one_blas_thread, resolve
from ..exceptions import ParameterError
from ..features import FeatureConfig
from ..models import BACKENDS, FusedClassifier, GMMClassifier
from ..models.fusion import MAX_MEMBERS, fit_fusion, member_frames
from .cv import clip_folds, held_out
from .mixed import fit_mixed

__all__ = ["FUSION_PROCESS_MAX_BYTES", "fit_fused", "fused_member_task", "fusion_pairs",
           "train_fused"]  # fmt: skip

logger = logging.getLogger(__name__)


def fusion_pairs(preset: str, backend: str) -> list[tuple[str, str]]:
    """The ``(preset, backend)`` of each member of the fusion that ``+``-joined names give
    (``"speaker+general"``, ``"gsv+ml"``; one name serves every member), or [] when both
    name one. ParameterError: other counts, more than MAX_MEMBERS, ``auto`` among several
    (it chooses its own fusions), or a repeated member."""
    presets, backends = str(preset).split("+"), str(backend).split("+")
    n = max(len(presets), len(backends))
    if n == 1:
        return []
    if len(presets) not in (1, n) or len(backends) not in (1, n):
        raise ParameterError(f"{len(presets)} front ends and {len(backends)} backends: give "
                             "one, or one per member")  # fmt: skip
    if n > MAX_MEMBERS:
        raise ParameterError(f"a fusion has at most {MAX_MEMBERS} members, got {n}")
    if "auto" in presets:
        raise ParameterError("preset 'auto' chooses its own front ends (and fusion) for the ml "
                             "backend: give named presets to fuse backends")  # fmt: skip
    members = list(zip(presets * (n // len(presets)), backends * (n // len(backends))))
    for i, m in enumerate(members):
        if m in members[:i]:
            raise ParameterError(f"member {i + 1} ({m[1]} on {m[0]}) repeats member "
                                 f"{members.index(m) + 1}")  # fmt: skip
    return members


#: Features (bytes, all members) past which :func:`fit_fused` keeps its fits on threads: each
#: task sent to a worker process carries a pickled copy of its clips.
FUSION_PROCESS_MAX_BYTES = 1 << 28


def fit_fused(clip_sets: Sequence[Sequence[np.ndarray]], labels: Sequence[str],
              backends: Sequence[str], *, n_folds: int = 3, random_state: int | None = 0,
              executor: LocalExecutor | None = None, n_jobs: int | None = None,
              progress: Any = None) -> FusedClassifier:  # fmt: skip
    """A late fusion of one classifier per member ``m``: ``backends[m]`` (its defaults) on
    ``clip_sets[m]`` (the same clips, in the order of ``labels``, under member ``m``'s front
    end), weighted by :func:`~audiogmm.models.fusion.fit_fusion` on held-out scores.

    Each member is fitted on all the clips and, for each of ``n_folds`` clip folds, afresh
    on the other folds (its UBM too), to score the held-out clips: independent fits, run side
    by side as tasks of ``executor``. A UBM that has seen the
    held-out clips shrinks their supervectors (dev realsounds: RMS length 0.57 against 0.85
    for unseen clips), which made the held-out scores of gsv members look worse than their
    test scores: sharing the final UBM across the folds saved a third of the time, but a
    fusion of two gsv members then gave one a negative weight and lost 57 of 639 test clips
    on the realsounds (README, "Fusions of backends"). Members' own calibrations are
    skipped: the fusion weights calibrate the fused scores.

    Returns
    -------
    FusedClassifier
        ``timing_``: ``train_s`` (every fit: the members' and the folds', side by side as
        tasks of ``executor``) and ``fusion_s`` (the weights).
        ParameterError: fewer than 2 or more than MAX_MEMBERS members, sets of other lengths
        than ``labels``, an unknown backend, or no class with 2 clips to hold one out."""
    labels = [str(y) for y in labels]
    backends = list(backends)
    if not 2 <= len(backends) <= MAX_MEMBERS or len(clip_sets) != len(backends):
        raise ParameterError(f"a fusion needs 2 to {MAX_MEMBERS} members, one clip set each; "
                             f"got {len(backends)} backends and {len(clip_sets)} clip sets")
    if unknown := sorted(set(backends) - set(BACKENDS)):
        raise ParameterError(f"unknown backend(s) {unknown}; choose from {sorted(BACKENDS)}")
    if any(len(c) != len(labels) for c in clip_sets):
        raise ParameterError("every member needs one clip per label, in the same order")
    folds = clip_folds(labels, n_folds, random_state=random_state)
    split = held_out(folds)
    if not split or len(set(labels)) < 2:
        raise ParameterError("a fusion needs 2 classes and 2 training clips in some class "
                             "(its weights are fitted on held-out clips)")  # fmt: skip

    held = list(split.values())
    test = np.concatenate([te for _, te in held])
    tasks = [(b, list(clip_sets[m]), labels, None, random_state) for m, b in enumerate(backends)]
    tasks += [(b, [clip_sets[m][i] for i in train], [labels[i] for i in train],
               [clip_sets[m][i] for i in te], random_state)
              for train, te in held for m, b in enumerate(backends)]  # fmt: skip
    t0 = time.perf_counter()
    done = []
    small = sum(X.nbytes for c in clip_sets for X in c) <= FUSION_PROCESS_MAX_BYTES
    with resolve(executor, n_jobs) as ex:  # every fit at once (worker processes if it has them)
        for got in ex.map(fused_member_task, tasks, isolated=small, star=True):
            done.append(got)
            if progress is not None:
                progress(len(done), len(tasks), "fusion: member fits")
    finals, held_scores = done[:len(backends)], done[len(backends):]
    for f in finals:  # fitted on one thread each; scoring later runs on the caller's n_jobs
        f.n_jobs = n_jobs
    t1 = time.perf_counter()
    scores = [np.concatenate(held_scores[m::len(backends)]) for m in range(len(backends))]
    index = {y: i for i, y in enumerate(finals[0].labels_)}
    if any(S.shape[1] != len(index) for S in scores):  # clip_folds keeps every class in training
        raise ParameterError("a fold lost a class")
    y = np.array([index[labels[i]] for i in test])
    frames = [member_frames(f, [clip_sets[m][i] for i in test]) for m, f in enumerate(finals)]
    clf = FusedClassifier(finals, fit_fusion(scores, frames, y))
    clf.timing_ = {"train_s": t1 - t0, "fusion_s": time.perf_counter() - t1}
    return clf


def fused_member_task(backend: str, clips: Sequence[np.ndarray], labels: Sequence[str],
                      test: Sequence[np.ndarray] | None,
                      random_state: int | None) -> GMMClassifier | np.ndarray:  # fmt: skip
    """One fit of :func:`fit_fused` (a task, which may run in a worker process), all in this
    thread: ``backend``'s default model of ``clips``, uncalibrated; with ``test``, its scores
    of those clips (n_test, n_labels) instead."""
    with one_blas_thread():
        ex = LocalExecutor(1)
        clf = BACKENDS[backend](random_state=random_state, n_jobs=1)
        frames = Counter()
        for X, y in zip(clips, labels):
            frames[str(y)] += len(X)
        if backend == "ml" and test is not None and min(frames.values()) < clf.n_components:
            # a fold can hold fewer frames of a short class than K, which the whole set
            # has: that class at one component per frame, as the CV of auto caps it
            ks = {y: min(clf.n_components, n) for y, n in frames.items()}
            clf = fit_mixed(clips, labels, ks, random_state=random_state, executor=ex, n_jobs=1)
        else:
            kw = {} if clf.scores_per_frame else {"calibrate": False}
            clf.fit(clips, labels, executor=ex, **kw)
        return clf if test is None else clf.score_matrix(test, executor=ex)


def train_fused(records: Sequence[Record], members: Sequence[tuple[str, str]], *,
                random_state: int | None = 0, options: RunOptions | None = None,
                executor: LocalExecutor | None = None,
                ) -> tuple[FusedClassifier, list[Record], list[ExtractionResult]]:  # fmt: skip
    """:func:`fit_fused` of ``members`` (``(preset, backend)`` pairs, e.g. from
    :func:`fusion_pairs`) on the labelled ``records`` usable under every member's front
    end (each file decoded once for all of them), as ``train --backend gsv+ml`` does.
    Returns the classifier (``timing_``: ``extract_s``, ``train_s``, ``fusion_s``), the
    records used and each member's extraction (``skipped``: files not used)."""
    opts = options or RunOptions()
    configs = [FeatureConfig.preset(p) for p, _ in members]
    with resolve(executor, opts.n_jobs) as ex:
        t0 = time.perf_counter()
        results = extract_many_configs(records, configs, options=opts, executor=ex)
        extract_s = time.perf_counter() - t0
        used = [r for r in records if all(r.path in res.features for res in results)]
        if lost := sum(r.path in results[0].features for r in records) - len(used):
            logger.warning("%d file(s) skipped: unusable under another member's front end", lost)
        sets = [res.labelled_clips(used) for res in results]
        clf = fit_fused([c for c, _ in sets], sets[0][1], [b for _, b in members],
                           random_state=random_state, executor=ex, n_jobs=opts.n_jobs,
                           progress=opts.progress)  # fmt: skip
    clf.timing_ = {"extract_s": extract_s, **clf.timing_}
    return clf, used, results
