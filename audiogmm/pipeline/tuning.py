"""Choosing the number of components and the front end by cross-validation on training files.

``train --preset auto --components auto`` and ``audiogmm tune`` run :func:`tune`:

1. **Components**, on the first candidate front end (the default, ``general``): every
   single K of the grid that most classes can support (:func:`supported_grid`) is a
   candidate, from the largest down (:func:`~audiogmm.models.decisions.search_down`), and
   so is a per-class K (the grid value with the best held-out log-likelihood of the
   class's own clips, :mod:`audiogmm.models.selection`). The largest single K whose
   cross-validated accuracy is within one standard error of the best is kept
   (:func:`~audiogmm.models.decisions.choose_components`: the CV models see a third of
   the final model's data); per-class only when it leads by more than that.
2. **Front end.** Every other candidate (:data:`FRONT_ENDS` within the files' bandwidth,
   then the widest one's per-clip mean-normalised copy, ``<name>-cmn``, see :data:`CMN`)
   is extracted once (or derived from a shared extraction) and scored at the K chosen in
   step 1 (the best single K when per-class won): front ends are compared at the model
   size the data supports, since their ranking changes with K. The one-standard-error
   rule (:func:`~audiogmm.models.decisions.one_standard_error`), in candidate order,
   keeps one.
3. **Late fusion** (:class:`~audiogmm.models.FusedClassifier`), by greedy forward
   selection from that front end: each step adds the candidate whose fusion with the
   members so far is most accurate, up to :data:`MAX_FUSED` members. Its CV accuracy
   comes from the candidates' score matrices of step 2, at no extra cost. Of the front
   end alone and each step, the one with the most members among those within one
   standard error of the best is kept (:func:`~audiogmm.models.decisions.choose_fusion`:
   adding a member to a fusion fits nothing, so it cannot overfit). A later front end or
   a fusion takes the single K.

Folds hold out whole clips, never frames, and only the training files are ever
read. Fits inside the cross-validation stop after :data:`CV_MAX_ITER` EM
iterations and fit and score every :data:`FRAME_STEP`-th frame of their clips (every
:data:`SCREEN_FRAME_STEP`-th for the other front ends, at the chosen K): on the
development corpus, 20 and 100 iterations gave the same accuracies within two clips
of 429, and steps 1 and 2 the same within two clips (README "Tuning"). Every row of the
table carries its 95% Wilson interval, so that differences inside the noise are visible.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from ..data import ExtractionResult, Record, RunOptions, extract_many
from ..engine import LocalExecutor, resolve
from ..exceptions import ConvergenceWarning, DatasetError, ParameterError
from ..features import PRESETS, FeatureConfig
from ..features.extraction import extraction_roots
from ..io.schema import check
from ..io.tables import SELECTION
from ..models import FusedClassifier, GMMClassifier
from ..models.classifier import N_COMPONENTS
from ..models.decisions import (
    choose_components,
    choose_fusion,
    forward_fusion,
    one_standard_error,
    search_down,
)
from ..models.selection import (
    COMPONENT_GRID,
    cv_scores,
    fit_mixed,
    median_cap,
    supported_grid,
)
from ..scoring import wilson_interval

__all__ = [
    "CMN",
    "CV_MAX_ITER",
    "FRAME_STEP",
    "FRONT_ENDS",
    "MAX_FUSED",
    "N_FOLDS",
    "SCREEN_FRAME_STEP",
    "TuneResult",
    "train_tuned",
    "tune",
]

logger = logging.getLogger(__name__)

#: Front ends that ``--preset auto`` cross-validates, simplest and cheapest first (the
#: order of preference of the one-standard-error rule): the default ``general``, and the
#: full-band ``sound`` (44.1 kHz), tried only when some training file has content above
#: 8 kHz. Left out because they never beat ``general`` by more than one standard error in
#: cross-validation at K=16 on the development corpus and cost an extraction each
#: (README "Presets and tuning", ``bench_presets.py``): ``general`` + ΔΔ, ``speech``
#: (10-25 points below), ``librosa`` and ``dcase2016``.
FRONT_ENDS: Mapping[str, FeatureConfig] = {
    "general": PRESETS["general"],
    "sound": PRESETS["sound"],
}

#: Added to the candidates as ``<widest>-cmn``: the widest-band front end tried, with
#: per-clip cepstral mean normalisation, computed from the same extraction. Alone it is
#: the weaker (it drops the clip's average spectrum and level); as a late-fusion partner
#: of the raw front ends it gained on every development set (README "Presets and tuning").
CMN = {"cmvn": "utterance", "cmvn_norm_vars": False}

#: Most members of a late fusion chosen by ``--preset auto``.
MAX_FUSED = 3

#: Folds of the clip-stratified cross-validation.
N_FOLDS = 3
#: EM iterations per fit inside the cross-validation.
CV_MAX_ITER = 5
#: Fewer training clips than this and a choice by cross-validation is mostly noise (one
#: clip more or less correct moves the accuracy by over 3 points): ``tune`` warns.
MIN_CV_CLIPS = 30
#: The cross-validation fits and scores every FRAME_STEP-th frame of each clip.
FRAME_STEP = 2
#: The same for the other front ends, compared at the chosen K (steps 2 and 3): they
#: rank front ends and fusions, not model sizes, and at 3 instead of 2 they cost a
#: quarter less (on the development sets the same fusions were kept).
SCREEN_FRAME_STEP = 3

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
        Name of the chosen front end: a key of :data:`FRONT_ENDS`, ``"<name>-cmn"`` (its
        per-clip mean-normalised copy), a preset name, ``"config"`` (a given config), or
        a late fusion ``"<a> + <b> [+ <c>]"`` of those.
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
        The chosen front end's features of the training files (not serialised); the
        first member's for a fusion.
    members : list of str
        For a late fusion: the fused front ends in order of selection (the first one's
        frame counts scale the fused scores; the K chosen applies to all); empty
        otherwise.
    member_configs : list of FeatureConfig
    member_features : list of ExtractionResult
        One per member, over the same usable files (not serialised).
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
    members: list[str] = field(default_factory=list)
    member_configs: list[FeatureConfig] = field(default_factory=list)
    member_features: list[ExtractionResult] = field(default_factory=list, repr=False)

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


def _candidates(preset: str | FeatureConfig) -> dict[str, FeatureConfig]:
    if isinstance(preset, FeatureConfig):
        return {"config": preset}
    if preset == "auto":
        return dict(FRONT_ENDS)
    return {preset: FeatureConfig.preset(preset)}


def _within_bandwidth(
    cands: Mapping[str, FeatureConfig], records: Sequence[Record]
) -> dict[str, FeatureConfig]:
    """The candidates minus those that would only analyse upsampled audio.

    A front end whose sample rate is above every training file's native rate, and above
    that of an earlier candidate that already covers the native band, sees nothing more
    (its extra mel bands are empty), so it is skipped: ``sound`` (44.1 kHz) on 8 or
    16 kHz speech, where ``general`` (16 kHz) covers the whole band.
    Headers that cannot be read are ignored here (the extraction reports them).
    """
    from .. import audio

    native = 0
    for r in records:
        try:
            native = max(native, audio.info(r.path).sample_rate)
        except Exception:  # noqa: BLE001 - the extraction names the file and the reason
            continue
    out: dict[str, FeatureConfig] = {}
    for name, cfg in cands.items():
        if native and any(native <= c.sample_rate < cfg.sample_rate for c in out.values()):
            logger.info("front end %s skipped: %d Hz analysis, but no training file is sampled "
                        "above %d Hz", name, cfg.sample_rate, native)  # fmt: skip
            continue
        out[name] = cfg
    return out


def _extraction_roots(cands: Mapping[str, FeatureConfig]) -> dict[str, str]:
    """For each candidate, the candidate whose extraction its features are derived from."""
    names = list(cands)
    return {n: names[r] for n, r in zip(names, extraction_roots(list(cands.values())))}


def _check_components(components: Components) -> None:
    if components == "auto":
        return
    if isinstance(components, bool) or not isinstance(components, (int, np.integer)):
        raise ParameterError(f"components must be 'auto' or an int >= 1; got {components!r}")
    if components < 1:
        raise ParameterError(f"components must be 'auto' or an int >= 1; got {components!r}")


def _default_k_unscorable(
    labels: Sequence[str], clips: Sequence[np.ndarray], grid: Sequence[int], n_folds: int
) -> bool:
    """Whether the default K fits most classes' data but not their CV folds."""
    if N_COMPONENTS not in grid:
        return False
    lens = [len(X) for X in clips]
    fits_final = median_cap(labels, lens) >= N_COMPONENTS
    return fits_final and N_COMPONENTS not in supported_grid(labels, lens, grid, n_folds)


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
    t0 = time.perf_counter()
    table: list[dict[str, Any]] = []
    with resolve(executor, opts.n_jobs) as ex, warnings.catch_warnings():
        # the CV fits stop at cv_max_iter on purpose: their ConvergenceWarnings are noise
        warnings.simplefilter("ignore", ConvergenceWarning)
        if preset == "auto":
            cands = _within_bandwidth(cands, records)
            widest = list(cands)[-1]
            cands[f"{widest}-cmn"] = cands[widest].replace(**CMN)
        roots = _extraction_roots(cands)
        extracted: dict[str, ExtractionResult] = {}
        feats: dict[str, tuple[ExtractionResult, list[np.ndarray], list[str]]] = {}

        def features(name: str) -> tuple[ExtractionResult, list[np.ndarray], list[str]]:
            if name not in feats:
                root = roots[name]
                if root not in extracted:
                    t1 = time.perf_counter()
                    extracted[root] = extract_many(
                        records, config=cands[root], options=opts, executor=ex
                    )
                    logger.info("front end %s: extracted in %.2f s", root,
                                time.perf_counter() - t1)  # fmt: skip
                res = extracted[root]
                if root != name:  # fewer delta orders or a CMVN: sliced, no second decode
                    res = res.derived(cands[root], cands[name])
                feats[name] = (res, *res.labelled_clips(records))
            return feats[name]

        def usable(name: str) -> list[str]:
            got = features(name)[0].features
            return [r.path for r in records if r.path in got]

        steps: dict[str, int] = {}  # the frame step of each front end's CV

        def cv(name: str, ks: Sequence[int], step: int = FRAME_STEP) -> Any:
            _, clips, labels = features(name)
            t1 = time.perf_counter()
            steps[name] = step
            sel = cv_scores(
                clips, labels, grid=ks, n_folds=n_folds, random_state=random_state,
                frame_step=step, executor=ex, **params,
            )  # fmt: skip
            logger.info("front end %s: CV of K in %s in %.2f s", name, list(ks),
                        time.perf_counter() - t1)  # fmt: skip
            return sel

        # 1. components, on the first (default) front end
        first = next(iter(cands))
        _, clips, labels = features(first)
        first_sel: Any = None  # the K search's CV, reused for the first front end's row
        if (len(cands) > 1 or components == "auto") and len(clips) < MIN_CV_CLIPS:
            logger.warning(
                "only %d training clips to cross-validate: the choice of %s is mostly noise "
                "(a clip more or less correct moves the accuracy by %.0f points); give a fixed "
                "--preset and -k, or more data", len(clips),
                "front end" if components != "auto" else "components and front end",
                100 / max(1, len(clips)),
            )  # fmt: skip
        if components != "auto":
            screen_k = int(components)
            choice = {y: screen_k for y in labels}
            rule = "fixed"
            if len(cands) == 1:  # nothing to choose: still the configuration's CV accuracy
                sel = cv(first, [screen_k])
                c, n = sel.accuracy_counts(sel.scores[screen_k])
                table.append(_row("components", first, f"K={screen_k}", c, n))
        elif _default_k_unscorable(labels, clips, grid, n_folds):
            # the CV folds (a third of the final data) cannot fit K=16, but the final
            # models can: a comparison would favour smaller K by the folds' size alone
            # (on the hard dev speakers CV chose K=8, which lost 2.5 points on the test
            # side), so the default K is kept
            screen_k = N_COMPONENTS
            choice = {y: screen_k for y in labels}
            rule = f"K={screen_k}"
            choices = {rule: choice}
            logger.info("components: K=%d kept (too few frames per fold to compare K)",
                        screen_k)  # fmt: skip
        else:
            sel = search_down(
                cv, first, supported_grid(labels, [len(X) for X in clips], grid, n_folds)
            )
            cands_k: list[tuple[str, int, float]] = []
            choices: dict[str, dict[str, int]] = {}
            for k in sel.grid:
                c, n = sel.accuracy_counts(sel.scores[k])
                choices[f"K={k}"] = sel.capped({y: k for y in sel.labels})
                table.append(_row("components", first, f"K={k}", c, n))
                cands_k.append((f"K={k}", c, float(k)))
            per_class = sel.choose()
            c, n = sel.accuracy_counts(sel.composite(per_class))
            choices["per-class"] = sel.capped(per_class)
            table.append(_row("components", first, "per-class", c, n))
            # per-class picks one K per label (n_labels choices, not one) from the same
            # folds: the more flexible selection, so it ranks after every single K
            cands_k.append(("per-class", c, float("inf")))
            rule = choose_components(cands_k, n, default=f"K={N_COMPONENTS}")
            choice = choices[rule]
            # the other front ends are compared at the K the data supports (the chosen
            # single K, or the best single K when per-class won)
            best_single = max((o for o in cands_k if o[0] != "per-class"), key=lambda o: o[1])
            screen_k = int((rule if rule != "per-class" else best_single[0])[2:])
            first_sel = sel
        # 2. front ends, at that K; the one-standard-error rule, in candidate order
        name = first
        fusions: dict[str, list[str]] = {}
        if len(cands) > 1:
            singles: list[tuple[str, int, float]] = []
            scores: dict[str, np.ndarray] = {}
            sels: dict[str, Any] = {}
            for rank, cand in enumerate(cands):
                if cand == first and first_sel is not None:  # screen_k is in its grid
                    sel_f = first_sel
                else:
                    sel_f = cv(cand, [screen_k], SCREEN_FRAME_STEP)
                scores[cand], sels[cand] = sel_f.scores[screen_k], sel_f
                c, n = sel_f.accuracy_counts(scores[cand])
                table.append(_row("front end", cand, f"K={screen_k}", c, n))
                singles.append((cand, c, float(rank)))
            name = one_standard_error(singles, n)
            # 3. late fusion, by forward selection from that front end
            same_files = usable(name)  # fused score rows must be the same clips
            path = forward_fusion(
                name, [c for c in cands if c != name and usable(c) == same_files], scores,
                {c: [len(X[:: steps[c]]) for X in features(c)[1]] for c in cands},
                lambda S: sels[name].accuracy_counts(S)[0], MAX_FUSED,
            )  # fmt: skip
            for members_, c in path:
                fname = " + ".join(members_)
                fusions[fname] = members_
                table.append(_row("fusion", fname, f"K={screen_k}", c, n))
            options = [(name, next(c for m, c, _ in singles if m == name), 1.0)]
            options += [(" + ".join(m), c, float(len(m))) for m, c in path]
            name = choose_fusion(options, n)
            for row in table:
                if row["stage"] in ("front end", "fusion"):
                    row["chosen"] = row["front_end"] == name
        if name != first and components == "auto":
            # the K search ran on the first front end: the new one takes its single K
            rule = f"K={screen_k}"
            choice = choices[rule]
        for row in table:
            if row["stage"] == "components":  # the K every member uses
                row["chosen"] = rule == "fixed" or row["components"] == rule
        members = fusions.get(name, [])
        main = members[0] if members else name
    return TuneResult(
        front_end=name,
        config=cands[main],
        n_components=choice,
        components_rule=rule,
        table=table,
        n_folds=n_folds,
        cv_max_iter=cv_max_iter,
        seconds=time.perf_counter() - t0,
        features=features(main)[0],
        members=members,
        member_configs=[cands[m] for m in members],
        member_features=[features(m)[0] for m in members],
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
) -> tuple[GMMClassifier | FusedClassifier, TuneResult]:
    """:func:`tune`, then fit the chosen model on every training file (features reused).

    ``classifier_params`` (``max_iter``, ``init``, ...) apply to the final fit; the
    cross-validation fits use ``cv_max_iter``.

    Returns
    -------
    classifier : GMMClassifier or FusedClassifier
        A FusedClassifier (one member per ``result.members``; save it with
        ``result.member_configs``) when a late fusion won. Classes may have different K
        (stacked at the largest, see :func:`audiogmm.models.selection.fit_mixed`);
        ``timing_`` has ``tune_s`` and ``train_s``.
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
        fits = []
        for res in result.member_features or [result.features]:
            clips, labels = res.labelled_clips(records)
            fits.append(fit_mixed(
                clips, labels, result.n_components, random_state=random_state, executor=ex,
                n_jobs=opts.n_jobs, **classifier_params,
            ))  # fmt: skip
    clf = FusedClassifier(fits) if len(fits) > 1 else fits[0]
    clf.timing_ = {"tune_s": result.seconds, "train_s": time.perf_counter() - t1}
    return clf, result


def validate_selection_block(block: Any) -> dict[str, Any]:
    """Check a model header's ``selection`` block (written by :meth:`TuneResult.to_header`)
    against :data:`audiogmm.io.tables.SELECTION`.

    Raises
    ------
    ValueError
        A missing, unknown or ill-typed field; the message names it
        (``selection.<field>``).
    """
    return check(SELECTION, block, "selection")
