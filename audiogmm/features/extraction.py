"""``extract``: waveform or file in, frames out, ``(n_frames, n_dims)``.

Pipeline (frames are rows once it leaves librosa)::

    waveform ─ pre-emphasis ─ |STFT|² ─ mel filterbank ─ log ─ DCT + lifter
             ─ [c0 → frame log-energy] ─ Δ/ΔΔ ─ energy VAD (drop frames) ─ CMVN
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Optional, Union

import numpy as np

from .. import audio
from ..exceptions import FeatureError, ParameterError
from .config import DEFAULT_PRESET, PRESETS, FeatureConfig, is_integral
from .engines import cepstra_and_energy, delta, extra_frames
from .postprocess import sliding_cmvn, utterance_cmvn, vad_mask

__all__ = ["derivable", "derive", "extract", "extraction_roots"]


def _describe(source: Optional[str]) -> str:
    return f"{source!r}: " if source else ""


def _compute(
    y: np.ndarray, config: FeatureConfig, source: Optional[str], keep_all: bool
) -> np.ndarray:
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
    blocks = [ceps]
    if config.delta_order > 0:
        mode = config.delta_mode
        if mode == "interp" and n_frames < config.delta_width:
            mode = "nearest"  # librosa's 'interp' needs >= width frames
        for order in range(1, config.delta_order + 1):
            blocks.append(delta(ceps, width=config.delta_width, order=order, mode=mode,
                                engine=config.engine))  # fmt: skip
    if config.extras:
        blocks.append(extra_frames(y_in, config, n_frames))
    # the one transpose: frames are rows from here on, in C order, so that the CMVN sums
    # run in the same order as on stored features (derive)
    feats = np.ascontiguousarray(np.concatenate(blocks, axis=0).T)
    if config.vad and not keep_all:
        mask = vad_mask(energy, threshold_db=config.vad_threshold_db, floor_db=config.vad_floor_db)
        if not mask.any():
            raise FeatureError(
                f"{_describe(source)}no voiced frame: all {n_frames} frames are below "
                f"max(energy) - {config.vad_threshold_db} dB or below the {config.vad_floor_db} dB "
                f"floor (peak frame energy {energy.max():.1f} dB re full scale); the clip is "
                "silent or nearly so (to keep such clips, turn VAD off: a --config of "
                '{"vad": false}, or keep_all_frames=True in Python).'
            )
        feats = feats[mask]
    if config.cmvn == "utterance":
        feats = utterance_cmvn(feats, norm_vars=config.cmvn_norm_vars)
    elif config.cmvn == "sliding":
        feats = sliding_cmvn(feats, window=config.cmvn_window, norm_vars=config.cmvn_norm_vars)
    out = np.ascontiguousarray(feats, dtype=config.dtype)
    if not np.isfinite(out).all():
        raise FeatureError(f"{_describe(source)}non-finite feature values (NaN or inf)")
    return out


def extract(
    y_or_path: Union[np.ndarray, str, os.PathLike],
    *,
    config: Optional[FeatureConfig] = None,
    sr: Optional[int] = None,
    keep_all_frames: bool = False,
) -> np.ndarray:
    """Compute MFCC frames (+ Δ/ΔΔ, VAD, CMVN) from a waveform or an audio file.

    Parameters
    ----------
    y_or_path : np.ndarray [shape=(n_samples,)] or str or os.PathLike
        A mono waveform, or an audio file (loaded with :func:`audiogmm.audio.load`
        at ``config.sample_rate``).
    config : FeatureConfig, optional
        Defaults to the ``general`` preset (``FeatureConfig()``).
    sr : int > 0, optional
        Sampling rate of a waveform in Hz; it is resampled (soxr HQ) when it
        differs from ``config.sample_rate``. ``None`` means the waveform is
        already at ``config.sample_rate``. Ignored for a path (the file's header
        gives the rate).
    keep_all_frames : bool
        Do not drop unvoiced frames, even when ``config.vad`` is on.

    Returns
    -------
    np.ndarray [shape=(n_frames, config.n_dims), dtype=config.dtype]
        One row per kept frame (20 ms apart in the default ``general`` preset).

    Raises
    ------
    AudioError
        For file problems (missing, corrupt, empty, shorter than one window);
        the message names the file.
    FeatureError
        Non-finite or too-short waveform, or no voiced frame (VAD) unless
        *keep_all_frames*.
    ParameterError
        Invalid *config*, *sr* or waveform shape.

    See Also
    --------
    FeatureConfig.preset, audiogmm.cache.extract_many

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = (0.1 * rng.standard_normal(16000)).astype(np.float32)
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
        if not (np.issubdtype(y.dtype, np.floating) or np.issubdtype(y.dtype, np.integer)):
            raise ParameterError(f"expected a real-valued waveform, got dtype {y.dtype}")
        y = y.astype(np.float32, copy=False)
        if not np.isfinite(y).all():
            raise FeatureError("waveform contains non-finite (NaN or inf) samples")
        if y.size and float(np.max(np.abs(y))) > audio.MAX_ABS_SAMPLE:
            raise FeatureError(
                f"absurd sample values: peak |sample| {float(np.max(np.abs(y))):.3g} times full "
                f"scale (limit {audio.MAX_ABS_SAMPLE:g})"
            )
        if sr is not None:
            if isinstance(sr, bool) or not is_integral(sr) or sr <= 0:
                raise ParameterError(f"sr must be a positive integer (Hz), got {sr!r}")
            if int(sr) != config.sample_rate:
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
    """Whether :func:`derive` can compute ``target``'s features from ``source``'s.

    True when ``source`` applies no CMVN, ``target`` keeps no more delta orders than
    ``source``, and the two configs differ in nothing else but the CMVN fields and
    ``dtype``: ``target``'s frames before normalisation are then the leading columns
    of ``source``'s output.
    """
    if source.cmvn != "none" or target.delta_order > source.delta_order:
        return False
    if source.extras and target.delta_order != source.delta_order:
        return False  # the extras' columns follow the deltas: slicing would drop them
    a, b = source.to_dict(), target.to_dict()
    return all(a[k] == b[k] for k in a if k not in _DERIVABLE_FIELDS)


