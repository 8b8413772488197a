"""The audiogmm file container: one ``.npz`` of stored members, no pickle, a checksummed header.

One ``<name>.npy`` per numeric array and ``__header__.npy``, UTF-8 JSON as 1-D ``uint8``:
format, version, kind, every array's dtype and shape, the object's own fields, a SHA-256 over
all of it, and an HMAC-SHA256 signature when ``AUDIOGMM_MODEL_KEY`` is set."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import math
import os
import re
import stat
import struct
import zipfile
from typing import Any

import numpy as np

from .._version import __version__
from ..checks import Field, Int, List, Map, Obj, Str, check
from ..exceptions import ModelFileError, ParameterError
from .atomic import atomic_write

__all__ = [
    "CONTAINER_KEYS", "FORMAT_NAME", "FORMAT_VERSION", "KEY_ENV", "MAX_HEADER_BYTES", "checked",
    "open_regular", "parse_json", "read_container", "read_kind", "read_npy_header",
    "write_container",
]  # fmt: skip

FORMAT_NAME = "audiogmm"
FORMAT_VERSION = 1
#: Environment variable holding the key of the optional HMAC-SHA256 signature.
KEY_ENV = "AUDIOGMM_MODEL_KEY"
#: Largest JSON header written or read (bytes): a ``split`` block's digests take ~19 bytes
#: per training file (4 MB: ~200,000 files); parsing 4 MB of JSON stays under 300 MB.
MAX_HEADER_BYTES = 4 << 20
_MAX_DEPTH = 32  # deepest nesting of JSON arrays/objects in a header (real ones: 4)
_MAX_MEMBERS = 32
_MAX_DIRECTORY_BYTES = 64 << 10
_NPY_HEADER_MAX = 4096
_HEADER_KEY = "__header__"
_MEMBER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\.npy")
_ALLOWED_KINDS = {"f", "i", "u", "b"}  # float, int, uint, bool: nothing that needs pickle
#: What the container checks after the format and version; the other fields are the object's.
_ENVELOPE = Obj({
    "kind": Str(64), "audiogmm_version": Str(64), "checksum": Str(80), "signature": Str(80),
    "arrays": Map(Obj({"dtype": Str(16), "shape": List(Int(0), max_len=32)}), max_len=_MAX_MEMBERS),
}, optional=("signature",), extra=True)  # fmt: skip
#: Keys the container itself writes and checks; the others are the object's (its table's).
CONTAINER_KEYS = ("format", "format_version", *_ENVELOPE.keys)


def _checksum(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    body = {k: v for k, v in header.items() if k not in ("checksum", "signature")}
    h.update(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    for name, a in sorted(arrays.items()):  # C-order arrays: made so on write, copied on read
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.reshape(-1).view(np.uint8))  # the buffer itself, no copy
    return "sha256:" + h.hexdigest()


def _signature(checksum: str) -> str | None:
    key = os.environ.get(KEY_ENV)
    if not key:
        return None
    return "hmac-sha256:" + hmac.new(key.encode(), checksum.encode(), hashlib.sha256).hexdigest()


def write_container(path: str | os.PathLike, *, kind: str, header: dict[str, Any],
                    arrays: dict[str, np.ndarray]) -> None:  # fmt: skip
    """Write numeric ``arrays`` and a JSON ``header`` of object ``kind`` to ``path``, atomically.
    ParameterError for a header the reader would refuse."""
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    for k, v in arrays.items():
        if v.dtype.kind not in _ALLOWED_KINDS:
            raise TypeError(f"array {k!r} has dtype {v.dtype}; only numeric arrays are stored")
    full = {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "kind": kind,
        "audiogmm_version": __version__,
        "arrays": {k: {"dtype": v.dtype.str, "shape": list(v.shape)} for k, v in arrays.items()},
        **header,
    }  # fmt: skip
    full["checksum"] = _checksum(full, arrays)
    if (sig := _signature(full["checksum"])) is not None:
        full["signature"] = sig
    try:  # the reader refuses lone surrogates (e.g. a label from an undecodable file name)
        raw = json.dumps(full, sort_keys=True, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:
        raise ParameterError(f"cannot save {os.fspath(path)}: the header holds text that is not "
                             f"valid Unicode ({e.object[e.start : e.end]!r}, e.g. from a file "
                             "name with undecodable bytes)") from None  # fmt: skip
    blob = np.frombuffer(raw, dtype=np.uint8)
    if blob.size > MAX_HEADER_BYTES:  # the reader would refuse it: never write such a file
        big = max(header, key=lambda k: len(json.dumps(header[k], default=str)))
        raise ParameterError(f"cannot save {os.fspath(path)}: its header would be {blob.size} "
                             f"bytes, over the limit of {MAX_HEADER_BYTES} (largest block: "
                             f"{big!r})")  # fmt: skip
    atomic_write(path, lambda f: np.savez(f, **{_HEADER_KEY: blob}, **arrays))


class _Bad(Exception):
    """Becomes a ModelFileError naming the file."""


def _check_zip_directory(f) -> int:
    """The file's size; bounds the zip directory (entry count, size) before zipfile reads it."""
    size = f.seek(0, os.SEEK_END)
    tail = min(size, 22 + 0xFFFF)
    f.seek(size - tail)
    buf = f.read(tail)
    # as zipfile does: a record without comment ends the file, else the last signature
    at = len(buf) - 22 if buf[-22:-18] == b"PK\x05\x06" and buf[-2:] == b"\0\0" else -1
    if at < 0:
        at = buf.rfind(b"PK\x05\x06")
    if at < 0 or len(buf) - at < 22:
        raise _Bad("corrupt or truncated file (no zip directory at the end)")
    _, disk, _, n_here, n_total, cd_size, _, _ = struct.unpack("<4s4H2LH", buf[at : at + 22])
    # zipfile trusts a zip64 record (found just before this one) over these fields
    zip64 = at >= 20 and buf[at - 20 : at - 16] == b"PK\x06\x07"
    if zip64 or n_total == 0xFFFF or cd_size == 0xFFFFFFFF:
        raise _Bad("zip64 directories are not written by audiogmm; refused")
    if disk != 0 or n_here != n_total:
        raise _Bad("multi-part zip archives are refused")
    if n_total > _MAX_MEMBERS or cd_size > _MAX_DIRECTORY_BYTES:
        raise _Bad(f"zip directory lists {n_total} members in {cd_size} bytes; too many")
    return size


