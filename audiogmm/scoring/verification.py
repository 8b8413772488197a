"""Verification trials: DET, EER, minDCF, z/t/s-norm; calibration to LLRs, Cllr, actDCF.

Trials are ``y_true`` (n_trials,), 1 for a target and 0 for a non-target, and ``scores``
(n_trials,), higher meaning "more likely target"; a trial is accepted when its score is
``>= threshold``, at every distinct score and at ``+inf`` (``P_miss = 1``, ``P_fa = 0``).
Calibration follows BOSARIS (Brümmer & de Villiers 2011): natural-log likelihood ratios;
``Cllr - minCllr`` (after the best monotone recalibration, by PAV) is the calibration loss,
``actDCF`` the cost of the LLRs' Bayes decisions as they are, beside minDCF."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from ..exceptions import ParameterError

__all__ = [
    "DCF_TARGETS", "CalibrationWarning", "act_dcf", "apply_calibration", "bayes_threshold",
    "calibrated_threshold", "check_dcf_costs", "cllr", "det_curve", "eer", "fit_calibration",
    "min_cllr", "min_dcf",
    "newton_minimise", "operating_points", "pav", "snorm", "split_trials", "tnorm", "znorm",
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
    """``p_miss`` (0 to 1), ``p_fa`` (1 to 0) at the ascending thresholds (scores, +inf)."""
    tar, non = split_trials(y_true, scores)
    thr = np.append(np.unique(np.concatenate([tar, non])), np.inf)
    p_miss = np.searchsorted(tar, thr, side="left") / len(tar)
    p_fa = (len(non) - np.searchsorted(non, thr, side="left")) / len(non)
    return p_miss, p_fa, thr


def det_curve(y_true: Sequence[int], scores: Sequence[float]
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """``fpr``, ``fnr`` and thresholds, as ``sklearn.metrics.det_curve``."""
    p_miss, p_fa, thr = operating_points(y_true, scores)
    return p_fa[:-1], p_miss[:-1], thr[:-1]


def eer(y_true: Sequence[int], scores: Sequence[float]) -> tuple[float, float]:
    """Equal error rate (the operating points' polyline at ``P_miss = P_fa``) and the
    threshold where ``P_miss`` first reaches ``P_fa``."""
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
    """Minimum over thresholds ``t`` of ``c_miss p_target P_miss(t) + c_fa (1 - p_target)
    P_fa(t)`` over ``min(c_miss p_target, c_fa (1 - p_target))`` (NIST SRE), and its ``t``."""
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
    """``(s - mean) / std`` over the trial's row of ``model_cohort`` (n_trials, n_cohort):
    its claimed model's scores on impostor cohort files."""
    return _norm(scores, model_cohort, "znorm")


def tnorm(scores: Sequence[float], test_cohort: np.ndarray) -> np.ndarray:
    """As :func:`znorm` over ``test_cohort``: the trial's file scored by impostor models."""
    return _norm(scores, test_cohort, "tnorm")


def snorm(scores: Sequence[float], model_cohort: np.ndarray, test_cohort: np.ndarray) -> np.ndarray:
    """Symmetric normalisation: the mean of the z-normed and t-normed scores."""
    return 0.5 * (znorm(scores, model_cohort) + tnorm(scores, test_cohort))


#: L2 penalty on the standardised slope: negligible on overlapping scores, and what
#: keeps the slope finite (about 30 / gap in standard deviations) on separable ones.
_RIDGE = 1e-6


class CalibrationWarning(UserWarning):
    """The scores cannot be calibrated as asked (separable or constant scores)."""


def _logit(p: float) -> float:
    return math.log(p) - math.log1p(-p)


def bayes_threshold(p_target: float, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """The LLR above which accepting costs less: ``log(c_fa (1 - p) / (c_miss p))``."""
    check_dcf_costs(p_target, c_miss, c_fa)
    return math.log(c_fa) - math.log(c_miss) - _logit(p_target)


def _costs(tar: np.ndarray, non: np.ndarray) -> float:
    # log(1 + e^-x) as logaddexp(0, -x): exact for large |x|, 0 (not NaN) at x = +-inf
    cost = np.mean(np.logaddexp(0.0, -tar)) + np.mean(np.logaddexp(0.0, non))
    return float(cost) / (2.0 * math.log(2.0))


def cllr(y_true: Sequence[int], llrs: Sequence[float]) -> float:
    """Log-likelihood-ratio cost (bits; 0 for perfect LLRs, 1 for ``llr = 0``) of ``llrs``."""
    return _costs(*split_trials(y_true, llrs))


def pav(y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Isotonic (non-decreasing) least-squares fit (n,) of ``y`` (n,), ``weights`` (n,) > 0."""
    y = np.asarray(y, dtype=np.float64)
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=np.float64)
    blocks: list = []  # [mean, weight, size] of each pooled block
    for yi, wi in zip(y, w):
        blocks.append([yi, wi, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:  # a violation: pool the two
            m1, w1, n1 = blocks.pop()
            m0, w0, n0 = blocks[-1]
            blocks[-1] = [(m0 * w0 + m1 * w1) / (w0 + w1), w0 + w1, n0 + n1]
    return np.repeat([b[0] for b in blocks], [b[2] for b in blocks])


def min_cllr(y_true: Sequence[int], scores: Sequence[float]) -> float:
    """Cllr (bits, in [0, 1]) after the optimal monotone recalibration of ``scores``: PAV on
    the target indicator per distinct score gives posteriors, their log odds less the prior's."""
    tar, non = split_trials(y_true, scores)
    s = np.concatenate([tar, non])
    y = np.concatenate([np.ones(len(tar)), np.zeros(len(non))])
    inv = np.unique(s, return_inverse=True)[1]
    count = np.bincount(inv).astype(np.float64)
    p = pav(np.bincount(inv, weights=y) / count, count)  # one point per distinct score
    with np.errstate(divide="ignore"):  # p = 0 or 1: LLR -inf or +inf, whose cost is 0
        llr = np.log(p) - np.log1p(-p) - math.log(len(tar) / len(non))
    return _costs(llr[inv][y == 1], llr[inv][y == 0])


def act_dcf(y_true: Sequence[int], llrs: Sequence[float], *, p_target: float,
            c_miss: float = 1.0, c_fa: float = 1.0) -> float:  # fmt: skip
    """Normalised cost (as :func:`min_dcf`) of accepting ``llr >= bayes_threshold(...)``."""
    tar, non = split_trials(y_true, llrs)
    t = bayes_threshold(p_target, c_miss, c_fa)
    p_miss, p_fa = float(np.mean(tar < t)), float(np.mean(non >= t))
    cost = c_miss * p_target * p_miss + c_fa * (1.0 - p_target) * p_fa
    return cost / min(c_miss * p_target, c_fa * (1.0 - p_target))


def fit_calibration(y_true: Sequence[int], scores: Sequence[float], *, p_target: float = 0.5
                    ) -> tuple[float, float]:  # fmt: skip
    """``(a, b)`` of ``llr = a * score + b`` minimising the cross-entropy at the prior
    ``p_target`` (BOSARIS ``train_linear_calibration``). CalibrationWarning when all scores
    are equal (``a = b = 0``) or separate the trials (a tiny ridge keeps ``a`` finite)."""
    check_dcf_costs(p_target, 1.0, 1.0)
    tar, non = split_trials(y_true, scores)
    s = np.concatenate([tar, non])
    mu, sd = float(s.mean()), float(s.std())
    if not sd > 0 or mu + sd == mu:
        warnings.warn("calibration: every score is the same, so they carry no information: "
                      "LLR 0 for all", CalibrationWarning, stacklevel=2)  # fmt: skip
        return 0.0, 0.0
    if tar[0] >= non[-1] or non[0] >= tar[-1]:
        warnings.warn("calibration: the scores separate targets from non-targets (or the "
                      "reverse) perfectly, so the logistic fit has no finite optimum; its LLRs "
                      "are overconfident. Calibrate on more (or harder) trials",
                      CalibrationWarning, stacklevel=2)  # fmt: skip
    z = (s - mu) / sd
    y = np.concatenate([np.ones(len(tar)), np.zeros(len(non))])
    w = np.where(y == 1, p_target / len(tar), (1.0 - p_target) / len(non))
    off = _logit(p_target)
    X = np.stack([z, np.ones_like(z)], axis=1)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        m = X @ theta + off
        q = 1.0 / (1.0 + np.exp(-m))  # posterior of target
        f = float(w @ np.where(y == 1, np.logaddexp(0, -m), np.logaddexp(0, m)))
        g = X.T @ (w * (q - y)) + np.array([_RIDGE * theta[0], 0.0])
        H = (X * (w * q * (1 - q))[:, None]).T @ X + np.diag([_RIDGE, 1e-12])
        return f + 0.5 * _RIDGE * theta[0] ** 2, g, H
    theta = newton_minimise(loss, np.zeros(2))
    a = theta[0] / sd
    return float(a), float(theta[1] - a * mu)


def newton_minimise(fun: Callable[[np.ndarray], tuple[float, np.ndarray, np.ndarray]],
                    x0: np.ndarray, *, max_iter: int = 200) -> np.ndarray:  # fmt: skip
    """The minimum (n,) of a smooth convex ``fun`` from ``x0`` (n,), by Newton with backtracking:
    ``fun(x)`` gives the value, gradient (n,) and positive definite Hessian (n, n)."""
    x = np.asarray(x0, dtype=np.float64)
    f, g, H = fun(x)
    for _ in range(max_iter):
        step = np.linalg.solve(H, g)
        t = 1.0
        while t > 1e-10:  # never uphill
            new = x - t * step
            f_new, g_new, H_new = fun(new)
            if f_new <= f:
                break
            t /= 2
        else:
            break
        done = f - f_new <= 1e-14 * max(1.0, abs(f))
        x, f, g, H = new, f_new, g_new, H_new
        if done:
            break
    return x


def apply_calibration(scores: Sequence[float] | np.ndarray, a: float, b: float) -> np.ndarray:
    """LLRs ``a * scores + b`` (float64) from a :func:`fit_calibration` result."""
    return a * np.asarray(scores, dtype=np.float64) + b


def calibrated_threshold(a: float, b: float, p_target: float) -> float | None:
    """The raw score at which the calibrated LLR ``a * score + b`` reaches the Bayes
    threshold of ``p_target`` (:func:`bayes_threshold`); None unless ``a > 0`` (scores that
    do not rise with the target have no such threshold)."""
    return (bayes_threshold(p_target) - b) / a if a > 0 else None
