"""The maximum-likelihood M-step: parameters from statistics, floors, and re-seeding.

A maximiser ``(stats, params) -> (new_params, events)`` reads only its arguments, keeps no
state and reports what it did as event dicts: :class:`MLMaximiser` here, MAP in :mod:`.map`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .stats import Params, Stats, moments

__all__ = [
    "Maximiser", "MLMaximiser", "floor_weights", "global_mean_var",
    "maximise", "maximise_stack", "reseed", "split_component",
]  # fmt: skip

logger = logging.getLogger(__name__)

Event = dict[str, Any]


class Maximiser(Protocol):
    """``maximiser(stats, params) -> (new_params, events)``; pure, no state kept."""

    def __call__(self, stats: Stats, params: Params) -> tuple[Params, list[Event]]: ...


def global_mean_var(stats: Stats) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of the data as a whole, each (n_dims,), from any statistics."""
    mean, var = stats.pooled().mean_var()
    return mean[0], var[0]


def floor_weights(w: np.ndarray, min_weight: float) -> np.ndarray:
    """Closest weights to ``w`` (K,) with every entry >= ``min_weight`` (capped at 1/K), by
    water-filling: clamp the small ones, share the rest in proportion, until stable."""
    K = w.shape[0]
    min_weight = min(min_weight, 1.0 / K)
    clamped = np.zeros(K, dtype=bool)
    out = w.copy()
    for _ in range(K):
        free_mass = 1.0 - min_weight * clamped.sum()
        tot = w[~clamped].sum()
        out = np.where(clamped, min_weight, w * (free_mass / tot) if tot > 0 else min_weight)
        newly = (out < min_weight) & ~clamped
        if not newly.any():
            break
        clamped |= newly
    return out / out.sum()


def maximise(
    stats: Stats, *, var_floor: np.ndarray | float = 0.0, min_weight: float = 0.0
) -> Params:
    """ML parameters of one mixture from statistics, variances >= ``var_floor`` (float or
    (n_dims,)), weights >= ``min_weight``; an empty component gets the global moments."""
    n = stats.n
    means, var = stats.mean_var()
    empty = n <= 0
    if empty.any():
        gmean, gvar = global_mean_var(stats)
        means[empty] = gmean
        var[empty] = gvar
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
        logger.info(
            "component %d had occupancy %.3g < %.3g; re-seeded by splitting component %d",
            k, stats.n[k], thr, src,
        )  # fmt: skip
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
    variances (R, K, n_dims), and R lists of re-seed events.
    """
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
        w, m, v, evs = maximise_stack(
            n[live], F[live], S[live], shift[live], nf[live], var_floor=floor[live],
            min_weight=self.min_weight, min_count=self.min_count,
        )  # fmt: skip
        if one:
            return Params(w[0], m[0], v[0]), evs[0]
        out = params.copy()
        out.weights[live], out.means[live], out.variances[live] = w, m, v
        events: list[Event] = []
        for c, ev in zip(live, evs):
            for e in ev:
                e["member"] = int(c)
                e["iteration"] = len(self.monitor.monitors[c].history)
            events += ev
        return out, events
