"""audiogmm: Gaussian mixture models for audio.

Data flows audio -> features -> data -> mixture -> models -> scoring -> pipeline -> cli.
Every name is imported on first use (:func:`lazy_exports`, PEP 562; the subpackages use it
too), so that ``import audiogmm`` (and ``audiogmm --help``) stay fast."""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable, Callable]:
    """``__getattr__`` and ``__dir__`` for the package named ``package`` that import
    ``exports[name]`` (a module relative to the package, e.g. ``".cache"``) on first use."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name], package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(exports)
    return __getattr__, __dir__


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
