"""Late fusion of front ends: FusedClassifier scores, its file, the pipeline and auto's choice."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from audiogmm.cli import main
from audiogmm.data import Record, RunOptions, read_manifest
from audiogmm.exceptions import ModelFileError, ParameterError
from audiogmm.features import PRESETS, FeatureConfig
from audiogmm.models import FusedClassifier, GMMClassifier
from audiogmm.pipeline import evaluate_classifier, load_model, predict_files, save_model
from audiogmm.selection import steps, train_tuned, tune

from .conftest_audio import record_extractions
from .test_model_file import base_model, read_model_file, tamper_header

ROOT = Path(__file__).resolve().parents[1]
SOUNDS = ROOT / "data_samples" / "sounds"


def _members(rng, dims=(4, 6), labels=("a", "b", "c")):
    sets, members = [], []
    for d in dims:
        clips = [rng.normal(i % len(labels), 1.0, (40 + 7 * i, d)) for i in range(12)]
        y = [labels[i % len(labels)] for i in range(12)]
        members.append(GMMClassifier(2, random_state=0, max_iter=10, n_jobs=1).fit(clips, y))
        sets.append(clips)
    return members, sets


@pytest.mark.filterwarnings("ignore::audiogmm.exceptions.ConvergenceWarning")
def test_fused_score_is_the_sum_of_totals_rescaled_to_the_first_members_frames():
    rng = np.random.default_rng(0)
    (a, b), (ca, cb) = _members(rng)
    f = FusedClassifier([a, b])
    # same frame counts: the plain sum of the totals
    np.testing.assert_allclose(
        f.score_matrix([ca, cb]), a.score_matrix(ca) + b.score_matrix(cb), rtol=1e-12
    )
    # member 1 at twice the frame rate: its totals count half
    cb2 = [np.repeat(X, 2, axis=0) for X in cb]
    np.testing.assert_allclose(
        f.score_matrix([ca, cb2]), a.score_matrix(ca) + b.score_matrix(cb2) / 2, rtol=1e-12
    )
    LP = f.log_proba_from_scores(f.score_matrix([ca, cb]))
    np.testing.assert_allclose(np.exp(LP).sum(1), 1.0)
    assert list(f.predict([ca, cb])) == [f.labels_[j] for j in LP.argmax(1)]
    assert f.n_dims == (4, 6) and f.n_components == 2


@pytest.mark.filterwarnings("ignore::audiogmm.exceptions.ConvergenceWarning")
def test_fused_classifier_refuses_mismatched_members():
    rng = np.random.default_rng(1)
    (a, b), (ca, cb) = _members(rng)
    (c,), _ = _members(rng, dims=(4,), labels=("a", "b", "x"))
    with pytest.raises(ParameterError, match="2 to 4 members"):
        FusedClassifier([a])
    with pytest.raises(ParameterError, match="other labels"):
        FusedClassifier([a, c])
    with pytest.raises(ParameterError, match="not a fitted GMMClassifier"):
        FusedClassifier([a, GMMClassifier(2)])
    with pytest.raises(ParameterError, match="same clips"):
        FusedClassifier([a, b]).score_matrix([ca, cb[:-1]])


@pytest.fixture(scope="module")
def fused_file(tmp_path_factory):
    """A fused bundle of the general and speech front ends on 3 sound classes."""
    d = tmp_path_factory.mktemp("fused")
    labels = sorted(p.name for p in SOUNDS.iterdir() if p.is_dir())[:3]
    records = [Record(str(f), lab) for lab in labels for f in sorted((SOUNDS / lab).glob("*.flac"))]
    train, test = records[::2], records[1::2]
    cfgs = [PRESETS["general"], PRESETS["speech"]]
    from audiogmm.data import extract_many

    members = []
    for cfg in cfgs:
        res = extract_many(train, config=cfg, options=RunOptions(n_jobs=1))
        clips, y = res.labelled_clips(train)
        members.append(GMMClassifier(4, random_state=0, n_jobs=1).fit(clips, y))
    path = d / "fused.npz"
    save_model(path, FusedClassifier(members), cfgs)
    return path, cfgs, members, test


def test_fused_bundle_round_trip_and_pipeline(fused_file):
    path, cfgs, members, test = fused_file
    bundle = load_model(path)
    assert bundle.fused and bundle.configs == cfgs and bundle.config == cfgs[0]
    for got, want in zip(bundle.classifier.members, members):
        np.testing.assert_array_equal(got.means_, want.means_)
    out = evaluate_classifier(bundle, test, options=RunOptions(n_jobs=1))
    assert out["n"] == len(test) and not out["skipped"]
    # the same decisions as fusing by hand
    from audiogmm.data import extract_many

    sets = [[extract_many([r.path], config=c).features[r.path] for r in test] for c in cfgs]
    want = bundle.classifier.predict(sets)
    assert [p["predicted"] for p in out["predictions"]] == list(want)
    pred = predict_files(bundle, [test[0].path], top=2, options=RunOptions(n_jobs=1))
    assert pred["results"][0]["label"] == want[0]


def test_fused_file_with_one_bad_file_skips_it_once(fused_file, tmp_path):
    path, _, _, test = fused_file
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF nonsense")
    out = predict_files(load_model(path), [test[0].path, str(bad)], options=RunOptions(n_jobs=1))
    assert [s["path"] for s in out["skipped"]] == [str(bad)]
    assert len(out["results"]) == 1


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda h: h["members"].pop(), "members"),
        (lambda h: h["feature_configs"].pop(), "feature_configs"),
        (lambda h: h["feature_configs"].reverse(), "dims"),
        (lambda h: h.__setitem__("feature_config", h["feature_configs"][0]), "feature_config"),
        (lambda h: h["members"][1].__setitem__("n_components", 3), "n_components"),
        (lambda h: h["members"][0].__setitem__("colour", 1), "unknown field"),
        (lambda h: h.__setitem__("fusion_weights", [1.0]), "one finite weight per member"),
        (lambda h: h.__setitem__("fusion_weights", [1.0, 1e9]), "fusion_weights"),
        (lambda h: h.__setitem__("fusion_weights", [1.0, "x"]), "fusion_weights"),
    ],
    ids=["one-member", "one-config", "swapped-configs", "both-config-keys", "bad-k", "unknown",
         "weights-count", "weights-range", "weights-type"],
)
def test_tampered_fused_files_are_refused_with_the_file_named(fused_file, tmp_path, mutate, match):
    path = tamper_header(fused_file[0], tmp_path / "t.npz", mutate)
    with pytest.raises(ModelFileError, match=match) as e:
        load_model(path)
    assert str(path) in str(e.value)


def test_fused_arrays_must_be_exactly_the_members(fused_file, tmp_path):
    def drop(arrays):
        del arrays["m1_var_floors"]

    path = tamper_header(fused_file[0], tmp_path / "t.npz", mutate_arrays=drop)
    with pytest.raises(ModelFileError, match="member 1 has arrays .* needs"):
        load_model(path)

    for name in ("m2_weights", "weights", "m01_weights", "mx_weights"):  # of no member
        def stray(arrays, name=name):
            arrays[name] = arrays["m0_weights"]
        path = tamper_header(fused_file[0], tmp_path / "t.npz", mutate_arrays=stray)
        with pytest.raises(ModelFileError, match="belongs to none of its 2 members"):
            load_model(path)
    # a single classifier's bundle may not carry a fused model's configs
    configs, _ = read_model_file(fused_file[0])

    def add(h):
        h["feature_configs"] = configs["feature_configs"]

    path = tamper_header(base_model("GMMClassifier"), tmp_path / "s.npz", add)
    with pytest.raises(ModelFileError, match=r"unknown field\(s\) \['feature_configs'\]"):
        load_model(path)


def test_save_model_checks_configs_against_members(fused_file, tmp_path):
    _, cfgs, members, _ = fused_file
    with pytest.raises(ParameterError, match="feature configs give"):
        save_model(tmp_path / "x.npz", FusedClassifier(members), cfgs[::-1])
    with pytest.raises(ParameterError, match="one FeatureConfig"):
        save_model(tmp_path / "x.npz", members[0], cfgs)


def test_cli_info_describes_a_fused_model(fused_file):
    r = CliRunner().invoke(main, ["info", str(fused_file[0])])
    assert r.exit_code == 0, r.output
    assert "members:       ml (4 components per class, 26 dims) + ml (4 components per class, " \
        "60 dims) (late fusion)" in r.output and r.output.count("features:") == 2
    out = json.loads(CliRunner().invoke(main, ["info", "--json", str(fused_file[0])]).output)
    assert out["kind"] == "FusedClassifier" and len(out["feature_configs"]) == 2
    assert [m["backend"] for m in out["members"]] == ["ml", "ml"]
    assert [m["weight"] for m in out["members"]] == [None, None]  # the old sum rule


def test_verify_scores_a_fused_model_and_kaldi_refuses_it(fused_file):
    # issue 22: verify refused fused models, so an auto model could not verify at all
    from audiogmm.pipeline.verify import Trial, verify_trials

    path, _, _, test = fused_file
    bundle = load_model(path)
    trials = [Trial(r.path, y, int(y == r.label)) for r in test[:6] for y in bundle.classifier.labels_]
    out = verify_trials(bundle, trials, options=RunOptions(n_jobs=1))
    assert out["n_trials"] == len(trials) and np.isfinite(out["metrics"]["cllr"])
    got = {(t["path"], t["claim"]): t["score"] for t in out["trials"]}
    ev = evaluate_classifier(bundle, test[:6], options=RunOptions(n_jobs=1))
    for p in ev["predictions"]:  # the predicted class has the largest score
        best = max(bundle.classifier.labels_, key=lambda y: got[(p["path"], y)])
        assert best == p["predicted"]
    from audiogmm.pipeline.sources import evaluate_kaldi  # on feats.scp

    with pytest.raises(ModelFileError, match=str(path)):
        evaluate_kaldi(path, "no-such-kaldi-dir")


def test_fit_fusion_recovers_the_weights_of_a_known_model():
    # clips drawn from softmax(a1 x1 + a2 x2): the fitted weights approach (a1, a2)
    from audiogmm.models.fusion import fit_fusion

    rng = np.random.default_rng(0)
    N, L, n = 4000, 4, np.full(4000, 10.0)
    X = [rng.normal(size=(N, L)) for _ in range(2)]
    logits = 2.0 * X[0] + 0.5 * X[1]
    P = np.exp(logits - logits.max(1, keepdims=True))
    y = np.array([rng.choice(L, p=p / p.sum()) for p in P])
    a = fit_fusion([x * n[:, None] for x in X], [n, n], y)  # totals over 10 frames
    np.testing.assert_allclose(a, [2.0, 0.5], atol=0.15)


def test_fit_fusion_of_separable_or_identical_scores_is_finite():
    from audiogmm.models.fusion import fit_fusion

    y = np.array([0, 1, 2] * 5)
    n = np.full(15, 50.0)
    sep = np.eye(3)[y] * 100.0  # every clip right by a mile: no finite optimum without the ridge
    same = np.zeros((15, 3))
    a = fit_fusion([sep, same], [n, n], y)
    assert all(np.isfinite(a)) and a[0] > 0


@pytest.mark.filterwarnings("ignore::audiogmm.exceptions.ConvergenceWarning")
def test_fused_weights_round_trip_and_old_files_keep_the_sum_rule(tmp_path):
    rng = np.random.default_rng(0)
    (a, b), (ca, cb) = _members(rng)
    f = FusedClassifier([a, b], weights=[3.0, 0.5])
    ref = 3.0 * a.score_matrix(ca) / np.array([len(X) for X in ca])[:, None] + 0.5 * (
        b.score_matrix(cb) / np.array([len(X) for X in cb])[:, None]
    )
    np.testing.assert_allclose(f.score_matrix([ca, cb]), ref, rtol=1e-12)
    f.save(tmp_path / "w.npz")
    g = FusedClassifier.load(tmp_path / "w.npz")
    assert g.weights == [3.0, 0.5]
    np.testing.assert_array_equal(g.score_matrix([ca, cb]), f.score_matrix([ca, cb]))
    with pytest.raises(ParameterError, match="one finite weight per member"):
        FusedClassifier([a, b], weights=[1.0])
    # written by audiogmm before the weights (0c46eca): no weights, the sum of totals
    old = FusedClassifier.load(ROOT / "tests" / "fixtures" / "fused_v1.npz")
    assert old.weights is None
    c3 = [rng.normal(0, 1, (30, 3)) for _ in range(4)]
    c4 = [rng.normal(0, 1, (30, 4)) for _ in range(4)]
    m0, m1 = old.members
    np.testing.assert_allclose(old.score_matrix([c3, c4]),
                               m0.score_matrix(c3) + m1.score_matrix(c4), rtol=1e-12)  # fmt: skip


# -- auto ---------------------------------------------------------------------------------


def test_fuse_scores_rescales_to_the_first_members_frames():
    from audiogmm.models.fusion import fuse_scores

    rng = np.random.default_rng(2)
    S = [rng.normal(size=(5, 3)), rng.normal(size=(5, 3))]
    n0, n1 = np.arange(10, 15), 2 * np.arange(10, 15) + 1
    np.testing.assert_allclose(
        fuse_scores(S, [n0, n1]), S[0] + S[1] * (n0 / n1)[:, None], rtol=1e-12
    )


@pytest.mark.filterwarnings("ignore::audiogmm.exceptions.ConvergenceWarning")
def test_auto_offers_fusions_and_trains_the_chosen_one(tmp_path, monkeypatch):
    from .test_tuning import config_of

    records = [r for r in read_manifest(SOUNDS) if r.label in sorted(
        p.name for p in SOUNDS.iterdir() if p.is_dir())[:4]]  # fmt: skip
    res = tune(records, components=4, cv_max_iter=3, options=RunOptions(n_jobs=1))
    singles = [r["front_end"] for r in res.table if r["stage"] == "front end"]
    assert singles == ["general", "sound", "sound-cmn"]
    fusions = [r["front_end"] for r in res.table if r["stage"] == "fusion"]
    assert len(fusions) == steps.MAX_FUSED - 1
    # force general as the front end alone, then the largest fusion
    monkeypatch.setattr(steps, "one_standard_error", lambda options, n: options[0][0])
    monkeypatch.setattr(steps, "choose_fusion", lambda options, n: options[-1][0])
    clf, res = train_tuned(records, components=4, cv_max_iter=3, max_iter=5,
                                  options=RunOptions(n_jobs=1))  # fmt: skip
    assert isinstance(clf, FusedClassifier) and res.front_end == fusions[-1]
    assert clf.weights == res.fusion_weights and len(clf.weights) == len(res.members)
    assert res.members == fusions[-1].split(" + ") and res.members[0] == "general"
    assert sorted(res.members) == sorted(singles)
    assert res.member_configs == [config_of(m) for m in res.members]
    path = tmp_path / "m.npz"
    save_model(path, clf, res.member_configs, extra={"selection": res.to_header()})
    bundle = load_model(path)
    assert bundle.fused and bundle.header["selection"]["front_end"] == fusions[-1]

    # evaluation decodes each file once per extraction: sound-cmn is computed from sound's
    from audiogmm.data import extract_many
    from audiogmm.pipeline import classify

    calls = record_extractions(monkeypatch, classify)
    test = read_manifest(SOUNDS)[:6]
    out = evaluate_classifier(bundle, test, options=RunOptions(n_jobs=1))
    assert sorted(c.sample_rate for c in calls) == [16000, 44100]
    sets = [[extract_many([r.path], config=c).features[r.path] for r in test]
            for c in res.member_configs]  # fmt: skip
    assert [p["predicted"] for p in out["predictions"]] == list(clf.predict(sets))


def test_speech_band_data_fuses_general_with_its_cmn_copy():
    # 16 kHz files: sound is skipped; general and its mean-normalised copy share one
    # extraction, and their fusion is the only one
    records = read_manifest(ROOT / "data_samples" / "speakers")[:24]
    res = tune(records, components=2, cv_max_iter=2, options=RunOptions(n_jobs=1), backends=())
    assert [(r["stage"], r["front_end"]) for r in res.table] == [
        ("front end", "general"), ("front end", "general-cmn"),
        ("fusion", "general + general-cmn"),
    ]  # fmt: skip
    assert isinstance(res.config, FeatureConfig)


# -- fusions of backends (issue 22 item 3): train --backend gsv+ml --preset speaker+general ------


def _two_fronts(rng, labels=("a", "b", "c"), n=18):
    y = [labels[i % len(labels)] for i in range(n)]
    A = [rng.normal(labels.index(c), 1.5, (50 + i, 3)).astype(np.float32) for i, c in enumerate(y)]
    B = [rng.normal(0.5 * labels.index(c), 1.5, (30 + i, 5)).astype(np.float32)
         for i, c in enumerate(y)]  # fmt: skip
    return A, B, y


@pytest.mark.filterwarnings("ignore::audiogmm.exceptions.ConvergenceWarning")
def test_fit_fused_is_fit_fusion_of_held_out_scores_of_members_fitted_afresh_per_fold():
    """Brute force: each member's final model is its backend's own fit; the weights are
    fit_fusion of scores from fold fits done here by hand (each with its own UBM)."""
    from audiogmm.models import GSVClassifier
    from audiogmm.models.fusion import fit_fusion
    from audiogmm.selection.cv import clip_folds
    from audiogmm.selection.fusion import fit_fused

    A, B, y = _two_fronts(np.random.default_rng(1))
    clf = fit_fused([A, B], y, ["gsv", "ml"], random_state=3, n_jobs=1)
    gsv = GSVClassifier(random_state=3, n_jobs=1).fit(A, y, calibrate=False)
    ml = GMMClassifier(random_state=3, n_jobs=1).fit(B, y)
    for got, want in zip(clf.members, (gsv, ml)):
        for k in ("coef_", "intercept_", "means_", "weights_", "variances_"):
            if hasattr(want, k):
                np.testing.assert_array_equal(getattr(got, k), getattr(want, k))
    folds = clip_folds(y, 3, random_state=3)
    SA, SB, idx = [], [], []
    for f in range(3):
        tr, te = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        g = GSVClassifier(random_state=3, n_jobs=1).fit([A[i] for i in tr], [y[i] for i in tr],
                                                       calibrate=False)
        m = GMMClassifier(random_state=3, n_jobs=1).fit([B[i] for i in tr], [y[i] for i in tr])
        SA.append(g.score_matrix([A[i] for i in te]))
        SB.append(m.score_matrix([B[i] for i in te]))
        idx.extend(te)
    nB = np.array([len(B[i]) for i in idx])
    want = fit_fusion([np.vstack(SA), np.vstack(SB)], [np.ones(len(idx)), nB],
                      np.array([sorted(set(y)).index(y[i]) for i in idx]))
    assert clf.weights == want
    # the fused score: a gsv member's per clip, an ml member's per frame
    S = clf.score_matrix([A[:4], B[:4]])
    hand = want[0] * gsv.score_matrix(A[:4]) + want[1] * ml.score_matrix(B[:4]) / np.array(
        [len(X) for X in B[:4]])[:, None]
    np.testing.assert_allclose(S, hand, rtol=1e-12)


@pytest.mark.filterwarnings("ignore::audiogmm.exceptions.ConvergenceWarning")
def test_fit_fused_in_worker_processes_is_the_fusion_fitted_on_threads(tmp_path, monkeypatch):
    """The fits run side by side as tasks (worker processes in the CLI from 600 s of audio):
    the same file, bit for bit, on 1 or 2 threads or 2 processes."""
    from audiogmm.engine import LocalExecutor
    from audiogmm.io import save
    from audiogmm.selection import fusion
    from audiogmm.selection.fusion import fit_fused

    A, B, y = _two_fronts(np.random.default_rng(6))
    files = []
    for n, procs, most in ((1, False, None), (2, False, None), (2, True, None), (2, True, 0)):
        if most is not None:  # features past the bound: threads, not copies in the workers
            monkeypatch.setattr(fusion, "FUSION_PROCESS_MAX_BYTES", most)
        with LocalExecutor(n, processes=procs) as ex:
            clf = fit_fused([A, B, A], y, ["gsv", "ml", "ivector"], random_state=1, executor=ex)
        save(clf, tmp_path / "f.npz")
        files.append((tmp_path / "f.npz").read_bytes())
    assert files[0] == files[1] == files[2] == files[3]


@pytest.mark.filterwarnings("ignore::audiogmm.exceptions.ConvergenceWarning")
def test_a_class_too_short_for_k_in_a_fold_is_capped_there_not_refused():
    """Class c has 22 frames: enough for the final ml member (K=16, over-sized, warned) but
    11 in a fold, where an ml fit of K=16 refused it; the fold caps it, as auto's CV does."""
    from audiogmm.selection.fusion import fit_fused

    A, B, y = _two_fronts(np.random.default_rng(7))
    A += [np.random.default_rng(i).normal(5.0, 1.0, (11, 3)).astype(np.float32) for i in (1, 2)]
    B += [np.random.default_rng(i).normal(5.0, 1.0, (11, 5)).astype(np.float32) for i in (3, 4)]
    clf = fit_fused([A, B], y + ["z", "z"], ["gsv", "ml"], random_state=0, n_jobs=1)
    assert clf.labels_ == ["a", "b", "c", "z"] and clf.members[1].n_components == 16
    with pytest.raises(ParameterError, match="class 'z' has 11 frames"):  # what a fold met
        GMMClassifier(16, n_jobs=1).fit(B[-1:] + B[:6], ["z"] + y[:6])


