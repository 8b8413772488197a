"""``--preset auto --components auto``: :func:`tune` runs its :data:`STEPS` over one
:class:`TuneState`; each reads the earlier choices, adds rows to the table and applies a rule of
:mod:`~audiogmm.selection.cv`. Only the training files are read."""

from __future__ import annotations

import functools
import logging
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data import ExtractionResult, Record, RunOptions, extract_many_configs
from ..engine import LocalExecutor, resolve
from ..exceptions import ConvergenceWarning, DatasetError, ParameterError
from ..features import PRESETS, FeatureConfig
from ..mixture.checks import is_int
from ..models import BACKENDS, DEFAULT_BACKEND
from ..models.classifier import N_COMPONENTS
from ..models.fusion import fit_fusion
from ..models.ubm import UBM_COMPONENTS
from ..scoring.metrics import wilson_interval
from . import candidates, cv
from .candidates import (
    BACKEND_FRONT_ENDS,
    CMN,
    FRONT_ENDS,
    auto_backends,
    backend_label,
    within_bandwidth,
)
from .cv import Option, beats_default, choose_fusion, one_standard_error
from .result import TuneResult

__all__ = ["CV_MAX_ITER", "FRAME_STEP", "MAX_FUSED", "MIN_CLIPS_PER_CLASS", "MIN_CV_CLIPS",
           "N_FOLDS", "SCREEN_FRAME_STEP", "STEPS", "TuneState", "step_backend",
           "step_components", "step_front_end", "step_front_ends", "step_fusion", "tune"]  # fmt: skip

logger = logging.getLogger(__name__)

#: Most members of a late fusion chosen by ``--preset auto``.
MAX_FUSED = 3
#: Folds of the clip-stratified cross-validation.
N_FOLDS = 3
#: EM iterations per fit inside the cross-validation (20 and 100 gave the same accuracies
#: within two clips of 429).
CV_MAX_ITER = 5
#: ``tune`` warns below this many training clips (a clip moves the accuracy by 3 points).
MIN_CV_CLIPS = 30
#: ``tune`` warns when a class has fewer clips (its folds hold one or two).
MIN_CLIPS_PER_CLASS = 3
#: The cross-validation fits and scores every FRAME_STEP-th frame of each clip.
FRAME_STEP = 2
#: The same for the other front ends and fusions (steps 3 and 4): a quarter cheaper, and
#: the same fusions were kept on the development sets.
SCREEN_FRAME_STEP = 3


