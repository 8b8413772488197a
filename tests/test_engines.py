"""The librosa engine, the extras allow-list, and what the default process never imports.

The stated tolerance of the engines: ``|librosa - numpy| <= ENGINE_ATOL + ENGINE_RTOL * |numpy|``
element by element. The features are dB cepstra (or standard deviations after CMVN), so
1e-3 is far below any real difference (a window, a lifter) and far above the float32
rounding by which the two FFT layouts differ (measured: at most 1.3e-4).
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import librosa
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from audiogmm import audio
from audiogmm.cli import main
from audiogmm.exceptions import AudioGMMError, FeatureError, ModelFileError, ParameterError
from audiogmm.features import PRESETS, FeatureConfig, extract
from audiogmm.features.config import EXTRAS
from audiogmm.features.extraction import derivable, derive

from .test_model_file import tamper_header

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEAKERS = os.path.join(ROOT, "data_samples", "speakers")
SOUNDS = os.path.join(ROOT, "data_samples", "sounds")
CLIPS = sorted(glob.glob(os.path.join(SOUNDS, "*", "*.flac")))
ENGINE_ATOL, ENGINE_RTOL = 1e-3, 1e-5


def _close(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_allclose(b, a, rtol=ENGINE_RTOL, atol=ENGINE_ATOL)


def _signal(sr: int, seconds: float, seed: int) -> np.ndarray:
    """A real clip (resampled to ``sr``) repeated to ``seconds``, or white noise for odd seeds."""
    n = max(1, int(round(sr * seconds)))
    if seed % 2:
        return (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)
    return np.resize(audio.load(CLIPS[seed % len(CLIPS)], sr=sr), n)


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("sr", [8000, 16000, 44100, 48000])
def test_librosa_engine_equals_numpy_engine(name, sr):
    c = PRESETS[name]
    lib = c.replace(engine="librosa")
    for i, seconds in enumerate((0.05, 0.3, 2.0, 30.0)):
        y = _signal(sr, seconds, seed=i + sr)
        try:
            a = extract(y, config=c, sr=sr)
        except FeatureError as e:  # shorter than one window: the same error either way
            with pytest.raises(FeatureError, match="too short") as other:
                extract(y, config=lib, sr=sr)
            assert str(other.value) == str(e)
            continue
        _close(a, extract(y, config=lib, sr=sr))
    assert c.content_hash() != lib.content_hash()  # a check against librosa is never cached numpy


@pytest.mark.parametrize("changes", [{}, {"center": False}, {"pad_mode": "wrap"},
                                     {"dtype": "float64", "cmvn": "sliding"}])  # fmt: skip
def test_librosa_engine_on_other_grids(changes):
    c = PRESETS["speech"].replace(**changes)
    y = _signal(16000, 1.3, seed=2)
    _close(extract(y, config=c), extract(y, config=c.replace(engine="librosa")))


def test_the_tolerance_sees_a_real_difference():
    c = PRESETS["general"]
    y = _signal(16000, 1.0, seed=0)
    for other in (c.replace(window="hann"), c.replace(lifter=22.0), c.replace(n_mels=41)):
        with pytest.raises(AssertionError):
            _close(extract(y, config=c), extract(y, config=other.replace(engine="librosa")))


def test_librosa_engine_calls_librosa(monkeypatch):
    calls = []
    real = librosa.feature.mfcc
    monkeypatch.setattr(librosa.feature, "mfcc", lambda **kw: calls.append(1) or real(**kw))
    extract(_signal(16000, 0.5, 0), config=FeatureConfig(engine="librosa"))
    assert calls
    calls.clear()
    extract(_signal(16000, 0.5, 0))
    assert not calls


def test_a_fresh_train_imports_neither_librosa_nor_numba(tmp_path):
    # -X importtime logs every module the console command imports, in a fresh interpreter
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "audiogmm", "-q", "train", SPEAKERS,
         "-o", str(tmp_path / "m.npz"), "-k", "2", "--max-iter", "2", "-j", "1"],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if "|" in line}
    assert "audiogmm.features.spectral" in imported  # the log is the run's
    assert not {m for m in imported if m.split(".")[0] in ("librosa", "numba")}


# ---------------------------------------------------------------------- the config
def test_new_fields_leave_the_old_hashes_alone():
    g = FeatureConfig()
    assert g.content_hash() == "200e54576d7ba3f9"  # as before engine and extras existed (format 3)
    assert g.replace(engine="librosa").content_hash() != g.content_hash()
    assert g.replace(extras=["rms"]).content_hash() != g.content_hash()
    a = g.replace(extras=[{"name": "spectral_rolloff", "roll_percent": 0.5}])
    assert a.content_hash() != g.replace(extras=["spectral_rolloff"]).content_hash()
    assert a == FeatureConfig.from_json(a.to_json()) and hash(a) == hash(
        FeatureConfig.from_json(a.to_json())
    )


def test_extras_dims_and_names():
    c = PRESETS["speech"].replace(
        extras=[
            "rms",
            {"name": "spectral_contrast", "n_bands": 3},
            {"name": "chroma_stft", "n_chroma": 4},
        ]
    )
    assert c.n_dims == 60 + 1 + 4 + 4
    names = c.dimension_names()
    assert (
        names[0] == ("log energy", "std. dev.")
        and names[20][0] == "Δ log energy"
        and names[21][0] == "Δ MFCC 1"
    )
    assert [n for n, _ in names[60:62]] == ["rms", "spectral_contrast 0"]
    assert FeatureConfig().dimension_names()[14] == ("Δ MFCC 1", "dB per frame")
    assert FeatureConfig(extras=["spectral_centroid"]).dimension_names()[-1] == (
        "spectral_centroid",
        "Hz",
    )


@pytest.mark.parametrize(
    "extras, match",
    [
        (["mfcc"], "unknown feature 'mfcc'"),
        (["os.system"], "unknown feature 'os.system'"),
        ([{"name": "rms", "frame_length": 4}], "rms has no argument 'frame_length'"),
        ([{"name": "spectral_rolloff", "roll_percent": 1.5}], "roll_percent: must be a number in"),
        ([{"name": "spectral_contrast", "n_bands": 2.5}], "n_bands: must be an integer"),
        ([{"name": "spectral_contrast", "n_bands": 10**400}], "n_bands: must be an integer"),
        ([{"name": "spectral_rolloff", "roll_percent": 10**400}], "number of float range"),
        ([{"name": "spectral_contrast", "n_bands": 7}], "above Nyquist"),
        ([{"name": "spectral_contrast", "fmin": 1.0}], "bin spacing"),
        ([{"name": "chroma_stft", "base_c": 1}], "base_c: must be true or false"),
        ([{"rms": {}}], "unknown feature None"),
        ("rms", "must be a list"),
        ([["rms", {}]], "expected a name"),
        (["rms", "rms"], "named twice"),
    ],
)
def test_bad_extras_are_refused_with_one_line_naming_them(extras, match):
    with pytest.raises(ParameterError, match=match) as e:
        FeatureConfig.from_dict({"extras": extras})
    assert "\n" not in str(e.value)


def test_bad_engine_is_refused():
    with pytest.raises(ParameterError, match="engine: must be one of"):
        FeatureConfig(engine="torch")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=8,
)
_ITEM = st.sampled_from(sorted(EXTRAS)) | st.fixed_dictionaries(
    {"name": st.sampled_from(sorted(EXTRAS))},
    optional={k: _JSON | st.floats(-2, 20) | st.integers(0, 20) | st.booleans()
              for spec in EXTRAS.values() for k in spec.args},
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    extras=st.lists(_ITEM | _JSON, max_size=4),
    engine=_JSON | st.sampled_from(["numpy", "librosa"]),
    n_fft=st.sampled_from([0, 16, 1024, 2**40]),
    sample_rate=st.sampled_from([0, 1000, 16000]),
)
def test_fuzz_new_config_fields(extras, engine, n_fft, sample_rate):
    # any JSON for the new fields: a valid config that round-trips, or one ParameterError
    try:
        c = FeatureConfig.from_dict({"extras": extras, "engine": engine, "n_fft": n_fft,
                                     "sample_rate": sample_rate, "win_ms": 1.0})  # fmt: skip
    except ParameterError as e:
        assert "\n" not in str(e)
        return
    assert FeatureConfig.from_json(c.to_json()) == c and c.n_dims >= 26
    assert FeatureConfig.from_dict(c.to_dict()).content_hash() == c.content_hash()


# ---------------------------------------------------------------------- extras at work
@pytest.mark.parametrize("name", sorted(EXTRAS))
def test_each_extra_is_on_the_cepstra_grid_with_vad_and_cmvn(name):
    c = PRESETS["speech"].replace(extras=[name])  # VAD + utterance CMVN
    y = np.concatenate([np.zeros(8000, np.float32), _signal(16000, 1.5, 0)])
    x = extract(y, config=c)
    base = extract(y, config=PRESETS["speech"])
    assert x.shape[0] == base.shape[0] and x.shape[1] == c.n_dims
    np.testing.assert_array_equal(x[:, :60], base)  # the cepstra are untouched
    tail = x[:, 60:]
    assert np.isfinite(tail).all()
    assert np.allclose(tail.mean(axis=0), 0, atol=1e-4)  # CMVN covers the extras too
    raw = extract(y, config=c.replace(vad=False, cmvn="none"))
    assert raw.shape[0] == 1 + y.size // c.hop_length  # every frame, the STFT's grid


def test_extras_equal_librosa_called_directly():
    c = PRESETS["general"].replace(
        extras=["spectral_centroid", {"name": "spectral_rolloff", "roll_percent": 0.5}, "rms"]
    )
    y = _signal(16000, 45.0, 0)  # 2251 frames: more than one STFT block
    x = extract(y, config=c)
    win = librosa.util.pad_center(
        librosa.filters.get_window("hamming", 640, fftbins=True), size=1024
    )
    S = np.abs(librosa.stft(y, n_fft=1024, hop_length=320, window=win.astype(np.float32)))
    ref = [
        librosa.feature.spectral_centroid(S=S, sr=16000, n_fft=1024)[0],
        librosa.feature.spectral_rolloff(S=S, sr=16000, n_fft=1024, roll_percent=0.5)[0],
        librosa.feature.rms(y=y, frame_length=1024, hop_length=320)[0],
    ]
    np.testing.assert_allclose(x[:, 26:], np.stack(ref, axis=1), rtol=1e-5, atol=1e-6)


def test_extras_are_not_derived_across_delta_orders():
    src = FeatureConfig(extras=["rms"])
    assert not derivable(src, src.replace(delta_order=0))
    tgt = src.replace(cmvn="utterance")
    assert derivable(src, tgt)
    y = _signal(16000, 1.0, 0)
    np.testing.assert_array_equal(derive(extract(y, config=src), src, tgt), extract(y, config=tgt))


@pytest.fixture(scope="module")
def extras_models(tmp_path_factory):
    return tmp_path_factory.mktemp("extras")


@pytest.mark.parametrize("name", sorted(EXTRAS))
def test_each_extra_trains_and_evaluates_through_the_cli(name, extras_models):
    cfg = extras_models / f"{name}.json"
    cfg.write_text(json.dumps({"extras": [name]}))
    model = extras_models / f"{name}.npz"
    run = CliRunner().invoke
    r = run(main, ["-q", "train", SOUNDS, "--config", str(cfg), "-o", str(model), "-k", "2",
                   "--max-iter", "3", "-j", "1"])  # fmt: skip
    assert r.exit_code == 0, r.output
    r = run(main, ["-q", "evaluate", str(model), SOUNDS, "-j", "1", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["n"] > 0
    r = run(main, ["info", str(model), "--json"])
    assert r.exit_code == 0 and name in r.output
    r = run(main, ["info", str(model)])
    assert r.exit_code == 0 and f"CMVN none, extras {name} (hash" in r.output


def test_librosa_engine_config_works_in_the_cli(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text('{"engine": "librosa"}')
    model = tmp_path / "m.npz"
    run = CliRunner().invoke
    for args in (
        ["train", SPEAKERS, "--config", str(cfg), "-o", str(model), "-k", "2", "--max-iter", "2"],
        ["evaluate", str(model), SPEAKERS],
        ["predict", str(model), CLIPS[0]],
        ["extract", SPEAKERS, "--config", str(cfg), "--cache", str(tmp_path / "c")],
    ):
        r = run(main, ["-q", *args, "-j", "1"])
        assert r.exit_code == 0, (args[0], r.output)


@pytest.mark.parametrize(
    "extras, match", [([{"name": "eval"}], "unknown feature 'eval'"),
                      ([{"name": "rms", "y": 1}], "rms has no argument 'y'")],
)  # fmt: skip
def test_model_file_naming_an_unknown_extra_is_refused(extras, match, extras_models, tmp_path):
    model = extras_models / "rms.npz"
    if not model.exists():
        test_each_extra_trains_and_evaluates_through_the_cli("rms", extras_models)
    bad = tamper_header(
        model, tmp_path / "bad.npz", lambda h: h["feature_config"].update(extras=extras)
    )
    r = CliRunner().invoke(main, ["info", str(bad)])
    assert r.exit_code == 1 and str(bad) in r.output and len(r.output.strip().splitlines()) == 1
    assert match.replace("'", "") in r.output.replace("'", "")
    from audiogmm.pipeline import load_model

    with pytest.raises(ModelFileError, match=match):
        load_model(bad)
    assert issubclass(ModelFileError, AudioGMMError)


def test_without_librosa_the_engine_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "librosa", None)  # import librosa -> ImportError
    with pytest.raises(ParameterError, match="need librosa, which is not installed"):
        extract(_signal(16000, 0.5, 0), config=FeatureConfig(engine="librosa"))
    with pytest.raises(ParameterError, match="need librosa"):
        extract(_signal(16000, 0.5, 0), config=FeatureConfig(extras=["rms"]))
    assert extract(_signal(16000, 0.5, 0)).shape == (26, 26)  # the default never needs it


def test_cli_config_naming_an_unknown_extra_is_refused(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"extras": [{"name": "spectral_rolloff", "roll": 0.5}]}))
    r = CliRunner().invoke(main, ["train", SOUNDS, "--config", str(cfg), "-o", str(tmp_path / "m")])
    assert r.exit_code != 0 and not (tmp_path / "m").exists()
    assert str(cfg) in r.output and "spectral_rolloff has no argument 'roll'" in r.output
    assert len(r.output.strip().splitlines()) == 1
