"""The model file users handle: a classifier whose header also holds the
:class:`~audiogmm.features.FeatureConfig` that made its features (a fused model: one per
member), so prediction extracts features exactly as training did."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from ..exceptions import ModelFileError, ParameterError
from ..features import FeatureConfig
from ..io import load, save
from ..models import FusedClassifier, GMMClassifier

__all__ = ["Bundle", "load_model", "save_model"]


@dataclass
class Bundle:
    """A trained classifier, its front end ``config`` (a fused model's first member's), the
    file's full JSON ``header``, and ``configs``, one front end per member (``[config]``)."""

    classifier: Any
    config: FeatureConfig
    header: dict[str, Any] = field(default_factory=dict)
    configs: list[FeatureConfig] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.configs:
            self.configs = [self.config]

    @property
    def fused(self) -> bool:
        """Whether the classifier fuses several front ends (:class:`FusedClassifier`)."""
        return isinstance(self.classifier, FusedClassifier)


def save_model(
    path: str | os.PathLike, classifier: GMMClassifier | FusedClassifier,
    config: Union[FeatureConfig, Sequence[FeatureConfig]], *, extra: dict[str, Any] | None = None,
) -> None:  # fmt: skip
    """Write ``classifier`` and ``config`` (one per member of a FusedClassifier) to one model
    file (atomic, checksummed, no pickle). ``extra`` header blocks (e.g. ``"split"``) must
    be declared in the classifier's table (:mod:`audiogmm.io.tables`) and pass its checks,
    so the file always loads; ParameterError for those, or when feature dimensions differ.
    """
    fused = isinstance(classifier, FusedClassifier)
    if isinstance(config, FeatureConfig):
        configs = [config]
    elif fused:
        configs = list(config)
    else:
        raise ParameterError("config must be one FeatureConfig for this classifier")
    _check_dims(classifier, configs, "", ParameterError)
    front = ({"feature_configs": [c.to_dict() for c in configs]} if fused
             else {"feature_config": config.to_dict()})  # fmt: skip
    save(classifier, path, extra={**(extra or {}), **front})


def _check_dims(clf: Any, configs: list[Any], prefix: str, error: type[Exception]) -> None:
    """``error`` when the front ends' dimensions are not the classifier's (its members')."""
    fused = isinstance(clf, FusedClassifier)
    dims = tuple(c.n_dims if isinstance(c, FeatureConfig) else None for c in configs)
    if dims != (clf.n_dims if fused else (clf.n_dims,)):
        gives = f"configs give {dims}" if fused else f"config gives {dims[0]}"
        raise error(f"{prefix}the classifier has {clf.n_dims} dims but the feature {gives}")


def load_model(path: str | os.PathLike) -> Bundle:
    """Read a model file written by :func:`save_model`: :func:`audiogmm.io.load` checks
    every header field against the kind's table, this the front ends against the models.
    ModelFileError for a bad file, a missing or invalid feature config, or one whose
    dimension does not match the models."""
    name = os.fspath(path)
    clf = load(path)
    if not isinstance(clf, (GMMClassifier, FusedClassifier)):
        raise ModelFileError(f"{name}: holds a {type(clf).__name__}, not a classifier")
    header = clf.file_header_
    fused = isinstance(clf, FusedClassifier)
    if fused and "feature_configs" not in header:
        raise ModelFileError(f"{name}: a fused model needs 'feature_configs'")
    if not fused and "feature_config" not in header:
        raise ModelFileError(
            f"{name}: no feature configuration in this file (saved with GMMClassifier.save); "
            "use audiogmm.pipeline.save_model or `audiogmm train` to make a model for audio"
        )
    blocks = header["feature_configs"] if fused else [header["feature_config"]]
    configs = [FeatureConfig.from_dict(c) for c in blocks]
    _check_dims(clf, configs, f"{name}: ", ModelFileError)
    return Bundle(clf, configs[0], header, configs=configs)
