"""audiogmm.features: FeatureConfig, presets, and extract() against librosa and numpy references."""

from __future__ import annotations

import json

import librosa
import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from audiogmm.exceptions import FeatureError, ParameterError
from audiogmm.features import (
    DEFAULT_PRESET,
    FEATURE_FORMAT_VERSION,
    PRESETS,
    FeatureConfig,
    extract,
)
from audiogmm.features.extraction import SILENT_RUN_S, sliding_cmvn, utterance_cmvn, vad_mask
from audiogmm.features.spectral import mel_and_energy

from .conftest_audio import real_clips, speech_like

RAW = dict(vad=False, cmvn="none", c0="keep")  # static MFCC only post-processing off


def assert_close_to(actual, desired, rel=1e-5):
    """|a - d| <= rel * max|d| elementwise (float32 MFCCs are O(100))."""
    assert actual.shape == desired.shape
    np.testing.assert_allclose(actual, desired, rtol=rel, atol=rel * np.abs(desired).max())


# ---------------------------------------------------------------------- acceptance 1
@pytest.mark.parametrize("seed", [0, 1])
def test_librosa_preset_equals_librosa_mfcc(seed):
    y = speech_like(22050, 2.0, seed=seed)
    ours = extract(y, config=FeatureConfig.preset("librosa"), sr=22050)
    ref = librosa.feature.mfcc(y=y, sr=22050).T
    assert ours.dtype == np.float32
    assert_close_to(ours, ref)


def test_librosa_preset_on_a_real_clip():
    clips = real_clips(limit=1)
    if not clips:
        pytest.skip("data_samples/ not present")
    from audiogmm.audio import load

    y = load(clips[0], sr=22050)
    ours = extract(y, config=PRESETS["librosa"], sr=22050)
    assert_close_to(ours, librosa.feature.mfcc(y=y, sr=22050).T)


def test_dcase2016_static_part_matches_librosa():
    cfg = FeatureConfig.preset("dcase2016")
    y = speech_like(44100, 1.5, seed=3)
    x = extract(y, config=cfg, sr=44100)
    assert x.shape[1] == 60
    ref = librosa.feature.mfcc(
        y=y,
        sr=44100,
        n_mfcc=20,
        n_fft=2048,
        hop_length=882,
        win_length=1764,
        window="hamming",
        n_mels=40,
        fmin=0.0,
        fmax=22050.0,
        htk=False,
    )
    assert_close_to(x[:, :20], ref.T)
    d1 = librosa.feature.delta(ref, width=9, order=1)
    d2 = librosa.feature.delta(ref, width=9, order=2)
    np.testing.assert_allclose(x[:, 20:40], d1.T, atol=1e-4 * np.abs(d1).max())
    np.testing.assert_allclose(x[:, 40:], d2.T, atol=1e-4 * np.abs(d2).max())


# ---------------------------------------------------------------------- acceptance 2
@pytest.mark.parametrize("mode", ["interp", "nearest"])
@pytest.mark.parametrize("width", [3, 5, 9])
@pytest.mark.parametrize("order", [1, 2])
def test_deltas_equal_librosa_delta(mode, width, order):
    cfg = PRESETS["speech"].replace(delta_order=order, delta_width=width, delta_mode=mode, **RAW)
    x = extract(speech_like(16000, 1.0, seed=2), config=cfg)
    n = cfg.n_dims // (order + 1)  # the static cepstra
    static = x[:, :n].T
    for k in range(1, order + 1):
        ref = librosa.feature.delta(static, width=width, order=k, mode=mode)
        np.testing.assert_array_equal(x[:, k * n : (k + 1) * n], ref.T)


