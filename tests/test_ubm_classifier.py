"""UBMClassifier: MAP-adapted classes, LLR scores, top-C, open-set rejection, model files."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.special import logsumexp

from audiogmm import ModelFileError, ParameterError
from audiogmm.cli import main
from audiogmm.io.container import read_container, write_container
from audiogmm.mixture import map_adapt
from audiogmm.mixture.estep import accumulate, estimate_log_prob, select_scores
from audiogmm.models import GMMClassifier, UBMClassifier, train_ubm
from audiogmm.models.classifier import UNKNOWN
from audiogmm.pipeline import load_model

# speech-like: every class shares the same "phonetic" components, moved by a small offset
BASE = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 1.0], [0.0, 3.0, -1.0], [-2.0, -2.0, 2.0]])
OFFSETS = {"a": (0.9, 0, 0), "b": (0, 0.9, 0), "c": (0, 0, 0.9), "d": (-0.6, -0.6, -0.6)}


def make_clips(labels, n_clips=6, n_frames=150, seed=0):
    rng = np.random.default_rng(seed)
    clips, ys = [], []
    for y in labels:
        for _ in range(n_clips):
            z = rng.integers(0, len(BASE), n_frames)
            clips.append(BASE[z] + np.array(OFFSETS[y]) + rng.normal(0, 0.6, (n_frames, 3)))
            ys.append(y)
    return clips, ys


@pytest.fixture(scope="module")
def fitted():
    clips, ys = make_clips("abc")
    return UBMClassifier(8, relevance=8, random_state=0).fit(clips, ys), clips, ys


def ref_loglik(X, w, m, v):
    return logsumexp(estimate_log_prob(X, w, m, v), axis=1)


def test_classes_are_map_adaptations_of_the_ubm(fitted):
    clf, clips, ys = fitted
    ubm = clf.ubm_.params_
    for i, y in enumerate(clf.labels_):
        X = np.concatenate([c for c, lab in zip(clips, ys) if lab == y])
        ref = map_adapt(accumulate(X, ubm), ubm, adapt="m", relevance_means=8)
        np.testing.assert_allclose(clf.means_[i], ref.means, rtol=1e-9, atol=1e-9)
        assert np.array_equal(clf.variances_[i], ubm.variances)
        assert np.array_equal(clf.weights_[i], ubm.weights)


def test_scores_are_llr_against_the_ubm(fitted):
    clf, clips, _ = fitted
    test, _ = make_clips("abc", n_clips=1, seed=5)
    S = clf.score_matrix(test)
    u = clf.ubm_
    for j, X in enumerate(test):
        base = ref_loglik(X, u.weights_, u.means_, u.variances_)
        for i in range(3):
            ll = ref_loglik(X, clf.weights_[i], clf.means_[i], clf.variances_[i])
            assert S[j, i] == pytest.approx((ll - base).sum(), rel=1e-7, abs=1e-6)
    np.testing.assert_allclose(clf.score_samples(test), S / np.array([[len(X)] for X in test]))
    assert clf.predict(test).tolist() == ["a", "b", "c"]
    np.testing.assert_allclose(clf.predict_proba(test).sum(1), 1.0)


@pytest.mark.parametrize("adapt", ["m", "mw", "mwv"])
def test_save_load_round_trip_and_compact_arrays(tmp_path, adapt):
    clips, ys = make_clips("ab", n_clips=3)
    clf = UBMClassifier(4, adapt=adapt, relevance=4, relevance_variances=8).fit(clips, ys)
    p = tmp_path / "m.npz"
    clf.save(p)
    _, arrays = read_container(p, kind="UBMClassifier")
    stored = {k for k in arrays if not k.startswith("ubm_")}
    assert stored == {{"m": "means", "w": "weights", "v": "variances"}[c] for c in adapt}
    back = UBMClassifier.load(p)
    for k in ("weights_", "means_", "variances_"):
        assert np.array_equal(getattr(back, k), getattr(clf, k))
    assert back.labels_ == clf.labels_ and back.adapt == adapt
    assert back.relevance_variances == 8
    test, _ = make_clips("ab", n_clips=1, seed=9)
    assert np.array_equal(back.score_matrix(test), clf.score_matrix(test))


def _rewrite(src, dst, *, header=None, arrays=None, drop=()):
    h, a = read_container(src, kind="UBMClassifier")
    h = {k: v for k, v in h.items() if k not in ("format", "format_version", "kind",
                                                   "audiogmm_version", "arrays", "checksum")}  # fmt: skip
    h.update(header or {})
    a.update(arrays or {})
    for k in drop:
        a.pop(k)
    write_container(dst, kind="UBMClassifier", header=h, arrays=a)


@pytest.mark.parametrize(
    "edit, match",
    [
        (dict(drop=["means"]), "needs"),
        (dict(arrays={"weights": np.ones((2, 4)) / 4}), "needs"),
        (dict(arrays={"means": np.zeros((2, 4, 2))}), "shape"),
        (dict(arrays={"means": np.full((2, 4, 3), np.nan)}), "NaN"),
        (dict(arrays={"ubm_variances": -np.ones((4, 3))}), "variances"),
        (dict(arrays={"ubm_weights": np.ones(4)}), "sum to 1"),
        (dict(arrays={"ubm_var_floor": np.zeros(3)}), "var_floor"),
        (dict(header={"labels": ["a", "a"]}), "labels"),
        (dict(header={"labels": ["a"], "training": {}}), "shape"),
        (dict(header={"labels": ["a"]}), "not labels"),
        (dict(header={"n_components": 5}), "n_components=5"),
        (dict(header={"n_components": "4"}), "n_components"),
        (dict(header={"threshold": "x"}), "threshold"),
        (dict(header={"map": {"adapt": "mq"}}), r"map: missing field\(s\)"),
        (dict(header={"zz_unknown": 1}), r"unknown field\(s\) \['zz_unknown'\]"),
        (dict(header={"priors": {"a": 1e308, "b": 1e308}}), "priors"),
        (dict(header={"training": {"classes": {"a": {"n_frames": "x"}}}}), "n_frames"),
        ("adapt", "adapt"),
        ("relevance", "relevance"),
        ("map_iter", "map_iter"),
        (dict(header={"gmm_params": {"max_iter": -1}}), "max_iter"),
        (dict(header={"gmm_params": {"bogus": 1}}), "bogus"),
        (dict(header={"gmm_params": {"relevance": 1}}), "relevance"),
        (dict(header={"priors": {"a": 1.0}}), "priors"),
        (dict(header={"priors": {"a": 1.0, "b": -1.0}}), "priors"),
        (dict(header={"random_state": "zero"}), "random_state"),
    ],
)
def test_load_validates_every_field(tmp_path, edit, match):
    clips, ys = make_clips("ab", n_clips=2)
    clf = UBMClassifier(4, relevance=4).fit(clips, ys)
    src, dst = tmp_path / "ok.npz", tmp_path / "bad.npz"
    clf.save(src)
    if isinstance(edit, str):  # a bad value inside the map block
        h, _ = read_container(src, kind="UBMClassifier")
        bad = {"adapt": "x", "relevance": -1, "map_iter": 0}[edit]
        edit = dict(header={"map": {**h["map"], edit: bad}})
    _rewrite(src, dst, **edit)
    with pytest.raises(ModelFileError, match=match):
        UBMClassifier.load(dst)


def test_select_scores_against_brute_force():
    clips, ys = make_clips("abc", n_clips=2)
    clf = UBMClassifier(8, adapt="mwv", relevance=2).fit(clips, ys)
    X = make_clips("b", n_clips=1, seed=3)[0][0][:50]
    u = clf.ubm_
    models, base = select_scores(X, u.params_, clf.weights_, clf.means_, clf.variances_, top_c=3)
    Lu = estimate_log_prob(X, u.weights_, u.means_, u.variances_)
    sel = np.argsort(-Lu, axis=1)[:, :3]
    np.testing.assert_allclose(base, logsumexp(np.take_along_axis(Lu, sel, 1), axis=1), rtol=1e-10)
    for i in range(3):
        Li = estimate_log_prob(X, clf.weights_[i], clf.means_[i], clf.variances_[i])
        ref = logsumexp(np.take_along_axis(Li, sel, 1), axis=1)
        np.testing.assert_allclose(models[:, i], ref, rtol=1e-10)
    # float32 frames are computed in float32 (as the full path): close to the float64 values
    m32, b32 = select_scores(X.astype(np.float32), u.params_, clf.weights_, clf.means_,
                             clf.variances_, top_c=3)  # fmt: skip
    np.testing.assert_allclose(m32, models, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(b32, base, rtol=1e-4, atol=1e-3)


def test_top_c_equal_k_is_full_scoring_and_small_c_agrees(fitted):
    clf, _, _ = fitted
    test, _ = make_clips("abc", n_clips=2, seed=7)
    full = clf.score_matrix(test)
    clf.top_c = 8
    assert np.array_equal(clf.score_matrix(test), full)  # top_c >= K: the full path
    try:
        clf.top_c = 3
        topc = clf.score_matrix(test)
    finally:
        clf.top_c = None
    assert not np.array_equal(topc, full)
    assert (topc.argmax(1) == full.argmax(1)).all()


def test_open_set_rejection_calibrated():
    clips, ys = make_clips("abc", n_clips=10, n_frames=120)
    clf = UBMClassifier(8, relevance=4, reject_far=0.1).fit(clips, ys)
    assert clf.threshold_ is not None and np.isfinite(clf.threshold_)
    known, _ = make_clips("abc", n_clips=3, seed=11)
    unknown, _ = make_clips("d", n_clips=6, seed=12)
    pk = clf.predict(known, reject="auto")
    pu = clf.predict(unknown, reject="auto")
    assert (pu == UNKNOWN).mean() >= 0.8
    assert (pk != UNKNOWN).mean() >= 0.8
    assert (clf.predict(known, reject=1e9) == UNKNOWN).all()
    assert (clf.predict(unknown) != UNKNOWN).all()  # no reject: closed set


def test_reject_errors():
    clips, ys = make_clips("ab", n_clips=2)
    clf = UBMClassifier(4).fit(clips, ys)
    with pytest.raises(ParameterError, match="calibrated threshold"):
        clf.predict(clips, reject="auto")
    with pytest.raises(ParameterError, match="reject must be"):
        clf.predict(clips, reject="sometimes")


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(relevance=-1), "relevance"),
        (dict(adapt="q"), "adapt"),
        (dict(map_iter=0), "map_iter"),
        (dict(subsample=0), "subsample"),
        (dict(top_c=0), "top_c"),
        (dict(reject_far=1.0), "reject_far"),
        (dict(max_iter=-1), "max_iter"),
    ],
)
def test_bad_parameters(kw, match):
    clips, ys = make_clips("ab", n_clips=1)
    with pytest.raises(ParameterError, match=match):
        UBMClassifier(4, **kw).fit(clips, ys)


def test_out_of_core_ubm_subsample_and_split_growth():
    clips, ys = make_clips("abc", n_clips=3)
    seen = []

    def chunks():  # a fresh pass over "files on disk" each time
        for X in clips:
            seen.append(X.shape[0])
            yield X

    ubm = train_ubm(chunks, 6, subsample=2, init="split", random_state=0, max_iter=50)
    assert ubm.n_components == 6 and ubm.fit_report_["n_frames"] == sum(len(X[::2]) for X in clips)
    clf = UBMClassifier(relevance=4).fit(clips, ys, ubm=ubm)
    assert clf.n_components == 6 and clf.ubm_ is ubm
    assert clf.predict(make_clips("abc", n_clips=1, seed=4)[0]).tolist() == ["a", "b", "c"]
    # in-memory subsampling trains on every 3rd pooled frame
    clf2 = UBMClassifier(4, subsample=3).fit(clips, ys)
    assert clf2.ubm_.fit_report_["n_frames"] == sum(len(X[::3]) for X in clips)


def test_several_map_iterations_move_further():
    clips, ys = make_clips("ab", n_clips=3)
    one = UBMClassifier(4, relevance=16, random_state=0).fit(clips, ys)
    three = UBMClassifier(4, relevance=16, map_iter=3, random_state=0).fit(clips, ys)
    d1 = np.abs(one.means_ - one.ubm_.means_).sum()
    d3 = np.abs(three.means_ - three.ubm_.means_).sum()
    assert d3 > d1
    assert three.fit_report_["a"]["n_iter"] == 3


# -- the command line: train --backend map, evaluate, predict --reject ---------------------------

ROOT = Path(__file__).resolve().parents[1]
SPEAKERS = ROOT / "data_samples" / "speakers"
PICK = ["ast_en", "ast_fr", "flite_slt", "flite_awb"]


@pytest.fixture(scope="module")
def speaker_folder(tmp_path_factory):
    """4 real speakers x 8 clips, a folder per label."""
    d = tmp_path_factory.mktemp("spk")
    for spk in PICK:
        (d / spk).mkdir()
        for f in sorted((SPEAKERS / spk).glob("*.flac"))[:8]:
            shutil.copy(f, d / spk / f.name)
    return d


def cli(args, code=0):
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == code, r.output
    return r


def test_cli_train_map_evaluate_predict_reject(speaker_folder, tmp_path):
    model = tmp_path / "map.npz"
    out = json.loads(cli(["-q", "train", speaker_folder, "-o", model, "--backend", "map",
                          "--ubm-components", "8", "--relevance", "8", "--adapt", "mw",
                          "--reject-far", "0.2", "--jobs", "1", "--json"]).output)  # fmt: skip
    assert out["backend"] == "map" and out["n_components"] == 8
    bundle = load_model(model)
    assert isinstance(bundle.classifier, UBMClassifier) and bundle.classifier.adapt == "mw"
    assert bundle.classifier.threshold_ is not None
    assert bundle.classifier.gmm_params == {}  # CLI defaults leave the UBM defaults alone
    assert bundle.classifier._ubm_model().init == "split"
    ev = json.loads(cli(["-q", "evaluate", model, speaker_folder, "--jobs", "1", "--json"]).output)
    assert ev["accuracy"] >= 0.75
    clip = sorted((speaker_folder / "flite_slt").glob("*.flac"))[-1]
    pr = json.loads(cli(["-q", "predict", model, clip, "--json", "--reject", "auto"]).output)
    r = pr["results"][0]
    assert r["threshold"] == bundle.classifier.threshold_
    assert r["label"] == ("flite_slt" if r["reject_score"] >= r["threshold"] else UNKNOWN)
    pr = json.loads(cli(["-q", "predict", model, clip, "--json", "--reject", "1e9"]).output)
    assert pr["results"][0]["label"] == UNKNOWN
    cli(["-q", "predict", model, clip, "--reject", "often"], code=2)


def test_cli_reject_auto_needs_a_calibrated_threshold(speaker_folder, tmp_path):
    model = tmp_path / "ml.npz"
    cli(["-q", "train", speaker_folder, "-o", model, "--backend", "ml", "-k", "2", "--max-iter",
         "3", "--jobs", "1"])  # fmt: skip
    clip = sorted((speaker_folder / "ast_en").glob("*.flac"))[0]
    r = cli(["-q", "predict", model, clip, "--reject", "auto"], code=1)  # ml, uncalibrated
    assert "calibrated threshold" in r.output and "--calibrate" in r.output
    model2 = tmp_path / "map.npz"
    cli(["-q", "train", speaker_folder, "-o", model2, "--backend", "map", "--ubm-components",
         "4", "--jobs", "1"])  # fmt: skip
    r = cli(["-q", "predict", model2, clip, "--reject", "auto"], code=1)
    assert "calibrated threshold" in r.output and "--reject-far" in r.output


def test_cli_evaluate_reports_open_set_rates(speaker_folder, tmp_path):
    model = tmp_path / "map.npz"
    cli(["-q", "train", speaker_folder, "-o", model, "--backend", "map", "--ubm-components",
         "8", "--reject-far", "0.2", "--split", "all", "--jobs", "1"])  # fmt: skip
    test = tmp_path / "test"
    shutil.copytree(speaker_folder, test)
    (test / "menardi_it").mkdir()
    for f in sorted((SPEAKERS / "menardi_it").glob("*.flac"))[:5]:
        shutil.copy(f, test / "menardi_it" / f.name)
    args = ["-q", "evaluate", model, test, "--split", "all", "--jobs", "1",
            "--allow-train-overlap"]  # open-set mechanics on training speakers
    ev = json.loads(cli(args + ["--json", "--reject", "auto"]).output)
    o = ev["open_set"]
    assert (o["n_unknown"], o["n_known"]) == (5, 32)
    assert 0 <= o["false_accept"] <= 1 and 0 <= o["false_reject"] <= 1
    preds = ev["confusion"]["labels"]
    assert UNKNOWN in preds and "menardi_it" in preds
    # the count agrees with the predictions
    n_fa = ev["confusion"]["matrix"][preds.index("menardi_it")]
    assert o["n_false_accept"] == sum(n_fa) - n_fa[preds.index(UNKNOWN)]
    # without --reject the unknown speaker is always accepted
    ev = json.loads(cli(args + ["--json"]).output)
    assert ev["open_set"]["false_accept"] == 1.0
    assert "open set:" in cli(args + ["--reject", "auto"]).output
    cli(args + ["--reject", "x"], code=2)


def test_bundle_loads_either_kind_and_refuses_damage(tmp_path):
    from audiogmm.features import FeatureConfig
    from audiogmm.pipeline import save_model

    cfg = FeatureConfig.preset("speech")
    rng = np.random.default_rng(0)
    clips = [rng.normal(i % 2, 1, (100, cfg.n_dims)) for i in range(4)]
    clf = UBMClassifier(2).fit(clips, ["a", "b", "a", "b"])
    p = tmp_path / "m.npz"
    save_model(p, clf, cfg)
    b = load_model(p)
    assert isinstance(b.classifier, UBMClassifier) and b.config == cfg
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (tmp_path / "bad.npz").write_bytes(bytes(raw))
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "bad.npz")
    (tmp_path / "cut.npz").write_bytes(bytes(raw[:100]))
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "cut.npz")


def test_adaptation_runs_through_the_one_em_loop(monkeypatch):
    from audiogmm.mixture import em
    from audiogmm.mixture.mstep import MAPMaximiser

    seen = []
    real = em.run

    def run(*a, **k):
        seen.append(type(k["maximiser"]).__name__)
        return real(*a, **k)

    monkeypatch.setattr(em, "run", run)
    clips, ys = make_clips("abc", n_clips=2)
    UBMClassifier(4, map_iter=2).fit(clips, ys)
    assert seen.count(MAPMaximiser.__name__) == 3  # one run per class, nothing else
    assert seen.count("MLMaximiser") >= 1  # the UBM


def test_a_class_without_frames_keeps_the_ubm():
    clips, ys = make_clips("ab", n_clips=2)
    clips.append(np.zeros((0, 3)))
    ys.append("silent")
    clf = UBMClassifier(4).fit(clips, ys)
    i = clf.labels_.index("silent")
    assert np.array_equal(clf.means_[i], clf.ubm_.means_)
    assert clf.fit_report_["silent"]["n_frames"] == 0
    assert np.all(np.isfinite(clf.score_matrix(make_clips("a", n_clips=1)[0])))


def test_small_data_is_not_subsampled_below_the_components():
    clips, ys = make_clips("ab", n_clips=1, n_frames=100)  # 200 frames, K=16: 50 after /4
    clf = UBMClassifier(16, subsample=4).fit(clips, ys)
    assert clf.ubm_.fit_report_["n_frames"] == 200
    big, ys = make_clips("ab", n_clips=4, n_frames=200)  # 1,600 frames >= 20 * 4 * 4
    assert UBMClassifier(4, subsample=4).fit(big, ys).ubm_.fit_report_["n_frames"] == 400


@pytest.mark.parametrize("cls", [UBMClassifier, GMMClassifier])
def test_unfitted_classifier_error_names_its_own_class(cls):
    # the map backend used to call itself "this GMMClassifier" when not fitted
    X = np.zeros((5, 2))
    with pytest.raises(ParameterError, match=rf"this {cls.__name__} is not fitted"):
        cls(2).predict([X])
    with pytest.raises(ParameterError, match=rf"this {cls.__name__} is not fitted"):
        cls(2).score_matrix([])


def test_train_ubm_defaults_are_the_ubm_of_the_classifier():
    """One default per parameter: train_ubm (Python), UBMClassifier's own UBM and
    `audiogmm ubm` all start from UBM_DEFAULTS (it used DiagGMM's kmeans++ / 100)."""
    from audiogmm.models.ubm import UBM_DEFAULTS

    clips, ys = make_clips("ab", n_clips=3)
    inner = UBMClassifier(4, random_state=0).fit(clips, ys).ubm_
    for ubm in (train_ubm(clips, 4, random_state=0), inner):
        assert {k: ubm.get_params()[k] for k in UBM_DEFAULTS} == UBM_DEFAULTS
    assert train_ubm(clips, 4, max_iter=3).max_iter == 3  # a given value still wins
