"""Training what :func:`~audiogmm.selection.steps.tune` chose (``train --preset auto
--components auto``): the chosen model fitted on every training file, reusing the features."""

from __future__ import annotations

import inspect
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..data import Record, RunOptions
from ..engine import LocalExecutor, resolve
from ..models import BACKENDS, FusedClassifier, GMMClassifier
from ..models.ubm import UBM_COMPONENTS
from . import mixed
from .result import TuneResult
from .steps import tune

__all__ = ["fit_ml", "train_tuned"]


def train_tuned(records: Sequence[Record], *, random_state: int | None = 0,
                options: RunOptions | None = None, executor: LocalExecutor | None = None,
                **params: Any) -> tuple[GMMClassifier | FusedClassifier, TuneResult]:  # fmt: skip
    """:func:`tune` (``params``: its keywords and the classifier's, for the CV and final ml
    fits; another backend: its defaults at the UBM size it was scored at), then fit the chosen
    model on every training file, reusing the features. Returns the classifier (a
    FusedClassifier when a fusion won; ``timing_``: ``tune_s``, ``train_s``) and the
    :class:`TuneResult`."""
    opts = options or RunOptions()
    fit_params = {k: v for k, v in params.items() if k not in inspect.signature(tune).parameters}
    member = {"n_jobs": opts.n_jobs, **fit_params}  # a classifier's n_jobs among them wins
    with resolve(executor, opts.n_jobs) as ex:
        result = tune(records, random_state=random_state, options=opts, executor=ex, **params)
        t1 = time.perf_counter()
        data = [res.labelled_clips(records) for res in result.member_features or [result.features]]
        if result.backend != "ml":  # as it was scored
            clf = BACKENDS[result.backend](n_components=UBM_COMPONENTS, n_jobs=opts.n_jobs,
                                           random_state=random_state)  # fmt: skip
            fits = [clf.fit(*data[0], executor=ex)]
        else:
            fits = fit_ml(data, result.n_components, random_state, member, ex)
    clf = FusedClassifier(fits, weights=result.fusion_weights) if len(fits) > 1 else fits[0]
    clf.timing_ = {"tune_s": result.seconds, "train_s": time.perf_counter() - t1}
    return clf, result


def fit_ml(data: Sequence[tuple[list, list[str]]], n_components: Mapping[str, int],
           random_state: int | None, params: dict[str, Any],
           ex: LocalExecutor) -> list[GMMClassifier]:  # fmt: skip
    """The :func:`mixed.fit_mixed` classifier of each member's ``(clips, labels)``: one member on
    ``ex``'s threads; members side by side as tasks (in worker processes when ``ex`` has
    them); and with worker processes, each member's classes split over the workers
    (:func:`mixed.class_parts`), each class with its seed in the member's whole fit, so that
    both cores fit, not 3 members on 2 workers or one member's k-means++ on one thread. The
    same mixtures in every case: a class trains as alone (:func:`mixed.merge_fits`)."""
    parts = ex.n_workers if ex.processes else 1
    if len(data) == 1 and parts == 1:
        return [mixed.fit_mixed(*data[0], n_components, executor=ex, random_state=random_state,
                                **params)]  # fmt: skip
    tasks, owner, cost = [], [], []
    for m, (clips, labels) in enumerate(data):
        seeds = mixed.mixed_seeds({y: n_components[y] for y in labels}, random_state)
        for part in mixed.class_parts(labels, [len(X) for X in clips], parts):
            mine = set(part)
            idx = [i for i, y in enumerate(labels) if y in mine]
            tasks.append(([clips[i] for i in idx], [labels[i] for i in idx], n_components,
                          random_state, {**params, "seeds": seeds}))  # fmt: skip
            owner.append(m)
            cost.append(sum(clips[i].size for i in idx))
    order = sorted(range(len(tasks)), key=lambda t: -cost[t])  # the largest first
    got = dict(zip(order, ex.map(mixed.fit_mixed_task, [tasks[t] for t in order], isolated=True,
                                 star=True)))  # fmt: skip
    return [mixed.merge_fits([got[t] for t in range(len(tasks)) if owner[t] == m],
                             random_state=random_state, **params) for m in range(len(data))]
