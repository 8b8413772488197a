"""The state :func:`~audiogmm.selection.tune`'s steps share, its constants and its result."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from ..data import ExtractionResult, Record, RunOptions, extract_many
from ..features import PRESETS, FeatureConfig
from ..features.extraction import extraction_roots
from ..models.classifier import N_COMPONENTS
from ..scoring.metrics import wilson_interval
from .cv import ComponentSelection, cv_scores

__all__ = [
    "BACKEND_EXTRAS",
    "CMN",
    "COSTLY_BACKENDS",
    "CV_MAX_ITER",
    "FRAME_STEP",
    "FRONT_ENDS",
    "MAX_FUSED",
    "MIN_CLIPS_PER_CLASS",
    "MIN_CV_CLIPS",
    "N_FOLDS",
    "SCREEN_FRAME_STEP",
    "TuneResult",
    "TuneState",
    "candidates",
    "table_row",
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
#: Fewer clips than this in some class and its held-out folds hold one or two clips:
#: ``tune`` warns that the data cannot support a choice.
MIN_CLIPS_PER_CLASS = 3
#: The cross-validation fits and scores every FRAME_STEP-th frame of each clip.
FRAME_STEP = 2
#: The same for the other front ends, compared at the chosen K (steps 3 and 4): they
#: rank front ends and fusions, not model sizes, and at 3 instead of 2 they cost a
#: quarter less (on the development sets the same fusions were kept).
SCREEN_FRAME_STEP = 3
#: The Python package each backend needs beyond the core (its extra): a backend whose
#: package is missing is left out of the search, with a note.
BACKEND_EXTRAS: Mapping[str, str] = {"gsv": "sklearn"}
#: Backends ``auto`` does not cross-validate unless asked (``tune(backends=...)``), and
#: why. Every other backend of :data:`~audiogmm.models.BACKENDS` is a candidate.
COSTLY_BACKENDS: Mapping[str, str] = {
    "gsv": "its CV costs 10-50x a plain train (five L-BFGS logistic regressions per fold, "
           "92% of the time on the dev sounds: 100 s against 8 s for map)",
    "ivector": "with it in the CV, auto cost 5.4x a plain train on the dev sounds, past the "
               "4x budget, and it was chosen on neither the dev sounds nor the hard speakers",
}

Components = Union[int, str]


def table_row(stage: str, front_end: str, components: str, correct: int, n: int) -> dict[str, Any]:
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
        For a late fusion: the fused front ends in order of selection; empty otherwise.
    member_configs : list of FeatureConfig
    member_features : list of ExtractionResult
        One per member, over the same usable files (not serialised).
    fusion_weights : list of float or None
        A fusion's member weights (:func:`~audiogmm.models.fusion.fit_fusion`).
    backend : str
        The chosen key of :data:`~audiogmm.models.BACKENDS` (``"ml"`` unless another
        backend won step 5, with a UBM of :data:`~audiogmm.models.UBM_COMPONENTS`;
        ``n_components`` is then the ml choice, unused).
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
    fusion_weights: list[float] | None = None
    backend: str = "ml"

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
            "backend": self.backend,
        }


@dataclass
class TuneState:
    """Everything :func:`tune`'s steps share: the inputs, the features, and the choices so far.

    Attributes
    ----------
    records, cands, options, executor, params, components, grid, n_folds, random_state
        The inputs (``cands``: front end name -> config, in order of preference).
    backends : tuple of str
        Backends other than ``ml`` to try in step 5 (empty: none).
    table : list of dict
        The rows so far.
    choices : dict of str to dict of str to int
        Each components option (``"K=<k>"``, ``"per-class"``) -> K per class.
    rule : str
        The components option chosen.
    screen_k : int
        The single K the front ends, fusions and backends are compared at.
    sels : dict of str to ComponentSelection
        Each front end's cross-validated scores (with ``screen_k`` in its grid).
    front_end : str
        The chosen front end or fusion; ``members`` its fused front ends.
    correct : int
        Held-out clips the choice so far gets right, of ``n_scored``.
    backend : str
        The chosen backend.
    """

    records: Sequence[Record]
    cands: dict[str, FeatureConfig]
    options: RunOptions
    executor: Any
    params: dict[str, Any]
    components: Components
    grid: Sequence[int]
    n_folds: int
    random_state: int | None
    backends: tuple[str, ...] = ()
    table: list[dict[str, Any]] = field(default_factory=list)
    choices: dict[str, dict[str, int]] = field(default_factory=dict)
    rule: str = "fixed"
    screen_k: int = N_COMPONENTS
    sels: dict[str, ComponentSelection] = field(default_factory=dict)
    front_end: str = ""
    members: list[str] = field(default_factory=list)
    fusion_weights: list[float] | None = None
    correct: int = 0
    n_scored: int = 0
    backend: str = "ml"
    extracted: dict[str, ExtractionResult] = field(default_factory=dict)
    feats: dict[str, tuple[ExtractionResult, list[np.ndarray], list[str]]] = field(
        default_factory=dict
    )
    steps: dict[str, int] = field(default_factory=dict)

    @property
    def first(self) -> str:
        """The default front end (the first candidate)."""
        return next(iter(self.cands))

    def features(self, name: str) -> tuple[ExtractionResult, list[np.ndarray], list[str]]:
        """``name``'s extraction, clips and labels (extracted once per root, then derived)."""
        if name not in self.feats:
            roots = {n: list(self.cands)[r]
                     for n, r in zip(self.cands, extraction_roots(list(self.cands.values())))}  # fmt: skip
            root = roots[name]
            if root not in self.extracted:
                t1 = time.perf_counter()
                self.extracted[root] = extract_many(
                    self.records, config=self.cands[root], options=self.options,
                    executor=self.executor,
                )  # fmt: skip
                logger.info("front end %s: extracted in %.2f s", root, time.perf_counter() - t1)
            res = self.extracted[root]
            if root != name:  # fewer delta orders or a CMVN: sliced, no second decode
                res = res.derived(self.cands[root], self.cands[name])
            self.feats[name] = (res, *res.labelled_clips(self.records))
        return self.feats[name]

    def usable(self, name: str) -> list[str]:
        """The training files ``name``'s extraction could read."""
        got = self.features(name)[0].features
        return [r.path for r in self.records if r.path in got]

    def cv(self, name: str, ks: Sequence[int], step: int = FRAME_STEP) -> ComponentSelection:
        """Cross-validated scores of front end ``name`` at each K of ``ks``."""
        _, clips, labels = self.features(name)
        t1 = time.perf_counter()
        self.steps[name] = step
        sel = cv_scores(
            clips, labels, grid=ks, n_folds=self.n_folds, random_state=self.random_state,
            frame_step=step, executor=self.executor, **self.params,
        )  # fmt: skip
        logger.info("front end %s: CV of K in %s in %.2f s", name, list(ks),
                    time.perf_counter() - t1)  # fmt: skip
        return sel

    def choose(self, stage: str, name: str) -> None:
        """Mark the rows of ``stage`` whose front end is ``name`` as chosen, the others not."""
        for row in self.table:
            if row["stage"] == stage:
                row["chosen"] = row["front_end"] == name


def candidates(preset: str | FeatureConfig) -> dict[str, FeatureConfig]:
    """The front ends to try: :data:`FRONT_ENDS` for ``"auto"``, else the one given."""
    if isinstance(preset, FeatureConfig):
        return {"config": preset}
    if preset == "auto":
        return dict(FRONT_ENDS)
    return {preset: FeatureConfig.preset(preset)}
