"""Models built from mixtures: the per-class classifier (UBM/MAP comes next), model selection."""

from .classifier import N_COMPONENTS, GMMClassifier

__all__ = ["GMMClassifier", "N_COMPONENTS"]
