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
                                options=RunOptions(n_jobs=2))  # fmt: skip
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


def test_results_do_not_depend_on_the_worker_count(split):
    cfg = PRESETS["speech"]
    recs = select(split, "train")
    a, _ = train_classifier(recs, config=cfg, n_components=4, options=RunOptions(n_jobs=1))
    b, _ = train_classifier(recs, config=cfg, n_components=4, options=RunOptions(n_jobs=2))
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(a.variances_, b.variances_)


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
