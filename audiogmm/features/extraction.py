"""``extract``: waveform or file in, frames ``(n_frames, n_dims)`` out::

    waveform ─ pre-emphasis ─ |STFT|² ─ mel filterbank ─ log ─ DCT + lifter
             ─ [c0 → frame log-energy] ─ Δ/ΔΔ ─ energy VAD (drop frames) ─ CMVN

by numpy (:mod:`.spectral`) or, ``engine="librosa"``, librosa's own functions; ``extras``
are always librosa's, imported only when a config asks for it. As Kaldi's ``add-deltas |
select-voiced-frames``, CMVN sees only the kept frames: silence does not bias it."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from typing import Optional, Union

import numpy as np

from .. import audio
from ..exceptions import AudioError, FeatureError, ParameterError
from .config import DEFAULT_PRESET, PRESETS, FeatureConfig
from .spectral import AMIN, cepstra, frame_energy_db, mel_and_energy, stft_blocks
from .spectral import delta as numpy_delta

__all__ = ["SILENT_RUN_S", "derivable", "derive", "digital_silence", "extract", "extract_several",
           "extraction_roots", "sliding_cmvn", "utterance_cmvn", "vad_mask"]  # fmt: skip

logger = logging.getLogger(__name__)

#: Runs of digital silence at least this long (s) are dropped (:func:`digital_silence`):
#: a second of exact zeros is an edit, a dropout or padding. Shorter ones are the sound's
#: own pauses (the bundled hi-hats decay to zero for up to 0.75 s of their 1 s).
SILENT_RUN_S = 1.0
_SILENCE_DB = 10.0 * float(np.log10(AMIN))  # the energy of an all-zero frame: -100 dB
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
    if not at_floor.any():  # most clips: no frame at the floor
        return at_floor
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


def _kept_frames(energy: np.ndarray, config: FeatureConfig, where: str) -> np.ndarray:
    """The frames to keep; a clip with none above the floor is refused (``where``: the file)."""
    floor = config.vad_floor_db
    if config.vad:  # VAD also drops the frames below the floor
        keep = vad_mask(energy, threshold_db=config.vad_threshold_db, floor_db=floor)
    else:
        run = max(1, round(SILENT_RUN_S * 1000 / config.hop_ms))
        keep = ~digital_silence(energy, silence_db=_SILENCE_DB, min_frames=run)
    if not (keep & (energy > floor)).any():
        raise FeatureError(f"{where}silent: no frame above the {floor:g} dB energy floor (peak "
                           f"frame energy {energy.max():.1f} dB re full scale, "
                           f"{energy.size} frames)")  # fmt: skip
    kept = energy[keep]
    quiet = float(np.mean((kept <= floor) & (kept > _SILENCE_DB)))
    if quiet > 0.5:  # near-silent hiss (a wrong gain?); VAD never keeps such frames
        logger.warning("%smostly near-silent: %.0f%% of its %d frames are between digital "
                       "silence and the %g dB energy floor; the model of its class will learn "
                       "that hiss", where, 100 * quiet, kept.size, floor)  # fmt: skip
    return keep


def extract(y_or_path: Union[np.ndarray, str, os.PathLike], *,
            config: Optional[FeatureConfig] = None, sr: Optional[int] = None,
            keep_all_frames: bool = False) -> np.ndarray:  # fmt: skip
    """Compute MFCC frames (+ Δ/ΔΔ, VAD, CMVN) from a waveform or an audio file.

    Parameters
    ----------
    y_or_path : np.ndarray [shape=(n_samples,)] or str or os.PathLike
        A mono waveform (in units of full scale, or integers: :func:`audiogmm.audio.as_float`),
        or an audio file.
    config : FeatureConfig, optional
        Defaults to the ``general`` preset.
    sr : int, optional
        A waveform's rate in Hz, resampled to ``config.sample_rate`` (``None``: already at it).
    keep_all_frames : bool
        Keep every frame: do not refuse a silent clip, drop runs of digital silence
        (:data:`SILENT_RUN_S` s or more at -100 dB), nor drop unvoiced frames (``vad``);
        otherwise a clip whose kept frames are mostly near-silent is named in a warning.

    Returns
    -------
    np.ndarray [shape=(n_frames, config.n_dims), dtype=config.dtype]
        One row per kept frame. AudioError for a bad file (named); FeatureError for a
        non-finite or too-short waveform, or a silent clip (no frame above
        ``config.vad_floor_db``) unless *keep_all_frames*; ParameterError otherwise."""
    if config is None:
        config = PRESETS[DEFAULT_PRESET]
    elif not isinstance(config, FeatureConfig):
        raise ParameterError(f"config must be a FeatureConfig, got {type(config).__name__}")
    if isinstance(y_or_path, (str, os.PathLike)):  # one code path for files: extract_several
        (out,) = extract_several(y_or_path, [config], keep_all_frames=keep_all_frames)
        if isinstance(out, Exception):
            raise out
        return out
    else:
        where, y = "", audio.as_float(y_or_path)
        if y.ndim != 1:
            raise ParameterError(f"expected a mono waveform of shape (n_samples,), got {y.shape}")
        peak = float(np.max(np.abs(y))) if y.size else 0.0
        if not np.isfinite(peak):
            raise FeatureError("waveform contains non-finite (NaN or inf) samples")
        if peak > audio.MAX_ABS_SAMPLE:
            raise FeatureError(f"absurd sample values: peak |sample| {peak:.3g} times full "
                               f"scale (limit {audio.MAX_ABS_SAMPLE:g})")  # fmt: skip
        if sr is not None:
            audio.check_rate(sr, "sr")
            y = audio.resample(y, int(sr), config.sample_rate)
        if y.size < config.win_length:
            raise FeatureError(f"clip too short: {y.size} samples at {config.sample_rate} Hz, "
                               f"expected at least one window of {config.win_length} samples "
                               f"({config.win_ms} ms)")  # fmt: skip
    return _frames(y, config, where, keep_all_frames)


def extract_several(path: Union[str, os.PathLike], configs: Sequence[FeatureConfig], *,
                    keep_all_frames: bool = False) -> list[Union[np.ndarray, Exception]]:  # fmt: skip
    """One audio file's features under each of ``configs``, from one decode: each
    bit-identical to :func:`extract` of the file with that config (the same resampling of the
    same decoded blocks, :func:`audiogmm.audio.load_rates`).

    Returns
    -------
    list of np.ndarray [shape=(n_frames, config.n_dims)] or Exception
        In the order of ``configs``: the features, or the AudioError or FeatureError that
        :func:`extract` raises for that config alone (e.g. a clip shorter than one of the
        windows). An AudioError for the whole file (unreadable, bad header) is raised."""
    configs = list(configs)
    if not configs or not all(isinstance(c, FeatureConfig) for c in configs):
        raise ParameterError("configs must be one or more FeatureConfig objects")
    rates = list(dict.fromkeys(c.sample_rate for c in configs))
    waves = dict(zip(rates, audio.load_rates(path, rates)))
    where, out = f"{os.fspath(path)!r}: ", []
    for c in configs:
        try:
            audio.check_length(path, waves[c.sample_rate], c.sample_rate, c.win_length)
            out.append(_frames(waves[c.sample_rate], c, where, keep_all_frames))
        except (AudioError, FeatureError) as exc:
            out.append(exc.with_traceback(None))  # no frames (and their arrays) kept alive
    return out


def _frames(y: np.ndarray, config: FeatureConfig, where: str, keep_all_frames: bool) -> np.ndarray:
    """:func:`extract` of a checked float32 waveform at ``config.sample_rate``; errors begin
    with ``where``."""
    y_in = y  # the extras read the signal before pre-emphasis
    if config.preemphasis > 0:
        y = np.concatenate((y[:1], y[1:] - np.float32(config.preemphasis) * y[:-1]))
    if config.engine == "librosa":
        ceps, energy = _librosa_cepstra(y, config)
    else:
        mel, energy = mel_and_energy(y, config)
        ceps = cepstra(mel, config)
    if config.c0 == "energy":
        ceps[0] = energy
    elif config.c0 == "drop":
        ceps = ceps[1:]
    n_frames, mode = ceps.shape[1], config.delta_mode
    if mode == "interp" and n_frames < config.delta_width:
        mode = "nearest"  # librosa's 'interp' needs >= width frames
    delta = _librosa().feature.delta if config.engine == "librosa" else numpy_delta
    blocks = [ceps] + [delta(ceps, width=config.delta_width, order=order, mode=mode)
                       for order in range(1, config.delta_order + 1)]
    blocks += [_extra_frames(y_in, config, n_frames)] if config.extras else []
    # the one transpose: frames are rows from here on, in C order, so that the CMVN sums
    # run in the same order as on stored features (derive)
    feats = np.ascontiguousarray(np.concatenate(blocks, axis=0).T)
    if not keep_all_frames:
        keep = _kept_frames(energy, config, where)
        if not keep.all():
            feats = feats[keep]
    out = _normalised(feats, config)
    if not np.isfinite(out).all():
        raise FeatureError(f"{where}non-finite feature values (NaN or inf)")
    return out


#: What a config can change and still be computed from another's output (see derivable).
_DERIVABLE_FIELDS = frozenset({"cmvn", "cmvn_window", "cmvn_norm_vars", "dtype", "delta_order"})


@functools.lru_cache(maxsize=64)
def derivable(source: FeatureConfig, target: FeatureConfig) -> bool:
    """Whether :func:`derive` can compute ``target``'s features from ``source``'s: ``source``
    applies no CMVN, ``target`` keeps no more delta orders (each order's columns are computed
    alone), and they differ in nothing else but CMVN and ``dtype``. Kept per pair (the configs
    are frozen): :func:`derive` asks once per clip, and the comparison costs 0.1-0.5 ms."""
    fewer = target.delta_order < source.delta_order and not source.extras  # extras follow Δs
    if source.cmvn != "none" or not (fewer or target.delta_order == source.delta_order):
        return False
    return source.replace(**{k: getattr(target, k) for k in _DERIVABLE_FIELDS}) == target


def extraction_roots(configs: Sequence[FeatureConfig]) -> list[int]:
    """For each config, the index of the one whose extraction its features are computed from:
    the first root (a config no other one derives strictly) equal to it or deriving it, so
    front ends that differ only in CMVN or delta orders cost one decode and one STFT in all."""
    roots = [i for i, c in enumerate(configs)  # no other config derives it strictly
             if not any(o != c and derivable(o, c) and not derivable(c, o) for o in configs)]
    # derivable is transitive, so every config has a root that equals or derives it
    return [next(r for r in roots if configs[r] == c or derivable(configs[r], c)) for c in configs]


def derive(X: np.ndarray, source: FeatureConfig, target: FeatureConfig) -> np.ndarray:
    """``target``'s features (n_frames, target.n_dims) from ``source``'s ``X`` (n_frames,
    n_dims) of one clip, bit-identical to :func:`extract` with ``target`` (the frames before
    CMVN lead ``source``'s output). ParameterError unless :func:`derivable`."""
    if not derivable(source, target):
        raise ParameterError("target features differ from the source's before normalisation")
    return _normalised(np.ascontiguousarray(X[:, : target.n_dims], dtype=np.float32), target)


def _normalised(feats: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """``feats`` (n_frames, n_dims) after the config's CMVN, in its dtype, C order."""
    if config.cmvn == "utterance":
        feats = utterance_cmvn(feats, norm_vars=config.cmvn_norm_vars)
    elif config.cmvn == "sliding":
        feats = sliding_cmvn(feats, window=config.cmvn_window, norm_vars=config.cmvn_norm_vars)
    return np.ascontiguousarray(feats, dtype=config.dtype)


def _librosa():
    """The librosa module, imported on first use (1-1.5 s, and numba's compile or cache load)."""
    try:
        import librosa
    except ImportError:
        raise ParameterError("engine='librosa' and extras need librosa, which is not installed "
                             "(pip install librosa, a dependency of audiogmm)") from None
    return librosa


def _librosa_cepstra(y: np.ndarray, config: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """MFCC ``(n_mfcc, n_frames)`` and frame energy in dB ``(n_frames,)`` by librosa."""
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


def _extra_frames(y: np.ndarray, config: FeatureConfig, n_frames: int) -> np.ndarray:
    """The rows of ``config.extras`` on the cepstra's ``n_frames`` frames, float32, from ``y``
    (n_samples,) before pre-emphasis; FeatureError, naming the feature, if librosa refuses it."""
    librosa = _librosa()
    # |X| held whole (0.7 GB per hour at the ``sound`` preset)
    S = np.empty((1 + config.n_fft // 2, n_frames), dtype=np.float32)
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
            S=_mel_db([S**2], config), **grid, **kw),
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
