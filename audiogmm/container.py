"""The audiogmm file container: one ``.npz``, no pickle, a checksummed JSON header.

Every file audiogmm writes (a :class:`~audiogmm.mixture.DiagGMM`, a
:class:`~audiogmm.models.GMMClassifier`, a :class:`~audiogmm.mixture.Stats`) is a
plain NumPy ``.npz`` archive (a zip whose members are *stored*, not compressed) holding

* the numeric arrays of the object, one ``<name>.npy`` member each, and
* ``__header__.npy``: a 1-D ``uint8`` array carrying UTF-8 JSON with the format name,
  the format version, the object kind, the audiogmm version, the dtype and shape of
  every array, the object's own metadata (parameters, feature configuration, labels,
  training summary), a SHA-256 checksum over the arrays *and* the rest of the header,
  and, when ``AUDIOGMM_MODEL_KEY`` is set, an HMAC-SHA256 signature.

Reading trusts nothing (see :func:`read_container`): the zip directory, the member
names, their declared sizes and the ``.npy`` headers are checked against each other
and against the JSON header before any array byte is read; the header's size and
nesting depth are capped; every header field goes through one validator from a
table the caller passes (one validator per top-level key). Members must be stored,
so the bytes read never exceed the file's size: no zip bomb can inflate.

Files are written to a temporary file in the destination folder and moved into
place with :func:`os.replace` (:func:`atomic_write`), so an interrupted write never
leaves a partial file behind; new files honour the umask, overwritten files keep
their mode, and temporary files left by killed writers are removed on a later write
to the same folder.
"""

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
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np

from ._version import __version__
from .exceptions import ModelFileError, ParameterError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "KEY_ENV",
    "MAX_HEADER_BYTES",
    "MAX_HEADER_DEPTH",
    "Validator",
    "atomic_write",
    "check_writable",
    "field_bool",
    "field_dict",
    "field_int",
    "field_list",
    "field_real",
    "field_str",
    "info_block",
    "jsonable",
    "read_container",
    "read_kind",
    "write_container",
]

FORMAT_NAME = "audiogmm"
FORMAT_VERSION = 1
#: Environment variable holding the key of the optional HMAC-SHA256 signature.
KEY_ENV = "AUDIOGMM_MODEL_KEY"
#: Largest JSON header written or read (bytes). Most headers are a few kB; the largest
#: part is a ``split`` block's training-file digests (~19 bytes per file: 4 MB is about
#: 200,000 training files), and parsing 4 MB of JSON stays well under 300 MB.
MAX_HEADER_BYTES = 4 << 20
#: Deepest nesting of JSON arrays/objects in a header (real headers nest 4 deep).
MAX_HEADER_DEPTH = 32
_MAX_MEMBERS = 32
_MAX_DIRECTORY_BYTES = 64 << 10
_NPY_HEADER_MAX = 4096
_HEADER_KEY = "__header__"
_MEMBER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\.npy")
_ALLOWED_KINDS = {"f", "i", "u", "b"}  # float, int, uint, bool: nothing that needs pickle
#: Keys the container itself writes and checks; every other top-level key needs a validator.
_CONTAINER_KEYS = ("format", "format_version", "kind", "audiogmm_version", "arrays", "checksum")
_SIGNATURE_KEY = "signature"

#: A header validator: takes the raw JSON value, returns the value to keep, and raises
#: ``ValueError`` / ``TypeError`` (``ParameterError`` is a ``ValueError``) with the reason,
#: or a ``ModelFileError`` whose message names the field itself (used as is).
Validator = Callable[[Any], Any]


