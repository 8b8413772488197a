"""Classification metrics: accuracy, confusion matrix, per-class precision and recall."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..exceptions import ParameterError

__all__ = ["accuracy", "confusion_matrix", "per_class", "summary"]


def _check(y_true: Sequence[str], y_pred: Sequence[str]) -> tuple[list[str], list[str]]:
    if len(y_true) != len(y_pred):
        raise ParameterError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    return [str(y) for y in y_true], [str(y) for y in y_pred]


def accuracy(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    """Fraction of clips whose predicted label equals the true label (nan when empty)."""
    t, p = _check(y_true, y_pred)
    return float(np.mean([a == b for a, b in zip(t, p)])) if t else float("nan")


def confusion_matrix(
    y_true: Sequence[str], y_pred: Sequence[str], *, labels: Sequence[str] | None = None
) -> tuple[list[str], np.ndarray]:
    """Counts ``C[i, j]`` of clips of true class ``labels[i]`` predicted as ``labels[j]``.

    Returns
    -------
    labels : list of str
        Row/column order (sorted union of true and predicted labels by default).
    matrix : ndarray of shape (n_labels, n_labels), int64
    """
    t, p = _check(y_true, y_pred)
    labels = sorted(set(t) | set(p)) if labels is None else [str(y) for y in labels]
    index = {y: i for i, y in enumerate(labels)}
    C = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for a, b in zip(t, p):
        if a not in index or b not in index:
            raise ParameterError(f"label {a if a not in index else b!r} is not in labels")
        C[index[a], index[b]] += 1
    return labels, C


def per_class(labels: Sequence[str], C: np.ndarray) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support for each class from a confusion matrix."""
    out = {}
    for i, y in enumerate(labels):
        tp, support, predicted = C[i, i], C[i].sum(), C[:, i].sum()
        prec = tp / predicted if predicted else 0.0
        rec = tp / support if support else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        out[y] = {
            "precision": float(prec),
            "recall": float(rec),
            "f1": float(f1),
            "support": int(support),
        }
    return out


def summary(
    y_true: Sequence[str], y_pred: Sequence[str], *, labels: Sequence[str] | None = None
) -> dict[str, Any]:
    """All metrics as one JSON-ready dict: accuracy, n, per_class, confusion."""
    labels, C = confusion_matrix(y_true, y_pred, labels=labels)
    pc = per_class(labels, C)
    recalls = [v["recall"] for v in pc.values() if v["support"]]
    return {
        "accuracy": accuracy(y_true, y_pred),
        "balanced_accuracy": float(np.mean(recalls)) if recalls else float("nan"),
        "n": len(y_true),
        "per_class": pc,
        "confusion": {"labels": labels, "matrix": C.tolist()},
    }
