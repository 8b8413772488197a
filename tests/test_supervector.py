"""GMM supervectors and the GSV back end against direct computations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp

from audiogmm.cli import main
from audiogmm.data import extract_many
from audiogmm.exceptions import ModelFileError, ParameterError
from audiogmm.io.container import read_container, write_container
from audiogmm.mixture import DiagGMM
from audiogmm.models import DEFAULT_BACKEND, UBMClassifier
from audiogmm.models.classifier import log_odds
from audiogmm.models.supervector import (
    GSVClassifier,
    lbfgs,
    logistic_regression,
    row_space,
    supervectors,
    unit_rows,
)
from audiogmm.pipeline import load_model
from audiogmm.scoring.verification import act_dcf, cllr, min_cllr


def _ubm(K=3, D=2, seed=0) -> DiagGMM:
    rng = np.random.default_rng(seed)
    g = DiagGMM(K, max_iter=50, random_state=seed).fit(rng.normal(0, 2, (600, D)))
    return g


def _direct_stats(X, ubm: DiagGMM):
    """Zeroth and first-order statistics (about the UBM means) from responsibilities
    computed here, in float64, the textbook way."""
    w, mu, var = ubm.weights_, ubm.means_, ubm.variances_
    logp = (
        np.log(w)
        - 0.5 * np.sum(np.log(2 * np.pi * var), 1)
        - 0.5 * np.sum((X[:, None, :] - mu) ** 2 / var, 2)
    )
    gamma = np.exp(logp - logsumexp(logp, 1, keepdims=True))  # (T, K)
    n = gamma.sum(0)
    return n, gamma.T @ X - n[:, None] * mu  # (K,), (K, D)


def _direct_supervector(X, ubm: DiagGMM, r: float) -> np.ndarray:
    """MAP means from :func:`_direct_stats`: ``alpha E[x] + (1 - alpha) mu``."""
    w, mu, var = ubm.weights_, ubm.means_, ubm.variances_
    n, F = _direct_stats(X, ubm)
    new_mu = (F + n[:, None] * mu + r * mu) / (n + r)[:, None]
    return (np.sqrt(w)[:, None] * (new_mu - mu) / np.sqrt(var)).ravel()


def _clips(n_per=6, means=(0.0, 1.5, -1.5), T=150, D=2, seed=1):
    rng = np.random.default_rng(seed)
    clips, labels = [], []
    for c, m in enumerate(means):
        for _ in range(n_per):
            clips.append(rng.normal(m, 1.0, (T, D)) + rng.normal(0, 0.2, D))
            labels.append(f"c{c}")
    return clips, labels


@settings(max_examples=20, deadline=None)
@given(lengths=st.lists(st.integers(0, 700), min_size=1, max_size=9), seed=st.integers(0, 99),
       f32=st.lists(st.booleans(), min_size=9, max_size=9), jobs=st.sampled_from([1, 2]),
       per_call=st.sampled_from([1, 2, 64]))  # fmt: skip
def test_clip_stats_are_each_clips_own_e_step_bit_for_bit(lengths, seed, f32, jobs, per_call):
    # the clips share one E-step call (the UBM broadcast over a stack): each clip's statistics
    # are those of accumulate on it alone, for any batch size, executor, dtype and length
    from audiogmm.engine import LocalExecutor
    from audiogmm.mixture import accumulate
    from audiogmm.models import ubm as ubm_mod

    ubm = _ubm(K=5, D=3, seed=seed % 3)
    rng = np.random.default_rng(seed)
    clips = [rng.normal(0, 2, (T, 3)).astype(np.float32 if f else np.float64)
             for T, f in zip(lengths, f32)]  # fmt: skip
    old = ubm_mod.CLIPS_PER_CALL
    try:  # (hypothesis does not mix with the monkeypatch fixture)
        ubm_mod.CLIPS_PER_CALL = per_call
        with LocalExecutor(jobs) as ex:
            n, F = ubm_mod.clip_stats(clips, ubm, executor=ex)
    finally:
        ubm_mod.CLIPS_PER_CALL = old
    for i, X in enumerate(clips):
        s = accumulate(X, ubm.params_)
        np.testing.assert_array_equal(n[i], s.n)
        np.testing.assert_array_equal(F[i], s.F - s.n[:, None] * (ubm.params_.means - s.shift))
        if len(X) and X.dtype == np.float64:  # against the textbook statistics too (a float32
            # clip is computed in float32: F's sums about the means can cancel to ~1e-4)
            dn, dF = _direct_stats(X, ubm)
            np.testing.assert_allclose(n[i], dn, rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(F[i], dF, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("r", [0.0, 4.0, 16.0])
def test_supervector_equals_the_map_adapted_means_computed_directly(r):
    ubm = _ubm()
    rng = np.random.default_rng(5)
    clips = [rng.normal(1, 1.5, (T, 2)) for T in (1, 7, 240)]
    got = supervectors(clips, ubm, relevance=r)
    want = np.stack([_direct_supervector(X, ubm, r) for X in clips])
    assert got.shape == (3, 6)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    # float32 frames: the same up to float32 arithmetic
    got32 = supervectors([X.astype(np.float32) for X in clips], ubm, relevance=r)
    np.testing.assert_allclose(got32, want, rtol=1e-4, atol=1e-5)


def test_supervector_of_no_frames_is_zero_and_clip_order_is_kept():
    ubm = _ubm()
    X = np.random.default_rng(0).normal(size=(50, 2))
    sv = supervectors([np.zeros((0, 2)), X, X[:10]], ubm)
    assert np.all(sv[0] == 0)
    np.testing.assert_allclose(sv[1], _direct_supervector(X, ubm, 16.0), rtol=1e-9)
    np.testing.assert_allclose(sv[2], _direct_supervector(X[:10], ubm, 16.0), rtol=1e-9)
    assert supervectors([], ubm).shape == (0, 6)
    with pytest.raises(ParameterError, match="clip 1"):
        supervectors([X, np.ones((5, 3))], ubm)


def test_log_odds_is_log_p_over_one_minus_p_at_both_ends():
    p = np.array([1e-300, 1e-20, 0.3, 0.5, 0.9, 1 - 1e-12])
    want = np.log(p) - np.log1p(-p)
    np.testing.assert_allclose(log_odds(np.log(p)), want, rtol=1e-6)
    assert log_odds(np.array([0.0]))[0] == np.inf


@settings(max_examples=80, deadline=None, database=None)
@given(seed=st.integers(0, 2**16), M=st.integers(2, 8), scale_exp=st.integers(-2, 4))
def test_raw_llr_is_each_class_against_the_mean_of_the_others_even_far_apart(seed, M, scale_exp):
    """Brute force in math: the clip's best class at 37+ nats above the others used to come
    out as +inf (clipped to 1e6) or lose every digit through its posterior near 1."""
    import math

    from audiogmm.models.classifier import raw_llr

    rng = np.random.default_rng(seed)
    S = rng.normal(0, 10.0**scale_exp, (20, M))
    got = raw_llr(S)
    for i in range(len(S)):
        for c in range(M):
            others = [S[i, j] for j in range(M) if j != c]
            top = max(others)
            want = S[i, c] - top - math.log(sum(math.exp(o - top) for o in others) / (M - 1))
            assert got[i, c] == pytest.approx(min(max(want, -1e6), 1e6), rel=1e-12, abs=1e-9)


@pytest.mark.parametrize("length_norm", [True, False])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_scores_are_the_logistic_regression_of_the_supervectors(n_classes, length_norm):
    from sklearn.linear_model import LogisticRegression

    clips, labels = _clips(means=(0.0, 1.5, -1.5)[:n_classes])
    clf = GSVClassifier(4, relevance=4.0, C=10.0, length_norm=length_norm).fit(clips, labels)
    assert clf.labels_ == sorted(set(labels))
    sv = supervectors(clips, clf.ubm_, relevance=4.0)
    if length_norm:  # each row divided by its own length
        sv = sv / np.linalg.norm(sv, axis=1, keepdims=True)
        np.testing.assert_allclose(np.linalg.norm(clf.vectors(clips), axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(clf.vectors(clips), sv, rtol=1e-12, atol=1e-15)
    S = clf.score_matrix(clips)
    assert S.shape == (len(clips), n_classes)
    np.testing.assert_allclose(S, sv @ clf.coef_.T + clf.intercept_)
    # the regression on supervectors scaled to RMS length 1, fitted here on all K*D
    # coordinates (the classifier fits in the span of the clips: the same optimum)
    scale = np.sqrt(np.mean(np.sum(sv**2, 1)))
    lr = LogisticRegression(C=10.0, tol=1e-10, max_iter=10000).fit(sv / scale, labels)
    np.testing.assert_allclose(clf.predict_proba(clips), lr.predict_proba(sv / scale), atol=1e-4)
    sv = sv / scale
    assert list(clf.predict(clips)) == list(lr.predict(sv))
    # verification score: the posterior odds of each class over its prior odds 1 : (M - 1),
    # through the held-out calibration
    P = clf.predict_proba(clips)
    with np.errstate(divide="ignore"):
        raw = np.clip(np.log(P / (1 - P) * (n_classes - 1)), -1e6, 1e6)
    a, b = clf.calibration_
    np.testing.assert_allclose(clf.score_samples(clips), a * raw + b, rtol=1e-6, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 30), extra=st.integers(0, 40), rank=st.integers(0, 30),
       seed=st.integers(0, 999), scale=st.sampled_from([1e-3, 1.0, 1e4]))  # fmt: skip
def test_row_space_is_an_orthonormal_basis_of_the_rows_span(n, extra, rank, seed, scale):
    # against the SVD: the same span (projector), orthonormal rows, and Z rebuilt from them
    rng = np.random.default_rng(seed)
    P, r = n + extra, min(rank, n)
    Z = scale * rng.normal(size=(n, r)) @ rng.normal(size=(r, n + extra))
    coords, B = row_space(Z)
    assert coords.shape == (n, B.shape[0]) and B.shape[1] == P
    u, sv, vt = np.linalg.svd(Z, full_matrices=False)
    true_rank = int(np.sum(sv > 1e-5 * sv[0])) if sv.size and sv[0] > 0 else 0
    assert B.shape[0] == true_rank
    # through the Gram matrix, a direction of singular value s is resolved to about
    # eps * (s_max / s)**2: 1e-8 for the well-conditioned draws, up to 2e-6 at the rank
    # tolerance (a draw at 2.5e-5 of s_max gave 4.7e-8, against a fixed 1e-8 before)
    cond2 = (sv[0] / sv[true_rank - 1]) ** 2 if true_rank else 1.0
    tol = 1e-8 + 10 * np.finfo(float).eps * cond2
    np.testing.assert_allclose(B @ B.T, np.eye(true_rank), atol=tol)
    np.testing.assert_allclose(B.T @ B, vt[:true_rank].T @ vt[:true_rank], atol=tol)
    np.testing.assert_allclose(coords @ B, Z, atol=1e-8 * max(scale, np.abs(Z).max(initial=0)))
    np.testing.assert_allclose(coords, Z @ B.T, atol=1e-8 * max(scale, np.abs(Z).max(initial=0)))


def test_row_space_of_zeros_is_empty():
    coords, B = row_space(np.zeros((3, 5)))
    assert coords.shape == (3, 0) and B.shape == (0, 5)


def _lr_problem(n, P, M, seed, spread=1.0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % M
    Z = rng.normal(0, 1, (n, P)) + spread * rng.normal(0, 1, (M, P))[y]
    return Z, y


def _lr_objective(Z, y, W, b, C):
    """scikit-learn's objective, written out: mean cross-entropy + |W|^2 / (2 C n)."""
    S = Z @ W.T + b
    return np.mean(logsumexp(S, 1) - S[np.arange(len(y)), y]) + np.sum(W**2) / (2 * C * len(y))


