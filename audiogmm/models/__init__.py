"""Models built from mixtures: per-class ML GMMs, GMM-UBM with MAP-adapted classes, late
fusion of several front ends' classifiers, model selection."""
import inspect

from .classifier import GMMClassifier
from .fusion import FusedClassifier
from .ivector import IVectorClassifier
from .supervector import GSVClassifier
from .ubm import UBMClassifier, train_ubm

#: ``--backend`` name -> classifier class: per-class ML GMMs, GMM-UBM with MAP classes,
#: GMM supervectors with logistic regression, i-vectors with LDA, WCCN and cosine scoring.
BACKENDS = {
    "ml": GMMClassifier, "map": UBMClassifier, "gsv": GSVClassifier, "ivector": IVectorClassifier,
}  # fmt: skip
#: The backend of ``train`` without ``--backend``, of ``fit_backend`` and the recipes: GMM
#: supervectors over a UBM of 64 (README "The default, checked a third time").
DEFAULT_BACKEND = "gsv"


def default_components(backend: str) -> int:
    """``backend``'s own default K (its classifier's ``n_components``): components per
    class (ml), or the UBM's size (map, gsv, ivector). ``train -k`` and the recipes use it."""
    return inspect.signature(BACKENDS[backend]).parameters["n_components"].default


__all__ = [
    "BACKENDS", "DEFAULT_BACKEND", "FusedClassifier", "GMMClassifier", "GSVClassifier",
    "IVectorClassifier", "UBMClassifier", "default_components", "train_ubm",
]  # fmt: skip
