"""The one vocabulary of field checks: a :class:`Field` declares what a JSON value must be,
:func:`check` validates a value against it. Every file kind's table (:mod:`audiogmm.io.tables`)
and :class:`~audiogmm.features.FeatureConfig`'s fields are written in it."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

__all__ = ["Bool", "Field", "Int", "List", "Map", "Obj", "Real", "Str", "at_least", "check", "must"]


@dataclass(frozen=True)
class Field:
    """What one JSON value must be (build it with :func:`Int`, :func:`Obj`, ...)."""

    type: str  # "int", "real", "bool", "str", "list", "obj" (fixed keys), "map" (any keys)
    lo: float | None = None  # a number's range
    hi: float | None = None
    finite: bool = True
    max_len: int | None = None  # characters of a str, items of a list or map
    item: Field | None = None  # a list's items (unchecked when None), a map's values
    keys: Mapping[str, Field] | None = None  # an obj's fields
    optional: frozenset = frozenset()  # an obj's keys that may be missing
    extra: bool = False  # an obj keeps keys it does not know (informational blocks)
    null: bool = False
    choices: tuple = ()
    pattern: str | None = None
    #: More checks on the checked value, ``then(value, what) -> value``; raises ValueError.
    then: Callable[[Any, str], Any] | None = None
    brackets: str = "[]"  # "(" or ")": that end of the range is excluded
    unit: str = ""  # a number's unit, in messages (" Hz")


#: A JSON integer (not a bool, not a float) in ``[lo, hi]``: ``Int(lo, hi, **kw)``.
Int = partial(Field, "int")
#: A JSON number (not a bool) in ``[lo, hi]``, finite unless ``finite=False``.
Real = partial(Field, "real")
#: ``true`` or ``false`` (not 0 or 1).
Bool = partial(Field, "bool")


def Str(max_len: int = 256, **kw: Any) -> Field:  # noqa: N802
    """A string of at most ``max_len`` characters (``choices``/``pattern`` narrow it)."""
    return Field("str", max_len=max_len, **kw)


def List(item: Field | None = None, max_len: int = 1 << 20, **kw: Any) -> Field:  # noqa: N802
    """A JSON array of at most ``max_len`` items, each an ``item``."""
    return Field("list", item=item, max_len=max_len, **kw)


def Obj(keys: Mapping[str, Field], optional: Any = (), **kw: Any) -> Field:  # noqa: N802
    """A JSON object with exactly ``keys`` (``optional`` ones, or ``all``, may be missing)."""
    opt = frozenset(keys) if optional is all else frozenset(optional)
    return Field("obj", keys=dict(keys), optional=opt, **kw)


def Map(item: Field, max_len: int = 1 << 20, **kw: Any) -> Field:  # noqa: N802
    """A JSON object with any string keys, every value an ``item``."""
    return Field("map", item=item, max_len=max_len, **kw)


_KIND = {"int": "an integer", "real": "a number", "bool": "true or false", "str": "a string",
         "list": "a list", "obj": "a JSON object", "map": "a JSON object"}  # fmt: skip
_SIZED = {"str": (str, "characters"), "list": (list, "items"), "map": (dict, "entries")}


def short_repr(v: Any) -> str:
    """``repr(v)``, cut to 60 characters for messages."""
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


def check(f: Field, v: Any, what: str) -> Any:
    """``v`` checked against ``f``; the value to keep (floats for reals, copies of containers).

    Raises
    ------
    ValueError
        ``"<what>: must be ..., got ..."``, naming the innermost field (``a.b[2].c``)."""
    if v is None and f.null:
        return None

    def bad(desc: str) -> ValueError:
        return ValueError(f"{what}: must be {desc}, got {short_repr(v)}")
    t, out = f.type, v
    if t in ("int", "real"):
        (lb, rb), lo, hi = f.brackets, f.lo, f.hi
        span = f" in {lb}{lo}, {hi}{rb}{f.unit}" if lo is not None or hi is not None else ""
        if isinstance(v, bool) or not isinstance(v, int if t == "int" else (int, float)):
            raise bad(_KIND[t] + span)
        try:
            out = v if t == "int" else float(v)
        except OverflowError:
            raise bad("a number of float range") from None
        if t == "real" and f.finite and not math.isfinite(out):
            raise bad("a finite number" + span)
        low = lo is None or (out > lo if lb == "(" else out >= lo)  # False for NaN
        if not (low and (hi is None or (out < hi if rb == ")" else out <= hi))):
            raise bad(_KIND[t] + span)
    elif t in _SIZED:
        cls, unit = _SIZED[t]
        # a string with choices that is too long is refused below as "one of [...]"
        if not isinstance(v, cls) or len(v) > f.max_len and not f.choices:
            raise bad(f"{_KIND[t]} of at most {f.max_len} {unit}")
        if f.pattern is not None and not re.fullmatch(f.pattern, v):
            raise bad(f"a string matching {f.pattern}")
        if t == "list" and f.item is not None:
            out = [check(f.item, x, f"{what}[{i}]") for i, x in enumerate(v)]
        elif t == "map":
            out = {k: check(f.item, x, f"{what}[{k!r}]") for k, x in v.items()}
    elif not isinstance(v, bool if t == "bool" else dict):
        raise bad(_KIND[t])
    elif t == "obj":
        missing = [k for k in f.keys if k not in v and k not in f.optional]
        unknown = [] if f.extra else sorted(k for k in v if k not in f.keys)
        if missing or unknown:
            raise ValueError(f"{what or 'header'}: missing field(s) {missing[:10]}, "
                             f"unknown field(s) {[k[:40] for k in unknown[:10]]}")  # fmt: skip
        out = {k: check(f.keys[k], x, f"{what}.{k}" if what else k) if k in f.keys else x
               for k, x in v.items()}  # fmt: skip
    if f.choices and out not in f.choices:
        raise bad(f"one of {list(f.choices)}")
    if f.then is not None:
        try:
            out = f.then(out, what)
        except (TypeError, ValueError) as e:  # name the field unless the hook did
            msg = str(e)
            raise ValueError(msg if msg.startswith(what) else f"{what}: {msg}") from None
    return out


def must(ok: Callable[[Any], bool], desc: str) -> Callable[[Any, str], Any]:
    """A ``then`` hook: ValueError "must be ``desc``" unless ``ok(value)``."""

    def hook(v: Any, what: str) -> Any:
        if not ok(v):
            raise ValueError(f"must be {desc}, got {short_repr(v)}")
        return v
    return hook


def at_least(n: int) -> Callable[[Any, str], Any]:
    """A ``then`` hook: a list or map of at least ``n`` entries."""
    return must(lambda v: len(v) >= n, f"at least {n} entries")

