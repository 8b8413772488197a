"""audiogmm: Gaussian mixture models for audio.

Data flows audio -> features -> data -> mixture -> models -> scoring -> pipeline -> cli.
Every name is imported on first use, so that ``import audiogmm`` (and ``audiogmm --help``)
stay fast.
"""

from __future__ import annotations

from ._version import __version__
from .lazy import lazy_exports

_LAZY = {
    **dict.fromkeys(["AudioError", "AudioGMMError", "ConvergenceWarning", "DatasetError",
                     "FeatureError", "ModelFileError", "ParameterError"], ".exceptions"),
    **dict.fromkeys(["DiagGMM", "Stats"], ".mixture"),
    **dict.fromkeys(["GMMClassifier", "UBMClassifier"], ".models"),
    **dict.fromkeys(["FeatureConfig", "extract"], ".features"),
}  # fmt: skip
__all__ = ["__version__", *_LAZY]
__getattr__ = lazy_exports(__name__, _LAZY)[0]


def __dir__() -> list[str]:
    return sorted(__all__)
