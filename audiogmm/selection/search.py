"""``--preset auto --components auto``: the model chosen by cross-validation on training files.

:func:`tune` runs the steps of :mod:`audiogmm.selection.steps` over one :class:`TuneState`:
the candidate front ends, the number of components (on the default front end), the other
front ends, late fusion, and the other backends. Folds hold out whole clips and only the
training files are read. CV fits stop after :data:`CV_MAX_ITER` EM iterations (20 and 100
gave the same accuracies within two clips of 429, README "Tuning").
"""

from __future__ import annotations

import importlib.util
import logging
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..data import Record, RunOptions
from ..engine import LocalExecutor, resolve
from ..exceptions import ConvergenceWarning, DatasetError, ParameterError
from ..features import FeatureConfig
from ..models import BACKENDS, FusedClassifier, GMMClassifier
from ..models.ubm import UBM_COMPONENTS
from .cv import COMPONENT_GRID, fit_mixed
from .state import (
    BACKEND_EXTRAS,
    COSTLY_BACKENDS,
    CV_MAX_ITER,
    N_FOLDS,
    Components,
    TuneResult,
    TuneState,
    candidates,
)
from .steps import STEPS

__all__ = ["train_tuned", "tune"]

logger = logging.getLogger(__name__)


def _check_components(components: Components) -> None:
    if components == "auto":
        return
    if isinstance(components, bool) or not isinstance(components, (int, np.integer)) or components < 1:
        raise ParameterError(f"components must be 'auto' or an int >= 1; got {components!r}")


def _available_backends() -> tuple[str, ...]:
    """The backends ``auto`` tries: all but ``ml`` whose extra is installed, not costly ones."""
    out = []
    for b in BACKENDS:
        extra = BACKEND_EXTRAS.get(b)
        if b == "ml":
            continue
        if b in COSTLY_BACKENDS:
            logger.info("backend %s not tried: %s", b, COSTLY_BACKENDS[b])
            continue
        if extra and importlib.util.find_spec(extra) is None:
            logger.warning("backend %s left out of the search: it needs %s (pip install "
                           "'audiogmm[sklearn]')", b, extra)  # fmt: skip
            continue
        out.append(b)
    return tuple(out)


