"""audiogmm.audio: decoding, downmix, resampling, and the bad-file suite."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from audiogmm.audio import AudioInfo, info, load, resample
from audiogmm.exceptions import AudioError, FeatureError, ParameterError
from audiogmm.features import FeatureConfig, extract

from .conftest_audio import make_bad_file_suite, real_clips, speech_like


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    return make_bad_file_suite(tmp_path_factory.mktemp("bad files"))


SUITE_NAMES = [
    "good.wav",
    "good.flac",
    "good.ogg",
    "empty.wav",
    "zero_samples.wav",
    "truncated_header.wav",
    "random_bytes.wav",
    "text_file.wav",
    "silence.wav",
    "ten_samples.wav",
    "nan_samples.wav",
    "stereo_24bit_96k.wav",
    "mono_8bit_8k.wav",
    "Ünïcødé name with spaces é.wav",
    "missing.wav",
]


@pytest.mark.parametrize("name", SUITE_NAMES)
def test_bad_file_suite_extract(suite, name):
    case = suite[name]
    config = FeatureConfig.preset("speech")
    if case.error is None:
        x = extract(case.path, config=config)
        assert x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == config.n_dims
        assert x.shape[0] > 10 and np.isfinite(x).all()
    else:
        with pytest.raises(case.error, match=case.match) as err:
            extract(case.path, config=config)
        assert case.path in str(err.value)  # the message names the file


def test_error_classes_are_builtins_too(suite):
    with pytest.raises(OSError):
        load(suite["missing.wav"].path, sr=None)
    with pytest.raises(ValueError):  # no frame above the energy floor
        extract(suite["silence.wav"].path, config=FeatureConfig.preset("speech"))


def test_silence_loads_and_keep_all_frames_is_finite(suite):
    y = load(suite["silence.wav"].path, sr=16000)
    assert y.shape == (16000,) and not y.any()
    x = extract(suite["silence.wav"].path, config=FeatureConfig.preset("speech"),
                keep_all_frames=True)  # fmt: skip
    assert x.shape == (101, 60) and np.isfinite(x).all()
    with pytest.raises(FeatureError, match="silent"):  # the default front end has no VAD
        extract(suite["silence.wav"].path)
    x = extract(suite["silence.wav"].path, keep_all_frames=True)
    assert x.shape == (51, 26) and np.isfinite(x).all()


def test_ten_samples_loads_without_min_samples(suite):
    y = load(suite["ten_samples.wav"].path, sr=None)
    assert y.shape == (10,)
    with pytest.raises(AudioError, match="expected at least 400"):
        load(suite["ten_samples.wav"].path, sr=16000, min_samples=400)


def test_stereo_24bit_96k_is_downmixed_and_resampled(suite):
    p = suite["stereo_24bit_96k.wav"].path
    raw, sr = sf.read(p, dtype="float32")
    y = load(p, sr=16000)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(y.size - 16000) <= 1
    native = load(p, sr=None)
    np.testing.assert_allclose(native, raw.mean(axis=1), atol=1e-7)
    # soxr keeps the level of an in-band signal
    assert np.isclose(np.sqrt(np.mean(y**2)), np.sqrt(np.mean(native**2)), rtol=0.05)


def test_8bit_8k_is_upsampled(suite):
    y = load(suite["mono_8bit_8k.wav"].path, sr=16000)
    assert abs(y.size - 16000) <= 1 and np.abs(y).max() <= 1.0


def test_no_resampling_when_rates_match(tmp_path):
    y = speech_like(16000, 0.5)
    p = tmp_path / "a.wav"
    sf.write(p, y, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(load(p, sr=16000), y)
    np.testing.assert_array_equal(load(p, sr=None), y)


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "AIFF", "AU", "W64"])
@pytest.mark.parametrize("channels", [1, 2])
def test_16bit_samples_are_libsndfiles_own_floats(tmp_path, fmt, channels):
    """16-bit files are read as int16 and scaled by 2**-15 (a third of libsndfile's float
    conversion cost for WAV): the samples are libsndfile's float32 ones to the bit, full
    scale included, block by block and after the downmix."""
    rng = np.random.default_rng(channels)
    y = np.clip(0.4 * rng.standard_normal((20000, channels)), -1, 1)
    y[:4] = [[-1.0] * channels, [32767 / 32768] * channels, [0.0] * channels, [2**-15] * channels]
    p = tmp_path / f"clip.{fmt.lower()}"
    sf.write(p, y, 22050, format=fmt, subtype="PCM_16")
    ref = sf.read(p, dtype="float32", always_2d=True)[0]
    ref = ref[:, 0] if channels == 1 else ref.mean(axis=1, dtype=np.float32)
    np.testing.assert_array_equal(load(p, sr=None), ref)
    assert load(p, sr=None).dtype == np.float32


@pytest.mark.parametrize(
    "fmt,subtype,ext",
    [
        ("FLAC", "PCM_16", "flac"),
        ("OGG", "VORBIS", "ogg"),
        ("MP3", None, "mp3"),
        ("AIFF", "PCM_16", "aiff"),
        ("AU", "PCM_16", "au"),
        ("WAV", "PCM_32", "WAV"),
    ],
)
def test_formats(tmp_path, fmt, subtype, ext):
    if fmt not in sf.available_formats():
        pytest.skip(f"libsndfile without {fmt}")
    p = tmp_path / f"clip.{ext}"
    sf.write(p, speech_like(16000, 1.0), 16000, format=fmt, subtype=subtype)
    y = load(p, sr=16000)
    assert y.dtype == np.float32 and abs(y.size - 16000) < 2000


def test_info(suite):
    i = info(suite["stereo_24bit_96k.wav"].path)
    assert isinstance(i, AudioInfo)
    assert (i.sample_rate, i.channels, i.frames, i.subtype) == (96000, 2, 96000, "PCM_24")
    assert i.duration_s == pytest.approx(1.0)
    with pytest.raises(AudioError, match="not found"):
        info(suite["missing.wav"].path)


def test_directory_is_not_a_file(tmp_path):
    with pytest.raises(AudioError, match="regular file"):
        load(tmp_path, sr=None)


@pytest.mark.parametrize("kwargs", [{"sr": 0}, {"sr": -8000}, {"sr": 16000.5}, {"min_samples": 0}])
def test_load_parameter_errors(suite, kwargs):
    kwargs = {"sr": 16000, **kwargs}
    with pytest.raises(ParameterError):
        load(suite["good.wav"].path, **kwargs)


def test_resample_rates():
    y = speech_like(22050, 1.0)
    z = resample(y, 22050, 16000)
    assert z.dtype == np.float32 and abs(z.size - 16000) <= 1
    assert resample(y, 22050, 22050) is y or np.array_equal(resample(y, 22050, 22050), y)
    with pytest.raises(ParameterError, match="sample rates"):
        resample(y, 0, 16000)


def test_real_clips_load():
    clips = real_clips(limit=3)
    if not clips:
        pytest.skip("data_samples/ not present")
    for p in clips:
        y = load(p, sr=16000)
        assert y.dtype == np.float32 and y.size > 1600 and np.isfinite(y).all()


def test_feature_error_for_suite_is_not_audio_error(suite):
    # silence is a *feature* problem (no frame above the energy floor): the file itself is fine
    with pytest.raises(FeatureError) as err:
        extract(suite["silence.wav"].path, config=FeatureConfig.preset("speech"))
    assert not isinstance(err.value, AudioError)


# ---------------------------------------------------------------------- integer waveforms
@pytest.mark.parametrize(
    "subtype, sr", [("PCM_16", 16000), ("PCM_16", 8000), ("PCM_U8", 16000), ("PCM_24", 16000),
                    ("PCM_32", 16000)]  # fmt: skip
)
def test_integer_arrays_are_scaled_as_soundfile_scales_files(tmp_path, subtype, sr):
    """scipy.io.wavfile's int16/uint8/int32 arrays give exactly the features of the file."""
    from scipy.io import wavfile

    p = tmp_path / "clip.wav"
    sf.write(p, speech_like(sr, 1.0), sr, subtype=subtype)
    rate, arr = wavfile.read(p)
    assert arr.dtype.kind in "iu"
    np.testing.assert_array_equal(extract(arr, sr=rate), extract(p))


