"""Verification metrics and score normalisation: DET curve, EER, minDCF, z/t/s-norm.

A trial is accepted when its score is ``>= threshold``; the operating points are those at
every distinct score, plus "reject everything" (``t = +inf``: ``P_miss = 1``, ``P_fa = 0``).
Trials are ``y_true`` (n_trials,), 1 for a target and 0 for a non-target, and ``scores``
(n_trials,), higher meaning "more likely target" (e.g. an LLR).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..exceptions import ParameterError
from .metrics import paired_labels

__all__ = [
    "DCF_TARGETS", "check_dcf_costs", "det_curve", "eer", "min_dcf", "open_set_rates",
    "operating_points", "snorm", "split_trials", "tnorm", "znorm",
]  # fmt: skip

#: The target priors minDCF is reported at (NIST SRE / VoxSRC habit), C_miss = C_fa = 1.
DCF_TARGETS = (0.01, 0.05)


def split_trials(y_true: Sequence[int], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Target and non-target scores, each sorted ascending (ParameterError on bad input)."""
    y, s = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or s.ndim != 1:
        raise ParameterError(f"y_true {y.shape} and scores {s.shape} must be 1-D of equal length")
    if not np.all(np.isfinite(s)):
        raise ParameterError("scores contain NaN or inf")
    if not np.all(np.isin(y, (0, 1))):
        raise ParameterError("y_true must hold only 1 (target) and 0 (non-target)")
    tar, non = s[y == 1], s[y == 0]
    if not len(tar) or not len(non):
        raise ParameterError(f"need target and non-target trials; got {len(tar)} target, "
                             f"{len(non)} non-target")  # fmt: skip
    return np.sort(tar), np.sort(non)


def operating_points(y_true: Sequence[int], scores: Sequence[float]
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Miss and false-alarm rates at every distinct score, then at ``+inf``: ``p_miss``
    (rising from 0 to 1), ``p_fa`` (falling from 1 to 0) and the ascending thresholds."""
    tar, non = split_trials(y_true, scores)
    thr = np.append(np.unique(np.concatenate([tar, non])), np.inf)
    p_miss = np.searchsorted(tar, thr, side="left") / len(tar)
    p_fa = (len(non) - np.searchsorted(non, thr, side="left")) / len(non)
    return p_miss, p_fa, thr


def det_curve(y_true: Sequence[int], scores: Sequence[float]
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """``fpr``, ``fnr`` and thresholds (every distinct score, ascending), as
    ``sklearn.metrics.det_curve``."""
    p_miss, p_fa, thr = operating_points(y_true, scores)
    return p_fa[:-1], p_miss[:-1], thr[:-1]


def eer(y_true: Sequence[int], scores: Sequence[float]) -> tuple[float, float]:
    """Equal error rate (where the polyline of operating points crosses ``P_miss = P_fa``,
    in linear rate space) and the threshold where ``P_miss`` first reaches ``P_fa``."""
    p_miss, p_fa, thr = operating_points(y_true, scores)
    d = p_miss - p_fa  # rises from -1 to +1
    i = int(np.argmax(d >= 0))
    if i == 0 or d[i] == 0:
        return float(p_miss[i]), float(thr[i])
    # segment from point i-1 (d < 0) to i (d > 0): solve d(t) = 0 along it
    t = -d[i - 1] / (d[i] - d[i - 1])
    return float(p_miss[i - 1] + t * (p_miss[i] - p_miss[i - 1])), float(thr[i])


def check_dcf_costs(p_target: float, c_miss: float, c_fa: float) -> None:
    """ParameterError unless ``0 < p_target < 1`` and both costs are finite and > 0."""
    if not (0 < p_target < 1 and 0 < c_miss < np.inf and 0 < c_fa < np.inf):  # also NaN
        raise ParameterError(f"need 0 < p_target < 1 and positive costs; got p_target="
                             f"{p_target}, c_miss={c_miss}, c_fa={c_fa}")  # fmt: skip


def min_dcf(y_true: Sequence[int], scores: Sequence[float], *, p_target: float,
            c_miss: float = 1.0, c_fa: float = 1.0) -> tuple[float, float]:  # fmt: skip
    """Minimum normalised detection cost over all thresholds (NIST SRE), and its threshold:
    ``c_miss p_target P_miss(t) + c_fa (1 - p_target) P_fa(t)`` over the best trivial
    system's cost ``min(c_miss p_target, c_fa (1 - p_target))``; ``0 < p_target < 1``."""
    check_dcf_costs(p_target, c_miss, c_fa)
    p_miss, p_fa, thr = operating_points(y_true, scores)
    dcf = c_miss * p_target * p_miss + c_fa * (1.0 - p_target) * p_fa
    i = int(np.argmin(dcf))
    return float(dcf[i] / min(c_miss * p_target, c_fa * (1.0 - p_target))), float(thr[i])


def _norm(scores: Sequence[float], cohort: np.ndarray, what: str) -> np.ndarray:
    s, c = np.asarray(scores, dtype=np.float64), np.asarray(cohort, dtype=np.float64)
    if s.ndim != 1 or c.ndim != 2 or c.shape[0] != s.shape[0] or c.shape[1] < 2:
        raise ParameterError(f"{what}: scores must be (n_trials,) and cohort scores (n_trials, "
                             f"n_cohort >= 2); got {s.shape} and {c.shape}")  # fmt: skip
    mu, sd = c.mean(1), c.std(1)
    # a cohort that scores identically carries no scale: leave the spread at 1 there
    return (s - mu) / np.where(sd > 0, sd, 1.0)


def znorm(scores: Sequence[float], model_cohort: np.ndarray) -> np.ndarray:
    """Zero normalisation: ``(s - mean) / std`` over the trial's row of ``model_cohort``
    (n_trials, n_cohort), its claimed model's scores on impostor cohort files."""
    return _norm(scores, model_cohort, "znorm")


def tnorm(scores: Sequence[float], test_cohort: np.ndarray) -> np.ndarray:
    """Test normalisation: as :func:`znorm` over ``test_cohort`` (n_trials, n_cohort), the
    trial's test file scored against each impostor model."""
    return _norm(scores, test_cohort, "tnorm")


def snorm(scores: Sequence[float], model_cohort: np.ndarray, test_cohort: np.ndarray) -> np.ndarray:
    """Symmetric normalisation: the mean of the z-normed and t-normed scores."""
    return 0.5 * (znorm(scores, model_cohort) + tnorm(scores, test_cohort))


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
