"""The front end: waveform -> MFCC frames (+ deltas, VAD, CMVN), in one serialisable config.

Modules in data-flow order: ``config`` (with the librosa extras a config may add), ``presets``,
``spectral`` (STFT, mel, energy, cepstra), ``engines`` (numpy or librosa), ``postprocess``
(deltas, VAD, CMVN), ``extraction`` (extract). Names are imported on first use.
"""

from ..lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(["FEATURE_FORMAT_VERSION", "FeatureConfig"], ".config"),
    **dict.fromkeys(["DEFAULT_PRESET", "PRESETS"], ".presets"),
    "extract": ".extraction",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
