import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp
from scipy.stats import norm
from sklearn.mixture import GaussianMixture

from audiogmm import ConvergenceWarning, DiagGMM, ParameterError
from audiogmm.mixture import Params, accumulate, kernels, log_likelihood, maximise
from audiogmm.mixture.estep import estimate_log_prob

from .conftest import TRUE_MEANS, draw_mixture, random_params


def _set(gmm, w, m, v):
    gmm.weights_, gmm.means_, gmm.variances_ = w, m, v
    gmm.var_floor_ = np.full(m.shape[1], 1e-300)
    return gmm


@pytest.mark.parametrize(
    "N,D,K", [(50, 1, 1), (200, 1, 3), (300, 5, 1), (400, 13, 8), (1000, 39, 16)]
)
def test_score_samples_matches_sklearn(N, D, K):
    rng = np.random.default_rng(N + D + K)
    X = rng.normal(0, 3, (N, D))
    w, m, v = random_params(rng, K, D)
    sk = GaussianMixture(K, covariance_type="diag")
    sk.weights_, sk.means_, sk.covariances_ = w, m, v
    sk.precisions_cholesky_ = 1.0 / np.sqrt(v)
    ours = _set(DiagGMM(K, chunk_size=37), w, m, v).score_samples(X)
    np.testing.assert_allclose(ours, sk.score_samples(X), rtol=1e-10)


def test_log_density_matches_scipy_naive_loop():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(30, 3))
    w, m, v = random_params(rng, 4, 3)
    ref = np.array(
        [[np.log(w[k]) + norm.logpdf(x, m[k], np.sqrt(v[k])).sum() for k in range(4)] for x in X]
    )
    np.testing.assert_allclose(estimate_log_prob(X, w, m, v), ref, rtol=1e-12)
    np.testing.assert_allclose(log_likelihood(X, Params(w, m, v)), logsumexp(ref, axis=1), rtol=1e-12)


def test_one_em_step_matches_closed_form():
    rng = np.random.default_rng(7)
    X = rng.normal(0, 2, (500, 4))
    w, m, v = random_params(rng, 5, 4)
    # closed form, written out directly
    L = np.stack([np.log(w[k]) + norm.logpdf(X, m[k], np.sqrt(v[k])).sum(1) for k in range(5)], 1)
    R = np.exp(L - logsumexp(L, axis=1, keepdims=True))
    nk = R.sum(0)
    mu = R.T @ X / nk[:, None]
    var = np.stack([(R[:, k : k + 1] * (X - mu[k]) ** 2).sum(0) / nk[k] for k in range(5)])
    gmm = _set(DiagGMM(5, min_weight=0.0, min_count=0.0, chunk_size=64), w, m, v)
    gmm.maximise(gmm.accumulate(X))
    np.testing.assert_allclose(gmm.weights_, nk / 500, rtol=1e-10)
    np.testing.assert_allclose(gmm.means_, mu, rtol=1e-10)
    np.testing.assert_allclose(gmm.variances_, var, rtol=1e-10)


def test_weighted_accumulate_equals_repeated_frames():
    rng = np.random.default_rng(8)
    X = rng.normal(size=(40, 2))
    reps = rng.integers(0, 4, size=40)
    p = random_params(rng, 3, 2)
    a = accumulate(X, Params(*p), sample_weight=reps.astype(float))
    b = accumulate(np.repeat(X, reps, axis=0), Params(*p))
    assert a.allclose(b, rtol=1e-10)


def test_fast_kernel_matches_numpy_path():
    rng = np.random.default_rng(9)
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 1e-5)):
        X = rng.normal(0, 2, (3000, 20)).astype(dtype)
        p = random_params(rng, 32, 20)
        sw = rng.uniform(0, 2, 3000)
        a = accumulate(X, Params(*p), sample_weight=sw, fast=True)
        b = accumulate(X, Params(*p), sample_weight=sw, fast=False)
        assert a.allclose(b, rtol=tol, atol=tol)
        np.testing.assert_allclose(
            log_likelihood(X, Params(*p), fast=True), log_likelihood(X, Params(*p), fast=False), rtol=tol
        )
    assert kernels.HAVE_NUMBA


