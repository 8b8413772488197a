"""Scores to numbers a reviewer asks for: accuracy, confusion, per-class metrics."""

from .metrics import accuracy, confusion_matrix, per_class, summary

__all__ = ["accuracy", "confusion_matrix", "per_class", "summary"]