def jsonable(obj: Any) -> Any:
    """``obj`` with NumPy scalars and arrays turned into plain Python, for JSON headers."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


# ---------------------------------------------------------------------------- checksums


def _checksum(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    body = {k: v for k, v in header.items() if k not in ("checksum", _SIGNATURE_KEY)}
    h.update(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.reshape(-1).view(np.uint8))  # the buffer itself, no copy
    return "sha256:" + h.hexdigest()


def _model_key() -> bytes | None:
    key = os.environ.get(KEY_ENV)
    return key.encode("utf-8") if key else None


def _signature(key: bytes, checksum: str) -> str:
    # the checksum already covers every array byte and every other header field
    return "hmac-sha256:" + hmac.new(key, checksum.encode("ascii"), hashlib.sha256).hexdigest()


# ---------------------------------------------------------------------------- writing

_CLEANED: set[str] = set()
_CLEANED_LOCK = threading.Lock()
#: A temporary file whose writer (same host) is dead is removed once it is this old (s).
STALE_DEAD_S = 600.0
#: Any temporary file this old is removed, whoever wrote it (pid reuse, other hosts).
STALE_ANY_S = 86400.0
_TMP_RE = re.compile(r"\.tmp-(?:(\d+)-)?")


def _umask() -> int:
    try:  # Linux >= 4.7: read it without changing it (os.umask is process-wide, racy)
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _CLEANED_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # exists (another user's) or not a pid we can judge: keep the file
    return True


def _clean_stale_temps(folder: str) -> None:
    """Remove ``.tmp-*`` files left in ``folder`` by writers that were killed.

    Safe against concurrent writers: a temporary file is removed only when its
    writer's pid (in its name) is dead and it has not been touched for
    :data:`STALE_DEAD_S`, or when it has not been touched for :data:`STALE_ANY_S`
    (pid reuse, writers on other hosts of a shared file system). Runs once per
    folder per process, so writing many files into one folder stays O(n).
    """
    with _CLEANED_LOCK:
        if folder in _CLEANED:
            return
        _CLEANED.add(folder)
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for e in entries:
        m = _TMP_RE.match(e.name)
        if not m:
            continue
        try:
            st = e.stat(follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                continue
            age = now - st.st_mtime
            pid = int(m.group(1)) if m.group(1) else None
            dead = pid is not None and pid != os.getpid() and not _pid_alive(pid)
            if age > STALE_ANY_S or (dead and age > STALE_DEAD_S):
                os.unlink(e.path)
        except OSError:
            continue  # vanished (another cleaner) or not ours to remove


def atomic_write(
    path: str | os.PathLike, write, *, mode: str = "wb", durable: bool = True
) -> None:
    """Call ``write(fileobj)`` on a temporary file next to ``path``, then rename it.

    The rename is atomic on POSIX and Windows, so readers see either the old file
    or the complete new one, never a partial write. A new file gets mode
    ``0o666 & ~umask`` (as ``open`` would give it); an overwritten file keeps its
    mode. Temporary files left in the folder by killed writers are removed first
    (see :func:`_clean_stale_temps`). ``durable=False`` skips the fsync before the
    rename: a killed process still leaves the old file or the new one, but a power
    loss may leave a torn file, so only for files whose reader verifies them (the
    feature cache, where the fsync cost as much as the extraction).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        _clean_stale_temps(folder)
        try:
            file_mode = stat.S_IMODE(os.stat(path).st_mode) & 0o777  # never set-id bits
        except FileNotFoundError:
            file_mode = 0o666 & ~_umask()
        fd, tmp = tempfile.mkstemp(
            dir=folder, prefix=f".tmp-{os.getpid()}-", suffix="-" + os.path.basename(path)
        )
    except OSError as e:
        raise _output_error(path, e) from None
    try:
        os.fchmod(fd, file_mode)  # mkstemp makes 0600 whatever the umask
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and e.filename == tmp:  # name the user's file, not ours
            raise _output_error(path, e) from None
        raise


def _output_error(name: str, e: OSError) -> OSError:
    """``e``'s type, with a message naming the user's output ``name`` and the reason."""
    reason = (e.strerror or str(e)).lower()
    return type(e)(f"{name}: cannot write the output there ({reason})")


