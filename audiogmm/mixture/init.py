"""Starting parameters for any K: k-means++ on a subsample, or split growth from one
component (whose EM rounds run through :func:`audiogmm.mixture.em.run`, like every fit)."""

from __future__ import annotations

import math
from contextlib import nullcontext

import numpy as np

from ..engine import LocalExecutor, one_blas_thread
from . import em
from .mstep import Event, Maximiser, MLMaximiser, split_component
from .sources import StackedSource, drop_tol
from .stats import Params, Stats

__all__ = ["init_kmeans", "init_split", "kmeans_labels"]


def _sq_dists(X: np.ndarray, C: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (n, k); ``x2``: the rows' squared norms."""
    d = X @ (-2.0 * C.T)
    d += x2[:, None]
    d += np.einsum("ij,ij->i", C, C)[None, :]
    return np.maximum(d, 0.0, out=d)


def _cluster_means(Z: np.ndarray, lab: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Mean of each cluster (sort + reduceat: no N x K one-hot, no slow ``np.add.at``)."""
    K = centers.shape[0]
    order = np.argsort(lab, kind="stable")
    counts = np.bincount(lab, minlength=K)
    present = np.flatnonzero(counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[present]
    out = centers.copy()  # an empty cluster keeps its centre
    out[present] = np.add.reduceat(Z[order], starts, axis=0) / counts[present, None]
    return out


def kmeans_labels(X: np.ndarray, K: int, rng: np.random.Generator, n_lloyd: int = 10) -> np.ndarray:
    """Cluster in ``range(K)`` of each row of ``X`` (n, n_dims): k-means++ seeding (greedy,
    2 + log K trials), then up to ``n_lloyd`` Lloyd steps, in standardised space."""
    n = X.shape[0]
    scale = X.std(0)
    scale[scale == 0] = 1.0
    Z = (X - X.mean(0)) / scale
    z2 = np.einsum("ij,ij->i", Z, Z)
    centers = np.empty((K, X.shape[1]))
    centers[0] = Z[rng.integers(n)]
    closest = _sq_dists(Z, centers[:1], z2)[:, 0]
    trials = 2 + int(math.log(K))
    for k in range(1, K):
        pot = closest.sum()
        if pot <= 0:
            centers[k:] = Z[rng.integers(n, size=K - k)]
            break
        cand = np.searchsorted(np.cumsum(closest), rng.random(trials) * pot)
        cand = np.minimum(cand, n - 1)
        d = np.minimum(closest[None, :], _sq_dists(Z, Z[cand], z2).T)
        best = int(np.argmin(d.sum(1)))
        centers[k] = Z[cand[best]]
        closest = d[best]
    lab = _sq_dists(Z, centers, z2).argmin(1)
    for _ in range(n_lloyd):
        centers = _cluster_means(Z, lab, centers)
        new = _sq_dists(Z, centers, z2).argmin(1)
        if np.array_equal(new, lab):
            break
        lab = new
    return lab


def init_kmeans(
    Xs: np.ndarray, K: int, rng: np.random.Generator, maximiser: Maximiser
) -> tuple[Params, list[Event]]:
    """Parameters from hard k-means clusters of the subsample ``Xs`` and one M-step, and the
    maximiser's re-seeding events (empty clusters) at iteration 0."""
    # small products run faster on one BLAS thread than on a waking pool
    with one_blas_thread() if Xs.shape[0] * K * Xs.shape[1] < 50_000_000 else nullcontext():
        labels = kmeans_labels(Xs, K, rng)
    resp = np.zeros((Xs.shape[0], K))
    resp[np.arange(Xs.shape[0]), labels] = 1.0
    shift = Xs.mean(0)
    Xc = Xs - shift
    st = Stats(resp.sum(0), resp.T @ Xc, resp.T @ Xc**2, 0.0, float(Xs.shape[0]), shift)
    params, events = maximiser(st, None)
    for e in events:
        e["iteration"] = 0
    return params, events


def init_split(
    subs: list[np.ndarray], K: int, *, var_floor: list[np.ndarray], split_iter: int,
    executor: LocalExecutor | None = None, chunk_size: int | None = None,
) -> list[Params]:  # fmt: skip
    """One mixture per subsample ``subs[c]`` (n, n_dims) float64, grown from one component
    to K by splitting the heaviest ones (HTK ``MU``), variances >= ``var_floor[c]``.

    Each round splits ``min(k, K - k)`` components, then runs ``split_iter`` EM iterations
    (no weight floor, no re-seeding) in one stacked :func:`em.run` (each grows as alone).
    """
    members = [
        Params(np.ones(1), X.mean(0, keepdims=True), np.maximum(X.var(0, keepdims=True), f))
        for X, f in zip(subs, var_floor)
    ]
    while (k := members[0].n_components) < K:
        members = [_split_heaviest(p, min(k, K - k)) for p in members]
        monitor = em.StackedMonitor([  # tol=0: exactly split_iter iterations per round
            em.ConvergenceMonitor(0.0, split_iter, drop_tol=drop_tol(X), scale=X.shape[1])
            for X in subs
        ])  # fmt: skip
        res = em.run(
            StackedSource(subs, monitor.running), Params.stack(members), monitor=monitor,
            maximiser=MLMaximiser(np.stack(var_floor), 0.0, None, monitor),
            executor=executor, chunk_size=chunk_size,
        )  # fmt: skip
        members = [r.params for r in em.unstack(res)]
    return members


def _split_heaviest(params: Params, n_split: int) -> Params:
    """``params`` grown by ``n_split`` components, each split off one of the heaviest."""
    k, D = params.means.shape
    order = np.argsort(-params.weights, kind="stable")[:n_split]
    grown = Params(
        np.concatenate([params.weights, np.zeros(n_split)]),
        np.concatenate([params.means, np.zeros((n_split, D))]),
        np.concatenate([params.variances, np.ones((n_split, D))]),
    )
    for j, src in enumerate(order):
        split_component(grown, int(src), k + j)
    return grown
