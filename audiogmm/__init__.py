"""audiogmm: Gaussian mixture models for audio.

Data flows audio -> features -> data -> mixture -> models -> scoring -> pipeline -> cli.
Every name is imported on first use, so that ``import audiogmm`` (and ``audiogmm --help``)
stay fast.
"""

from .lazy import lazy_exports

_EXPORTS = {
    "__version__": "._version",
    **dict.fromkeys(["AudioError", "AudioGMMError", "ConvergenceWarning", "DatasetError",
                     "FeatureError", "ModelFileError", "ParameterError"], ".exceptions"),
    **dict.fromkeys(["DiagGMM", "Stats"], ".mixture"),
    **dict.fromkeys(["GMMClassifier", "UBMClassifier"], ".models"),
    **dict.fromkeys(["FeatureConfig", "extract"], ".features"),
}  # fmt: skip
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
