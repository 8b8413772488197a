"""Numeric guards: no fit ends non-finite, bad weights and inits are ParameterErrors,
scores stay finite for finite input, and log posteriors sum to 1 for any scores."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from audiogmm import DiagGMM, FeatureConfig, GMMClassifier, ParameterError
from audiogmm.io import load, save
from audiogmm.pipeline import load_model, save_model


def _assert_valid_gmm(g: DiagGMM, X: np.ndarray, tmp_path) -> None:
    for a in (g.weights_, g.means_, g.variances_):
        assert np.all(np.isfinite(a)), "fit ended with non-finite parameters"
    assert np.all(g.variances_ > 0) and abs(g.weights_.sum() - 1) < 1e-6
    p = tmp_path / "fit.npz"
    save(g, p)
    h = load(p, DiagGMM)  # whatever fit accepts, save/load must round-trip
    assert np.all(np.isfinite(h.score_samples(X))), "scores of the training data not finite"


@pytest.mark.parametrize("scale", [1e19, 1e30, 3e37])
def test_float32_at_huge_scale_fits_a_valid_model(scale, tmp_path):
    """(x - c)^2 overflows float32 at 1e30: the fit must still end valid (float64 inside)."""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-3, 1, (200, 3)), rng.normal(3, 1, (200, 3))])
    X32 = (X * scale).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        g = DiagGMM(2, random_state=0).fit(X32)
    _assert_valid_gmm(g, X32, tmp_path)
    assert np.all(np.abs(g.means_) > scale / 10), "the means should be at the scale of the data"
    assert g.fit_report_.get("compute_dtype") == "float64", g.fit_report_
    assert "float64" in " ".join(g.fit_report_.get("notes", [])), g.fit_report_


def test_ordinary_float32_fit_says_float32():
    X = np.random.default_rng(0).normal(0, 1, (300, 3)).astype(np.float32)
    g = DiagGMM(2, random_state=0).fit(X)
    assert g.fit_report_["compute_dtype"] == "float32"


@settings(max_examples=30, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    scale_exp=st.integers(-45, 307),
    dtype=st.sampled_from([np.float32, np.float64]),
    k=st.integers(1, 3),
    seed=st.integers(0, 2**16),
    offset=st.sampled_from([0.0, 1.0, 1e10]),
)
@example(scale_exp=30, dtype=np.float32, k=2, seed=0, offset=0.0)
@example(scale_exp=20, dtype=np.float32, k=1, seed=0, offset=0.0)
@example(scale_exp=300, dtype=np.float64, k=2, seed=0, offset=0.0)
@example(scale_exp=-40, dtype=np.float32, k=2, seed=0, offset=1.0)
def test_fit_either_refuses_or_ends_valid(scale_exp, dtype, k, seed, offset, tmp_path):
    """Whatever the scale: ParameterError, or finite parameters that save, load and score."""
    rng = np.random.default_rng(seed)
    with np.errstate(over="ignore"):
        X = ((rng.normal(0, 1, (120, 3)) + offset) * 10.0**scale_exp).astype(dtype)
    if not np.all(np.isfinite(X)):
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            g = DiagGMM(k, random_state=seed, max_iter=10).fit(X)
    except ParameterError:
        return
    _assert_valid_gmm(g, X, tmp_path)


def test_classifier_refuses_clips_that_do_not_match_its_feature_config(tmp_path):
    cfg = FeatureConfig.preset("speech")
    rng = np.random.default_rng(0)
    clips = [rng.normal(m, 1, (100, 3)) for m in (0, 0, 3, 3)]
    clf = GMMClassifier(2).fit(clips, ["a", "a", "b", "b"])
    with pytest.raises(ParameterError, match="feature config"):
        save_model(tmp_path / "m.npz", clf, cfg)
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("scale", [1.0, 1e30])
def test_classifier_save_always_loads(scale, tmp_path):
    """A classifier that fit() and save() accept must load()."""
    rng = np.random.default_rng(1)
    clips = [(rng.normal(m, 1, (150, 3)) * scale).astype(np.float32) for m in (0, 0, 3, 3)]
    p = tmp_path / "m.npz"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            clf = GMMClassifier(2, random_state=0).fit(clips, ["a", "a", "b", "b"])
        clf.save(p)
    except ParameterError:
        assert not p.exists()
        return
    back = GMMClassifier.load(p)
    lp = back.predict_log_proba(clips)
    assert np.all(np.isfinite(lp)) and np.allclose(np.exp(lp).sum(1), 1.0)


def test_bundle_round_trips(tmp_path):
    cfg = FeatureConfig.preset("speech")
    rng = np.random.default_rng(1)
    clips = [rng.normal(m, 1, (150, cfg.n_dims)) for m in (0, 0, 3, 3)]
    clf = GMMClassifier(2, random_state=0).fit(clips, ["a", "a", "b", "b"])
    save_model(tmp_path / "m.npz", clf, cfg)
    assert load_model(tmp_path / "m.npz").config == cfg


_X3 = np.random.default_rng(2).normal(0, 1, (300, 3))
_MEANS = [[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]

BAD_PARAMS = [
    ("sample_weight_zeros", {}, {"sample_weight": np.zeros(300)}),
    ("sample_weight_nan", {}, {"sample_weight": np.full(300, np.nan)}),
    ("sample_weight_inf", {}, {"sample_weight": np.full(300, np.inf)}),
    ("sample_weight_one_inf", {}, {"sample_weight": np.r_[np.inf, np.ones(299)]}),
    ("sample_weight_negative", {}, {"sample_weight": np.r_[-1.0, np.ones(299)]}),
    ("sample_weight_huge", {}, {"sample_weight": np.full(300, 1e308)}),
    ("sample_weight_string", {}, {"sample_weight": ["x"] * 300}),
    ("sample_weight_2d", {}, {"sample_weight": np.ones((300, 1))}),
    ("sample_weight_object", {}, {"sample_weight": [None] * 300}),
    ("weights_init_zero_sum", {"means_init": _MEANS, "weights_init": [0.0, 0.0]}, {}),
    ("weights_init_inf", {"means_init": _MEANS, "weights_init": [np.inf, 1.0]}, {}),
    ("weights_init_nan", {"means_init": _MEANS, "weights_init": [np.nan, 1.0]}, {}),
    ("weights_init_negative", {"means_init": _MEANS, "weights_init": [-1.0, 2.0]}, {}),
    ("weights_init_huge", {"means_init": _MEANS, "weights_init": [1e308, 1e308]}, {}),
    ("weights_init_tiny", {"means_init": _MEANS, "weights_init": [5e-324, 0.0]}, {}),
    ("weights_init_wrong_shape", {"means_init": _MEANS, "weights_init": [1.0]}, {}),
    ("weights_init_strings", {"means_init": _MEANS, "weights_init": ["a", "b"]}, {}),
    ("variances_init_inf", {"means_init": _MEANS, "variances_init": [[np.inf] * 3] * 2}, {}),
    ("variances_init_nan", {"means_init": _MEANS, "variances_init": [[np.nan] * 3] * 2}, {}),
    ("variances_init_zero", {"means_init": _MEANS, "variances_init": [[0.0] * 3] * 2}, {}),
    ("variances_init_tiny", {"means_init": _MEANS, "variances_init": [[5e-324] * 3] * 2}, {}),
    ("means_init_strings", {"means_init": [["a"] * 3] * 2}, {}),
    ("means_init_inf", {"means_init": [[np.inf] * 3] * 2}, {}),
    ("means_init_huge", {"means_init": [[1e308] * 3] * 2}, {}),
    ("means_init_ragged", {"means_init": [[1.0, 2.0], [1.0]]}, {}),
    ("var_floor_abs_inf", {"var_floor_abs": np.inf}, {}),
    ("var_floor_abs_huge", {"var_floor_abs": 1e308}, {}),
    ("var_floor_inf", {"var_floor": np.inf}, {}),
    ("var_floor_huge", {"var_floor": 1e308}, {}),
    ("var_floor_abs_nan", {"var_floor_abs": np.nan}, {}),
    ("var_floor_abs_tiny", {"var_floor_abs": 5e-324}, {}),
    ("min_count_huge", {"min_count": 1e308}, {}),
]


@pytest.mark.parametrize("params,fit_kw", [(p, f) for _, p, f in BAD_PARAMS],
                         ids=[i for i, _, _ in BAD_PARAMS])  # fmt: skip
def test_bad_weights_and_inits_raise_parameter_error_or_fit_valid(params, fit_kw, tmp_path):
    """Refused at the boundary with ParameterError, or (for extreme but legal values,
    e.g. a huge min_count) a valid fit: never ZeroDivisionError, never NaN parameters."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            g = DiagGMM(2, random_state=0, **params).fit(_X3, **fit_kw)
        except ParameterError:
            return
    _assert_valid_gmm(g, _X3, tmp_path)


