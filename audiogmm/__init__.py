"""audiogmm: Gaussian mixture models for audio.

Data flows audio -> features -> statistics/EM -> models -> classifier -> CLI.
Heavy submodules (librosa-based features) are imported lazily, so that
``import audiogmm`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__
from .exceptions import (
    AudioError,
    AudioGMMError,
    ConvergenceWarning,
    DatasetError,
    FeatureError,
    ModelFileError,
    ParameterError,
)
from .gmm import DiagGMM
from .stats import Stats

__all__ = [
    "__version__",
    "AudioError",
    "AudioGMMError",
    "ConvergenceWarning",
    "DatasetError",
    "FeatureError",
    "ModelFileError",
    "ParameterError",
    "DiagGMM",
    "Stats",
    "GMMClassifier",
    "FeatureConfig",
    "extract",
]

_LAZY = {
    "GMMClassifier": "audiogmm.classifier",
    "FeatureConfig": "audiogmm.features",
    "extract": "audiogmm.features",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audiogmm' has no attribute {name!r}")
