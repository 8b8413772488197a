"""What :func:`~audiogmm.selection.steps.tune` returns: the choice, the table it was chosen
from, the features to reuse, and the record a model file stores under ``selection``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..data import ExtractionResult
from ..features import FeatureConfig

__all__ = ["TuneResult"]


@dataclass
class TuneResult:
    """What :func:`~audiogmm.selection.steps.tune` chose, and the table it chose from.

    ``front_end``: a :data:`.candidates.FRONT_ENDS` key, ``"<name>-cmn"``, a preset, ``"config"`` (a given
    config) or a late fusion ``"<a> + <b> [+ <c>]"`` of ``members`` (with their
    ``member_configs``, ``member_features`` and ``fusion_weights``; else empty or None);
    ``n_components``: each class's K, by ``components_rule`` (``"fixed"``, ``"K=<k>"`` or
    ``"per-class"``); ``table``: a row per candidate (``stage``, ``front_end``, ``components``,
    ``correct``, ``n``, ``accuracy``, ``ci_low``, ``ci_high`` (95% Wilson), ``chosen``);
    ``n_folds``, ``cv_max_iter``, ``cv_frame_step``: the CV's folds, EM iterations per fit
    and frame step of its fits; ``seconds``: wall time, extraction included; ``features``: the chosen (first member's)
    features of the training files; ``backend``: a ``BACKENDS`` key (not ``"ml"``: a UBM of
    ``UBM_COMPONENTS``, ``n_components`` unused); ``not_tried``: the backends left out of
    the CV, and why (:data:`.candidates.NOT_TRIED`); ``calibration``: a single ml front end's
    verification calibration block (:func:`.cv.ml_calibration`), else None."""

    front_end: str
    config: FeatureConfig
    n_components: dict[str, int]
    components_rule: str
    table: list[dict[str, Any]]
    n_folds: int
    cv_max_iter: int
    cv_frame_step: int
    seconds: float = 0.0
    features: ExtractionResult = field(default_factory=ExtractionResult, repr=False)
    members: list[str] = field(default_factory=list)
    member_configs: list[FeatureConfig] = field(default_factory=list)
    member_features: list[ExtractionResult] = field(default_factory=list, repr=False)
    fusion_weights: list[float] | None = None
    backend: str = "ml"
    not_tried: dict[str, str] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None

    def to_header(self) -> dict[str, Any]:
        """The JSON-able record stored under ``selection`` in the model file header."""
        return {"front_end": self.front_end, "components_rule": self.components_rule,
                "n_components": dict(sorted(self.n_components.items())), "n_folds": self.n_folds,
                "cv_max_iter": self.cv_max_iter, "cv_frame_step": self.cv_frame_step, "folds_by": "clip",
                "seconds": round(self.seconds, 3), "table": self.table,
                "backend": self.backend, "not_tried": dict(self.not_tried)}  # fmt: skip