@pytest.mark.parametrize("name", ["sample_weight_zeros", "sample_weight_nan", "sample_weight_inf",
                                  "weights_init_zero_sum", "variances_init_inf",
                                  "var_floor_abs_inf", "means_init_strings", "var_floor_inf",
                                  "variances_init_tiny",
                                  "var_floor_abs_tiny"])  # fmt: skip
def test_these_bad_values_are_refused(name):
    params, fit_kw = next((p, f) for i, p, f in BAD_PARAMS if i == name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ParameterError):
            DiagGMM(2, random_state=0, **params).fit(_X3, **fit_kw)


@pytest.mark.parametrize("sw", [np.zeros(300), np.full(300, np.nan), np.r_[-1.0, np.ones(299)]])
def test_accumulate_checks_sample_weight_too(sw):
    g = DiagGMM(2, random_state=0).fit(_X3)
    with pytest.raises(ParameterError, match="sample_weight"):
        g.accumulate(_X3, sample_weight=sw)


def test_classifier_passes_bad_params_as_parameter_error():
    clips = [_X3[:150], _X3[150:]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ParameterError):
            GMMClassifier(2, var_floor_abs=np.inf).fit(clips, ["a", "b"])


@functools.cache
def _fitted_pair() -> tuple[DiagGMM, GMMClassifier]:
    rng = np.random.default_rng(3)
    g = DiagGMM(2, random_state=0).fit(rng.normal(0, 1, (400, 3)))
    clips = [rng.normal(m, 1, (100, 3)) for m in (0.0, 0.0, 2.0, 2.0, 4.0, 4.0)]
    clf = GMMClassifier(2, random_state=0).fit(clips, ["a", "a", "b", "b", "c", "c"])
    return g, clf


