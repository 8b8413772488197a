"""Every setting of the front end in one frozen, serialisable value, :class:`FeatureConfig`;
the named ones, :data:`PRESETS`, with why each is what it is; and :data:`EXTRAS`, the librosa
frame features a config may append, as data (a name and checked keyword arguments)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple, Optional, Union

import numpy as np

from ..checks import Bool, Field, Int, Real, check
from ..exceptions import ParameterError

__all__ = ["DEFAULT_PRESET", "EXTRAS", "FEATURE_FORMAT_VERSION", "PRESETS", "WINDOWS",
           "FeatureConfig"]  # fmt: skip

#: Bump whenever the numbers produced for a given config change: it is part of
#: :meth:`FeatureConfig.content_hash`, so feature caches are invalidated. Version 2:
#: numpy's FFT and a float64 matrix DCT instead of scipy's (last-bit changes). Version 3:
#: silent clips are refused and runs of digital silence dropped, whatever the preset.
FEATURE_FORMAT_VERSION = 3

#: Fields added after the cache format was fixed: left out of the content hash at their
#: default, so the hashes (caches, models) of configs that do not use them stay the same.
_NEW_FIELDS = {"engine": "numpy", "extras": ()}
#: name -> (lo, hi, brackets, unit): every size that drives an allocation is capped (the
#: largest FFT is 43 ms at 384 kHz, the longest CMVN window 10 minutes at a 10 ms hop).
_RANGES = {
    "sample_rate": (1000, 384000, "[]", " Hz"), "win_ms": (0, 1000.0, "(]", " ms"),
    "hop_ms": (0, 1000.0, "(]", " ms"), "n_fft": (16, 1 << 14, "[]", " samples"),
    "n_mels": (1, 1024, "[]", ""), "lifter": (0, 1000, "[]", ""), "preemphasis": (0, 1, "[)", ""),
    "top_db": (0, 1000, "(]", " dB"), "vad_threshold_db": (0, 1000, "(]", " dB"),
    "vad_floor_db": (-1000, 0, "[]", " dB"), "cmvn_window": (1, 60000, "[]", " frames"),
    "fmin": (0, math.inf, "[]", " Hz"),
}  # fmt: skip
MAX_DELTA_WIDTH = 99
#: Window names accepted (scipy.signal.get_window's parameter-free windows), listed so that
#: building a config never imports scipy.signal or librosa.
WINDOWS = frozenset("barthann bartlett blackman blackmanharris bohman boxcar cosine flattop "
                    "hamming hann lanczos nuttall parzen triang".split())
#: name -> the values accepted. np.pad's modes for pad_mode (the STFT pads with np.pad;
#: "empty" would pad with uninitialised memory).
_CHOICES = {
    "mel_norm": ("slaney", None), "c0": ("keep", "energy", "drop"), "delta_order": (0, 1, 2),
    "delta_mode": ("interp", "nearest", "mirror", "constant", "wrap"),
    "cmvn": ("none", "utterance", "sliding"), "dtype": ("float32", "float64"),
    "pad_mode": ("constant", "edge", "reflect", "symmetric", "wrap", "linear_ramp", "mean",
                 "median", "maximum", "minimum"),
    "window": tuple(sorted(WINDOWS)), "engine": ("numpy", "librosa"),
}  # fmt: skip
def _checked(spec: Field, value: Any, what: str) -> Any:
    """``value`` by tables' :func:`check`: numpy scalars and integral floats taken, strings not."""
    value = value.item() if isinstance(value, np.generic) else value
    if spec.type == "int" and isinstance(value, float) and value.is_integer():
        value = int(value)
    try:
        return check(spec, value, what)
    except ValueError as e:
        raise ParameterError(str(e)) from None


class Extra(NamedTuple):
    """One allowed extra: its arguments, unit, and the argument that sets its row count."""

    args: Mapping[str, Field]
    unit: str
    rows: str = ""  # the argument giving the row count ("" = one row, "n_bands" = n_bands + 1)


_BOOL = Bool()
_UNIT = Real(0.0, 1.0, brackets="()")
_POSITIVE8 = Real(0.0, 8.0, brackets="(]")

