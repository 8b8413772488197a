"""Training what :func:`~audiogmm.selection.steps.tune` chose (``train --preset auto
--components auto``): the chosen model fitted on every training file, reusing the features."""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence
from typing import Any

from ..data import Record, RunOptions
from ..engine import LocalExecutor, resolve
from ..models import BACKENDS, FusedClassifier, GMMClassifier
from ..models.ubm import UBM_COMPONENTS
from . import cv
from .steps import TuneResult, tune

__all__ = ["train_tuned"]

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
        elif len(data) == 1:
            fits = [cv.fit_mixed(*data[0], result.n_components, executor=ex,
                                 random_state=random_state, **member)]
        else:  # a fusion's members side by side (in worker processes when the executor has them)
            tasks = [(*d, result.n_components, random_state, member) for d in data]
            fits = list(ex.map(cv.fit_mixed_task, tasks, isolated=True, star=True))
    clf = FusedClassifier(fits, weights=result.fusion_weights) if len(fits) > 1 else fits[0]
    clf.timing_ = {"tune_s": result.seconds, "train_s": time.perf_counter() - t1}
    return clf, result
