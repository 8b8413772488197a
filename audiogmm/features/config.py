"""Every setting of the front end, in one frozen, serialisable value: :class:`FeatureConfig`.

Also the named presets (:data:`PRESETS`) and the content hash that keys feature caches.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np

from ..exceptions import ParameterError
from .extras import as_json, extra_dims, normalise_extras

__all__ = [
    "FEATURE_FORMAT_VERSION",
    "MAX_N_FFT",
    "MAX_WINDOW_MS",
    "SAMPLE_RATE_RANGE",
    "FeatureConfig",
    "WINDOWS",
    "is_integral",
    "is_real",
    "window",
]

#: Bump whenever the numbers produced for a given config change: it is part of
#: :meth:`FeatureConfig.content_hash`, so feature caches are invalidated. Version 2:
#: numpy's FFT and a float64 matrix DCT instead of scipy's (last-bit changes). Version 3:
#: silent clips are refused and runs of digital silence dropped, whatever the preset.
FEATURE_FORMAT_VERSION = 3

_C0_MODES = ("keep", "energy", "drop")
_CMVN_MODES = ("none", "utterance", "sliding")
_DELTA_MODES = ("interp", "nearest", "mirror", "constant", "wrap")
_DTYPES = ("float32", "float64")
_ENGINES = ("numpy", "librosa")
#: Fields added after the cache format was fixed: left out of the content hash at their
#: default, so the hashes (caches, models) of configs that do not use them stay the same.
_NEW_FIELDS = {"engine": "numpy", "extras": ()}
_MEL_NORMS = ("slaney", None)
# np.pad modes (the STFT pads with np.pad); "empty" would pad with uninitialised memory
_PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap", "linear_ramp", "mean",
              "median", "maximum", "minimum")  # fmt: skip

#: Analysis sample rates accepted (Hz): telephone speech to high-resolution audio.
SAMPLE_RATE_RANGE = (1000, 384000)
#: Longest analysis window and hop (ms).
MAX_WINDOW_MS = 1000.0
#: Largest FFT (samples): bounds the STFT blocks and the mel basis (43 ms at 384 kHz).
MAX_N_FFT = 1 << 14
MAX_N_MELS = 1024
MAX_DELTA_WIDTH = 99
#: Longest sliding CMVN window (frames): 10 minutes at a 10 ms hop.
MAX_CMVN_WINDOW = 60000

#: Window names accepted (scipy.signal.get_window's parameter-free windows). Checked
#: against this list so that building a config never imports scipy.signal or librosa.
WINDOWS = frozenset(
    "barthann bartlett blackman blackmanharris bohman boxcar cosine flattop hamming hann "
    "lanczos nuttall parzen triang".split()
)


# general_hamming(alpha) windows, as scipy.signal.windows builds them: (a0, a1) = (alpha, 1 - alpha)
_GENERAL_HAMMING = {"hamming": 0.54, "hann": 0.5}


@functools.lru_cache(maxsize=32)
def window(name: str, win_length: int) -> np.ndarray:
    """The periodic analysis window ``name`` of ``win_length`` samples (cached).

    Equal to ``scipy.signal.get_window(name, win_length, fftbins=True)`` (what
    librosa calls). Hamming and Hann are computed here with scipy's own operations
    (a general cosine window over ``linspace(-pi, pi, n + 1)``, last point dropped),
    bit for bit, so the common case does not import ``scipy.signal`` (~0.4 s).

    Returns
    -------
    np.ndarray [shape=(win_length,), dtype=float64]
    """
    alpha = _GENERAL_HAMMING.get(name)
    if alpha is None or win_length <= 1:
        import scipy.signal

        return scipy.signal.get_window(name, win_length, fftbins=True)
    a = np.asarray([alpha, 1.0 - alpha], dtype=np.float64)
    fac = np.linspace(-np.pi, np.pi, win_length + 1, dtype=np.float64)
    w = np.zeros(win_length + 1, dtype=np.float64)
    for k in range(a.shape[0]):
        w += a[k] * np.cos(k * fac)
    return w[:-1]


@dataclass(frozen=True)
class FeatureConfig:
    """Every setting of the MFCC front end (frozen, hashable, JSON round-trip).

    The defaults are the ``general`` preset (:data:`DEFAULT_PRESET`). Use
    :meth:`preset` for the others and :meth:`replace` to derive variants.

    Parameters
    ----------
    sample_rate : int > 0
        Analysis sampling rate in Hz; input is resampled (soxr HQ) to it.
    win_ms, hop_ms : float > 0
        Analysis window and hop, in milliseconds. ``win_length`` and
        ``hop_length`` (samples) are these times ``sample_rate`` rounded.
    n_fft : int >= win_length
        FFT size in samples; the window is zero-padded (centred) to it.
    window : str
        Window name for :func:`scipy.signal.get_window` (periodic), e.g.
        ``"hamming"``, ``"hann"``.
    center : bool
        Centre frames on ``t * hop_length`` by padding the signal (librosa).
    pad_mode : str
        Padding mode when ``center`` (librosa's ``pad_mode``, default ``"constant"``).
    preemphasis : float in [0, 1)
        Pre-emphasis coefficient ``y[n] - a * y[n-1]`` over the whole signal; 0 = off.
    n_mels : int > 0
        Number of mel bands.
    fmin : float >= 0
        Lowest band edge in Hz.
    fmax : float > fmin or None
        Highest band edge in Hz (``None`` = ``sample_rate / 2``).
    htk : bool
        HTK mel formula (``True``) or Slaney's (``False``).
    mel_norm : {"slaney", None}
        Mel filter normalisation (area normalisation or none).
    top_db : float > 0 or None
        ``power_to_db`` clipping relative to the clip's peak (librosa default 80);
        ``None`` disables it (only the ``amin`` floor of -100 dB remains).
    n_mfcc : int > 0
        Number of cepstra computed (including c0).
    lifter : float >= 0
        Cepstral liftering coefficient (0 = off; HTK/Kaldi use 22).
    c0 : {"keep", "energy", "drop"}
        What to do with c0: keep it, replace it by the frame log-energy
        (dB re full scale, the HTK/Kaldi habit), or drop it (``n_mfcc - 1`` cepstra).
    delta_order : {0, 1, 2}
        0 = static only, 1 = +Δ, 2 = +Δ+ΔΔ.
    delta_width : odd int >= 3
        Width (frames) of the Savitzky-Golay window of ``librosa.feature.delta``.
    delta_mode : str
        Edge mode for ``librosa.feature.delta``. ``"nearest"`` repeats the edge
        frames (Kaldi's ``add-deltas``) and is the default; with
        ``"interp"`` (librosa's default, used by ``dcase2016``) clips with fewer
        than ``delta_width`` frames fall back to ``"nearest"``.
    vad : bool
        Energy voice-activity detection: drop frames whose log-energy is at most
        ``max - vad_threshold_db`` or at most ``vad_floor_db``. The frame energy
        is the mean square of the pre-emphasised signal under the window (from
        the same STFT as the mel bands, via Parseval), in dB re full scale.
    vad_threshold_db : float > 0
        Threshold in dB below the clip's loudest frame.
    vad_floor_db : float
        Absolute floor in dB re full scale (a full-scale sine is -3 dB), so that
        digital silence and near-silent clips are never voiced. Whatever ``vad``,
        a clip with no frame above it is refused as silent.
    cmvn : {"none", "utterance", "sliding"}
        Cepstral mean (and variance) normalisation after VAD.
    cmvn_window : int > 0
        Sliding window in frames (Kaldi ``apply-cmvn-sliding --center=true``).
    cmvn_norm_vars : bool
        Also divide by the standard deviation (floored at 1e-8).
    dtype : {"float32", "float64"}
        Output dtype.
    engine : {"numpy", "librosa"}
        Who computes the spectra and cepstra: this package's numpy restatement of
        librosa's formulas (the default: no librosa import, no numba compile), or
        librosa's own functions (``stft``, ``feature.melspectrogram``, ``power_to_db``,
        ``feature.mfcc``, ``feature.delta``) on the same frame grid. They agree within
        float32 rounding (``tests/test_engines.py`` states the tolerance).
    extras : sequence of str or dict
        librosa frame features appended after the cepstra and deltas, by name
        (``"rms"``) or with arguments (``{"name": "spectral_contrast", "n_bands": 4}``);
        names and arguments come from the allow-list
        :data:`audiogmm.features.extras.EXTRAS`. They are computed by librosa on the
        cepstra's frame grid (from the signal before pre-emphasis) and go through the
        same VAD and CMVN. Needs librosa at run time, whatever the engine.
    """

    sample_rate: int = 16000
    win_ms: float = 40.0
    hop_ms: float = 20.0
    n_fft: int = 1024
    window: str = "hamming"
    center: bool = True
    pad_mode: str = "constant"
    preemphasis: float = 0.0
    n_mels: int = 40
    fmin: float = 0.0
    fmax: Optional[float] = None
    htk: bool = False
    mel_norm: Optional[str] = "slaney"
    top_db: Optional[float] = 80.0
    n_mfcc: int = 13
    lifter: float = 0.0
    c0: str = "keep"
    delta_order: int = 1
    delta_width: int = 9
    delta_mode: str = "nearest"
    vad: bool = False
    vad_threshold_db: float = 30.0
    vad_floor_db: float = -80.0
    cmvn: str = "none"
    cmvn_window: int = 300
    cmvn_norm_vars: bool = True
    dtype: str = "float32"
    engine: str = "numpy"
    extras: tuple = ()

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        types = {f.name: f.type for f in dataclasses.fields(self)}
        for name, typ in types.items():
            value = getattr(self, name)
            optional = "Optional" in str(typ)
            if value is None and optional:
                continue
            base = str(typ).replace("Optional[", "").rstrip("]")
            number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
                value, (bool, np.bool_)
            )  # strings such as "16000" are refused, not converted
            if base == "bool":
                if not isinstance(value, (bool, np.bool_)):
                    raise ParameterError(f"{name} must be a bool, got {value!r}")
                object.__setattr__(self, name, bool(value))
            elif base == "int":
                if not number or not is_integral(value):
                    raise ParameterError(f"{name} must be an integer, got {value!r}")
                object.__setattr__(self, name, int(value))
            elif base == "float":
                if not number or not is_real(value):
                    raise ParameterError(f"{name} must be a finite number, got {value!r}")
                object.__setattr__(self, name, float(value))
            elif base == "str":
                if not isinstance(value, str):
                    raise ParameterError(f"{name} must be a string, got {value!r}")
        self._validate()
        # after the grid is known to be valid: some extras' ranges depend on it
        extras = normalise_extras(self.extras, sample_rate=self.sample_rate, n_fft=self.n_fft)
        object.__setattr__(self, "extras", extras)

    def _validate(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ParameterError(msg)

        def within(name: str, lo: float, hi: float, unit: str = "", *, open_lo: bool = False):
            v = getattr(self, name)
            ok = (v > lo if open_lo else v >= lo) and v <= hi
            need(ok, f"{name} must be in {'(' if open_lo else '['}{lo:g}, {hi:g}]{unit}, got {v}")

        nyq = self.sample_rate / 2.0
        # sane physical bounds: every size that drives an allocation is capped
        within("sample_rate", *SAMPLE_RATE_RANGE, " Hz")
        within("win_ms", 0, MAX_WINDOW_MS, " ms", open_lo=True)
        within("hop_ms", 0, MAX_WINDOW_MS, " ms", open_lo=True)
        within("n_fft", 16, MAX_N_FFT, " samples")
        need(self.win_length >= 1, f"win_ms={self.win_ms} gives an empty window")
        need(self.hop_length >= 1, f"hop_ms={self.hop_ms} gives a hop of 0 samples")
        need(
            self.n_fft >= self.win_length,
            f"n_fft={self.n_fft} must be >= the window length "
            f"({self.win_length} samples = {self.win_ms} ms at {self.sample_rate} Hz)",
        )
        need(
            0.0 <= self.preemphasis < 1.0, f"preemphasis must be in [0, 1), got {self.preemphasis}"
        )
        within("n_mels", 1, MAX_N_MELS)
        need(self.fmin >= 0, f"fmin must be >= 0 Hz, got {self.fmin}")
        fmax = nyq if self.fmax is None else self.fmax
        need(
            self.fmin < fmax <= nyq,
            f"need fmin < fmax <= sample_rate/2 = {nyq} Hz, got fmin={self.fmin}, fmax={self.fmax}",
        )
        need(
            self.mel_norm in _MEL_NORMS, f"mel_norm must be 'slaney' or None, got {self.mel_norm!r}"
        )
        need(
            self.top_db is None or 0 < self.top_db <= 1000,
            f"top_db must be in (0, 1000] dB or None, got {self.top_db}",
        )
        need(self.n_mfcc > 0, f"n_mfcc must be > 0, got {self.n_mfcc}")
        need(
            self.n_mfcc <= self.n_mels,
            f"n_mfcc={self.n_mfcc} cannot exceed n_mels={self.n_mels}",
        )
        within("lifter", 0, 1000)
        need(self.c0 in _C0_MODES, f"c0 must be one of {_C0_MODES}, got {self.c0!r}")
        need(
            not (self.c0 == "drop" and self.n_mfcc < 2),
            "c0='drop' needs n_mfcc >= 2",
        )
        need(
            self.delta_order in (0, 1, 2), f"delta_order must be 0, 1 or 2, got {self.delta_order}"
        )
        need(
            3 <= self.delta_width <= MAX_DELTA_WIDTH and self.delta_width % 2 == 1,
            f"delta_width must be an odd integer >= 3 and <= {MAX_DELTA_WIDTH}, got {self.delta_width}",
        )
        need(
            self.delta_mode in _DELTA_MODES,
            f"delta_mode must be one of {_DELTA_MODES}, got {self.delta_mode!r}",
        )
        within("vad_threshold_db", 0, 1000, " dB", open_lo=True)
        within("vad_floor_db", -1000, 0, " dB")
        need(self.cmvn in _CMVN_MODES, f"cmvn must be one of {_CMVN_MODES}, got {self.cmvn!r}")
        within("cmvn_window", 1, MAX_CMVN_WINDOW, " frames")
        need(self.dtype in _DTYPES, f"dtype must be one of {_DTYPES}, got {self.dtype!r}")
        need(
            self.pad_mode in _PAD_MODES,
            f"pad_mode must be one of {_PAD_MODES}, got {self.pad_mode!r}",
        )
        need(
            self.window in WINDOWS,
            f"window must be one of {sorted(WINDOWS)}, got {self.window!r}",
        )
        need(self.engine in _ENGINES, f"engine must be one of {_ENGINES}, got {self.engine!r}")

    # ------------------------------------------------------------------ derived
    @property
    def win_length(self) -> int:
        """Window length in samples, ``round(win_ms * sample_rate / 1000)``."""
        return int(round(self.win_ms * self.sample_rate / 1000.0))

    @property
    def hop_length(self) -> int:
        """Hop length in samples, ``round(hop_ms * sample_rate / 1000)``."""
        return int(round(self.hop_ms * self.sample_rate / 1000.0))

    @property
    def n_ceps(self) -> int:
        """Number of static coefficients per frame (``n_mfcc``, minus 1 if c0 is dropped)."""
        return self.n_mfcc - 1 if self.c0 == "drop" else self.n_mfcc

    @property
    def n_dims(self) -> int:
        """Dimension of the output frames, ``n_ceps * (delta_order + 1)`` plus the extras' rows."""
        return self.n_ceps * (self.delta_order + 1) + len(extra_dims(self.extras))

    def dimension_names(self) -> list[tuple[str, str]]:
        """``(name, unit)`` of each output column, e.g. ``("Δ MFCC 3", "dB per frame")``.

        The unit is the one before CMVN; with ``cmvn_norm_vars`` the columns are
        standardised, and the unit says so ("std. dev.").
        """
        first = 1 if self.c0 == "drop" else 0
        static = [f"MFCC {i}" for i in range(first, self.n_mfcc)]
        units = ["dB"] * len(static)
        if self.c0 == "energy":
            static[0], units[0] = "log energy", "dB re full scale"
        names, out_units = list(static), list(units)
        for order, prefix, per in ((1, "Δ ", " per frame"), (2, "ΔΔ ", " per frame²")):
            if self.delta_order >= order:
                names += [prefix + n for n in static]
                out_units += ["dB" + per] * len(static)
        names += [n for n, _ in extra_dims(self.extras)]
        out_units += [u for _, u in extra_dims(self.extras)]
        if self.cmvn != "none" and self.cmvn_norm_vars:
            out_units = ["std. dev."] * len(out_units)
        return list(zip(names, out_units))

    # ------------------------------------------------------------------ presets
    @classmethod
    def preset(cls, name: str) -> FeatureConfig:
        """Return a named preset (a key of :data:`PRESETS`).

        Raises
        ------
        ParameterError
            For an unknown name (the message lists the known ones).
        """
        from .presets import PRESETS  # the presets are FeatureConfigs: defined after the class

        try:
            return PRESETS[name]
        except (KeyError, TypeError):
            raise ParameterError(
                f"unknown feature preset {name!r}; expected one of {sorted(PRESETS)}"
            ) from None

    def replace(self, **changes: Any) -> FeatureConfig:
        """Return a copy with *changes* applied (validated; unknown names are a ParameterError)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ParameterError(f"unknown FeatureConfig field(s): {sorted(unknown)}")
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain JSON-able dict (field name → value)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["extras"] = as_json(self.extras)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureConfig:
        """Build a config from a dict; missing keys take the defaults.

        Raises
        ------
        ParameterError
            If *d* is not a mapping, has unknown keys, or holds invalid values.
        """
        if not isinstance(d, dict):
            raise ParameterError(f"expected a dict of FeatureConfig fields, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ParameterError(
                f"unknown FeatureConfig key(s) {sorted(unknown)}; known keys: {sorted(known)}"
            )
        return cls(**d)

    def to_json(self, *, indent: Optional[int] = None) -> str:
        """Canonical JSON (sorted keys)."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=indent)

    @classmethod
    def from_json(cls, s: Union[str, bytes]) -> FeatureConfig:
        """Inverse of :meth:`to_json`; invalid JSON is a ParameterError."""
        try:
            d = json.loads(s)
        except (TypeError, ValueError, RecursionError) as exc:  # deep nesting included
            raise ParameterError(f"FeatureConfig JSON is not valid JSON: {exc}") from None
        return cls.from_dict(d)

    def content_hash(self) -> str:
        """Stable 16-hex-digit digest of the config and :data:`FEATURE_FORMAT_VERSION`.

        Two configs have the same hash exactly when they produce the same
        features; it keys the feature cache. ``engine`` and ``extras`` count only
        when set, so configs without them keep their earlier hashes.
        """
        config = self.to_dict()
        for k, default in _NEW_FIELDS.items():
            if getattr(self, k) == default:
                del config[k]
        payload = json.dumps(
            {
                "format": "audiogmm.FeatureConfig",
                "version": FEATURE_FORMAT_VERSION,
                "config": config,
            },
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def is_integral(v: Any) -> bool:
    try:
        return float(v) == int(v)
    except (TypeError, ValueError, OverflowError):
        return False


def is_real(v: Any) -> bool:
    try:
        return bool(np.isfinite(float(v)))
    except (TypeError, ValueError):
        return False
