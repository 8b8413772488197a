"""Benchmark: seconds per EM iteration, audiogmm.DiagGMM vs sklearn GaussianMixture.

What is measured, for (N, D, K) = (200k, 39, 64), (200k, 60, 256), (1M, 39, 64):

* Both implementations start from the *same* parameters (K random frames as
  means, the global variance, uniform weights) on the same clustered data (drawn
  from a random 64-component mixture) and run a fixed number n of EM iterations
  (n = 11, or 4 for the two slow shapes; ``tol=0``; no floors and no re-seeding in
  audiogmm; ``reg_covar=1e-6`` and ``init_params="random_from_data"`` in
  scikit-learn, whose k-means would otherwise run even when all ``*_init``
  parameters are given -- the given parameters override its result).
* Two per-iteration estimates, both medians over ``--repeats`` interleaved runs:

  - ``fit``: (t_n - t_1) / (n - 1) from a 1-iteration and an n-iteration ``fit``
    (set-up costs and the final E-step cancel out);
  - ``step`` (the headline, robust to bursts of machine noise): the median of the
    individual iteration times -- scikit-learn's own per-iteration "time lapse"
    (``verbose=2``, iterations 2..n) and, for audiogmm, the wall time of
    ``audiogmm.mixture.accumulate`` + ``maximise`` (exactly one EM iteration of ``fit``).
* audiogmm runs on float32 (its intended mode); scikit-learn is timed on float64
  (its default) and float32 at the first shape; the faster is used for the ratio
  and for the other shapes (column ``sk dtype``). scikit-learn in float32 may give
  up ("ill-defined empirical covariance"); float64 is then used and that is printed.
* The floor: the two bare float32 GEMMs of that shape, ``[x^2, x, 1] (N, 2D+1) @
  (2D+1, K)`` and ``gamma.T (K, N) @ (N, 2D+1)`` (default BLAS threads).
* Accuracy: both n-iteration models are scored on the data in float64 with one
  scorer (:func:`audiogmm.mixture.log_likelihood`); their mean log-likelihoods must
  agree within 1e-4 relative.

Run::

    python benchmarks/bench_em.py                # full run (~4 min on 2 cores)
    python benchmarks/bench_em.py --quick        # smoke run
    python benchmarks/bench_em.py --json-out results.jsonl

``speedup`` = sklearn time / audiogmm time; ``x floor`` = audiogmm time / floor.
"""

from __future__ import annotations

import contextlib
import io
import re
import statistics
import time

import numpy as np
from _common import (
    clustered_data,
    emit,
    initial_params,
    median_time,
    parse_args,
    quiet_warnings,
    rnd,
    table,
)

FULL = [((200_000, 39, 64), 11), ((200_000, 60, 256), 4), ((1_000_000, 39, 64), 4)]
QUICK = [((20_000, 39, 64), 5), ((50_000, 60, 256), 3), ((50_000, 39, 64), 3)]
VAR_FLOOR_ABS = 1e-8  # DiagGMM's default absolute floor, in force with var_floor=0
_LAPSE = re.compile(r"Iteration (\d+)\s+time lapse ([0-9.]+)s")


class SklearnFitError(RuntimeError):
    """scikit-learn gave up (in float32 it can: "ill-defined empirical covariance")."""


def fit_ours(X, init, n_iter, steps=None):
    from audiogmm import DiagGMM

    w, m, v = init
    gmm = DiagGMM(
        len(w), max_iter=n_iter, tol=0.0, var_floor=0.0, min_weight=0.0, min_count=0.0,
        var_floor_abs=VAR_FLOOR_ABS, weights_init=w, means_init=m, variances_init=v,
    )  # fmt: skip
    return gmm.fit(X)


def steps_ours(X, init, n_iter, steps):
    """n EM iterations with the public E-step/M-step functions, each one timed."""
    from audiogmm.engine import LocalExecutor
    from audiogmm.mixture import Params, accumulate, maximise

    p = Params(*init)
    with LocalExecutor() as ex:  # all cores, as fit uses
        for _ in range(n_iter):
            t0 = time.perf_counter()
            p = maximise(accumulate(X, p, executor=ex), var_floor=VAR_FLOOR_ABS)
            steps.append(time.perf_counter() - t0)
    w, m, v = p


