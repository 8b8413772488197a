"""CLI papercuts from the ecosystem issue: a partial --config on --preset, predict on folders."""

import json
import logging
import shutil
from pathlib import Path

import pytest
import soundfile as sf
from click.testing import CliRunner

from audiogmm.cli import main
from audiogmm.features import FeatureConfig
from audiogmm.pipeline import load_model

ROOT = Path(__file__).resolve().parents[1]
SPEAKERS = ROOT / "data_samples" / "speakers"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("papercuts") / "data"
    for spk in sorted(p.name for p in SPEAKERS.iterdir() if p.is_dir())[:2]:
        (base / spk).mkdir(parents=True)
        for f in sorted((SPEAKERS / spk).glob("*.flac"))[:4]:
            shutil.copy(f, base / spk / f.name)
    return base


@pytest.fixture(scope="module")
def model(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "m.npz"
    # the speech preset: its VAD skips silent files, which the skip-line test needs
    r = CliRunner().invoke(main, ["-q", "train", str(data), "-o", str(path), "-k", "2",
                                  "--split", "all", "-j", "1", "--preset", "speech"])  # fmt: skip
    assert r.exit_code == 0, r.output
    return path


@pytest.mark.parametrize("preset", ["dcase2016", "librosa", "sound"])
def test_partial_config_is_applied_on_the_chosen_preset(data, tmp_path, preset):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"n_mfcc": 11}))
    out = tmp_path / "m.npz"
    r = CliRunner().invoke(main, ["-q", "train", str(data), "-o", str(out), "-k", "2",
                                  "--preset", preset, "--config", str(cfg), "--split", "all",
                                  "-j", "1"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert load_model(out).config == FeatureConfig.preset(preset).replace(n_mfcc=11)


def test_bad_config_file_is_one_error_naming_it(data, tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"n_mfcc": "many"}))
    r = CliRunner().invoke(main, ["train", str(data), "-o", str(tmp_path / "m.npz"),
                                  "--config", str(cfg)])  # fmt: skip
    assert r.exit_code == 1 and str(cfg) in r.output and "n_mfcc" in r.output
    assert "Traceback" not in r.output


def test_predict_expands_folders(data, model):
    r = CliRunner().invoke(main, ["-q", "predict", str(model), str(data), "--json", "-j", "1"])
    assert r.exit_code == 0, r.output
    got = sorted(x["path"] for x in json.loads(r.output)["results"])
    assert got == sorted(str(p) for p in data.rglob("*.flac")) and len(got) == 8


def test_predict_strict_stops_at_bad_audio(data, model, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really")
    good = next(data.rglob("*.flac"))
    r = CliRunner().invoke(main, ["-q", "predict", str(model), str(good), str(bad), "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["skipped"][0]["path"] == str(bad)
    r = CliRunner().invoke(main, ["-q", "predict", str(model), str(good), str(bad), "--strict"])
    assert r.exit_code != 0 and str(bad) in r.output


def test_predict_on_a_folder_without_audio_is_a_usage_error(model, tmp_path):
    (tmp_path / "empty").mkdir()
    sf.write(tmp_path / "empty" / "notes.txt", [0.0], 8000, format="WAV")  # not by extension
    r = CliRunner().invoke(main, ["predict", str(model), str(tmp_path / "empty")])
    assert r.exit_code == 2 and "no audio files" in r.output


def test_oversized_model_warns_naming_class_k_and_frames(data, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="audiogmm"):
        r = CliRunner().invoke(main, ["train", str(data), "-o", str(tmp_path / "m.npz"),
                                      "--backend", "ml", "-k", "256", "--split", "all", "-j", "1"])  # fmt: skip
    assert r.exit_code == 0, r.output
    lines = [x for x in caplog.messages if "over-sized" in x]
    assert len(lines) == 2 and all("K=256" in x and "frames" in x for x in lines)


def test_library_fit_warns_oversized_and_not_for_a_sane_k():
    import numpy as np

    from audiogmm.exceptions import OversizedModelWarning
    from audiogmm.models import GMMClassifier

    rng = np.random.default_rng(0)
    clips = [rng.normal(size=(300, 3)) for _ in range(4)]
    with pytest.warns(OversizedModelWarning, match=r"class 'a': K=64 components for 600 frames"):
        GMMClassifier(64, max_iter=3).fit(clips, ["a", "a", "b", "b"])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", OversizedModelWarning)
        GMMClassifier(4, max_iter=3).fit(clips, ["a", "a", "b", "b"])


def test_skip_lines_name_the_file_once_and_give_cli_advice(model, tmp_path):
    import numpy as np

    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000), 16000)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really")
    r = CliRunner().invoke(main, ["predict", str(model), str(silent), str(bad), "-j", "1"])
    lines = [x for x in r.output.splitlines() if x.startswith("  ")]
    assert len(lines) == 2, r.output
    for p, line in zip((silent, bad), lines):
        assert line.count(p.name) == 1, line
    assert "energy floor" in lines[0]  # why, in words a user can act on


def test_progress_bar_follows_done_counts_so_the_eta_is_sane(monkeypatch):
    from audiogmm.cli.options import ProgressBar

    bar = ProgressBar()
    bar(1, 1000, "Extracting features")
    inner = bar._bar
    bar(900, 1000, "Extracting features")  # 899 cached files reported at once
    assert inner.pos == 900
    assert inner.length - inner.pos == 100  # the ETA counts only the work left
    bar(1000, 1000, "Extracting features")
    assert bar._bar is None


def test_auto_on_a_shard_store_is_a_usage_error(data, tmp_path):
    store = tmp_path / "store"
    r = CliRunner().invoke(main, ["-q", "extract", str(data), "--cache", str(tmp_path / "c"),
                                  "--shards", str(store), "-j", "1"])  # fmt: skip
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["train", str(store), "-o", str(tmp_path / "m.npz"),
                                  "-k", "auto"])  # fmt: skip
    assert r.exit_code == 2 and "shard store has fixed features" in r.output


def test_every_command_summary_in_the_group_help_is_a_whole_sentence():
    # `audiogmm --help` shows each command's first docstring line: train's once stopped
    # mid-sentence ("... or a UBM's")
    for name, cmd in main.commands.items():
        assert cmd.short_help.endswith((".", ")")), (name, cmd.short_help)


def test_a_usage_error_after_parsing_leaves_no_output_folder_behind(data, tmp_path):
    config = tmp_path / "c.json"
    config.write_text('{"n_mfcc": 13}')
    out = tmp_path / "new" / "deeper" / "m.npz"
    r = CliRunner().invoke(main, ["train", str(data), "-o", str(out), "--preset", "auto",
                                  "--config", str(config)])  # fmt: skip
    assert r.exit_code == 2 and "--config gives one front end" in r.output, r.output
    assert not (tmp_path / "new").exists(), "the output check made folders before the error"
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    r = CliRunner().invoke(main, ["train", str(data), "-o", str(blocker / "sub" / "m.npz")])
    assert r.exit_code == 1 and str(blocker / "sub" / "m.npz") in r.output, r.output