def test_short_clip_falls_back_to_nearest_deltas():
    cfg = PRESETS["dcase2016"]  # interp deltas, width 9
    y = speech_like(44100, 0.08, seed=1)  # 5 frames < width
    x = extract(y, config=cfg, sr=44100)
    assert x.shape == (5, 60) and np.isfinite(x).all()
    ref = librosa.feature.delta(x[:, :20].T, width=9, order=1, mode="nearest")
    np.testing.assert_array_equal(x[:, 20:40], ref.T)


def test_utterance_cmvn_gives_zero_mean_unit_std():
    x = extract(speech_like(16000, 3.0, seed=5), config=PRESETS["speech"])  # VAD, then CMVN
    assert x.shape[1] == 60
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=0), 1.0, atol=1e-5)


def test_utterance_cmvn_constant_dimension_is_zero():
    x = np.ones((50, 3))
    x[:, 1] = np.arange(50)
    out = utterance_cmvn(x)
    assert np.isfinite(out).all() and not out[:, 0].any()
    np.testing.assert_allclose(out[:, 1].std(), 1.0)
    np.testing.assert_allclose(utterance_cmvn(x, norm_vars=False)[:, 1], np.arange(50) - 24.5)


def _sliding_reference(x, window, norm_vars):
    n = len(x)
    out = np.empty_like(x, dtype=np.float64)
    w = min(window, n)
    for t in range(n):
        start = t - window // 2
        start = min(max(start, 0), n - w)
        seg = x[start : start + w].astype(np.float64)
        out[t] = x[t] - seg.mean(axis=0)
        if norm_vars:
            out[t] /= np.maximum(seg.std(axis=0), 1e-8)
    return out


@pytest.mark.parametrize("window", [1, 7, 50, 300, 1000])
@pytest.mark.parametrize("norm_vars", [False, True])
def test_sliding_cmvn_matches_numpy_reference(window, norm_vars):
    rng = np.random.default_rng(window)
    x = (rng.standard_normal((240, 4)) * [1, 10, 0.1, 3] + [0, 100, -5, 1e3]).astype(np.float32)
    got = sliding_cmvn(x, window=window, norm_vars=norm_vars)
    np.testing.assert_allclose(got, _sliding_reference(x, window, norm_vars), atol=1e-6, rtol=1e-6)


def test_sliding_cmvn_in_extract():
    cfg = PRESETS["speech"].replace(cmvn="sliding", cmvn_window=64)
    y = speech_like(16000, 2.0, seed=4)
    x = extract(y, config=cfg)
    raw = extract(y, config=cfg.replace(cmvn="none"))
    np.testing.assert_allclose(x, _sliding_reference(raw, 64, True), atol=2e-5)