def fit_sklearn(X, init, n_iter, steps=None):
    """GaussianMixture.fit; appends sklearn's own per-iteration times (2..n) to ``steps``."""
    from sklearn.mixture import GaussianMixture

    w, m, v = init
    gm = GaussianMixture(
        len(w), covariance_type="diag", max_iter=n_iter, tol=0.0, reg_covar=1e-6,
        init_params="random_from_data", weights_init=w, means_init=m, precisions_init=1.0 / v,
        verbose=2, verbose_interval=1,
    )  # fmt: skip
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            gm.fit(X)
    except ValueError as e:
        raise SklearnFitError(f"sklearn on {X.dtype}: {str(e).split('.')[0]}") from e
    if steps is not None:  # iteration 1's lapse includes the initialisation
        steps.extend(float(t) for i, t in _LAPSE.findall(out.getvalue()) if int(i) > 1)
    return gm


def gemm_floor(X, K):
    """A callable doing the two float32 GEMMs of one EM iteration on ``X``."""
    N, D = X.shape
    A = np.empty((N, 2 * D + 1), dtype=np.float32)
    np.square(X, out=A[:, :D])
    A[:, D : 2 * D] = X
    A[:, 2 * D] = 1.0
    W = np.random.default_rng(0).standard_normal((2 * D + 1, K)).astype(np.float32)
    G = np.empty((N, K), dtype=np.float32)

    def two():
        np.matmul(A, W, out=G)
        return G.T @ A

    two()
    return two


def measure(X, init, n_iter, repeats, sk_dtypes):
    """Round-robin timings, so that a burst of machine noise hits every entry alike.

    Returns ``{key: {"step": s, "fit": s, "t1": s, "tn": s}}`` for "ours" and each
    "sklearn/<dtype>" that did not fail, the floor in seconds, the n-iteration
    models, and ``{key: message}`` for the sklearn runs that failed.
    """
    X64 = X.astype(np.float64) if "float64" in sk_dtypes else None
    floor_fn = gemm_floor(X, init[0].shape[0])
    fits = {"ours": (fit_ours, X)}
    fits.update({f"sklearn/{dt}": (fit_sklearn, X64 if dt == "float64" else X) for dt in sk_dtypes})
    t = {key: {1: [], n_iter: [], "step": []} for key in fits}
    floor, models, failed = [], {}, {}
    for _ in range(repeats):
        floor.append(median_time(floor_fn, 3)[0])
        steps_ours(X, init, n_iter, t["ours"]["step"])
        for key, (fit, data) in fits.items():
            for n in (1, n_iter):
                if key in failed:
                    break
                t0 = time.perf_counter()
                try:
                    models[key] = fit(data, init, n, t[key]["step"])
                except SklearnFitError as e:
                    failed[key] = str(e)
                    break
                t[key][n].append(time.perf_counter() - t0)
    res = {}
    for key, v in t.items():
        if key in failed:
            continue
        t1, tn = statistics.median(v[1]), statistics.median(v[n_iter])
        res[key] = {
            "step": statistics.median(v["step"]),
            "fit": max(tn - t1, 0.0) / (n_iter - 1),
            "t1": t1,
            "tn": tn,
        }
    return res, statistics.median(floor), models, failed


def mean_loglik(X64, weights, means, variances):
    from audiogmm.mixture import Params, log_likelihood

    return float(log_likelihood(X64, Params(weights, means, variances)).mean())


