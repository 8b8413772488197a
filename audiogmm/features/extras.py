"""The allow-list of librosa frame features a config may append to the cepstra (``extras``).

A config (and so a model file) names extras as data, never code: a key of :data:`EXTRAS`
and documented keyword arguments of the right type and range; the grid is the config's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np

from ..exceptions import ParameterError

__all__ = ["EXTRAS", "as_json", "extra_dims", "finite_number", "normalise_extras", "range_error"]


def finite_number(v: Any) -> bool:
    """A finite real number, not a bool (numpy scalars included)."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # an int beyond float range
        return False


def range_error(value: Any, lo: float, hi: float, brackets: str = "[]", unit: str = "") -> str:
    """``""`` when ``value`` lies in ``lo``..``hi`` (``brackets`` "[]", "(]", "[)" or "()"),
    else ``"must be in [lo, hi]<unit>, got value"``."""
    lb, rb = brackets
    above = value > lo if lb == "(" else value >= lo
    below = value < hi if rb == ")" else value <= hi
    return "" if above and below else f"must be in {lb}{lo:g}, {hi:g}{rb}{unit}, got {value!r}"


class Arg(NamedTuple):
    """One keyword argument: its type (``"int"``, ``"float"``, ``"bool"``) and range."""

    kind: str
    lo: float = -math.inf
    hi: float = math.inf
    brackets: str = "[]"
    nullable: bool = False

    def check(self, value: Any) -> Any:
        """``value`` in canonical form, or ValueError with the reason."""
        if value is None and self.nullable:
            return None
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"must be a bool, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"must be a number, got {value!r}")
        if not finite_number(value) or (self.kind == "int" and value != int(value)):
            raise ValueError(f"must be a finite {self.kind}, got {value!r}")
        msg = range_error(value, self.lo, self.hi, self.brackets)
        if msg:
            raise ValueError(msg)
        return int(value) if self.kind == "int" else float(value)


class Extra(NamedTuple):
    """One allowed feature: its arguments, unit, and the argument that sets its row count."""

    args: Mapping[str, Arg]
    unit: str
    rows: str = ""  # the argument giving the row count ("" = one row, "n_bands" = n_bands + 1)


_BOOL = Arg("bool")
_UNIT = Arg("float", 0.0, 1.0, "()")
_POSITIVE8 = Arg("float", 0.0, 8.0, "(]")

#: name -> :class:`Extra`: the librosa features a config may name, with the documented
#: keyword arguments a config may set (librosa's defaults apply to the others).
EXTRAS: Mapping[str, Extra] = MappingProxyType(
    {
        "spectral_contrast": Extra(
            {"fmin": Arg("float", 0.0, 1e5, "(]"), "n_bands": Arg("int", 1, 16),
             "quantile": _UNIT, "linear": _BOOL}, "dB", rows="n_bands"),
        "spectral_flatness": Extra(
            {"amin": Arg("float", 0.0, 1.0, "(]"), "power": _POSITIVE8}, "ratio"),
        "spectral_centroid": Extra({}, "Hz"),
        "spectral_bandwidth": Extra({"norm": _BOOL, "p": _POSITIVE8}, "Hz"),
        "spectral_rolloff": Extra({"roll_percent": _UNIT}, "Hz"),
        "zero_crossing_rate": Extra({"threshold": Arg("float", 0.0, 1.0), "zero_pos": _BOOL},
                                    "crossings per sample"),
        "rms": Extra({}, "full scale"),
        "chroma_stft": Extra(
            {"n_chroma": Arg("int", 1, 120), "tuning": Arg("float", -0.5, 0.5, "[)", True),
             "ctroct": Arg("float", 0.0, 20.0), "octwidth": Arg("float", 0.0, 100.0, "(]", True),
             "base_c": _BOOL}, "energy ratio", rows="n_chroma"),
        "onset_strength": Extra(
            {"lag": Arg("int", 1, 64), "max_size": Arg("int", 1, 64), "detrend": _BOOL}, "dB"),
    }  # fmt: skip
)

