import numpy as np
import pytest

from audiogmm import DiagGMM, ModelFileError, ParameterError
from audiogmm.features import FeatureConfig
from audiogmm.io import load
from audiogmm.models import GMMClassifier
from audiogmm.pipeline import load_model, save_model


def _clips(seed=0, D=4):
    rng = np.random.default_rng(seed)
    centres = {"cat": 0.0, "dog": 3.0, "owl": -3.0}
    clips, labels = [], []
    for y, c in centres.items():
        for _ in range(6):
            clips.append((c + rng.normal(size=(int(rng.integers(50, 120)), D))).astype(np.float32))
            labels.append(y)
    return clips, labels


@pytest.fixture(scope="module")
def fitted():
    clips, labels = _clips()
    return GMMClassifier(4, random_state=0, max_iter=30).fit(clips, labels), clips, labels


def test_score_matrix_equals_per_label_sums(fitted):
    clf, clips, _ = fitted
    X64 = [c.astype(np.float64) for c in clips]
    S = clf.score_matrix(X64)
    ref = np.array([[clf.models_[y].score_samples(c).sum() for y in clf.labels_] for c in X64])
    np.testing.assert_allclose(S, ref, rtol=1e-9)
    S32 = clf.score_matrix(clips)
    np.testing.assert_allclose(S32, ref, rtol=1e-5)


def test_predict_and_proba(fitted):
    clf, clips, labels = fitted
    assert list(clf.predict(clips)) == labels
    P = clf.predict_proba(clips)
    np.testing.assert_allclose(P.sum(1), 1.0)
    assert P.shape == (len(clips), 3)
    clf2 = GMMClassifier(4, priors={"cat": 0.2, "dog": 0.3, "owl": 0.5})
    clf2.__dict__.update({k: v for k, v in clf.__dict__.items() if k.endswith("_")})
    LP, LP2 = clf.predict_log_proba(clips), clf2.predict_log_proba(clips)
    d = (LP2[:, 0] - LP2[:, 2]) - (LP[:, 0] - LP[:, 2])
    np.testing.assert_allclose(d, np.log(0.2 / 0.5), rtol=1e-9)


def test_parallel_and_sequential_training_identical():
    clips, labels = _clips(1)
    a = GMMClassifier(3, n_jobs=1, random_state=5).fit(clips, labels)
    b = GMMClassifier(3, n_jobs=3, random_state=5).fit(clips, labels)
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(a.variances_, b.variances_)


def test_explicit_seeds_are_the_default_ones_and_are_checked():
    # a class's mixture seed is a SeedSequence child of random_state by the label's index:
    # given explicitly, the same model; another seed, another start; bad ones named
    from audiogmm.models.classifier import class_seeds

    clips, labels = _clips(2)
    a = GMMClassifier(3, random_state=5, max_iter=10).fit(clips, labels)
    seeds = dict(zip(a.labels_, class_seeds(5, 3)))
    b = GMMClassifier(3, random_state=5, max_iter=10).fit(clips, labels, seeds=seeds)
    np.testing.assert_array_equal(a.means_, b.means_)
    c = GMMClassifier(3, random_state=5, max_iter=10).fit(
        clips, labels, seeds={**seeds, "dog": seeds["dog"] + 1})
    assert not np.array_equal(a.models_["dog"].means_, c.models_["dog"].means_)
    np.testing.assert_array_equal(a.models_["cat"].means_, c.models_["cat"].means_)
    for bad in ({"cat": 1, "dog": 2}, {**seeds, "owl": -1}, {**seeds, "owl": 1.5}, [1, 2, 3]):
        with pytest.raises(ParameterError, match="seeds must"):
            GMMClassifier(3).fit(clips, labels, seeds=bad)


def test_class_with_too_little_data_is_named():
    clips, labels = _clips()
    clips.append(np.zeros((3, 4), np.float32))
    labels.append("mouse")
    with pytest.raises(ParameterError, match="n_components=8 but class 'mouse' has 3 frames"):
        GMMClassifier(8).fit(clips, labels)


def test_bad_inputs():
    clips, labels = _clips()
    with pytest.raises(ParameterError, match="clips but"):
        GMMClassifier(2).fit(clips, labels[:-1])
    bad = list(clips)
    bad[2] = bad[2].copy()
    bad[2][0, 0] = np.nan
    with pytest.raises(ParameterError, match="clip 2 .*NaN"):
        GMMClassifier(2).fit(bad, labels)
    with pytest.raises(ParameterError, match="unknown DiagGMM parameter"):
        GMMClassifier(2, bogus=1)


def test_save_load_round_trip(fitted, tmp_path):
    clf, clips, _ = fitted
    with pytest.raises(ParameterError, match=r"unknown field\(s\) \['note'\]"):
        clf.save(tmp_path / "c.npz", extra={"note": "kept"})  # no table declares it
    kaldi = {"data": "/d", "split": None, "train_fraction": 0.7, "seed": 0, "train_utts": ["u"]}
    clf.save(tmp_path / "c.npz", extra={"kaldi": kaldi})
    back = GMMClassifier.load(tmp_path / "c.npz")
    assert back.labels_ == clf.labels_ and back.file_header_["kaldi"] == kaldi
    np.testing.assert_array_equal(back.means_, clf.means_)
    np.testing.assert_array_equal(back.score_matrix(clips), clf.score_matrix(clips))
    with pytest.raises(ModelFileError, match="holds a 'GMMClassifier'"):
        load(tmp_path / "c.npz", DiagGMM)
    data = (tmp_path / "c.npz").read_bytes()
    (tmp_path / "t.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="t.npz"):
        GMMClassifier.load(tmp_path / "t.npz")


def test_bundle_keeps_the_feature_config(fitted, tmp_path):
    clf, clips, _ = fitted
    cfg = FeatureConfig.preset("speech").replace(n_mfcc=4, delta_order=0)
    save_model(tmp_path / "c.npz", clf, cfg)
    back = load_model(tmp_path / "c.npz")
    assert back.config == cfg and back.classifier.labels_ == clf.labels_
    np.testing.assert_array_equal(back.classifier.score_matrix(clips), clf.score_matrix(clips))
    clf.save(tmp_path / "bare.npz")  # a classifier file without a front end
    with pytest.raises(ModelFileError, match="no feature configuration"):
        load_model(tmp_path / "bare.npz")


def test_config_dims_must_match_model(fitted, tmp_path):
    clf, _, _ = fitted
    with pytest.raises(ParameterError, match="gives 60"):
        save_model(tmp_path / "c.npz", clf, FeatureConfig.preset("speech"))  # model has 4 dims
    clf.save(tmp_path / "c.npz", extra={"feature_config": FeatureConfig.preset("speech").to_dict()})
    with pytest.raises(ModelFileError, match="feature config gives 60"):
        load_model(tmp_path / "c.npz")


def test_training_progress_callback_counts_classes():
    clips, labels = _clips(2)
    calls = []
    GMMClassifier(2, n_jobs=2).fit(clips, labels, progress=lambda d, t, label: calls.append((d, t)))
    assert sorted(calls) == [(1, 3), (2, 3), (3, 3)]
