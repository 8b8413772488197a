"""Models built from mixtures: per-class ML GMMs, GMM-UBM with MAP-adapted classes, late
fusion of several front ends' classifiers, model selection."""
from .classifier import N_COMPONENTS, GMMClassifier
from .fusion import FusedClassifier
from .supervector import GSVClassifier
from .ubm import UBM_COMPONENTS, UNKNOWN, UBMClassifier, train_ubm

#: ``--backend`` name -> classifier class: per-class ML GMMs, GMM-UBM with MAP classes,
#: GMM supervectors with logistic regression (needs the ``sklearn`` extra).
BACKENDS = {"ml": GMMClassifier, "map": UBMClassifier, "gsv": GSVClassifier}

__all__ = [
    "BACKENDS",
    "FusedClassifier",
    "GMMClassifier",
    "GSVClassifier",
    "N_COMPONENTS",
    "UBMClassifier",
    "UBM_COMPONENTS",
    "UNKNOWN",
    "train_ubm",
]
