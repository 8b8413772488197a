"""Classification metrics: accuracy with a Wilson interval, balanced accuracy, macro-F1,
confusion matrix, per-class precision, recall and F1, open-set error rates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..exceptions import ParameterError

__all__ = ["accuracy", "confusion_matrix", "macro_f1", "open_set_rates", "paired_labels",
           "per_class", "summary", "wilson_interval"]  # fmt: skip

#: Two-sided 95% standard-normal quantile, Φ⁻¹(0.975).
Z95 = 1.959963984540054


def paired_labels(y_true: Sequence[str], y_pred: Sequence[str]) -> tuple[list[str], list[str]]:
    """Both label lists as strings; ParameterError unless they have the same length."""
    if len(y_true) != len(y_pred):
        raise ParameterError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    return [str(y) for y in y_true], [str(y) for y in y_pred]


def accuracy(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    """Fraction of clips whose predicted label equals the true label (nan when empty)."""
    t, p = paired_labels(y_true, y_pred)
    return float(np.mean([a == b for a, b in zip(t, p)])) if t else float("nan")


def wilson_interval(k: int, n: int, *, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval ``(low, high)`` in [0, 1] of the proportion ``k / n`` at the
    standard-normal quantile ``z`` (two-sided 95%); ``(nan, nan)`` when ``n == 0``."""
    if n < 0 or k < 0 or k > n or not z > 0:
        raise ParameterError(f"need 0 <= k <= n and z > 0, got k={k}, n={n}, z={z}")
    if n == 0:
        return float("nan"), float("nan")
    p, z2 = k / n, z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * np.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denom
    # at k == 0 (k == n) the lower (upper) bound is exactly 0 (1); rounding would miss it
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return float(low), float(high)


def confusion_matrix(y_true: Sequence[str], y_pred: Sequence[str], *,
                     labels: Sequence[str] | None = None
                     ) -> tuple[list[str], np.ndarray]:  # fmt: skip
    """``labels`` (default: sorted union of true and predicted) and int64 counts ``C[i, j]``
    (n_labels, n_labels) of clips of true class ``labels[i]`` predicted ``labels[j]``."""
    t, p = paired_labels(y_true, y_pred)
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
        out[y] = {"precision": float(prec), "recall": float(rec), "f1": float(f1),
                  "support": int(support)}  # fmt: skip
    return out


def macro_f1(labels: Sequence[str], C: np.ndarray) -> float:
    """Mean F1 over the classes that occur (nan: none), as ``f1_score(average="macro")``."""
    C = np.asarray(C)
    pc = per_class(labels, C)
    occurs = [y for i, y in enumerate(labels) if C[i].sum() or C[:, i].sum()]
    return float(np.mean([pc[y]["f1"] for y in occurs])) if occurs else float("nan")


def summary(y_true: Sequence[str], y_pred: Sequence[str], *,
            labels: Sequence[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """All metrics, JSON-ready: ``accuracy``, ``accuracy_ci95`` (Wilson), ``n_correct``,
    ``n``, ``balanced_accuracy`` (mean recall over classes with clips), ``macro_f1``,
    ``per_class`` (``{label: {precision, recall, f1, support}}``), ``confusion``
    (``{labels, matrix}``, rows true)."""
    labels, C = confusion_matrix(y_true, y_pred, labels=labels)
    pc = per_class(labels, C)
    recalls = [v["recall"] for v in pc.values() if v["support"]]
    n, n_correct = len(y_true), int(np.trace(C))
    return {"accuracy": accuracy(y_true, y_pred),
            "accuracy_ci95": list(wilson_interval(n_correct, n)),
            "balanced_accuracy": float(np.mean(recalls)) if recalls else float("nan"),
            "macro_f1": macro_f1(labels, C), "n": n, "n_correct": n_correct, "per_class": pc,
            "confusion": {"labels": labels, "matrix": C.tolist()}}  # fmt: skip


def open_set_rates(y_true: Sequence[str], y_pred: Sequence[str], *, known: Sequence[str],
                   unknown: str) -> dict[str, Any]:  # fmt: skip
    """Open-set error rates (NaN for empty groups) and counts; true labels not in ``known``
    are unknown classes, a prediction of ``unknown`` a rejection: ``false_accept`` (unknown
    given a known label), ``false_reject`` and ``misidentified`` (known given another)."""
    t, p = paired_labels(y_true, y_pred)
    ks = set(map(str, known))
    kn = [(a, b) for a, b in zip(t, p) if a in ks]
    un = [b for a, b in zip(t, p) if a not in ks]
    fa = sum(b != unknown for b in un)
    fr = sum(b == unknown for _, b in kn)
    mis = sum(b != unknown and b != a for a, b in kn)
    return {"false_accept": fa / len(un) if un else float("nan"),
            "false_reject": fr / len(kn) if kn else float("nan"),
            "misidentified": mis / len(kn) if kn else float("nan"), "n_false_accept": fa,
            "n_false_reject": fr, "n_misidentified": mis, "n_unknown": len(un),
            "n_known": len(kn)}  # fmt: skip
