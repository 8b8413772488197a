"""Kaldi interop through kaldiio: feats.scp in, feats.ark out, segments, piped entries."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from audiogmm.audio import load
from audiogmm.cli import main
from audiogmm.exceptions import DatasetError
from audiogmm.features import FeatureConfig, extract

kaldiio = pytest.importorskip("kaldiio")

from audiogmm.data.kaldi import (  # noqa: E402
    CONFIG_FILE,
    read_feats,
    read_segments,
    utterance_ids,
    write_feats,
)

ROOT = Path(__file__).resolve().parents[1]
SPEAKERS = ROOT / "data_samples" / "speakers"


def run(args, code=0):
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == code, r.output
    return r


def random_feats(n_spk=3, n_utt=6, dim=5, seed=0, dtype=np.float32):
    """Separable synthetic features: speaker s has mean 3 s in every dimension."""
    rng = np.random.default_rng(seed)
    return {
        f"spk{s}-utt{u}": (3.0 * s + rng.normal(size=(60 + u, dim))).astype(dtype)
        for s in range(n_spk)
        for u in range(n_utt)
    }


def kaldi_feats_dir(d: Path, feats: dict, with_utt2spk=True) -> Path:
    """A data dir written by kaldiio itself, as Kaldi's own tools would."""
    d.mkdir(parents=True, exist_ok=True)
    with kaldiio.WriteHelper(f"ark,scp:{d / 'feats.ark'},{d / 'feats.scp'}") as w:
        for utt in sorted(feats):
            w(utt, feats[utt])
    if with_utt2spk:
        (d / "utt2spk").write_text("".join(f"{u} {u.split('-')[0]}\n" for u in sorted(feats)))
    return d


# -- reading and writing archives ---------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_write_feats_reads_back_with_kaldiio(tmp_path, dtype):
    feats = random_feats(dtype=dtype)
    labels = {u: u.split("-")[0] for u in feats}
    cfg = FeatureConfig.preset("speech")
    ark, scp = write_feats(tmp_path / "out", feats, labels=labels, config=cfg)
    back = kaldiio.load_scp(scp)
    assert sorted(back) == sorted(feats)
    for u, X in feats.items():
        assert back[u].dtype == dtype
        np.testing.assert_array_equal(back[u], X)
    assert (tmp_path / "out" / "utt2spk").read_text().splitlines()[0] == "spk0-utt0 spk0"
    spk2utt = (tmp_path / "out" / "spk2utt").read_text().splitlines()
    assert spk2utt[1].split()[0] == "spk1" and len(spk2utt[1].split()) == 7
    assert FeatureConfig.from_json((tmp_path / "out" / CONFIG_FILE).read_text()) == cfg


def test_read_feats_of_a_kaldiio_dir(tmp_path):
    feats = random_feats()
    d = kaldi_feats_dir(tmp_path / "data", feats)
    utts = read_feats(d)
    assert [u.utt for u in utts] == sorted(feats)
    for u in utts:
        assert u.label == u.utt.split("-")[0]
        np.testing.assert_array_equal(u.features, feats[u.utt])
    (d / "utt2spk").unlink()
    assert {u.label for u in read_feats(d)} == {None}


def test_read_feats_errors(tmp_path):
    feats = random_feats(n_spk=1, n_utt=2)
    d = kaldi_feats_dir(tmp_path / "data", feats)
    (d / "utt2spk").write_text("spk0-utt0 spk0\n")
    with pytest.raises(DatasetError, match="no speaker for utterance.*spk0-utt1"):
        read_feats(d)
    (d / "utt2spk").unlink()
    (d / "feats.scp").write_text("u1 missing.ark:5\n")
    with pytest.raises(DatasetError, match="u1"):
        read_feats(d)
    (d / "feats.scp").write_text("u1 feats.ark:5[0:3]\n")
    with pytest.raises(DatasetError, match="ranges are unsupported"):
        read_feats(d)