@dataclass
class TuneState:
    """What :func:`tune`'s steps share: the inputs (``cands``: name -> config, by preference;
    ``backends``: ``(backend, front end)`` pairs other than ``ml`` (``""``: the first front
    end), chosen by step 1 when ``auto_backends``, with the ``not_tried`` ones; ``extra``:
    front ends extracted for a backend only, :data:`BACKEND_FRONT_ENDS`), the table, each
    components option's K per class
    (``choices``) and the chosen one (``rule``), the K the front ends are compared at
    (``screen_k``), their CV (``sels``), the choice so far (``correct`` of ``n_scored``)."""

    records: Sequence[Record]
    cands: dict[str, FeatureConfig]
    options: RunOptions
    executor: Any
    params: dict[str, Any]
    components: int | str
    grid: Sequence[int]
    n_folds: int
    random_state: int | None
    backends: tuple[tuple[str, str], ...] = ()
    auto_backends: bool = False
    not_tried: dict[str, str] = field(default_factory=dict)
    extra: dict[str, FeatureConfig] = field(default_factory=dict)
    table: list[dict[str, Any]] = field(default_factory=list)
    choices: dict[str, dict[str, int]] = field(default_factory=dict)
    rule: str = "fixed"
    screen_k: int = 0
    sels: dict[str, cv.ComponentSelection] = field(default_factory=dict)
    front_end: str = ""
    members: list[str] = field(default_factory=list)
    fusion_weights: list[float] | None = None
    correct: int = 0
    n_scored: int = 0
    backend: str = "ml"
    calibration: dict[str, Any] | None = None
    extracted: dict[str, ExtractionResult] = field(default_factory=dict)
    feats: dict[str, tuple] = field(default_factory=dict)  # name -> (extraction, clips, labels)
    backend_scores: dict[str, np.ndarray] | None = None  # the backends' CV, once it ran

    @property
    def first(self) -> str:
        """The default front end (the first candidate)."""
        return next(iter(self.cands))

    def config(self, name: str) -> FeatureConfig:
        """The config of candidate or extra front end ``name``."""
        return self.cands[name] if name in self.cands else self.extra[name]

    def features(self, name: str) -> tuple[ExtractionResult, list[np.ndarray], list[str]]:
        """``name``'s extraction, clips and labels. The first call extracts every candidate
        (and extra front end) at once: each file decoded once for all, the CMVN variants
        derived, not extracted."""
        if name not in self.extracted:
            names = [n for n in {**self.cands, **self.extra} if n not in self.extracted]
            t1 = time.perf_counter()
            got = extract_many_configs(self.records, [self.config(n) for n in names],
                                       options=self.options, executor=self.executor)
            logger.info("front ends %s: extracted in %.2f s", ", ".join(names),
                        time.perf_counter() - t1)  # fmt: skip
            self.extracted.update(zip(names, got))
        if name not in self.feats:
            res = self.extracted[name]
            self.feats[name] = (res, *res.labelled_clips(self.records))
        return self.feats[name]

    def run_cv(self, name: str, ks: Sequence[int], step: int = FRAME_STEP) -> cv.ComponentSelection:
        """Cross-validated scores of front end ``name`` at each K of ``ks``."""
        _, clips, labels = self.features(name)
        t1 = time.perf_counter()
        sel = cv.cv_scores(clips, labels, grid=ks, n_folds=self.n_folds, frame_step=step,
                           random_state=self.random_state, executor=self.executor, **self.params)
        logger.info("front end %s: CV of K in %s in %.2f s", name, list(ks),
                    time.perf_counter() - t1)  # fmt: skip
        return sel

    @property
    def base(self) -> str:
        """The option the others must beat: the default backend on the first front end when
        it is tried, else the ml choice."""
        return DEFAULT_BACKEND if (DEFAULT_BACKEND, "") in self.backends else "ml"

    def front_end_of(self, front_end: str) -> str:
        """A backend pair's front end name (``""``: the first)."""
        return front_end or self.first

    def backend_cv(self) -> Callable[[], dict[str, np.ndarray]]:
        """A call that runs the backends' CV (:func:`.cv.backend_cv_scores`, each on its
        front end, over the clip folds of every CV here) into ``backend_scores``, keyed by
        :func:`backend_label`; it may run beside other CV work, as nothing else depends on it.
        A front end that skipped other files than the first is left out, with a warning."""
        first = self.first
        res, _, labels = self.features(first)
        groups = []
        for front in dict.fromkeys(f for _, f in self.backends):
            group = {backend_label(b, f): b for b, f in self.backends if f == front}
            own, own_clips, _ = self.features(self.front_end_of(front))
            if set(own.features) != set(res.features):  # the folds index the same clips
                logger.warning("backends %s not tried: the %s front end skipped other files "
                               "than %s", ", ".join(group), front, first)  # fmt: skip
                continue
            groups.append((own_clips, group))
        folds = cv.clip_folds(labels, self.n_folds, random_state=self.random_state)

        def run() -> dict[str, np.ndarray]:
            t1 = time.perf_counter()
            # the UBMs (and map) on every third frame, as the other front ends: a third
            # cheaper; gsv's per-clip statistics on every frame, as its model will use them
            self.backend_scores = cv.backend_cv_scores(
                groups, labels, folds, frame_step=SCREEN_FRAME_STEP,
                random_state=self.random_state, executor=self.executor,
            ) if groups else {}  # fmt: skip
            logger.info("backends %s: CV in %.2f s", [backend_label(*b) for b in self.backends],
                        time.perf_counter() - t1)  # fmt: skip
            return self.backend_scores
        return run

    def add(self, stage: str, front_end: str, components: str, correct: int, n: int,
            complexity: float = 0.0, name: str = "") -> Option:  # fmt: skip
        """Add a table row; its rule's :class:`Option` (named ``name``, else ``front_end``)."""
        lo, hi = wilson_interval(correct, n)
        acc = correct / n if n else float("nan")
        self.table.append({"stage": stage, "front_end": front_end, "components": components,
                           "correct": correct, "n": n, "accuracy": acc, "ci_low": lo,
                           "ci_high": hi})  # fmt: skip
        return Option(name or front_end, correct, float(complexity))

    def choose(self, name: str, *stages: str, options: Sequence[Option] = ()) -> str:
        """``name``, marked chosen in its ``stages`` rows; its count of ``options``: ``correct``."""
        for row in self.table:
            if row["stage"] in stages:
                row["chosen"] = row["front_end"] == name
        self.correct = next((o.correct for o in options if o.name == name), self.correct)
        return name


