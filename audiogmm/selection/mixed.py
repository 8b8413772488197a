"""Mixed-K classifiers: one :class:`GMMClassifier` whose classes may have different numbers
of components (``--components auto``), fitted by K groups, or by parts of its classes merged
back into the same models (each class seeded as in the whole fit)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..engine import LocalExecutor, one_blas_thread, resolve
from ..exceptions import ParameterError
from ..models import GMMClassifier
from ..models.classifier import class_seeds

__all__ = ["class_parts", "fit_mixed", "fit_mixed_task", "merge_fits", "mixed_seeds",
           "quiet_single_class"]


def fit_mixed(clips: Sequence[np.ndarray], labels: Sequence[str], n_components: Mapping[str, int],
              *, random_state: int | None = 0, executor: LocalExecutor | None = None,
              seeds: Mapping[str, int] | None = None, **params: Any) -> GMMClassifier:  # fmt: skip
    """A fitted :class:`GMMClassifier` whose class ``y`` has ``n_components[y]`` components
    (``fit_report_[y]["n_components"]``; its ``n_components``: the largest), labels of one K
    trained by one stacked EM; ``params`` go to the classifiers. ``seeds``: each label's
    mixture seed, default :func:`mixed_seeds` of the labels given (a fit of some of them with
    the seeds of all trains their mixtures as the fit of all does)."""
    labels = [str(y) for y in labels]
    missing = sorted(set(labels) - set(n_components))
    if missing:
        raise ParameterError(f"no number of components given for label(s) {missing}")
    if seeds is None:
        seeds = mixed_seeds({y: n_components[y] for y in labels}, random_state)
    groups: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        groups.setdefault(int(n_components[y]), []).append(i)
    fits = []
    with resolve(executor, params.get("n_jobs")) as ex, quiet_single_class():
        for k, idx in sorted(groups.items()):
            sub = GMMClassifier(k, random_state=random_state, **params).fit(
                [clips[i] for i in idx], [labels[i] for i in idx], executor=ex, seeds=seeds
            )
            sub.fit_report_ = {y: {**r, "n_components": k} for y, r in sub.fit_report_.items()}
            fits.append(sub)
    return merge_fits(fits, random_state=random_state, **params)


def mixed_seeds(n_components: Mapping[str, int], random_state: int | None) -> dict[str, int]:
    """Each label's mixture seed in :func:`fit_mixed` of the labels of ``n_components``: the
    labels of one K are one classifier's, seeded by their index among them (:func:`class_seeds`)."""
    groups: dict[int, list[str]] = {}
    for y in sorted(n_components):
        groups.setdefault(int(n_components[y]), []).append(y)
    return {y: s for ys in groups.values() for y, s in zip(ys, class_seeds(random_state, len(ys)))}


def merge_fits(fits: Sequence[GMMClassifier], *, random_state: int | None = 0,
               **params: Any) -> GMMClassifier:  # fmt: skip
    """One classifier of the classes of ``fits`` (:func:`fit_mixed` results of disjoint labels,
    ``params`` theirs): each class's mixture is its fit's; its ``n_components``: the largest."""
    models = {y: m for f in fits for y, m in f.models_.items()}
    report = {y: r for f in fits for y, r in f.fit_report_.items()}
    out = GMMClassifier(max(r["n_components"] for r in report.values()),
                        random_state=random_state, **params)  # fmt: skip
    out.set_models(models)
    out.fit_report_ = {y: report[y] for y in out.labels_}
    return out


def class_parts(labels: Sequence[str], sizes: Sequence[float], n_parts: int) -> list[list[str]]:
    """The distinct ``labels`` in at most ``n_parts`` groups of about equal total ``sizes``
    (one per clip; each label, largest first, into the lightest group), each sorted."""
    load: dict[str, float] = {}
    for y, n in zip(labels, sizes):
        load[y] = load.get(y, 0.0) + float(n)
    parts: list[list[str]] = [[] for _ in range(max(1, min(n_parts, len(load))))]
    totals = [0.0] * len(parts)
    for y in sorted(load, key=lambda y: (-load[y], y)):
        g = totals.index(min(totals))
        parts[g].append(y)
        totals[g] += load[y]
    return [sorted(p) for p in parts]


@contextmanager
def quiet_single_class():
    """Silence the classifier's one-class warning (a group or fold may hold one label)."""
    log = logging.getLogger(GMMClassifier.__module__)
    def flt(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("only one class")
    log.addFilter(flt)
    try:
        yield
    finally:
        log.removeFilter(flt)


def fit_mixed_task(clips: Sequence[np.ndarray], labels: Sequence[str],
                   n_components: Mapping[str, int], random_state: int | None,
                   params: Mapping[str, Any]) -> GMMClassifier:  # fmt: skip
    """:func:`fit_mixed` all in this thread (a task, which may run in a worker process: the
    same models as on any executor)."""
    with one_blas_thread():
        return fit_mixed(clips, labels, n_components, random_state=random_state,
                         executor=LocalExecutor(1), **params)  # fmt: skip
