"""The audiogmm file container: one ``.npz``, no pickle, a checksummed JSON header.

Every file audiogmm writes (a :class:`~audiogmm.mixture.DiagGMM`, a
:class:`~audiogmm.models.GMMClassifier`, a :class:`~audiogmm.mixture.Stats`) is a
plain NumPy ``.npz`` archive holding

* the numeric arrays of the object, and
* ``__header__``: a ``uint8`` array carrying UTF-8 JSON with the format name,
  the format version, the object kind, the audiogmm version, the object's own
  metadata (parameters, feature configuration, labels, training summary) and a
  SHA-256 checksum over the arrays *and* the rest of the header.

Files are written to a temporary file in the destination folder and moved into
place with :func:`os.replace`, so an interrupted write never leaves a partial
file behind. Reading uses ``allow_pickle=False`` and refuses anything that does
not validate, with a :class:`~audiogmm.exceptions.ModelFileError` naming the
file and the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Any

import numpy as np

from ._version import __version__
from .exceptions import ModelFileError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "atomic_write",
    "jsonable",
    "read_container",
    "write_container",
]

FORMAT_NAME = "audiogmm"
FORMAT_VERSION = 1
_HEADER_KEY = "__header__"
_ALLOWED_KINDS = {"f", "i", "u", "b"}  # float, int, uint, bool: nothing that needs pickle


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


def _checksum(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    body = {k: v for k, v in header.items() if k != "checksum"}
    h.update(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return "sha256:" + h.hexdigest()


def atomic_write(path: str | os.PathLike, write, *, mode: str = "wb") -> None:
    """Call ``write(fileobj)`` on a temporary file next to ``path``, then rename it.

    The rename is atomic on POSIX and Windows, so readers see either the old file
    or the complete new one, never a partial write.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_container(
    path: str | os.PathLike,
    *,
    kind: str,
    header: dict[str, Any],
    arrays: dict[str, np.ndarray],
) -> dict[str, Any]:
    """Write ``arrays`` and a JSON ``header`` to ``path`` as one checksummed ``.npz``.

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
    blob = np.frombuffer(json.dumps(full, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **{_HEADER_KEY: blob}, **arrays))
    return full


def read_container(
    path: str | os.PathLike, *, kind: str
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and verify a file written by :func:`write_container`.

    Checks, in order: the file exists and is a readable zip/npz; no array needs
    pickle; the header is JSON with the right format name, a supported format
    version and the expected ``kind``; the arrays listed in the header are
    exactly those present, with the recorded dtypes and shapes; the checksum
    matches.

    Raises
    ------
    ModelFileError
        With the file name and the reason, for any failed check.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelFileError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise ModelFileError(f"{path}: file is empty")
    try:
        with np.load(path, allow_pickle=False) as z:
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise ModelFileError(f"{path}: not an .npz archive")
            data = {k: z[k] for k in z.files}
    except ModelFileError:
        raise
    except ValueError as e:
        if "pickle" in str(e):
            raise ModelFileError(f"{path}: contains a pickled object array; refused") from e
        raise ModelFileError(f"{path}: corrupt or not an audiogmm file ({e})") from e
    except Exception as e:  # zipfile/numpy raise many types on damaged bytes
        raise ModelFileError(f"{path}: corrupt or truncated file ({type(e).__name__}: {e})") from e
    if _HEADER_KEY not in data:
        raise ModelFileError(f"{path}: no audiogmm header; not an audiogmm file")
    raw = data.pop(_HEADER_KEY)
    try:
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError("header must be a 1-D uint8 array")
        header = json.loads(raw.tobytes().decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{path}: unreadable header ({e})") from e
    if header.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path}: format {header.get('format')!r}, expected {FORMAT_NAME!r}")
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: format version {version!r} is not supported "
            f"(this audiogmm {__version__} reads version {FORMAT_VERSION})"
        )
    if header.get("kind") != kind:
        raise ModelFileError(f"{path}: holds a {header.get('kind')!r}, expected a {kind!r}")
    listed = header.get("arrays")
    if not isinstance(listed, dict) or set(listed) != set(data):
        raise ModelFileError(
            f"{path}: arrays {sorted(data)} do not match the header's list "
            f"{sorted(listed) if isinstance(listed, dict) else listed!r}"
        )
    for k, v in data.items():
        spec = listed[k]
        if v.dtype.kind not in _ALLOWED_KINDS:
            raise ModelFileError(f"{path}: array {k!r} has non-numeric dtype {v.dtype}")
        if not isinstance(spec, dict) or spec.get("dtype") != v.dtype.str:
            raise ModelFileError(f"{path}: array {k!r} has dtype {v.dtype}, header says {spec}")
        if list(v.shape) != spec.get("shape"):
            raise ModelFileError(f"{path}: array {k!r} has shape {v.shape}, header says {spec}")
    if header.get("checksum") != _checksum(header, data):
        raise ModelFileError(f"{path}: checksum mismatch; the file was modified or is damaged")
    return header, data