def step_front_ends(state: TuneState) -> None:
    """Step 1: with ``--preset auto``, drop front ends above the files' band, add ``-cmn``;
    the backends to try when ``auto_backends`` (:func:`auto_backends`: the default backend,
    and gsv on its own front end on speech-band files); a listed backend on the first front
    end and, under ``--preset auto``, on its own (:data:`BACKEND_FRONT_ENDS`) too; their
    front ends extracted with the others."""
    searching, speech_band = len(state.cands) > 1, False
    if searching:
        state.cands = within_bandwidth(state.cands, state.records)
        speech_band = len(state.cands) == 1  # the full-band front end was skipped
        widest = list(state.cands)[-1]
        state.cands[f"{widest}-cmn"] = state.cands[widest].replace(**CMN)
    if state.auto_backends:
        state.backends, state.not_tried = auto_backends(speech_band, searching)
        for b, why in state.not_tried.items():
            logger.info("backend %s not tried: %s", b, why)
    else:  # as auto tries them: on the first front end, and on their own under --preset auto
        state.backends = tuple((b, f) for b, _ in state.backends for f in dict.fromkeys(
            ("", BACKEND_FRONT_ENDS.get(b, "") if searching else "")))  # fmt: skip
    for _, name in state.backends:
        if name and name not in state.cands:
            state.extra[name] = PRESETS[name]


