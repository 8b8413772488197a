"""After the cepstra: deltas, energy VAD and CMVN (utterance or sliding). Deltas come
*before* VAD drops frames (Kaldi's ``add-deltas | select-voiced-frames``), CMVN after, on
the kept frames only, so silence does not bias the statistics.
"""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = ["delta", "digital_silence", "sliding_cmvn", "utterance_cmvn", "vad_mask"]

_STD_FLOOR = 1e-8  # CMVN: constant dimensions map to 0 instead of dividing by zero


def vad_mask(energy_db: np.ndarray, *, threshold_db: float, floor_db: float) -> np.ndarray:
    """Energy VAD: a bool mask (n_frames,) of the frames of ``energy_db`` (n_frames,) louder
    than ``max - threshold_db`` and than ``floor_db`` (dB). Relative to the loudest frame,
    not the mean (Kaldi's ``compute-vad``), which depends more on the share of silence."""
    e = np.asarray(energy_db)
    return (e > e.max(initial=-np.inf) - threshold_db) & (e > floor_db)


def digital_silence(energy_db: np.ndarray, *, silence_db: float, min_frames: int) -> np.ndarray:
    """True (n_frames,) for the frames of ``energy_db`` (n_frames,) inside runs of at least
    ``min_frames`` frames at the ``silence_db`` floor (-100 dB): digital silence (an edit, a
    dropout, padding), identical frames a GMM fits with a spike of absurd likelihood."""
    at_floor = np.asarray(energy_db) <= silence_db
    # run boundaries: +1 where a run starts, -1 just after it ends
    edges = np.diff(np.concatenate(([0], at_floor.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    long = ends - starts >= min_frames
    inside = np.zeros(at_floor.size + 1, dtype=np.int64)
    inside[starts[long]] += 1  # runs never share an end point
    inside[ends[long]] -= 1
    return np.cumsum(inside[:-1]) > 0


def utterance_cmvn(x: np.ndarray, *, norm_vars: bool = True) -> np.ndarray:
    """Per-dimension mean (and, with ``norm_vars``, std. dev., floored at 1e-8 so a constant
    dimension becomes 0) normalisation of ``x`` (n_frames, n_dims) over all frames, float64."""
    x64 = np.asarray(x, dtype=np.float64)
    out = x64 - x64.mean(axis=0)
    if norm_vars:
        std = np.sqrt(np.mean(out * out, axis=0))
        out /= np.maximum(std, _STD_FLOOR)
    return out


def sliding_cmvn(x: np.ndarray, *, window: int = 300, norm_vars: bool = True) -> np.ndarray:
    """:func:`utterance_cmvn` over a sliding window of frames, float64 (Kaldi's
    ``apply-cmvn-sliding --center=true``): frame ``t``'s window is the frames
    ``[t - window // 2, t - window // 2 + window)``, shifted to stay inside the clip."""
    x64 = np.asarray(x, dtype=np.float64)
    n = x64.shape[0]
    if n == 0:
        return x64.copy()
    w = min(int(window), n)
    start = np.clip(np.arange(n) - int(window) // 2, 0, n - w)
    end = start + w

    def window_sum(v: np.ndarray) -> np.ndarray:  # Σ v over each frame's window, (n, n_dims)
        c = np.zeros((n + 1, v.shape[1]))
        np.cumsum(v, axis=0, out=c[1:])
        return c[end] - c[start]

    out = x64 - window_sum(x64) / w
    if norm_vars:
        # Σ(x - m)² from cumulative sums of x and x² loses precision: use the shifted data
        xc = x64 - x64.mean(axis=0)
        m = window_sum(xc) / w
        var = window_sum(xc * xc) / w - m * m
        out /= np.maximum(np.sqrt(np.maximum(var, 0.0)), _STD_FLOOR)
        # a window constant in a dimension has a variance of rounding noise: 0, as utterance_cmvn
        flat = var <= 1e-12 * np.mean(xc * xc, axis=0) + 1e-300
        out[flat] = 0.0
    return out


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
    pad = [(0, 0)] * (x.ndim - 1) + [(size1, size1)]
    line = np.pad(np.asarray(x, dtype=np.float64), pad, mode=_PAD_MODE[mode])

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

        return scipy.signal.savgol_filter(
            ceps, width, deriv=order, axis=-1, mode=mode, polyorder=order
        )
    return _convolve_frames(ceps, _savgol_coeffs(width, order), mode)
