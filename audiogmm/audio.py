"""Reading audio files: decode, downmix, resample, and refuse bad files clearly.

Every file problem raises :class:`~audiogmm.exceptions.AudioError` (which is
also an :class:`OSError`) whose message names the file and the reason:
missing, permission denied, empty, unreadable or corrupt, zero samples,
non-finite or absurd samples, a sample rate outside the supported range, too
long, or shorter than the caller's minimum (typically one analysis window).

The header is not trusted. Before anything is decoded, the declared sample rate
must lie in [:data:`MIN_SAMPLE_RATE`, :data:`MAX_SAMPLE_RATE`] Hz and the channel
count in [1, :data:`MAX_CHANNELS`]; the file is then decoded in blocks, downmixed
block by block, and refused as soon as it exceeds :data:`MAX_SAMPLES` samples
(before or after resampling), so a small file that declares 1 Hz, 2^32 frames or
10,000 channels can never ask for gigabytes.

Decoding uses `soundfile` (libsndfile): WAV/WAVEX/RF64, FLAC, OGG/Vorbis,
AIFF, AU, and MP3 where the installed libsndfile supports it (>= 1.1).
Resampling uses `soxr` at "HQ" quality, and only when the rates differ.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import soundfile as sf
import soxr

from .exceptions import AudioError, ParameterError

__all__ = [
    "AUDIO_EXTENSIONS",
    "MAX_ABS_SAMPLE",
    "MAX_CHANNELS",
    "MAX_SAMPLES",
    "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "SAMPLE_LIMIT_ENV",
    "AudioInfo",
    "as_float",
    "check_file",
    "check_rate",
    "info",
    "load",
    "resample",
    "sample_limit",
]

PathLike = Union[str, "os.PathLike[str]"]

#: File extensions treated as audio when scanning folders (lower case).
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au")

#: Supported sample rates in Hz, for files and for targets. Below 1 kHz nothing audible
#: is left to model, and a tiny declared rate is how a 100 kB file asks the resampler
#: for gigabytes; 768 kHz is the highest rate audio interfaces record.
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 768_000
#: Most channels a file may declare (libsndfile itself allows 1024).
MAX_CHANNELS = 256
#: Most samples per channel, decoded or after resampling, by default: 2**26 (256 MiB as
#: float32), about 70 minutes at 16 kHz or 23 minutes at 48 kHz. It bounds what a small
#: file can cost: FLAC or Vorbis silence compresses hundreds of times, so a 100 kB file
#: can decode to gigabytes. Split longer recordings, or raise the limit with the
#: environment variable :data:`SAMPLE_LIMIT_ENV` (the CLI's ``--max-samples``), which
#: worker processes inherit (:func:`sample_limit`).
MAX_SAMPLES = 1 << 26
#: Environment variable that replaces :data:`MAX_SAMPLES` (an integer >= 1).
SAMPLE_LIMIT_ENV = "AUDIOGMM_MAX_SAMPLES"
#: Largest |sample| accepted, in units of full scale. Float files may exceed 1.0 a
#: little (or hold integer-scaled values up to 32768), but a million times full
#: scale is not audio, and squaring such values in the power spectrum overflows.
MAX_ABS_SAMPLE = 1e6

#: Samples (frames x channels) decoded per block: memory is the mono output plus one
#: block, not channels x frames. Most clips fit in one block, and are resampled by one
#: soxr call instead of a stream (whose set-up costs more than the resampling of a clip).
_BLOCK_SAMPLES = 1 << 18
#: Integer encodings: libsndfile scales them into [-1, 1], so their samples need no
#: finiteness or peak check (a third of the decoding time of a 16-bit WAV).
_INTEGER_SUBTYPES = frozenset({"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32", "ULAW", "ALAW"})
#: 16-bit samples are read as int16 and scaled here: the float32 values of libsndfile's own
#: conversion (x / 32768, exact), at a third of its cost for WAV.
_INT16_SCALE = np.float32(1.0 / (1 << 15))


@dataclass(frozen=True)
class AudioInfo:
    """What the file header says about an audio file.

    Attributes
    ----------
    path : str
        The file, as given.
    sample_rate : int
        Native sampling rate in Hz.
    channels : int
        Number of channels.
    frames : int
        Number of samples per channel.
    duration_s : float
        ``frames / sample_rate`` in seconds.
    format, subtype : str
        libsndfile's container and encoding names (e.g. ``"WAV"``, ``"PCM_24"``).
    """

    path: str
    sample_rate: int
    channels: int
    frames: int
    duration_s: float
    format: str
    subtype: str


def check_file(path: str) -> None:
    """Raise AudioError when *path* is missing, not a regular file, or empty."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise AudioError(f"{path!r}: file not found") from None
    except PermissionError:
        raise AudioError(f"{path!r}: permission denied (cannot reach the file)") from None
    except OSError as exc:
        raise AudioError(f"{path!r}: cannot access file ({exc.strerror or exc})") from None
    except ValueError as exc:  # e.g. an embedded NUL byte
        raise AudioError(f"{path!r}: invalid file name ({exc})") from None
    if not os.path.isfile(path):
        raise AudioError(f"{path!r}: expected a regular file, got a directory or special file")
    if st.st_size == 0:
        raise AudioError(f"{path!r}: empty file (0 bytes)")
    try:  # libsndfile reports an unreadable file as "System error": ask the OS first
        os.close(os.open(path, os.O_RDONLY))
    except PermissionError:
        raise AudioError(f"{path!r}: permission denied (cannot read the file)") from None
    except OSError as exc:
        raise AudioError(f"{path!r}: cannot open file ({exc.strerror or exc})") from None


