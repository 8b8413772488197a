"""Models built from mixtures: per-class ML GMMs, GMM-UBM with MAP-adapted classes, model selection."""
from .classifier import N_COMPONENTS, GMMClassifier
from .ubm import UBM_COMPONENTS, UNKNOWN, UBMClassifier, train_ubm

__all__ = [
    "GMMClassifier",
    "N_COMPONENTS",
    "UBMClassifier",
    "UBM_COMPONENTS",
    "UNKNOWN",
    "train_ubm",
]
