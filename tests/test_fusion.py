"""Late fusion of front ends: FusedClassifier scores, its file, the pipeline and auto's choice."""

from __future__ import annotations

import json
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
from audiogmm.selection import state, steps, train_tuned, tune

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
    ],
    ids=["one-member", "one-config", "swapped-configs", "both-config-keys", "bad-k", "unknown"],
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
    with pytest.raises(ModelFileError, match="not those of 2 members"):
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
    assert "late fusion of 2 front ends" in r.output and r.output.count("features:") == 2
    out = json.loads(CliRunner().invoke(main, ["info", "--json", str(fused_file[0])]).output)
    assert out["kind"] == "FusedClassifier" and len(out["feature_configs"]) == 2


def test_verify_and_kaldi_refuse_a_fused_model(fused_file):
    from audiogmm.pipeline.verify import verify_trials

    with pytest.raises(ParameterError, match="GMM-UBM"):
        verify_trials(load_model(fused_file[0]), [], options=RunOptions(n_jobs=1))
    from audiogmm.pipeline.kaldi import _load_classifier  # evaluate on feats.scp

    with pytest.raises(ModelFileError, match=str(fused_file[0])):
        _load_classifier(fused_file[0])


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
    assert len(fusions) == state.MAX_FUSED - 1
    # force general as the front end alone, then the largest fusion
    monkeypatch.setattr(steps, "one_standard_error", lambda options, n: options[0][0])
    monkeypatch.setattr(steps, "choose_fusion", lambda options, n: options[-1][0])
    clf, res = train_tuned(records, components=4, cv_max_iter=3, max_iter=5,
                                  options=RunOptions(n_jobs=1))  # fmt: skip
    assert isinstance(clf, FusedClassifier) and res.front_end == fusions[-1]
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
    res = tune(records, components=2, cv_max_iter=2, options=RunOptions(n_jobs=1))
    assert [(r["stage"], r["front_end"]) for r in res.table] == [
        ("front end", "general"), ("front end", "general-cmn"),
        ("fusion", "general + general-cmn"),
    ]  # fmt: skip
    assert isinstance(res.config, FeatureConfig)
