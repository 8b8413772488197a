"""Verification metrics and score normalisation: DET curve, EER, minDCF, z/t/s-norm.

Convention: a trial is *accepted* when its score is ``>= threshold``. For a
threshold ``t``, ``P_miss(t)`` is the share of target trials with score ``< t``
and ``P_fa(t)`` the share of non-target trials with score ``>= t``. The
operating points are those at every distinct score, plus "reject everything"
(``t = +inf``: ``P_miss = 1``, ``P_fa = 0``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..exceptions import ParameterError

__all__ = [
    "DCF_TARGETS",
    "check_dcf_costs",
    "det_curve",
    "eer",
    "min_dcf",
    "open_set_rates",
    "operating_points",
    "snorm",
    "split_trials",
    "tnorm",
    "znorm",
]

#: The target priors minDCF is reported at (NIST SRE / VoxSRC habit), C_miss = C_fa = 1.
DCF_TARGETS = (0.01, 0.05)


def split_trials(y_true: Sequence[int], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Target and non-target scores, each sorted ascending (ParameterError on bad input)."""
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or s.ndim != 1:
        raise ParameterError(f"y_true {y.shape} and scores {s.shape} must be 1-D of equal length")
    if not np.all(np.isfinite(s)):
        raise ParameterError("scores contain NaN or inf")
    if not np.all(np.isin(y, (0, 1))):
        raise ParameterError("y_true must hold only 1 (target) and 0 (non-target)")
    tar, non = s[y == 1], s[y == 0]
    if not len(tar) or not len(non):
        raise ParameterError(
            f"need target and non-target trials; got {len(tar)} target, {len(non)} non-target"
        )
    return np.sort(tar), np.sort(non)