# ---------------------------------------------------------------------- VAD, silence
def test_vad_drops_the_silent_part():
    t = np.arange(32000) / 16000
    y = (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    y[16000:] = 0.0  # second half: digital silence
    cfg = PRESETS["speech"]
    x = extract(y, config=cfg)
    allf = extract(y, config=cfg, keep_all_frames=True)
    assert allf.shape[0] == 201
    assert 100 <= x.shape[0] <= 103  # the tone's frames (+ edge frames) are kept, silence dropped


def test_vad_mask_rules():
    e = np.array([-100.0, -90.0, -40.0, -20.0, -10.0])
    np.testing.assert_array_equal(
        vad_mask(e, threshold_db=30.0, floor_db=-80.0), [False, False, False, True, True]
    )
    np.testing.assert_array_equal(
        vad_mask(np.full(3, -95.0), threshold_db=30.0, floor_db=-80.0), [False] * 3
    )
    assert vad_mask(np.zeros(0), threshold_db=30.0, floor_db=-80.0).shape == (0,)


@pytest.mark.parametrize("name", ["speech", "dcase2016", "librosa"])
@pytest.mark.parametrize("signal", ["zeros", "constant", "tiny"])
def test_silent_and_constant_input_is_finite(name, signal):
    cfg = PRESETS[name]
    n = cfg.sample_rate
    y = {"zeros": np.zeros(n), "constant": np.full(n, 0.25), "tiny": np.full(n, 1e-30)}[signal]
    x = extract(y.astype(np.float32), config=cfg, keep_all_frames=True)
    assert x.shape[1] == cfg.n_dims and np.isfinite(x).all()


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("seconds", [0.1, 1.0])
@pytest.mark.parametrize("level", [0.0, 1e-6])  # digital silence, and hiss at -120 dB
def test_a_silent_clip_is_refused_whatever_the_preset(name, seconds, level):
    """Issue 21 item 1: the default preset (no VAD) used to give silence confident labels."""
    cfg = PRESETS[name]
    n = int(seconds * cfg.sample_rate)
    y = (level * np.random.default_rng(0).standard_normal(n)).astype(np.float32)
    with pytest.raises(FeatureError, match="silent: no frame above the -80 dB energy floor"):
        extract(y, config=cfg)
    assert extract(y, config=cfg, keep_all_frames=True).shape[0] > 0


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_long_runs_of_digital_silence_give_no_frames(name):
    """A 3 s tone with 10 s of exact zeros inside: about as many frames as the tone alone.

    (Issue 21 item 1: an hour of digital silence in a class took over its model.)"""
    cfg = PRESETS[name]
    sr = cfg.sample_rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(3 * sr) / sr)).astype(np.float32)
    gap = np.concatenate((tone[: sr], np.zeros(10 * sr, np.float32), tone[sr:]))
    n_tone, n_gap = len(extract(tone, config=cfg)), len(extract(gap, config=cfg))
    n_all = len(extract(gap, config=cfg, keep_all_frames=True))
    assert n_all > 3 * n_tone  # the silence is there to drop
    assert n_tone <= n_gap <= n_tone + 2 * round(SILENT_RUN_S * 1000 / cfg.hop_ms)


