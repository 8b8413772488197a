"""MAP adaptation (Reynolds, Quatieri & Dunn 2000): the UBM moved towards a class's data.

With occupancy ``n_k``, ``T = sum_k n_k``, ``alpha_k = n_k / (n_k + r)`` (a relevance ``r``
per kind), ``E_k[x] = F_k / n_k``, ``E_k[x**2] = S_k / n_k``::

    w_k'   = [alpha_k n_k / T + (1 - alpha_k) w_k] * gamma       (gamma: sum to 1)
    mu_k'  = alpha_k E_k[x] + (1 - alpha_k) mu_k
    var_k' = alpha_k E_k[x**2] + (1 - alpha_k) (var_k + mu_k**2) - mu_k'**2

(bob.learn.em omits the square of ``mu_k``, a known error), about the statistics' shift
(shift-invariant), so offsets do not cancel; a component without data keeps the prior bit
for bit. Over several iterations the E-step follows the adapted model, the prior stays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..exceptions import ParameterError
from .checks import is_real
from .mstep import Event, floor_weights
from .stats import Params, Stats

__all__ = ["MAPMaximiser", "check_adapt", "map_adapt"]


def check_adapt(adapt: str) -> str:
    """``adapt`` validated, in canonical ``m``, ``w``, ``v`` order."""
    ok = isinstance(adapt, str) and adapt and not set(adapt) - set("mwv")
    if not ok or len(set(adapt)) != len(adapt):
        raise ParameterError(
            f"adapt must be a non-empty combination of 'm', 'w', 'v' (e.g. 'm', 'mw', 'mwv'); "
            f"got {adapt!r}"
        )
    return "".join(c for c in "mwv" if c in adapt)


def _check_relevance(name: str, r: float) -> float:
    if not (is_real(r, finite=False) and r >= 0):  # (NaN and -inf fail r >= 0)
        raise ParameterError(f"{name} must be a number >= 0 (inf keeps the prior); got {r!r}")
    return float(r)


def _alpha(n: np.ndarray, r: float) -> np.ndarray:
    """``n / (n + r)``, 0 where ``n == 0`` (also for ``r == 0``), 0 for ``r = inf``."""
    if r == math.inf:
        return np.zeros_like(n)
    with np.errstate(divide="ignore", invalid="ignore"):  # n = 0 (and r = 0): no data, alpha 0
        a = n / (n + r)
    return np.where(n > 0, a, 0.0)


def map_adapt(
    stats: Stats, prior: Params, *, adapt: str = "m", relevance_means: float = 16.0,
    relevance_weights: float = 16.0, relevance_variances: float = 16.0,
    var_floor: np.ndarray | float = 0.0, min_weight: float = 0.0,
) -> Params:  # fmt: skip
    """MAP-adapted parameters (new arrays) from statistics and a prior of the same (K, D).

    ``adapt``: the kinds that move (``m``, ``w``, ``v``), each with a relevance ``r >= 0``
    (0: ML wherever there is data; inf: the prior). Adapted variances are floored at
    ``var_floor`` (float or (n_dims,)), adapted weights at ``min_weight``.
    """
    if stats.F.shape != prior.means.shape:
        raise ParameterError(
            f"statistics of shape (K, D)={stats.F.shape} do not match the prior's "
            f"{prior.means.shape}"
        )
    adapt = check_adapt(adapt)
    n = stats.n
    c = stats.shift
    with np.errstate(divide="ignore", invalid="ignore"):  # n = 0 rows are replaced below
        ex = stats.F / n[:, None]  # E[x - c]
        ex2 = stats.S / n[:, None]  # E[(x - c)**2]
    weights, means, variances = prior.weights.copy(), prior.means.copy(), prior.variances.copy()
    if "m" in adapt:
        a = _alpha(n, _check_relevance("relevance_means", relevance_means))[:, None]
        new = c + (a * ex + (1.0 - a) * (prior.means - c))
        means = np.where(a > 0, new, prior.means)
    if "v" in adapt:
        a = _alpha(n, _check_relevance("relevance_variances", relevance_variances))[:, None]
        mp, mn = prior.means - c, means - c
        new = a * ex2 + (1.0 - a) * (prior.variances + mp**2) - mn**2
        new = np.maximum(new, var_floor)
        variances = np.where(a > 0, new, prior.variances)
    if "w" in adapt:
        a = _alpha(n, _check_relevance("relevance_weights", relevance_weights))
        T = n.sum()
        if T > 0 and np.any(a > 0):  # else nothing moves: keep the prior bit for bit
            w = a * (n / T) + (1.0 - a) * prior.weights
            weights = floor_weights(w / w.sum(), min_weight) if min_weight > 0 else w / w.sum()
    return Params(weights, means, variances)


@dataclass(frozen=True)
class MAPMaximiser:
    """:func:`map_adapt` towards a fixed ``prior`` as a maximiser for :func:`em.run` (the
    current ``params`` only made the E-step); the fields are ``map_adapt``'s arguments."""

    prior: Params
    adapt: str = "m"
    relevance_means: float = 16.0
    relevance_weights: float = 16.0
    relevance_variances: float = 16.0
    var_floor: np.ndarray | float = 0.0
    min_weight: float = 0.0

    def __call__(self, stats: Stats, params: Params | None) -> tuple[Params, list[Event]]:
        return map_adapt(stats, **vars(self)), []