_dims = st.tuples(st.integers(1, 4), st.integers(1, 3))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    KD=_dims,
    n=st.integers(30, 150),
    init=st.sampled_from(["kmeans++", "split"]),
)
def test_em_invariants(seed, KD, n, init):
    K, D = KD
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 1, (n, D)) + rng.normal(0, 4, (K, D))[rng.integers(0, K, n)]
    gmm = DiagGMM(K, init=init, max_iter=25, tol=1e-8, random_state=seed, chunk_size=17)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("error", RuntimeWarning)  # any likelihood drop would surface here
        gmm.fit(X)
    h = np.array(gmm.history_)
    reseed_iters = {e["iteration"] for e in gmm.fit_report_["reseeded"]}
    for i in range(1, len(h)):
        if i not in reseed_iters:
            assert h[i] >= h[i - 1] - 1e-9 * max(1.0, abs(h[i - 1])), (i, h)
    assert abs(gmm.weights_.sum() - 1) < 1e-12
    assert np.all(gmm.weights_ >= gmm.min_weight * (1 - 1e-9))
    assert np.all(gmm.variances_ >= gmm.var_floor_)
    assert np.all(np.isfinite(gmm.means_))


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), c1=st.integers(1, 50), c2=st.integers(51, 5000))
def test_fit_independent_of_chunk_size(seed, c1, c2):
    X, _ = draw_mixture(300, seed=seed % 1000)
    a = DiagGMM(3, random_state=seed, chunk_size=c1, max_iter=30).fit(X)
    b = DiagGMM(3, random_state=seed, chunk_size=c2, max_iter=30).fit(X)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(a.variances_, b.variances_, rtol=1e-7)
    np.testing.assert_allclose(a.weights_, b.weights_, rtol=1e-7)


def test_fit_iter_equals_fit(mixture_data):
    X, _ = mixture_data
    a = DiagGMM(3, random_state=0).fit(X)
    parts = np.array_split(X, 7)
    b = DiagGMM(3, random_state=0).fit_iter(lambda: iter(parts))
    c = DiagGMM(3, random_state=0).fit_iter(parts)
    for m in (b, c):
        np.testing.assert_allclose(a.means_, m.means_, rtol=1e-8)
        np.testing.assert_allclose(a.variances_, m.variances_, rtol=1e-8)
    with pytest.raises(ParameterError, match="one-shot"):
        DiagGMM(3).fit_iter(iter(parts))


def test_fit_iter_from_memmap(tmp_path, mixture_data):
    X, _ = mixture_data
    np.save(tmp_path / "x.npy", X.astype(np.float32))
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    g = DiagGMM(3, random_state=0).fit_iter(
        lambda: (mm[i : i + 1000] for i in range(0, len(mm), 1000))
    )
    assert np.allclose(np.sort(g.means_[:, 0]), np.sort(TRUE_MEANS[:, 0]), atol=0.1)