@pytest.mark.parametrize("dtype", ["int64", "uint16", "bool", "complex64"])
def test_other_sample_types_are_refused_with_one_clear_error(dtype):
    with pytest.raises(ParameterError, match=f"got dtype {dtype}"):
        extract(np.zeros(16000, dtype=dtype), sr=16000)


# ---------------------------------------------------------------------- the length limit
def test_the_length_limit_can_be_raised_by_environment_and_cli(tmp_path, monkeypatch):
    from click.testing import CliRunner

    import audiogmm.audio
    from audiogmm.cli import main

    p = tmp_path / "long.wav"
    sf.write(p, speech_like(16000, 2.0), 16000)
    monkeypatch.setattr(audiogmm.audio, "MAX_SAMPLES", 16000)
    monkeypatch.setenv(audiogmm.audio.SAMPLE_LIMIT_ENV, "")  # restored after the test
    with pytest.raises(AudioError, match=r"limit of 16000 samples.*--max-samples") as ei:
        load(p, sr=None)
    assert str(p) in str(ei.value)
    monkeypatch.setenv(audiogmm.audio.SAMPLE_LIMIT_ENV, "40000")
    assert load(p, sr=None).shape == (32000,)
    monkeypatch.setenv(audiogmm.audio.SAMPLE_LIMIT_ENV, "many")
    with pytest.raises(ParameterError, match="AUDIOGMM_MAX_SAMPLES='many'"):
        load(p, sr=None)
    # the CLI option sets the variable, so that worker processes see it too
    monkeypatch.setenv(audiogmm.audio.SAMPLE_LIMIT_ENV, "")
    data = tmp_path / "data"
    (data / "x").mkdir(parents=True)
    p.rename(data / "x" / "long.wav")
    args = ["extract", str(data), "--format", "kaldi", "-o", str(tmp_path / "out"), "-j", "1"]
    r = CliRunner().invoke(main, args)
    assert "limit of 16000 samples" in r.output and "1 skipped" in r.output, r.output
    r = CliRunner().invoke(main, [*args, "--max-samples", "40000"])
    assert r.exit_code == 0 and "1 utterances" in r.output and "(0 skipped)" in r.output, r.output
    help_text = CliRunner().invoke(main, ["train", "--help"]).output
    assert "--max-samples" in help_text and "AUDIOGMM_MAX_SAMPLES" in help_text