def check_rate(rate: int, what: str) -> None:
    """Raise ParameterError unless *rate* (Hz) is an int in the supported range.

    Parameters
    ----------
    rate : int
        A sample rate in Hz, e.g. a caller's target ``sr``.
    what : str
        The parameter's name, for the message.
    """
    ok = (
        isinstance(rate, (int, float, np.integer, np.floating))
        and not isinstance(rate, bool)
        and MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE
        and int(rate) == rate
    )
    if not ok:
        raise ParameterError(
            f"{what}={rate!r}: sample rates must be integers in "
            f"[{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}] Hz"
        )


def _check_header(path: str, f: sf.SoundFile) -> None:
    """Refuse what the header declares before anything is allocated for it."""
    rate, channels, frames = int(f.samplerate), int(f.channels), int(f.frames)
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioError(
            f"{path!r}: declared sample rate {rate} Hz is outside the supported range "
            f"[{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}] Hz (corrupt header?)"
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(
            f"{path!r}: declares {channels} channels; at most {MAX_CHANNELS} are supported"
        )
    limit = sample_limit()
    if frames > limit:
        raise _too_long(path, f"declares {frames} samples per channel", limit, rate)


def sample_limit() -> int:
    """The most samples per channel a file may decode or resample to.

    ``$AUDIOGMM_MAX_SAMPLES`` (:data:`SAMPLE_LIMIT_ENV`) when set, else :data:`MAX_SAMPLES`.
    Read on every call, so that a limit set by the CLI reaches its worker processes.

    Raises
    ------
    ParameterError
        If the variable is set to anything but an integer >= 1.
    """
    raw = os.environ.get(SAMPLE_LIMIT_ENV, "").strip()
    if not raw:
        return MAX_SAMPLES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ParameterError(f"{SAMPLE_LIMIT_ENV}={raw!r}: expected an integer >= 1 (samples)")
    return value


def _too_long(path: str, what: str, limit: int, rate: int) -> AudioError:
    return AudioError(
        f"{path!r}: {what}, more than the limit of {limit} samples "
        f"({_duration(limit / rate)} at {rate} Hz); split the file, or raise the limit "
        f"(--max-samples, or ${SAMPLE_LIMIT_ENV})"
    )


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.1f} s"


