"""One vocabulary of checks for every field audiogmm writes to a file and reads back.

A :class:`Field` declares what a JSON value must be: its type, a range, finiteness,
a length, the allowed keys of an object (unknown keys are refused unless the block
is informational), nullability, a closed set of choices or a pattern, and an optional
``then`` hook for what a table cannot say (e.g. building a ``FeatureConfig``).
:func:`check` validates a value against a field; the tests derive, from the same
tables, the invalid variants of valid values that it must refuse
(``tests/tamper.py``), so every new field is tampered with as soon as it is declared.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Field", "Int", "Real", "Bool", "Str", "List", "Obj", "Map", "check"]


@dataclass(frozen=True)
class Field:
    """What one JSON value must be (build it with :func:`Int`, :func:`Obj`, ...)."""

    type: str  # "int", "real", "bool", "str", "list", "obj" (fixed keys), "map" (any keys)
    lo: float | None = None
    hi: float | None = None
    finite: bool = True
    max_len: int | None = None  # characters of a str, items of a list or map
    item: Field | None = None  # a list's items, a map's values
    keys: Mapping[str, Field] | None = None  # an obj's fields
    optional: frozenset = frozenset()  # an obj's keys that may be missing
    extra: bool = False  # an obj keeps keys it does not know (informational blocks)
    null: bool = False
    choices: tuple = ()
    pattern: str | None = None
    #: More checks on the checked value, ``then(value, what) -> value``; raises ValueError.
    then: Callable[[Any, str], Any] | None = None


def Int(lo: int | None = None, hi: int | None = None, **kw: Any) -> Field:  # noqa: N802
    """A JSON integer (not a bool, not a float) in ``[lo, hi]``."""
    return Field("int", lo=lo, hi=hi, **kw)


def Real(lo: float | None = None, hi: float | None = None, **kw: Any) -> Field:  # noqa: N802
    """A JSON number (not a bool) in ``[lo, hi]``, finite unless ``finite=False``."""
    return Field("real", lo=lo, hi=hi, **kw)


def Bool(**kw: Any) -> Field:  # noqa: N802
    """``true`` or ``false`` (not 0 or 1)."""
    return Field("bool", **kw)


def Str(max_len: int = 256, **kw: Any) -> Field:  # noqa: N802
    """A string of at most ``max_len`` characters (``choices``/``pattern`` narrow it)."""
    return Field("str", max_len=max_len, **kw)


def List(item: Field | None = None, max_len: int = 1 << 20, **kw: Any) -> Field:  # noqa: N802
    """A JSON array of at most ``max_len`` items, each an ``item`` (unchecked when None)."""
    return Field("list", item=item, max_len=max_len, **kw)


def Obj(keys: Mapping[str, Field], optional: Any = (), **kw: Any) -> Field:  # noqa: N802
    """A JSON object with exactly ``keys`` (``optional`` ones may be missing)."""
    opt = frozenset(keys) if optional is all else frozenset(optional)
    return Field("obj", keys=dict(keys), optional=opt, **kw)


def Map(item: Field, max_len: int = 1 << 20, **kw: Any) -> Field:  # noqa: N802
    """A JSON object with any string keys, every value an ``item``."""
    return Field("map", item=item, max_len=max_len, **kw)


def _show(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


def _range(f: Field) -> str:
    return f" in [{f.lo}, {f.hi}]" if f.lo is not None or f.hi is not None else ""


_KIND = {"int": "an integer", "real": "a number", "bool": "true or false", "str": "a string",
         "list": "a list", "obj": "a JSON object", "map": "a JSON object"}  # fmt: skip


def _key(what: str, k: str) -> str:
    return f"{what}.{k}" if what else k


def check(f: Field, v: Any, what: str) -> Any:
    """``v`` checked against ``f``; the value to keep (floats for reals, copies of containers).

    Raises
    ------
    ValueError
        ``"<what>: must be ..., got ..."``, naming the innermost field (``a.b[2].c``).
    """
    if v is None and f.null:
        return None

    def bad(desc: str) -> ValueError:
        return ValueError(f"{what}: must be {desc}, got {_show(v)}")

    t = f.type
    if t == "bool":
        if not isinstance(v, bool):
            raise bad(_KIND[t])
        out: Any = v
    elif t in ("int", "real"):
        if isinstance(v, bool) or not isinstance(v, int if t == "int" else (int, float)):
            raise bad(_KIND[t] + _range(f))
        try:
            out = v if t == "int" else float(v)
        except OverflowError:
            raise bad("a number of float range") from None
        if t == "real" and f.finite and not math.isfinite(out):
            raise bad("a finite number" + _range(f))
        if (f.lo is not None and not out >= f.lo) or (f.hi is not None and not out <= f.hi):
            raise bad(_KIND[t] + _range(f))
    elif t == "str":
        if not isinstance(v, str) or len(v) > f.max_len:
            raise bad(f"a string of at most {f.max_len} characters")
        if f.pattern is not None and not re.fullmatch(f.pattern, v):
            raise bad(f"a string matching {f.pattern}")
        out = v
    elif t == "list":
        if not isinstance(v, list) or len(v) > f.max_len:
            raise bad(f"a list of at most {f.max_len} items")
        out = v if f.item is None else [check(f.item, x, f"{what}[{i}]") for i, x in enumerate(v)]
    elif t == "map":
        if not isinstance(v, dict) or len(v) > f.max_len:
            raise bad(f"a JSON object of at most {f.max_len} entries")
        out = {k: check(f.item, x, f"{what}[{k!r}]") for k, x in v.items()}
    else:  # obj
        if not isinstance(v, dict):
            raise bad(_KIND[t])
        missing = [k for k in f.keys if k not in v and k not in f.optional]
        unknown = [] if f.extra else sorted(k for k in v if k not in f.keys)
        if missing or unknown:
            raise ValueError(
                f"{what or 'header'}: missing field(s) {missing[:10]}, "
                f"unknown field(s) {[k[:40] for k in unknown[:10]]}"
            )
        out = {k: check(f.keys[k], x, _key(what, k)) if k in f.keys else x for k, x in v.items()}
    if f.choices and out not in f.choices:
        raise bad(f"one of {list(f.choices)}")
    if f.then is not None:
        try:
            out = f.then(out, what)
        except (TypeError, ValueError) as e:  # name the field unless the hook did
            msg = str(e)
            raise ValueError(msg if msg.startswith(what) else f"{what}: {msg}") from None
    return out
