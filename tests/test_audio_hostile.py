"""Hostile audio files: absurd headers, absurd samples, unreadable files, and a fuzzer.

The only acceptable outcomes of ``audiogmm.audio.load`` are a finite 1-D float32
waveform of bounded size, or :class:`audiogmm.AudioError` naming the file.
``benchmarks/fuzz_audio.py`` runs the same fuzzer for longer and counts outcomes.
"""

from __future__ import annotations

import functools
import os
import shutil
import struct
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import audiogmm
import audiogmm.audio
from audiogmm import AudioError, ParameterError
from audiogmm.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

from .conftest_audio import speech_like
from .conftest_hostile import (
    MB,
    public_folder,
    run_guarded_audio_load,
    speaker_clips,
    unprivileged,
    wav_bytes,
)

# ======================================================================================
# Absurd headers
# ======================================================================================


@pytest.fixture(scope="module")
def odd_rate_wavs(tmp_path_factory):
    d = tmp_path_factory.mktemp("rates")
    noise = np.random.default_rng(0).integers(-3000, 3000, 60_000)
    out = {}
    for sr in (1, 7, 999, 2_000_000_000, 4_294_967_295):
        p = d / f"rate_{sr}.wav"
        p.write_bytes(wav_bytes(sr, noise))  # 120 kB
        out[sr] = p
    return out


@pytest.mark.parametrize("rate", [1, 7, 999, 2_000_000_000])
@pytest.mark.parametrize("sr", [None, 16000])
def test_absurd_sample_rate_is_refused(odd_rate_wavs, rate, sr):
    p = odd_rate_wavs[rate]
    with pytest.raises(AudioError, match=r"(?i)sampl\w*[ _-]?rate") as ei:
        audiogmm.audio.load(p, sr=sr)
    assert str(p) in str(ei.value)
    with pytest.raises(AudioError, match=r"(?i)sampl\w*[ _-]?rate"):
        audiogmm.extract(p)


def test_the_documented_range_is_accepted(tmp_path):
    y = np.random.default_rng(0).integers(-3000, 3000, 4000)
    for rate in (MIN_SAMPLE_RATE, MAX_SAMPLE_RATE):
        p = tmp_path / f"{rate}.wav"
        p.write_bytes(wav_bytes(rate, y))
        assert audiogmm.audio.load(p, sr=None).size == 4000
        assert np.all(np.isfinite(audiogmm.audio.load(p, sr=16000)))


def test_1hz_wav_is_refused_before_allocation(odd_rate_wavs, tmp_path):
    """A 120 kB WAV declaring 1 Hz would need ~3.8 GB resampled to 16 kHz."""
    p = odd_rate_wavs[1]
    out = run_guarded_audio_load(
        {"path": str(p), "sr": 16000, "warm": str(tmp_path / "warm.wav")},
        cap=int(1.5 * (1 << 30)),
    )
    assert out["outcome"] == "AudioError", out
    assert str(p) in out["message"]
    assert out["growth"] < 300 * MB, out


@pytest.mark.parametrize("sr", [10**9, 1, 0, -16000, 16000.5, True, "16000"])
def test_absurd_target_rate_is_a_parameter_error(sr, tmp_path):
    p = tmp_path / "ok.wav"
    sf.write(p, speech_like(16000, 0.5), 16000)
    with pytest.raises(ParameterError, match="sample rate"):
        audiogmm.audio.load(p, sr=sr)


def test_absurd_target_rate_costs_no_memory(tmp_path):
    """Resampling 0.5 s to 1 GHz would need 2 GB: the caller's ``sr`` is checked first."""
    p = tmp_path / "ok.wav"
    sf.write(p, speech_like(16000, 0.5), 16000)
    out = run_guarded_audio_load(
        {"path": str(p), "sr": 10**9, "warm": str(tmp_path / "warm.wav")},
        cap=int(1.5 * (1 << 30)),
    )
    assert out["outcome"] == "ParameterError", out
    assert out["growth"] < 300 * MB, out


def test_resample_refuses_rates_outside_the_range():
    y = speech_like(16000, 0.1)
    for orig, target in [(1, 16000), (16000, 10**9), (16000, 0)]:
        with pytest.raises(ParameterError, match="sample rate"):
            audiogmm.audio.resample(y, orig, target)


def test_too_many_channels_is_refused(tmp_path):
    p = tmp_path / "many.wav"
    p.write_bytes(wav_bytes(16000, np.zeros(300 * 400), channels=300))
    with pytest.raises(AudioError, match="channels") as ei:
        audiogmm.audio.load(p, sr=16000)
    assert str(p) in str(ei.value)