#: name -> :class:`Extra`: the librosa features a config may name, with the documented
#: keyword arguments a config may set (librosa's defaults apply to the others).
EXTRAS: Mapping[str, Extra] = MappingProxyType(
    {
        "spectral_contrast": Extra(
            {"fmin": Real(0.0, 1e5, brackets="(]"), "n_bands": Int(1, 16),
             "quantile": _UNIT, "linear": _BOOL}, "dB", rows="n_bands"),
        "spectral_flatness": Extra(
            {"amin": Real(0.0, 1.0, brackets="(]"), "power": _POSITIVE8}, "ratio"),
        "spectral_centroid": Extra({}, "Hz"),
        "spectral_bandwidth": Extra({"norm": _BOOL, "p": _POSITIVE8}, "Hz"),
        "spectral_rolloff": Extra({"roll_percent": _UNIT}, "Hz"),
        "zero_crossing_rate": Extra({"threshold": Real(0.0, 1.0), "zero_pos": _BOOL},
                                    "crossings per sample"),
        "rms": Extra({}, "full scale"),
        "chroma_stft": Extra(
            {"n_chroma": Int(1, 120), "tuning": Real(-0.5, 0.5, null=True, brackets="[)"),
             "ctroct": Real(0.0, 20.0), "octwidth": Real(0.0, 100.0, null=True, brackets="(]"),
             "base_c": _BOOL},
            "energy ratio", rows="n_chroma"),
        "onset_strength": Extra(
            {"lag": Int(1, 64), "max_size": Int(1, 64), "detrend": _BOOL}, "dB"),
    }  # fmt: skip
)
#: librosa's defaults for the arguments that set the row count (and spectral_contrast's fmin).
_ROW_DEFAULTS = {"n_bands": 6, "n_chroma": 12}
MAX_EXTRAS = 16


def _normalise_extras(value: Any, *, sample_rate: int, n_fft: int) -> tuple:
    """The canonical form ``((name, ((arg, value), ...)), ...)`` of a config's ``extras``:
    names (``"rms"``), mappings (``{"name": "spectral_contrast", "n_bands": 4}``) or canonical
    pairs, checked against the config's grid. ParameterError naming the bad item."""
    if not isinstance(value, (list, tuple)):  # a lone name or mapping included
        raise ParameterError(f"extras must be a list of feature names, got {value!r:.80}")
    if len(value) > MAX_EXTRAS:
        raise ParameterError(f"extras: at most {MAX_EXTRAS} features, got {len(value)}")
    out = []
    for item in value:
        if isinstance(item, str):
            item = (item, ())
        elif isinstance(item, Mapping):
            item = (item.get("name"), tuple((k, v) for k, v in item.items() if k != "name"))
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[1], tuple)):
            raise ParameterError(f"extras: expected a name or a {{'name': ...}} mapping, "
                                 f"got {item!r:.80}")  # fmt: skip
        name, kwargs = item[0], dict(item[1])
        if not isinstance(name, str) or name not in EXTRAS:
            raise ParameterError(f"extras: unknown feature {name!r:.60}; "
                                 f"allowed: {', '.join(sorted(EXTRAS))}")  # fmt: skip
        spec, args = EXTRAS[name].args, {}
        for k in sorted(kwargs, key=str):
            if k not in spec:
                raise ParameterError(f"extras: {name} has no argument {k!r:.60} "
                                     f"(allowed: {', '.join(sorted(spec)) or 'none'})")  # fmt: skip
            args[k] = _checked(spec[k], kwargs[k], f"extras: {name} argument {k}")
        if name == "spectral_contrast":  # librosa's defaults, and its rule on the bands
            fmin, n_bands = args.get("fmin", 200.0), args.get("n_bands", _ROW_DEFAULTS["n_bands"])
            top, nyq, bin_hz = fmin * 2.0 ** (n_bands - 1), sample_rate / 2, sample_rate / n_fft
            if top >= nyq or fmin < bin_hz:  # each band starts below Nyquist and holds a bin
                msg = (f"extras: spectral_contrast with fmin={fmin:g} and n_bands={n_bands} has "
                       f"bands starting at {fmin:g} to {top:g} Hz, which must not be below the FFT "
                       f"bin spacing ({bin_hz:g} Hz) nor at or above Nyquist ({nyq:g} Hz)")
                raise ParameterError(msg)
        out.append((name, tuple(args.items())))
    if len(set(out)) != len(out):
        raise ParameterError("extras: the same feature is named twice with the same arguments")
    return tuple(out)