@pytest.mark.parametrize("n, P, M", [(60, 5, 3), (40, 80, 4), (50, 7, 2), (30, 60, 2)])
def test_logistic_regression_is_scikit_learns_optimum(n, P, M):
    from sklearn.linear_model import LogisticRegression

    Z, y = _lr_problem(n, P, M, seed=n + P)
    W, b, n_iter, ok = logistic_regression(Z, y, M, 10.0, gtol=1e-10)
    assert ok and 0 < n_iter < 1000
    lr = LogisticRegression(C=10.0, tol=1e-12, max_iter=100000).fit(Z, y)
    coef, icpt = lr.coef_, lr.intercept_
    if M == 2:  # scikit-learn's one decision function z is our pair (-z/2, z/2)
        np.testing.assert_allclose(W.sum(0), 0.0, atol=1e-12)
        coef, icpt = np.concatenate([-coef, coef]) / 2, np.concatenate([-icpt, icpt]) / 2
    # the same loss (the two-class problem's penalty is scikit-learn's |z|^2 = 4 |W[1]|^2 / 2)
    f = _lr_objective(Z, y, W, b, 10.0 if M > 2 else 5.0)
    f_sk = _lr_objective(Z, y, coef, icpt, 10.0 if M > 2 else 5.0)
    assert f <= f_sk + 1e-9 * max(1.0, f_sk)
    S = Z @ W.T + b
    np.testing.assert_allclose(np.exp(S - logsumexp(S, 1, keepdims=True)), lr.predict_proba(Z),
                               atol=1e-5)  # fmt: skip
    if n > P:  # well conditioned: the same coefficients (else separable, flat near the optimum)
        np.testing.assert_allclose(W, coef, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b - b.mean(), icpt - icpt.mean(), atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(6, 40), P=st.integers(1, 30), M=st.integers(3, 5), seed=st.integers(0, 99),
       spread=st.sampled_from([0.0, 1.0, 10.0]), C=st.sampled_from([0.1, 10.0, 100.0]))
