"""THE orchestration of a fit, :func:`fit_mixtures` (it reads the estimators' public parameters
and sets their fitted attributes), and the starting parameters for any K: k-means++ on a
subsample, or split growth from one component (whose rounds run through :func:`em.run` too)."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import numpy as np

from ..engine import LocalExecutor, one_blas_thread, resolve
from ..exceptions import ConvergenceWarning, ModelFileError, ParameterError
from . import em
from .checks import MAX_VAR_FLOOR_ABS, check_enough_frames, user_init, validate_param_arrays
from .estep import auto_chunk_size, compute_dtype
from .mstep import Event, Maximiser, MLMaximiser, global_mean_var, split_component
from .sources import StackedSource, drop_tol
from .stats import Params, Stats

if TYPE_CHECKING:
    from .diag import DiagGMM

__all__ = ["fit_mixtures", "frames_per_chunk", "init_kmeans", "init_split", "kmeans_labels",
           "ml_maximiser", "var_floor_of"]  # fmt: skip


def fit_mixtures(models: list[DiagGMM], sources: list[Any], *,
                 executor: LocalExecutor | None = None, checkpoint: Any = None,
                 prior: Params | None = None, maximiser: Any = None,
                 tick: Callable[[], None] | None = None) -> None:  # fmt: skip
    """Fit ``models[c]`` (validated DiagGMMs, in place) on ``sources[c]``: global moments and
    variance floor, ``n_init`` rounds of (initialise, :func:`em.run`), the best adopted.
    Several models (a classifier's classes; unweighted ``ArraySource``\\ s) run stacked, each
    as alone. ``executor`` default: the first model's ``n_jobs`` threads; ``checkpoint``: see
    :meth:`DiagGMM.fit_source`; ``prior`` (MAP): ``max_iter`` iterations of ``maximiser``
    from it, ``tick`` called after each model."""
    if not models:
        return
    t0 = time.perf_counter()
    first = models[0]
    if checkpoint is not None and (first.n_init != 1 or len(models) != 1):
        raise ParameterError(f"EM checkpoints need one model and n_init=1; got "
                             f"n_init={first.n_init}")  # fmt: skip
    # classes under one BLAS thread, as when each class ran inside a worker
    blas = one_blas_thread() if len(models) > 1 and prior is None else nullcontext()
    with resolve(executor, first.n_jobs) as ex, blas:
        if prior is not None:
            list(ex.map(lambda c: _adapt(models[c], sources[c], prior, maximiser, ex, tick),
                        range(len(models))))  # fmt: skip
            return
        starts = [_start(m, src) for m, src in zip(models, sources)]
        rounds = [_one_round(models, sources, starts, ex, checkpoint) for _ in range(first.n_init)]
    for m, src, start, rs in zip(models, sources, starts, zip(*rounds)):
        _finish(m, rs, src, *start[1:], t0)


def _one_round(models, sources, starts, ex, checkpoint) -> list[em.EMResult]:
    """One ``n_init`` round of every model: initialise, then one :func:`em.run`."""
    first, chunk, one = models[0], frames_per_chunk(models[0]), len(models) == 1
    if one:
        src, monitor, maximiser = sources[0], _monitor(first, sources[0]), ml_maximiser(first)
        saved = None if checkpoint is None else checkpoint.restore(monitor)  # replaces the init
        if checkpoint is not None:
            monitor, maximiser = checkpoint.attach(monitor, maximiser, bool(saved and saved[1]))
    else:
        monitor = em.StackedMonitor([_monitor(m, src) for m, src in zip(models, sources)])
        floors = np.stack([m.var_floor_ for m in models])
        maximiser = MLMaximiser(floors, first.min_weight, first.min_count, monitor)
        src, saved = StackedSource([s.X for s in sources], monitor.running), None
    if saved is None:
        subs = [_subsample(m, s, st[0]) for m, s, st in zip(models, sources, starts)]
    if saved is not None:
        inits = [(saved[0], [])]
    elif first.init == "split" and first.means_init is None:  # split growth is EM: stacked too
        inits = [(p, []) for p in init_split(
            subs, first.n_components, var_floor=[m.var_floor_ for m in models],
            split_iter=first.split_iter, executor=ex, chunk_size=chunk,
        )]  # fmt: skip
    else:  # k-means++ per model (its small GEMMs decide labels), one after another: its many
        # small steps hold the interpreter lock, so on two threads the 46 dev speakers' took
        # 0.29 s against 0.24 s on one; a whole fit now takes 13% less CPU, the same wall time
        with one_blas_thread():  # as inside an executor's map, where it ran before
            inits = [_init_params(models[c], subs[c], starts[c][0]) for c in range(len(models))]
    start = inits[0][0] if one else Params.stack([p for p, _ in inits])
    res = em.run(src, start, maximiser=maximiser, monitor=monitor, executor=ex, chunk_size=chunk)
    out = [res] if one else em.unstack(res)
    for (_, events), r in zip(inits, out):
        r.events = events + r.events
    return out


def _adapt(model: DiagGMM, source, prior: Params, maximiser, ex, tick) -> None:
    """MAP: ``max_iter`` iterations of ``maximiser`` from ``prior`` (a fixed budget)."""
    res = em.run(source, prior, maximiser=maximiser,
                 monitor=em.ConvergenceMonitor(0.0, model.max_iter), executor=ex)  # fmt: skip
    res.converged = True  # a fixed number of iterations: done is converged
    _adopt(model, res, source, n_reseeded=0)
    if tick is not None:
        tick()


def frames_per_chunk(model: DiagGMM) -> int:
    """E-step chunk of ``model``: its ``chunk_size``, or about 1 MB blocks."""
    return model.chunk_size or auto_chunk_size(model.n_components)


def var_floor_of(model: DiagGMM, gvar: np.ndarray) -> np.ndarray:
    """``model``'s absolute variance floor for data of global variance ``gvar``, (n_dims,)."""
    return np.maximum(model.var_floor * gvar, model.var_floor_abs)


def ml_maximiser(model: DiagGMM) -> MLMaximiser:
    """The ML M-step with ``model``'s floors (its ``var_floor_`` must be set)."""
    return MLMaximiser(model.var_floor_, model.min_weight, model.min_count)


def _subsample(model: DiagGMM, source, rng: np.random.Generator) -> np.ndarray:
    """The random rows initialisation works on, (min(init_max_samples, n), D) float64."""
    m = min(model.init_max_samples, source.n_frames)
    return source.gather(np.sort(rng.choice(source.n_frames, size=m, replace=False)))


def _init_params(model: DiagGMM, Xs: np.ndarray, rng) -> tuple[Params, list[Event]]:
    """Starting parameters from ``means_init`` & co. or k-means++ on the subsample ``Xs``."""
    if model.means_init is not None:
        return user_init(model, Xs), []
    return init_kmeans(Xs, model.n_components, rng, ml_maximiser(model))


def _start(model: DiagGMM, source) -> tuple:
    """The fit's random stream, global mean, variance, (2, n_dims) extremes; sets var_floor_."""
    total, lows, highs = None, [], []
    for Xc, sw in source:
        st = Stats.of_frames(Xc, sw, shift=Xc[0] if total is None else total.shift)
        total = st if total is None else total + st
        lows.append(Xc.min(0))
        highs.append(Xc.max(0))
    if total is None:
        raise ParameterError("fit_iter: the chunks hold no frames")
    check_enough_frames(source.n_frames, model.n_components, "the data")
    if not total.n[0] > 0:
        raise ParameterError("sample_weight sums to 0: there is nothing to fit")
    with np.errstate(over="ignore", invalid="ignore"):
        gmean, gvar = global_mean_var(total)
    extremes = np.stack([np.min(lows, 0), np.max(highs, 0)])
    if not (np.isfinite(gmean).all() and np.isfinite(gvar).all()):
        raise ParameterError(f"the data's variance overflows float64 (|x| up to "
                             f"{np.max(np.abs(extremes)):.3g}); rescale the data")  # fmt: skip
    zero_dims = np.flatnonzero(gvar <= model.var_floor_abs)
    if zero_dims.size:
        warnings.warn(f"X has (near) zero variance in dimension(s) {zero_dims.tolist()[:10]}; "
                      f"their variances are set to var_floor_abs={model.var_floor_abs:g}",
                      RuntimeWarning, stacklevel=5)  # fmt: skip
    with np.errstate(over="ignore"):
        model.var_floor_ = var_floor_of(model, gvar)
    if not np.all(model.var_floor_ <= MAX_VAR_FLOOR_ABS):
        raise ParameterError(f"var_floor={model.var_floor!r} times the data's variance gives "
                             f"floors up to {np.max(model.var_floor_):.3g} (limit "
                             f"{MAX_VAR_FLOOR_ABS:g}); lower var_floor")  # fmt: skip
    return np.random.default_rng(model.random_state), gmean, gvar, extremes


def _monitor(model: DiagGMM, source) -> em.ConvergenceMonitor:
    return em.ConvergenceMonitor(model.tol, model.max_iter, model.verbose,
                                 drop_tol=source.drop_tol, scale=model.var_floor_.shape[0])


def _finish(model: DiagGMM, runs: tuple, source, gmean, gvar, extremes, t0) -> None:
    """Adopt the best of the ``n_init`` runs; the fit report; the convergence warning."""
    which = int(np.argmax([r.history[-1] for r in runs]))  # the first on ties
    best = runs[which]
    p = best.params
    try:  # the same checks as save/load: a fit never ends with a model that cannot load
        validate_param_arrays("EM result", p.weights, p.means, p.variances)
    except ModelFileError as e:
        raise ParameterError(f"{e}; check means_init/variances_init against the data's scale, "
                             "or rescale the data") from None  # fmt: skip
    _adopt(
        model, best, source, n_dims=int(gvar.shape[0]), n_components=model.n_components,
        history=list(best.history), best_init=which,
        init_final_mean_logliks=[r.history[-1] for r in runs], reseeded=best.events,
        n_reseeded=len(best.events), global_mean_norm=float(np.linalg.norm(gmean)),
        compute_dtype=np.dtype(compute_dtype(extremes, p.weights, p.means, p.variances)).name,
        notes=[], seconds=time.perf_counter() - t0,
    )  # fmt: skip
    if extremes.dtype == np.float32 and model.fit_report_["compute_dtype"] == "float64":
        peak = float(np.max(np.abs(extremes)))
        model.fit_report_["notes"].append(f"float32 data computed in float64: its range (|x| up "
                                          f"to {peak:.3g}) or a narrow component would overflow "
                                          "or lose (x - c)**2 / var in float32")  # fmt: skip
    if not best.converged and model.max_iter > 0:
        warnings.warn(f"EM did not converge in max_iter={model.max_iter} iterations "
                      f"(tol={model.tol:g}); raise max_iter, loosen tol, or try init='split'",
                      ConvergenceWarning, stacklevel=5)  # fmt: skip


def _adopt(model: DiagGMM, res: em.EMResult, source, **report: Any) -> None:
    """``model``'s fitted attributes from the run ``res``; its fit report, plus ``report``."""
    model.weights_, model.means_, model.variances_ = res.params
    model.history_, model.converged_, model.n_iter_ = list(res.history), res.converged, res.n_iter
    model.fit_report_ = {"n_frames": int(source.n_frames), "n_iter": res.n_iter,
                         "converged": res.converged, "final_mean_loglik": res.history[-1],
                         **report}  # fmt: skip


def _sq_dists(X: np.ndarray, C: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (n, k); ``x2``: the rows' squared norms."""
    d = X @ (-2.0 * C.T)
    d += x2[:, None]
    d += np.einsum("ij,ij->i", C, C)[None, :]
    return np.maximum(d, 0.0, out=d)


def _cluster_means(Z: np.ndarray, lab: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Mean of each cluster (sort + reduceat: no N x K one-hot, no slow ``np.add.at``)."""
    K = centers.shape[0]
    # 16-bit keys sort by radix: the same stable order, 6x faster than int64's merge sort
    order = np.argsort(lab.astype(np.uint16) if K <= 1 << 16 else lab, kind="stable")
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
        cand = np.minimum(np.searchsorted(np.cumsum(closest), rng.random(trials) * pot), n - 1)
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


def init_kmeans(Xs: np.ndarray, K: int, rng: np.random.Generator,
                maximiser: Maximiser) -> tuple[Params, list[Event]]:  # fmt: skip
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


def init_split(subs: list[np.ndarray], K: int, *, var_floor: list[np.ndarray], split_iter: int,
               executor: LocalExecutor | None = None,
               chunk_size: int | None = None) -> list[Params]:  # fmt: skip
    """One mixture per subsample ``subs[c]`` (n, n_dims) float64, grown from one component to
    K by splitting the heaviest ``min(k, K - k)`` (HTK ``MU``) per round, then ``split_iter``
    stacked EM iterations without weight floor or re-seeding; variances >= ``var_floor[c]``."""
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
        res = em.run(StackedSource(subs, monitor.running), Params.stack(members), monitor=monitor,
                     maximiser=MLMaximiser(np.stack(var_floor), 0.0, None, monitor),
                     executor=executor, chunk_size=chunk_size)  # fmt: skip
        members = [r.params for r in em.unstack(res)]
    return members


def _split_heaviest(params: Params, n_split: int) -> Params:
    """``params`` grown by ``n_split`` components, each split off one of the heaviest."""
    k, D = params.means.shape
    order = np.argsort(-params.weights, kind="stable")[:n_split]
    grown = Params(np.concatenate([params.weights, np.zeros(n_split)]),
                   np.concatenate([params.means, np.zeros((n_split, D))]),
                   np.concatenate([params.variances, np.ones((n_split, D))]))  # fmt: skip
    for j, src in enumerate(order):
        split_component(grown, int(src), k + j)
    return grown
