"""``extract``: waveform or file in, frames ``(n_frames, n_dims)`` out::

    waveform ─ pre-emphasis ─ |STFT|² ─ mel filterbank ─ log ─ DCT + lifter
             ─ [c0 → frame log-energy] ─ Δ/ΔΔ ─ energy VAD (drop frames) ─ CMVN
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Optional, Union

import numpy as np

from .. import audio
from ..exceptions import FeatureError, ParameterError
from .config import FeatureConfig
from .engines import cepstra_and_energy, delta, extra_frames
from .postprocess import digital_silence, sliding_cmvn, utterance_cmvn, vad_mask
from .presets import DEFAULT_PRESET, PRESETS
from .spectral import AMIN

__all__ = ["SILENT_RUN_S", "derivable", "derive", "extract", "extraction_roots"]

logger = logging.getLogger(__name__)


def _describe(source: Optional[str]) -> str:
    return f"{source!r}: " if source else ""


def _compute(y: np.ndarray, config: FeatureConfig, source: Optional[str], keep_all: bool
             ) -> np.ndarray:  # fmt: skip
    """Features of a validated float32 waveform already at ``config.sample_rate``."""
    y_in = y  # the extras read the signal before pre-emphasis
    if config.preemphasis > 0:
        y = np.concatenate((y[:1], y[1:] - np.float32(config.preemphasis) * y[:-1]))
    ceps, energy = cepstra_and_energy(y, config)
    if config.c0 == "energy":
        ceps[0] = energy
    elif config.c0 == "drop":
        ceps = ceps[1:]
    n_frames = ceps.shape[1]
    mode = config.delta_mode
    if mode == "interp" and n_frames < config.delta_width:
        mode = "nearest"  # librosa's 'interp' needs >= width frames
    blocks = [ceps] + [delta(ceps, width=config.delta_width, order=order, mode=mode,
                             engine=config.engine) for order in range(1, config.delta_order + 1)]
    if config.extras:
        blocks.append(extra_frames(y_in, config, n_frames))
    # the one transpose: frames are rows from here on, in C order, so that the CMVN sums
    # run in the same order as on stored features (derive)
    feats = np.ascontiguousarray(np.concatenate(blocks, axis=0).T)
    if not keep_all:
        keep = _kept_frames(energy, config, source)
        if not keep.all():
            feats = feats[keep]
    out = _normalised(feats, config)
    if not np.isfinite(out).all():
        raise FeatureError(f"{_describe(source)}non-finite feature values (NaN or inf)")
    return out


#: Runs of digital silence at least this long (s) are dropped (:func:`digital_silence`):
#: a second of exact zeros is an edit, a dropout or padding. Shorter ones are the sound's
#: own pauses (the bundled hi-hats decay to zero for up to 0.75 s of their 1 s).
SILENT_RUN_S = 1.0
_SILENCE_DB = 10.0 * float(np.log10(AMIN))  # the energy of an all-zero frame: -100 dB


def _kept_frames(energy: np.ndarray, config: FeatureConfig, source: Optional[str]) -> np.ndarray:
    """The frames to keep, whatever the preset; a clip with none above the floor is refused."""
    floor = config.vad_floor_db
    if config.vad:  # VAD also drops the frames below the floor
        keep = vad_mask(energy, threshold_db=config.vad_threshold_db, floor_db=floor)
    else:
        run = max(1, round(SILENT_RUN_S * 1000 / config.hop_ms))
        keep = ~digital_silence(energy, silence_db=_SILENCE_DB, min_frames=run)
    if not (keep & (energy > floor)).any():
        raise FeatureError(
            f"{_describe(source)}silent: no frame above the {floor:g} dB energy floor (peak "
            f"frame energy {energy.max():.1f} dB re full scale, {energy.size} frames)"
        )
    kept = energy[keep]
    quiet = float(np.mean((kept <= floor) & (kept > _SILENCE_DB)))
    if quiet > 0.5:  # near-silent hiss (a wrong gain?); VAD never keeps such frames
        logger.warning(
            "%smostly near-silent: %.0f%% of its %d frames are between digital silence and "
            "the %g dB energy floor; the model of its class will learn that hiss",
            _describe(source), 100 * quiet, kept.size, floor,
        )  # fmt: skip
    return keep


def extract(y_or_path: Union[np.ndarray, str, os.PathLike], *,
            config: Optional[FeatureConfig] = None, sr: Optional[int] = None,
            keep_all_frames: bool = False) -> np.ndarray:  # fmt: skip
    """Compute MFCC frames (+ Δ/ΔΔ, VAD, CMVN) from a waveform or an audio file.

    Parameters
    ----------
    y_or_path : np.ndarray [shape=(n_samples,)] or str or os.PathLike
        A mono waveform (float in units of full scale, or integer samples scaled as
        soundfile does: :func:`audiogmm.audio.as_float`), or an audio file.
    config : FeatureConfig, optional
        Defaults to the ``general`` preset.
    sr : int, optional
        A waveform's rate in Hz, resampled (soxr HQ) to ``config.sample_rate`` when it
        differs (``None``: already at it). Ignored for a path.
    keep_all_frames : bool
        Keep every frame: do not refuse a silent clip, drop runs of digital silence
        (:data:`SILENT_RUN_S` s or more at -100 dB), nor drop unvoiced frames (``vad``);
        otherwise a clip whose kept frames are mostly near-silent is named in a warning.

    Returns
    -------
    np.ndarray [shape=(n_frames, config.n_dims), dtype=config.dtype]
        One row per kept frame (20 ms apart in the default ``general`` preset).

    Raises
    ------
    AudioError, FeatureError, ParameterError
        A bad file (named); a non-finite or too-short waveform, or a silent clip (no frame
        above ``config.vad_floor_db``) unless *keep_all_frames*; an invalid argument.

    Examples
    --------
    >>> y = (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
    >>> extract(y, sr=16000).shape
    (51, 26)
    """
    if config is None:
        config = PRESETS[DEFAULT_PRESET]
    elif not isinstance(config, FeatureConfig):
        raise ParameterError(f"config must be a FeatureConfig, got {type(config).__name__}")
    if isinstance(y_or_path, (str, os.PathLike)):
        source: Optional[str] = os.fspath(y_or_path)
        y = audio.load(source, sr=config.sample_rate, min_samples=config.win_length)
    else:
        source = None
        y = np.asarray(y_or_path)
        if y.ndim != 1:
            raise ParameterError(f"expected a mono waveform of shape (n_samples,), got {y.shape}")
        y = audio.as_float(y)
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
            raise FeatureError(
                f"clip too short: {y.size} samples at {config.sample_rate} Hz, expected at least "
                f"one window of {config.win_length} samples ({config.win_ms} ms)"
            )
    return _compute(y, config, source, bool(keep_all_frames))


#: What a config can change and still be computed from another's output: the
#: normalisation applied last to the final frames, the output dtype, and how many
#: delta orders are kept (each order's columns are computed independently).
_DERIVABLE_FIELDS = frozenset({"cmvn", "cmvn_window", "cmvn_norm_vars", "dtype", "delta_order"})


def derivable(source: FeatureConfig, target: FeatureConfig) -> bool:
    """Whether :func:`derive` can compute ``target``'s features from ``source``'s: ``source``
    applies no CMVN, ``target`` keeps no more delta orders, and they differ in nothing else
    but CMVN and ``dtype`` (``target``'s frames before CMVN lead ``source``'s output)."""
    fewer = target.delta_order < source.delta_order and not source.extras  # extras follow Δs
    if source.cmvn != "none" or not (fewer or target.delta_order == source.delta_order):
        return False
    a, b = source.to_dict(), target.to_dict()
    return all(a[k] == b[k] for k in a if k not in _DERIVABLE_FIELDS)


def extraction_roots(configs: Sequence[FeatureConfig]) -> list[int]:
    """For each config, the index of the one whose extraction its features are computed from:
    the first root (a config no other one derives strictly) equal to it or deriving it, so
    front ends that differ only in CMVN or delta orders cost one decode and one STFT in all."""

    def strictly(a: FeatureConfig, b: FeatureConfig) -> bool:
        return a != b and derivable(a, b) and not derivable(b, a)

    roots = [i for i, c in enumerate(configs) if not any(strictly(o, c) for o in configs)]
    # derivable is transitive, so every config has a root that equals or derives it
    return [next(r for r in roots if configs[r] == c or derivable(configs[r], c)) for c in configs]


def derive(X: np.ndarray, source: FeatureConfig, target: FeatureConfig) -> np.ndarray:
    """``target``'s features (n_frames, target.n_dims) from ``source``'s ``X`` (n_frames,
    n_dims) of one clip, bit-identical to :func:`extract` with ``target``: the frames before
    CMVN lead ``source``'s output exactly, in either dtype. ParameterError unless
    :func:`derivable`."""
    if not derivable(source, target):
        raise ParameterError("target features differ from the source's before normalisation")
    # exactly the frames before CMVN: static cepstra, then each delta order
    return _normalised(np.ascontiguousarray(X[:, : target.n_dims], dtype=np.float32), target)


def _normalised(feats: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """``feats`` (n_frames, n_dims) after the config's CMVN, in its dtype, C order."""
    if config.cmvn == "utterance":
        feats = utterance_cmvn(feats, norm_vars=config.cmvn_norm_vars)
    elif config.cmvn == "sliding":
        feats = sliding_cmvn(feats, window=config.cmvn_window, norm_vars=config.cmvn_norm_vars)
    return np.ascontiguousarray(feats, dtype=config.dtype)