def test_logistic_regression_meets_the_optimality_conditions(n, P, M, seed, spread, C):
    # at the optimum of mean_i CE + |W|^2 / (2 C n): W = C (Y - P)' Z and each class's
    # residuals sum to 0 (the unpenalised intercepts), whatever the data, separable included
    Z, y = _lr_problem(n, P, M, seed, spread)
    W, b, _, ok = logistic_regression(Z, y, M, C)
    assert ok and np.isfinite(W).all() and np.isfinite(b).all()
    S = Z @ W.T + b
    R = np.eye(M)[y] - np.exp(S - logsumexp(S, 1, keepdims=True))
    scale = 1.0 + np.abs(W).max()
    np.testing.assert_allclose(W / scale, C * (R.T @ Z) / scale, atol=1e-4 * max(C, 1.0))
    np.testing.assert_allclose(R.sum(0) / n, 0.0, atol=2e-6)
    # and no nearby point is lower: a brute-force look around
    f0 = _lr_objective(Z, y, W, b, C)
    rng = np.random.default_rng(seed)
    for _ in range(20):
        dW, db = rng.normal(0, 1e-3, W.shape), rng.normal(0, 1e-3, b.shape)
        assert _lr_objective(Z, y, W + dW, b + db, C) >= f0 - 1e-9


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 40), cond=st.sampled_from([1.0, 1e2, 1e4]), seed=st.integers(0, 99))
def test_lbfgs_finds_the_closed_form_minimum_of_a_quadratic(n, cond, seed):
    # f(x) = x'Ax/2 - b'x, A symmetric positive definite of condition number cond: x* = A^-1 b
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    A = (Q * np.geomspace(1.0, cond, n)) @ Q.T
    b = rng.normal(size=n)

    def fg(x):
        Ax = A @ x
        return float(x @ Ax / 2 - b @ x), Ax - b

    # it stops on the gradient rule, or (cond 1e4, |f| large) where float64 no longer sees f
    # fall, as scipy's L-BFGS-B does (there its line search ends "abnormal"): within 1e-10 of
    # the optimum's value either way
    x, n_iter, ok = lbfgs(fg, np.zeros(n), gtol=1e-5, ftol=0.0)
    assert ok and n_iter <= 1000
    f_star = fg(np.linalg.solve(A, b))[0]
    gap, resolution = fg(x)[0] - f_star, 1e-10 * max(1.0, abs(f_star))
    assert np.abs(A @ x - b).max() <= 1e-5 or gap <= resolution
    assert gap <= n * 1e-10 / 2 + resolution  # |g|^2 / (2 lambda_min), lambda_min = 1


