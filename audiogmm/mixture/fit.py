"""THE orchestration of a fit: :func:`fit_mixtures`. It reads the estimators' public
parameters and sets their fitted attributes; nothing else drives a fit step by step."""

from __future__ import annotations

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
from .init import init_kmeans, init_split
from .mstep import MLMaximiser, global_mean_var
from .sources import StackedSource
from .stats import Params, Stats

if TYPE_CHECKING:
    from .diag import DiagGMM

__all__ = ["fit_mixtures", "frames_per_chunk", "ml_maximiser", "var_floor_of"]


def fit_mixtures(
    models: list[DiagGMM], sources: list[Any], *, executor: LocalExecutor | None = None,
    checkpoint: Any = None, prior: Params | None = None, maximiser: Any = None,
    tick: Callable[[], None] | None = None,
) -> None:  # fmt: skip
    """Fit ``models[c]`` (validated DiagGMMs, in place) on ``sources[c]``.

    Per model: global moments and variance floor, ``n_init`` rounds of (initialise,
    :func:`em.run`), the best round adopted. Several models (a classifier's classes)
    run stacked, each ending exactly as alone (they need ``ArraySource``\\ s without
    weights). ``executor`` default: ``n_jobs`` threads of the first model; ``checkpoint``:
    see :meth:`DiagGMM.fit_source`; ``prior`` (MAP): every model runs ``max_iter``
    iterations of ``maximiser`` from it; ``tick`` is called after each model.
    """
    if not models:
        return
    t0 = time.perf_counter()
    first = models[0]
    if checkpoint is not None and (first.n_init != 1 or len(models) != 1):
        raise ParameterError(
            f"EM checkpoints need one model and n_init=1; got n_init={first.n_init}"
        )
    # classes under one BLAS thread, as when each class ran inside a worker
    blas = one_blas_thread() if len(models) > 1 and prior is None else nullcontext()
    with resolve(executor, first.n_jobs) as ex, blas:
        if prior is not None:
            list(ex.map(lambda c: _adapt(models[c], sources[c], prior, maximiser, ex, tick),
                        range(len(models))))  # fmt: skip
            return
        starts = [_start(m, src) for m, src in zip(models, sources)]
        runs: list[list[em.EMResult]] = [[] for _ in models]
        for _ in range(first.n_init):
            for c, r in enumerate(_one_round(models, sources, starts, ex, checkpoint)):
                runs[c].append(r)
    for m, src, start, rs in zip(models, sources, starts, runs):
        _finish(m, rs, src, *start[1:], t0)
        if tick is not None:
            tick()


def _one_round(models, sources, starts, ex, checkpoint) -> list[em.EMResult]:
    """One ``n_init`` round of every model: initialise, then one :func:`em.run`."""
    first = models[0]
    if len(models) == 1:
        m, src = models[0], sources[0]
        monitor, maximiser = _monitor(m, src), ml_maximiser(m)
        # resume: saved parameters replace the init
        saved = None if checkpoint is None else checkpoint.restore(monitor)
        if saved is None:
            params, init_events = _init_params(m, src, starts[0][0], ex)
        else:
            params, init_events = saved[0], []
        if checkpoint is not None:
            monitor, maximiser = checkpoint.attach(monitor, maximiser, bool(saved and saved[1]))
        res = em.run(
            src, params, maximiser=maximiser, monitor=monitor, executor=ex,
            chunk_size=frames_per_chunk(m),
        )  # fmt: skip
        res.events = init_events + res.events
        return [res]
    if first.init == "split" and first.means_init is None:
        # split growth is EM: its rounds run stacked too
        subs = [_subsample(m, src, st[0]) for m, src, st in zip(models, sources, starts)]
        grown = init_split(
            subs, first.n_components, var_floor=[m.var_floor_ for m in models],
            split_iter=first.split_iter, executor=ex, chunk_size=frames_per_chunk(first),
        )  # fmt: skip
        inits = [(p, []) for p in grown]
    else:  # k-means++ stays per model (its small GEMMs decide labels), in parallel
        inits = list(
            ex.map(lambda c: _init_params(models[c], sources[c], starts[c][0], ex),
                   range(len(models)))
        )  # fmt: skip
    monitor = em.StackedMonitor([_monitor(m, src) for m, src in zip(models, sources)])
    floors = np.stack([m.var_floor_ for m in models])
    maximiser = MLMaximiser(floors, first.min_weight, first.min_count, monitor)
    stacked = StackedSource([src.X for src in sources], monitor.running)
    res = em.run(
        stacked, Params.stack([p for p, _ in inits]), maximiser=maximiser, monitor=monitor,
        executor=ex, chunk_size=frames_per_chunk(first),
    )  # fmt: skip
    out = em.unstack(res)
    for c, r in enumerate(out):
        r.events = inits[c][1] + r.events
    return out


def _adapt(model: DiagGMM, source, prior: Params, maximiser, ex, tick) -> None:
    """MAP: ``max_iter`` iterations of ``maximiser`` from ``prior`` (a fixed budget)."""
    res = em.run(
        source, prior, maximiser=maximiser,
        monitor=em.ConvergenceMonitor(0.0, model.max_iter), executor=ex,
    )  # fmt: skip
    model.weights_, model.means_, model.variances_ = res.params
    model.history_, model.n_iter_ = list(res.history), res.n_iter
    model.converged_ = True  # a fixed number of iterations: done is converged
    model.fit_report_ = {
        "n_frames": int(source.n_frames), "n_iter": res.n_iter,
        "final_mean_loglik": res.final_mean_loglik, "converged": True, "n_reseeded": 0,
    }  # fmt: skip
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