def extraction_roots(configs: Sequence[FeatureConfig]) -> list[int]:
    """For each config, the index of the one whose extraction its features are computed from.

    The roots are the configs that no other one derives strictly (:func:`derivable` one
    way only); each config maps to the first root equal to it or deriving it. So front
    ends that differ only in CMVN or in delta orders (a fused model's members, model
    selection's candidates) cost one decode and one STFT in all.

    Parameters
    ----------
    configs : sequence of FeatureConfig

    Returns
    -------
    list of int
        ``roots[i]`` is ``i`` or the index of a config with ``derivable(configs[roots[i]],
        configs[i])``; equal configs share a root.
    """

    def strictly(a: FeatureConfig, b: FeatureConfig) -> bool:
        return a != b and derivable(a, b) and not derivable(b, a)

    roots = [i for i, c in enumerate(configs) if not any(strictly(o, c) for o in configs)]
    # derivable is transitive, so every config has a root that equals or derives it
    return [next(r for r in roots if configs[r] == c or derivable(configs[r], c)) for c in configs]


def derive(X: np.ndarray, source: FeatureConfig, target: FeatureConfig) -> np.ndarray:
    """``target``'s features from ``source``'s output, equal to :func:`extract` with ``target``.

    Model selection tries front ends that differ only in normalisation (for example
    per-clip mean subtraction) or in the number of delta orders; this slices and
    renormalises instead of decoding again. The result is bit-identical to
    extracting with ``target`` (the frames before CMVN are leading columns of
    ``source``'s output, exactly, in either dtype).

    Parameters
    ----------
    X : np.ndarray [shape=(n_frames, n_dims)]
        Features of one clip extracted with ``source``.
    source, target : FeatureConfig
        With :func:`derivable` true.

    Returns
    -------
    np.ndarray [shape=(n_frames, n_dims), dtype=target.dtype]

    Raises
    ------
    ParameterError
        If ``target`` cannot be derived from ``source``.
    """
    if not derivable(source, target):
        raise ParameterError("target features differ from the source's before normalisation")
    # exactly the frames before CMVN: static cepstra, then each delta order
    feats = np.ascontiguousarray(X[:, : target.n_dims], dtype=np.float32)
    if target.cmvn == "utterance":
        feats = utterance_cmvn(feats, norm_vars=target.cmvn_norm_vars)
    elif target.cmvn == "sliding":
        feats = sliding_cmvn(feats, window=target.cmvn_window, norm_vars=target.cmvn_norm_vars)
    return np.ascontiguousarray(feats, dtype=target.dtype)