# ---------------------------------------------------------------------- silence in batch commands
def test_batch_commands_skip_silent_clips_with_the_default_preset(tmp_path):
    """Issue 21 item 1: `predict` labelled digital silence confidently (en_f2:1.000), and
    `train` learned it; now both report the file among the skipped ones, naming why."""
    import json

    from click.testing import CliRunner

    from audiogmm.cli import main

    data = tmp_path / "data"
    for i, label in enumerate(("a", "b")):
        (data / label).mkdir(parents=True)
        for j in range(2):
            sf.write(data / label / f"{j}.wav", speech_like(16000, 1.0, seed=2 * i + j), 16000)
    sf.write(data / "a" / "silent.wav", np.zeros(3 * 16000, np.float32), 16000)
    sf.write(tmp_path / "short.wav", np.zeros(800, np.float32), 16000)  # 0.05 s
    model = tmp_path / "m.npz"
    r = CliRunner().invoke(main, ["train", str(data), "-o", str(model), "-k", "1", "--split",
                                  "all", "-j", "1", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    skipped = json.loads(r.output)["skipped"]
    assert [os.path.basename(s["path"]) for s in skipped] == ["silent.wav"]
    assert "energy floor" in skipped[0]["reason"]
    files = [data / "a" / "silent.wav", tmp_path / "short.wav", data / "b" / "0.wav"]
    r = CliRunner().invoke(main, ["predict", str(model), *map(str, files), "-j", "1", "--json"])
    out = json.loads(r.stdout)
    assert [os.path.basename(x["path"]) for x in out["results"]] == ["0.wav"], r.output
    assert [s["path"] for s in out["skipped"]] == list(map(str, files[:2]))
    assert all("silent: no frame above the -80 dB energy floor" in s["reason"]
               for s in out["skipped"])  # fmt: skip
