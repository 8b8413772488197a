"""Hypothesis fuzzers of the audio loader (reliability issue; the model-loader fuzzers
now live in tests/test_fuzz_loader.py).

The only acceptable outcomes are:

* model files: a model that loads AND is valid (finite parameters consistent with the
  header, finite scores and log posteriors summing to 1 on a probe, ``audiogmm info``
  exits 0), or :class:`audiogmm.ModelFileError` naming the file;
* audio files: a finite 1-D float32 waveform, or :class:`audiogmm.AudioError` naming
  the file.

Inputs are mutations of real files: truncations, byte flips, header field mutations
with a recomputed checksum (through ``tamper_header``, the single place that knows the
container format), array mutations with a consistent header, and RIFF/WAVE header field
mutations. A few hundred examples run in CI (~30 s); ``benchmarks/fuzz_models.py`` and
``benchmarks/fuzz_audio.py`` run the same fuzzers for longer and count the outcomes.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import struct
import tempfile
import warnings
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import audiogmm.audio
from audiogmm import AudioError

from ..conftest_audio import speech_like
from .test_reliability import wav_bytes

CI = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_WORK = Path(tempfile.mkdtemp(prefix="audiogmm-fuzz-"))
atexit.register(shutil.rmtree, _WORK, True)

# ======================================================================================
# Outcomes (shared with benchmarks/fuzz_models.py and benchmarks/fuzz_audio.py)
# ======================================================================================

OK_AUDIO = {"ok", "AudioError"}
#: A loaded waveform may not hold more samples than this many per byte of file: 16 kHz
#: output from 8-bit audio declared at >= 40 Hz stays under it; a file declaring a few Hz
#: (outside any sane documented range of sample rates) does not.
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
        # e.g. a header declaring 1 Hz: every sample becomes 16000 (the 3.8 GB case)
        return "BAD:amplification", f"{y.size} samples from a {os.path.getsize(path)}-byte file"
    return "ok", ""


def write_bytes(data: bytes, dst) -> Path:
    Path(dst).write_bytes(data)
    return Path(dst)


def _target(name: str) -> Path:
    return _WORK / name


# ======================================================================================
# The audio fuzzer
# ======================================================================================


@functools.cache
def base_wavs() -> dict[str, bytes]:
    """Small canonical WAVs (44-byte header): mutations cannot make huge allocations."""
    y = speech_like(16000, 0.05, seed=3)
    pcm = np.round(y * 30000).astype(np.int16)
    stereo = np.repeat(pcm, 2)  # interleaved L/R
    return {
        "pcm16_mono_16k": wav_bytes(16000, pcm),
        "pcm16_stereo_8k": wav_bytes(8000, stereo, channels=2),
        "float_mono_22k": wav_bytes(22050, y, bits=32, fmt=3),
        "u8_mono_11k": wav_bytes(11025, pcm, bits=8),
    }


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


@st.composite
def wav_field_edits(draw):
    # the sample rate drives allocation sizes: mutate it three times as often
    name = draw(st.sampled_from(sorted(WAV_FIELDS) + ["sample_rate", "sample_rate", "channels"]))
    _, fmt = WAV_FIELDS[name]
    top = 2**16 - 1 if fmt == "<H" else 2**32 - 1
    special = [0, 1, 2, 3, 7, 8, 16, 24, 32, 64, 1000, 8000, 44100, 2**15, top, top - 1]
    if name == "format_tag":
        special += [1, 2, 3, 6, 7, 17, 0x55, 0xFFFE]
    value = draw(st.sampled_from(special) | st.integers(0, top))
    return name, value


def mutated_wav(data: bytes, edits=(), flips=(), cut=None) -> bytes:
    b = bytearray(data)
    for name, value in edits:
        off, fmt = WAV_FIELDS[name]
        struct.pack_into(fmt, b, off, value)
    for pos, x in flips:
        b[pos % len(b)] ^= x
    return bytes(b if cut is None else b[:cut])


@st.composite
def wav_cases(draw):
    base = draw(st.sampled_from(sorted(base_wavs())))
    data = base_wavs()[base]
    how = draw(st.sampled_from(["fields", "fields", "fields", "flips", "cut", "mixed"]))
    edits = (
        draw(st.lists(wav_field_edits(), min_size=1, max_size=2))
        if how in ("fields", "mixed")
        else []
    )
    flips = []
    if how in ("flips", "mixed"):
        flips = draw(
            st.lists(
                st.tuples(st.integers(0, len(data) - 1), st.integers(1, 255)),
                min_size=1,
                max_size=4,
            )
        )
    cut = draw(st.integers(0, len(data) - 1)) if how == "cut" else None
    sr = draw(st.sampled_from([16000, None]))
    return base, edits, flips, cut, sr


def run_audio_case(case) -> tuple[str, str]:
    """Write the mutated WAV of ``case`` and load it (no memory guard: soxr aborts on
    allocation failure, so the inputs are kept small enough instead)."""
    base, edits, flips, cut, sr = case
    path = write_bytes(mutated_wav(base_wavs()[base], edits, flips, cut), _target("fuzz.wav"))
    return audio_outcome(path, sr)


@settings(CI, max_examples=150)
@given(wav_cases())
@example(("pcm16_mono_16k", [("sample_rate", 1)], [], None, 16000))  # the 3.8 GB case
@example(("pcm16_mono_16k", [("sample_rate", 7)], [], None, None))
def test_fuzz_audio_loader(case):
    outcome, detail = run_audio_case(case)
    assert outcome in OK_AUDIO, f"{outcome}: {detail}"


def test_fuzz_bases_are_valid():
    """The unmutated inputs load (so the fuzzers start from real, valid files)."""
    for name, data in base_wavs().items():
        p = write_bytes(data, _target(f"base-{name}.wav"))
        assert audio_outcome(p, 16000)[0] == "ok", name