def test_float32_large_offset_is_accurate():
    rng = np.random.default_rng(11)
    X = (1e4 + rng.normal(0, 1, (20000, 4)) * [1, 0.5, 2, 0.1]).astype(np.float32)
    a = DiagGMM(1, max_iter=1).fit(X)
    b = DiagGMM(1, max_iter=1).fit(X.astype(np.float64))
    assert np.all(np.isfinite(a.variances_)) and np.all(a.variances_ > 0)
    np.testing.assert_allclose(a.variances_, b.variances_, rtol=1e-4)
    # two components, one EM step from the same start: responsibilities are float32 too
    sd = np.sqrt(b.variances_[0])
    init = dict(means_init=b.means_[[0, 0]] + [0.5 * sd, -0.5 * sd], random_state=0, max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a2 = DiagGMM(2, **init).fit(X)
        b2 = DiagGMM(2, **init).fit(X.astype(np.float64))
    np.testing.assert_allclose(a2.variances_, b2.variances_, rtol=1e-4)
    assert np.all(np.abs(a2.means_ - b2.means_) <= 1e-4 * sd)


@pytest.mark.parametrize("init", ["kmeans++", "split"])
def test_recovers_known_means(mixture_data, init):
    X, _ = mixture_data
    g = DiagGMM(3, init=init, random_state=0).fit(X)
    order = np.argsort(g.means_[:, 0])
    np.testing.assert_allclose(g.means_[order], TRUE_MEANS, atol=0.1)
    assert g.converged_


@pytest.mark.parametrize("K", [5, 7])
def test_split_reaches_any_k(mixture_data, K):
    X, _ = mixture_data
    g = DiagGMM(K, init="split", random_state=0, max_iter=20).fit(X)
    assert g.means_.shape == (K, 3)
    assert len(np.unique(g.means_.round(6), axis=0)) == K
    assert np.isfinite(g.score(X))


def test_degenerate_component_is_reseeded(caplog):
    rng = np.random.default_rng(3)
    X, _ = draw_mixture(600, seed=3)
    iso = np.array([[40.0, 40.0, 40.0]])
    X = np.vstack([X, iso, iso])
    means_init = np.vstack([TRUE_MEANS, iso])
    with caplog.at_level("INFO", logger="audiogmm.mixture"):
        g = DiagGMM(4, means_init=means_init, random_state=0, max_iter=50).fit(X)
    events = g.fit_report_["reseeded"]
    assert any(e["component"] == 3 for e in events)
    assert g.fit_report_["n_reseeded"] == len(events) >= 1
    assert "re-seeded" in caplog.text
    assert g.means_.shape == (4, 3) and np.all(np.isfinite(g.means_))
    assert np.all(g.variances_ >= g.var_floor_) and abs(g.weights_.sum() - 1) < 1e-12
    assert np.all(g.means_[:, 0] < 30)  # nothing is left sitting on the duplicated point
    _ = rng


def test_identical_frames_fallback():
    X = np.ones((100, 3))
    with pytest.warns(RuntimeWarning, match="zero variance"):
        g = DiagGMM(2, random_state=0).fit(X)
    assert np.all(np.isfinite(g.variances_)) and np.all(g.variances_ > 0)
    assert np.all(np.isfinite(g.score_samples(X)))


@pytest.mark.parametrize(
    "X, match",
    [
        (np.zeros(10), "must be 2-D"),
        (np.zeros((10, 2, 2)), "must be 2-D"),
        (np.full((10, 2), np.nan), "NaN or inf"),
        (np.array([[1.0, np.inf]] * 10), "NaN or inf"),
        (np.zeros((2, 2)), "n_components=3 but X has 2 frames"),
        (np.array([["a", "b"]] * 5), "numeric"),
    ],
)
def test_bad_input_raises(X, match):
    with pytest.raises(ParameterError, match=match):
        DiagGMM(3).fit(X)


def test_dimension_mismatch_and_unfitted(mixture_data):
    X, _ = mixture_data
    with pytest.raises(ParameterError, match="not fitted"):
        DiagGMM(3).score_samples(X)
    g = DiagGMM(3, random_state=0).fit(X)
    with pytest.raises(ParameterError, match="n_dims=2, but the model has n_dims=3"):
        g.score_samples(X[:, :2])


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"n_components": 0}, "n_components"),
        ({"tol": -1.0}, "tol"),
        ({"init": "random"}, "init"),
        ({"n_init": 0}, "n_init"),
        ({"min_weight": 0.5}, "min_weight"),
        ({"chunk_size": 0}, "chunk_size"),
    ],
)
def test_bad_params_raise_in_fit(kw, match):
    kw = {"n_components": 3, **kw}
    g = DiagGMM(**kw)  # __init__ only stores
    with pytest.raises(ParameterError, match=match):
        g.fit(np.random.default_rng(0).normal(size=(50, 2)))


def test_sklearn_style_api(mixture_data):
    X, _ = mixture_data
    g = DiagGMM(3, random_state=0, max_iter=50)
    assert repr(g) == "DiagGMM(3, max_iter=50, random_state=0)"
    assert g.get_params()["max_iter"] == 50
    g.set_params(max_iter=60).fit(X)
    with pytest.raises(ParameterError, match="unknown parameter"):
        g.set_params(bogus=1)
    P = g.predict_proba(X[:10])
    np.testing.assert_allclose(P.sum(1), 1.0)
    assert g.predict(X[:10]).shape == (10,)
    S, lab = g.sample(500)
    assert S.shape == (500, 3) and lab.shape == (500,)
    assert np.isclose(g.log_likelihood_total(X), g.score(X) * len(X))
    sk = GaussianMixture(3, covariance_type="diag", random_state=0).fit(X)
    assert np.isclose(g.score(X), sk.score(X), rtol=1e-4)


