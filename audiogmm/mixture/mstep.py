"""The M-steps, maximisers ``(stats, params) -> (new_params, events)`` (pure, events as dicts):
:class:`MLMaximiser` (ML, floors, re-seeding) and :class:`MAPMaximiser` (Reynolds et al. 2000,
the UBM moved towards a class's data). With ``alpha_k = n_k / (n_k + r)``, ``T = sum_k n_k``::

    w_k'   = [alpha_k n_k / T + (1 - alpha_k) w_k] * gamma       (gamma: sum to 1)
    mu_k'  = alpha_k F_k / n_k + (1 - alpha_k) mu_k
    var_k' = alpha_k S_k / n_k + (1 - alpha_k) (var_k + mu_k**2) - mu_k'**2

about the statistics' shift (bob.learn.em omits the square of ``mu_k``); a component without
data keeps the prior bit for bit. Over several iterations the prior stays the UBM."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..exceptions import ParameterError
from .checks import is_real
from .stats import Params, Stats, moments

__all__ = ["MAPMaximiser", "Maximiser", "MLMaximiser", "check_adapt", "floor_weights",
           "global_mean_var", "map_adapt", "maximise", "maximise_stack", "reseed",
           "split_component"]  # fmt: skip

logger = logging.getLogger(__name__)

Event = dict[str, Any]
#: ``maximiser(stats, params) -> (new_params, events)``; pure, no state kept.
Maximiser = Callable[[Stats, Params], tuple[Params, list[Event]]]


def global_mean_var(stats: Stats) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of the data as a whole, each (n_dims,), from any statistics."""
    F, S = stats.F.sum(0, keepdims=True), stats.S.sum(0, keepdims=True)
    return tuple(a[0] for a in moments(stats.n.sum(keepdims=True), F, S, stats.shift))


def floor_weights(w: np.ndarray, min_weight: float) -> np.ndarray:
    """Closest weights to ``w`` (K,) with every entry >= ``min_weight`` (capped at 1/K), by
    water-filling: clamp the small ones, share the rest in proportion, until stable."""
    K = w.shape[0]
    min_weight = min(min_weight, 1.0 / K)
    clamped = np.zeros(K, dtype=bool)
    for _ in range(K):
        free_mass = 1.0 - min_weight * clamped.sum()
        tot = w[~clamped].sum()
        out = np.where(clamped, min_weight, w * (free_mass / tot) if tot > 0 else min_weight)
        newly = (out < min_weight) & ~clamped
        if not newly.any():
            break
        clamped |= newly
    return out / out.sum()


def maximise(stats: Stats, *, var_floor: np.ndarray | float = 0.0,
             min_weight: float = 0.0) -> Params:  # fmt: skip
    """ML parameters of one mixture from statistics, variances >= ``var_floor`` (float or
    (n_dims,)), weights >= ``min_weight``; an empty component gets the global moments."""
    n = stats.n
    means, var = stats.mean_var()
    empty = n <= 0
    if empty.any():
        means[empty], var[empty] = global_mean_var(stats)
    variances = np.maximum(var, var_floor)
    weights = floor_weights(n / n.sum(), min_weight)
    return Params(weights, means, variances)


def split_component(params: Params, src: int, dst: int) -> None:
    """HTK ``MU``, in place: halve ``src``'s weight into ``dst``, means apart by +-0.2 sigma."""
    w, m, v = params.weights, params.means, params.variances
    d = 0.2 * np.sqrt(v[src])
    w[src] *= 0.5
    w[dst] = w[src]
    m[dst] = m[src] + d
    m[src] = m[src] - d
    v[dst] = v[src]