def test_declared_length_beyond_the_limit_is_refused(tmp_path, monkeypatch):
    """The limit on samples holds for what the header declares and what decoding yields."""
    p = tmp_path / "long.wav"
    sf.write(p, speech_like(16000, 2.0), 16000)
    monkeypatch.setattr(audiogmm.audio, "MAX_SAMPLES", 16000)
    with pytest.raises(AudioError, match="samples") as ei:
        audiogmm.audio.load(p, sr=None)
    assert str(p) in str(ei.value)
    with pytest.raises(AudioError, match="limit") as ei:
        audiogmm.audio.load(p, sr=16000)


def test_decoding_is_bounded_when_the_header_lies(tmp_path, monkeypatch):
    """A header may under-declare: decoding stops at the limit, not at end of data."""
    p = tmp_path / "liar.wav"
    sf.write(p, speech_like(16000, 3.0), 16000)
    monkeypatch.setattr(audiogmm.audio, "MAX_SAMPLES", 20000)
    monkeypatch.setattr(audiogmm.audio, "_check_header", lambda path, f: None)
    monkeypatch.setattr(audiogmm.audio, "_BLOCK_SAMPLES", 4096)
    with pytest.raises(AudioError, match="more than the limit of 20000 samples") as ei:
        audiogmm.audio.load(p, sr=None)
    assert str(p) in str(ei.value)


def test_upsampling_beyond_the_limit_is_refused(tmp_path, monkeypatch):
    p = tmp_path / "8k.wav"
    sf.write(p, speech_like(8000, 1.5), 8000)
    monkeypatch.setattr(audiogmm.audio, "MAX_SAMPLES", 16000)
    with pytest.raises(AudioError, match="limit") as ei:
        audiogmm.audio.load(p, sr=16000)
    assert str(p) in str(ei.value)


# ======================================================================================
# Absurd samples
# ======================================================================================


@pytest.mark.parametrize("amplitude", [1e7, 1e30, 3e38])
@pytest.mark.parametrize("channels", [1, 2])
def test_absurd_samples_get_a_clear_reason(amplitude, channels, tmp_path):
    """Finite but absurd float samples: AudioError naming the file, not "silent clip"."""
    p = tmp_path / "loud.wav"
    y = (speech_like(16000, 1.0) * amplitude).astype(np.float32)
    sf.write(p, np.stack([y] * channels, 1), 16000, subtype="FLOAT")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(AudioError, match="absurd sample") as ei:
            audiogmm.audio.load(p, sr=16000)
        assert str(p) in str(ei.value)
        with pytest.raises(AudioError, match="absurd sample") as ei:
            audiogmm.extract(p)
    assert str(p) in str(ei.value)


def test_loud_but_plausible_float_audio_still_loads(tmp_path):
    """Integer-scaled float data (|x| up to 32768) is odd but not absurd."""
    p = tmp_path / "intscale.wav"
    sf.write(p, (speech_like(16000, 1.0) * 30000).astype(np.float32), 16000, subtype="FLOAT")
    y = audiogmm.audio.load(p, sr=16000)
    assert np.isfinite(y).all() and np.abs(y).max() > 1000


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_in_one_channel(bad, tmp_path):
    p = tmp_path / "nan.wav"
    y = speech_like(16000, 1.0).astype(np.float32)
    z = y.copy()
    z[100] = bad
    sf.write(p, np.stack([y, z], 1), 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="non-finite") as ei:
        audiogmm.audio.load(p, sr=16000)
    assert str(p) in str(ei.value)


@pytest.mark.parametrize("native", [8000, 44100])
def test_resampling_never_returns_non_finite(native, tmp_path):
    p = tmp_path / "loud.wav"
    sf.write(p, (speech_like(native, 1.0) * 3e38).astype(np.float32), native, subtype="FLOAT")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            y = audiogmm.audio.load(p, sr=16000)
        except AudioError as e:
            assert str(p) in str(e)
            return
    assert np.all(np.isfinite(y)), "load returned NaN/inf samples after resampling"


@settings(max_examples=40, deadline=None, database=None)
@given(
    amp=st.floats(0, audiogmm.audio.MAX_ABS_SAMPLE),
    rates=st.sampled_from([(8000, 16000), (44100, 16000), (16000, 8000), (1000, 768000)]),
)
def test_resample_output_is_finite_for_accepted_input(amp, rates):
    y = (speech_like(rates[0], 0.2) * amp).astype(np.float32)
    z = audiogmm.audio.resample(y, *rates)
    assert z.dtype == np.float32 and np.all(np.isfinite(z))