def test_lbfgs_on_rosenbrock_and_its_stops():
    def rosen(x):
        f = 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2
        g = np.array([-400 * x[0] * (x[1] - x[0] ** 2) - 2 * (1 - x[0]), 200 * (x[1] - x[0] ** 2)])
        return float(f), g

    x, n_iter, ok = lbfgs(rosen, np.array([-1.2, 1.0]), gtol=1e-8, ftol=0.0)
    assert ok and 10 < n_iter < 200
    np.testing.assert_allclose(x, [1.0, 1.0], atol=1e-6)
    # the iteration budget: stopped short, not converged, the best point so far
    x2, n2, ok2 = lbfgs(rosen, np.array([-1.2, 1.0]), gtol=1e-8, ftol=0.0, max_iter=3)
    assert not ok2 and n2 == 3 and rosen(x2)[0] < rosen(np.array([-1.2, 1.0]))[0]
    # a start at the optimum: no step
    x3, n3, ok3 = lbfgs(rosen, np.array([1.0, 1.0]), gtol=1e-8)
    assert ok3 and n3 == 0 and (x3 == 1.0).all()


def test_logistic_regression_of_separable_data_at_a_weak_penalty_stays_finite():
    # C = 1e4 on separable clusters: the optimum is far out and flat (the loss at 1e-4),
    # where L-BFGS stops on the loss's float64 precision; finite, and right on every row
    Z, y = _lr_problem(6, 8, 3, seed=0, spread=10.0)
    W, b, _, ok = logistic_regression(Z, y, 3, 1e4)
    assert ok and np.isfinite(W).all() and np.isfinite(b).all()
    assert ((Z @ W.T + b).argmax(1) == y).all()