def tune(
    records: Sequence[Record],
    *,
    preset: str | FeatureConfig = "auto",
    components: Components = "auto",
    grid: Sequence[int] = COMPONENT_GRID,
    n_folds: int = N_FOLDS,
    cv_max_iter: int = CV_MAX_ITER,
    random_state: int | None = 0,
    options: RunOptions | None = None,
    executor: LocalExecutor | None = None,
    backends: Sequence[str] | str | None = None,
    **classifier_params: Any,
) -> TuneResult:
    """Cross-validate front ends, numbers of components and backends on training files only.

    Parameters
    ----------
    preset : str or FeatureConfig
        ``"auto"`` tries every :data:`FRONT_ENDS` candidate; a name or a config fixes it.
    components : int or "auto"
        ``"auto"`` chooses K per class (or one K) over ``grid``; an int fixes K.
    cv_max_iter : int >= 1
        EM iterations per fit inside the cross-validation.
    backends : sequence of str, "auto" or None
        Other backends to try. None: ``"auto"`` when ``preset`` and ``components`` are
        both ``"auto"``, else none; ``"auto"``: every backend whose extra is installed,
        except :data:`~.state.COSTLY_BACKENDS`.

    Raises
    ------
    DatasetError
        No records, or a label left without usable files.
    ParameterError
        Bad ``components``, ``grid``, ``n_folds``, backend or preset name.
    """
    if not records:
        raise DatasetError("no training files")
    _check_components(components)
    if not isinstance(cv_max_iter, (int, np.integer)) or cv_max_iter < 1:
        raise ParameterError(f"cv_max_iter must be an int >= 1; got {cv_max_iter!r}")
    cands = candidates(preset)
    if backends is None:
        backends = "auto" if preset == "auto" and components == "auto" else ()
    backends = _available_backends() if backends == "auto" else tuple(backends)
    unknown = sorted(set(backends) - set(BACKENDS) | ({"ml"} & set(backends)))
    if unknown:
        raise ParameterError(f"backends to try must be among {sorted(set(BACKENDS) - {'ml'})}; "
                             f"got {unknown}")  # fmt: skip
    counts = Counter(r.label for r in records)
    if (len(cands) > 1 or components == "auto") and max(counts.values()) < 2:
        raise DatasetError(
            f"cross-validation needs at least 2 training files of some label; every one of "
            f"the {len(counts)} label(s) has 1 (use a fixed --preset and --components)"
        )
    opts = options or RunOptions()
    t0 = time.perf_counter()
    with resolve(executor, opts.n_jobs) as ex, warnings.catch_warnings():
        # the CV fits stop at cv_max_iter on purpose: their ConvergenceWarnings are noise
        warnings.simplefilter("ignore", ConvergenceWarning)
        state = TuneState(
            records, cands, opts, ex, {**classifier_params, "max_iter": cv_max_iter},
            components, grid, n_folds, random_state, backends,
        )  # fmt: skip
        for step in STEPS:
            step(state)
        for row in state.table:
            if row["stage"] == "components":  # the K every member uses
                row["chosen"] = state.rule == "fixed" or row["components"] == state.rule
        main = state.members[0] if state.members else state.front_end
        return TuneResult(
            front_end=state.front_end,
            config=state.cands[main],
            n_components=state.choices[state.rule],
            components_rule=state.rule,
            table=state.table,
            n_folds=n_folds,
            cv_max_iter=cv_max_iter,
            seconds=time.perf_counter() - t0,
            features=state.features(main)[0],
            members=state.members,
            member_configs=[state.cands[m] for m in state.members],
            member_features=[state.features(m)[0] for m in state.members],
            fusion_weights=state.fusion_weights,
            backend=state.backend,
        )


def train_tuned(
    records: Sequence[Record],
    *,
    preset: str | FeatureConfig = "auto",
    components: Components = "auto",
    random_state: int | None = 0,
    options: RunOptions | None = None,
    executor: LocalExecutor | None = None,
    n_folds: int = N_FOLDS,
    cv_max_iter: int = CV_MAX_ITER,
    backends: Sequence[str] | str | None = None,
    **classifier_params: Any,
) -> tuple[GMMClassifier | FusedClassifier, TuneResult]:
    """:func:`tune`, then fit the chosen model on every training file (features reused).

    ``classifier_params`` apply to the final ml fit (another backend: its defaults and the
    UBM size it was scored at). Returns the classifier (a FusedClassifier when a fusion
    won; ``timing_`` has ``tune_s`` and ``train_s``) and the :class:`TuneResult`, whose
    ``to_header()`` goes in the model file under ``selection``.
    """

    opts = options or RunOptions()
    with resolve(executor, opts.n_jobs) as ex:
        result = tune(
            records, preset=preset, components=components, n_folds=n_folds,
            cv_max_iter=cv_max_iter, random_state=random_state, options=opts, executor=ex,
            backends=backends, **{k: v for k, v in classifier_params.items() if k != "max_iter"},
        )  # fmt: skip
        t1 = time.perf_counter()
        fits = []
        for res in result.member_features or [result.features]:
            clips, labels = res.labelled_clips(records)
            if result.backend != "ml":
                clf = BACKENDS[result.backend](n_components=UBM_COMPONENTS, n_jobs=opts.n_jobs,
                                               random_state=random_state)  # as it was scored
                fits.append(clf.fit(clips, labels, executor=ex))
                continue
            fits.append(fit_mixed(
                clips, labels, result.n_components, random_state=random_state, executor=ex,
                n_jobs=opts.n_jobs, **classifier_params,
            ))  # fmt: skip
    clf = FusedClassifier(fits, weights=result.fusion_weights) if len(fits) > 1 else fits[0]
    clf.timing_ = {"tune_s": result.seconds, "train_s": time.perf_counter() - t1}
    return clf, result