def test_short_pauses_of_digital_silence_are_kept():
    """Pauses under SILENT_RUN_S (the gap between two clicks) are sound, and stay."""
    cfg = PRESETS["general"]
    sr = cfg.sample_rate
    y = (0.3 * np.sin(2 * np.pi * 440 * np.arange(sr) / sr)).astype(np.float32)
    y[sr // 4 : sr // 4 + int(0.7 * sr)] = 0.0  # 700 ms of zeros
    np.testing.assert_array_equal(extract(y, config=cfg),
                                  extract(y, config=cfg, keep_all_frames=True))


def test_a_mostly_silent_clip_is_named_in_a_warning(caplog):
    cfg = PRESETS["general"]
    sr = cfg.sample_rate
    rng = np.random.default_rng(0)
    y = (3e-5 * rng.standard_normal(4 * sr)).astype(np.float32)  # hiss at -90 dB
    y[:sr // 4] += 0.3 * np.sin(2 * np.pi * 440 * np.arange(sr // 4) / sr).astype(np.float32)
    with caplog.at_level("WARNING", logger="audiogmm"):
        extract(y, config=cfg)
    assert any("mostly near-silent" in m and "-80 dB energy floor" in m for m in caplog.messages)
    caplog.clear()
    with caplog.at_level("WARNING", logger="audiogmm"):
        extract(y, config=PRESETS["speech"])  # VAD drops those frames: nothing to warn about
        extract(y[: sr // 4], config=cfg)
    assert not caplog.messages


def test_frame_energy_of_full_scale_sine_is_minus_3_db():
    cfg = PRESETS["speech"]
    t = np.arange(16000) / 16000
    y = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    _, e = mel_and_energy(y, cfg)
    np.testing.assert_allclose(e[5:-5], 10 * np.log10(0.5), atol=0.05)


def test_frame_energy_is_mean_square_under_the_window():
    # brute force: the windowed mean square of each centred frame, in dB (Parseval in the code)
    cfg = PRESETS["speech"]
    y = speech_like(16000, 0.5, seed=3)
    _, e = mel_and_energy(y, cfg)
    w = librosa.filters.get_window(cfg.window, cfg.win_length, fftbins=True).astype(np.float64)
    w = librosa.util.pad_center(w, size=cfg.n_fft)
    frames = librosa.util.frame(np.pad(y.astype(np.float64), cfg.n_fft // 2),
                                frame_length=cfg.n_fft, hop_length=cfg.hop_length).T
    ms = ((frames * w) ** 2).sum(1) / (w**2).sum()
    np.testing.assert_allclose(e, 10 * np.log10(np.maximum(ms, 1e-10)), atol=1e-3)


def test_c0_modes():
    y = speech_like(16000, 1.0, seed=9)
    base = PRESETS["speech"].replace(vad=False, cmvn="none", delta_order=0)
    keep = extract(y, config=base.replace(c0="keep"))
    energy = extract(y, config=base.replace(c0="energy"))
    drop = extract(y, config=base.replace(c0="drop"))
    assert keep.shape[1] == energy.shape[1] == 20 and drop.shape[1] == 19
    np.testing.assert_array_equal(keep[:, 1:], energy[:, 1:])
    np.testing.assert_array_equal(keep[:, 1:], drop)
    assert -30 < energy[:, 0].max() < 0  # dB re full scale


# ---------------------------------------------------------------------- inputs
def test_resampling_input_matches_manual_resampling():
    from audiogmm.audio import resample

    y = speech_like(44100, 1.0, seed=3)
    a = extract(y, sr=44100)
    b = extract(resample(y, 44100, 16000))
    np.testing.assert_array_equal(a, b)


def test_path_and_waveform_give_the_same_frames(tmp_path):
    y = speech_like(16000, 1.0, seed=6)
    p = tmp_path / "x.wav"
    sf.write(p, y, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(extract(p), extract(y, sr=16000))
    np.testing.assert_array_equal(extract(str(p)), extract(y))


def test_int_waveform_and_float64_config():
    y = (speech_like(16000, 0.5) * 1000).astype(np.int16)
    x = extract(y, config=PRESETS["speech"].replace(dtype="float64"))
    assert x.dtype == np.float64


@pytest.mark.parametrize(
    "y,err,match",
    [
        (np.zeros((2, 16000), np.float32), ParameterError, "mono waveform"),
        (np.zeros(10, np.float32), FeatureError, "clip too short"),
        (np.array([0.0, np.nan] * 800, np.float32), FeatureError, "non-finite"),
        (np.array(["a"] * 1000), ParameterError, "real-valued"),
    ],
)
def test_bad_waveforms(y, err, match):
    with pytest.raises(err, match=match):
        extract(y)


def test_bad_config_or_sr():
    with pytest.raises(ParameterError, match="FeatureConfig"):
        extract(np.zeros(1000, np.float32), config={"n_mfcc": 13})
    with pytest.raises(ParameterError, match="sr must be"):
        extract(np.zeros(1000, np.float32), sr=0)


def test_real_clip_speech_preset():
    clips = real_clips(limit=1)
    if not clips:
        pytest.skip("data_samples/ not present")
    x = extract(clips[0], config=PRESETS["speech"])
    assert x.shape[1] == 60 and x.shape[0] > 50 and np.isfinite(x).all()
    g = extract(clips[0])  # the default: general preset, every 20 ms frame, no VAD
    assert g.shape[1] == 26 and g.shape[0] > x.shape[0] // 2 and np.isfinite(g).all()


# ---------------------------------------------------------------------- FeatureConfig
def test_presets():
    assert set(PRESETS) == {"general", "speech", "speaker", "sound", "dcase2016", "librosa"}
    spk = FeatureConfig.preset("speaker")  # the speech framing on the default's filterbank
    assert spk == FeatureConfig(win_ms=25, hop_ms=10, n_fft=512, n_mfcc=20, delta_order=2)
    assert (spk.win_length, spk.hop_length, spk.vad, spk.cmvn) == (400, 160, False, "none")
    s, d, lib = (FeatureConfig.preset(n) for n in ("speech", "dcase2016", "librosa"))
    g = FeatureConfig.preset(DEFAULT_PRESET)
    assert DEFAULT_PRESET == "general" and g == FeatureConfig()
    assert (g.sample_rate, g.win_length, g.hop_length, g.n_fft, g.n_mels, g.n_mfcc) == (
        16000, 640, 320, 1024, 40, 13,
    )  # fmt: skip
    assert (g.preemphasis, g.lifter, g.fmin, g.fmax, g.htk, g.mel_norm, g.top_db) == (
        0.0, 0.0, 0.0, None, False, "slaney", 80.0,
    )  # fmt: skip
    assert (g.c0, g.delta_order, g.delta_mode, g.vad, g.cmvn, g.n_dims) == (
        "keep", 1, "nearest", False, "none", 26,
    )  # fmt: skip
    assert (s.sample_rate, s.win_length, s.hop_length, s.n_fft, s.n_mels, s.n_mfcc) == (
        16000,
        400,
        160,
        512,
        40,
        20,
    )
    assert (s.preemphasis, s.lifter, s.fmin, s.fmax, s.n_dims) == (0.97, 22.0, 20.0, 7600.0, 60)
    assert s.vad and s.cmvn == "utterance"
    assert (d.sample_rate, d.win_ms, d.hop_ms, d.win_length, d.hop_length) == (
        44100,
        40.0,
        20.0,
        1764,
        882,
    )
    assert (d.window, d.n_mels, d.n_mfcc, d.c0, d.delta_order, d.delta_width, d.n_dims) == (
        "hamming",
        40,
        20,
        "keep",
        2,
        9,
        60,
    )
    assert not d.vad and d.cmvn == "none"
    assert (lib.sample_rate, lib.win_length, lib.hop_length, lib.n_mels, lib.n_dims) == (
        22050,
        2048,
        512,
        128,
        20,
    )
    with pytest.raises(ParameterError, match="unknown feature preset 'htk'"):
        FeatureConfig.preset("htk")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_json_round_trip(name):
    cfg = PRESETS[name]
    again = FeatureConfig.from_json(cfg.to_json())
    assert again == cfg and again.content_hash() == cfg.content_hash()
    assert FeatureConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_content_hash_is_stable_and_sensitive():
    s = FeatureConfig()
    h = s.content_hash()
    assert len(h) == 16 and int(h, 16) >= 0
    assert FeatureConfig(win_ms=40).content_hash() == h  # 40 == 40.0 after normalisation
    assert s.replace(n_mfcc=20).content_hash() != h
    assert s.replace(vad_threshold_db=31.0).content_hash() != h
    assert len({c.content_hash() for c in PRESETS.values()}) == len(PRESETS) == 6
    assert FEATURE_FORMAT_VERSION == 3
    # A changed default or algorithm version must be a deliberate edit of these lines.
    assert h == "200e54576d7ba3f9" or pytest.fail(f"default (general) preset hash changed to {h}")
    hs = PRESETS["speech"].content_hash()
    assert hs == "5a5f36c7524c0586" or pytest.fail(f"speech preset hash changed to {hs}")


def test_from_dict_rejects_unknown_keys_and_fills_defaults():
    with pytest.raises(ParameterError, match=r"unknown FeatureConfig field\(s\) \['n_ceps'\]"):
        FeatureConfig.from_dict({"n_ceps": 13})
    assert FeatureConfig.from_dict({"n_mfcc": 13}) == FeatureConfig(n_mfcc=13)
    with pytest.raises(ParameterError, match="dict"):
        FeatureConfig.from_dict([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="not valid JSON"):
        FeatureConfig.from_json("{")
    with pytest.raises(ParameterError, match="unknown FeatureConfig field"):
        FeatureConfig().replace(colour="red")


@pytest.mark.parametrize(
    "changes,match",
    [
        ({"sample_rate": 0}, "sample_rate"),
        ({"sample_rate": 16000.5}, "sample_rate: must be an integer"),
        ({"win_ms": -1}, "win_ms"),
        ({"n_fft": 256}, "n_fft=256 must be >= the window length"),
        ({"fmax": 9000.0}, "fmax"),
        ({"fmin": 8000.0, "fmax": None}, "fmin < fmax"),
        ({"n_mfcc": 41}, "cannot exceed n_mels"),
        ({"c0": "first"}, "c0: must be one of"),
        ({"delta_width": 4}, "odd integer >= 3"),
        ({"delta_order": 3}, "delta_order"),
        ({"cmvn": "global"}, "cmvn: must be one of"),
        ({"vad": "yes"}, "vad: must be true or false"),
        ({"dtype": "float16"}, "dtype"),
        ({"window": "nonsense"}, "window: must be one of"),
        ({"preemphasis": 1.0}, "preemphasis"),
        ({"top_db": float("nan")}, "top_db: must be a finite number"),
        ({"mel_norm": "l2"}, "mel_norm"),
    ],
)
def test_invalid_configs(changes, match):
    with pytest.raises(ParameterError, match=match):
        FeatureConfig().replace(**changes)


@pytest.mark.parametrize("field", ["win_ms", "top_db", "sample_rate", "n_mels"])
def test_numbers_beyond_float_range_are_a_parameter_error(field):
    # a float field given an int too large for a float raised a bare OverflowError
    with pytest.raises(ParameterError, match=f"{field}: must be"):
        FeatureConfig().replace(**{field: 10**400})


def test_config_is_frozen_and_hashable():
    cfg = FeatureConfig()
    with pytest.raises(AttributeError):
        cfg.n_mfcc = 13  # type: ignore[misc]
    assert {cfg: 1}[FeatureConfig()] == 1


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 60),
    d=st.integers(1, 4),
    window=st.integers(1, 80),
    norm_vars=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_sliding_cmvn_property(n, d, window, norm_vars, seed):
    x = np.random.default_rng(seed).normal(3.0, 2.0, (n, d))
    got = sliding_cmvn(x, window=window, norm_vars=norm_vars)
    np.testing.assert_allclose(got, _sliding_reference(x, window, norm_vars), atol=1e-6)


# ---------------------------------------------------------------------- derive
_G = PRESETS["general"]


@pytest.mark.parametrize(
    "target",
    [
        _G.replace(cmvn="utterance", cmvn_norm_vars=False),
        _G.replace(cmvn="utterance"),
        _G.replace(cmvn="sliding", cmvn_window=40),
        _G.replace(cmvn="utterance", dtype="float64"),
        _G.replace(dtype="float64"),
        PRESETS["speech"].replace(cmvn="none", dtype="float64"),
        _G.replace(delta_order=0),
        _G.replace(delta_order=0, cmvn="utterance"),
        _G.replace(delta_order=1, cmvn="utterance", cmvn_norm_vars=False),
    ],
    ids=["cmn", "cmvn", "sliding", "cmvn-f64", "f64", "speech-f64", "static", "static-cmvn",
         "d1-cmn"],  # fmt: skip
)
@pytest.mark.parametrize("source_dtype", ["float32", "float64"])
@pytest.mark.parametrize("source_deltas", [0, 1, 2])
def test_derive_equals_extract_bit_for_bit(target, source_dtype, source_deltas):
    from audiogmm.features.extraction import derivable, derive

    clips = real_clips(limit=4)
    if not clips:
        pytest.skip("data_samples/ not present")
    source = target.replace(cmvn="none", dtype=source_dtype, delta_order=source_deltas)
    if source_deltas < target.delta_order:
        assert not derivable(source, target)
        return
    for c in clips:
        got = derive(extract(c, config=source), source, target)
        want = extract(c, config=target)
        assert got.dtype == want.dtype and np.array_equal(got, want)


def test_derivable_only_when_nothing_but_normalisation_differs():
    from audiogmm.features.extraction import derivable, derive

    cmn = _G.replace(cmvn="utterance", cmvn_norm_vars=False)
    assert derivable(_G, cmn) and derivable(_G, _G)
    assert not derivable(cmn, _G)  # a normalised source has lost the means
    assert not derivable(_G, PRESETS["speech"]) and not derivable(_G, _G.replace(n_mfcc=12))
    assert derivable(_G.replace(delta_order=2), _G) and not derivable(_G, _G.replace(delta_order=2))
    with pytest.raises(ParameterError, match="before normalisation"):
        derive(np.zeros((3, 26), np.float32), _G, PRESETS["sound"])


def test_extraction_roots_share_one_extraction_per_derivable_family():
    from audiogmm.features.extraction import derivable, extraction_roots

    g = PRESETS["general"]
    cmn = {"cmvn": "utterance", "cmvn_norm_vars": False}
    cfgs = [g.replace(**cmn), g, PRESETS["sound"], g.replace(delta_order=2), g,
            PRESETS["sound"].replace(**cmn), g.replace(delta_order=2, **cmn)]  # fmt: skip
    roots = extraction_roots(cfgs)
    # general+dd (index 3) derives every general variant; sound (2) its CMN copy
    assert roots == [3, 3, 2, 3, 3, 2, 3]
    for i, r in enumerate(roots):
        assert cfgs[r] == cfgs[i] or derivable(cfgs[r], cfgs[i])
        assert roots[r] == r  # a root is its own root
    assert extraction_roots([]) == []
    # a config with CMVN derives nothing, not even itself: equal ones share the first
    assert extraction_roots([g.replace(**cmn), g.replace(**cmn)]) == [0, 0]


def test_digital_silence_marks_exactly_the_long_runs_at_the_floor():
    from audiogmm.features.extraction import digital_silence

    rng = np.random.default_rng(0)
    for _ in range(500):
        n, m = int(rng.integers(0, 40)), int(rng.integers(1, 6))
        e = np.where(rng.random(n) < 0.6, -100.0, -20.0)
        expected = np.zeros(n, bool)
        i = 0
        while i < n:  # the naive scan over runs
            j = i
            while j < n and e[j] <= -100.0:
                j += 1
            if j - i >= m:
                expected[i:j] = True
            i = max(j, i + 1)
        got = digital_silence(e, silence_db=-100.0, min_frames=m)
        np.testing.assert_array_equal(got, expected, err_msg=f"{e} {m}")


def test_an_over_long_choice_lists_the_choices():
    # a string field with choices says which values it takes, whatever the string's length
    with pytest.raises(ParameterError, match=r"window: must be one of \['barthann'"):
        FeatureConfig(window="x" * 80)


def test_content_hash_is_kept_on_the_instance_and_changes_nothing_else(monkeypatch):
    # the cache keys every file by it: computed once per config, never stale
    import dataclasses

    c = FeatureConfig()
    h = c.content_hash()
    calls = []
    real = FeatureConfig.to_dict
    monkeypatch.setattr(FeatureConfig, "to_dict", lambda self: calls.append(1) or real(self))
    assert [c.content_hash() for _ in range(3)] == [h] * 3 and not calls
    d = c.replace(n_mfcc=20)
    assert d.content_hash() != h and calls  # a new config: computed afresh
    assert d.content_hash() == FeatureConfig(n_mfcc=20).content_hash()
    assert c == FeatureConfig() and hash(c) == hash(FeatureConfig())
    assert dataclasses.asdict(c) == dataclasses.asdict(FeatureConfig())
    assert FeatureConfig.from_json(c.to_json()).content_hash() == h