@pytest.mark.parametrize("Z, y, M, C", [
    (np.ones((3, 2)), np.array([0, 1, 2]), 2, 1.0),  # a class beyond n_classes
    (np.ones((3, 2)), np.array([0, 1]), 2, 1.0),  # fewer labels than rows
    (np.ones((3, 2)), np.array([0.0, 1.0, 0.0]), 2, 1.0),  # labels not integers
    (np.full((3, 2), np.nan), np.array([0, 1, 0]), 2, 1.0),
    (np.ones(3), np.array([0, 1, 0]), 2, 1.0),
    (np.ones((0, 2)), np.zeros(0, dtype=int), 2, 1.0),  # no rows: no mean loss
    (np.ones((3, 2)), np.array([0, 0, 0]), 1, 1.0),
    (np.ones((3, 2)), np.array([0, 1, 0]), 2, 0.0),
    (np.ones((3, 2)), np.array([0, 1, 0]), 2, np.inf),
])  # fmt: skip
def test_logistic_regression_refuses_bad_input(Z, y, M, C):
    with pytest.raises(ParameterError):
        logistic_regression(Z, y, M, C)


def test_logistic_regression_of_identical_rows_is_the_class_prior():
    Z, y = np.ones((9, 4)), np.array([0, 0, 0, 0, 1, 1, 1, 2, 2])
    W, b, _, ok = logistic_regression(Z, y, 3, 10.0)
    S = Z @ W.T + b
    np.testing.assert_allclose(np.exp(S - logsumexp(S, 1, keepdims=True))[0], [4 / 9, 3 / 9, 2 / 9],
                               atol=1e-5)  # fmt: skip


@pytest.mark.parametrize("backend", ["gsv", "ivector"])
def test_an_uncalibrated_fit_classifies_as_the_calibrated_one(backend):
    # the cross-validation of `auto` scores embedding backends without their calibration
    from audiogmm.models import BACKENDS

    clips, labels = _clips(n_per=8)
    test, _ = _clips(n_per=4, seed=9)
    params = {"rank": 4} if backend == "ivector" else {}
    full = BACKENDS[backend](4, **params).fit(clips, labels)
    bare = BACKENDS[backend](4, **params).fit(clips, labels, calibrate=False)
    assert full.calibration_ is not None and full.calibration_[0] > 0
    assert bare.calibration_ is None
    assert list(bare.predict(test)) == list(full.predict(test))
    if backend == "gsv":  # its calibration acts on the verification scores only
        np.testing.assert_array_equal(bare.score_matrix(test), full.score_matrix(test))
    with pytest.raises(ParameterError, match="calibrated"):
        bare.predict(test, reject="auto")


def test_held_out_clips_are_classified():
    clips, labels = _clips(n_per=8)
    test, truth = _clips(n_per=4, seed=9)
    clf = GSVClassifier(4, relevance=4.0).fit(clips, labels)
    assert np.mean(clf.predict(test) == np.array(truth, dtype=object)) >= 0.9
    P = clf.predict_proba(test)
    np.testing.assert_allclose(P.sum(1), 1.0)


def test_given_ubm_is_used_and_its_k_wins():
    clips, labels = _clips()
    ubm = _ubm(K=5)
    clf = GSVClassifier(64).fit(clips, labels, ubm=ubm)
    assert clf.ubm_ is ubm and clf.n_components == 5 and clf.coef_.shape == (3, 10)
    # the one dispatch of every training source passes a given UBM to gsv as to map
    from audiogmm.pipeline.sources import fit_backend

    fitted = fit_backend(clips, labels, backend="gsv", ubm=ubm, n_components=64)
    assert isinstance(fitted, GSVClassifier) and fitted.ubm_ is ubm
    with pytest.raises(ParameterError, match="'map', 'gsv' or 'ivector'"):
        fit_backend(clips, labels, backend="ml", ubm=ubm)


