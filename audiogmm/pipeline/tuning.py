"""Choosing the front end and the number of components by cross-validation on training files.

``train --preset auto --components auto`` and ``audiogmm tune`` run :func:`tune`:

1. **Front end.** Every candidate of :data:`FRONT_ENDS` is extracted once (through
   the feature cache when one is given) and scored by clip-stratified ``n_folds``-fold
   cross-validation at :data:`SCREEN_COMPONENTS` components (or the user's fixed K).
   The best accuracy wins; ties go to the earlier candidate.
2. **Components.** On the chosen front end, every single K of the grid is a candidate,
   and so is a per-class K (the grid value with the best held-out log-likelihood of
   the class's own clips, :mod:`audiogmm.models.selection`). The simplest candidate
   whose cross-validated accuracy is within one standard error of the best is kept;
   per-class counts as the most complex (one choice per label).

Folds hold out whole clips, never frames, and only the training files are ever
read. Fits inside the cross-validation stop after :data:`CV_MAX_ITER` EM
iterations and see every :data:`FRAME_STEP`-th frame of their clips: on the
development corpus, 20 and 100 iterations gave the same accuracies within two clips
of 429, and the reduced search chose the same front end (README "Tuning"). Every row of the table carries its
95% Wilson interval, so that differences inside the noise are visible.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from ..container import field_bool, field_dict, field_int, field_list, field_real, field_str
from ..data import ExtractionResult, Record, RunOptions, extract_many
from ..engine import LocalExecutor, resolve
from ..exceptions import ConvergenceWarning, DatasetError, ParameterError
from ..features import PRESETS, FeatureConfig
from ..features.extraction import derivable
from ..models import GMMClassifier
from ..models.selection import COMPONENT_GRID, cv_scores, fit_mixed
from ..scoring import wilson_interval

__all__ = [
    "CV_MAX_ITER",
    "FRAME_STEP",
    "FRONT_ENDS",
    "N_FOLDS",
    "SCREEN_COMPONENTS",
    "TuneResult",
    "train_tuned",
    "tune",
]

logger = logging.getLogger(__name__)

#: Front ends that ``--preset auto`` cross-validates, in order of preference on ties:
#: the presets, plus ``sound`` with per-clip mean normalisation (for recordings whose
#: level or channel varies, where absolute level is not a cue). ``dcase2016`` is left
#: out: it is ``sound`` with 7 more cepstra, and lost to it in every cross-validation
#: on the development corpus, so extracting it would only cost time.
FRONT_ENDS: Mapping[str, FeatureConfig] = {
    "sound": PRESETS["sound"],
    "speech": PRESETS["speech"],
    "librosa": PRESETS["librosa"],
    "sound+cmn": PRESETS["sound"].replace(cmvn="utterance", cmvn_norm_vars=False),
}

#: Folds of the clip-stratified cross-validation.
N_FOLDS = 3
#: Components per class while screening front ends with ``--components auto``.
SCREEN_COMPONENTS = 8
#: EM iterations per fit inside the cross-validation.
CV_MAX_ITER = 10
#: Fits inside the cross-validation use every FRAME_STEP-th frame of a training clip.
FRAME_STEP = 2

Components = Union[int, str]


def _row(stage: str, front_end: str, components: str, correct: int, n: int) -> dict[str, Any]:
    lo, hi = wilson_interval(correct, n)
    return {
        "stage": stage,
        "front_end": front_end,
        "components": components,
        "correct": correct,
        "n": n,
        "accuracy": correct / n if n else float("nan"),
        "ci_low": lo,
        "ci_high": hi,
    }


@dataclass
class TuneResult:
    """What :func:`tune` chose, and the table it chose from.

    Attributes
    ----------
    front_end : str
        Name of the chosen front end (a key of :data:`FRONT_ENDS`, or a preset name).
    config : FeatureConfig
    n_components : dict of str to int
        Components of each class (equal values for a single K).
    components_rule : str
        ``"fixed"``, ``"K=<k>"`` (one K chosen by accuracy) or ``"per-class"``.
    table : list of dict
        One row per candidate: ``stage``, ``front_end``, ``components``, ``correct``,
        ``n``, ``accuracy``, ``ci_low``, ``ci_high`` (95% Wilson), plus ``chosen``.
    n_folds, cv_max_iter : int
    seconds : float
        Wall time of the whole search (extraction included).
    features : ExtractionResult
        The chosen front end's features of the training files (not serialised).
    """

    front_end: str
    config: FeatureConfig
    n_components: dict[str, int]
    components_rule: str
    table: list[dict[str, Any]]
    n_folds: int
    cv_max_iter: int
    seconds: float = 0.0
    features: ExtractionResult = field(default_factory=ExtractionResult, repr=False)

    def to_header(self) -> dict[str, Any]:
        """The JSON-able record stored under ``selection`` in the model file header."""
        return {
            "front_end": self.front_end,
            "components_rule": self.components_rule,
            "n_components": dict(sorted(self.n_components.items())),
            "n_folds": self.n_folds,
            "cv_max_iter": self.cv_max_iter,
            "cv_frame_step": FRAME_STEP,
            "folds_by": "clip",
            "seconds": round(self.seconds, 3),
            "table": self.table,
        }


def _pick_components(options: Sequence[tuple[str, int, float]], n: int) -> str:
    """The one-standard-error rule: the simplest option within one SE of the best accuracy.

    Parameters
    ----------
    options : sequence of (name, n_correct, complexity)
        Complexity orders the options (smaller is simpler).
    n : int
        Clips scored.

    CV accuracies of neighbouring K differ by a few clips in a few hundred, which is
    noise; taking the noisy maximum favours the largest models, which overfit few
    clips per class. So (Breiman et al. 1984; Hastie et al., ESL 7.10) the simplest
    option whose accuracy is within ``sqrt(p (1 - p) / n)`` of the best one's ``p``
    is kept.
    """
    best = max(c for _, c, _ in options)
    p = best / n
    floor = best - math.sqrt(p * (1 - p) / n) * n
    ok = [(k, name) for name, c, k in options if c >= floor]
    return min(ok)[1]


def _candidates(preset: str | FeatureConfig) -> dict[str, FeatureConfig]:
    if isinstance(preset, FeatureConfig):
        return {"config": preset}
    if preset == "auto":
        return dict(FRONT_ENDS)
    return {preset: FeatureConfig.preset(preset)}


def _check_components(components: Components) -> None:
    if components == "auto":
        return
    if isinstance(components, bool) or not isinstance(components, (int, np.integer)):
        raise ParameterError(f"components must be 'auto' or an int >= 1; got {components!r}")
    if components < 1:
        raise ParameterError(f"components must be 'auto' or an int >= 1; got {components!r}")


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
    **classifier_params: Any,
) -> TuneResult:
    """Cross-validate front ends and numbers of components on training files only.

    Parameters
    ----------
    records : sequence of Record
        The training files (never the test side).
    preset : str or FeatureConfig, default="auto"
        ``"auto"`` tries every :data:`FRONT_ENDS` candidate; a preset name or a
        config fixes the front end.
    components : int or "auto", default="auto"
        ``"auto"`` chooses K per class (or one K) over ``grid``; an int fixes K.
    grid : sequence of int
        Candidate K values (:data:`~audiogmm.models.selection.COMPONENT_GRID`).
    n_folds : int >= 2
        Clip-stratified folds.
    cv_max_iter : int >= 1
        EM iterations per fit inside the cross-validation.
    random_state : int or None
        Seeds the folds and the fits.
    options : RunOptions, optional
        Cache folder, workers, progress, strictness for the extractions.
    executor : LocalExecutor, optional
    **classifier_params
        Other classifier parameters for the fits (``init``, ``tol``, ...).

    Returns
    -------
    TuneResult

    Raises
    ------
    DatasetError
        No records, or a label left without usable files.
    ParameterError
        Bad ``components``, ``grid``, ``n_folds`` or preset name.
    """
    if not records:
        raise DatasetError("no training files")
    _check_components(components)
    if not isinstance(cv_max_iter, (int, np.integer)) or cv_max_iter < 1:
        raise ParameterError(f"cv_max_iter must be an int >= 1; got {cv_max_iter!r}")
    cands = _candidates(preset)
    counts = Counter(r.label for r in records)
    if (len(cands) > 1 or components == "auto") and max(counts.values()) < 2:
        raise DatasetError(
            f"cross-validation needs at least 2 training files of some label; every one of "
            f"the {len(counts)} label(s) has 1 (use a fixed --preset and --components)"
        )
    opts = options or RunOptions()
    params = {**classifier_params, "max_iter": cv_max_iter}
    screen_k = SCREEN_COMPONENTS if components == "auto" else int(components)
    t0 = time.perf_counter()
    table: list[dict[str, Any]] = []
    with resolve(executor, opts.n_jobs) as ex, warnings.catch_warnings():
        # the CV fits stop at cv_max_iter on purpose: their ConvergenceWarnings are noise
        warnings.simplefilter("ignore", ConvergenceWarning)
        best: tuple[int, int, str] | None = None
        kept: dict[str, Any] = {}
        extracted: list[tuple[FeatureConfig, ExtractionResult]] = []
        for rank, (name, cfg) in enumerate(cands.items()):
            base = next(((c, r) for c, r in extracted if derivable(c, cfg)), None)
            if base is not None:  # e.g. a per-clip mean subtraction: no second decode
                res = base[1].derived(base[0], cfg)
            else:
                res = extract_many(records, config=cfg, options=opts, executor=ex)
                extracted.append((cfg, res))
            clips, labels = res.labelled_clips(records)
            if len(cands) == 1 and components != "auto":
                sel = None  # nothing to choose: no cross-validation
            else:
                sel = cv_scores(
                    clips, labels, grid=[screen_k], n_folds=n_folds,
                    random_state=random_state, frame_step=FRAME_STEP, executor=ex, **params,
                )  # fmt: skip
                c, n = sel.accuracy_counts(sel.scores[screen_k])
                if len(cands) > 1:
                    table.append(_row("front end", name, f"K={screen_k}", c, n))
                logger.info("front end %s: CV accuracy %d/%d at K=%d", name, c, n, screen_k)
            key = (sel.accuracy_counts(sel.scores[screen_k])[0] if sel else 0, -rank, name)
            if best is None or key > best:
                best = key
                kept = {"res": res, "clips": clips, "labels": labels, "sel": sel}
        assert best is not None
        name = best[2]
        if table:
            for row in table:
                row["chosen"] = row["front_end"] == name
        clips, labels = kept["clips"], kept["labels"]
        if components != "auto":
            k = int(components)
            choice = {y: k for y in labels}
            rule = "fixed"
        else:
            screened = kept["sel"]
            rest = [k for k in grid if screened is None or k != screen_k]
            if not rest:
                sel = screened
            else:
                sel = cv_scores(
                    clips, labels, grid=rest, n_folds=n_folds, random_state=random_state,
                    frame_step=FRAME_STEP, executor=ex, **params,
                )  # fmt: skip
                if screened is not None and screen_k in grid:  # same clips, folds, seed
                    sel.grid = tuple(sorted((*sel.grid, screen_k)))
                    sel.scores[screen_k] = screened.scores[screen_k]
            cands_k: list[tuple[str, int, float]] = []
            choices: dict[str, dict[str, int]] = {}
            for k in sel.grid:
                c, n = sel.accuracy_counts(sel.scores[k])
                choices[f"K={k}"] = sel.capped({y: k for y in sel.labels})
                table.append(_row("components", name, f"K={k}", c, n))
                cands_k.append((f"K={k}", c, float(k)))
            per_class = sel.choose()
            c, n = sel.accuracy_counts(sel.composite(per_class))
            choices["per-class"] = sel.capped(per_class)
            table.append(_row("components", name, "per-class", c, n))
            # per-class picks one K per label (n_labels choices, not one) from the same
            # folds: the more flexible selection, so it ranks after every single K
            cands_k.append(("per-class", c, float("inf")))
            rule = _pick_components(cands_k, n)
            choice = choices[rule]
            for row in table:
                if row["stage"] == "components":
                    row["chosen"] = row["components"] == rule
    return TuneResult(
        front_end=name,
        config=cands[name],
        n_components=choice,
        components_rule=rule,
        table=table,
        n_folds=n_folds,
        cv_max_iter=cv_max_iter,
        seconds=time.perf_counter() - t0,
        features=kept["res"],
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
    **classifier_params: Any,
) -> tuple[GMMClassifier, TuneResult]:
    """:func:`tune`, then fit the chosen model on every training file (features reused).

    ``classifier_params`` (``max_iter``, ``init``, ...) apply to the final fit; the
    cross-validation fits use ``cv_max_iter``.

    Returns
    -------
    classifier : GMMClassifier
        Fitted; classes may have different K (stacked at the largest, see
        :func:`audiogmm.models.selection.fit_mixed`); ``timing_`` has
        ``tune_s`` and ``train_s``.
    result : TuneResult
        Save ``result.to_header()`` in the model file under ``selection``.
    """
    opts = options or RunOptions()
    with resolve(executor, opts.n_jobs) as ex:
        result = tune(
            records, preset=preset, components=components, n_folds=n_folds,
            cv_max_iter=cv_max_iter, random_state=random_state, options=opts, executor=ex,
            **{k: v for k, v in classifier_params.items() if k != "max_iter"},
        )  # fmt: skip
        t1 = time.perf_counter()
        clips, labels = result.features.labelled_clips(records)
        clf = fit_mixed(
            clips, labels, result.n_components, random_state=random_state, executor=ex,
            n_jobs=opts.n_jobs, **classifier_params,
        )  # fmt: skip
    clf.timing_ = {"tune_s": result.seconds, "train_s": time.perf_counter() - t1}
    return clf, result


_ROW_FIELDS = {
    "stage": field_str,
    "front_end": field_str,
    "components": field_str,
    "correct": lambda v, w: field_int(v, w, lo=0),
    "n": lambda v, w: field_int(v, w, lo=0),
    "accuracy": lambda v, w: field_real(v, w, lo=0.0, hi=1.0, finite=False),
    "ci_low": lambda v, w: field_real(v, w, lo=0.0, hi=1.0, finite=False),
    "ci_high": lambda v, w: field_real(v, w, lo=0.0, hi=1.0, finite=False),
    "chosen": field_bool,
}


def validate_selection_block(block: Any) -> dict[str, Any]:
    """Check a model header's ``selection`` block (written by :meth:`TuneResult.to_header`).

    Raises
    ------
    ValueError
        A missing, unknown or ill-typed field; the message names it
        (``selection.<field>``).
    """
    d = field_dict(block, "selection")
    required = {"front_end", "components_rule", "n_components", "n_folds", "cv_max_iter",
                "cv_frame_step", "folds_by", "seconds", "table"}  # fmt: skip
    missing, unknown = sorted(required - set(d)), sorted(set(d) - required)
    if missing or unknown:
        raise ValueError(f"selection: missing field(s) {missing}, unknown field(s) {unknown}")
    out = {
        "front_end": field_str(d["front_end"], "selection.front_end"),
        "components_rule": field_str(d["components_rule"], "selection.components_rule"),
        "n_components": {
            field_str(k, "selection.n_components key", max_len=1024): field_int(
                v, f"selection.n_components[{k!r}]", lo=1, hi=1 << 16
            )
            for k, v in field_dict(d["n_components"], "selection.n_components").items()
        },
        "n_folds": field_int(d["n_folds"], "selection.n_folds", lo=2, hi=1000),
        "cv_max_iter": field_int(d["cv_max_iter"], "selection.cv_max_iter", lo=0, hi=1 << 20),
        "cv_frame_step": field_int(d["cv_frame_step"], "selection.cv_frame_step", lo=1),
        "folds_by": field_str(d["folds_by"], "selection.folds_by"),
        "seconds": field_real(d["seconds"], "selection.seconds", lo=0.0),
        "table": [],
    }
    if out["folds_by"] != "clip":
        raise ValueError(f"selection.folds_by must be 'clip', got {out['folds_by']!r}")
    for i, row in enumerate(field_list(d["table"], "selection.table", max_len=10_000)):
        what = f"selection.table[{i}]"
        row = field_dict(row, what)
        unknown = sorted(set(row) - set(_ROW_FIELDS))
        missing = sorted(set(_ROW_FIELDS) - {"chosen"} - set(row))
        if missing or unknown:
            raise ValueError(f"{what}: missing field(s) {missing}, unknown field(s) {unknown}")
        out["table"].append({k: _ROW_FIELDS[k](v, f"{what}.{k}") for k, v in row.items()})
    return out
