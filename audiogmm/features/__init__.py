"""The front end: waveform -> MFCC frames (+ deltas, VAD, CMVN), in one serialisable config.

Modules in data-flow order: ``config`` (with the named presets and the librosa extras a config
may add), ``spectral`` (STFT, mel, energy, cepstra, deltas), ``extraction`` (VAD, CMVN and
extract, by numpy or librosa). Names are imported on first use."""

from .. import lazy_exports

_EXPORTS = {
    **dict.fromkeys(["DEFAULT_PRESET", "FEATURE_FORMAT_VERSION", "FeatureConfig", "PRESETS"],
                    ".config"),
    "extract": ".extraction",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
