"""The feature cache's storage: append-only packs of digest-checked records, keyed by file.

``<cache_dir>/<config-hash>/<run>.pack`` holds one run's feature entries (``config.json``
beside them, for humans), ``<cache_dir>/files/<run>.pack`` small facts (:class:`FileFacts`).
A key hashes a file's absolute path, size and ``st_mtime_ns`` with what the entry depends on,
so a changed file or config is recomputed. A record is a header (magic, key, length), a body
(``.npy`` bytes: no pickle) and a 16-byte SHA-256 of both; a run appends one ``write`` per
record, no fsync (a file per entry cost as much as the extraction): a kill tears one at most.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import struct
import threading
import time
from typing import Callable, Optional, TypeVar, Union

import numpy as np

from .. import audio
from ..exceptions import AudioError
from ..features import FeatureConfig
from ..io.atomic import atomic_write

__all__ = ["FileFacts", "PACK_SUFFIX", "cache_key", "feature_packs", "feature_parser", "file_key"]

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
T = TypeVar("T")

#: Entry format, part of the key: entries of another format are never read.
ENTRY_FORMAT = "pack1+sha256-16"
#: A record: magic, key (raw SHA-256), body length; then the body (.npy bytes), then the digest.
_HEADER = struct.Struct("<4s32sQ")
_MAGIC = b"AGF1"
_DIGEST_BYTES = 16
_NPY_HEADER_MAX = 1 << 16  # far above any header np.save writes for a 2-D array
#: Suffix of the append-only files holding the records, one file per run that wrote any.
PACK_SUFFIX = ".pack"


def cache_key(path: PathLike, config: FeatureConfig, *, keep_all_frames: bool = False) -> str:
    """SHA-256 hex digest of (absolute path, size, mtime_ns, config hash, keep_all_frames, format).

    AudioError when the file cannot be stat'ed (missing, unreadable, empty).
    """
    return file_key(path, config.content_hash(), str(bool(keep_all_frames)), ENTRY_FORMAT)


def file_key(path: PathLike, *what: str) -> str:
    """SHA-256 hex digest of a file's absolute path, size and mtime_ns, and ``what``."""
    p = os.path.abspath(os.fspath(path))
    audio.check_file(p)
    st = os.stat(p)
    ident = "\0".join([p, str(st.st_size), str(st.st_mtime_ns), *what])
    return hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()


def _digest(*parts: bytes) -> bytes:
    h = hashlib.sha256()  # SHA-NI: 3x BLAKE2b's speed
    for part in parts:
        h.update(part)
    return h.digest()[:_DIGEST_BYTES]


class Packs:
    """One cache folder's records: an index of every ``*.pack`` in it, and this run's pack.

    A pack's scan stops at its first record that is not whole (a killed writer's tail).
    :meth:`put` appends to a new pack of this run, made with ``O_EXCL`` (``os.open``
    applies the umask), so a run never writes into another's file.
    """

    def __init__(self, folder: str, max_body: int) -> None:
        self.folder, self.max_body = folder, max_body
        self.index: dict[bytes, list[tuple[str, int, int]]] = {}
        self.path: Optional[str] = None  # this run's pack, once something was written
        self.wfd, self.end = -1, 0
        self.lock = threading.Lock()  # put may be called from threads
        for name in sorted(os.listdir(folder)):
            if name.endswith(PACK_SUFFIX):
                self._scan(os.path.join(folder, name))

    def _scan(self, path: str) -> None:
        try:
            with open(path, "rb", buffering=0) as f:
                size, off = os.fstat(f.fileno()).st_size, 0
                while off + _HEADER.size + _DIGEST_BYTES <= size:
                    f.seek(off)
                    magic, key, n = _HEADER.unpack(f.read(_HEADER.size))
                    end = off + _HEADER.size + n + _DIGEST_BYTES
                    if magic != _MAGIC or n > self.max_body or end > size:
                        break  # a torn tail, or not a record: nothing after it is trusted
                    self.index.setdefault(key, []).append((path, off, n))
                    off = end
        except (OSError, struct.error) as exc:
            logger.warning("ignoring unreadable cache file %s (%s)", path, exc)

    def get(self, key: str, parse: Callable[[memoryview], T]) -> Optional[T]:
        """``parse(body)`` of the first record under ``key`` whose digest holds and which
        ``parse`` accepts (it raises ValueError to refuse), else None: bad ones are recomputed."""
        for path, off, n in self.index.get(bytes.fromhex(key), ()):
            try:
                data = memoryview(bytearray(_HEADER.size + n + _DIGEST_BYTES))  # writable
                with open(path, "rb", buffering=0) as f:
                    f.seek(off)
                    got = f.readinto(data)
                signed, digest = data[:-_DIGEST_BYTES], data[-_DIGEST_BYTES:]
                if got != len(data) or _digest(signed) != digest:
                    raise ValueError("digest mismatch: torn or altered")
                return parse(signed[_HEADER.size :])
            except (OSError, ValueError, EOFError) as exc:
                logger.warning(
                    "ignoring invalid cache entry %s at byte %d (%s); recomputing", path, off, exc
                )  # fmt: skip
        return None

    def put(self, key: str, body: bytes) -> None:
        """Append ``body`` under ``key`` to this run's pack (no fsync; see the module).

        OSError when the pack could not be created or written; the partial record is removed.
        """
        head = _HEADER.pack(_MAGIC, bytes.fromhex(key), len(body))
        data = head + body + _digest(head, body)
        with self.lock:
            if self.path is None:
                name = f"{os.getpid()}-{time.time_ns()}-{os.urandom(4).hex()}{PACK_SUFFIX}"
                path = os.path.join(self.folder, name)
                self.wfd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o666)
                self.path = path
            try:
                view = memoryview(data)
                while view:  # a short write (a signal, a nearly full disk) continues
                    view = view[os.write(self.wfd, view) :]
            except OSError:
                try:
                    os.ftruncate(self.wfd, self.end)  # the records after this one stay readable
                except OSError:
                    pass
                raise
            self.end += len(data)

    def close(self) -> None:
        if self.wfd >= 0:
            os.close(self.wfd)
            self.wfd = -1