def check_writable(path: str | os.PathLike, *, folder: bool = False) -> None:
    """Fail early, naming ``path``, when an output could not be written there.

    Call it before long work. Creates the missing folders (as the final write
    would), then creates and removes a probe file in the output's folder.

    Parameters
    ----------
    path : str or PathLike
        The output file (or, with ``folder=True``, the output folder) as the user gave it.
    folder : bool
        ``path`` is a folder to write files into, not a file.

    Raises
    ------
    OSError
        (``PermissionError``, ``NotADirectoryError``, ``IsADirectoryError``, ...) whose
        message names ``path`` and the reason.
    """
    name = os.fspath(path)
    target = os.path.abspath(name)
    where = target if folder else os.path.dirname(target)
    if not folder and os.path.isdir(target):
        raise IsADirectoryError(f"{name}: is a folder; give a file name for the output")
    try:
        os.makedirs(where, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=where, prefix=f".tmp-{os.getpid()}-", suffix="-probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise _output_error(name, e) from None


def write_container(
    path: str | os.PathLike,
    *,
    kind: str,
    header: dict[str, Any],
    arrays: dict[str, np.ndarray],
) -> dict[str, Any]:
    """Write ``arrays`` and a JSON ``header`` to ``path`` as one checksummed ``.npz``.

    When the environment variable :data:`KEY_ENV` is set, the header also gets an
    HMAC-SHA256 signature with that key.

    Parameters
    ----------
    path : str or PathLike
        Destination; written atomically.
    kind : str
        Object kind stored in the header (e.g. ``"DiagGMM"``); checked on read.
    header : dict
        JSON-serialisable metadata.
    arrays : dict of str to ndarray
        Numeric arrays (no object dtype).

    Returns
    -------
    header : dict
        The full header as written (with format fields and checksum).

    Raises
    ------
    ParameterError
        When the header holds text that is not valid Unicode (the reader would refuse it).
    """
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    for k, v in arrays.items():
        if v.dtype.kind not in _ALLOWED_KINDS:
            raise TypeError(f"array {k!r} has dtype {v.dtype}; only numeric arrays are stored")
    full = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "audiogmm_version": __version__,
        "arrays": {k: {"dtype": v.dtype.str, "shape": list(v.shape)} for k, v in arrays.items()},
        **header,
    }
    full["checksum"] = _checksum(full, arrays)
    key = _model_key()
    if key is not None:
        full[_SIGNATURE_KEY] = _signature(key, full["checksum"])
    try:  # the reader refuses lone surrogates (e.g. a label from an undecodable file name)
        json.dumps(full, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:
        bad = e.object[e.start : e.end]
        raise ParameterError(
            f"cannot save {os.fspath(path)}: the header holds text that is not valid Unicode "
            f"({bad!r}, e.g. from a file name with undecodable bytes)"
        ) from None
    blob = np.frombuffer(json.dumps(full, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    if blob.size > MAX_HEADER_BYTES:  # the reader would refuse it: never write such a file
        big = max(header, key=lambda k: len(json.dumps(header[k], default=str)))
        raise ParameterError(
            f"cannot save {os.fspath(path)}: its header would be {blob.size} bytes, over the "
            f"limit of {MAX_HEADER_BYTES} (largest block: {big!r})"
        )
    atomic_write(path, lambda f: np.savez(f, **{_HEADER_KEY: blob}, **arrays))
    return full


# ---------------------------------------------------------------------------- reading


class _Bad(Exception):
    """A structural problem; becomes a ModelFileError naming the file."""


def _check_zip_directory(f) -> None:
    """Bound the zip directory (entry count and size) before zipfile parses it."""
    f.seek(0, os.SEEK_END)
    size = f.tell()
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


def _npy_header(z: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple, np.dtype, int]:
    """(shape, dtype, data offset) of one ``.npy`` member, reading only its header."""
    name = info.filename
    with z.open(info) as m:
        head = m.read(min(info.file_size, _NPY_HEADER_MAX))
    b = io.BytesIO(head)
    try:
        version = np.lib.format.read_magic(b)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(b, max_header_size=2000)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(b, max_header_size=2000)
        else:
            raise ValueError(f".npy version {version}")
    except ValueError as e:
        if "pickle" in str(e) or "object" in str(e).lower():
            raise _Bad(f"member {name!r} contains a pickled object array; refused") from None
        raise _Bad(f"member {name!r} is not a valid .npy array ({e})") from None
    if dtype.hasobject:
        raise _Bad(f"member {name!r} contains a pickled object array; refused")
    if (
        dtype.kind not in _ALLOWED_KINDS
        or dtype.fields is not None
        or dtype.subdtype is not None
        or dtype.byteorder == ">"
        or fortran
    ):
        raise _Bad(f"member {name!r} has unsupported dtype {dtype} (fortran_order={fortran})")
    if any(n < 0 for n in shape):
        raise _Bad(f"member {name!r} has a negative dimension {shape}")
    nbytes = math.prod(shape) * dtype.itemsize
    if b.tell() + nbytes != info.file_size:
        raise _Bad(
            f"member {name!r} declares {info.file_size} bytes but its .npy header "
            f"{shape} {dtype} needs {b.tell() + nbytes}"
        )
    return tuple(shape), dtype, b.tell()


def _read_member(z: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    with z.open(info) as m:
        data = m.read(info.file_size)  # stored member: reads exactly this, then checks the CRC
    if len(data) != info.file_size:
        raise _Bad(f"member {info.filename!r} is truncated")
    return data


def _json_depth(raw: bytes) -> int:
    """Deepest nesting of ``[``/``{`` outside JSON strings: vectorised, linear, no recursion.

    A quote opens or closes a string unless an odd run of backslashes precedes it (UTF-8
    continuation bytes are never ASCII, so scanning bytes is exact for valid JSON; on
    invalid JSON the count is exact up to the first error, where json.loads stops).
    """
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


def _parse_header(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _Bad(f"unreadable header (not UTF-8: {e})") from None
    depth = _json_depth(raw)
    if depth > MAX_HEADER_DEPTH:
        raise _Bad(f"header nests {depth} levels deep (at most {MAX_HEADER_DEPTH})")
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except (ValueError, RecursionError) as e:
        raise _Bad(f"unreadable header ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(header, dict):
        raise _Bad("header is not a JSON object")
    try:  # a lone surrogate (JSON "\ud800") would crash whoever prints the value
        json.dumps(header, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise _Bad("header holds invalid Unicode (a lone surrogate)") from None
    return header


def _array_specs(listed: Any, members: dict[str, tuple]) -> None:
    if not isinstance(listed, dict):
        raise _Bad("header field 'arrays' must be an object")
    if set(listed) != set(members):
        raise _Bad(f"arrays {sorted(members)} do not match the header's list {sorted(listed)[:20]}")
    for k, spec in listed.items():
        shape, dtype = members[k][:2]
        if not isinstance(spec, dict) or set(spec) != {"dtype", "shape"}:
            raise _Bad(f"header field 'arrays.{k}' must be {{'dtype': ..., 'shape': [...]}}")
        if spec["dtype"] != dtype.str or spec["shape"] != list(shape):
            raise _Bad(
                f"array {k!r} is {dtype.str} {list(shape)} in the file but the header says "
                f"{spec['dtype']!r} {spec['shape']!r}"
            )


def read_container(
    path: str | os.PathLike,
    *,
    kind: str,
    names: tuple[str, ...] | None = None,
    fields: Mapping[str, Validator] | None = None,
    required: tuple[str, ...] = (),
    unknown: Literal["refuse", "keep"] = "refuse",
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and verify a file written by :func:`write_container`, trusting nothing.

    In order, before any array byte is read: the file is a regular file starting
    like a zip; the zip directory has at most a few members; member names are
    exactly ``<identifier>.npy`` with no duplicates, folders or paths; members are
    stored (not compressed, not encrypted) and their declared sizes add up to at
    most the file's size; every ``.npy`` header is numeric (no pickle) and its
    shape and dtype give exactly the member's size. Then the JSON header (at most
    :data:`MAX_HEADER_BYTES`, nested at most :data:`MAX_HEADER_DEPTH` deep, no
    duplicate keys) must have the right format, version and ``kind``, list exactly
    the arrays present with their dtypes and shapes, and match the checksum (and
    the HMAC signature when :data:`KEY_ENV` is set). Last, each other top-level
    field goes through its validator in ``fields``.

    Parameters
    ----------
    path : str or PathLike
    kind : str
        The object kind expected in the header.
    names : tuple of str, optional
        The exact set of arrays the file must hold (checked on the zip directory,
        before anything else is read). None accepts the arrays the header lists.
    fields : mapping of str to Validator, optional
        One validator per top-level header key (besides the container's own keys);
        each returns the value to keep or raises ``ValueError``/``TypeError``. None
        (for tools that inspect files) returns the other fields unvalidated; every
        loader passes its table.
    required : tuple of str
        Keys of ``fields`` that must be present.
    unknown : {"refuse", "keep"}
        What to do with a top-level key that has no validator: refuse the file, or
        keep it as plain JSON, unvalidated but bounded in size and depth (a lower
        layer reading a file that a higher layer extended, e.g. a classifier reading
        a model bundle: the higher layer's loader validates those keys).

    Returns
    -------
    header : dict
        The validated header (validators' return values).
    arrays : dict of str to ndarray

    Raises
    ------
    ModelFileError
        With the file name, the field and the reason, for any failed check.
    """
    name = os.fspath(path)
    try:
        header, arrays = _read_verified(name, kind, names)
    except _Bad as e:
        raise ModelFileError(f"{name}: {e}") from None
    if fields is None:
        return header, arrays
    return _validate_fields(name, header, fields, required, unknown), arrays


def read_kind(path: str | os.PathLike) -> str:
    """The object kind (``"DiagGMM"``, ``"GMMClassifier"``, ...) a container file claims.

    Reads only the header, with every check :func:`read_container` makes before it (and
    the same bounds), and no array byte; the checksum is not verified. Use it to pick
    the loader, which then checks everything. Never ``np.load`` a file to peek at it:
    that inflates whatever the archive holds.

    Raises
    ------
    ModelFileError
        With the file name and the reason.
    """
    name = os.fspath(path)
    try:
        header, _ = _read_verified(name, None, None)
    except _Bad as e:
        raise ModelFileError(f"{name}: {e}") from None
    return header["kind"]


def _open_checked(name: str):
    try:
        st = os.stat(name)
    except FileNotFoundError:
        raise _Bad("no such file") from None
    except OSError as e:
        raise _Bad(f"cannot read ({(e.strerror or str(e)).lower()})") from None
    if not stat.S_ISREG(st.st_mode):
        raise _Bad("not a regular file")
    if st.st_size == 0:
        raise _Bad("file is empty")
    try:
        return open(name, "rb")
    except OSError as e:
        raise _Bad(f"cannot read ({(e.strerror or str(e)).lower()})") from None


def _read_verified(
    name: str, kind: str | None, names: tuple[str, ...] | None
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    with _open_checked(name) as f:
        if f.read(4) != b"PK\x03\x04":
            raise _Bad("not an audiogmm model file (not an .npz/zip archive)")
        try:
            _check_zip_directory(f)
            file_size = f.seek(0, os.SEEK_END)
            f.seek(0)
            with zipfile.ZipFile(f) as z:
                return _read_zip(z, file_size, kind, names)
        except (_Bad, ModelFileError):
            raise
        except Exception as e:  # zipfile raises many types on damaged bytes
            raise _Bad(f"corrupt or truncated file ({type(e).__name__}: {e})") from None


def _read_zip(
    z: zipfile.ZipFile, file_size: int, kind: str | None, expected: tuple[str, ...] | None
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
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
    header = _parse_header(_read_member(z, hinfo)[hoff:])
    if header.get("format") != FORMAT_NAME:
        raise _Bad(f"format {str(header.get('format'))[:40]!r}, expected {FORMAT_NAME!r}")
    version = header.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise _Bad(
            f"format version {str(version)[:20]} is not supported "
            f"(this audiogmm {__version__} reads version {FORMAT_VERSION})"
        )
    if kind is None:  # read_kind: the header is all the caller wants
        if not isinstance(header.get("kind"), str):
            raise _Bad("header field 'kind' must be a string")
        return header, {}
    if header.get("kind") != kind:
        raise _Bad(f"holds a {str(header.get('kind'))[:40]!r}, expected a {kind!r}")
    if expected is not None and set(names) != {f"{k}.npy" for k in (_HEADER_KEY, *expected)}:
        raise _Bad(
            f"holds arrays {sorted(n[:-4] for n in names if n != _HEADER_KEY + '.npy')}, "
            f"expected exactly {sorted(expected)}"
        )
    v = header.get("audiogmm_version")
    if not isinstance(v, str) or len(v) > 64:
        raise _Bad("header field 'audiogmm_version' must be a short string")
    _array_specs(header.get("arrays"), members)
    arrays = {}
    for k, (shape, dtype, off, info) in members.items():
        data = np.frombuffer(_read_member(z, info), dtype=dtype, offset=off)
        arrays[k] = data.reshape(shape).copy()  # writable, and frees the read buffer
    if header.get("checksum") != _checksum(header, arrays):
        raise _Bad("checksum mismatch; the file was modified or is damaged")
    key = _model_key()
    sig = header.get(_SIGNATURE_KEY)
    if key is not None:
        if not isinstance(sig, str):
            raise _Bad(f"not signed, but {KEY_ENV} is set: only signed models are loaded")
        if not hmac.compare_digest(sig, _signature(key, header["checksum"])):
            raise _Bad(f"bad signature: not signed with the key in {KEY_ENV}, or modified")
    elif sig is not None and not isinstance(sig, str):
        raise _Bad("header field 'signature' must be a string")
    return header, arrays


def _validate_fields(
    name: str,
    header: dict[str, Any],
    fields: Mapping[str, Validator],
    required: tuple[str, ...],
    unknown: str,
) -> dict[str, Any]:
    out = {k: header[k] for k in (*_CONTAINER_KEYS, _SIGNATURE_KEY) if k in header}
    for key in required:
        if key not in header:
            raise ModelFileError(f"{name}: header field {key!r} is missing")
    for key, value in header.items():
        if key in out:
            continue
        check = fields.get(key)
        if check is None:
            if unknown == "keep":
                out[key] = value
                continue
            raise ModelFileError(
                f"{name}: unknown header field {key[:40]!r} (no validator for it; "
                "see 'File format' in the README)"
            )
        try:
            out[key] = check(value)
        except ModelFileError as e:  # the validator named the field itself
            raise ModelFileError(f"{name}: {e}") from None
        except (ValueError, TypeError, OverflowError) as e:
            raise ModelFileError(f"{name}: invalid header field {key!r}: {e}") from None
    return out


# ---------------------------------------------------------------------------- validators


def _show(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


def field_int(v: Any, what: str, *, lo: int | None = None, hi: int | None = None) -> int:
    """``v`` as an int (JSON integers only, not bools or floats) within ``[lo, hi]``."""
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{what} must be an integer, got {_show(v)}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ValueError(f"{what} must be in [{lo}, {hi}], got {_show(v)}")
    return v


def field_real(
    v: Any, what: str, *, lo: float | None = None, hi: float | None = None, finite: bool = True
) -> float:
    """``v`` as a float (JSON numbers, not bools), finite unless ``finite=False``."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{what} must be a number, got {_show(v)}")
    try:
        x = float(v)
    except OverflowError:
        raise ValueError(f"{what} is out of range: {_show(v)}") from None
    if finite and not math.isfinite(x):
        raise ValueError(f"{what} must be finite, got {_show(v)}")
    if (lo is not None and not x >= lo) or (hi is not None and not x <= hi):
        raise ValueError(f"{what} must be in [{lo}, {hi}], got {_show(v)}")
    return x


def _need(ok: bool, what: str, desc: str, v: Any) -> None:
    if not ok:
        raise ValueError(f"{what} must be {desc}, got {_show(v)}")


def field_bool(v: Any, what: str) -> bool:
    """``v`` if it is a JSON boolean (not 0 or 1)."""
    _need(isinstance(v, bool), what, "true or false", v)
    return v


def field_str(v: Any, what: str, *, max_len: int = 256) -> str:
    """``v`` if it is a string of at most ``max_len`` characters."""
    _need(isinstance(v, str) and len(v) <= max_len, what, f"a string of <= {max_len} chars", v)
    return v


def field_list(v: Any, what: str, *, max_len: int = 1 << 20) -> list:
    """``v`` if it is a JSON array of at most ``max_len`` items (items unchecked)."""
    _need(isinstance(v, list) and len(v) <= max_len, what, "a list", v)
    return v


def field_dict(v: Any, what: str) -> dict:
    """``v`` if it is a JSON object (values unchecked)."""
    _need(isinstance(v, dict), what, "an object", v)
    return v


def info_block(v: Any, what: str, known: Mapping[str, Callable[[Any, str], Any]]) -> dict:
    """An informational dict (e.g. a training summary): keys in ``known`` are checked
    with their validator (``check(value, "what.key")``); other keys are kept as plain
    JSON (already bounded in size and depth), so newer writers may add entries."""
    d = field_dict(v, what)
    return {k: (known[k](x, f"{what}.{k}") if k in known else x) for k, x in d.items()}