@pytest.mark.parametrize("value,dtype", [(1e20, np.float32), (-3e38, np.float32),
                                         (3.4e38, np.float32), (1e150, np.float64),
                                         (1e300, np.float64), (-1.7e308, np.float64)])  # fmt: skip
def test_scores_finite_for_huge_finite_input(value, dtype):
    g, clf = _fitted_pair()
    X = np.full((4, 3), value, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert np.all(np.isfinite(g.score_samples(X)))
        assert np.all(np.isfinite(g.predict_proba(X)))
        S = clf.score_matrix([X])
        lp = clf.predict_log_proba([X])
    assert np.all(np.isfinite(S)), S
    assert not np.any(np.isnan(lp)) and np.allclose(np.exp(lp).sum(1), 1.0), lp


@settings(max_examples=60, deadline=None, database=None)
@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 8), st.just(3)),
                  elements=st.floats(width=32, allow_nan=False, allow_infinity=False)))  # fmt: skip
def test_scores_finite_for_any_finite_float32(X):
    g, clf = _fitted_pair()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert np.all(np.isfinite(g.score_samples(X)))
        assert np.all(np.isfinite(clf.score_matrix([X])))


@settings(max_examples=60, deadline=None, database=None)
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 8), st.just(3)),
                  elements=st.floats(allow_nan=False, allow_infinity=False)))  # fmt: skip
def test_scores_finite_for_any_finite_float64(X):
    g, clf = _fitted_pair()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert np.all(np.isfinite(g.score_samples(X)))
        assert np.all(np.isfinite(clf.score_matrix([X])))


@settings(max_examples=100, deadline=None, database=None)
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 5), st.just(3)),
                  elements=st.floats(allow_nan=False)))  # fmt: skip
@example(np.array([[-1e17, -1e17, -1e17]]))
@example(np.array([[1e300, -1e300, 0.0]]))
@example(np.array([[-np.inf, -np.inf, -np.inf]]))
@example(np.array([[np.inf, np.inf, 0.0]]))
@example(np.array([[-1.7e308, 1.7e308, 1.7e308]]))
def test_log_proba_rows_sum_to_one(S):
    _, clf = _fitted_pair()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lp = clf.log_proba_from_scores(S)
    assert not np.any(np.isnan(lp)) and np.all(lp <= 1e-12)
    np.testing.assert_allclose(np.exp(lp).sum(1), 1.0, atol=1e-9)


def test_log_proba_two_equal_huge_scores():
    """The issue's example: a row of [-1e17, -1e17] must give [log 0.5, log 0.5]."""
    rng = np.random.default_rng(0)
    clf = GMMClassifier(1, random_state=0).fit(
        [rng.normal(0, 1, (50, 2)), rng.normal(3, 1, (50, 2))], ["a", "b"]
    )
    lp = clf.log_proba_from_scores(np.array([[-1e17, -1e17]]))
    np.testing.assert_allclose(lp, np.log([[0.5, 0.5]]), atol=1e-12)