def feature_parser(config: FeatureConfig) -> Callable[[memoryview], np.ndarray]:
    """A record body's features; ValueError unless finite, 2-D, of the config's width and dtype."""
    dtype = np.dtype(config.dtype)
    # the header np.save writes for C-order features of this dtype, read without np.load's
    # literal_eval (most of a read's CPU); any other header goes through np.load
    header = re.compile(
        rb"\{'descr': '%s', 'fortran_order': False, 'shape': \((\d+), (\d+)\), \} *\n"
        % re.escape(dtype.str.encode())
    )

    def parse(body: memoryview) -> np.ndarray:
        size = int.from_bytes(body[8:10], "little") if body[:8] == b"\x93NUMPY\x01\x00" else 0
        m = header.fullmatch(body[10 : 10 + size]) if size else None
        if m is None:
            arr = np.load(io.BytesIO(body), allow_pickle=False)
        else:
            shape = int(m[1]), int(m[2])
            if len(body) != 10 + size + shape[0] * shape[1] * dtype.itemsize:
                raise ValueError("array data of the wrong size")
            arr = np.frombuffer(body, dtype, offset=10 + size).reshape(shape)
        if not (
            isinstance(arr, np.ndarray) and arr.ndim == 2 and arr.shape[0] >= 1
            and arr.shape[1] == config.n_dims and arr.dtype == dtype and np.isfinite(arr).all()
        ):  # fmt: skip
            raise ValueError("not finite features of this configuration")
        return arr

    return parse


class FileFacts:
    """Small facts about files (a hash of their bytes, their duration), kept in a cache.

    A fact is a record of ``<cache_dir>/files`` keyed by :func:`file_key` and the fact's
    ``kind``; a torn or altered one is recomputed. Without a ``cache_dir`` every fact is
    computed. Use as a context manager; thread-safe.
    """

    def __init__(self, cache_dir: Optional[PathLike]) -> None:
        self.packs: Optional[Packs] = None
        self.unwritable = False  # after a failed write, facts are computed, not stored
        if cache_dir is not None:
            folder = os.path.join(os.fspath(cache_dir), "files")
            os.makedirs(folder, exist_ok=True)
            self.packs = Packs(folder, max_body=1 << 10)

    def __enter__(self) -> FileFacts:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.packs is not None:
            self.packs.close()

    def get(self, path: str, kind: str, size: int, compute: Callable[[str], bytes]) -> bytes:
        """The ``size``-byte fact ``kind`` of ``path``: from the cache when a valid record
        holds it, else ``compute(path)`` (stored; its exceptions propagate)."""

        def parse(body: memoryview) -> bytes:
            if len(body) != size:
                raise ValueError(f"{len(body)} bytes for a {size}-byte fact")
            return bytes(body)

        try:
            key = self.packs and file_key(path, kind, "fact1")
        except AudioError:  # not a readable file: nothing to key it by
            key = None
        value = key and self.packs.get(key, parse)
        if value is None:
            value = compute(path)
            try:
                if key and not self.unwritable:
                    self.packs.put(key, value)
            except OSError as exc:  # a full or read-only disk: the fact is good all the same
                self.unwritable = True
                logger.warning("could not cache facts about files in %s (%s)",
                               self.packs.folder, exc.strerror or exc)  # fmt: skip
        return value


def feature_packs(cache_dir: PathLike, config: FeatureConfig) -> Packs:
    """The packs of ``config``'s features in ``cache_dir`` (its folder and config.json made)."""
    cfg_dir = os.path.join(os.fspath(cache_dir), config.content_hash())
    os.makedirs(cfg_dir, exist_ok=True)
    cfg_file = os.path.join(cfg_dir, "config.json")
    if not os.path.exists(cfg_file):
        text = config.to_json(indent=2).encode("utf-8")
        atomic_write(cfg_file, lambda f: f.write(text))
    # the largest body a valid file can give: MAX_SAMPLES at the config's hop
    max_frames = audio.MAX_SAMPLES // config.hop_length + 2
    return Packs(cfg_dir, _NPY_HEADER_MAX + max_frames * config.n_dims * 8)
