"""The scikit-learn faces in audiogmm.sklearn: check_estimator, clone, search, label types."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

from audiogmm.sklearn import DiagGMM, GMMClassifier, GSVClassifier  # noqa: E402

from .conftest import draw_mixture  # noqa: E402

# skips that come from this machine, not from the estimator: optional pandas, and the
# array-API checks that scikit-learn runs only with SCIPY_ARRAY_API=1
ENVIRONMENT_SKIPS = ("pandas is not installed", "SCIPY_ARRAY_API is not set")


def test_check_estimator_passes_without_expected_failures():
    results = check_estimator(DiagGMM(), on_skip=None, on_fail=None)
    failed = [(r["check_name"], r["exception"]) for r in results if r["status"] == "failed"]
    assert failed == []
    for r in results:
        if r["status"] == "skipped":
            assert any(s in str(r["exception"]) for s in ENVIRONMENT_SKIPS), r
    assert sum(r["status"] == "passed" for r in results) >= 40


def test_import_audiogmm_does_not_import_sklearn():
    code = (
        "import sys, audiogmm, audiogmm.mixture, audiogmm.models, audiogmm.pipeline, "
        "audiogmm.cli; audiogmm.DiagGMM; audiogmm.GMMClassifier; "
        "assert 'sklearn' not in sys.modules, 'sklearn imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_pipeline_grid_search_gives_finite_scores():
    X, _ = draw_mixture(900, seed=3)
    search = GridSearchCV(
        make_pipeline(StandardScaler(), DiagGMM(random_state=0)),
        {"diaggmm__n_components": [1, 2, 3]},
        cv=3,
        error_score="raise",
    ).fit(X)
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores))
    assert search.best_params_ == {"diaggmm__n_components": 3}
    assert np.all(np.isfinite(cross_val_score(DiagGMM(2, random_state=0), X, cv=3)))


def test_fitted_attributes_and_errors():
    X, _ = draw_mixture(600, seed=4)
    gmm = DiagGMM(3, random_state=0)
    with pytest.raises(NotFittedError):
        gmm.score_samples(X)
    with pytest.raises(NotFittedError):
        gmm.predict(X)
    labels = gmm.fit_predict(X)
    assert labels.shape == (600,) and set(np.unique(labels)) == {0, 1, 2}
    assert gmm.n_features_in_ == 3
    assert gmm.covariances_ is gmm.variances_
    assert gmm.lower_bound_ == gmm.history_[-1] and gmm.lower_bounds_ == gmm.history_
    assert np.isfinite(gmm.score(X))
    with pytest.raises(ValueError, match="features"):
        gmm.score(X[:, :2])
    with pytest.raises(ValueError, match="2D array"):
        gmm.predict(X[:, 0])
    with pytest.raises(ValueError, match="[Cc]omplex"):
        DiagGMM().fit(X + 1j)
    with pytest.raises(ValueError):
        DiagGMM().fit(np.empty((0, 3)))
    with pytest.raises(ValueError):
        DiagGMM().fit(np.array([["a", "b"], ["c", "d"]], dtype=object))
    scipy_sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="[Ss]parse"):
        DiagGMM().fit(scipy_sparse.csr_matrix(X))


def test_zero_sample_weight_is_leaving_the_frame_out():
    X, _ = draw_mixture(400, seed=5)
    sw = np.ones(400)
    sw[::3] = 0.0
    a = DiagGMM(1).fit(X, sample_weight=sw)
    b = DiagGMM(1).fit(X[sw > 0])
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-10)
    np.testing.assert_allclose(a.variances_, b.variances_, rtol=1e-8)
    with pytest.raises(ValueError, match="all zero: nothing to fit"):
        DiagGMM(1).fit(X, sample_weight=np.zeros(400))


# -- GMMClassifier -------------------------------------------------------------------------


def clips_for(labels, seed=0, n=80):
    rng = np.random.default_rng(seed)
    centres = {y: 4.0 * i for i, y in enumerate(sorted(set(labels)))}
    return [rng.normal(centres[y], 1.0, (n, 3)) for y in labels]


def test_integer_labels_round_trip_and_columns_follow_classes():
    y = np.array([10, 10, 10, 2, 2, 2, 7, 7, 7])  # string order "10" < "2" < "7"
    X = clips_for(y)
    clf = GMMClassifier(2, max_iter=20).fit(X, y)
    assert clf.classes_.tolist() == [2, 7, 10]
    assert clf.classes_.dtype == y.dtype
    pred = clf.predict(X)
    assert pred.dtype == y.dtype and pred.tolist() == y.tolist()
    proba = clf.predict_proba(X)
    assert proba.shape == (9, 3)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(1)], y)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert clf.score(X, y) == 1.0
    assert clf.score(X, np.roll(y, 3)) == 0.0
    assert clf.n_features_in_ == 3


def test_object_array_of_clips_and_string_labels():
    y = ["dog", "cat", "dog", "cat"]
    X = np.empty(4, dtype=object)
    X[:] = clips_for(y, seed=1)
    clf = GMMClassifier(1).fit(X, y)
    assert clf.classes_.tolist() == ["cat", "dog"]
    assert clf.predict(X).tolist() == y
    with pytest.raises(ValueError, match="list"):
        clf.predict(np.zeros((4, 3)))


def test_priors_are_keyed_by_the_labels():
    y = [0, 0, 1, 1]
    X = clips_for(y, seed=2)
    flat = GMMClassifier(1).fit(X, y).decision_function(X)
    clf = GMMClassifier(1, priors={1: 0.8, 0: 0.2}).fit(X, y)
    np.testing.assert_allclose(clf.decision_function(X), flat)
    lp = clf.predict_log_proba(X)
    # the prior ratio of classes_[0] to classes_[1] shifts the log-odds by log(0.2 / 0.8)
    np.testing.assert_allclose(
        lp[:, 0] - lp[:, 1], flat[:, 0] - flat[:, 1] + np.log(0.25), rtol=1e-9, atol=1e-6
    )
    with pytest.raises(ValueError, match="priors"):
        GMMClassifier(1, priors={0: 1.0}).fit(X, y)


def test_clone_and_params():
    clf = GMMClassifier(4, max_iter=7, init="split", random_state=3)
    c2 = clone(clf)
    assert c2.get_params() == clf.get_params()
    assert c2.get_params()["max_iter"] == 7
    c2.set_params(n_components=2, tol=1e-3)
    assert (c2.n_components, c2.tol) == (2, 1e-3)
    with pytest.raises(NotFittedError):
        c2.predict(clips_for([0]))
    gmm = clone(DiagGMM(3, tol=1e-2))
    assert gmm.get_params()["tol"] == 1e-2


def test_grid_search_over_clips_with_group_kfold():
    y = np.repeat([0, 1, 2], 8)
    X = clips_for(y, seed=3, n=60)
    groups = np.tile(np.arange(4), 6)  # four "speakers", each in every class
    search = GridSearchCV(
        GMMClassifier(max_iter=30, tol=1e-3),
        {"n_components": [1, 2, 4]},
        cv=GroupKFold(n_splits=4),
        error_score="raise",
    ).fit(X, y, groups=groups)
    assert np.all(search.cv_results_["mean_test_score"] == 1.0)
    assert search.best_estimator_.predict(X).tolist() == y.tolist()


def test_classifier_face_speaks_the_users_labels(tmp_path, caplog):
    """Messages and a saved ``model_`` use the user's labels, not internal keys (issue 21.10)."""
    import warnings

    from audiogmm.features import FeatureConfig
    from audiogmm.pipeline import load_model, save_model

    rng = np.random.default_rng(0)
    D = FeatureConfig().n_dims
    clips = [rng.normal(m, 1, (n, D)) for m, n in ((0, 400), (0, 400), (4, 20))]
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        clf = GMMClassifier(4, max_iter=3).fit(clips, ["en", "en", "de"])
    text = " ".join(str(w.message) for w in got) + caplog.text
    assert "'de'" in text and "'0'" not in text and "'1'" not in text
    save_model(tmp_path / "m.npz", clf.model_, FeatureConfig())
    test = [rng.normal(4, 1, (50, D))]
    assert load_model(tmp_path / "m.npz").classifier.predict(test).tolist() == ["de"]
    assert clf.predict(test).tolist() == ["de"]


