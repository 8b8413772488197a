"""The state :func:`~audiogmm.selection.tune`'s steps share, its constants and its result."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data import ExtractionResult, Record, RunOptions, extract_many
from ..features import PRESETS, FeatureConfig
from ..features.extraction import extraction_roots
from ..scoring.metrics import wilson_interval
from .cv import ComponentSelection, cv_scores
from .rules import Option

__all__ = ["BACKEND_EXTRAS", "CMN", "COSTLY_BACKENDS", "CV_MAX_ITER", "FRAME_STEP", "FRONT_ENDS",
           "MAX_FUSED", "MIN_CLIPS_PER_CLASS", "MIN_CV_CLIPS", "N_FOLDS", "SCREEN_FRAME_STEP",
           "TuneResult", "TuneState"]  # fmt: skip

logger = logging.getLogger(__name__)

#: Front ends that ``--preset auto`` cross-validates, simplest and cheapest first: the
#: default ``general`` and the full-band ``sound`` (44.1 kHz, only for files with content
#: above 8 kHz). The other presets never beat ``general`` by one SE in CV on the dev corpus
#: (README "Presets and tuning").
FRONT_ENDS: Mapping[str, FeatureConfig] = {"general": PRESETS["general"], "sound": PRESETS["sound"]}
#: Added to the candidates as ``<widest>-cmn``: the widest front end with per-clip cepstral
#: mean normalisation (same extraction); weaker alone, a gain as a late-fusion partner.
CMN = {"cmvn": "utterance", "cmvn_norm_vars": False}
#: Most members of a late fusion chosen by ``--preset auto``.
MAX_FUSED = 3
#: Folds of the clip-stratified cross-validation.
N_FOLDS = 3
#: EM iterations per fit inside the cross-validation.
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
#: The package each backend needs beyond the core; without it the backend is left out.
BACKEND_EXTRAS: Mapping[str, str] = {"gsv": "sklearn"}
#: Backends ``auto`` does not cross-validate unless asked (``tune(backends=...)``), and why.
COSTLY_BACKENDS: Mapping[str, str] = {
    "gsv": "its CV costs 10-50x a plain train (five L-BFGS logistic regressions per fold, "
           "92% of the time on the dev sounds: 100 s against 8 s for map)",
    "ivector": "with it in the CV, auto cost 5.4x a plain train on the dev sounds, past the "
               "4x budget, and it was chosen on neither the dev sounds nor the hard speakers",
}

@dataclass
class TuneResult:
    """What :func:`tune` chose, and the table it chose from.

    Attributes
    ----------
    front_end : str
        A :data:`FRONT_ENDS` key, ``"<name>-cmn"``, a preset, ``"config"`` (a given config) or
        a late fusion ``"<a> + <b> [+ <c>]"`` of ``members`` (with their ``member_configs``,
        ``member_features`` and ``fusion_weights``; else empty or None).
    n_components : dict of str to int
        Each class's K, by ``components_rule``: ``"fixed"``, ``"K=<k>"`` or ``"per-class"``.
    table : list of dict
        A row per candidate: ``stage``, ``front_end``, ``components``, ``correct``, ``n``,
        ``accuracy``, ``ci_low``, ``ci_high`` (95% Wilson), ``chosen``.
    seconds : float
        Wall time of the search, extraction included.
    features : ExtractionResult
        The chosen front end's (first member's) features of the training files.
    backend : str
        A :data:`~audiogmm.models.BACKENDS` key (not ``"ml"``: a UBM of
        :data:`~audiogmm.models.UBM_COMPONENTS`, ``n_components`` unused).
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
        return {"front_end": self.front_end, "components_rule": self.components_rule,
                "n_components": dict(sorted(self.n_components.items())), "n_folds": self.n_folds,
                "cv_max_iter": self.cv_max_iter, "cv_frame_step": FRAME_STEP, "folds_by": "clip",
                "seconds": round(self.seconds, 3), "table": self.table,
                "backend": self.backend}  # fmt: skip


@dataclass
class TuneState:
    """What :func:`tune`'s steps share: the inputs (``cands``: name -> config, in order of
    preference; ``backends``: others than ``ml``), the table so far, each components option's
    K per class (``choices``) and the chosen one (``rule``), the K the front ends are compared
    at (``screen_k``), their CV scores (``sels``), and the choice so far (``front_end``,
    ``members``, ``backend``; ``correct`` of ``n_scored``)."""

    records: Sequence[Record]
    cands: dict[str, FeatureConfig]
    options: RunOptions
    executor: Any
    params: dict[str, Any]
    components: int | str
    grid: Sequence[int]
    n_folds: int
    random_state: int | None
    backends: tuple[str, ...] = ()
    table: list[dict[str, Any]] = field(default_factory=list)
    choices: dict[str, dict[str, int]] = field(default_factory=dict)
    rule: str = "fixed"
    screen_k: int = 0
    sels: dict[str, ComponentSelection] = field(default_factory=dict)
    front_end: str = ""
    members: list[str] = field(default_factory=list)
    fusion_weights: list[float] | None = None
    correct: int = 0
    n_scored: int = 0
    backend: str = "ml"
    feats: dict[str, tuple] = field(default_factory=dict)  # name -> (extraction, clips, labels)

    @property
    def first(self) -> str:
        """The default front end (the first candidate)."""
        return next(iter(self.cands))

    def features(self, name: str) -> tuple[ExtractionResult, list[np.ndarray], list[str]]:
        """``name``'s extraction, clips and labels (extracted once per root, then derived)."""
        if name not in self.feats:
            names = list(self.cands)
            root = names[extraction_roots(list(self.cands.values()))[names.index(name)]]
            if root != name:  # fewer delta orders or a CMVN: sliced, no second decode
                res = self.features(root)[0].derived(self.cands[root], self.cands[name])
            else:
                t1 = time.perf_counter()
                res = extract_many(self.records, config=self.cands[name], options=self.options,
                                   executor=self.executor)  # fmt: skip
                logger.info("front end %s: extracted in %.2f s", name, time.perf_counter() - t1)
            self.feats[name] = (res, *res.labelled_clips(self.records))
        return self.feats[name]

    def cv(self, name: str, ks: Sequence[int], step: int = FRAME_STEP) -> ComponentSelection:
        """Cross-validated scores of front end ``name`` at each K of ``ks``."""
        _, clips, labels = self.features(name)
        t1 = time.perf_counter()
        sel = cv_scores(clips, labels, grid=ks, n_folds=self.n_folds, frame_step=step,
                        random_state=self.random_state, executor=self.executor, **self.params)
        logger.info("front end %s: CV of K in %s in %.2f s", name, list(ks),
                    time.perf_counter() - t1)  # fmt: skip
        return sel

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
        """``name``: its rows of ``stages`` marked chosen (the others not), its count of
        ``options`` (if there) the ``correct`` so far."""
        for row in self.table:
            if row["stage"] in stages:
                row["chosen"] = row["front_end"] == name
        self.correct = next((o.correct for o in options if o.name == name), self.correct)
        return name