def test_bic_aic_equal_sklearn_on_same_parameters(mixture_data):
    X, _ = mixture_data
    g = DiagGMM(3, random_state=0).fit(X)
    sk = GaussianMixture(3, covariance_type="diag")
    sk.weights_, sk.means_, sk.covariances_ = g.weights_, g.means_, g.variances_
    sk.precisions_cholesky_ = 1.0 / np.sqrt(g.variances_)
    np.testing.assert_allclose(g.bic(X), sk.bic(X), rtol=1e-10)
    np.testing.assert_allclose(g.aic(X), sk.aic(X), rtol=1e-10)


def test_n_init_picks_the_best_of_runs_that_differ():
    # few iterations from k-means++ seeds on overlapping clusters: runs end in different places
    X, _ = draw_mixture(3000, seed=4)
    g = DiagGMM(8, n_init=4, random_state=0, max_iter=3, tol=0.0).fit(X)
    finals = g.fit_report_["init_final_mean_logliks"]
    assert len(finals) == 4 and len(set(np.round(finals, 9))) > 1, finals
    assert g.fit_report_["best_init"] == int(np.argmax(finals))
    assert g.history_[-1] == max(finals)
    # and the chosen model is that run's: scoring the data gives its likelihood back
    np.testing.assert_allclose(g.score(X), max(finals), rtol=1e-6)


def test_convergence_warning(mixture_data):
    X, _ = mixture_data
    with pytest.warns(ConvergenceWarning, match="max_iter=1"):
        DiagGMM(3, max_iter=1, tol=0.0, random_state=0).fit(X)


def test_maximise_floors():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 2))
    w, m, v = random_params(rng, 3, 2)
    st_ = accumulate(X, Params(w, m, v))
    w2, m2, v2 = maximise(st_, var_floor=np.array([5.0, 5.0]), min_weight=0.3)
    assert np.all(v2 >= 5.0) and np.all(w2 >= 0.3 - 1e-12) and np.isclose(w2.sum(), 1)


def test_thread_count_gives_bit_identical_model(mixture_data):
    X, _ = mixture_data
    a = DiagGMM(4, random_state=0, chunk_size=100, n_jobs=1).fit(X)
    b = DiagGMM(4, random_state=0, chunk_size=100, n_jobs=2).fit(X)
    c = DiagGMM(4, random_state=0, chunk_size=100, n_jobs=3).fit(X)
    for m in (b, c):
        np.testing.assert_array_equal(a.means_, m.means_)
        np.testing.assert_array_equal(a.variances_, m.variances_)
        np.testing.assert_array_equal(a.weights_, m.weights_)


def test_float32_with_collapsed_component_falls_back_to_float64():
    rng = np.random.default_rng(12)
    X = rng.normal(0, 3, (2000, 10)).astype(np.float32)
    w, m, v = random_params(rng, 4, 10)
    m[0] = X[7]
    v[0] = 1e-8  # a component collapsed onto one frame
    ll32 = log_likelihood(X, Params(w, m, v))
    ll64 = log_likelihood(X.astype(np.float64), Params(w, m, v))
    np.testing.assert_allclose(ll32, ll64, rtol=1e-9)
    a = accumulate(X, Params(w, m, v))
    b = accumulate(X.astype(np.float64), Params(w, m, v))
    assert a.allclose(b, rtol=1e-9, atol=1e-6)


def test_predict_proba_is_chunked_and_equals_the_reference():
    from audiogmm.mixture import log_softmax
    from audiogmm.mixture.estep import estimate_log_prob

    X, _ = draw_mixture(3001, seed=3)
    g = DiagGMM(4, random_state=0, chunk_size=256).fit(X)
    ref = np.exp(log_softmax(estimate_log_prob(X, g.weights_, g.means_, g.variances_)))
    np.testing.assert_allclose(g.predict_proba(X), ref, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(g.predict(X), ref.argmax(1))
    assert g.predict(X[:0]).shape == (0,) and g.predict_proba(X[:0]).shape == (0, 4)
