"""Spectral analysis: framing, |STFT|^2, mel projection, frame energy, log, DCT.

The STFT + mel projection equals ``librosa.stft`` + ``librosa.feature.melspectrogram``
with frames laid out as rows and processed in blocks (the STFT is computed once;
the frame energy for VAD and ``c0="energy"`` comes from the same spectrum); the
mel filterbank is built once per config. The one small BLAS product runs on one
thread, so results do not depend on the machine's thread settings or job count.
"""

from __future__ import annotations

import functools
from typing import Optional

import numpy as np

from ..engine import one_blas_thread
from ..exceptions import FeatureError
from .config import FeatureConfig, window

__all__ = ["AMIN", "cepstra", "mel_and_energy"]

AMIN = 1e-10  # power floor: log10(1e-10) = -100 dB, so digital silence stays finite


@functools.lru_cache(maxsize=32)
def _padded_window(name: str, win_length: int, n_fft: int) -> np.ndarray:
    import librosa

    w = librosa.util.pad_center(window(name, win_length), size=n_fft).astype(np.float32)
    w.setflags(write=False)
    return w


@functools.lru_cache(maxsize=32)
def _mel_basis(
    sr: int,
    n_fft: int,
    n_mels: int,
    fmin: float,
    fmax: Optional[float],
    htk: bool,
    norm: Optional[str],
) -> np.ndarray:
    import librosa

    basis = librosa.filters.mel(
        sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm
    )
    basis = np.ascontiguousarray(basis.T)  # (n_bins, n_mels), C order: the fast BLAS layout
    basis.setflags(write=False)
    return basis


@functools.lru_cache(maxsize=32)
def _energy_norm(name: str, win_length: int, n_fft: int) -> float:
    """1 / (n_fft * Σ w²): turns Σ_k |X_k|² (full spectrum) into the mean square of the signal."""
    w = window(name, win_length)
    return 1.0 / (n_fft * float(np.sum(np.asarray(w, dtype=np.float64) ** 2)))


_BLOCK_FRAMES = 2048  # STFT frames per block: bounds memory on hour-long files


def mel_and_energy(y: np.ndarray, config: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Mel power spectrogram ``(n_mels, n_frames)`` and frame energy (dB) from one STFT.

    Equivalent to ``librosa.stft`` (same centring, padding, periodic window
    zero-padded to ``n_fft``, same frame count) followed by
    ``librosa.feature.melspectrogram(S=|X|**2, ...)``, but frames are laid out as
    rows and processed in blocks, which is several times faster on short clips
    and keeps memory bounded on long ones.
    """
    import scipy.fft

    n_fft, hop = config.n_fft, config.hop_length
    if config.center:
        y = np.pad(y, n_fft // 2, mode=config.pad_mode)  # type: ignore[call-overload]
    if y.size < n_fft:
        raise FeatureError(f"clip too short: {y.size} samples after padding, n_fft={n_fft}")
    win = _padded_window(config.window, config.win_length, n_fft)
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop]  # (n_frames, n_fft) view
    n_frames = frames.shape[0]
    basis_t = _mel_basis(
        config.sample_rate,
        config.n_fft,
        config.n_mels,
        config.fmin,
        config.fmax,
        config.htk,
        config.mel_norm,
    )  # (n_bins, n_mels)
    mel = np.empty((n_frames, config.n_mels), dtype=np.float32)
    ms = np.empty(n_frames, dtype=np.float64)
    norm = _energy_norm(config.window, config.win_length, n_fft)
    with one_blas_thread():
        for b in range(0, n_frames, _BLOCK_FRAMES):
            spec = scipy.fft.rfft(frames[b : b + _BLOCK_FRAMES] * win, axis=-1)
            power = spec.real**2 + spec.imag**2  # |X|², without the sqrt of np.abs
            np.dot(power, basis_t, out=mel[b : b + _BLOCK_FRAMES])
            ms[b : b + _BLOCK_FRAMES] = _full_spectrum_energy(power, n_fft) * norm
    return mel.T, 10.0 * np.log10(np.maximum(ms, AMIN))


def _full_spectrum_energy(power_rows: np.ndarray, n_fft: int) -> np.ndarray:
    """Σ_k |X_k|² over the full spectrum from one-sided rows ``(n_frames, n_bins)``."""
    p = power_rows
    full = 2.0 * p.sum(axis=-1, dtype=np.float64) - p[:, 0]
    if n_fft % 2 == 0:  # the Nyquist bin, like DC, appears once
        full -= p[:, -1]
    return full


def cepstra(mel: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """MFCC ``(n_mfcc, n_frames)`` from a mel power spectrogram ``(n_mels, n_frames)``.

    librosa's ``power_to_db`` (``amin`` floor, ``top_db`` clipping) then
    ``librosa.feature.mfcc`` (orthonormal DCT-II, liftering).
    """
    import librosa

    log_mel = librosa.power_to_db(mel, ref=1.0, amin=AMIN, top_db=config.top_db)
    return librosa.feature.mfcc(S=log_mel, n_mfcc=config.n_mfcc, lifter=config.lifter)