@pytest.mark.parametrize(
    "kw, match",
    [({"C": 0}, "C must"), ({"C": float("nan")}, "C must"), ({"relevance": -1}, "relevance"),
     ({"subsample": 0}, "subsample")],
)  # fmt: skip
def test_bad_parameters_are_refused(kw, match):
    clips, labels = _clips(n_per=2)
    with pytest.raises(ParameterError, match=match):
        GSVClassifier(2, **kw).fit(clips, labels)


def test_unfitted_and_bad_clips_are_refused():
    with pytest.raises(ParameterError, match="not fitted"):
        GSVClassifier(2).score_matrix([np.zeros((3, 2))])
    clips, labels = _clips(n_per=2)
    clf = GSVClassifier(2).fit(clips, labels)
    with pytest.raises(ParameterError, match="clip 0"):
        clf.score_matrix([np.zeros((0, 2))])
    with pytest.raises(ParameterError, match="clips but"):
        GSVClassifier(2).fit(clips, labels[:-1])


def _stored(path):
    """A gsv file's header (its GSV table's blocks only) and arrays, to rewrite."""
    header, arrays = read_container(path, kind="GSVClassifier")
    keep = ("labels", "n_components", "priors", "random_state", "gmm_params", "training", "gsv")
    return {k: v for k, v in header.items() if k in keep}, arrays


def test_save_load_round_trip_and_refusals(tmp_path):
    clips, labels = _clips()
    clf = GSVClassifier(4, relevance=8.0, C=3.0, priors={"c0": 1, "c1": 2, "c2": 1}).fit(
        clips, labels
    )
    path = tmp_path / "m.npz"
    clf.save(path)
    back = GSVClassifier.load(path)
    assert (back.relevance, back.C, back.subsample, back.labels_) == (8.0, 3.0, 4, clf.labels_)
    assert back.length_norm is True
    assert back.calibration_ == clf.calibration_ and len(clf.calibration_) == 2
    np.testing.assert_array_equal(back.score_samples(clips), clf.score_samples(clips))
    np.testing.assert_array_equal(back.score_matrix(clips), clf.score_matrix(clips))
    np.testing.assert_array_equal(back.predict_proba(clips), clf.predict_proba(clips))

    header, arrays = _stored(path)

    def rewrite(name, h=None, **a):
        p = tmp_path / name
        write_container(p, kind="GSVClassifier", header=h or header, arrays={**arrays, **a})
        return p

    bad = [
        (rewrite("coef.npz", coef=arrays["coef"][:, :-1]), "coef"),
        (rewrite("nan.npz", intercept=np.array([0.0, np.nan, 0.0])), "intercept"),
        (rewrite("var.npz", ubm_variances=-arrays["ubm_variances"]), "variances"),
        (rewrite("gsv.npz", {**header, "gsv": {**header["gsv"], "C": 0.0}}), "C"),
        (rewrite("cal.npz", {**header, "gsv": {**header["gsv"], "calibration": [1.0]}}), "calib"),
        (
            rewrite("lab.npz", {**header, "labels": ["c0", "c1"], "priors": None, "training": {}}),
            "coef",
        ),  # fmt: skip
        (rewrite("pri.npz", {**header, "priors": {"x": 1.0}}), "priors"),
    ]
    for p, match in bad:
        with pytest.raises(ModelFileError, match=match):
            GSVClassifier.load(p)
    with pytest.raises(ModelFileError, match="length_norm"):
        GSVClassifier.load(rewrite("ln.npz", {**header, "gsv": {**header["gsv"], "length_norm": 1}}))
    # a field the GSV table does not declare is refused
    with pytest.raises(ModelFileError, match="extra_block"):
        GSVClassifier.load(rewrite("extra.npz", {**header, "extra_block": {"x": 1}}))


def test_files_from_before_length_norm_load_as_fitted(tmp_path):
    """A gsv file without ``length_norm`` was fitted on raw supervectors: it loads with False
    and scores exactly as the model that wrote it."""
    clips, labels = _clips()
    old = GSVClassifier(4, length_norm=False).fit(clips, labels)
    path = tmp_path / "old.npz"
    old.save(path)
    header, arrays = _stored(path)
    del header["gsv"]["length_norm"]
    write_container(path, kind="GSVClassifier", header=header, arrays=arrays)
    back = GSVClassifier.load(path)
    assert back.length_norm is False
    np.testing.assert_array_equal(back.score_matrix(clips), old.score_matrix(clips))
    new = GSVClassifier(4).fit(clips, labels)
    assert not np.allclose(new.score_matrix(clips), old.score_matrix(clips))


