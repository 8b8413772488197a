"""The maximum-likelihood M-step: parameters from statistics, floors, and re-seeding.

A maximiser is a callable ``maximiser(stats, params) -> (new_params, events)``: it
reads only the statistics (and the current parameters), keeps no state, and reports
what it did as event dicts. :class:`MLMaximiser` is the ML one (for one mixture or a
stack); MAP adaptation is another (:mod:`.map`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .params import Params
from .stats import Stats, moments

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
    """Closest weights to ``w`` (K,) (max-likelihood sense) with every entry >= ``min_weight``.

    Water-filling: clamp the small ones to the floor (capped at 1/K) and share the
    remaining mass among the others in proportion to their counts, until stable.
    """
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
    """M-step of one mixture: ML parameters from statistics, variances >= ``var_floor``
    (float or (n_dims,)), weights >= ``min_weight`` (:func:`floor_weights`).

    A component with zero occupancy gets the global mean and variance; :func:`reseed`
    moves it.
    """
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
    """Re-seed under-occupied components by splitting the heaviest one (logged).

    A component whose occupancy is below ``min(min_count, n_frames / (2 K))`` is
    replaced by half of the heaviest strong component (:func:`split_component`).
    Returns new parameters and one ``{component, occupancy, split_from}`` event each.
    """
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
    """THE ML M-step, for R mixtures at once (a single mixture is a stack of one).

    The common case (no empty component, no weight to floor, nothing to re-seed)
    is array arithmetic over the stack; a mixture that needs more goes through
    :func:`maximise` and :func:`reseed` on its own. ``n`` (R, K), ``F``/``S`` (R, K,
    n_dims) about ``shift`` (R, n_dims), ``n_frames`` (R,), ``var_floor`` (R, n_dims);
    ``min_weight``/``min_count`` as for :class:`MLMaximiser`. Returns weights (R, K),
    means and variances (R, K, n_dims), and R lists of re-seed events.
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
    """THE ML M-step as a maximiser: absolute ``var_floor``, ``min_weight`` floor, and
    re-seeding below ``min_count`` (:func:`reseed`; None turns it off).

    For one mixture ``var_floor`` is (n_dims,). For a stack (statistics with a leading
    axis) it is (n_members, n_dims) and ``monitor``, the run's StackedMonitor, says which
    members still run (only those are updated) and numbers each member's events by its
    own iteration.
    """

    var_floor: np.ndarray
    min_weight: float = 0.0
    min_count: float | None = None
    monitor: Any = None

    def __call__(self, stats: Stats, params: Params) -> tuple[Params, list[Event]]:
        if self.monitor is None:  # one mixture: a stack of one
            floor = np.broadcast_to(np.asarray(self.var_floor, dtype=np.float64), stats.shift.shape)
            w, m, v, events = maximise_stack(
                stats.n[None], stats.F[None], stats.S[None], stats.shift[None],
                np.array([stats.n_frames]), var_floor=floor[None],
                min_weight=self.min_weight, min_count=self.min_count,
            )  # fmt: skip
            return Params(w[0], m[0], v[0]), events[0]
        out = params.copy()
        live = np.flatnonzero(self.monitor.running)
        w, m, v, evs = maximise_stack(
            stats.n[live], stats.F[live], stats.S[live], stats.shift[live],
            stats.n_frames[live], var_floor=self.var_floor[live],
            min_weight=self.min_weight, min_count=self.min_count,
        )  # fmt: skip
        out.weights[live], out.means[live], out.variances[live] = w, m, v
        events: list[Event] = []
        for c, ev in zip(live, evs):
            for e in ev:
                e["member"] = int(c)
                e["iteration"] = len(self.monitor.monitors[c].history)
            events += ev
        return out, events
