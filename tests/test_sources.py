"""One clip set from every training source, and one ``train`` path over it (issue 20 item 3)."""

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from audiogmm.cli import main
from audiogmm.io import save
from audiogmm.mixture import DiagGMM
from audiogmm.pipeline.sources import KINDS, open_clips, source_kind

pytest.importorskip("kaldiio")

SPEAKERS = Path(__file__).resolve().parents[1] / "data_samples" / "speakers"


def run(*args, code=0):
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exit_code == code, r.output
    return r


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """The same 6 clips (2 speakers x 3) as audio folders, a feats.scp directory and a store."""
    d = tmp_path_factory.mktemp("sources")
    for spk in ("ast_en", "flite_slt"):
        (d / "audio" / spk).mkdir(parents=True)
        for f in sorted((SPEAKERS / spk).glob("*.flac"))[:3]:
            shutil.copy(f, d / "audio" / spk / f.name)
    run("-q", "extract", d / "audio", "--cache", d / "c", "--shards", d / "store", "-j", "1")
    run("-q", "extract", d / "audio", "--format", "kaldi", "-o", d / "kaldi", "-j", "1")
    return {"audio": d / "audio", "kaldi": d / "kaldi", "store": d / "store"}


def test_every_source_opens_to_the_same_clips(sources):
    sets = {k: open_clips(p, split="all") for k, p in sources.items()}
    assert {k: source_kind(p) for k, p in sources.items()} == {k: k for k in sources}
    assert {k: s.unit for k, s in sets.items()} == {"audio": "file", "kaldi": "utterance",
                                                    "store": "clip"}  # fmt: skip
    assert {k: sorted(s.blocks) for k, s in sets.items()} == {"audio": ["split"],
                                                              "kaldi": ["kaldi"], "store": []}  # fmt: skip
    ref = sets["audio"]
    for s in sets.values():
        assert s.config == ref.config and s.skipped == []
        assert sorted(s.labels) == sorted(ref.labels) and len(s.clips) == 6
        # the same frames, whatever the order each source keeps
        got = sorted(float(X.sum()) for X in s.clips)
        np.testing.assert_allclose(got, sorted(float(X.sum()) for X in ref.clips), rtol=1e-5)
    assert sets["kaldi"].blocks["kaldi"]["train_utts"] and sets["store"].info["store"]


def test_train_json_reports_the_same_keys_for_every_source(sources, tmp_path):
    keys = {}
    for kind, path in sources.items():
        split = [] if kind == "store" else ["--split", "all"]
        r = run("-q", "train", path, *split, "-k", "2", "--max-iter", "2", "-j", "1",
                "-o", tmp_path / f"{kind}.npz", "--json")  # fmt: skip
        out = json.loads(r.output)
        assert out["n_files"] == 6 and out["feature_config"]["n_mfcc"] > 0
        keys[kind] = set(out) - {"store"}  # the store names its folder too
    assert keys["audio"] == keys["kaldi"] == keys["store"]


def test_options_a_source_cannot_take_are_refused_before_any_work(sources, tmp_path):
    assert KINDS["store"].not_for and "calibrate" in KINDS["kaldi"].not_for
    r = run("train", sources["kaldi"], "--backend", "map", "--calibrate", "-o",
            tmp_path / "m.npz", code=2)  # fmt: skip
    assert "--calibrate applies to audio data only" in r.output
    r = run("train", sources["kaldi"], "--preset", "auto", "-o", tmp_path / "m.npz", code=2)
    assert "Kaldi feature directory has fixed features" in r.output
    assert not (tmp_path / "m.npz").exists()


def test_a_ubm_without_a_front_end_is_warned_about_once(sources, tmp_path):
    """The warning came twice for a Kaldi directory (once per front-end check)."""
    clips = open_clips(sources["kaldi"]).clips
    ubm = DiagGMM(2, max_iter=2, random_state=0).fit(np.vstack(clips))
    save(ubm, tmp_path / "ubm.npz")
    seen = []
    handler = logging.Handler()
    handler.emit = seen.append
    logging.getLogger("audiogmm").addHandler(handler)
    try:
        run("-q", "train", sources["kaldi"], "--split", "all", "--backend", "map", "--ubm",
            tmp_path / "ubm.npz", "-o", tmp_path / "m.npz", "-j", "1")  # fmt: skip
    finally:
        logging.getLogger("audiogmm").removeHandler(handler)
    assert sum("records no front end" in x.getMessage() for x in seen) == 1
