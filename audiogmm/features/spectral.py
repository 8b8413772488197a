"""librosa's ``stft``, ``melspectrogram``, ``power_to_db``, ``mfcc`` and ``feature.delta``
restated in numpy (no librosa import: numba compiles ~12 s cold), frames as rows in blocks,
on one BLAS thread, with the frame energy from the same spectrum. Window, filterbank,
``power_to_db`` and deltas are librosa's bit for bit; the FFT (of float64 frames: 4-6x faster
than numpy's float32) and the float64 DCT within float32 rounding (``tests/test_coldstart.py``)."""

from __future__ import annotations

import functools
import math
from typing import Optional

import numpy as np

from ..engine import one_blas_thread
from ..exceptions import FeatureError
from .config import FeatureConfig

__all__ = ["AMIN", "cepstra", "delta", "frame_energy_db", "mel_and_energy", "mel_filterbank",
           "stft_blocks", "window"]  # fmt: skip

AMIN = 1e-10  # power floor: log10(1e-10) = -100 dB, so digital silence stays finite
_BLOCK_FRAMES = 2048  # STFT frames per block: bounds memory on hour-long files


@functools.lru_cache(maxsize=32)
def window(name: str, win_length: int) -> np.ndarray:
    """``scipy.signal.get_window(name, win_length, fftbins=True)``, float64, cached; Hamming and
    Hann restated bit for bit, so the common case does not import ``scipy.signal`` (~0.4 s)."""
    alpha = {"hamming": 0.54, "hann": 0.5}.get(name)  # scipy's general_hamming(alpha)
    if alpha is None or win_length <= 1:
        import scipy.signal
        return scipy.signal.get_window(name, win_length, fftbins=True)
    fac = np.linspace(-np.pi, np.pi, win_length + 1, dtype=np.float64)
    return (np.float64(alpha) + np.float64(1.0 - alpha) * np.cos(fac))[:-1]


@functools.lru_cache(maxsize=32)
def _padded_window(name: str, win_length: int, n_fft: int) -> np.ndarray:
    lpad = (n_fft - win_length) // 2  # centred in n_fft, as librosa.util.pad_center
    w = np.pad(window(name, win_length), (lpad, n_fft - win_length - lpad)).astype(np.float32)
    w.setflags(write=False)
    return w


@functools.lru_cache(maxsize=32)
def _float64_window(name: str, win_length: int, n_fft: int) -> np.ndarray:
    """:func:`_padded_window` (float32 values) as float64, for float64 frames."""
    w = _padded_window(name, win_length, n_fft).astype(np.float64)
    w.setflags(write=False)
    return w


# The mel scale of librosa.hz_to_mel / mel_to_hz: HTK's formula, or Slaney's
# (linear below 1 kHz, logarithmic above), written with the same operations.
_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def _hz_to_mel(f: float, htk: bool) -> float:
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    if f >= _MIN_LOG_HZ:
        return _MIN_LOG_MEL + np.log(f / _MIN_LOG_HZ) / _LOGSTEP
    return (f - 0.0) / _F_SP


def _mel_to_hz(mels: np.ndarray, htk: bool) -> np.ndarray:
    if htk:
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    freqs = 0.0 + _F_SP * mels
    log_t = mels >= _MIN_LOG_MEL
    freqs[log_t] = _MIN_LOG_HZ * np.exp(_LOGSTEP * (mels[log_t] - _MIN_LOG_MEL))
    return freqs