# ======================================================================================
# Unreadable files
# ======================================================================================


@pytest.fixture
def locked_clip():
    """A real FLAC nobody may read, in a folder everybody may traverse."""
    with public_folder() as d:
        p = d / "locked.flac"
        shutil.copy(speaker_clips("ast_en", 1)[0], p)
        os.chmod(p, 0)
        audiogmm.extract(speaker_clips("ast_en", 1)[0])  # warm imports as root
        yield p


def test_permission_denied_is_named_in_audio_load(locked_clip):
    from audiogmm.data.cache import cache_key
    from audiogmm.features import FeatureConfig

    with unprivileged():
        with pytest.raises(AudioError) as e1:
            audiogmm.audio.load(locked_clip, sr=16000)
        with pytest.raises(AudioError) as e2:
            audiogmm.extract(locked_clip)
        with pytest.raises(AudioError) as e3:
            audiogmm.audio.info(locked_clip)
        with pytest.raises(AudioError) as e4:
            cache_key(locked_clip, FeatureConfig.preset("speech"))
    for e in (e1, e2, e3, e4):
        msg = str(e.value)
        assert "permission denied" in msg.lower() and str(locked_clip) in msg, msg
        assert "corrupt" not in msg.lower(), msg


# ======================================================================================
# The fuzzer: mutated real WAV and FLAC files
# ======================================================================================

CI = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_WORK = Path(tempfile.mkdtemp(prefix="audiogmm-fuzz-audio-"))
#: A loaded waveform may not hold more samples than this many per byte of file: 16 kHz
#: output from 8-bit audio declared at >= 40 Hz stays under it; a file declaring a few
#: Hz (outside the documented range of sample rates) does not.
MAX_SAMPLES_PER_BYTE = 400