def test_classifier_face_orders_columns_as_classes_when_text_sorts_otherwise():
    rng = np.random.default_rng(1)
    labels = list(range(12))  # as text, "10" and "11" sort before "2"
    clips = [rng.normal(3 * y, 0.5, (60, 2)) for y in labels]
    clf = GMMClassifier(1, max_iter=5).fit(clips, labels)
    test = [rng.normal(3 * y, 0.5, (40, 2)) for y in labels]
    assert clf.predict(test).tolist() == labels
    P = clf.predict_proba(test)
    assert np.array_equal(P.argmax(1), np.arange(12))
    assert np.array_equal(clf.decision_function(test).argmax(1), np.arange(12))


# -- GSVClassifier ---------------------------------------------------------------------------


def overlapping_clips(labels, seed=0, n=150):
    """Classes that share the UBM's components (centres 1 apart, unit spread): a clip's MAP
    offsets point its class's way (well-apart classes would own components of their own)."""
    rng = np.random.default_rng(seed)
    centres = {y: 1.0 * i for i, y in enumerate(sorted(set(labels)))}
    return [rng.normal(centres[y], 1.0, (n, 3)) for y in labels]


def test_gsv_face_defaults_are_the_cores():
    """One default per parameter: the face's are the core's own, its UBM's mixture defaults
    (split growth, 10 iterations) over DiagGMM's."""
    import inspect

    from audiogmm.mixture import DiagGMM as CoreGMM
    from audiogmm.models import GSVClassifier as CoreGSV
    from audiogmm.models.ubm import UBM_DEFAULTS

    def defaults(cls):
        return {p.name: p.default for p in inspect.signature(cls.__init__).parameters.values()
                if p.default is not p.empty}  # fmt: skip

    want = {**defaults(CoreGMM), **UBM_DEFAULTS, **defaults(CoreGSV)}
    got = GSVClassifier().get_params()
    assert got == {k: want[k] for k in got}
    assert (got["init"], got["max_iter"], got["length_norm"]) == ("split", 10, True)


