"""Who computes the frames: the numpy restatement (:mod:`.spectral`, default) or librosa's
``stft``, ``feature.melspectrogram``, ``power_to_db``, ``feature.mfcc`` and ``feature.delta``
on the same frames and window (:func:`.spectral.stft_blocks`); they differ by float32 rounding
only. ``config.extras`` are always librosa's, imported only when a config asks for it.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import FeatureError, ParameterError
from .config import FeatureConfig
from .postprocess import delta as numpy_delta
from .spectral import AMIN, cepstra, frame_energy_db, mel_and_energy, stft_blocks

__all__ = ["cepstra_and_energy", "delta", "extra_frames"]


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
    energy = []

    def powers():  # one block at a time: memory stays bounded on long files
        for X in stft_blocks(y, config, librosa.stft):
            power = np.abs(X) ** 2
            energy.append(frame_energy_db(power, config))
            yield power.T

    log_mel = _mel_db(powers(), config)
    ceps = librosa.feature.mfcc(S=log_mel, n_mfcc=config.n_mfcc, lifter=config.lifter)
    return ceps, np.concatenate(energy)


def delta(ceps: np.ndarray, *, width: int, order: int, mode: str, engine: str) -> np.ndarray:
    """Δ (``order=1``) or ΔΔ of ``(n, n_frames)`` rows: librosa's or its numpy restatement."""
    if engine != "librosa":
        return numpy_delta(ceps, width=width, order=order, mode=mode)
    return _librosa().feature.delta(ceps, width=width, order=order, mode=mode)


def extra_frames(y: np.ndarray, config: FeatureConfig, n_frames: int) -> np.ndarray:
    """The rows of ``config.extras`` on the cepstra's ``n_frames`` frames, float32, from ``y``
    (n_samples,) before pre-emphasis: the magnitude spectrogram held whole (0.7 GB per hour at
    the ``sound`` preset), or frames of ``y``. FeatureError, naming the feature, when librosa
    refuses the input."""
    librosa = _librosa()
    S = np.empty((1 + config.n_fft // 2, n_frames), dtype=np.float32)  # |X|, held whole
    b = 0
    for X in stft_blocks(y, config, librosa.stft):
        S[:, b : b + len(X)] = np.abs(X).T
        b += len(X)
    grid = dict(sr=config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length)
    frames = dict(frame_length=config.n_fft, hop_length=config.hop_length, center=config.center)
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
    """The config's mel spectrogram in dB from blocks of |X|² ``(n_bins, n)``, by librosa."""
    librosa = _librosa()
    mel = np.concatenate([librosa.feature.melspectrogram(
        S=p, sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels,
        fmin=config.fmin, fmax=config.fmax, htk=config.htk, norm=config.mel_norm,
    ) for p in powers], axis=1)  # fmt: skip
    return librosa.power_to_db(mel, ref=1.0, amin=AMIN, top_db=config.top_db)