def step_components(state: TuneState) -> None:
    """Step 2: the number of components, on the first (default) front end."""
    first = state.first
    _, clips, labels = state.features(first)
    lens, fewest = [len(X) for X in clips], min(Counter(labels).values())
    searching = len(state.cands) > 1 or state.components == "auto"
    if searching and len(clips) < MIN_CV_CLIPS:
        what = "front end" if state.components != "auto" else "components and front end"
        logger.warning("only %d training clips to cross-validate: the choice of %s is mostly noise "
                       "(a clip more or less correct moves the accuracy by %.0f points); give a "
                       "fixed --preset and -k, or more data", len(clips), what, 100 / len(clips))
    if searching and fewest < MIN_CLIPS_PER_CLASS:
        logger.warning("a class has only %d training clip(s): too few to hold one out in each "
                       "fold, so the data cannot support a choice; the default is kept unless "
                       "another candidate wins clearly", fewest)  # fmt: skip
    if state.components != "auto":
        k = int(state.components)
        state.screen_k, state.rule, state.choices = k, "fixed", {"fixed": {y: k for y in labels}}
        if len(state.cands) == 1:  # nothing to choose: still the configuration's CV accuracy
            state.sels[first] = sel = state.run_cv(first, [k])
            state.correct, state.n_scored = sel.accuracy_counts(sel.scores[k])
            state.add("components", first, f"K={k}", state.correct, state.n_scored)
        return
    grid = cv.supported_grid(labels, lens, state.grid, state.n_folds)
    if N_COMPONENTS in state.grid and cv.median_cap(labels, lens) >= N_COMPONENTS > grid[-1]:
        # the final models can fit K=16 but not the CV folds: a comparison would favour smaller
        # K by the folds' size alone (hard dev speakers: CV chose K=8, 2.5 points lost on test)
        state.screen_k, state.rule = N_COMPONENTS, f"K={N_COMPONENTS}"
        state.choices = {state.rule: {y: N_COMPONENTS for y in labels}}
        logger.info("components: K=%d kept (too few frames per fold to compare K)", N_COMPONENTS)
        return
    sel = cv.search_down(state.run_cv, first, grid)
    singles = []
    for k in sel.grid:
        state.choices[f"K={k}"] = sel.capped({y: k for y in sel.labels})
        c, n = sel.accuracy_counts(sel.scores[k])
        singles.append(state.add("components", first, f"K={k}", c, n, k, name=f"K={k}"))
    per_class = sel.choose()
    state.choices["per-class"] = sel.capped(per_class)
    c, n = sel.accuracy_counts(sel.composite(per_class))
    # per-class picks one K per label (n_labels choices, not one) from the same folds:
    # the more flexible selection, so it ranks after every single K
    options = [*singles, state.add("components", first, "per-class", c, n, np.inf, "per-class")]
    rule = cv.choose_components(options, n, default=f"K={N_COMPONENTS}")
    state.rule, state.n_scored, state.sels[first] = state.choose(rule, options=options), n, sel
    # the other front ends are compared at the K the data supports (the chosen single
    # K, or the best single K when per-class won)
    best = next((o for o in singles if o.name == rule), max(singles, key=lambda o: o.correct))
    state.screen_k = int(best.complexity)


def step_front_end(state: TuneState) -> None:
    """Step 3: every other front end at ``screen_k``; the simplest within one SE of the best."""
    state.front_end = state.first
    if len(state.cands) < 2:
        return
    k, options = state.screen_k, []
    todo = [c for c in state.cands if c not in state.sels]  # the K search has screen_k
    for cand in todo:  # extracted here: an extraction is parallel by itself
        state.features(cand)
    # the first at the K search's step when the backends will compare with its default K
    first_step = FRAME_STEP if state.backends and state.base == "ml" else SCREEN_FRAME_STEP
    # one front end's CV per worker, its fits inline: fewer, larger parallel tasks; the
    # backends' CV (step 5) beside them, whose tasks fill the workers these leave idle
    jobs = [functools.partial(state.run_cv, c, [k], first_step if c == state.first
                              else SCREEN_FRAME_STEP) for c in todo]  # fmt: skip
    if state.backends:
        jobs.append(state.backend_cv())
    done = list(state.executor.map(lambda job: job(), jobs))
    state.sels.update(zip(todo, done))
    for rank, cand in enumerate(state.cands):
        c, state.n_scored = state.sels[cand].accuracy_counts(state.sels[cand].scores[k])
        options.append(state.add("front end", cand, f"K={k}", c, state.n_scored, rank))
    chosen = one_standard_error(options, state.n_scored)
    state.front_end = state.choose(chosen, "front end", options=options)