@pytest.mark.filterwarnings("ignore::audiogmm.exceptions.ConvergenceWarning")
def test_a_fusion_of_every_backend_round_trips_and_refuses_the_sum_rule(tmp_path):
    from audiogmm.io import load, save
    from audiogmm.selection.fusion import fit_fused

    A, B, y = _two_fronts(np.random.default_rng(2))
    clf = fit_fused([A, B, A, B], y, ["ml", "map", "gsv", "ivector"], random_state=0, n_jobs=1)
    assert [type(m).__name__ for m in clf.members] == ["GMMClassifier", "UBMClassifier",
                                                        "GSVClassifier", "IVectorClassifier"]
    save(clf, tmp_path / "f.npz")
    back = load(tmp_path / "f.npz")
    assert back.weights == clf.weights and all(np.isfinite(clf.weights))
    sets = [A[:5], B[:5], A[:5], B[:5]]
    np.testing.assert_array_equal(back.score_matrix(sets), clf.score_matrix(sets))
    with pytest.raises(ParameterError, match="needs fitted weights"):
        FusedClassifier(clf.members)
    with pytest.raises(ParameterError, match="2 to 4 members"):
        fit_fused([A], y, ["ml"])
    with pytest.raises(ParameterError, match="unknown backend"):
        fit_fused([A, B], y, ["ml", "svm"])
    with pytest.raises(ParameterError, match="2 training clips in some class"):
        fit_fused([A[:3], B[:3]], y[:3], ["ml", "gsv"])


