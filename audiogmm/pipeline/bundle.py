"""The model file users handle: a classifier bundled with the front end that made its features.

A bundle is a :class:`~audiogmm.models.GMMClassifier` file whose header also holds
the :class:`~audiogmm.features.FeatureConfig`, so prediction from audio always
extracts features exactly as training did. The classifier itself knows nothing
of audio; this module, in the pipeline layer, joins the two.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import ModelFileError, ParameterError
from ..features import FeatureConfig
from ..models import GMMClassifier, UBMClassifier

__all__ = ["Bundle", "load_model", "save_model"]


@dataclass
class Bundle:
    """A trained classifier, its feature configuration, and what the file's header said.

    Attributes
    ----------
    classifier : GMMClassifier
    config : FeatureConfig
    header : dict
        The full JSON header of the file (format fields, training summary, ...).
    """

    classifier: GMMClassifier
    config: FeatureConfig
    header: dict[str, Any] = field(default_factory=dict)


def save_model(
    path: str | os.PathLike,
    classifier: GMMClassifier,
    config: FeatureConfig,
    *,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write ``classifier`` and ``config`` to one model file (atomic, checksummed, no pickle).

    Raises
    ------
    ParameterError
        When the classifier's feature dimension differs from the config's.
    """
    if classifier.n_dims != config.n_dims:
        raise ParameterError(
            f"the classifier has {classifier.n_dims}-dim features but the feature config "
            f"gives {config.n_dims}"
        )
    classifier.save(path, extra={**(extra or {}), "feature_config": config.to_dict()})


def _file_kind(path: str | os.PathLike) -> str | None:
    """The ``kind`` a container's header claims (None if unreadable); the load validates."""
    import json

    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as z:
            return json.loads(z["__header__"].tobytes().decode("utf-8")).get("kind")
    except Exception:  # any damage: let the full loader report it
        return None


def load_model(path: str | os.PathLike) -> Bundle:
    """Read a model file written by :func:`save_model`, validating everything.

    Raises
    ------
    ModelFileError
        A bad file (see :meth:`GMMClassifier.load`), a missing or invalid feature
        config, or one whose dimension does not match the models.
    """
    name = os.fspath(path)
    clf = (UBMClassifier if _file_kind(path) == UBMClassifier._FILE_KIND else GMMClassifier).load(
        path
    )
    header = clf.file_header_
    if "feature_config" not in header:
        raise ModelFileError(
            f"{name}: no feature configuration in this file (saved with GMMClassifier.save); "
            "use audiogmm.pipeline.save_model or `audiogmm train` to make a model for audio"
        )
    try:
        config = FeatureConfig.from_dict(header["feature_config"])
    except ParameterError as e:
        raise ModelFileError(f"{name}: invalid feature_config in header ({e})") from e
    if clf.n_dims != config.n_dims:
        raise ModelFileError(
            f"{name}: models have {clf.n_dims} dims but the feature config gives {config.n_dims}"
        )
    return Bundle(clf, config, header)
