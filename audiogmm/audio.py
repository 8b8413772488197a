"""Reading audio files: decode (soundfile), downmix, resample (soxr "HQ"), refuse bad files
with an :class:`~audiogmm.exceptions.AudioError` naming the file and the reason. The header is
checked before decoding, then blocks are decoded up to :func:`sample_limit` samples (before or
after resampling): a small file declaring 1 Hz, 2^32 frames or 10,000 channels asks for no GBs."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import soundfile as sf
import soxr

from .exceptions import AudioError, ParameterError

__all__ = [
    "AUDIO_EXTENSIONS", "MAX_ABS_SAMPLE", "MAX_CHANNELS", "MAX_SAMPLES", "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE", "SAMPLE_LIMIT_ENV", "AudioInfo", "as_float", "check_file", "check_length",
    "info", "load", "load_rates", "resample", "sample_limit",
]  # fmt: skip

PathLike = Union[str, "os.PathLike[str]"]

#: File extensions treated as audio when scanning folders (lower case).
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au")

#: Supported sample rates in Hz, of files and targets: below 1 kHz nothing audible is left
#: (a tiny declared rate asks the resampler for GBs); interfaces record up to 768 kHz.
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 768_000
#: Most channels a file may declare (libsndfile itself allows 1024).
MAX_CHANNELS = 256
#: Most samples per channel, decoded or after resampling, by default: 2**26 (256 MiB as
#: float32, 70 min at 16 kHz): FLAC or Vorbis silence compresses hundreds of times, so a
#: 100 kB file can decode to gigabytes. Raise it with :data:`SAMPLE_LIMIT_ENV`.
MAX_SAMPLES = 1 << 26
#: Environment variable that replaces :data:`MAX_SAMPLES` (an integer >= 1; the CLI's
#: ``--max-samples``), which worker processes inherit (:func:`sample_limit`).
SAMPLE_LIMIT_ENV = "AUDIOGMM_MAX_SAMPLES"
#: Largest |sample| accepted, in units of full scale: float files may exceed 1.0 (even hold
#: integer-scaled values), but a million times full scale is not audio, and overflows.
MAX_ABS_SAMPLE = 1e6

#: Samples (frames x channels) decoded per block: memory is the mono output plus one block.
#: Most clips fit in one, resampled by one soxr call (a stream's set-up costs more).
_BLOCK_SAMPLES = 1 << 18
#: Integer encodings: libsndfile scales them into [-1, 1], so their samples need no
#: finiteness or peak check (a third of the decoding time of a 16-bit WAV).
_INTEGER_SUBTYPES = frozenset({"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32", "ULAW", "ALAW"})


@dataclass(frozen=True)
class AudioInfo:
    """What the file header says: the path as given, native rate (Hz), channels, samples per
    channel (``frames``), ``duration_s`` and libsndfile's ``format`` and ``subtype`` names
    (e.g. ``"WAV"``, ``"PCM_24"``)."""

    path: str
    sample_rate: int
    channels: int
    frames: int
    duration_s: float
    format: str
    subtype: str


def check_file(path: str) -> None:
    """Raise AudioError when *path* is missing, not a regular file, empty or unreadable."""
    verb = "reach"
    try:
        st = os.stat(path)
        if stat.S_ISREG(st.st_mode) and st.st_size:
            verb = "read"  # libsndfile reports an unreadable file as "System error": ask the OS
            os.close(os.open(path, os.O_RDONLY))
    except FileNotFoundError:
        raise AudioError(f"{path!r}: file not found") from None
    except PermissionError:
        raise AudioError(f"{path!r}: permission denied (cannot {verb} the file)") from None
    except OSError as exc:
        raise AudioError(f"{path!r}: cannot {verb} the file ({exc.strerror or exc})") from None
    except ValueError as exc:  # e.g. an embedded NUL byte
        raise AudioError(f"{path!r}: invalid file name ({exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise AudioError(f"{path!r}: expected a regular file, got a directory or special file")
    if st.st_size == 0:
        raise AudioError(f"{path!r}: empty file (0 bytes)")


def check_rate(rate: int, what: str) -> None:
    """ParameterError naming ``what`` unless *rate* (Hz) is an integer in the supported range."""
    number = isinstance(rate, (int, float, np.integer, np.floating)) and not isinstance(rate, bool)
    if not (number and MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE and int(rate) == rate):
        raise ParameterError(f"{what} must be an integer in [{MIN_SAMPLE_RATE}, "
                             f"{MAX_SAMPLE_RATE}] Hz (the sample rates supported), got {rate!r}")


def _check_header(path: str, f: sf.SoundFile) -> None:
    """Refuse what the header declares before anything is allocated for it."""
    rate, channels, frames = int(f.samplerate), int(f.channels), int(f.frames)
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioError(f"{path!r}: declared sample rate {rate} Hz is outside the supported "
                         f"range [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}] Hz (corrupt header?)")
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(f"{path!r}: declares {channels} channels; at most {MAX_CHANNELS} are "
                         "supported")  # fmt: skip
    if frames > sample_limit():
        raise _too_long(path, f"declares {frames} samples per channel", sample_limit(), rate)


def sample_limit() -> int:
    """The most samples per channel a file may decode or resample to: ``$AUDIOGMM_MAX_SAMPLES``
    when set (ParameterError unless an integer >= 1), else :data:`MAX_SAMPLES`. Read on every
    call, so a limit set by the CLI reaches its worker processes."""
    raw = os.environ.get(SAMPLE_LIMIT_ENV, "").strip()
    try:
        value = int(raw) if raw else MAX_SAMPLES
    except ValueError:
        value = 0
    if value < 1:
        raise ParameterError(f"{SAMPLE_LIMIT_ENV}={raw!r}: expected an integer >= 1 (samples)")
    return value


def _too_long(path: str, what: str, limit: int, rate: int) -> AudioError:
    t = limit / rate
    duration = f"{t / 60:.0f} min" if t >= 120 else f"{t:.1f} s"
    return AudioError(f"{path!r}: {what}, more than the limit of {limit} samples ({duration} "
                      f"at {rate} Hz); split the file, or raise the limit (--max-samples, or "
                      f"${SAMPLE_LIMIT_ENV})")  # fmt: skip


def _open(path: str) -> sf.SoundFile:
    check_file(path)
    try:
        # bytes: names that are not valid UTF-8 (surrogate escapes) open as they are
        return sf.SoundFile(os.fsencode(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OverflowError) as exc:
        reason = str(exc).split(":", 1)[-1].strip() if str(exc) else type(exc).__name__
        if "does not exist" in reason:  # libsndfile's words for an unrecognised byte stream
            reason = "format not recognised"
        raise AudioError(f"{path!r}: unreadable or corrupt audio file ({reason})") from None


def info(path: PathLike) -> AudioInfo:
    """An audio file's header, without decoding; AudioError for a missing, empty or
    unreadable file."""
    p = os.fspath(path)
    with _open(p) as f:
        rate, frames = int(f.samplerate), int(f.frames)
        return AudioInfo(p, rate, int(f.channels), frames, frames / rate if rate else 0.0,
                         str(f.format), str(f.subtype))  # fmt: skip


#: Integer dtype -> (offset, full scale), as libsndfile reads them as float: ``(x - offset) /
#: scale`` (scipy's left-justified 24-bit WAV is int32).
_FULL_SCALE = {"int8": (0, 128), "uint8": (128, 128), "int16": (0, 1 << 15), "int32": (0, 1 << 31)}


def as_float(y: np.ndarray) -> np.ndarray:
    """A waveform as float32 in units of full scale: float samples as they are, int8, uint8,
    int16 and int32 scaled as soundfile does (so ``extract(wavfile.read(p)[1], sr=...)``
    equals ``extract(p)``); ParameterError for any other dtype."""
    y = np.asarray(y)
    if np.issubdtype(y.dtype, np.floating):
        return y.astype(np.float32, copy=False)
    if y.dtype.name not in _FULL_SCALE:
        raise ParameterError("expected a real-valued waveform of float or int8/uint8/int16/"
                             f"int32 samples, got dtype {y.dtype}")  # fmt: skip
    offset, scale = _FULL_SCALE[y.dtype.name]
    if offset:  # exact in float32, as the integer's own rounding and a power-of-two scale
        y = np.subtract(y, np.float32(offset), dtype=np.float32)
    return np.multiply(y, np.float32(1.0 / scale), dtype=np.float32)


def resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """A mono waveform (n,) resampled with soxr (HQ) from ``orig_sr`` to ``target_sr`` Hz:
    float32 (m,), ``m ≈ n * target_sr / orig_sr`` (unchanged when the rates are equal)."""
    check_rate(orig_sr, "orig_sr")
    check_rate(target_sr, "target_sr")
    y = np.asarray(y, dtype=np.float32)
    if orig_sr == target_sr:
        return y
    n_out = -(-y.size * int(target_sr) // int(orig_sr))
    if n_out > sample_limit():
        raise ParameterError(f"resampling {y.size} samples from {orig_sr} to {target_sr} Hz "
                             f"gives {n_out} samples, more than the limit of {sample_limit()} "
                             f"(${SAMPLE_LIMIT_ENV})")  # fmt: skip
    out = np.ascontiguousarray(soxr.resample(y, orig_sr, target_sr, quality="HQ"), np.float32)
    if not np.isfinite(out).all():  # only for absurd input (|y| near float32 max)
        raise ParameterError("resampling produced non-finite samples; the input exceeds the "
                             "representable range")  # fmt: skip
    return out


def load(path: PathLike, *, sr: Optional[int], min_samples: int = 1) -> np.ndarray:
    """An audio file as a mono float32 waveform ``(n_samples,)`` in units of full scale
    (channels averaged), resampled by soxr to ``sr`` Hz (``None``: the native rate); at least
    ``min_samples`` samples (e.g. one analysis window). AudioError naming the file and the
    reason; ParameterError for an invalid *sr* or *min_samples*."""
    if sr is not None:
        check_rate(sr, "sr")
    _check_min_samples(min_samples)
    native, (y,) = _load(os.fspath(path), [sr])
    check_length(path, y, native if sr is None else sr, min_samples)
    return y


def load_rates(path: PathLike, rates: Sequence[int]) -> list[np.ndarray]:
    """One decode of an audio file, resampled to each of ``rates`` (Hz): the waveforms
    ``(n_samples_i,)``, float32, each bit-identical to :func:`load` at that rate (the same soxr
    calls on the same decoded blocks). Check each against its window with
    :func:`check_length`. AudioError naming the file and the reason; ParameterError for an
    invalid rate."""
    for r in rates:
        check_rate(r, "rate")
    rates = [int(r) for r in rates]
    if not rates:
        raise ParameterError("rates must name at least one sample rate")
    return _load(os.fspath(path), rates)[1]


def check_length(path: PathLike, y: np.ndarray, rate: int, min_samples: int) -> None:
    """AudioError naming the file unless ``y`` (at ``rate`` Hz) holds ``min_samples``."""
    if y.size < min_samples:
        raise AudioError(f"{os.fspath(path)!r}: too short: {y.size} samples at {rate} Hz, "
                         f"expected at least {min_samples} (one analysis window)")  # fmt: skip


def _check_min_samples(min_samples: int) -> None:
    if isinstance(min_samples, bool) or int(min_samples) != min_samples or min_samples < 1:
        raise ParameterError(f"min_samples must be an integer >= 1, got {min_samples!r}")


def _load(p: str, targets: Sequence[Optional[int]]) -> tuple[int, list[np.ndarray]]:
    """The native rate and the waveform at each target rate (None: native); AudioError for an
    unreadable, bad or empty file."""
    with _open(p) as f:
        _check_header(p, f)
        native, empty = int(f.samplerate), not f.frames
        ys = [np.empty(0, np.float32)] * len(targets) if empty else _decode_mono(p, f, targets)
    if any(y.size == 0 for y in ys):
        truncated = "" if empty else " (header or data truncated)"
        raise AudioError(f"{p!r}: audio file has zero samples{truncated}")
    return native, ys


def _decode_mono(path: str, f: sf.SoundFile, targets: Sequence[Optional[int]]) -> list[np.ndarray]:
    """Decode, check and downmix block by block, resampling each block to every target rate
    (None: native) into one float32 buffer per target (sized by the declared length, at most
    the limit); float samples are checked before the downmix (inf)."""
    native, limit, channels = int(f.samplerate), sample_limit(), int(f.channels)
    check, int16 = f.subtype not in _INTEGER_SUBTYPES, f.subtype == "PCM_16"
    block = max(1, _BLOCK_SAMPLES // channels)
    rates = [int(t or native) for t in targets]
    # at each target rate
    expected = [-(-max(0, int(f.frames)) * t // native) for t in rates]
    outs = [np.empty(max(1, min(e, limit)), dtype=np.float32) for e in expected]
    n_outs = [0] * len(rates)
    streams: list = [None] * len(rates)
    n = n_bad = 0
    peak, last = 0.0, False
    try:
        while not last:
            data = f.read(block, dtype="int16" if int16 else "float32", always_2d=True)
            if int16:  # libsndfile's own floats (x / 32768), at a third of its cost for WAV
                data = as_float(data)
            m = data.shape[0]
            last, n = m < block, n + m
            if n > limit:
                raise _too_long(path, "too long", limit, native)
            if m and check:
                finite = np.isfinite(data)
                if not finite.all():
                    n_bad += int(data.size - np.count_nonzero(finite))
                elif not n_bad:
                    peak = max(peak, float(np.max(np.abs(data))))
            if n_bad or peak > MAX_ABS_SAMPLE:
                continue  # keep counting, for the message
            mono = data[:, 0] if channels == 1 else data.mean(axis=1, dtype=np.float32)
            for i, target in enumerate(rates):
                if target == native:
                    chunk = mono
                elif last and streams[i] is None:  # the whole file in one block
                    chunk = soxr.resample(mono, native, target, quality="HQ")
                else:
                    if streams[i] is None:
                        streams[i] = soxr.ResampleStream(native, target, 1, dtype="float32",
                                                         quality="HQ")  # fmt: skip
                    chunk = streams[i].resample_chunk(np.ascontiguousarray(mono), last=last)
                k, out, n_out = chunk.shape[0], outs[i], n_outs[i]
                if n_out + k > limit:
                    raise _too_long(path, "too long at the target rate", limit, native)
                if n_out + k > out.size:  # the header under-declared: grow (rare)
                    out.resize(min(limit, max(2 * out.size, n_out + k)), refcheck=False)
                out[n_out : n_out + k] = chunk
                n_outs[i] = n_out + k
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OverflowError) as exc:
        raise AudioError(f"{path!r}: unreadable or corrupt audio data ({exc})") from None
    except MemoryError:
        raise AudioError(f"{path!r}: out of memory while decoding") from None
    if n_bad:
        raise AudioError(f"{path!r}: {n_bad} non-finite (NaN or inf) samples out of {n * channels}")
    if peak > MAX_ABS_SAMPLE:
        raise AudioError(f"{path!r}: absurd sample values (peak |sample| {peak:.3g} times full "
                         f"scale, limit {MAX_ABS_SAMPLE:g}); corrupt float data?")  # fmt: skip
    # an over-declared header leaves most of a buffer unused: keep only what was read
    return [out[:k].copy() if k < out.size // 2 else out[:k] for out, k in zip(outs, n_outs)]
