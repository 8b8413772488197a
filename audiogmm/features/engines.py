"""Who computes the frames: the numpy restatement (:mod:`.spectral`, default) or librosa.

``engine="librosa"`` calls ``librosa.stft``, ``feature.melspectrogram``, ``power_to_db``,
``feature.mfcc`` and ``feature.delta`` on the same frame grid (centred with ``np.pad`` as
``librosa.stft`` pads, in blocks of frames); the engines differ by float32 rounding only
(``tests/test_engines.py``). ``config.extras`` are always librosa's. librosa is imported
only when a config asks for it.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import FeatureError, ParameterError
from .config import FeatureConfig
from .postprocess import delta as numpy_delta
from .spectral import AMIN, cepstra, frame_mean_square, mel_and_energy, padded_signal

__all__ = ["cepstra_and_energy", "delta", "extra_frames"]

_BLOCK_FRAMES = 2048  # STFT frames per librosa.stft call (bounds memory on long files)


def _librosa():
    """The librosa module, imported on first use (1-1.5 s, and numba's compile or cache load)."""
    try:
        import librosa
    except ImportError:
        raise ParameterError(
            "engine='librosa' and extras need librosa, which is not installed "
            "(pip install librosa, a dependency of audiogmm)"
        ) from None
    return librosa


def cepstra_and_energy(y: np.ndarray, config: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """MFCC ``(n_mfcc, n_frames)`` and frame energy in dB ``(n_frames,)`` by ``config.engine``,
    from the (pre-emphasised) float32 waveform ``y`` (n_samples,) at ``config.sample_rate``."""
    if config.engine != "librosa":
        mel, energy = mel_and_energy(y, config)
        return cepstra(mel, config), energy
    librosa = _librosa()
    ms = []

    def powers():  # one block at a time: memory stays bounded on long files
        for X in _stft_blocks(librosa, y, config):
            power = np.abs(X) ** 2
            ms.append(frame_mean_square(power.T, config))
            yield power

    log_mel = _mel_db(powers(), config)
    ms = np.concatenate(ms)
    ceps = librosa.feature.mfcc(S=log_mel, n_mfcc=config.n_mfcc, lifter=config.lifter)
    return ceps, 10.0 * np.log10(np.maximum(ms, AMIN))


def _stft_blocks(librosa, y: np.ndarray, config: FeatureConfig):
    """``librosa.stft`` of the centred signal, a block of frames ``(n_bins, n)`` at a time
    (the window in float32, as the numpy engine's)."""
    n_fft, hop = config.n_fft, config.hop_length
    y = padded_signal(y, config)
    win = librosa.filters.get_window(config.window, config.win_length, fftbins=True)
    win = librosa.util.pad_center(win, size=n_fft).astype(np.float32)
    n_frames = 1 + (y.size - n_fft) // hop
    for b in range(0, n_frames, _BLOCK_FRAMES):
        e = min(b + _BLOCK_FRAMES, n_frames)
        seg = y[b * hop : (e - 1) * hop + n_fft]
        yield librosa.stft(seg, n_fft=n_fft, hop_length=hop, window=win, center=False)


def delta(ceps: np.ndarray, *, width: int, order: int, mode: str, engine: str) -> np.ndarray:
    """Δ (``order=1``) or ΔΔ of ``(n, n_frames)`` rows: librosa's or its numpy restatement."""
    if engine != "librosa":
        return numpy_delta(ceps, width=width, order=order, mode=mode)
    return _librosa().feature.delta(ceps, width=width, order=order, mode=mode)


def extra_frames(y: np.ndarray, config: FeatureConfig, n_frames: int) -> np.ndarray:
    """The rows of ``config.extras`` on the cepstra's ``n_frames`` frames, float32.

    ``y`` (n_samples,) is the waveform before pre-emphasis. Spectral extras read the
    config's magnitude spectrogram, held whole (``2 (n_fft + 2)`` bytes per frame, about
    0.7 GB per hour at the ``sound`` preset); ``zero_crossing_rate`` and ``rms`` read
    ``n_fft``-sample frames of ``y``; ``onset_strength`` the mel spectrogram in dB.
    FeatureError when librosa refuses the input, naming the feature.
    """
    librosa = _librosa()
    sr, n_fft, hop = config.sample_rate, config.n_fft, config.hop_length
    S = np.empty((1 + n_fft // 2, n_frames), dtype=np.float32)  # |X|, filled block by block
    b = 0
    for X in _stft_blocks(librosa, y, config):
        S[:, b : b + X.shape[1]] = np.abs(X)
        b += X.shape[1]
    grid = dict(sr=sr, n_fft=n_fft, hop_length=hop)
    frames = dict(frame_length=n_fft, hop_length=hop, center=config.center)
    f = librosa.feature
    calls = {
        "spectral_contrast": lambda kw: f.spectral_contrast(S=S, **grid, **kw),
        "spectral_flatness": lambda kw: f.spectral_flatness(S=S, **kw),
        "spectral_centroid": lambda kw: f.spectral_centroid(S=S, **grid),
        "spectral_bandwidth": lambda kw: f.spectral_bandwidth(S=S, **grid, **kw),
        "spectral_rolloff": lambda kw: f.spectral_rolloff(S=S, **grid, **kw),
        "chroma_stft": lambda kw: f.chroma_stft(S=S**2, **grid, **kw),
        "zero_crossing_rate": lambda kw: f.zero_crossing_rate(y, **frames, **kw),
        "rms": lambda kw: f.rms(y=y, **frames, pad_mode=config.pad_mode),
        "onset_strength": lambda kw: librosa.onset.onset_strength(
            S=_mel_db([S**2], config), **grid, **kw
        ),
    }
    rows = []
    for name, args in config.extras:
        try:
            r = np.asarray(calls[name](dict(args)), dtype=np.float32)
        except librosa.util.exceptions.ParameterError as e:
            raise FeatureError(f"extras: librosa's {name} refused the input: {e}") from None
        r = r.reshape(-1, r.shape[-1])
        if r.shape[-1] != n_frames:  # the grid is the config's by construction
            raise FeatureError(f"extras: {name} gave {r.shape[-1]} frames, expected {n_frames}")
        rows.append(r)
    return np.concatenate(rows, axis=0)


def _mel_db(powers, config: FeatureConfig) -> np.ndarray:
    """The config's mel spectrogram in dB from blocks of |X|² (what the cepstra are computed
    from), by librosa."""
    librosa = _librosa()
    mel = np.concatenate([librosa.feature.melspectrogram(
        S=p, sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels,
        fmin=config.fmin, fmax=config.fmax, htk=config.htk, norm=config.mel_norm,
    ) for p in powers], axis=1)  # fmt: skip
    return librosa.power_to_db(mel, ref=1.0, amin=AMIN, top_db=config.top_db)
