"""Model files: a classifier whose header also holds the :class:`~audiogmm.features.FeatureConfig`
that made its features (a fused model: one per member), so prediction extracts features
exactly as training did; and a UBM with the config it records."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from ..exceptions import ModelFileError, ParameterError
from ..features import FeatureConfig
from ..io import load, save
from ..mixture import DiagGMM
from ..models import FusedClassifier, GMMClassifier

__all__ = ["Bundle", "load_model", "load_ubm", "save_model"]


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
    if not (fused or isinstance(config, FeatureConfig)):
        raise ParameterError("config must be one FeatureConfig for this classifier")
    configs = [config] if isinstance(config, FeatureConfig) else list(config)
    _check_dims(classifier, configs, "", ParameterError)
    front = ({"feature_configs": [c.to_dict() for c in configs]} if fused
             else {"feature_config": config.to_dict()})  # fmt: skip
    save(classifier, path, extra={**(extra or {}), **front})


def _check_dims(model: Any, configs: list[Any], prefix: str, error: type[Exception]) -> None:
    """``error`` when the front ends' dimensions are not the model's (its members')."""
    fused = isinstance(model, FusedClassifier)
    dims = tuple(c.n_dims if isinstance(c, FeatureConfig) else None for c in configs)
    if dims != (model.n_dims if fused else (model.n_dims,)):
        gives = f"configs give {dims}" if fused else f"config gives {dims[0]}"
        what = "UBM" if isinstance(model, DiagGMM) else "classifier"
        raise error(f"{prefix}the {what} has {model.n_dims} dims but the feature {gives}")


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
    key = "feature_configs" if isinstance(clf, FusedClassifier) else "feature_config"
    if key not in header:
        raise ModelFileError(
            f"{name}: no feature configuration ({key!r}) in this file; use "
            "audiogmm.pipeline.save_model or `audiogmm train` to make a model for audio"
        )
    blocks = header[key] if key == "feature_configs" else [header[key]]
    configs = [FeatureConfig.from_dict(c) for c in blocks]
    _check_dims(clf, configs, f"{name}: ", ModelFileError)
    return Bundle(clf, configs[0], header, configs=configs)


def load_ubm(path: str | os.PathLike) -> tuple[DiagGMM, FeatureConfig | None]:
    """A UBM written by ``audiogmm ubm`` (a DiagGMM file) and the FeatureConfig it records
    (None for one saved without, e.g. by ``DiagGMM.save``); ModelFileError naming the file
    for another kind of file or a bad feature configuration."""
    ubm = load(path, DiagGMM)
    block = ubm.file_header_.get("feature_config")  # checked by the loader
    config = None if block is None else FeatureConfig.from_dict(block)
    if config is not None:
        _check_dims(ubm, [config], f"{os.fspath(path)}: ", ModelFileError)
    return ubm, config