def test_unit_rows():
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(5, 7)) * rng.uniform(0.01, 100, (5, 1))
    Z[2] = 0.0
    U = unit_rows(Z)
    want = Z / np.linalg.norm(Z, axis=1, keepdims=True).clip(1e-300)
    np.testing.assert_allclose(U, want, rtol=1e-14)
    assert not U[2].any()
    np.testing.assert_allclose(unit_rows(3.5 * Z), U, rtol=1e-14)


def test_length_norm_must_be_a_bool():
    with pytest.raises(ParameterError, match="length_norm"):
        GSVClassifier(2, length_norm="yes").fit(*_clips())


def test_fused_files_from_before_length_norm_load_their_gsv_member_as_fitted(tmp_path):
    """A fused file's gsv member without ``length_norm`` loads with False, as fitted."""
    from audiogmm.models import FusedClassifier, GMMClassifier

    clips, labels = _clips()
    members = [GSVClassifier(4, length_norm=False).fit(clips, labels),
               GMMClassifier(2, random_state=0).fit(clips, labels)]  # fmt: skip
    fused = FusedClassifier(members, [1.0, 0.5])
    path = tmp_path / "fused.npz"
    fused.save(path)
    header, arrays = read_container(path, kind="FusedClassifier")
    header = {k: v for k, v in header.items() if k in ("labels", "members", "fusion_weights")}
    del header["members"][0]["gsv"]["length_norm"]
    write_container(path, kind="FusedClassifier", header=header, arrays=arrays)
    back = FusedClassifier.load(path)
    assert back.members[0].length_norm is False
    np.testing.assert_array_equal(back.score_matrix([clips, clips]),
                                  fused.score_matrix([clips, clips]))  # fmt: skip


# -- the command line: train --backend gsv, evaluate, predict, verify ---------------------------

ROOT = Path(__file__).resolve().parents[1]
SPEAKERS = ROOT / "data_samples" / "speakers"
PICK = ["ast_en", "ast_fr", "flite_slt", "flite_awb"]


def cli(args, code=0):
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == code, r.output
    return r


def test_cli_train_gsv_evaluate_predict_verify(tmp_path):
    for spk in PICK:
        (tmp_path / "data" / spk).mkdir(parents=True)
        for f in sorted((SPEAKERS / spk).glob("*.flac"))[:8]:
            shutil.copy(f, tmp_path / "data" / spk / f.name)
    data, model = tmp_path / "data", tmp_path / "gsv.npz"
    out = json.loads(cli(["-q", "train", data, "-o", model, "--backend", "gsv",
                          "-k", "8", "--relevance", "8", "--jobs", "1",
                          "--json"]).output)  # fmt: skip
    assert out["backend"] == "gsv" and out["n_components"] == 8
    bundle = load_model(model)
    clf = bundle.classifier
    assert isinstance(clf, GSVClassifier) and clf.relevance == 8.0 and clf.gmm_params == {}
    ev = json.loads(cli(["-q", "evaluate", model, data, "--jobs", "1", "--json"]).output)
    assert ev["accuracy"] >= 0.75
    clip = sorted((data / "flite_slt").glob("*.flac"))[-1]
    pr = json.loads(cli(["-q", "predict", model, clip, "--json"]).output)["results"][0]
    X = extract_many([str(clip)], config=bundle.config).features[str(clip)]
    assert pr["label"] == clf.predict([X])[0]
    # verify: every held-out clip against every claim; the calibration metrics beside EER
    test = [(f, spk) for spk in PICK for f in sorted((SPEAKERS / spk).glob("*.flac"))[8:10]]
    rows = ["path,claim,target"] + [f"{f},{c},{int(c == s)}" for f, s in test for c in PICK]
    (tmp_path / "trials.csv").write_text("\n".join(rows) + "\n")
    res = json.loads(cli(["-q", "verify", model, tmp_path / "trials.csv", "--json"]).output)
    y = [t["target"] for t in res["trials"]]
    s = [t["score"] for t in res["trials"]]
    m = res["metrics"]
    assert m["cllr"] == pytest.approx(cllr(y, s)) and m["min_cllr"] == pytest.approx(min_cllr(y, s))
    assert m["act_dcf_0.01"] == pytest.approx(act_dcf(y, s, p_target=0.01))
    assert 0 <= m["min_cllr"] <= m["cllr"] + 1e-12 and m["eer"] <= 0.25
    f0 = res["trials"][0]
    X0 = extract_many([f0["path"]], config=bundle.config).features[f0["path"]]
    want = clf.score_samples([X0])[0, clf.labels_.index(f0["claim"])]
    assert f0["score"] == pytest.approx(want)
    info = json.loads(cli(["info", model, "--json"]).output)
    assert (info["kind"], info["n_components"], info["labels"]) == (
        "GSVClassifier",
        8,
        sorted(PICK),
    )
    # the MAP backend's reject calibration is not the GSV's: refused, not ignored
    r = cli(["-q", "train", data, "-o", tmp_path / "x.npz", "--backend", "gsv",
             "--reject-far", "0.1"], code=2)  # fmt: skip
    assert "--reject-far" in r.output