def step_fusion(state: TuneState) -> None:
    """Step 4: late fusion by forward selection from the chosen front end, its weights fitted."""
    if len(state.cands) < 2:
        return
    name, k, ref = state.front_end, state.screen_k, state.sels[state.front_end]
    files = {c: set(state.features(c)[0].features) for c in state.cands}
    scores = {c: sel.scores[k] for c, sel in state.sels.items()}
    frames = {c: sel.scored_frames for c, sel in state.sels.items()}
    path = cv.forward_fusion(  # fused score rows must be of the same clips
        name, [c for c in state.cands if c != name and files[c] == files[name]], scores, frames,
        lambda S: ref.accuracy_counts(S)[0], MAX_FUSED,
    )  # fmt: skip
    options = [Option(name, state.correct, 1.0)] + [
        state.add("fusion", " + ".join(m), f"K={k}", c, state.n_scored, len(m)) for m, c in path
    ]
    chosen = choose_fusion(options, state.n_scored)
    state.front_end = state.choose(chosen, "front end", "fusion", options=options)
    if chosen != name:
        state.members = next(m for m, _ in path if " + ".join(m) == chosen)
        state.fusion_weights = fit_fusion([scores[m][ref.held] for m in state.members],
                                          [frames[m][ref.held] for m in state.members],
                                          ref.y[ref.held])  # fmt: skip
    if chosen != state.first and state.components == "auto":
        state.rule = f"K={k}"  # the K search ran on the first front end: the others take its K


def step_backend(state: TuneState) -> None:
    """Step 5: the other backends, each on its front end (``state.extra``), over one UBM per
    fold of step 2 and front end. The base (:attr:`TuneState.base`): the default backend on the
    first front end, else the ml choice (and the default K); another option replaces it only
    if it beats it by its :data:`.candidates.BACKEND_SE` standard errors."""
    if not state.backends:
        return
    first, base = state.first, state.base
    ref = state.sels.get(first)
    # no ml CV yet (K=16 kept without a search), or the ml base's default K at the backends'
    # frame step: the default K on the first front end (the folds are the same in every CV)
    if ref is None or (base == "ml" and (N_COMPONENTS not in ref.grid
                                         or ref.frame_step != FRAME_STEP)):  # fmt: skip
        ref = state.run_cv(first, [N_COMPONENTS])
    ml = state.correct
    if N_COMPONENTS in ref.scores and (base == "ml" or not state.n_scored):
        ml = max(ml, ref.accuracy_counts(ref.scores[N_COMPONENTS])[0])
    options, pairs = [Option("ml", ml, float(base != "ml"))], {"ml": ("ml", first)}
    scores, n = state.backend_scores, int(ref.held.sum())
    if scores is None:  # not run beside the front ends' CV (step 3)
        scores = state.backend_cv()()
    margins = {"ml": candidates.BACKEND_SE.get("ml", 1.0)}
    for rank, (backend, front) in enumerate(state.backends, 1):
        label = backend_label(backend, front)
        if label in scores:
            c, n = ref.accuracy_counts(scores[label])
            pairs[label], margins[label] = (backend, state.front_end_of(front)), \
                candidates.BACKEND_SE.get(backend, 1.0)
            options.append(state.add("backend", label, f"UBM {UBM_COMPONENTS}", c, n,
                                     0.0 if label == base else rank + 1, name=label))  # fmt: skip
    if base not in pairs:  # the default's front end skipped other files: the ml choice
        base = "ml"
    chosen = beats_default(options, base, n, n_se=margins)
    state.backend, front = pairs[chosen]
    state.choose(chosen, "backend", options=options)
    if state.backend != "ml":  # the backend runs on its front end alone
        state.front_end, state.members, state.fusion_weights = front, [], None
        state.choose("", "front end", "fusion")  # those rows are ml models: none chosen


def step_calibration(state: TuneState) -> None:
    """Step 6: a single ml front end's verification calibration, from the held-out CV scores
    of the chosen front end and K (no fit of its own). A fusion is calibrated by its weights;
    map, by ``train``'s held-out folds."""
    sel = state.sels.get(state.front_end)
    if state.backend != "ml" or state.members or sel is None:
        return
    # per-class: the composite its stage compared; else the one K (screen_k) it was scored at
    S = sel.composite(sel.choose()) if state.rule == "per-class" else sel.scores.get(state.screen_k)
    if S is not None:
        state.calibration = cv.ml_calibration(sel, S)


