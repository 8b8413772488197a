"""Invalid variants of valid header values, derived from the field tables of audiogmm.io."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from audiogmm.checks import Field


def _key(what: str, k: str) -> str:
    return f"{what}.{k}" if what else k


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