def test_pickled_entries_are_never_unpickled(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    marker = tmp_path / "unpickled"
    kaldiio.save_ark(
        str(d / "feats.ark"),
        {"u1": Boom(str(marker))},
        scp=str(d / "feats.scp"),
        write_function="pickle",
    )
    with pytest.raises(DatasetError, match="not a binary Kaldi matrix"):
        read_feats(d)
    assert not marker.exists()


class Boom:
    """Unpickling it creates a file: proof that someone unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path(self.path).touch, ())


def test_piped_feats_entries_need_the_flag(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    kaldiio.save_mat(str(tmp_path / "m.mat"), X)
    marker = tmp_path / "ran"
    (d / "feats.scp").write_text(f"u1 touch {marker}; cat {tmp_path / 'm.mat'} |\n")
    with pytest.raises(DatasetError, match="command pipe.*allow_pipes=True"):
        read_feats(d)
    assert not marker.exists()  # refused before running anything
    (u,) = read_feats(d, allow_pipes=True)
    np.testing.assert_array_equal(u.features, X)
    assert marker.exists()


def test_utterance_ids_are_unique_and_speaker_first():
    ids = utterance_ids(["/d/a/x 1.flac", "/d/b/x 1.flac"], ["s1", "s1"])
    assert len(set(ids)) == 2 and all(i.startswith("s1-") and " " not in i for i in ids)
    assert utterance_ids(["/d/a/x.flac"], ["s"]) == ["s-x"]


# -- wav.scp with segments and pipes --------------------------------------------------------


def segments_dir(tmp_path: Path, *, piped=False) -> tuple[Path, list[Path]]:
    d = tmp_path / "segdata"
    d.mkdir(parents=True)
    files = [SPEAKERS / "ast_en" / "ast_en_00.flac", SPEAKERS / "flite_awb" / "flite_awb_00.flac"]
    recs = ["recA", "recB"]
    wav = [f"{r} cat {f} |" if piped else f"{r} {f}" for r, f in zip(recs, files)]
    (d / "wav.scp").write_text("\n".join(wav) + "\n")
    (d / "segments").write_text(
        "ast_en-a1 recA 0.0 1.5\nast_en-a2 recA 1.5 -1\nflite_awb-b1 recB 0.25 2.0\n"
    )
    (d / "utt2spk").write_text("ast_en-a1 ast_en\nast_en-a2 ast_en\nflite_awb-b1 flite_awb\n")
    return d, files


def test_segments_are_cut_from_their_recording(tmp_path):
    d, files = segments_dir(tmp_path)
    cfg = FeatureConfig.preset("speech")
    utts = read_segments(d, config=cfg)
    assert [(u.utt, u.label) for u in utts] == [
        ("ast_en-a1", "ast_en"),
        ("ast_en-a2", "ast_en"),
        ("flite_awb-b1", "flite_awb"),
    ]
    y, sr = load(files[0], sr=None), sf.info(str(files[0])).samplerate
    np.testing.assert_array_equal(utts[0].features, extract(y[: int(1.5 * sr)], config=cfg, sr=sr))
    np.testing.assert_array_equal(utts[1].features, extract(y[int(1.5 * sr) :], config=cfg, sr=sr))
    # a segment is not the whole clip: segments are honoured, not ignored
    assert len(utts[0].features) < len(extract(files[0], config=cfg))


def test_bad_segments(tmp_path):
    d, _ = segments_dir(tmp_path)
    (d / "segments").write_text("ast_en-a1 recA 0.0 99.0\n")
    (d / "utt2spk").write_text("ast_en-a1 ast_en\n")
    with pytest.raises(DatasetError, match="is not inside recording 'recA'"):
        read_segments(d)
    (d / "segments").write_text("ast_en-a1 recX 0.0 1.0\n")
    with pytest.raises(DatasetError, match="no recording 'recX'"):
        read_segments(d)


def test_piped_wav_scp_refused_by_default_allowed_with_the_flag(tmp_path):
    d, _ = segments_dir(tmp_path, piped=True)
    with pytest.raises(DatasetError, match="command pipe.*shell command"):
        read_segments(d)
    plain, _ = segments_dir(tmp_path / "plain")
    got = read_segments(d, allow_pipes=True)
    want = read_segments(plain)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a.features, b.features)


# -- the command line ---------------------------------------------------------------------


def test_cli_extract_format_kaldi_is_read_by_kaldiio(tmp_path):
    data = tmp_path / "speakers"
    for spk in ("ast_en", "flite_awb"):
        (data / spk).mkdir(parents=True)
        for f in sorted((SPEAKERS / spk).glob("*.flac"))[:3]:
            shutil.copy(f, data / spk / f.name)
    out = tmp_path / "kdir"
    r = run(["extract", data, "--format", "kaldi", "-o", out, "--json"])
    info = json.loads(r.output)
    assert info["n_utterances"] == 6 and info["skipped"] == []
    back = kaldiio.load_scp(str(out / "feats.scp"))
    assert sorted(back) == [f"{s}-{s}_0{i}" for s in ("ast_en", "flite_awb") for i in range(3)]
    np.testing.assert_array_equal(
        back["ast_en-ast_en_00"], extract(data / "ast_en" / "ast_en_00.flac")
    )
    if shutil.which("copy-feats"):  # Kaldi itself, where installed
        txt = subprocess.run(
            ["copy-feats", f"scp:{out / 'feats.scp'}", "ark,t:-"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert txt.count("[") == 6
    # the exported directory trains, and the model predicts audio (the config travelled)
    run(["train", out, "-o", tmp_path / "m.npz", "-k", "2", "--split", "all"])
    r = run(["predict", tmp_path / "m.npz", data / "ast_en" / "ast_en_00.flac"])
    assert "ast_en" in r.output


def test_cli_extract_kaldi_needs_output_and_allow_pipes(tmp_path):
    d, _ = segments_dir(tmp_path, piped=True)
    run(["extract", d, "--format", "kaldi"], code=2)
    r = CliRunner().invoke(
        main, ["extract", str(d), "--format", "kaldi", "-o", str(tmp_path / "o")]
    )
    assert r.exit_code == 1 and "allow_pipes" in r.output
    run(["extract", d, "--format", "kaldi", "-o", tmp_path / "o", "--allow-pipes"])
    assert sorted(kaldiio.load_scp(str(tmp_path / "o" / "feats.scp"))) == [
        "ast_en-a1", "ast_en-a2", "flite_awb-b1",
    ]  # fmt: skip


def test_cli_trains_and_evaluates_kaldi_feats_without_audio(tmp_path):
    d = kaldi_feats_dir(tmp_path / "data", random_feats(n_utt=8))
    model = tmp_path / "m.npz"
    r = run(["train", d, "-o", model, "-k", "2", "--json"])
    info = json.loads(r.output)
    assert info["labels"] == ["spk0", "spk1", "spk2"] and info["n_dims"] == 5
    assert info["feature_config"] is None
    r = run(["evaluate", model, d, "--json"])
    res = json.loads(r.output)
    assert res["accuracy"] == 1.0 and res["n"] == 6  # the held-out 2 of 8 per speaker
    # training utterances are refused, as for audio
    r = CliRunner().invoke(main, ["evaluate", str(model), str(d), "--split", "all"])
    assert r.exit_code == 1 and "used to train" in r.output
    # Kaldi-made features have no audiogmm front end: predicting audio is refused clearly
    r = CliRunner().invoke(
        main, ["predict", str(model), str(SPEAKERS / "ast_en" / "ast_en_00.flac")]
    )
    assert r.exit_code == 1 and "feature configuration" in r.output


def test_cli_evaluates_kaldi_feats_as_it_evaluates_audio(tmp_path):
    """One printing path: the confusion, the count with its skipped files, the report."""
    d = kaldi_feats_dir(tmp_path / "data", random_feats(n_utt=8))
    model, rep = tmp_path / "m.npz", tmp_path / "rep"
    run(["-q", "train", d, "-o", model, "-k", "2"])
    r = CliRunner().invoke(main, ["evaluate", str(model), str(d), "--report", str(rep)])
    assert r.exit_code == 0, r.output
    assert "6 utterances scored, 0 skipped" in r.stdout and "accuracy:" in r.stdout
    assert f"report: {rep}" in r.stderr and (rep / "metrics.json").exists()


def test_cli_trains_on_segments(tmp_path):
    d, _ = segments_dir(tmp_path)
    r = run(["train", d, "-o", tmp_path / "m.npz", "-k", "1", "--split", "all", "--json"])
    assert json.loads(r.output)["n_files"] == 3


def test_evaluate_refuses_features_of_another_configuration(tmp_path):
    data = tmp_path / "speakers"
    for spk in ("ast_en", "flite_awb"):
        (data / spk).mkdir(parents=True)
        for f in sorted((SPEAKERS / spk).glob("*.flac"))[:3]:
            shutil.copy(f, data / spk / f.name)
    speech, dcase = tmp_path / "speech", tmp_path / "dcase"
    run(["extract", data, "--format", "kaldi", "-o", speech])
    run(["extract", data, "--format", "kaldi", "-o", dcase, "--preset", "dcase2016"])
    model = tmp_path / "m.npz"
    run(["train", speech, "-o", model, "-k", "1"])
    run(["evaluate", model, speech])
    r = CliRunner().invoke(main, ["evaluate", str(model), str(dcase)])  # both 60-dim
    assert r.exit_code == 1 and "another configuration" in r.output


def test_feats_ark_is_kaldis_binary_matrix_format(tmp_path):
    """Byte for byte what Kaldi's copy-feats reads: `<key> \\0BFM \\4<rows>\\4<cols><float32 data>`."""
    X = np.arange(6, dtype=np.float32).reshape(3, 2) / 7
    ark, scp = write_feats(tmp_path, {"s-u1": X})
    key, where = (tmp_path / "feats.scp").read_text().split()
    path, offset = where.rsplit(":", 1)
    assert key == "s-u1" and path == ark
    data = Path(ark).read_bytes()
    assert data[: int(offset)] == b"s-u1 "
    want = b"\0BFM \x04" + np.int32(3).tobytes() + b"\x04" + np.int32(2).tobytes()
    assert data[int(offset) :] == want + X.astype("<f4").tobytes()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.pop("train_utts"),
        lambda b: b.update(train_utts=[["a"]]),
        lambda b: b.update(seed="0"),
        lambda b: b.update(train_fraction=float("nan")),
        lambda b: b.update(extra=1),
    ],
)
def test_kaldi_header_block_is_validated(mutate):
    from audiogmm.checks import check
    from audiogmm.io.tables import KALDI

    def validate_kaldi_block(block):
        return check(KALDI, block, "kaldi")

    good = {"data": "/d", "split": "train", "train_fraction": 0.7, "seed": 0, "train_utts": ["u"]}
    assert validate_kaldi_block(dict(good)) == good
    bad = json.loads(json.dumps(good))
    mutate(bad)
    with pytest.raises(ValueError, match="kaldi"):
        validate_kaldi_block(bad)