def reseed(params: Params, stats: Stats, min_count: float) -> tuple[Params, list[Event]]:
    """Components of occupancy below ``min(min_count, n_frames / (2 K))`` replaced by half
    of the heaviest strong one (logged); new parameters and one ``{component, occupancy,
    split_from}`` event each."""
    K = params.n_components
    thr = min(min_count, 0.5 * stats.n_frames / K)
    weak = [int(k) for k in np.flatnonzero(stats.n < thr)]
    if not weak or len(weak) == K:
        return params, []
    out = params.copy()
    strong = np.ones(K, dtype=bool)
    strong[weak] = False
    events = []
    for k in weak:
        src = int(np.flatnonzero(strong)[np.argmax(out.weights[strong])])
        split_component(out, src, k)
        strong[k] = True
        events.append({"component": k, "occupancy": float(stats.n[k]), "split_from": src})
        logger.info("component %d had occupancy %.3g < %.3g; re-seeded by splitting component %d",
                    k, stats.n[k], thr, src)  # fmt: skip
    out.weights = out.weights / out.weights.sum()
    return out, events


def maximise_stack(
    n: np.ndarray, F: np.ndarray, S: np.ndarray, shift: np.ndarray, n_frames: np.ndarray, *,
    var_floor: np.ndarray, min_weight: float = 0.0, min_count: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[list[Event]]]:  # fmt: skip
    """THE ML M-step, for R mixtures at once: array arithmetic over the stack, except for a
    mixture with an empty component, a weight to floor or one to re-seed (:func:`maximise`,
    :func:`reseed`). ``n`` (R, K), ``F``/``S`` (R, K, n_dims) about ``shift`` (R, n_dims),
    ``n_frames`` (R,), ``var_floor`` (R, n_dims). Returns weights (R, K), means and
    variances (R, K, n_dims), and R lists of re-seed events."""
    K = n.shape[1]
    means, var = moments(n, F, S, shift)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = n / n.sum(1, keepdims=True)
        fw = w * (1.0 / w.sum(1, keepdims=True))  # floor_weights() when nothing is clamped
    special = (n <= 0).any(1) | (fw < min(min_weight, 1.0 / K)).any(1)
    if min_count is not None:
        thr = np.minimum(min_count, 0.5 * n_frames / K)
        weak = (n < thr[:, None]).sum(1)
        special |= (weak > 0) & (weak < K)
    weights = fw / fw.sum(1, keepdims=True)
    variances = np.maximum(var, var_floor[:, None, :])
    events: list[list[Event]] = [[] for _ in range(n.shape[0])]
    for r in np.flatnonzero(special):
        st = Stats(n[r], F[r], S[r], 0.0, float(n_frames[r]), shift[r])
        p = maximise(st, var_floor=var_floor[r], min_weight=min_weight)
        if min_count is not None:
            p, events[r] = reseed(p, st, min_count)
        weights[r], means[r], variances[r] = p
    return weights, means, variances, events


@dataclass(frozen=True)
class MLMaximiser:
    """THE ML M-step as a maximiser: ``var_floor`` (n_dims,), ``min_weight``, re-seeding
    below ``min_count`` (None: off). For a stack ``var_floor`` is (n_members, n_dims) and
    ``monitor``, the run's StackedMonitor, says which members to update."""

    var_floor: np.ndarray
    min_weight: float = 0.0
    min_count: float | None = None
    monitor: Any = None

    def __call__(self, stats: Stats, params: Params) -> tuple[Params, list[Event]]:
        one = self.monitor is None  # one mixture: a stack of one
        n, F, S, shift, nf = (
            np.asarray(a)[None] if one else a
            for a in (stats.n, stats.F, stats.S, stats.shift, stats.n_frames)
        )  # fmt: skip
        floor = np.broadcast_to(np.asarray(self.var_floor, dtype=np.float64), shift.shape)
        live = np.flatnonzero(self.monitor.running) if not one else [0]
        w, m, v, evs = maximise_stack(n[live], F[live], S[live], shift[live], nf[live],
                                      var_floor=floor[live], min_weight=self.min_weight,
                                      min_count=self.min_count)  # fmt: skip
        if one:
            return Params(w[0], m[0], v[0]), evs[0]
        out = params.copy()
        out.weights[live], out.means[live], out.variances[live] = w, m, v
        hist = [len(m.history) for m in self.monitor.monitors]
        return out, [{**e, "member": int(c), "iteration": hist[c]}
                     for c, ev in zip(live, evs) for e in ev]  # fmt: skip