def _global_moments(model: DiagGMM, source) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Global mean and variance from one pass (which also counts the frames), and the
    data's (2, n_dims) extremes in its own dtype (for :func:`compute_dtype`)."""
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
        raise ParameterError(
            f"the data's variance overflows float64 (|x| up to {np.max(np.abs(extremes)):.3g}); "
            "rescale the data"
        )
    return gmean, gvar, extremes


def _subsample(model: DiagGMM, source, rng: np.random.Generator) -> np.ndarray:
    """The random rows initialisation works on, (min(init_max_samples, n), D) float64."""
    m = min(model.init_max_samples, source.n_frames)
    return source.gather(np.sort(rng.choice(source.n_frames, size=m, replace=False)))


def _init_params(
    model: DiagGMM, source, rng: np.random.Generator, executor: LocalExecutor
) -> tuple[Params, list[dict[str, Any]]]:
    K = model.n_components
    Xs = _subsample(model, source, rng)
    if model.means_init is not None:
        return user_init(model, K, Xs.shape[1], Xs), []
    if model.init == "kmeans++":
        return init_kmeans(Xs, K, rng, ml_maximiser(model))
    params = init_split(
        [Xs], K, var_floor=[model.var_floor_], split_iter=model.split_iter,
        executor=executor, chunk_size=frames_per_chunk(model),
    )  # fmt: skip
    return params[0], []


def _start(model: DiagGMM, source) -> tuple:
    """The fit's random stream, global moments and extremes; sets the variance floor."""
    rng = np.random.default_rng(model.random_state)
    gmean, gvar, extremes = _global_moments(model, source)
    zero_dims = np.flatnonzero(gvar <= model.var_floor_abs)
    if zero_dims.size:
        warnings.warn(
            f"X has (near) zero variance in dimension(s) {zero_dims.tolist()[:10]}; "
            f"their variances are set to var_floor_abs={model.var_floor_abs:g}",
            RuntimeWarning,
            stacklevel=5,
        )
    with np.errstate(over="ignore"):
        model.var_floor_ = var_floor_of(model, gvar)
    if not np.all(model.var_floor_ <= MAX_VAR_FLOOR_ABS):
        raise ParameterError(
            f"var_floor={model.var_floor!r} times the data's variance gives floors up to "
            f"{np.max(model.var_floor_):.3g} (limit {MAX_VAR_FLOOR_ABS:g}); lower var_floor"
        )
    return rng, gmean, gvar, extremes


def _monitor(model: DiagGMM, source) -> em.ConvergenceMonitor:
    return em.ConvergenceMonitor(model.tol, model.max_iter, model.verbose,
                                 drop_tol=source.drop_tol, scale=model.var_floor_.shape[0])


def _finish(model: DiagGMM, runs: list[em.EMResult], source, gmean, gvar, extremes, t0) -> None:
    """Adopt the best of the ``n_init`` runs; the fit report; the convergence warning."""
    which = int(np.argmax([r.final_mean_loglik for r in runs]))  # the first on ties
    best = runs[which]
    p = best.params
    try:  # the same checks as save/load: a fit never ends with a model that cannot load
        validate_param_arrays("EM result", p.weights, p.means, p.variances)
    except ModelFileError as e:
        raise ParameterError(
            f"{e}; check means_init/variances_init against the data's scale, or rescale "
            "the data"
        ) from None
    model.weights_, model.means_, model.variances_ = p
    model.history_, model.converged_ = list(best.history), best.converged
    model.n_iter_ = best.n_iter
    model.fit_report_ = {
        "n_frames": int(source.n_frames), "n_dims": int(gvar.shape[0]),
        "n_components": model.n_components, "n_iter": best.n_iter, "converged": best.converged,
        "final_mean_loglik": best.final_mean_loglik, "history": list(best.history),
        "best_init": which, "init_final_mean_logliks": [r.final_mean_loglik for r in runs],
        "reseeded": best.events, "n_reseeded": len(best.events),
        "global_mean_norm": float(np.linalg.norm(gmean)),
        "compute_dtype": np.dtype(compute_dtype(extremes, p.weights, p.means, p.variances)).name,
        "notes": [], "seconds": time.perf_counter() - t0,
    }  # fmt: skip
    if extremes.dtype == np.float32 and model.fit_report_["compute_dtype"] == "float64":
        peak = float(np.max(np.abs(extremes)))
        model.fit_report_["notes"].append(
            f"float32 data computed in float64: its range (|x| up to {peak:.3g}) or a "
            "narrow component would overflow or lose (x - c)**2 / var in float32"
        )
    if not best.converged and model.max_iter > 0:
        warnings.warn(
            f"EM did not converge in max_iter={model.max_iter} iterations "
            f"(tol={model.tol:g}); raise max_iter, loosen tol, or try init='split'",
            ConvergenceWarning,
            stacklevel=5,
        )
