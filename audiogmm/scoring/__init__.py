"""Scores to numbers a reviewer asks for: accuracy, confusion, per-class metrics."""

from .metrics import accuracy, confusion_matrix, macro_f1, per_class, summary, wilson_interval

__all__ = [
    "accuracy",
    "confusion_matrix",
    "macro_f1",
    "per_class",
    "summary",
    "wilson_interval",
]
