"""The model file users handle: a classifier bundled with the front end that made its features.

The classifier file's header also holds the :class:`~audiogmm.features.FeatureConfig`
(a fused model: one per member, ``feature_configs``), so prediction extracts features
exactly as training did. The classifier knows nothing of audio; this module joins the two.
"""

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
    file (atomic, checksummed, no pickle).

    ``extra`` header blocks (e.g. ``"split"``) must be declared in the classifier's table
    (:mod:`audiogmm.io.tables`) and pass its checks, so the file always loads.
    ParameterError for those, or when the feature dimensions differ.
    """
    if isinstance(classifier, FusedClassifier):
        configs = list(config) if not isinstance(config, FeatureConfig) else [config]
        dims = tuple(c.n_dims for c in configs if isinstance(c, FeatureConfig))
        if dims != classifier.n_dims or len(configs) != len(dims):
            raise ParameterError(
                f"the fused classifier's members have {classifier.n_dims}-dim features but "
                f"the feature configs give {dims}"
            )
        front = {"feature_configs": [c.to_dict() for c in configs]}
    else:
        if not isinstance(config, FeatureConfig):
            raise ParameterError("config must be one FeatureConfig for this classifier")
        if classifier.n_dims != config.n_dims:
            raise ParameterError(
                f"the classifier has {classifier.n_dims}-dim features but the feature config "
                f"gives {config.n_dims}"
            )
        front = {"feature_config": config.to_dict()}
    save(classifier, path, extra={**(extra or {}), **front})


def load_model(path: str | os.PathLike) -> Bundle:
    """Read a model file written by :func:`save_model`, validating everything.

    :func:`audiogmm.io.load` checks every header field against the kind's table; this adds
    the checks between front ends and models. ModelFileError for a bad file, a missing or
    invalid feature config, or one whose dimension does not match the models.
    """
    name = os.fspath(path)
    clf = load(path)
    if not isinstance(clf, (GMMClassifier, FusedClassifier)):
        raise ModelFileError(f"{name}: holds a {type(clf).__name__}, not a classifier")
    header = clf.file_header_
    if isinstance(clf, FusedClassifier):
        if "feature_configs" not in header:
            raise ModelFileError(f"{name}: a fused model needs 'feature_configs'")
        configs = [FeatureConfig.from_dict(c) for c in header["feature_configs"]]
        dims = tuple(c.n_dims for c in configs)
        if dims != clf.n_dims:
            raise ModelFileError(
                f"{name}: members have {clf.n_dims} dims but the feature configs give {dims}"
            )
        return Bundle(clf, configs[0], header, configs=configs)
    if "feature_config" not in header:
        raise ModelFileError(
            f"{name}: no feature configuration in this file (saved with GMMClassifier.save); "
            "use audiogmm.pipeline.save_model or `audiogmm train` to make a model for audio"
        )
    config = FeatureConfig.from_dict(header["feature_config"])
    if clf.n_dims != config.n_dims:
        raise ModelFileError(
            f"{name}: models have {clf.n_dims} dims but the feature config gives {config.n_dims}"
        )
    return Bundle(clf, config, header)
