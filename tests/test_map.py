"""MAP adaptation: hand-computed references, zero-count components, limits, the one EM loop."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audiogmm import ParameterError
from audiogmm.mixture import ConvergenceMonitor, Params, em, maximise
from audiogmm.mixture.mstep import MAPMaximiser, check_adapt, map_adapt
from audiogmm.mixture.sources import ArraySource
from audiogmm.mixture.stats import Stats

from .conftest import draw_mixture, random_params


def hard_stats(X: np.ndarray, z: np.ndarray, K: int, shift=None) -> Stats:
    """Statistics with hard assignments z (each frame to one component), about ``shift``."""
    D = X.shape[1]
    shift = np.zeros(D) if shift is None else np.asarray(shift, dtype=float)
    n, F, S = np.zeros(K), np.zeros((K, D)), np.zeros((K, D))
    for x, k in zip(X, z):
        n[k] += 1
        F[k] += x - shift
        S[k] += (x - shift) ** 2
    return Stats(n, F, S, 0.0, float(len(X)), shift)


# prior: 2 components in 1-D; component 0 sees frames {1, 3}, component 1 sees nothing
PRIOR = Params(np.array([0.5, 0.5]), np.array([[2.0], [10.0]]), np.array([[1.0], [4.0]]))
FRAMES = np.array([[1.0], [3.0]])


@pytest.mark.parametrize("shift", [0.0, 2.0, -1e6])
def test_hand_computed_reference_all_three_updates(shift):
    st_ = hard_stats(FRAMES, np.array([0, 0]), 2, shift=[shift])
    # r = 2, n0 = 2 -> alpha = 1/2; E[x] = 2, E[x^2] = 5, T = 2
    p = map_adapt(st_, PRIOR, adapt="mwv", relevance_means=2, relevance_weights=2,
                  relevance_variances=2)  # fmt: skip
    # mu0 = .5*2 + .5*2 = 2;  var0 = .5*5 + .5*(1 + 2**2) - 2**2 = 1.0
    # (bob.learn.em's formula without the square on mu would give .5*5 + .5*(1+2) - 4 = 0)
    # w = [.5*2/2 + .5*.5, 0 + 1*.5] = [.75, .5] -> / 1.25 = [.6, .4]
    np.testing.assert_allclose(p.means, [[2.0], [10.0]], rtol=0, atol=1e-6)
    np.testing.assert_allclose(p.variances, [[1.0], [4.0]], rtol=0, atol=1e-4 * (1 + abs(shift)))
    np.testing.assert_allclose(p.weights, [0.6, 0.4], rtol=0, atol=1e-12)
    # the zero-count component keeps its prior mean and variance bit for bit
    assert p.means[1, 0] == 10.0 and p.variances[1, 0] == 4.0


def test_hand_computed_reference_other_relevances():
    st_ = hard_stats(np.array([[4.0], [6.0], [-1.0]]), np.array([0, 0, 1]), 2)
    # comp 0: n=2, E[x]=5, E[x^2]=26; comp 1: n=1, E[x]=-1, E[x^2]=1; T=3
    p = map_adapt(st_, PRIOR, adapt="mwv", relevance_means=6, relevance_weights=1,
                  relevance_variances=2, var_floor=0.5)  # fmt: skip
    # means: alpha = [2/8, 1/7]
    m0 = 0.25 * 5 + 0.75 * 2  # 2.75
    m1 = (1 / 7) * -1 + (6 / 7) * 10
    np.testing.assert_allclose(p.means[:, 0], [m0, m1], rtol=1e-12)
    # variances: alpha = [2/4, 1/3], with the adapted means
    v0 = 0.5 * 26 + 0.5 * (1 + 4) - m0**2
    v1 = (1 / 3) * 1 + (2 / 3) * (4 + 100) - m1**2
    # different alphas for means and variances can push the formula below zero
    # (v1 = -1.374...): the variance floor catches it
    assert v1 < 0
    np.testing.assert_allclose(p.variances[:, 0], [v0, 0.5], rtol=1e-12)
    # weights: alpha = [2/3, 1/2]
    w = np.array([(2 / 3) * (2 / 3) + (1 / 3) * 0.5, 0.5 * (1 / 3) + 0.5 * 0.5])
    np.testing.assert_allclose(p.weights, w / w.sum(), rtol=1e-12)


def test_only_requested_parameters_move_and_prior_untouched():
    st_ = hard_stats(np.array([[1.0], [3.0], [9.0]]), np.array([0, 0, 1]), 2)
    before = PRIOR.copy()
    p = map_adapt(st_, PRIOR, adapt="m", relevance_means=1)
    assert np.array_equal(p.weights, PRIOR.weights) and np.array_equal(p.variances, PRIOR.variances)
    assert not np.array_equal(p.means, PRIOR.means)
    p = map_adapt(st_, PRIOR, adapt="w")
    assert np.array_equal(p.means, PRIOR.means) and not np.array_equal(p.weights, PRIOR.weights)
    for a, b in zip(PRIOR, before):
        assert np.array_equal(a, b)


def test_all_zero_counts_keep_the_prior_exactly_no_nan():
    st_ = Stats.zeros(2, 1)
    with np.errstate(all="raise"):
        p = map_adapt(st_, PRIOR, adapt="mwv", relevance_means=0, relevance_weights=0,
                      relevance_variances=0)  # fmt: skip
    for a, b in zip(p, PRIOR):
        assert np.array_equal(a, b)


def test_variance_floor_holds():
    st_ = hard_stats(np.array([[2.0], [2.0], [2.0]]), np.array([0, 0, 0]), 2)
    p = map_adapt(st_, PRIOR, adapt="mwv", relevance_variances=0, var_floor=0.25)
    assert p.variances[0, 0] == 0.25


@pytest.mark.parametrize("bad", ["", "x", "mm", 3, None])
def test_bad_adapt(bad):
    with pytest.raises(ParameterError, match="adapt must be"):
        check_adapt(bad)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), "16", True])
def test_bad_relevance(bad):
    with pytest.raises(ParameterError, match="relevance_means must be"):
        map_adapt(hard_stats(FRAMES, np.array([0, 0]), 2), PRIOR, relevance_means=bad)


@st.composite
def stats_and_prior(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    K, D = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    rng = np.random.default_rng(seed)
    w, m, v = random_params(rng, K, D)
    N = draw(st.integers(0, 40))
    X = rng.normal(0, 3, (N, D)) + draw(st.sampled_from([0.0, 1e4]))
    z = rng.integers(0, K, N)
    return hard_stats(X, z, K, shift=X.mean(0) if N else None), Params(w, m, v)


@settings(max_examples=150, deadline=None)
@given(stats_and_prior(), st.sampled_from([0.0, 0.5, 16.0, 1e3]),
       st.sampled_from(["m", "mw", "mwv", "v"]))  # fmt: skip
def test_invariants(sp, r, adapt):
    stats, prior = sp
    floor = 1e-3
    p = map_adapt(stats, prior, adapt=adapt, relevance_means=r, relevance_weights=r,
                  relevance_variances=r, var_floor=floor)  # fmt: skip
    assert all(np.isfinite(a).all() for a in p) and np.all(p.variances > 0)
    assert math.isclose(p.weights.sum(), 1.0, rel_tol=0, abs_tol=1e-12)
    assert np.all(p.weights > 0)
    empty = stats.n == 0
    assert np.array_equal(p.means[empty], prior.means[empty])
    assert np.array_equal(p.variances[empty], prior.variances[empty])
    if "v" in adapt:
        moved = ~empty
        assert np.all(p.variances[moved] >= floor)


@settings(max_examples=60, deadline=None)
@given(stats_and_prior())
def test_limits_r_zero_is_ml_and_r_inf_is_prior(sp):
    stats, prior = sp
    p = map_adapt(stats, prior, adapt="mwv", relevance_means=0, relevance_weights=0,
                  relevance_variances=0)  # fmt: skip
    seen = stats.n > 0
    if seen.all():
        ml = maximise(stats)
        np.testing.assert_allclose(p.weights, ml.weights, rtol=1e-12)
        np.testing.assert_allclose(p.means, ml.means, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(p.variances, ml.variances, rtol=1e-6, atol=1e-6)
    # tiny r: alpha -> 1 where there is data
    q = map_adapt(stats, prior, relevance_means=1e-12)
    mean, _ = stats.mean_var()
    np.testing.assert_allclose(q.means[seen], mean[seen], rtol=1e-9, atol=1e-6)
    big = map_adapt(stats, prior, adapt="mwv", relevance_means=math.inf,
                    relevance_weights=math.inf, relevance_variances=math.inf)  # fmt: skip
    for a, b in zip(big, prior):
        assert np.array_equal(a, b)
    huge = map_adapt(stats, prior, adapt="m", relevance_means=1e15)
    np.testing.assert_allclose(huge.means, prior.means, rtol=1e-9, atol=1e-6)


def test_runs_on_the_one_em_loop_for_several_iterations(monkeypatch):
    X, _ = draw_mixture(3000, seed=3)
    ubm_w, ubm_m, ubm_v = np.array([0.5, 0.3, 0.2]), np.zeros((3, 3)), np.ones((3, 3)) * 4
    ubm_m[0, 0], ubm_m[2, 0] = -3, 3
    ubm = Params(ubm_w, ubm_m, ubm_v)
    calls = []
    mx = MAPMaximiser(ubm, adapt="mwv", var_floor=1e-3)

    def counting(stats, params):
        calls.append(params)
        return mx(stats, params)

    res = em.run(ArraySource(X), ubm, maximiser=counting, monitor=ConvergenceMonitor(0.0, 3))
    assert len(calls) == 3 and res.n_iter == 3
    # iteration 1 equals the direct one-shot adaptation of the E-step against the UBM
    first = em.source_stats(ArraySource(X), ubm)
    direct = map_adapt(first, ubm, adapt="mwv", var_floor=1e-3)
    np.testing.assert_allclose(calls[1].means, direct.means, rtol=1e-12)
    # more iterations move further from the prior and raise the likelihood
    assert res.history[-1] > res.history[0]
    assert np.array_equal(ubm.means, ubm_m)  # prior untouched
