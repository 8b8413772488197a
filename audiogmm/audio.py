"""Reading audio files: decode, downmix, resample, and refuse bad files clearly.

Every file problem raises :class:`~audiogmm.exceptions.AudioError` (which is
also an :class:`OSError`) whose message names the file and the reason:
missing, empty, unreadable or corrupt, zero samples, non-finite samples, or
shorter than the caller's minimum (typically one analysis window).

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

__all__ = ["AUDIO_EXTENSIONS", "AudioInfo", "check_file", "info", "load", "resample"]

PathLike = Union[str, "os.PathLike[str]"]

#: File extensions treated as audio when scanning folders (lower case).
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au")


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
    except OSError as exc:
        raise AudioError(f"{path!r}: cannot access file ({exc.strerror or exc})") from None
    if not os.path.isfile(path):
        raise AudioError(f"{path!r}: expected a regular file, got a directory or special file")
    if st.st_size == 0:
        raise AudioError(f"{path!r}: empty file (0 bytes)")


def _open(path: str) -> sf.SoundFile:
    try:
        return sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
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
    if orig_sr <= 0 or target_sr <= 0:
        raise ParameterError(
            f"sample rates must be > 0 Hz, got orig_sr={orig_sr}, target_sr={target_sr}"
        )
    y = np.asarray(y, dtype=np.float32)
    if orig_sr == target_sr:
        return y
    out = soxr.resample(y, orig_sr, target_sr, quality="HQ")
    return np.ascontiguousarray(out, dtype=np.float32)


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
        The message names the file and the reason: file not found, empty file,
        unreadable or corrupt, zero samples, non-finite samples, or shorter than
        *min_samples*.
    ParameterError
        If *sr* or *min_samples* is invalid.

    Examples
    --------
    >>> y = load("clip.flac", sr=16000)  # doctest: +SKIP
    >>> y.dtype, y.ndim  # doctest: +SKIP
    (dtype('float32'), 1)
    """
    if sr is not None and (isinstance(sr, bool) or int(sr) != sr or sr <= 0):
        raise ParameterError(f"sr must be a positive integer (Hz) or None, got sr={sr!r}")
    if isinstance(min_samples, bool) or int(min_samples) != min_samples or min_samples < 1:
        raise ParameterError(f"min_samples must be an integer >= 1, got {min_samples!r}")
    p = os.fspath(path)
    check_file(p)
    with _open(p) as f:
        native_sr = int(f.samplerate)
        if f.frames == 0:
            raise AudioError(f"{p!r}: audio file has zero samples")
        try:
            data = f.read(dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, ValueError, MemoryError) as exc:
            raise AudioError(f"{p!r}: unreadable or corrupt audio data ({exc})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{p!r}: audio file has zero samples (header or data truncated)")
    y = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    if not np.isfinite(y).all():
        n_bad = int(np.count_nonzero(~np.isfinite(y)))
        raise AudioError(f"{p!r}: {n_bad} non-finite (NaN or inf) samples out of {y.size}")
    if sr is not None and native_sr != sr:
        y = resample(y, native_sr, int(sr))
    else:
        y = np.ascontiguousarray(y, dtype=np.float32)
    if y.size < min_samples:
        at = f" at {sr} Hz" if sr is not None else f" at {native_sr} Hz"
        raise AudioError(
            f"{p!r}: too short: {y.size} samples{at}, expected at least {min_samples} "
            "(one analysis window)"
        )
    return y