# ---------------------------------------------------------------------- hostile tables (issue 21)
@pytest.mark.parametrize("offset", [str(2**63), str(2**64 + 5), "99999999"])
def test_feats_scp_offsets_beyond_the_archive_name_the_file(tmp_path, offset):
    d = kaldi_feats_dir(tmp_path / "data", random_feats(n_spk=1, n_utt=1))
    (d / "feats.scp").write_text(f"spk0-utt0 {d / 'feats.ark'}:{offset}\n")
    with pytest.raises(DatasetError, match=f"offset {offset} is beyond the end") as ei:
        read_feats(d)
    assert str(d / "feats.scp") in str(ei.value)


@pytest.mark.parametrize(
    "bad",
    ["recA nan 1.0", "recA 0.0 inf", "recA -inf 1.0", "recA 0.5 nan", "recA 0.0 99.0",
     "recA 1.0 0.5", "recA 1.0 1.001", "recX 0.0 1.0", "recA 1e308 -1", "recA 0 1e308",
     "recA 99 -1"],  # fmt: skip
)
def test_a_bad_segment_is_skipped_and_named_not_fatal(tmp_path, caplog, bad):
    d, _ = segments_dir(tmp_path)
    segments = (d / "segments").read_text()
    (d / "segments").write_text(segments + f"ast_en-bad {bad}\n")
    (d / "utt2spk").write_text((d / "utt2spk").read_text() + "ast_en-bad ast_en\n")
    with caplog.at_level("WARNING"):
        utts = read_segments(d)
    assert [u.utt for u in utts] == ["ast_en-a1", "ast_en-a2", "flite_awb-b1"]
    assert any("skipped" in m and "'ast_en-bad'" in m for m in caplog.messages), caplog.messages
    # the CLI trains on the good segments and reports the one it skipped
    caplog.clear()
    r = CliRunner().invoke(main, ["train", str(d), "-o", str(tmp_path / "m.npz"), "-k", "1",
                                  "--split", "all", "--json"])  # fmt: skip
    assert r.exit_code == 0 and json.loads(r.output)["n_files"] == 3, r.output
    skipped = json.loads(r.output)["skipped"]  # batch jobs report what they skipped
    assert [x["path"] for x in skipped] == ["ast_en-bad"] and skipped[0]["reason"]
    # without --json it is listed once, on stderr, among the skipped
    r = CliRunner().invoke(main, ["train", str(d), "-o", str(tmp_path / "m.npz"), "-k", "1",
                                  "--split", "all"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert sum("ast_en-bad" in line for line in r.output.splitlines()) == 1, r.output


def test_an_unreadable_recording_skips_its_segments(tmp_path, caplog):
    d, _ = segments_dir(tmp_path)
    (d / "wav.scp").write_text((d / "wav.scp").read_text().replace("recB ", "recB /nonexistent/"))
    with caplog.at_level("WARNING"):
        utts = read_segments(d)
    assert [u.utt for u in utts] == ["ast_en-a1", "ast_en-a2"]
    assert any("'flite_awb-b1'" in m and "not found" in m for m in caplog.messages)


@pytest.mark.parametrize("label", ["two words", "line\nbreak", "tab\there", ""])
def test_labels_kaldi_cannot_read_back_are_refused_before_writing(tmp_path, label):
    feats = random_feats(n_spk=1, n_utt=2)
    labels = dict.fromkeys(feats, "ok")
    labels[sorted(feats)[0]] = label
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match="labels must be non-empty with no spaces") as ei:
        write_feats(out, feats, labels=labels)
    assert repr(label) in str(ei.value)
    assert not out.exists()  # nothing half-written


def test_feature_matrices_with_nan_or_inf_are_refused(tmp_path):
    feats = random_feats(n_spk=1, n_utt=2)
    feats["spk0-utt1"][3, 2] = np.nan
    d = kaldi_feats_dir(tmp_path / "data", feats)
    with pytest.raises(DatasetError, match="'spk0-utt1' has non-finite values") as ei:
        read_feats(d)
    assert str(d / "feats.scp") in str(ei.value)