SPEAKERS = ROOT / "data_samples" / "speakers"


@pytest.fixture(scope="module")
def cli_fusion(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli-fusion")
    model = d / "f.npz"
    r = CliRunner().invoke(main, ["train", str(SPEAKERS), "-o", str(model), "-j", "2",
                                  "--backend", "gsv+ml", "--preset", "speaker+general"])
    assert r.exit_code == 0, r.output
    return model, r.output


def test_cli_trains_a_fusion_of_backends_that_evaluates_verifies_and_describes_itself(
        cli_fusion, tmp_path):  # fmt: skip
    model, out = cli_fusion
    assert "as a late fusion of gsv (speaker) + ml (general)" in out
    bundle = load_model(model)
    assert [c.to_dict() for c in bundle.configs] == [PRESETS["speaker"].to_dict(),
                                                     PRESETS["general"].to_dict()]
    assert [type(m).__name__ for m in bundle.classifier.members] == ["GSVClassifier",
                                                                      "GMMClassifier"]
    r = CliRunner().invoke(main, ["evaluate", str(model), str(SPEAKERS), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["accuracy"] >= 0.9  # 36 test clips of 9 synthetic voices
    info = json.loads(CliRunner().invoke(main, ["info", "--json", str(model)]).output)
    assert [m["backend"] for m in info["members"]] == ["gsv", "ml"]
    assert all(m["weight"] > 0 for m in info["members"])
    split = bundle.header["split"]
    assert split["split"] == "train" and len(split["train_files"]) == 72
    trials_csv = tmp_path / "trials.csv"
    ev_out = evaluate_classifier(bundle, _test_records(), options=RunOptions(n_jobs=1))
    rows = [(p["path"], y, int(p["label"] == y)) for p in ev_out["predictions"][:6]
            for y in bundle.classifier.labels_]  # fmt: skip
    trials_csv.write_text("path,claim,target\n" + "".join(f"{p},{c},{t}\n" for p, c, t in rows))
    r = CliRunner().invoke(main, ["verify", str(model), str(trials_csv), "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    assert got["n_trials"] == len(rows) and np.isfinite(got["metrics"]["cllr"])
    for p in ev_out["predictions"][:6]:  # the predicted class has the largest score
        mine = {t["claim"]: t["score"] for t in got["trials"] if t["path"] == p["path"]}
        assert max(mine, key=mine.get) == p["predicted"]


def _test_records():
    from audiogmm.data import split_records

    return [r for r in split_records(read_manifest(str(SPEAKERS)), train_fraction=0.7, seed=0)
            if r.split == "test"]


@pytest.mark.parametrize("args, match", [
    (["--backend", "gsv+ml", "-k", "16"], "--components sets up a single model"),
    (["--backend", "gsv+ml", "--calibrate"], "--calibrate sets up a single model"),
    (["--backend", "gsv+ml", "--relevance", "4"], "--relevance sets up a single model"),
    (["--preset", "auto", "--backend", "gsv+ml"], "preset .auto. chooses its own"),
    (["--preset", "auto+general"], "'auto' cannot be joined"),
    (["--preset", "speaker+general+sound", "--backend", "gsv+ml"], "give one, or one per member"),
    (["--backend", "ml+ml"], "member 2 .ml on general. repeats member 1"),
    (["--backend", "gsv+svm"], "'svm' is not one of"),
    (["--backend", "ml+map+gsv+ivector+ml"], "at most 4 members"),
])  # fmt: skip
def test_cli_fusion_refuses_what_it_cannot_apply(args, match, tmp_path):
    r = CliRunner().invoke(main, ["train", str(SPEAKERS), "-o", str(tmp_path / "m.npz"), *args])
    assert r.exit_code == 2, r.output
    assert re.search(match, r.output), r.output
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.filterwarnings("ignore::audiogmm.exceptions.ConvergenceWarning")
def test_a_fusion_rejects_unknown_classes_by_its_calibrated_llr():
    """Open set: the best class's fused LLR against the others (raw_llr of the fused scores),
    'auto' its Bayes threshold 0; clips of a class the model never saw fall below it."""
    from audiogmm.models.classifier import UNKNOWN, decide, raw_llr
    from audiogmm.selection.fusion import fit_fused

    labels = ("a", "b", "c", "d", "e")  # b and d, between the others, are never trained on
    A, B, y = _two_fronts(np.random.default_rng(4), labels=labels, n=60)
    known = [i for i, c in enumerate(y) if c in "ace"]
    clf = fit_fused([[A[i] for i in known], [B[i] for i in known]], [y[i] for i in known],
                    ["gsv", "ml"], random_state=0, n_jobs=1)  # fmt: skip
    A2, B2, y2 = _two_fronts(np.random.default_rng(5), labels=labels, n=50)  # fresh clips
    S = clf.score_matrix([A2, B2])
    best = clf.log_proba_from_scores(S).argmax(1)
    r = clf.rejection_scores(S, None)
    np.testing.assert_array_equal(r, raw_llr(S)[np.arange(len(S)), best])
    pred = decide(clf, S, None, clf.resolve_threshold("auto"))
    assert list(pred == UNKNOWN) == list(r < 0)  # the rule, exactly
    assert list(clf.predict([A2, B2], reject="auto")) == list(pred)  # the same from predict
    assert list(clf.predict([A2, B2], reject=float(np.max(r)) + 1)) == [UNKNOWN] * len(r)
    unknown = np.array([c in "bd" for c in y2])
    # the unknown classes score below the known ones (AUC), though 'auto' (the closed-set
    # Bayes threshold) may accept them when the known classes separate this well
    assert np.mean(r[~unknown][:, None] > r[unknown][None, :]) >= 0.95
    assert np.mean(pred[~unknown] == np.array(y2, dtype=object)[~unknown]) >= 0.9
    assert (decide(clf, S, None, float(np.median(r))) == UNKNOWN).sum() == len(r) // 2


def test_cli_predicts_and_evaluates_with_a_fusion_rejecting(cli_fusion):
    model, _ = cli_fusion
    r = CliRunner().invoke(main, ["evaluate", str(model), str(SPEAKERS), "--reject", "auto",
                                  "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["accuracy"] >= 0.9 and "open_set" in out  # known speakers only: few rejected
    clip = _test_records()[0].path
    r = CliRunner().invoke(main, ["predict", str(model), clip, "--reject", "auto", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)["results"][0]
    assert res["threshold"] == 0.0 and np.isfinite(res["reject_score"])


def test_cli_fusion_warns_per_member_without_advice_it_refuses(tmp_path, caplog):
    """A short class: the ml member's class and the gsv member's UBM are over-sized; the
    warnings name the member and do not suggest -k (refused with a fusion)."""
    import logging

    import soundfile as sf

    rng, rows = np.random.default_rng(0), ["path,label,split"]
    for lab, n, dur in (("a", 6, 2.0), ("b", 6, 2.0), ("c", 2, 0.2)):
        for i in range(n):
            t = np.arange(int(16000 * dur)) / 16000
            x = 0.3 * np.sin(2 * np.pi * (200 + 100 * "abc".index(lab)) * t)
            path = tmp_path / f"{lab}{i}.wav"
            sf.write(path, (x + 0.05 * rng.normal(size=t.size)).astype(np.float32), 16000)
            rows.append(f"{path},{lab},train")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    with caplog.at_level(logging.WARNING, logger="audiogmm"):
        r = CliRunner().invoke(main, ["train", str(tmp_path / "m.csv"), "-o",
                                      str(tmp_path / "f.npz"), "--backend", "gsv+ml"])  # fmt: skip
    assert r.exit_code == 0, r.output
    text = caplog.text + r.output
    assert "member ml (general): class c: K=16 components for 22 frames" in text
    assert "member gsv (general): the UBM: K=64" in text
    assert "-k" not in text and "--max-iter" not in text