def read_npy_header(f, max_header_size: int) -> tuple[tuple, bool, np.dtype]:
    """(shape, fortran order, dtype) of the .npy v1/v2 header at ``f``, left at the data."""
    version = np.lib.format.read_magic(f)
    read = {(1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0}.get(version)  # fmt: skip
    if read is None:
        raise ValueError(f"unsupported .npy version {version}")
    return read(f, max_header_size=max_header_size)


def _npy_header(z: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple, np.dtype, int]:
    """(shape, dtype, data offset) of one ``.npy`` member, reading only its header."""
    name = info.filename
    pickled = f"member {name!r} contains a pickled object array; refused"
    with z.open(info) as m:
        b = io.BytesIO(m.read(min(info.file_size, _NPY_HEADER_MAX)))
    try:
        shape, fortran, dtype = read_npy_header(b, 2000)
    except ValueError as e:
        obj = "pickle" in str(e) or "object" in str(e).lower()
        raise _Bad(pickled if obj else f"member {name!r} is not a valid .npy array ({e})") from None
    if dtype.hasobject:
        raise _Bad(pickled)
    if (dtype.kind not in _ALLOWED_KINDS or dtype.fields is not None
            or dtype.subdtype is not None or dtype.byteorder == ">" or fortran):  # fmt: skip
        raise _Bad(f"member {name!r} has unsupported dtype {dtype} (fortran_order={fortran})")
    if any(n < 0 for n in shape):
        raise _Bad(f"member {name!r} has a negative dimension {shape}")
    need = b.tell() + math.prod(shape) * dtype.itemsize
    if need != info.file_size:
        raise _Bad(f"member {name!r} declares {info.file_size} bytes but its .npy header "
                   f"{shape} {dtype} needs {need}")  # fmt: skip
    return tuple(shape), dtype, b.tell()


def _read_member(z: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    with z.open(info) as m:
        data = m.read(info.file_size)  # stored: exactly this, CRC checked
    if len(data) != info.file_size:
        raise _Bad(f"member {info.filename!r} is truncated")
    return data


def _json_depth(raw: bytes) -> int:
    """Deepest nesting of ``[``/``{`` outside JSON strings (a quote not after an odd run of
    backslashes toggles a string), vectorised."""
    b = np.frombuffer(raw, dtype=np.uint8)
    if not b.size:
        return 0
    idx = np.arange(b.size)
    backslash = b == ord("\\")
    run = idx - np.maximum.accumulate(np.where(backslash, -1, idx))  # backslashes ending here
    quote = b == ord('"')
    quote[1:] &= run[:-1] % 2 == 0
    outside = np.cumsum(quote) % 2 == 0
    step = ((b == ord("[")) | (b == ord("{"))).astype(np.int32)
    step -= (b == ord("]")) | (b == ord("}"))
    step[~outside] = 0
    return int(np.cumsum(step).max(initial=0))


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(f"duplicate key {dup!r} in a JSON object")
    return d


def parse_json(raw: bytes) -> Any:
    """JSON from UTF-8 bytes, at most 32 deep (measured first), no duplicate keys or lone
    surrogates; else ValueError."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"not UTF-8: {e}") from None
    depth = _json_depth(raw)
    if depth > _MAX_DEPTH:
        raise ValueError(f"nests {depth} levels deep (at most {_MAX_DEPTH})")
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except (ValueError, RecursionError) as e:
        raise ValueError(f"not valid JSON ({type(e).__name__}: {str(e)[:200]})") from None
    try:  # a lone surrogate (JSON "\ud800") would crash whoever prints the value
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("holds invalid Unicode (a lone surrogate)") from None
    return value


def open_regular(name: str):
    """``open(name, "rb")`` of a non-empty regular file (no FIFO, no device); else ValueError."""
    try:
        st = os.stat(name)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file")
        if st.st_size == 0:
            raise ValueError("file is empty")
        # O_NONBLOCK: a FIFO swapped in after the stat cannot block the open
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ValueError("not a regular file")
        return os.fdopen(fd, "rb")
    except FileNotFoundError:
        raise ValueError("no such file") from None
    except OSError as e:
        raise ValueError(f"cannot read ({(e.strerror or str(e)).lower()})") from None


def read_container(
    path: str | os.PathLike, *, kind: str | tuple[str, ...] | None,
    names: tuple[str, ...] | dict[str, tuple[str, ...] | None] | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:  # fmt: skip
    """The header and arrays of a :func:`write_container` file, trusting nothing: the zip
    directory, members and ``.npy`` headers are bounded before any array byte is read; then
    format, version, ``kind`` (str, tuple; None: the header only), the arrays (exactly
    ``names``, a tuple or a dict by kind), checksum and signature. ModelFileError otherwise."""
    name = os.fspath(path)
    try:
        with open_regular(name) as f:
            if f.read(4) != b"PK\x03\x04":
                raise _Bad("not an audiogmm model file (not an .npz/zip archive)")
            try:
                file_size = _check_zip_directory(f)
                f.seek(0)
                with zipfile.ZipFile(f) as z:
                    return _read_zip(z, file_size, kind, names)
            except _Bad:
                raise
            except Exception as e:  # zipfile raises many types on damaged bytes
                raise _Bad(f"corrupt or truncated file ({type(e).__name__}: {e})") from None
    except (_Bad, ValueError) as e:  # ValueError: open_regular's
        raise ModelFileError(f"{name}: {e}") from None


def read_kind(path: str | os.PathLike) -> str:
    """The kind a container file claims (its header checked; no array byte read)."""
    return read_container(path, kind=None)[0]["kind"]


def checked(name: str, table: Field, header: dict[str, Any]) -> dict[str, Any]:
    """The object's own fields of ``header`` checked against ``table`` (ModelFileError)."""
    try:
        return check(table, {k: v for k, v in header.items() if k not in CONTAINER_KEYS}, "")
    except ValueError as e:
        msg = str(e)
        field = "" if msg.startswith("header") else "header field "
        raise ModelFileError(f"{name}: {field}{msg}") from None


def _read_zip(z: zipfile.ZipFile, file_size: int, kind: Any,
              expected: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:  # fmt: skip
    infos = z.infolist()
    names = [i.filename for i in infos]
    for i in infos:
        if not _MEMBER_RE.fullmatch(i.filename):
            raise _Bad(f"unexpected member name {i.filename!r} in the archive")
        if i.flag_bits & 0x1:
            raise _Bad(f"member {i.filename!r} is encrypted")
        if i.compress_type != zipfile.ZIP_STORED or i.compress_size != i.file_size:
            raise _Bad(f"member {i.filename!r} is compressed; audiogmm files store members")
    if len(set(names)) != len(names):
        raise _Bad("the archive holds two members of the same name")
    if sum(i.file_size for i in infos) > file_size:
        raise _Bad("members declare more bytes than the file holds")
    # .npy headers first (a few bytes each), so a pickled member is named as such
    members = {i.filename[:-4]: (*_npy_header(z, i), i) for i in infos}
    if _HEADER_KEY not in members:
        raise _Bad("no audiogmm header; not an audiogmm file")
    hshape, hdtype, hoff, hinfo = members.pop(_HEADER_KEY)
    if hdtype != np.uint8 or len(hshape) != 1:
        raise _Bad("unreadable header (must be a 1-D uint8 array)")
    if hshape[0] > MAX_HEADER_BYTES:
        raise _Bad(f"header of {hshape[0]} bytes exceeds the limit of {MAX_HEADER_BYTES}")
    try:
        header = parse_json(_read_member(z, hinfo)[hoff:])
    except ValueError as e:
        raise _Bad(f"unreadable header ({e})") from None
    if not isinstance(header, dict):
        raise _Bad("header is not a JSON object")
    if header.get("format") != FORMAT_NAME:
        raise _Bad(f"format {str(header.get('format'))[:40]!r}, expected {FORMAT_NAME!r}")
    version = header.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise _Bad(f"format version {str(version)[:20]} is not supported "
                   f"(this audiogmm {__version__} reads version {FORMAT_VERSION})")  # fmt: skip
    try:
        check(_ENVELOPE, header, "header")
    except ValueError as e:
        raise _Bad(str(e)) from None
    if kind is None:  # read_kind
        return header, {}
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    if header["kind"] not in kinds:
        want = " or ".join(repr(k) for k in kinds)
        raise _Bad(f"holds a {header['kind'][:40]!r}, expected a {want}")
    if isinstance(expected, dict):
        expected = expected[header["kind"]]
    if expected is not None and set(members) != set(expected):
        raise _Bad(f"holds arrays {sorted(members)}, expected exactly {sorted(expected)}")
    listed = header["arrays"]
    if set(listed) != set(members):
        raise _Bad(f"arrays {sorted(members)} do not match the header's list {sorted(listed)[:20]}")
    for k, (shape, dtype, *_) in members.items():
        if listed[k] != {"dtype": dtype.str, "shape": list(shape)}:
            raise _Bad(f"array {k!r} is {dtype.str} {list(shape)} in the file but the header "
                       f"says {listed[k]['dtype']!r} {listed[k]['shape']!r}")  # fmt: skip
    arrays = {  # copies: writable, and the read buffers are freed
        k: np.frombuffer(_read_member(z, info), dtype=dtype, offset=off).reshape(shape).copy()
        for k, (shape, dtype, off, info) in members.items()
    }
    if header.get("checksum") != _checksum(header, arrays):
        raise _Bad("checksum mismatch; the file was modified or is damaged")
    want, sig = _signature(header["checksum"]), header.get("signature")
    if want is not None and sig is None:
        raise _Bad(f"not signed, but {KEY_ENV} is set: only signed models are loaded")
    if want is not None and not hmac.compare_digest(sig, want):
        raise _Bad(f"bad signature: not signed with the key in {KEY_ENV}, or modified")
    return header, arrays