@pytest.mark.parametrize("fast", [True, False])
def test_kernel_never_raises_on_rows_without_mass(fast):
    """A row of -inf or NaN (a broken model) gives NaN, not ZeroDivisionError."""
    from audiogmm.mixture import kernels

    L = np.array([[-np.inf, -np.inf], [np.nan, 0.0], [0.0, 1.0]])
    lse = np.empty(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        kernels.resp_inplace(L, None, lse, fast=fast)
    assert np.isfinite(lse[2]) and np.allclose(L[2].sum(), 1.0)


@pytest.mark.parametrize("amp", [1e7, 1e20, 3e38])
def test_extract_names_absurd_waveform_values(amp):
    from audiogmm import FeatureError, extract

    y = (np.clip(np.random.default_rng(0).normal(size=16000), -1, 1) * amp).astype(np.float32)
    with pytest.raises(FeatureError, match="absurd sample"):
        extract(y, sr=16000)


def test_classifier_report_says_float64_per_class():
    rng = np.random.default_rng(0)
    clips = [(rng.normal(m, 1, (150, 3)) * 1e30).astype(np.float32) for m in (0, 0, 3, 3)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        clf = GMMClassifier(2, random_state=0).fit(clips, ["a", "a", "b", "b"])
    for y in ("a", "b"):
        assert clf.fit_report_[y]["compute_dtype"] == "float64"
        assert clf.fit_report_[y]["notes"], clf.fit_report_[y]


@pytest.mark.parametrize("value", [1e18, 1e25, 3e38])
def test_accumulate_stays_finite_for_far_outliers(value):
    """Frames far beyond a normal-scale model: statistics finite, in float32 and float64."""
    g, _ = _fitted_pair()
    for dtype in (np.float32, np.float64):
        X = np.full((5000, 3), value).astype(dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            st_ = g.accumulate(X)
        for a in (st_.n, st_.F, st_.S):
            assert np.all(np.isfinite(a)), (dtype, a)
        assert np.isfinite(st_.loglik)


def _float32_ok_reference(w: np.ndarray, m: np.ndarray, v: np.ndarray) -> bool:
    """The float32 rules for one mixture, stated one test after another (as before stacking)."""
    if not (1e-30 <= np.min(v) and np.max(v) <= 1e30):
        return False
    if not float(np.max(np.abs(m))) <= 1e18:
        return False
    p = w / w.sum()
    mu = (p[:, None] * m).sum(0)
    spread = (p[:, None] * (v + (m - mu) ** 2)).sum(0)
    return not np.max(25.0 * spread / v) > 1e5


@settings(max_examples=60, deadline=None, database=None)
@given(
    n=st.integers(1, 6), K=st.integers(1, 40), D=st.integers(1, 70), seed=st.integers(0, 2**16),
    extreme=st.sampled_from(["none", "tiny_var", "huge_var", "far_mean", "collapsed", "zero_w"]),
)
def test_stacked_e_step_set_up_equals_each_mixtures_own(n, K, D, seed, extreme):
    """accumulate_many and the batched scorers set up all their mixtures in a few stacked
    calls: each mixture's GEMM weights bit for bit as alone, its float32 decision as the rules
    stated one by one, its saturation as its own."""
    from audiogmm.mixture.estep import float32_safe, gemm_weights, saturation

    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(K), size=n)
    m = rng.normal(0, 1, (n, K, D)) * 10.0 ** rng.uniform(-3, 4, (n, 1, 1))
    v = rng.uniform(0.1, 10, (n, K, D)) ** 2
    i = int(rng.integers(n))  # one member made extreme, the others ordinary
    if extreme == "tiny_var":
        v[i, 0, 0] = 1e-35
    elif extreme == "huge_var":
        v[i, -1, -1] = 1e31
    elif extreme == "far_mean":
        m[i] += 1e19
    elif extreme == "collapsed":
        v[i, 0] = 1e-9
    elif extreme == "zero_w" and K > 1:
        w[i, 0] = 0.0
    shift = rng.normal(0, 1, (n, D))
    with np.errstate(all="ignore"):
        W = gemm_weights(w, m, v, shift, np.float64)
        safe = float32_safe(w, m, v)
        lim = saturation(v, np.float32, per_mixture=True)
        for j in range(n):
            own = gemm_weights(w[j], m[j], v[j], shift[j], np.float64)
            assert W[j].shape == (2 * D + 1, K)
            np.testing.assert_array_equal(W[j], own)
            assert bool(safe[j]) == _float32_ok_reference(w[j], m[j], v[j]), (j, extreme)
            assert lim[j] == saturation(v[j], np.float32)
    assert safe.all() == (not any(not _float32_ok_reference(w[j], m[j], v[j]) for j in range(n)))
