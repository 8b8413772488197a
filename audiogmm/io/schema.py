"""One vocabulary of checks for every field audiogmm writes to a file and reads back.

A :class:`Field` declares what a JSON value must be: its type, a range, finiteness,
a length, the allowed keys of an object (unknown keys are refused unless the block
is informational), nullability, a closed set of choices or a pattern, and an optional
``then`` hook for what a table cannot say (e.g. building a ``FeatureConfig``).
:func:`check` validates a value against a field; :func:`tampered` derives, from the
same table, the invalid variants of a valid value that :func:`check` must refuse, so
that every new field is tampered with by the tests as soon as it is declared.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Field", "Int", "Real", "Bool", "Str", "List", "Obj", "Map", "check", "tampered"]


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


# ----------------------------------------------------------------------------- tampering

_OTHER = {"int": "1", "real": "1", "bool": 1, "str": 5, "list": "x", "obj": [], "map": []}


def tampered(f: Field, v: Any, what: str) -> Iterator[tuple[str, Any]]:
    """``(field, bad)`` pairs: ``v`` (valid for ``f``) with one field made invalid.

    Derived from the table alone: a value of another type, a value outside the range,
    a non-finite number, an over-long string, a choice not offered, a missing required
    key, an unknown key; recursively into the first items of lists and maps and every
    field of an object. :func:`check` refuses each ``bad`` value.
    """
    if v is None:
        return
    if what:  # (not the header itself)
        yield what, _OTHER[f.type]
        if not f.null:
            yield what, None
    if f.type in ("int", "real"):
        if f.lo is not None:
            yield what, (f.lo - 1 if f.type == "int" else -abs(f.lo) * 2 - 1)
        if f.hi is not None:
            yield what, (f.hi + 1 if f.type == "int" else abs(f.hi) * 2 + 1)
        if f.type == "real" and f.finite:
            yield what, float("nan")
            yield what, 1e309  # json.dumps writes Infinity
        if f.type == "int":
            yield what, 1.5
    if f.type == "bool":
        yield what, 0
    if f.type == "str":
        yield what, "x" * (f.max_len + 1)
        if f.choices:
            yield what, "zz not allowed ~"
        if f.pattern:
            yield what, ""  # every pattern in the tables needs at least one character
    if f.type == "list" and f.item is not None and v:
        for w, bad in tampered(f.item, v[0], f"{what}[0]"):
            yield w, [bad, *v[1:]]
    if f.type == "map" and v:
        k0 = next(iter(v))
        for w, bad in tampered(f.item, v[k0], f"{what}[{k0!r}]"):
            yield w, {**v, k0: bad}
    if f.type == "obj":
        if not f.extra:
            yield what, {**v, "zz_unknown": 1}
        for k, x in v.items():
            if k not in f.keys:
                continue
            if k not in f.optional:
                yield _key(what, k), {j: y for j, y in v.items() if j != k}
            for w, bad in tampered(f.keys[k], x, _key(what, k)):
                yield w, {**v, k: bad}