def test_calibration_is_fitted_on_held_out_folds(monkeypatch):
    from audiogmm.models import classifier, ubm

    seen = []

    def spy(y, s):
        seen.append((np.asarray(y), np.asarray(s)))
        return 0.5, -1.0

    monkeypatch.setattr(ubm, "fit_calibration", spy)
    clips, labels = _clips(n_per=5)
    clf = GSVClassifier(4).fit(clips, labels)
    assert clf.calibration_ == (0.5, -1.0)
    ((y, s),) = seen
    # every clip against every class, one target each; scores from models without the clip
    assert y.shape == s.shape == (15 * 3,) and y.sum() == 15
    full = classifier.raw_llr(clf.score_matrix(clips)).ravel()
    assert not np.allclose(s, full)  # held out: not the scores of the model trained on all
    # one clip in a class: no folds, no calibration
    one = GSVClassifier(4).fit(clips[:11], labels[:11])
    assert one.calibration_ is None and len(seen) == 1


def _backend_params(*args):
    from audiogmm.cli import train

    ctx = train.train.make_context("train", [str(SPEAKERS), "-o", "m.npz", *args])
    return train.backend_params(ctx, ctx.params["backend"] or DEFAULT_BACKEND, ctx.params)


def test_cli_backend_defaults_are_each_backends_own():
    """-k and --relevance unset: map keeps 64 and 16, gsv 64 and 4 (the classes'); the
    default backend is gsv."""
    assert _backend_params("--backend", "map") == {"n_components": 64, "adapt": "m",
                                                   "reject_far": None}  # fmt: skip
    assert _backend_params("--backend", "gsv") == {"n_components": 64} == _backend_params()
    assert _backend_params("--backend", "gsv", "-k", "32", "--relevance", "8") == {
        "n_components": 32, "relevance": 8.0}  # fmt: skip
    assert (UBMClassifier().n_components, UBMClassifier().relevance) == (64, 16.0)
    assert (GSVClassifier().n_components, GSVClassifier().relevance) == (64, 4.0)


@pytest.mark.parametrize("args, flag", [
    (["--backend", "gsv", "--adapt", "mw"], "--adapt"),
    (["--backend", "gsv", "--reject-far", "0.1"], "--reject-far"),
    (["--backend", "gsv", "-k", "8", "--ubm-components", "16"], "disagree"),
    (["--backend", "ml", "--relevance", "4"], "--relevance"),
])  # fmt: skip
def test_cli_options_a_backend_does_not_read_are_usage_errors(args, flag):
    with pytest.raises(click.UsageError, match=flag):
        _backend_params(*args)


@pytest.mark.parametrize("cls", ["gsv", "ivector"])
def test_the_back_end_and_its_calibration_folds_give_the_same_model_on_any_thread_count(cls):
    """The back end's fit on every clip and its calibration folds run side by side on the
    executor's threads (session 19): the same coefficients and calibration, to the bit, on
    1 or 2 threads."""
    from audiogmm.engine import LocalExecutor
    from audiogmm.models import BACKENDS

    clips, labels = _clips(n_per=8)
    fits = []
    for n in (1, 2):
        with LocalExecutor(n) as ex:
            kw = {"rank": 4} if cls == "ivector" else {}
            fits.append(BACKENDS[cls](4, random_state=0, **kw).fit(clips, labels, executor=ex))
    a, b = fits
    assert a.calibration_ is not None and a.calibration_ == b.calibration_
    for key in ("coef_", "intercept_") if cls == "gsv" else ("projection_", "class_means_"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
