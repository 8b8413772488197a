"""Benchmark: scoring many clips against many class models, batched vs a per-model loop.

1,000 clips x 300 frames (D=39, float32) are scored against 100 class models of
32 diagonal components (random parameters, the same for both):

* audiogmm: ``GMMClassifier.score_matrix(clips)``, built without training (its
  ``labels_``, ``weights_``, ``means_``, ``variances_``, ``var_floors_`` are set
  directly): one batched pass, (n_clips, n_classes) total log-likelihoods.
* reference: 100 scikit-learn ``GaussianMixture(32, covariance_type="diag")`` with
  ``weights_``, ``means_``, ``covariances_``, ``precisions_cholesky_`` set, and a
  loop over models of ``score_samples`` on all frames concatenated (float64), summed
  per clip with ``np.add.reduceat`` -- the fastest way to drive scikit-learn here;
  a loop over clips x models would add 100,000 Python calls.

Both score matrices must agree within rtol 1e-4. Times are medians over
``--repeats`` (interleaved). ``speedup`` = sklearn time / audiogmm time.

Run::

    python benchmarks/bench_scoring.py            # ~1.5-2 min
    python benchmarks/bench_scoring.py --quick    # 100 clips, 20 models
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from _common import emit, median_time, parse_args, rnd, table


def random_models(n_models: int, k: int, d: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(k, 2.0), size=n_models)
    means = rng.normal(0.0, 2.0, (n_models, k, d))
    variances = rng.uniform(0.3, 2.0, (n_models, k, d))
    return weights, means, variances


def random_clips(weights, means, variances, n_clips: int, n_frames: int, seed: int = 1):
    """Clip i is drawn from model i % n_models (float32)."""
    rng = np.random.default_rng(seed)
    n_models, k, d = means.shape
    clips = []
    for i in range(n_clips):
        j = i % n_models
        comp = rng.choice(k, size=n_frames, p=weights[j])
        x = means[j, comp] + rng.standard_normal((n_frames, d)) * np.sqrt(variances[j, comp])
        clips.append(x.astype(np.float32))
    return clips


def ours_classifier(weights, means, variances):
    from audiogmm.models import GMMClassifier

    clf = GMMClassifier(means.shape[1])
    clf.labels_ = [f"class{i:03d}" for i in range(means.shape[0])]
    clf.weights_, clf.means_, clf.variances_ = weights, means, variances
    clf.var_floors_ = np.full(means[:, 0, :].shape, 1e-8)
    return clf


def sklearn_models(weights, means, variances):
    from sklearn.mixture import GaussianMixture

    models = []
    for w, m, v in zip(weights, means, variances):
        gm = GaussianMixture(len(w), covariance_type="diag")
        gm.weights_, gm.means_, gm.covariances_ = w, m, v
        gm.precisions_cholesky_ = 1.0 / np.sqrt(v)
        models.append(gm)
    return models


def sklearn_scores(models, allX64, starts):
    out = np.empty((len(starts), len(models)))
    for j, gm in enumerate(models):
        out[:, j] = np.add.reduceat(gm.score_samples(allX64), starts)
    return out


def main() -> None:
    args = parse_args(__doc__)
    n_clips, n_frames, n_models, K, D = (100, 300, 20, 32, 39) if args.quick else (1000, 300, 100, 32, 39)
    t_start = time.perf_counter()
    w, m, v = random_models(n_models, K, D)
    clips = random_clips(w, m, v, n_clips, n_frames)
    clf = ours_classifier(w, m, v)
    models = sklearn_models(w, m, v)

    def run_ref():  # the reference pays its own float64 conversion, as a user's loop would
        allX64 = np.concatenate(clips).astype(np.float64)
        return sklearn_scores(models, allX64, np.arange(0, n_clips * n_frames, n_frames))

    clf.score_matrix(clips[:2])  # warm-up: numba kernels, thread pool
    ours_t, ref_t = [], []
    for _ in range(args.repeats):
        t, S_ours = median_time(lambda: clf.score_matrix(clips), 1)
        ours_t.append(t)
        t, S_ref = median_time(run_ref, 1)
        ref_t.append(t)
    ours, ref = statistics.median(ours_t), statistics.median(ref_t)
    rel = float(np.max(np.abs(S_ours - S_ref) / np.abs(S_ref)))
    acc = float(np.mean(S_ours.argmax(1) == np.arange(n_clips) % n_models))
    row = {
        "bench": "score_matrix", "N": n_clips * n_frames, "D": D, "K": K, "dtype": "float32",
        "n_clips": n_clips, "frames_per_clip": n_frames, "n_models": n_models,
        "ours_s": rnd(ours), "ref_s": rnd(ref), "ratio": rnd(ref / ours, 2), "floor_s": None,
        "ref_dtype": "float64", "max_rel_diff": float(f"{rel:.3g}"),
        "agree_rtol_1e-4": bool(rel <= 1e-4),
        "same_argmax": bool(np.array_equal(S_ours.argmax(1), S_ref.argmax(1))),
        "top1_vs_generating_model": acc, "repeats": args.repeats,
    }  # fmt: skip
    emit(row, args.json_out)
    print()
    print(
        table(
            [row],
            [
                ("n_clips", "clips", "d"), ("frames_per_clip", "frames", "d"), ("D", "D", "d"),
                ("n_models", "models", "d"), ("K", "K", "d"),
                ("ours_s", "audiogmm s", ".3f"), ("ref_s", "sklearn loop s", ".3f"),
                ("ratio", "speedup", ".1f"), ("max_rel_diff", "max rel diff", ".1e"),
            ],
        )  # fmt: skip
    )
    print(f"total {time.perf_counter() - t_start:.0f} s; target: speedup >= 10, rel diff <= 1e-4")


if __name__ == "__main__":
    main()