#: The steps of :func:`tune`, in order.
STEPS = (step_front_ends, step_components, step_front_end, step_fusion, step_backend,
         step_calibration)


def tune(records: Sequence[Record], *, preset: str | FeatureConfig = "auto",
         components: int | str = "auto", grid: Sequence[int] = cv.COMPONENT_GRID,
         n_folds: int = N_FOLDS, cv_max_iter: int = CV_MAX_ITER, random_state: int | None = 0,
         options: RunOptions | None = None, executor: LocalExecutor | None = None,
         backends: Sequence[str] | str | None = None,
         **classifier_params: Any) -> TuneResult:  # fmt: skip
    """Cross-validate front ends, numbers of components and backends on training files only:
    folds hold out whole clips; CV fits stop after ``cv_max_iter`` EM iterations.

    Parameters
    ----------
    preset : str or FeatureConfig
        ``"auto"`` tries every :data:`FRONT_ENDS` candidate; a name or a config fixes it.
    components : int or "auto"
        ``"auto"`` chooses K per class (or one K) over ``grid``; an int fixes K.
    backends : sequence of str, "auto" or None
        Other backends than ml to try, each over a UBM of ``UBM_COMPONENTS``. None:
        ``"auto"`` when ``preset`` or ``components`` is ``"auto"``, else none. ``"auto"``: the
        default backend (gsv) on the first front end, which the others must beat (the ml
        choice by two SE), and under ``preset="auto"`` on files sampled at 16 kHz or below gsv
        on the ``speaker`` front end too (:func:`auto_backends`). A list: those, on the first
        front end and under ``preset="auto"`` on their own too (gsv: ``speaker``, whatever
        the band); gsv listed, the default is the base.

    Raises
    ------
    DatasetError
        No records, or a label left without usable files.
    ParameterError
        Bad ``components``, ``cv_max_iter``, ``grid``, ``n_folds``, backend or preset name.
    """
    if not records:
        raise DatasetError("no training files")
    if components != "auto" and not (is_int(components) and components >= 1):
        raise ParameterError(f"components must be 'auto' or an int >= 1; got {components!r}")
    if not isinstance(cv_max_iter, (int, np.integer)) or cv_max_iter < 1:
        raise ParameterError(f"cv_max_iter must be an int >= 1; got {cv_max_iter!r}")
    cands = ({"config": preset} if isinstance(preset, FeatureConfig) else dict(FRONT_ENDS)
             if preset == "auto" else {preset: FeatureConfig.preset(preset)})  # fmt: skip
    if backends is None:
        backends = "auto" if preset == "auto" or components == "auto" else ()
    auto = isinstance(backends, str) and backends == "auto"  # resolved by step 1
    backends = () if auto else tuple(backends)
    unknown = sorted(set(backends) - set(BACKENDS) | ({"ml"} & set(backends)))
    pairs = tuple((b, "") for b in dict.fromkeys(backends))  # on their front ends: step 1
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
        state = TuneState(records, cands, opts, ex, {**classifier_params, "max_iter": cv_max_iter},
                          components, grid, n_folds, random_state, pairs, auto)  # fmt: skip
        for step in STEPS:
            step(state)
        for row in state.table:
            if row["stage"] == "components":  # the K every member uses (none: another backend)
                row["chosen"] = state.backend == "ml" and (state.rule == "fixed"
                                                           or row["components"] == state.rule)
        main = state.members[0] if state.members else state.front_end
        return TuneResult(
            state.front_end, state.config(main), state.choices[state.rule], state.rule,
            state.table, n_folds, cv_max_iter, FRAME_STEP, seconds=time.perf_counter() - t0,
            features=state.features(main)[0], members=state.members,
            member_configs=[state.cands[m] for m in state.members],
            member_features=[state.features(m)[0] for m in state.members],
            fusion_weights=state.fusion_weights, backend=state.backend, not_tried=state.not_tried,
            calibration=state.calibration,
        )