#: librosa's defaults for the arguments that set the row count or the bands' range.
_ROW_DEFAULTS = {"n_bands": 6, "n_chroma": 12, "fmin": 200.0}
MAX_EXTRAS = 16


def normalise_extras(value: Any, *, sample_rate: int, n_fft: int) -> tuple:
    """The canonical form ``((name, ((arg, value), ...)), ...)`` of a config's ``extras``:
    names (``"rms"``), mappings (``{"name": "spectral_contrast", "n_bands": 4}``) or canonical
    pairs, checked against the config's grid. ParameterError naming the bad item."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)):
        raise ParameterError(f"extras must be a list of feature names, got {value!r:.80}")
    if len(value) > MAX_EXTRAS:
        raise ParameterError(f"extras: at most {MAX_EXTRAS} features, got {len(value)}")
    out = []
    for item in value:
        if isinstance(item, str):
            item = (item, ())
        elif isinstance(item, Mapping):
            kwargs = dict(item)
            item = (kwargs.pop("name", None), tuple(kwargs.items()))
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[1], tuple)):
            raise ParameterError(
                f"extras: expected a name or a {{'name': ...}} mapping, got {item!r:.80}"
            )
        name, kwargs = item[0], dict(item[1])
        if not isinstance(name, str) or name not in EXTRAS:
            raise ParameterError(
                f"extras: unknown feature {name!r:.60}; allowed: {', '.join(sorted(EXTRAS))}"
            )
        spec = EXTRAS[name].args
        args = {}
        for k in sorted(kwargs, key=str):
            if k not in spec:
                allowed = ", ".join(sorted(spec)) or "none"
                raise ParameterError(
                    f"extras: {name} has no argument {k!r:.60} (allowed: {allowed})"
                )
            try:
                args[k] = spec[k].check(kwargs[k])
            except ValueError as e:
                raise ParameterError(f"extras: {name} argument {k} {e}") from None
        if name == "spectral_contrast":
            fmin = args.get("fmin", _ROW_DEFAULTS["fmin"])
            n_bands = args.get("n_bands", _ROW_DEFAULTS["n_bands"])
            top = fmin * 2.0 ** (n_bands - 1)
            if top >= sample_rate / 2:  # librosa's rule: every band's lower edge below Nyquist
                raise ParameterError(
                    f"extras: spectral_contrast with fmin={fmin:g} and n_bands={n_bands} has a "
                    f"band starting at {top:g} Hz, above Nyquist ({sample_rate / 2:g} Hz); "
                    "lower either"
                )
            if fmin < sample_rate / n_fft:  # the narrowest band must hold an FFT bin
                raise ParameterError(f"extras: spectral_contrast fmin={fmin:g} Hz is below the FFT "
                                     f"bin spacing ({sample_rate / n_fft:g} Hz)")  # fmt: skip
        out.append((name, tuple(args.items())))
    if len(set(out)) != len(out):
        raise ParameterError("extras: the same feature is named twice with the same arguments")
    return tuple(out)


def extra_dims(extras: tuple) -> list[tuple[str, str]]:
    """``(label, unit)`` per output row of canonical ``extras``, e.g.
    ``("spectral_contrast 2", "dB")``; a one-row feature is labelled by its name."""
    labels = []
    for name, args in extras:
        spec = EXTRAS[name]
        if not spec.rows:
            labels.append((name, spec.unit))
            continue
        n = dict(args).get(spec.rows, _ROW_DEFAULTS[spec.rows]) + (spec.rows == "n_bands")
        labels += [(f"{name} {i}", spec.unit) for i in range(n)]
    return labels


def as_json(extras: tuple) -> list[Any]:
    """Canonical extras as JSON: a name alone, or ``{"name": ..., **args}``."""
    return [name if not args else {"name": name, **dict(args)} for name, args in extras]