def main() -> None:
    args = parse_args(__doc__)
    quiet_warnings()
    shapes = QUICK if args.quick else FULL
    warm = clustered_data(2000, 39)
    fit_ours(warm, initial_params(warm, 8), 2)  # numba kernels loaded, thread pool started
    rows, sk_dtype = [], None
    t_start = time.perf_counter()
    for (N, D, K), n_iter in shapes:
        X = clustered_data(N, D, seed=N + D)
        init = initial_params(X, K)
        dtypes = [sk_dtype] if sk_dtype else ["float64", "float32"]
        res, floor, models, failed = measure(X, init, n_iter, args.repeats, dtypes)
        if not any(k.startswith("sklearn/") for k in res):  # e.g. float32 gave up here
            res, floor, models, _ = measure(X, init, n_iter, args.repeats, ["float64"])
        done = [dt for dt in dtypes + ["float64"] if f"sklearn/{dt}" in res]
        sk_dtype = sk_dtype or min(done, key=lambda dt: res[f"sklearn/{dt}"]["step"])
        used = sk_dtype if f"sklearn/{sk_dtype}" in res else "float64"
        ours, ref = res["ours"], res[f"sklearn/{used}"]
        g, s = models["ours"], models[f"sklearn/{used}"]
        X64 = X.astype(np.float64)
        ll_ours = mean_loglik(X64, g.weights_, g.means_, g.variances_)
        ll_ref = mean_loglik(X64, s.weights_, s.means_, s.covariances_)
        rel = abs(ll_ours - ll_ref) / abs(ll_ref)
        del X, X64
        row = {
            "bench": "em_iteration", "N": N, "D": D, "K": K, "dtype": "float32",
            "ours_s": rnd(ours["step"]), "ref_s": rnd(ref["step"]),
            "ratio": rnd(ref["step"] / ours["step"], 2),
            "floor_s": rnd(floor), "floor_ratio": rnd(ours["step"] / floor, 2),
            "ref_dtype": used, "ref_failed": failed or None,
            "ours_fit_s": rnd(ours["fit"]), "ref_fit_s": rnd(ref["fit"]),
            "ratio_fit": rnd(ref["fit"] / ours["fit"], 2) if ours["fit"] > 0 else None,
            "floor_ratio_fit": rnd(ours["fit"] / floor, 2),
            "ref_s_by_dtype": {dt: rnd(res[f"sklearn/{dt}"]["step"]) for dt in sorted(set(done))},
            "fit_times_s": {k: {"t1": rnd(v["t1"]), f"t{n_iter}": rnd(v["tn"])} for k, v in res.items()},
            "n_iter": n_iter, "repeats": args.repeats,
            "ll_ours": ll_ours, "ll_ref": ll_ref, "ll_rel_diff": float(f"{rel:.3g}"),
            "ll_agree_1e-4": bool(rel <= 1e-4), "ours_history_last": g.history_[-1],
        }  # fmt: skip
        emit(row, args.json_out)
        rows.append(row)
    print()
    print(
        table(
            rows,
            [
                ("N", "N", "d"), ("D", "D", "d"), ("K", "K", "d"),
                ("ours_s", "audiogmm s/it", ".3f"), ("ref_s", "sklearn s/it", ".3f"),
                ("ref_dtype", "sk dtype", "s"), ("ratio", "speedup", ".1f"),
                ("ratio_fit", "speedup (fit)", ".1f"),
                ("floor_s", "2-GEMM floor s", ".3f"), ("floor_ratio", "x floor", ".2f"),
                ("floor_ratio_fit", "x floor (fit)", ".2f"),
                ("ll_rel_diff", "loglik rel diff", ".1e"),
            ],
        )  # fmt: skip
    )
    for r in rows:
        if len(r["ref_s_by_dtype"]) > 1:
            print(f"sklearn s/it by dtype at N={r['N']}: {r['ref_s_by_dtype']}")
        for msg in (r["ref_failed"] or {}).values():
            print(f"at (N, D, K) = ({r['N']}, {r['D']}, {r['K']}) {msg}; float64 used")
    print(
        "s/it: median single-iteration time; (fit): (t_n - t_1)/(n - 1) from whole fits.\n"
        f"total {time.perf_counter() - t_start:.0f} s; targets at (200k, 39, 64): "
        "speedup >= 8, x floor <= 1.5, loglik rel diff <= 1e-4"
    )


if __name__ == "__main__":
    main()
