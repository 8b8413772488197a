"""The `audiogmm` command line, on real audio from data_samples/, in all three DATA forms."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from audiogmm.cli import main

from .conftest_audio import record_extractions

ROOT = Path(__file__).resolve().parents[1]
SPEAKERS = ROOT / "data_samples" / "speakers"
PICK = ["ast_en", "flite_slt", "flite_awb"]


@pytest.fixture(scope="module")
def folder_data(tmp_path_factory):
    """3 speakers x 6 real clips, as a folder per label."""
    d = tmp_path_factory.mktemp("speakers")
    for spk in PICK:
        (d / spk).mkdir()
        for f in sorted((SPEAKERS / spk).glob("*.flac"))[:6]:
            shutil.copy(f, d / spk / f.name)
    return d


@pytest.fixture(scope="module")
def csv_data(folder_data, tmp_path_factory):
    d = tmp_path_factory.mktemp("csvdata")
    rows = ["path,label,split"]
    for spk in PICK:
        for i, f in enumerate(sorted((folder_data / spk).glob("*.flac"))):
            rel = os.path.relpath(f, d)
            rows.append(f"{rel},{spk},{'train' if i < 4 else 'test'}")
    (d / "data.csv").write_text("\n".join(rows) + "\n")
    return d / "data.csv"


@pytest.fixture(scope="module")
def kaldi_data(folder_data, tmp_path_factory):
    d = tmp_path_factory.mktemp("kaldi")
    scp, u2s = [], []
    for spk in PICK:
        for f in sorted((folder_data / spk).glob("*.flac")):
            utt = f"{spk}-{f.stem}"
            scp.append(f"{utt} {f}")
            u2s.append(f"{utt} {spk}")
    (d / "wav.scp").write_text("\n".join(sorted(scp)) + "\n")
    (d / "utt2spk").write_text("\n".join(sorted(u2s)) + "\n")
    return d


def run(args, code=0):
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == code, r.output
    return r


@pytest.mark.parametrize("form", ["folder", "csv", "kaldi"])
def test_train_evaluate_predict(form, folder_data, csv_data, kaldi_data, tmp_path):
    data = {"folder": folder_data, "csv": csv_data, "kaldi": kaldi_data}[form]
    model = tmp_path / "m.npz"
    r = run(["-q", "train", data, "-o", model, "-k", "4", "--jobs", "1", "--json"])
    out = json.loads(r.output)
    assert out["labels"] == sorted(PICK) and out["skipped"] == [] and model.exists()
    r = run(["-q", "evaluate", model, data, "--jobs", "1", "--json", "--report", tmp_path / "rep"])
    ev = json.loads(r.output)
    assert ev["accuracy"] >= 0.8 and ev["n"] >= 3
    assert set(ev) >= {"accuracy", "n", "per_class", "confusion", "skipped"}
    assert ev["confusion"]["labels"] == sorted(PICK)
    assert (tmp_path / "rep" / "metrics.json").exists() and (
        tmp_path / "rep" / "confusion.txt"
    ).exists()
    clip = sorted((folder_data / "flite_slt").glob("*.flac"))[-1]
    r = run(["-q", "predict", model, clip, "--top", "2", "--json", "--jobs", "1"])
    pr = json.loads(r.output)
    assert pr["results"][0]["label"] == "flite_slt" and len(pr["results"][0]["top"]) == 2
    r = run(["info", model])
    assert "classes:       3" in r.output


def test_human_output_and_help(folder_data, tmp_path):
    model = tmp_path / "m.npz"
    r = run(["-q", "train", folder_data, "-o", model, "--backend", "ml", "-k", "2", "--jobs", "1"])
    assert "trained 3 classes x 2 components" in r.output
    r = run(["-q", "evaluate", model, folder_data, "--jobs", "1"])
    assert "accuracy:" in r.output and "true \\ predicted" in r.output
    r = run(["--help"])
    assert "Exit codes" in r.output
    for cmd in ("extract", "train", "evaluate", "predict", "info"):
        assert "Exit codes" in run([cmd, "--help"]).output


def test_extract_uses_cache(folder_data, tmp_path):
    r = run(["-q", "extract", folder_data, "--cache", tmp_path / "c", "--jobs", "1", "--json"])
    first = json.loads(r.output)
    assert first["n_extracted"] == 18 and first["n_cached"] == 0
    r = run(["-q", "extract", folder_data, "--cache", tmp_path / "c", "--jobs", "1", "--json"])
    second = json.loads(r.output)
    assert second["n_extracted"] == 0 and second["n_cached"] == 18
    r = run(["extract", folder_data], code=2)
    assert "--cache" in r.output


def test_model_config_wins_at_prediction(folder_data, tmp_path, monkeypatch):
    model = tmp_path / "m.npz"
    run(["-q", "train", folder_data, "-o", model, "-k", "2", "--preset", "librosa", "--jobs", "1"])
    clip = sorted((folder_data / "ast_en").glob("*.flac"))[0]
    # there is no way to ask predict for another front end
    r = CliRunner().invoke(main, ["predict", str(model), str(clip), "--preset", "speech"])
    assert r.exit_code == 2 and "No such option" in r.output
    # and the features it computes are the model's own
    import audiogmm.pipeline.classify as pipeline
    from audiogmm.pipeline import load_model

    seen = record_extractions(monkeypatch, pipeline)
    run(["-q", "predict", model, clip, "--jobs", "1"])
    assert seen and seen[0] == load_model(model).config
    assert (
        seen[0].content_hash()
        != __import__("audiogmm").FeatureConfig.preset("speech").content_hash()
    )


def test_bad_audio_is_skipped_and_reported(folder_data, tmp_path):
    d = tmp_path / "data"
    shutil.copytree(folder_data, d)
    (d / "ast_en" / "empty.wav").write_bytes(b"")
    (d / "flite_slt" / "noise.wav").write_bytes(np.random.default_rng(0).bytes(3000))
    sf.write(d / "flite_awb" / "silence.wav", np.zeros(16000, np.float32), 16000)
    model = tmp_path / "m.npz"
    # the speech preset: its VAD finds no voiced frame in the silent file
    r = run(["-q", "train", d, "-o", model, "-k", "2", "--split", "all", "--jobs", "1", "--json",
             "--preset", "speech"])  # fmt: skip
    skipped = {Path(s["path"]).name: s["reason"] for s in json.loads(r.output)["skipped"]}
    assert set(skipped) == {"empty.wav", "noise.wav", "silence.wav"}
    r = run(
        [
            "-q",
            "evaluate",
            model,
            d,
            "--split",
            "all",
            "--allow-train-overlap",  # the point here is skipping, on the training files
            "--jobs",
            "1",
            "--json",
            "--report",
            tmp_path / "rep",
        ]
    )
    ev = json.loads(r.output)
    assert len(ev["skipped"]) == 3 and ev["n"] == 18
    rep = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert len(rep["skipped"]) == 3


@pytest.mark.parametrize("damage", ["truncate", "flip", "text"])
def test_damaged_model_gives_one_line_error(folder_data, tmp_path, damage):
    model = tmp_path / "m.npz"
    run(["-q", "train", folder_data, "-o", model, "--backend", "ml", "-k", "2", "--jobs", "1"])
    data = bytearray(model.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":  # one bit of one stored mean
        from audiogmm.models import GMMClassifier

        pos = bytes(data).find(GMMClassifier.load(model).means_.tobytes()[800:816])
        assert pos > 0
        data[pos + 3] ^= 0x01
    else:
        data = bytearray(b"not a model")
    model.write_bytes(bytes(data))
    clip = sorted((folder_data / "ast_en").glob("*.flac"))[0]
    for args in (["predict", model, clip], ["info", model], ["evaluate", model, folder_data]):
        r = CliRunner().invoke(main, [str(a) for a in args])
        assert r.exit_code == 1, r.output
        assert "Traceback" not in r.output
        lines = [x for x in r.output.strip().splitlines() if x]
        assert len(lines) == 1 and lines[0].startswith("Error: ") and "m.npz" in lines[0]


def test_installed_console_script(folder_data, tmp_path):
    exe = shutil.which("audiogmm")
    if exe is None:
        pytest.fail("console script 'audiogmm' is not installed; run pip install -e .")
    r = subprocess.run([exe, "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and "audiogmm" in r.stdout
    model = tmp_path / "m.npz"
    r = subprocess.run(
        [exe, "-q", "train", str(folder_data), "-o", str(model), "-k", "2"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    clip = sorted((folder_data / "flite_awb").glob("*.flac"))[-1]
    r = subprocess.run([exe, "predict", str(model), str(clip)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("flite_awb")
    r = subprocess.run([exe, "info", str(tmp_path / "nope.npz")], capture_output=True, text=True)
    assert r.returncode == 2 and "does not exist" in r.stderr
    _ = sys
