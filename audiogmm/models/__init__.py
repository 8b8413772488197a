"""Models built from mixtures: per-class ML GMMs, GMM-UBM with MAP-adapted classes, late
fusion of several front ends' classifiers, model selection."""
from .classifier import N_COMPONENTS, GMMClassifier
from .fusion import FusedClassifier
from .ubm import UBM_COMPONENTS, UNKNOWN, UBMClassifier, train_ubm

__all__ = [
    "FusedClassifier",
    "GMMClassifier",
    "N_COMPONENTS",
    "UBMClassifier",
    "UBM_COMPONENTS",
    "UNKNOWN",
    "train_ubm",
]