def _open(path: str) -> sf.SoundFile:
    try:
        # bytes: names that are not valid UTF-8 (surrogate escapes) open as they are
        return sf.SoundFile(os.fsencode(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OverflowError) as exc:
        reason = str(exc).split(":", 1)[-1].strip() if str(exc) else type(exc).__name__
        if "does not exist" in reason:  # libsndfile's words for an unrecognised byte stream
            reason = "format not recognised"
        raise AudioError(f"{path!r}: unreadable or corrupt audio file ({reason})") from None


def info(path: PathLike) -> AudioInfo:
    """Read an audio file's header without decoding the samples.

    Parameters
    ----------
    path : str or os.PathLike
        The audio file.

    Returns
    -------
    AudioInfo
        Sample rate (Hz), channels, frames, duration (s), format and subtype.

    Raises
    ------
    AudioError
        If the file is missing, empty or not a readable audio file.
    """
    p = os.fspath(path)
    check_file(p)
    with _open(p) as f:
        return AudioInfo(
            path=p,
            sample_rate=int(f.samplerate),
            channels=int(f.channels),
            frames=int(f.frames),
            duration_s=float(f.frames) / float(f.samplerate) if f.samplerate else 0.0,
            format=str(f.format),
            subtype=str(f.subtype),
        )


#: Integer sample types and their full scale, as soundfile (libsndfile) reads them as float:
#: PCM_16 ``x / 32768``, PCM_32 (and scipy's left-justified 24-bit) ``x / 2**31``,
#: unsigned 8-bit ``(x - 128) / 128``.
_FULL_SCALE = {"int8": (0, 128), "uint8": (128, 128), "int16": (0, 1 << 15), "int32": (0, 1 << 31)}


def as_float(y: np.ndarray) -> np.ndarray:
    """A waveform as float32 in units of full scale; integer samples scaled as soundfile does.

    So ``extract(wavfile.read(p)[1], sr=...)`` (an int16 array) equals ``extract(p)``.

    Parameters
    ----------
    y : np.ndarray
        Float samples (kept as they are) or int8, uint8, int16, int32 samples.

    Returns
    -------
    np.ndarray [dtype=float32]

    Raises
    ------
    ParameterError
        For any other dtype (bool, complex, int64, uint16, ...).
    """
    y = np.asarray(y)
    if np.issubdtype(y.dtype, np.floating):
        return y.astype(np.float32, copy=False)
    if y.dtype.name not in _FULL_SCALE:
        raise ParameterError(
            "expected a real-valued waveform of float or int8/uint8/int16/int32 samples, got "
            f"dtype {y.dtype}"
        )
    offset, scale = _FULL_SCALE[y.dtype.name]
    # exact in float32: |x - offset| <= 2**31 rounds once, and dividing by a power of two is exact
    return (y.astype(np.float32) - np.float32(offset)) / np.float32(scale)


def resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a mono waveform with soxr (HQ), returning float32.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono waveform.
    orig_sr, target_sr : int > 0
        Sampling rates in Hz. When equal, *y* is returned as float32 unchanged.

    Returns
    -------
    np.ndarray [shape=(m,), dtype=float32]
        ``m ≈ n * target_sr / orig_sr`` samples.
    """
    check_rate(orig_sr, "orig_sr")
    check_rate(target_sr, "target_sr")
    y = np.asarray(y, dtype=np.float32)
    if orig_sr == target_sr:
        return y
    n_out = -(-y.size * int(target_sr) // int(orig_sr))
    if n_out > sample_limit():
        raise ParameterError(
            f"resampling {y.size} samples from {orig_sr} to {target_sr} Hz gives {n_out} "
            f"samples, more than the limit of {sample_limit()} (${SAMPLE_LIMIT_ENV})"
        )
    out = np.ascontiguousarray(soxr.resample(y, orig_sr, target_sr, quality="HQ"), np.float32)
    if not np.isfinite(out).all():  # only for absurd input (|y| near float32 max)
        raise ParameterError(
            "resampling produced non-finite samples; the input exceeds the representable range"
        )
    return out


def load(path: PathLike, *, sr: Optional[int], min_samples: int = 1) -> np.ndarray:
    """Load an audio file as a mono float32 waveform.

    The channels are averaged (downmix), then the signal is resampled with
    soxr to *sr* if the file's native rate differs.

    Parameters
    ----------
    path : str or os.PathLike
        The audio file (WAV, FLAC, OGG, AIFF, AU, MP3 where supported).
    sr : int > 0 or None
        Target sampling rate in Hz; ``None`` keeps the native rate.
    min_samples : int >= 1
        Minimum number of samples after resampling, e.g. one analysis window.

    Returns
    -------
    np.ndarray [shape=(n_samples,), dtype=float32]
        Samples in [-1, 1] (full scale) for integer-coded files.

    Raises
    ------
    AudioError
        The message names the file and the reason: file not found, permission
        denied, empty file, unreadable or corrupt, a declared sample rate outside
        [:data:`MIN_SAMPLE_RATE`, :data:`MAX_SAMPLE_RATE`] Hz, too many channels,
        more than :data:`MAX_SAMPLES` samples, zero samples, non-finite samples,
        samples beyond :data:`MAX_ABS_SAMPLE` times full scale, or shorter than
        *min_samples*.
    ParameterError
        If *sr* (outside the supported range) or *min_samples* is invalid.

    Examples
    --------
    >>> y = load("clip.flac", sr=16000)  # doctest: +SKIP
    >>> y.dtype, y.ndim  # doctest: +SKIP
    (dtype('float32'), 1)
    """
    if sr is not None:
        check_rate(sr, "sr")
    if isinstance(min_samples, bool) or int(min_samples) != min_samples or min_samples < 1:
        raise ParameterError(f"min_samples must be an integer >= 1, got {min_samples!r}")
    p = os.fspath(path)
    check_file(p)
    with _open(p) as f:
        _check_header(p, f)
        native_sr = int(f.samplerate)
        if f.frames == 0:
            raise AudioError(f"{p!r}: audio file has zero samples")
        y = _decode_mono(p, f, sr)
    if y.size == 0:
        raise AudioError(f"{p!r}: audio file has zero samples (header or data truncated)")
    if y.size < min_samples:
        at = f" at {sr} Hz" if sr is not None else f" at {native_sr} Hz"
        raise AudioError(
            f"{p!r}: too short: {y.size} samples{at}, expected at least {min_samples} "
            "(one analysis window)"
        )
    return y


def _decode_mono(path: str, f: sf.SoundFile, sr: Optional[int]) -> np.ndarray:
    """Decode, check, downmix and resample block by block into one float32 buffer.

    Memory is the result (at the target rate) plus one block: the native-rate signal
    is never held whole, since soxr's stream resampler gives the same samples as a
    one-shot call (used when the file is one block). The declared frame count only sizes the buffer (never above
    MAX_SAMPLES; untouched pages cost nothing); decoding stops with AudioError once
    the decoded or resampled length passes the limit, whatever the header said.
    Float-coded samples are checked per channel before the downmix, so absurd values are
    named as such rather than as the inf their sum overflows to (integer-coded ones
    cannot be absurd).
    """
    native = int(f.samplerate)
    limit = sample_limit()
    check = f.subtype not in _INTEGER_SUBTYPES
    int16 = f.subtype == "PCM_16"
    block = max(1, _BLOCK_SAMPLES // int(f.channels))
    resampling = sr is not None and int(sr) != native
    stream = None
    expected = max(0, int(f.frames))
    if resampling:
        expected = -(-expected * int(sr) // native)
    out = np.empty(max(1, min(expected, limit)), dtype=np.float32)
    n = n_out = n_bad = 0
    peak = 0.0

    try:
        while True:
            data = f.read(block, dtype="int16" if int16 else "float32", always_2d=True)
            if int16:
                data = data.astype(np.float32)
                data *= _INT16_SCALE
            m = data.shape[0]
            last = m < block
            n += m
            if n > limit:
                raise _too_long(path, "too long", limit, native)
            if m and check:
                finite = np.isfinite(data)
                if not finite.all():
                    n_bad += int(data.size - np.count_nonzero(finite))
                elif not n_bad:
                    peak = max(peak, float(np.max(np.abs(data))))
            if n_bad or peak > MAX_ABS_SAMPLE:
                if last:
                    break
                continue  # keep counting, for the message
            mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
            if not resampling:
                chunk = mono
            elif last and stream is None:  # the whole file in one block
                chunk = soxr.resample(mono, native, int(sr), quality="HQ")
            else:
                if stream is None:
                    stream = soxr.ResampleStream(native, int(sr), 1, dtype="float32", quality="HQ")
                chunk = stream.resample_chunk(np.ascontiguousarray(mono), last=last)
            k = chunk.shape[0]
            if n_out + k > limit:
                raise _too_long(path, "too long at the target rate", limit, native)
            if n_out + k > out.size:  # the header under-declared: grow (rare)
                grown = np.empty(min(limit, max(2 * out.size, n_out + k)), np.float32)
                grown[:n_out] = out[:n_out]
                out = grown
            out[n_out : n_out + k] = chunk
            n_out += k
            if last:
                break
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OverflowError) as exc:
        raise AudioError(f"{path!r}: unreadable or corrupt audio data ({exc})") from None
    except MemoryError:
        raise AudioError(f"{path!r}: out of memory while decoding") from None
    if n_bad:
        total = n * f.channels
        raise AudioError(f"{path!r}: {n_bad} non-finite (NaN or inf) samples out of {total}")
    if peak > MAX_ABS_SAMPLE:
        raise AudioError(
            f"{path!r}: absurd sample values (peak |sample| {peak:.3g} times full scale, "
            f"limit {MAX_ABS_SAMPLE:g}); corrupt float data?"
        )
    y = out[:n_out]
    if resampling and not np.isfinite(y).all():  # accepted input cannot do this
        raise AudioError(f"{path!r}: resampling produced non-finite samples")
    # an over-declared header leaves most of the buffer unused: keep only what was read
    return y.copy() if n_out < out.size // 2 else y
