"""File-level workflows: train, evaluate, predict, and the model bundle, on bundled audio."""

from pathlib import Path

import numpy as np
import pytest

from audiogmm.data import RunOptions, read_manifest, select, split_records
from audiogmm.features import PRESETS
from audiogmm.pipeline import (
    evaluate_classifier,
    load_model,
    predict_files,
    save_model,
    train_classifier,
)

ROOT = Path(__file__).resolve().parents[1]
SPEAKERS = ROOT / "data_samples" / "speakers"


@pytest.fixture(scope="module")
def split():
    recs = [r for r in read_manifest(SPEAKERS) if r.label in ("ast_en", "ast_ru", "flite_slt")]
    return split_records(recs, seed=0)


@pytest.fixture(scope="module")
def trained(split, tmp_path_factory):
    cfg = PRESETS["speech"]
    clf, res = train_classifier(select(split, "train"), config=cfg, n_components=4,
                                backend="ml", options=RunOptions(n_jobs=2))  # fmt: skip
    path = tmp_path_factory.mktemp("m") / "model.npz"
    save_model(path, clf, cfg)
    return path, clf, res


def test_train_uses_every_file_and_reports_timing(trained, split):
    _, clf, res = trained
    assert clf.labels_ == ["ast_en", "ast_ru", "flite_slt"] and res.skipped == []
    assert set(clf.timing_) == {"extract_s", "train_s"}
    assert sum(r["n_clips"] for r in clf.fit_report_.values()) == len(select(split, "train"))


def test_evaluate_scores_the_test_split(trained, split):
    path, _, _ = trained
    out = evaluate_classifier(load_model(path), select(split, "test"), options=RunOptions(n_jobs=1))
    assert out["n"] == len(select(split, "test")) and out["accuracy"] == 1.0
    assert {p["path"] for p in out["predictions"]} == {r.path for r in select(split, "test")}


def test_predict_skips_bad_files_and_ranks_classes(trained, split, tmp_path):
    path, _, _ = trained
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    good = [r.path for r in select(split, "test")][:2]
    out = predict_files(load_model(path), [*good, bad], top=3)
    assert [r["path"] for r in out["results"]] == good
    assert out["skipped"][0]["path"] == str(bad)
    for r in out["results"]:
        post = [t["posterior"] for t in r["top"]]
        assert np.isclose(sum(post), 1.0) and post == sorted(post, reverse=True)


@pytest.mark.parametrize("backend", ["ml", None])
def test_results_do_not_depend_on_the_worker_count(split, backend):
    cfg = PRESETS["speech"]
    recs = select(split, "train")
    given = {"backend": backend} if backend else {}  # None: the default, gsv
    a, _ = train_classifier(recs, config=cfg, n_components=4, options=RunOptions(n_jobs=1), **given)
    b, _ = train_classifier(recs, config=cfg, n_components=4, options=RunOptions(n_jobs=2), **given)
    if backend == "ml":
        np.testing.assert_array_equal(a.means_, b.means_)
        np.testing.assert_array_equal(a.variances_, b.variances_)
    else:
        np.testing.assert_array_equal(a.ubm_.means_, b.ubm_.means_)
        np.testing.assert_array_equal(a.coef_, b.coef_)


def test_every_source_trains_through_the_one_backend_dispatch(tmp_path, monkeypatch):
    """Folders, Kaldi feats.scp and shard stores all fit through fit_backend (issue 20.3)."""
    import shutil

    from click.testing import CliRunner

    from audiogmm.cli import main
    from audiogmm.models import BACKENDS, UBMClassifier

    data = tmp_path / "data"
    for spk in ("ast_en", "flite_slt"):
        (data / spk).mkdir(parents=True)
        for f in sorted((SPEAKERS / spk).glob("*.flac"))[:3]:
            shutil.copy(f, data / spk / f.name)

    def cli(*args):
        r = CliRunner().invoke(main, ["-q", *map(str, args)])
        assert r.exit_code == 0, r.output

    cli("extract", data, "--cache", tmp_path / "c", "--shards", tmp_path / "store", "-j", "1")
    pytest.importorskip("kaldiio")
    cli("extract", data, "--format", "kaldi", "-o", tmp_path / "kaldi", "-j", "1")
    seen = []

    class Spy(UBMClassifier):
        def fit(self, clips, labels, **kw):
            seen.append(len(clips))
            return super().fit(clips, labels, **kw)

    monkeypatch.setitem(BACKENDS, "map", Spy)  # the one registry fit_backend reads
    common = ["--backend", "map", "-k", "2", "-o", tmp_path / "m.npz", "-j", "1"]
    cli("train", data, "--split", "all", *common)
    cli("train", tmp_path / "kaldi", "--split", "all", *common)
    cli("train", tmp_path / "store", *common)  # a store has no split
    assert seen == [6, 6, 6]


