"""audiogmm: Gaussian mixture models for audio.

Data flows audio -> features -> data -> mixture -> models -> scoring -> pipeline -> cli.
Everything but the errors is imported lazily, so that ``import audiogmm`` (and
``audiogmm --help``) stay fast.
"""

from __future__ import annotations

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
from .lazy import lazy_exports

__all__ = [
    "__version__", "AudioError", "AudioGMMError", "ConvergenceWarning", "DatasetError",
    "FeatureError", "ModelFileError", "ParameterError", "DiagGMM", "Stats", "GMMClassifier",
    "UBMClassifier", "FeatureConfig", "extract",
]  # fmt: skip

_LAZY = {
    "DiagGMM": ".mixture",
    "Stats": ".mixture",
    "GMMClassifier": ".models",
    "UBMClassifier": ".models",
    "FeatureConfig": ".features",
    "extract": ".features",
}
__getattr__, _dir = lazy_exports(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted(__all__)