def test_gsv_face_is_the_core_model():
    """The face's scores are those of the core GSVClassifier with the same parameters (its
    columns as classes_), and a default face passes no UBM parameter to the core."""
    import warnings

    from audiogmm.exceptions import ConvergenceWarning
    from audiogmm.models import GSVClassifier as CoreGSV

    y = ["b", "a", "c"] * 6
    X = overlapping_clips(y, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # the UBM's fixed budget is quiet
        face = GSVClassifier(8, C=3.0).fit(X, y)
    assert face.model_.gmm_params == {}
    core = CoreGSV(8, C=3.0).fit(X, y)
    np.testing.assert_array_equal(face.decision_function(X), core.score_matrix(X))
    np.testing.assert_array_equal(face.predict_proba(X), core.predict_proba(X))
    assert face.predict(X).tolist() == list(core.predict(X))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a given budget may warn
        given = GSVClassifier(8, max_iter=4, var_floor=0.02).fit(X, y)
    assert given.model_.gmm_params == {"max_iter": 4, "var_floor": 0.02}


def test_gsv_face_labels_clone_and_search():
    y = np.repeat([10, 2, 7], 8)  # as text "10" < "2" < "7"
    X = overlapping_clips(y, seed=5)
    clf = GSVClassifier(8, length_norm=False).fit(X, y)
    assert clf.classes_.tolist() == [2, 7, 10] and clf.predict(X).dtype == y.dtype
    np.testing.assert_allclose(clf.predict_proba(X).sum(1), 1.0)
    assert clf.score(X, y) >= 0.9 and clf.n_features_in_ == 3
    c2 = clone(clf)
    assert c2.get_params() == clf.get_params() and c2.length_norm is False
    with pytest.raises(NotFittedError):
        c2.predict(X)
    groups = np.tile(np.arange(4), 6)
    search = GridSearchCV(GSVClassifier(8), {"C": [1.0, 10.0]}, cv=GroupKFold(n_splits=4),
                          error_score="raise").fit(X, y, groups=groups)  # fmt: skip
    assert np.all(search.cv_results_["mean_test_score"] >= 0.8)
    with pytest.raises(ValueError, match="priors"):
        GSVClassifier(8, priors={2: 1.0}).fit(X, y)