def check_adapt(adapt: str) -> str:
    """``adapt`` validated, in canonical ``m``, ``w``, ``v`` order."""
    ok = isinstance(adapt, str) and adapt and not set(adapt) - set("mwv")
    if not ok or len(set(adapt)) != len(adapt):
        raise ParameterError("adapt must be a non-empty combination of 'm', 'w', 'v' "
                             f"(e.g. 'm', 'mw', 'mwv'); got {adapt!r}")  # fmt: skip
    return "".join(c for c in "mwv" if c in adapt)


def _alpha(n: np.ndarray, name: str, r: float) -> np.ndarray:
    """``n / (n + r)`` for relevance ``r`` (argument ``name``, checked); 0 if n = 0 or r = inf."""
    if not (is_real(r, finite=False) and r >= 0):  # (NaN and -inf fail r >= 0)
        raise ParameterError(f"{name} must be a number >= 0 (inf keeps the prior); got {r!r}")
    if r == math.inf:
        return np.zeros_like(n)
    with np.errstate(divide="ignore", invalid="ignore"):  # n = 0 (and r = 0): no data, alpha 0
        a = n / (n + float(r))
    return np.where(n > 0, a, 0.0)


def map_adapt(stats: Stats, prior: Params, *, adapt: str = "m", relevance_means: float = 16.0,
              relevance_weights: float = 16.0, relevance_variances: float = 16.0,
              var_floor: np.ndarray | float = 0.0, min_weight: float = 0.0) -> Params:  # fmt: skip
    """MAP-adapted parameters (new arrays) from statistics and a prior of the same (K, D).

    ``adapt``: the kinds that move (``m``, ``w``, ``v``), each with a relevance ``r >= 0``
    (0: ML wherever there is data; inf: the prior). Adapted variances are floored at
    ``var_floor`` (float or (n_dims,)), adapted weights at ``min_weight``."""
    if stats.F.shape != prior.means.shape:
        raise ParameterError(f"statistics of shape (K, D)={stats.F.shape} do not match the "
                             f"prior's {prior.means.shape}")  # fmt: skip
    adapt = check_adapt(adapt)
    n, c = stats.n, stats.shift
    with np.errstate(divide="ignore", invalid="ignore"):  # n = 0 rows are replaced below
        ex = stats.F / n[:, None]  # E[x - c]
        ex2 = stats.S / n[:, None]  # E[(x - c)**2]
    weights, means, variances = prior.weights.copy(), prior.means.copy(), prior.variances.copy()
    if "m" in adapt:
        a = _alpha(n, "relevance_means", relevance_means)[:, None]
        new = c + (a * ex + (1.0 - a) * (prior.means - c))
        means = np.where(a > 0, new, prior.means)
    if "v" in adapt:
        a = _alpha(n, "relevance_variances", relevance_variances)[:, None]
        mp, mn = prior.means - c, means - c
        new = np.maximum(a * ex2 + (1.0 - a) * (prior.variances + mp**2) - mn**2, var_floor)
        variances = np.where(a > 0, new, prior.variances)
    if "w" in adapt:
        a = _alpha(n, "relevance_weights", relevance_weights)
        T = n.sum()
        if T > 0 and np.any(a > 0):  # else nothing moves: keep the prior bit for bit
            w = a * (n / T) + (1.0 - a) * prior.weights
            weights = floor_weights(w / w.sum(), min_weight) if min_weight > 0 else w / w.sum()
    return Params(weights, means, variances)


class MAPMaximiser:
    """:func:`map_adapt` towards a fixed ``prior`` as a maximiser for :func:`em.run` (the
    current ``params`` only made the E-step); ``options``: ``map_adapt``'s keywords."""

    def __init__(self, prior: Params, **options: Any) -> None:
        self.prior, self.options = prior, options

    def __call__(self, stats: Stats, params: Params | None) -> tuple[Params, list[Event]]:
        return map_adapt(stats, self.prior, **self.options), []