def audio_outcome(path, sr) -> tuple[str, str]:
    """("ok" | "AudioError" | "BAD:<why>", detail) for ``audiogmm.audio.load(path, sr=sr)``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            y = audiogmm.audio.load(path, sr=sr)
    except AudioError as e:
        if str(path) not in str(e):
            return "BAD:error-does-not-name-the-file", str(e)[:300]
        return "AudioError", str(e)[:300]
    except Exception as e:
        return f"BAD:{type(e).__name__}", str(e)[:300]
    if not (isinstance(y, np.ndarray) and y.ndim == 1 and y.dtype == np.float32 and y.size):
        return "BAD:not-a-waveform", repr(getattr(y, "shape", y))
    if not np.all(np.isfinite(y)):
        return "BAD:non-finite-samples", f"{int(np.count_nonzero(~np.isfinite(y)))} of {y.size}"
    if y.size > MAX_SAMPLES_PER_BYTE * os.path.getsize(path):
        return "BAD:amplification", f"{y.size} samples from a {os.path.getsize(path)}-byte file"
    if np.abs(y).max() > 2 * audiogmm.audio.MAX_ABS_SAMPLE:
        return "BAD:absurd-samples", f"peak {np.abs(y).max():.3g}"
    return "ok", ""


@functools.cache
def base_files() -> dict[str, bytes]:
    """Small real-signal files: canonical WAVs (44-byte header), FLACs, Ogg Vorbis, AIFF."""
    y = speech_like(16000, 0.05, seed=3)
    pcm = np.round(y * 30000).astype(np.int16)
    stereo = np.repeat(pcm, 2)  # interleaved L/R
    out = {
        "pcm16_mono_16k.wav": wav_bytes(16000, pcm),
        "pcm16_stereo_8k.wav": wav_bytes(8000, stereo, channels=2),
        "float_mono_22k.wav": wav_bytes(22050, y, bits=32, fmt=3),
        "u8_mono_11k.wav": wav_bytes(11025, pcm, bits=8),
    }
    for name, data, rate in [
        ("mono_16k.flac", y, 16000),
        ("stereo_44k.flac", np.stack([y, y], 1), 44100),
    ]:
        p = _WORK / ("base-" + name)
        sf.write(p, data, rate, subtype="PCM_16")
        out[name] = p.read_bytes()
    for name, subtype in [("mono_16k.ogg", "VORBIS"), ("mono_16k.aiff", "PCM_16")]:
        p = _WORK / ("base-" + name)
        sf.write(p, y, 16000, subtype=subtype)
        out[name] = p.read_bytes()
    return out


# (offset, struct format) of every field of the canonical 44-byte RIFF/WAVE header
WAV_FIELDS = {
    "riff_size": (4, "<I"),
    "fmt_size": (16, "<I"),
    "format_tag": (20, "<H"),
    "channels": (22, "<H"),
    "sample_rate": (24, "<I"),
    "byte_rate": (28, "<I"),
    "block_align": (32, "<H"),
    "bits": (34, "<H"),
    "data_size": (40, "<I"),
}


def _flac_streaminfo_edit(b: bytearray, name: str, value: int) -> None:
    """Set a FLAC STREAMINFO field (big-endian bit fields at byte 18 after "fLaC" + header)."""
    if len(b) < 42 or b[:4] != b"fLaC":
        return
    base = 8 + 10  # "fLaC", metadata block header, min/max block and frame sizes
    bits = int.from_bytes(b[base : base + 8], "big")
    # 20 bits rate | 3 bits channels-1 | 5 bits bps-1 | 36 bits total samples
    fields = {"rate": (44, 20), "channels": (41, 3), "bps": (36, 5), "total": (0, 36)}
    shift, width = fields[name]
    mask = ((1 << width) - 1) << shift
    bits = (bits & ~mask) | ((value & ((1 << width) - 1)) << shift)
    b[base : base + 8] = bits.to_bytes(8, "big")


@st.composite
def header_edits(draw, kind: str):
    if kind == "flac":
        name = draw(st.sampled_from(["rate", "rate", "channels", "bps", "total", "total"]))
        width = {"rate": 20, "channels": 3, "bps": 5, "total": 36}[name]
        top = (1 << width) - 1
        value = draw(st.sampled_from([0, 1, 2, 7, 8000, 44100, top, top - 1]) | st.integers(0, top))
        return name, value
    # the sample rate drives allocation sizes: mutate it three times as often
    name = draw(st.sampled_from(sorted(WAV_FIELDS) + ["sample_rate", "sample_rate", "channels"]))
    _, fmt = WAV_FIELDS[name]
    top = 2**16 - 1 if fmt == "<H" else 2**32 - 1
    special = [0, 1, 2, 3, 7, 8, 16, 24, 32, 64, 999, 1000, 8000, 44100, 2**15, top, top - 1]
    if name == "format_tag":
        special += [1, 2, 3, 6, 7, 17, 0x55, 0xFFFE]
    return name, draw(st.sampled_from(special) | st.integers(0, top))


def mutated(name: str, data: bytes, edits=(), flips=(), cut=None) -> bytes:
    b = bytearray(data)
    for field, value in edits:
        if name.endswith(".flac"):
            _flac_streaminfo_edit(b, field, value)
        else:
            off, fmt = WAV_FIELDS[field]
            struct.pack_into(fmt, b, off, value)
    for pos, x in flips:
        b[pos % len(b)] ^= x
    return bytes(b if cut is None else b[:cut])


@st.composite
def audio_cases(draw):
    name = draw(st.sampled_from(sorted(base_files())))
    data = base_files()[name]
    kind = name.rsplit(".", 1)[1]
    hows = ["fields", "fields", "fields", "flips", "cut", "mixed"]
    how = draw(st.sampled_from(hows if kind in ("wav", "flac") else ["flips", "cut"]))
    edits = (
        draw(st.lists(header_edits(kind), min_size=1, max_size=2))
        if how in ("fields", "mixed")
        else []
    )
    flips = []
    if how in ("flips", "mixed"):
        n = len(data) - 1
        flips = draw(
            st.lists(st.tuples(st.integers(0, n), st.integers(1, 255)), min_size=1, max_size=4)
        )
    cut = draw(st.integers(0, len(data) - 1)) if how == "cut" else None
    sr = draw(st.sampled_from([16000, None]))
    return name, edits, flips, cut, sr


def run_audio_case(case, folder: Path = _WORK) -> tuple[str, str]:
    """Write the mutated file of ``case`` and load it."""
    name, edits, flips, cut, sr = case
    path = folder / ("fuzz." + name.rsplit(".", 1)[1])
    path.write_bytes(mutated(name, base_files()[name], edits, flips, cut))
    return audio_outcome(path, sr)


@settings(CI, max_examples=300)
@given(audio_cases())
@example(("pcm16_mono_16k.wav", [("sample_rate", 1)], [], None, 16000))  # the 3.8 GB case
@example(("pcm16_mono_16k.wav", [("sample_rate", 7)], [], None, None))
@example(("mono_16k.flac", [("total", 2**36 - 1)], [], None, 16000))
@example(("mono_16k.flac", [("rate", 1)], [], None, 16000))
@example(("float_mono_22k.wav", [], [(60, 0x7F), (61, 0x7F)], None, 16000))
def test_fuzz_audio_loader(case):
    outcome, detail = run_audio_case(case)
    assert outcome in {"ok", "AudioError"}, f"{outcome}: {detail}"


def test_fuzz_bases_are_valid():
    """The unmutated inputs load (so the fuzzer starts from real, valid files)."""
    for name in base_files():
        assert run_audio_case((name, [], [], None, 16000))[0] == "ok", name


def test_file_in_an_unreachable_folder_says_permission_denied():
    with public_folder() as d:
        sub = d / "private"
        sub.mkdir()
        p = sub / "clip.flac"
        shutil.copy(speaker_clips("ast_en", 1)[0], p)
        os.chmod(sub, 0o700)  # root's: nobody cannot even stat the file
        with unprivileged():
            with pytest.raises(AudioError, match="permission denied") as ei:
                audiogmm.audio.load(p, sr=16000)
        assert str(p) in str(ei.value)


def test_names_that_are_not_utf8_load(tmp_path):
    name = os.fsdecode(b"caf\xe9 \xff.flac")  # surrogate escapes, as os.listdir gives them
    p = os.path.join(os.fsdecode(bytes(tmp_path)), name)
    shutil.copy(speaker_clips("ast_en", 1)[0], p)
    assert audiogmm.audio.load(p, sr=16000).size > 0
    assert audiogmm.extract(p).shape[0] > 0


@pytest.mark.parametrize("name", ["a\0b.wav", ""])
def test_impossible_names_are_audio_errors(name):
    with pytest.raises(AudioError):
        audiogmm.audio.load(name, sr=16000)


@pytest.fixture(scope="module")
def silence_bomb(tmp_path_factory):
    """A ~200 kB FLAC of digital silence that decodes to more than MAX_SAMPLES samples."""
    p = tmp_path_factory.mktemp("bomb") / "silence.flac"
    block = np.zeros(1 << 20, np.int16)
    with sf.SoundFile(p, "w", 48000, 1, "PCM_16") as f:
        for _ in range(audiogmm.audio.MAX_SAMPLES // block.size + 2):
            f.write(block)
    assert p.stat().st_size < 10 * MB
    return p


@pytest.mark.parametrize("declared", ["true", 0, 48000, 2**36 - 1])
@pytest.mark.parametrize("sr", [None, 16000])
def test_decompression_bomb_is_refused_within_300_mb(silence_bomb, declared, sr, tmp_path):
    """Whatever the header declares (the truth, unknown, one second, 2**36 samples)."""
    p = tmp_path / "bomb.flac"
    data = bytearray(silence_bomb.read_bytes())
    if declared != "true":
        _flac_streaminfo_edit(data, "total", declared)
    p.write_bytes(bytes(data))
    out = run_guarded_audio_load(
        {"path": str(p), "sr": sr, "warm": str(tmp_path / "warm.wav")},
        cap=int(1.5 * (1 << 30)),
    )
    assert out["growth"] < 300 * MB, out
    if declared == 48000:  # libsndfile stops where the header says: one second, harmless
        assert out["outcome"] in ("ok", "AudioError"), out
        return
    assert out["outcome"] == "AudioError", out
    assert str(p) in out["message"] and "split the file" in out["message"], out


def test_resampling_streams_so_memory_is_the_output(tmp_path):
    """Just under the limit at 48 kHz, loaded at 16 kHz: ~90 MB of output, not the
    270 MB native signal plus the output (the resampler runs block by block)."""
    p = tmp_path / "long_silence.flac"
    block = np.zeros(1 << 20, np.int16)
    with sf.SoundFile(p, "w", 48000, 1, "PCM_16") as f:
        for _ in range(audiogmm.audio.MAX_SAMPLES // block.size - 1):
            f.write(block)
    out = run_guarded_audio_load(
        {"path": str(p), "sr": 16000, "warm": str(tmp_path / "warm.wav")},
        cap=int(1.5 * (1 << 30)),
    )
    assert out["outcome"] == "ok", out
    assert out["growth"] < 150 * MB, out


def test_streamed_resampling_equals_one_shot(tmp_path):
    y = speech_like(44100, 5.0)
    p = tmp_path / "clip.wav"
    sf.write(p, np.stack([y, 0.5 * y], 1), 44100, subtype="FLOAT")
    mono = np.stack([y, 0.5 * y], 1).astype(np.float32).mean(1, dtype=np.float32)
    np.testing.assert_array_equal(
        audiogmm.audio.load(p, sr=16000), audiogmm.audio.resample(mono, 44100, 16000)
    )