@dataclass(frozen=True)
class FeatureConfig:
    """Every setting of the MFCC front end (frozen, hashable, JSON round-trip).

    The defaults are the ``general`` preset; :meth:`preset` gives the others and
    :meth:`replace` derives variants. Ranges: ``_RANGES`` and ``_CHOICES``.

    Parameters
    ----------
    sample_rate : int
        Analysis rate in Hz; input is resampled (soxr HQ) to it.
    win_ms, hop_ms, n_fft : float, float, int >= win_length
        Analysis window and hop in ms (:attr:`win_length`, :attr:`hop_length` in samples,
        rounded); FFT size in samples (the window centred in it).
    window, center, pad_mode : str, bool, str
        A periodic :func:`scipy.signal.get_window` name (:data:`WINDOWS`); centre frames on
        ``t * hop_length`` by padding the signal with ``np.pad``'s mode.
    preemphasis : float in [0, 1)
        ``y[n] - a * y[n-1]`` over the whole signal; 0 = off.
    n_mels, fmin, fmax, htk, mel_norm : int, float, float, bool, {"slaney", None}
        Mel bands from ``fmin`` to ``fmax`` Hz (``0 <= fmin < fmax <= sample_rate / 2``;
        None: Nyquist), HTK's mel formula or Slaney's, unit-area filters or not.
    top_db : float or None
        ``power_to_db`` clipping below the clip's peak (None: only the -100 dB floor).
    n_mfcc, lifter : int in [1, n_mels], float >= 0
        Cepstra computed, c0 included; cepstral lifter (0 = off; HTK/Kaldi use 22).
    c0 : {"keep", "energy", "drop"}
        Keep c0, replace it by the frame log-energy (dB re full scale, the HTK/Kaldi
        habit), or drop it (``n_mfcc - 1`` cepstra).
    delta_order, delta_width, delta_mode : {0, 1, 2}, odd int in [3, 99], str
        Static only, +Δ, or +Δ+ΔΔ, by ``librosa.feature.delta`` over ``delta_width`` frames.
        Edges: ``"nearest"`` repeats the edge frames (Kaldi's ``add-deltas``); librosa's
        ``"interp"`` (``dcase2016``) falls back to it on clips shorter than the width.
    vad, vad_threshold_db, vad_floor_db : bool, float, float
        Energy VAD: drop frames at most ``max - vad_threshold_db`` or ``vad_floor_db`` (dB re
        full scale, of the pre-emphasised windowed frame's mean square; a full-scale sine is
        -3 dB). Whatever ``vad``, a clip with no frame above the floor is refused as silent.
    cmvn, cmvn_window, cmvn_norm_vars : {"none", "utterance", "sliding"}, int, bool
        Cepstral mean (and variance) normalisation after VAD; sliding window in frames.
    dtype, engine : {"float32", "float64"}, {"numpy", "librosa"}
        Output dtype; librosa's formulas restated in numpy (no librosa import), or its own.
    extras : sequence of str or dict
        :data:`EXTRAS` appended after the deltas, from the signal before pre-emphasis."""

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

    def __post_init__(self) -> None:
        for name, spec in _SPECS.items():  # extras: below, once the grid is valid
            object.__setattr__(self, name, _checked(spec, getattr(self, name), name))
        nyq = self.sample_rate / 2.0
        fmax = nyq if self.fmax is None else self.fmax
        checks = [
            (self.win_length >= 1, f"win_ms={self.win_ms} gives an empty window"),
            (self.hop_length >= 1, f"hop_ms={self.hop_ms} gives a hop of 0 samples"),
            (self.n_fft >= self.win_length, f"n_fft={self.n_fft} must be >= the window length "
             f"({self.win_length} samples = {self.win_ms} ms at {self.sample_rate} Hz)"),
            (self.fmin < fmax <= nyq, f"need fmin < fmax <= sample_rate/2 = {nyq} Hz, "
             f"got fmin={self.fmin}, fmax={self.fmax}"),
            (0 < self.n_mfcc <= self.n_mels,
             f"n_mfcc={self.n_mfcc} must be > 0 and cannot exceed n_mels={self.n_mels}"),
            (self.c0 != "drop" or self.n_mfcc >= 2, "c0='drop' needs n_mfcc >= 2"),
            (3 <= self.delta_width <= MAX_DELTA_WIDTH and self.delta_width % 2 == 1,
             f"delta_width must be an odd integer >= 3 and <= {MAX_DELTA_WIDTH}, "
             f"got {self.delta_width}"),
        ]  # fmt: skip
        for ok, msg in checks:
            if not ok:
                raise ParameterError(msg)
        extras = _normalise_extras(self.extras, sample_rate=self.sample_rate, n_fft=self.n_fft)
        object.__setattr__(self, "extras", extras)

    @property
    def win_length(self) -> int:
        """Window length in samples, ``round(win_ms * sample_rate / 1000)``."""
        return int(round(self.win_ms * self.sample_rate / 1000.0))

    @property
    def hop_length(self) -> int:
        """Hop length in samples, ``round(hop_ms * sample_rate / 1000)``."""
        return int(round(self.hop_ms * self.sample_rate / 1000.0))

    @property
    def n_dims(self) -> int:
        """Dimension of the output frames: ``n_mfcc`` (minus 1 for ``c0="drop"``) times
        ``delta_order + 1``, plus the extras' rows."""
        return len(self.dimension_names())

    def dimension_names(self) -> list[tuple[str, str]]:
        """``(name, unit)`` of each output column, e.g. ``("Δ MFCC 3", "dB per frame")``; the
        unit before CMVN, or "std. dev." when ``cmvn_norm_vars`` standardises the columns."""
        static = [(f"MFCC {i}", "dB") for i in range(self.c0 == "drop", self.n_mfcc)]
        if self.c0 == "energy":
            static[0] = ("log energy", "dB re full scale")
        out = list(static)
        for prefix, per in (("Δ ", " per frame"), ("ΔΔ ", " per frame²"))[: self.delta_order]:
            out += [(prefix + n, "dB" + per) for n, _ in static]
        for name, args in self.extras:  # one row named by the feature, or numbered rows
            spec = EXTRAS[name]
            if spec.rows:
                n = dict(args).get(spec.rows, _ROW_DEFAULTS[spec.rows]) + (spec.rows == "n_bands")
                out += [(f"{name} {i}", spec.unit) for i in range(n)]
            else:
                out.append((name, spec.unit))
        if self.cmvn != "none" and self.cmvn_norm_vars:
            out = [(n, "std. dev.") for n, _ in out]
        return out

    @classmethod
    def preset(cls, name: str) -> FeatureConfig:
        """A named preset (a key of :data:`PRESETS`); ParameterError listing them otherwise."""
        try:
            return PRESETS[name]
        except (KeyError, TypeError):
            raise ParameterError(f"unknown feature preset {name!r}; expected one of "
                                 f"{sorted(PRESETS)}") from None  # fmt: skip

    def replace(self, **changes: Any) -> FeatureConfig:
        """A copy with *changes* applied, validated as by :meth:`from_dict`."""
        return self.from_dict({**dataclasses.asdict(self), **changes})

    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain JSON-able dict; an extra as its name or {"name": ..., **args}."""
        extras = [n if not a else {"name": n, **dict(a)} for n, a in self.extras]
        return {**dataclasses.asdict(self), "extras": extras}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureConfig:
        """A config from a dict (missing keys: defaults); ParameterError for a non-dict,
        unknown keys or invalid values."""
        if not isinstance(d, dict):
            raise ParameterError(f"expected a dict of FeatureConfig fields, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        if set(d) - known:
            raise ParameterError(f"unknown FeatureConfig field(s) {sorted(set(d) - known)}; "
                                 f"known fields: {sorted(known)}")  # fmt: skip
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
        """Stable 16-hex-digit digest of the config and :data:`FEATURE_FORMAT_VERSION`: equal
        exactly when two configs give the same features; it keys the feature cache (once per
        file, hence kept on the instance: the fields are frozen)."""
        known = self.__dict__.get("_content_hash")
        if known is not None:
            return known
        config = self.to_dict()
        for k, default in _NEW_FIELDS.items():
            if getattr(self, k) == default:
                del config[k]
        payload = json.dumps({"format": "audiogmm.FeatureConfig", "version": FEATURE_FORMAT_VERSION,
                              "config": config}, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]
        object.__setattr__(self, "_content_hash", digest)
        return digest


def _spec(name: str, typ: str) -> Field:
    """The :class:`~audiogmm.checks.Field` of a FeatureConfig field of type ``typ``."""
    lo, hi, brackets, unit = _RANGES.get(name, (None, None, "[]", ""))
    kind = typ.replace("Optional[", "").rstrip("]")
    return Field({"float": "real"}.get(kind, kind), lo, hi, max_len=64, null="Optional" in typ,
                 choices=_CHOICES.get(name, ()), brackets=brackets, unit=unit)  # fmt: skip


#: Every field's spec but ``extras`` (checked by :func:`_normalise_extras`).
_SPECS = {f.name: _spec(f.name, str(f.type)) for f in dataclasses.fields(FeatureConfig)[:-1]}

# fmt: off
_PRESETS: dict[str, FeatureConfig] = {
    # The default, for speech and sound alike (26 dims): by clip-stratified cross-validation on
    # the development corpus it ties the best candidate on each set at the lowest cost
    # (README "Features", with the numbers that chose "sound" below).
    "general": FeatureConfig(),
    # The Kaldi/HTK habits (60 dims): c0 replaced by the log-energy, energy VAD, CMVN.
    "speech": FeatureConfig(
        win_ms=25.0, hop_ms=10.0, n_fft=512, preemphasis=0.97, fmin=20.0, fmax=7600.0, htk=True,
        mel_norm=None, top_db=None, n_mfcc=20, lifter=22.0, c0="energy", delta_order=2, vad=True,
        cmvn="utterance",
    ),
    # The DCASE 2016 task 1 baseline (60 dims; its global z-normalisation is the trainer's, not
    # per clip). Its YAML says a 40 ms window, which we follow; its code handed librosa 0.4 a
    # 2048-sample Hamming array, used whole (46.4 ms): .replace(win_ms=2048 * 1000 / 44100).
    "dcase2016": FeatureConfig(
        sample_rate=44100, n_fft=2048, fmax=22050.0, n_mfcc=20, delta_order=2, delta_mode="interp"
    ),
    # librosa.feature.mfcc(y=y, sr=22050)'s defaults, for comparison (no deltas).
    "librosa": FeatureConfig(
        sample_rate=22050, win_ms=2048 * 1000.0 / 22050, hop_ms=512 * 1000.0 / 22050, n_fft=2048,
        window="hann", n_mels=128, n_mfcc=20, delta_order=0,
    ),
}
# fmt: on
# Non-speech sound, full band: the dcase2016 analysis with 13 cepstra instead of 20 (39 dims;
# 13 beat 20 in cross-validation) and Kaldi-style delta edges, which tie librosa's "interp"
# at half the extraction time (no per-clip polynomial fits, no scipy.signal import).
_PRESETS["sound"] = _PRESETS["dcase2016"].replace(n_mfcc=13, delta_mode="nearest")
# Speaker recognition with --backend gsv (60 dims): the speech-standard analysis (25/10 ms, 20
# cepstra, delta + delta-delta) on the default's filterbank, without the energy VAD and CMVN of
# "speech", which cost 3-10 points on short clips whose recording chain goes with the speaker.
# With gsv it led the default front end on each dev speaker set; with ml it trailed.
_PRESETS["speaker"] = _PRESETS["general"].replace(win_ms=25.0, hop_ms=10.0, n_fft=512, n_mfcc=20,
                                                  delta_order=2)  # fmt: skip

#: The named presets (read-only), the CLI's ``--preset`` choices.
PRESETS: Mapping[str, FeatureConfig] = MappingProxyType(_PRESETS)

#: The preset used when none is given (the CLI's ``--preset``, ``FeatureConfig()``).
DEFAULT_PRESET = "general"