def test_train_classifier_goes_through_open_clips(split, monkeypatch):
    """The Python API opens its records as `train` opens DATA (one clip-set path)."""
    from audiogmm.pipeline import sources

    seen = []

    def spy(data, **kw):
        clips = open_clips(data, **kw)
        seen.append(clips)
        return clips

    open_clips = sources.open_clips
    monkeypatch.setattr(sources, "open_clips", spy)
    recs = select(split, "train")[:6]
    clf, res = train_classifier(recs, config=PRESETS["speech"], n_components=2,
                                options=RunOptions(n_jobs=1))  # fmt: skip
    (clips,) = seen
    assert clips.kind == "audio" and clips.blocks == {}  # records in memory: no split block
    assert clips.names == [r.path for r in recs] and res is clips.extraction
    assert set(clf.timing_) == {"extract_s", "train_s"}


def test_verify_refuses_training_files_through_the_evaluation_check(tmp_path):
    """score_trials and evaluate_classifier share one training-file check: the refusal says
    how the model was trained (it did not for trials)."""
    from audiogmm.exceptions import DatasetError
    from audiogmm.pipeline import describe_split
    from audiogmm.pipeline.verify import Trial, score_trials

    recs = split_records([r for r in read_manifest(SPEAKERS)
                          if r.label in ("ast_en", "flite_slt")], seed=0)  # fmt: skip
    train = select(recs, "train")
    cfg = PRESETS["speech"]
    clf, _ = train_classifier(train, config=cfg, backend="map", n_components=2,
                              options=RunOptions(n_jobs=1))  # fmt: skip
    block = describe_split(SPEAKERS, "train", train, seed=0)
    save_model(tmp_path / "m.npz", clf, cfg, extra={"split": block})
    bundle = load_model(tmp_path / "m.npz")
    trials = [Trial(train[0].path, train[0].label)]
    with pytest.raises(DatasetError, match="1 of 1 trial files were used to train this model") as e:
        score_trials(bundle, trials, options=RunOptions(n_jobs=1))
    assert "the model was trained on split 'train' made with seed 0" in str(e.value)
    with pytest.raises(DatasetError, match="1 of 1 evaluation files were used to train"):
        evaluate_classifier(bundle, train[:1], options=RunOptions(n_jobs=1))
    out = score_trials(bundle, trials, allow_train_overlap=True, options=RunOptions(n_jobs=1))
    assert len(out.scores) == 1


def test_one_reject_threshold_rule_for_the_api_and_the_cli():
    from audiogmm.cli.options import reject_threshold
    from audiogmm.exceptions import ParameterError
    from audiogmm.models import FusedClassifier, GMMClassifier

    # a fusion rejects as any model: 0 with fitted weights, a number without (old files)
    fused = FusedClassifier.__new__(FusedClassifier)
    fused.weights = [1.0, 2.0]
    assert fused.resolve_threshold("auto") == 0.0 == reject_threshold(fused, "auto")
    fused.weights = None
    assert reject_threshold(fused, -1.5) == -1.5
    with pytest.raises(ParameterError, match="needs a fusion with fitted weights"):
        predict_files(type("B", (), {"classifier": fused})(), [], reject="auto")
    import click

    with pytest.raises(click.ClickException, match="needs a fusion with fitted weights"):
        reject_threshold(fused, "auto")
    # an uncalibrated ml model: a number, not auto (and the message says how to get one)
    assert reject_threshold(GMMClassifier(), 0.5) == 0.5
    with pytest.raises(click.ClickException, match="train it with --calibrate"):
        reject_threshold(GMMClassifier(), "auto")
    with pytest.raises(ParameterError, match="needs a calibrated ml model"):
        GMMClassifier().resolve_threshold("auto")


def test_kaldi_evaluation_reports_unknown_speakers_as_audio_evaluation_does(tmp_path):
    """evaluate_kaldi scores through labelled_results: labels the model does not know are
    listed and give the open-set rates (they were silently counted as errors)."""
    kaldiio = pytest.importorskip("kaldiio")
    from audiogmm.pipeline.sources import evaluate_kaldi, fit_backend, open_clips

    rng = np.random.default_rng(0)
    feats = {f"spk{s}-utt{u}": (3.0 * s + rng.normal(size=(50, 4))).astype(np.float32)
             for s in range(3) for u in range(4)}  # fmt: skip
    d = tmp_path / "kaldi"
    d.mkdir()
    with kaldiio.WriteHelper(f"ark,scp:{d / 'feats.ark'},{d / 'feats.scp'}") as w:
        for utt in sorted(feats):
            w(utt, feats[utt])
    (d / "utt2spk").write_text("".join(f"{u} {u.split('-')[0]}\n" for u in sorted(feats)))
    clips = open_clips(d, split="all")
    keep = [i for i, y in enumerate(clips.labels) if y != "spk2"]  # the model lacks spk2
    clf = fit_backend([clips.clips[i] for i in keep], [clips.labels[i] for i in keep],
                      n_components=1, random_state=0)  # fmt: skip
    clf.save(tmp_path / "m.npz")
    out = evaluate_kaldi(tmp_path / "m.npz", d, split="all")
    assert out["n"] == 12 and out["unknown_labels"] == ["spk2"]
    assert out["open_set"]["n_unknown"] == 4
    assert [p["utt"] for p in out["predictions"]] == sorted(feats)