def operating_points(
    y_true: Sequence[int], scores: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Miss and false-alarm rates at every distinct score, then at ``+inf``.

    Parameters
    ----------
    y_true : sequence of {0, 1}, length n_trials
        1 for a target trial (the claim is true), 0 for a non-target trial.
    scores : sequence of float, length n_trials
        Higher means "more likely target" (e.g. an LLR).

    Returns
    -------
    p_miss, p_fa : ndarray of shape (n_points,)
        ``p_miss`` rises from 0 to 1, ``p_fa`` falls from 1 to 0.
    thresholds : ndarray of shape (n_points,)
        Ascending; the last is ``+inf``.
    """
    tar, non = split_trials(y_true, scores)
    thr = np.append(np.unique(np.concatenate([tar, non])), np.inf)
    p_miss = np.searchsorted(tar, thr, side="left") / len(tar)
    p_fa = (len(non) - np.searchsorted(non, thr, side="left")) / len(non)
    return p_miss, p_fa, thr


def det_curve(
    y_true: Sequence[int], scores: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-positive and false-negative rates per threshold (as ``sklearn.metrics.det_curve``).

    Returns
    -------
    fpr, fnr : ndarray of shape (n_thresholds,)
    thresholds : ndarray of shape (n_thresholds,)
        Every distinct score, ascending (no ``+inf`` point).
    """
    p_miss, p_fa, thr = operating_points(y_true, scores)
    return p_fa[:-1], p_miss[:-1], thr[:-1]


def eer(y_true: Sequence[int], scores: Sequence[float]) -> tuple[float, float]:
    """Equal error rate: where the DET polyline crosses ``P_miss = P_fa``.

    The operating points are joined by straight segments (in linear rate space);
    the EER is the rate at the intersection of that polyline with the diagonal.

    Returns
    -------
    eer : float in [0, 1]
    threshold : float
        The distinct score at the end of the crossing segment (accept ``>=``),
        where ``P_miss`` first reaches or passes ``P_fa``.
    """
    p_miss, p_fa, thr = operating_points(y_true, scores)
    d = p_miss - p_fa  # rises from -1 to +1
    i = int(np.argmax(d >= 0))
    if i == 0 or d[i] == 0:
        return float(p_miss[i]), float(thr[i])
    # segment from point i-1 (d < 0) to i (d > 0): solve d(t) = 0 along it
    t = -d[i - 1] / (d[i] - d[i - 1])
    rate = p_miss[i - 1] + t * (p_miss[i] - p_miss[i - 1])
    return float(rate), float(thr[i])


def check_dcf_costs(p_target: float, c_miss: float, c_fa: float) -> None:
    """ParameterError unless ``0 < p_target < 1`` and both costs are finite and > 0."""
    ok = 0 < p_target < 1 and 0 < c_miss < np.inf and 0 < c_fa < np.inf
    if not ok:  # also NaN
        raise ParameterError(
            f"need 0 < p_target < 1 and positive costs; got p_target={p_target}, "
            f"c_miss={c_miss}, c_fa={c_fa}"
        )


def min_dcf(
    y_true: Sequence[int],
    scores: Sequence[float],
    *,
    p_target: float,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> tuple[float, float]:
    """Minimum normalised detection cost over all thresholds (NIST SRE).

    ``DCF(t) = c_miss p_target P_miss(t) + c_fa (1 - p_target) P_fa(t)``, divided
    by ``min(c_miss p_target, c_fa (1 - p_target))`` (the cost of the best
    trivial system), minimised over the operating points.

    Parameters
    ----------
    p_target : float in (0, 1)
        Prior of a target trial.
    c_miss, c_fa : float > 0
        Costs of a miss and of a false alarm.

    Returns
    -------
    min_dcf : float >= 0
    threshold : float
        Where the minimum is reached (the first such threshold; accept ``>=``).
    """
    check_dcf_costs(p_target, c_miss, c_fa)
    p_miss, p_fa, thr = operating_points(y_true, scores)
    dcf = c_miss * p_target * p_miss + c_fa * (1.0 - p_target) * p_fa
    i = int(np.argmin(dcf))
    return float(dcf[i] / min(c_miss * p_target, c_fa * (1.0 - p_target))), float(thr[i])


def _norm(scores: np.ndarray, cohort: np.ndarray, what: str) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    c = np.asarray(cohort, dtype=np.float64)
    if s.ndim != 1 or c.ndim != 2 or c.shape[0] != s.shape[0] or c.shape[1] < 2:
        raise ParameterError(
            f"{what}: scores must be (n_trials,) and cohort scores (n_trials, n_cohort >= 2); "
            f"got {s.shape} and {c.shape}"
        )
    mu, sd = c.mean(1), c.std(1)
    # a cohort that scores identically carries no scale: leave the spread at 1 there
    return (s - mu) / np.where(sd > 0, sd, 1.0)


def znorm(scores: Sequence[float], model_cohort: np.ndarray) -> np.ndarray:
    """Zero normalisation: centre and scale each trial by its *model's* impostor scores.

    Parameters
    ----------
    scores : sequence of float, length n_trials
    model_cohort : ndarray of shape (n_trials, n_cohort)
        The score of the trial's claimed model against each impostor cohort file.

    Returns
    -------
    ndarray of shape (n_trials,)
        ``(s - mean) / std`` over the cohort row.
    """
    return _norm(np.asarray(scores), model_cohort, "znorm")


def tnorm(scores: Sequence[float], test_cohort: np.ndarray) -> np.ndarray:
    """Test normalisation: centre and scale by the *test file's* scores on impostor models.

    Parameters
    ----------
    scores : sequence of float, length n_trials
    test_cohort : ndarray of shape (n_trials, n_cohort)
        The trial's test file scored against each cohort (impostor) model.
    """
    return _norm(np.asarray(scores), test_cohort, "tnorm")


def snorm(scores: Sequence[float], model_cohort: np.ndarray, test_cohort: np.ndarray) -> np.ndarray:
    """Symmetric normalisation: the mean of the z-normed and t-normed scores."""
    return 0.5 * (znorm(scores, model_cohort) + tnorm(scores, test_cohort))


def open_set_rates(
    y_true: Sequence[str], y_pred: Sequence[str], *, known: Sequence[str], unknown: str
) -> dict[str, Any]:
    """Open-set identification error rates.

    Parameters
    ----------
    y_true : sequence of str
        True labels; those not in ``known`` are unknown classes.
    y_pred : sequence of str
        Predictions: a known label or ``unknown`` (rejected).
    known : sequence of str
        The model's classes.
    unknown : str
        The label a rejected clip gets.

    Returns
    -------
    dict
        ``false_accept`` (unknown-class clips given a known label, share of
        ``n_unknown``), ``false_reject`` (known-class clips rejected, share of
        ``n_known``), ``misidentified`` (known-class clips given another known
        label, share of ``n_known``), the counts, and NaN rates for empty groups.
    """
    if len(y_true) != len(y_pred):
        raise ParameterError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    ks = set(map(str, known))
    t = [str(y) for y in y_true]
    p = [str(y) for y in y_pred]
    kn = [(a, b) for a, b in zip(t, p) if a in ks]
    un = [b for a, b in zip(t, p) if a not in ks]
    fa = sum(b != unknown for b in un)
    fr = sum(b == unknown for _, b in kn)
    mis = sum(b != unknown and b != a for a, b in kn)

    def rate(k: int, n: int) -> float:
        return k / n if n else float("nan")

    return {
        "false_accept": rate(fa, len(un)),
        "false_reject": rate(fr, len(kn)),
        "misidentified": rate(mis, len(kn)),
        "n_false_accept": fa,
        "n_false_reject": fr,
        "n_misidentified": mis,
        "n_unknown": len(un),
        "n_known": len(kn),
    }
