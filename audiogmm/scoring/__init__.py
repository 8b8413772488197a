"""Scores to numbers a reviewer asks for: accuracy, confusion, per-class metrics; EER, minDCF, DET."""

from .metrics import accuracy, confusion_matrix, macro_f1, per_class, summary, wilson_interval
from .verification import (
    DCF_TARGETS,
    det_curve,
    eer,
    min_dcf,
    open_set_rates,
    snorm,
    tnorm,
    znorm,
)

__all__ = [
    "DCF_TARGETS",
    "accuracy",
    "confusion_matrix",
    "det_curve",
    "eer",
    "macro_f1",
    "min_dcf",
    "open_set_rates",
    "per_class",
    "snorm",
    "summary",
    "tnorm",
    "wilson_interval",
    "znorm",
]
