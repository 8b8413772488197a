"""Calibrated verification scores: linear logistic calibration, Cllr, minCllr, actDCF.

BOSARIS conventions (Brümmer & de Villiers 2011): a calibrated score is a natural-log
likelihood ratio ``llr = log p(s | target) / p(s | non-target)``. ``Cllr - minCllr`` (the
Cllr after the best monotone recalibration, by PAV) is the calibration loss; ``actDCF`` is
the cost of the Bayes decisions the LLRs make as they are, beside minDCF.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from .verification import check_dcf_costs, split_trials

__all__ = ["CalibrationWarning", "act_dcf", "apply_calibration", "bayes_threshold", "cllr",
           "fit_calibration", "min_cllr", "newton_minimise", "pav"]  # fmt: skip

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
    """Log-likelihood-ratio cost (bits, >= 0) of natural-log LLRs (n_trials,) taken as they
    are (trials as in :mod:`.verification`): 0 for perfect LLRs, 1 for ``llr = 0``."""
    return _costs(*split_trials(y_true, llrs))


def pav(y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Isotonic (non-decreasing) least-squares fit (n,) of ``y`` (n,) in its given order, with
    optional ``weights`` (n,) > 0, by PAV: the weighted means of the pooled blocks."""
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
    """Cllr (bits, in [0, 1]; 0 for separating scores) after the optimal monotone
    recalibration of the scores: PAV on the target indicator of the distinct scores (ties
    pooled) gives each block's posterior, whose log odds less the prior's are the LLRs."""
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
    """Normalised detection cost (as :func:`~audiogmm.scoring.verification.min_dcf`) of the
    Bayes decisions of LLRs: accept ``llr >= threshold`` (:func:`bayes_threshold`)."""
    tar, non = split_trials(y_true, llrs)
    t = bayes_threshold(p_target, c_miss, c_fa)
    p_miss, p_fa = float(np.mean(tar < t)), float(np.mean(non >= t))
    cost = c_miss * p_target * p_miss + c_fa * (1.0 - p_target) * p_fa
    return cost / min(c_miss * p_target, c_fa * (1.0 - p_target))


def fit_calibration(y_true: Sequence[int], scores: Sequence[float], *, p_target: float = 0.5
                    ) -> tuple[float, float]:  # fmt: skip
    """Linear logistic calibration ``llr = a * score + b``: the finite ``(a, b)`` minimising
    the cross-entropy weighted to the prior ``p_target`` (BOSARIS ``train_linear_calibration``)
    by Newton's method on standardised scores. A CalibrationWarning says when all are equal
    (``a = b = 0``) or separate the trials (no finite optimum: a tiny ridge on the slope
    bounds the LLRs, overconfident on new trials).
    """
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
    """Minimise a smooth convex function by Newton's method with backtracking, from ``x0`` (n,):
    ``fun(x)`` returns the value, gradient (n,) and positive definite Hessian (n, n). Returns
    the point (n,) where no step lowers the value by more than 1e-14 of it (never uphill)."""
    x = np.asarray(x0, dtype=np.float64)
    f, g, H = fun(x)
    for _ in range(max_iter):
        step = np.linalg.solve(H, g)
        t = 1.0
        while t > 1e-10:  # backtracking: Newton on a convex loss, never uphill
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
