"""The model file users handle: a classifier bundled with the front end that made its features.

A bundle is a :class:`~audiogmm.models.GMMClassifier` file whose header also holds
the :class:`~audiogmm.features.FeatureConfig`, so prediction from audio always
extracts features exactly as training did. A fused model
(:class:`~audiogmm.models.FusedClassifier`) holds one configuration per member, under
``feature_configs``. The classifier itself knows nothing of audio; this module, in the
pipeline layer, joins the two.
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
    """A trained classifier, its feature configuration, and what the file's header said.

    Attributes
    ----------
    classifier : GMMClassifier, UBMClassifier or FusedClassifier
    config : FeatureConfig
        The front end (a fused model's first member's).
    header : dict
        The full JSON header of the file (format fields, training summary, ...).
    configs : list of FeatureConfig
        One front end per member of a fused model; ``[config]`` otherwise.
    """

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
    path: str | os.PathLike,
    classifier: GMMClassifier | FusedClassifier,
    config: Union[FeatureConfig, Sequence[FeatureConfig]],
    *,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write ``classifier`` and ``config`` to one model file (atomic, checksummed, no pickle).

    Parameters
    ----------
    classifier : GMMClassifier, UBMClassifier or FusedClassifier
    config : FeatureConfig, or a sequence of them for a FusedClassifier (one per member)
    extra : dict, optional
        More header blocks (e.g. ``"split"``), each declared in the classifier's table
        (:mod:`audiogmm.io.tables`) and checked before writing, so the file always loads.

    Raises
    ------
    ParameterError
        When the classifier's feature dimension differs from the config's, or an
        ``extra`` block is not declared or does not pass its checks.
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

    Every header field is checked by :func:`audiogmm.io.load` against the kind's table
    (an unknown field refuses the file); this adds the checks between the front ends
    and the models.

    Raises
    ------
    ModelFileError
        A bad file (see :meth:`GMMClassifier.load`), a missing or invalid feature
        config, or one whose dimension does not match the models.
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