@functools.lru_cache(maxsize=32)
def mel_filterbank(*, sr: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: Optional[float] = None, htk: bool = False,
                   norm: Optional[str] = "slaney") -> np.ndarray:  # fmt: skip
    """Triangular mel filters (n_mels, 1 + n_fft // 2), float32, from ``fmin`` to ``fmax`` Hz
    (``None``: ``sr / 2``): ``librosa.filters.mel`` bit for bit (same arguments). Cached and
    read-only, the transpose of a C-order array (``.T`` is the fast BLAS layout)."""
    if fmax is None:
        fmax = float(sr) / 2
    weights = np.zeros((n_mels, int(1 + n_fft // 2)), dtype=np.float32)
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mels = np.linspace(_hz_to_mel(fmin, htk), _hz_to_mel(fmax, htk), n_mels + 2)
    mel_f = _mel_to_hz(mels, htk)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    for i in range(n_mels):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    if norm == "slaney":
        weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
    basis = np.ascontiguousarray(weights.T)
    basis.setflags(write=False)
    return basis.T


@functools.lru_cache(maxsize=32)
def _energy_norm(name: str, win_length: int, n_fft: int) -> float:
    """1 / (n_fft * Σ w²): turns Σ_k |X_k|² (full spectrum) into the signal's mean square."""
    return 1.0 / (n_fft * float(np.sum(window(name, win_length) ** 2)))  # float64 window


def stft_blocks(y: np.ndarray, config: FeatureConfig, stft=None):
    """The STFT of ``y`` (n_samples,) framed as ``librosa.stft``, complex blocks ``(n, 1 +
    n_fft // 2)`` of frames as rows: numpy's ``rfft``, or ``stft`` (``librosa.stft``) on the
    frames' span, transposed. FeatureError when shorter than a frame."""
    n_fft, hop = config.n_fft, config.hop_length
    # float64 frames for numpy: its float32 rfft is 4-6x slower at n_fft 512-2048 (the samples
    # converted once, not once per overlapping frame: the same products)
    dtype = y.dtype if stft is not None else np.dtype(np.float64)
    if config.center:
        y = _pad(y, n_fft // 2, config.pad_mode, dtype)
    y = np.ascontiguousarray(y, dtype=dtype)
    if y.size < n_fft:
        raise FeatureError(f"clip too short: {y.size} samples after padding, n_fft={n_fft}")
    win = (_padded_window if stft is not None else _float64_window)(config.window,
                                                                     config.win_length, n_fft)
    # (n_frames, n_fft) read-only view, sliding_window_view(y, n_fft)[::hop] without its
    # Python-level set-up (most of a short clip's time holding the GIL)
    frames = np.ndarray((1 + (y.size - n_fft) // hop, n_fft), y.dtype, buffer=y,
                        strides=(hop * y.itemsize, y.itemsize))  # fmt: skip
    frames.flags.writeable = False
    for b in range(0, frames.shape[0], _BLOCK_FRAMES):
        block = frames[b : b + _BLOCK_FRAMES]
        if stft is None:
            yield np.fft.rfft(block * win, axis=-1)
        else:
            seg = y[b * hop : (b + len(block) - 1) * hop + n_fft]
            yield stft(seg, n_fft=n_fft, hop_length=hop, window=win, center=False).T


def _pad(x: np.ndarray, width: int, mode: str, dtype=None) -> np.ndarray:
    """``np.pad(x, [(0, 0), ..., (width, width)], mode=mode)`` along the last axis, as
    ``dtype`` (default: ``x``'s); the two common modes without np.pad's Python-level set-up
    (most of its time on a short clip)."""
    n, dtype = x.shape[-1], x.dtype if dtype is None else dtype
    if mode not in ("constant", "edge") or n == 0:
        return np.pad(x.astype(dtype, copy=False), [(0, 0)] * (x.ndim - 1) + [(width, width)],
                      mode=mode)  # type: ignore[call-overload]
    out = np.empty(x.shape[:-1] + (n + 2 * width,), dtype)
    out[..., width : width + n] = x
    if mode == "constant":  # zeros: np.pad's default constant
        out[..., :width] = 0
        out[..., width + n :] = 0
    else:
        out[..., :width] = out[..., width : width + 1]
        out[..., width + n :] = out[..., width + n - 1 : width + n]
    return out


def mel_and_energy(y: np.ndarray, config: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Mel power spectrogram ``(n_mels, n_frames)`` and frame energy (dB) from one STFT:
    ``librosa.feature.melspectrogram(S=|X|**2)``, frames as rows in blocks (faster)."""
    c = config
    basis_t = mel_filterbank(sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.fmin,
                             fmax=c.fmax, htk=c.htk, norm=c.mel_norm).T  # fmt: skip
    mel, energy = [], []
    with one_blas_thread():
        for spec in stft_blocks(y, config):
            power = spec.real**2 + spec.imag**2  # |X|², without the sqrt of np.abs
            mel.append(np.dot(power.astype(np.float32), basis_t))
            energy.append(frame_energy_db(power, config))
    return np.concatenate(mel).T, np.concatenate(energy)


def frame_energy_db(p: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Mean square (n_frames,) in dB (floored at -100) of each windowed frame, from its
    one-sided power spectrum ``p = |X|²`` (n_frames, 1 + n_fft // 2), by Parseval."""
    full = 2.0 * p.sum(axis=-1, dtype=np.float64) - p[:, 0]
    if config.n_fft % 2 == 0:  # the Nyquist bin, like DC, appears once
        full -= p[:, -1]
    ms = full * _energy_norm(config.window, config.win_length, config.n_fft)
    return 10.0 * np.log10(np.maximum(ms, AMIN))


@functools.lru_cache(maxsize=16)
def _dct_matrix(n_mels: int, n_mfcc: int, lifter: float) -> np.ndarray:
    """Rows 0..n_mfcc-1 of the orthonormal DCT-II (``scipy.fft.dct(x, type=2, norm="ortho")
    = C @ x``) over ``n_mels`` points, rows scaled by librosa's lifter; float64, cached."""
    k = np.arange(n_mfcc, dtype=np.float64)[:, np.newaxis]
    m = np.arange(n_mels, dtype=np.float64)[np.newaxis, :]
    C = np.cos(np.pi * k * (2.0 * m + 1.0) / (2.0 * n_mels)) * math.sqrt(2.0 / n_mels)
    C[0] *= math.sqrt(0.5)
    if lifter > 0:
        C *= 1.0 + (lifter / 2.0) * np.sin(np.pi * (k + 1.0) / lifter)
    C.setflags(write=False)
    return C


def cepstra(mel: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """MFCC ``(n_mfcc, n_frames)`` from a mel power spectrogram ``(n_mels, n_frames)``:
    librosa's ``power_to_db(mel, ref=1.0, amin=AMIN, top_db=config.top_db)`` bit for bit,
    then ``feature.mfcc``'s DCT and lifter as one float64 product, in the input's dtype."""
    log_spec = 10.0 * np.log10(np.maximum(AMIN, mel))  # ref=1.0: librosa subtracts 0 dB
    if config.top_db is not None:
        log_spec = np.maximum(log_spec, log_spec.max() - config.top_db)
    C = _dct_matrix(log_spec.shape[-2], config.n_mfcc, float(config.lifter))
    with one_blas_thread():
        M = C @ log_spec.astype(np.float64, copy=False)
    return M.astype(log_spec.dtype, copy=False)


@functools.lru_cache(maxsize=16)
def _savgol_coeffs(width: int, order: int) -> np.ndarray:
    """``scipy.signal.savgol_coeffs(width, order, deriv=order)`` bit for bit (same ``gelsd``)."""
    pos = width // 2
    x = np.arange(-pos, width - pos, dtype=np.float64)[::-1]  # reversed: for a convolution
    A = x ** np.arange(order + 1, dtype=np.float64).reshape(-1, 1)
    y = np.zeros(order + 1, dtype=np.float64)
    y[order] = float(math.factorial(order)) / (1.0**order)
    rcond = np.finfo(A.dtype).eps * max(A.shape[-1], A.shape[-2])
    coeffs = np.linalg.lstsq(A, y, rcond=rcond)[0]
    coeffs.setflags(write=False)
    return coeffs


# scipy.ndimage's boundary modes as np.pad modes (for pads shorter than the line)
_PAD_MODE = {"nearest": "edge", "mirror": "reflect", "constant": "constant", "wrap": "wrap"}


def _convolve_frames(x: np.ndarray, coeffs: np.ndarray, mode: str) -> np.ndarray:
    """``scipy.ndimage.convolve1d(x, coeffs, axis=-1, mode=mode)`` bit for bit, in ndimage's
    order (``NI_Correlate1D``) for (anti)symmetric filters on lines longer than the half-width."""
    n, fw = x.shape[-1], coeffs[::-1] - 0.0  # float64: convolve1d correlates with the reverse
    size1 = fw.size // 2
    eps = np.finfo(np.float64).eps
    pairs = [(fw[size1 + i], fw[size1 - i]) for i in range(1, (fw.size + 1) // 2)]
    sym = 1 if all(abs(a - b) <= eps for a, b in pairs) else -all(
        abs(a + b) <= eps for a, b in pairs)  # fmt: skip
    if n <= size1 or fw.size % 2 == 0 or not sym:
        import scipy.ndimage
        return scipy.ndimage.convolve1d(x, coeffs, axis=-1, mode=mode, cval=0.0)
    line = _pad(x, size1, _PAD_MODE[mode], np.float64)

    def tap(j: int) -> np.ndarray:  # iline[j] for every output position
        return line[..., size1 + j : size1 + j + n]
    out = tap(0) * fw[size1]
    for j in range(-size1, 0):
        out += (tap(j) + tap(-j) if sym > 0 else tap(j) - tap(-j)) * fw[size1 + j]
    return out.astype(x.dtype, copy=False)


def delta(ceps: np.ndarray, *, width: int, order: int, mode: str) -> np.ndarray:
    """``librosa.feature.delta(ceps, width=width, order=order, mode=mode)`` bit for bit: one
    ``convolve1d`` with cached Savitzky-Golay coefficients, no scipy import; ``"interp"``
    (polynomial fits at the edges) calls ``scipy.signal.savgol_filter`` (not librosa: numba)."""
    if mode == "interp":
        import scipy.signal
        return scipy.signal.savgol_filter(ceps, width, order, deriv=order, axis=-1, mode=mode)
    return _convolve_frames(ceps, _savgol_coeffs(width, order), mode)
