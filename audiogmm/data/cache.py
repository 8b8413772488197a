"""Extract features for many files: in parallel, cached on disk, skipping bad files.

Layout of a cache directory::

    <cache_dir>/<config-hash>/config.json     the FeatureConfig (for humans)
    <cache_dir>/<config-hash>/<run>.pack      the entries written by one run, appended
    <cache_dir>/files/<run>.pack              small facts about files (:class:`FileFacts`)

``key`` is the SHA-256 of the file's absolute path, size, ``st_mtime_ns``, the
config hash, the ``keep_all_frames`` flag and the entry format, so a changed file
or a changed config is re-extracted and everything else is read back. An entry is a
record of a pack: a header (magic, key, length), the ``.npy`` bytes of the array (no
pickle) and a 16-byte SHA-256 digest of both. A run appends its entries to a new pack
of its own, one ``write`` each and without an fsync: a file per entry cost as much as
the extraction (creating a file, even without an fsync, is the slow part on ext4), and a
killed run still leaves every finished entry whole. A record torn by a kill or a power
loss ends the scan of its pack or fails its digest. On reading, the digest, shape, dtype
and finiteness are checked and a bad entry is recomputed, never trusted.

Files are extracted through an executor (:class:`~audiogmm.engine.LocalExecutor`):
threads in this process by default, worker processes only when the caller passes
an executor built with ``processes=True``. Feature extraction runs its only BLAS
call on one thread, so results are bit-identical for any number of workers.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import re
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Optional, TypeVar, Union

import numpy as np

from .. import audio
from ..engine import LocalExecutor, resolve
from ..engine.processes import on_worker_lost
from ..exceptions import AudioError, DatasetError, FeatureError, ParameterError
from ..features import FeatureConfig, extract
from ..io.atomic import atomic_write
from ..progress import Progress, reporter
from .manifests import Record

__all__ = [
    "PACK_SUFFIX",
    "ExtractionResult",
    "FileFacts",
    "RunOptions",
    "Skipped",
    "cache_key",
    "extract_many",
]

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
T = TypeVar("T")


@dataclass(frozen=True)
class RunOptions:
    """How a file-level job runs: the settings that travel from the CLI to the cache.

    Attributes
    ----------
    cache_dir : path or None
        Feature cache folder (None: no cache).
    n_jobs : int >= 1 or None
        Workers (None: all cores).
    progress : callable or None
        ``progress(n_done, n_total, label)`` (see :mod:`audiogmm.progress`).
    strict : bool
        Fail on the first bad file instead of skipping it.
    """

    cache_dir: Optional[PathLike] = None
    n_jobs: Optional[int] = None
    progress: Progress = None
    strict: bool = False


@dataclass(frozen=True)
class Skipped:
    """A file that could not be used, and why (the error message)."""

    path: str
    reason: str


@dataclass
class ExtractionResult:
    """What :func:`extract_many` produced.

    Attributes
    ----------
    features : dict of str to np.ndarray [shape=(n_frames, n_dims)]
        Frames per file, keyed by the path as given (``Record.path`` for
        records), in input order; skipped files are absent.
    skipped : list of Skipped
        Bad files with the reason, in input order.
    n_extracted : int
        Files computed in this run.
    n_cached : int
        Files read back from the cache.
    cache_errors : list of str
        Cache entries that could not be written (e.g. a full disk), one message each
        naming the entry's path and the reason; those files' features are in
        ``features`` all the same.
    """

    features: dict[str, np.ndarray] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    n_extracted: int = 0
    n_cached: int = 0
    cache_errors: list[str] = field(default_factory=list)

    @property
    def n_skipped(self) -> int:
        """Number of skipped files."""
        return len(self.skipped)

    def first_skipped(self) -> str:
        """``"; first: <reason>"`` for messages about skipped files (the reason names the file)."""
        return f"; first: {self.skipped[0].reason}" if self.skipped else ""

    def labelled_clips(self, records: Sequence[Record]) -> tuple[list[np.ndarray], list[str]]:
        """The frames and labels of the usable ``records``, in their order.

        Raises
        ------
        DatasetError
            Every file of some label was skipped (the message gives the first reason).
        """
        clips, labels = [], []
        for r in records:
            X = self.features.get(r.path)
            if X is not None:
                clips.append(X)
                labels.append(r.label)
        lost = sorted({r.label for r in records} - set(labels))
        if lost:
            raise DatasetError(
                f"every training file of label(s) {lost} was skipped ({len(self.skipped)} "
                f"skipped in all{self.first_skipped()})"
            )
        return clips, labels

    def derived(self, source: FeatureConfig, target: FeatureConfig) -> ExtractionResult:
        """The same files' features under ``target``, computed from these (``source``'s).

        Bit-identical to extracting with ``target`` when
        :func:`audiogmm.features.extraction.derivable` holds (it differs from ``source``
        only in normalisation); the skipped files are the same.
        """
        from ..features.extraction import derive

        return ExtractionResult(
            features={p: derive(X, source, target) for p, X in self.features.items()},
            skipped=list(self.skipped),
        )

    def write_skipped_csv(self, path: PathLike) -> None:
        """Write ``path,reason`` rows for the skipped files (atomically; header even if empty)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["path", "reason"])
        for s in self.skipped:
            w.writerow([s.path, s.reason])
        _atomic_write_bytes(os.fspath(path), buf.getvalue().encode("utf-8"))


# ---------------------------------------------------------------------- cache files
#: Entry format, part of the key: entries of another format are never read.
ENTRY_FORMAT = "pack1+sha256-16"
#: A record: magic, key (raw SHA-256), body length; then the body (.npy bytes), then the digest.
_HEADER = struct.Struct("<4s32sQ")
_MAGIC = b"AGF1"
_DIGEST_BYTES = 16
_NPY_HEADER_MAX = 1 << 16  # far above any header np.save writes for a 2-D array
#: Format of a :class:`FileFacts` record, part of its key.
FACTS_FORMAT = "fact1"
#: Suffix of the append-only files holding the records, one file per run that wrote any.
PACK_SUFFIX = ".pack"


def cache_key(path: PathLike, config: FeatureConfig, *, keep_all_frames: bool = False) -> str:
    """SHA-256 hex digest of (absolute path, size, mtime_ns, config hash, keep_all_frames, format).

    Raises
    ------
    AudioError
        If the file cannot be stat'ed (missing, unreadable, empty).
    """
    return _file_key(path, config.content_hash(), str(bool(keep_all_frames)), ENTRY_FORMAT)


def _file_key(path: PathLike, *what: str) -> str:
    """SHA-256 hex digest of a file's absolute path, size and mtime_ns, and ``what``."""
    p = os.path.abspath(os.fspath(path))
    audio.check_file(p)
    st = os.stat(p)
    ident = "\0".join([p, str(st.st_size), str(st.st_mtime_ns), *what])
    return hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()


def _atomic_write_bytes(dst: str, data: bytes) -> None:
    atomic_write(dst, lambda f: f.write(data))


class _Packs:
    """The records of one cache folder (a config's features, or :class:`FileFacts`): an
    index of every pack, and this run's pack.

    Reading scans the record headers of every ``*.pack`` file (one read each) and
    stops at the first that is not whole (the tail of a killed or failed writer); a
    record's digest is checked when it is read, and its body by the caller's parser
    (features: shape, dtype and finiteness). Writing
    appends one record per ``os.write`` to a new pack of this run, created with
    ``O_EXCL`` (``os.open`` applies the umask to its mode), so a run never writes into
    another's file and a killed run leaves only whole records, at worst followed by a
    torn one. A write that fails (a full disk) is cut back off the file so that the
    records after it stay readable.
    """

    def __init__(self, folder: str, max_body: int) -> None:
        self.folder, self.max_body = folder, max_body
        self.index: dict[bytes, list[tuple[str, int, int]]] = {}
        self.path: Optional[str] = None  # this run's pack, once something was written
        self.wfd = -1
        self.end = 0
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
        """``parse(body)`` of the first whole record stored under ``key`` whose digest
        holds and which ``parse`` accepts (it raises ValueError to refuse), else None."""
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

        Raises
        ------
        OSError
            The pack could not be created or written; the partial record is removed.
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


def _digest(*parts: bytes) -> bytes:
    h = hashlib.sha256()  # SHA-NI: 3x BLAKE2b's speed
    for part in parts:
        h.update(part)
    return h.digest()[:_DIGEST_BYTES]


def _feature_parser(config: FeatureConfig) -> Callable[[memoryview], np.ndarray]:
    """A record body's features, refused (ValueError) unless a finite 2-D array of the
    config's width and dtype."""
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
            isinstance(arr, np.ndarray)
            and arr.ndim == 2
            and arr.shape[0] >= 1
            and arr.shape[1] == config.n_dims
            and arr.dtype == dtype
            and bool(np.isfinite(arr).all())
        ):
            raise ValueError("not finite features of this configuration")
        return arr

    return parse


#: Folder of a cache directory holding small per-file facts (:class:`FileFacts`).
FACTS_FOLDER = "files"


class FileFacts:
    """Small facts about files (a hash of their bytes, their duration), kept in a cache.

    A fact is a pack record of ``<cache_dir>/files`` keyed, like a feature entry, by
    the file's absolute path, size and ``st_mtime_ns`` and the fact's ``kind``, so a
    changed file's facts are computed again. A record is checked when read (digest and
    length): a torn or altered one is recomputed, never trusted. Without a
    ``cache_dir`` every fact is computed. Use as a context manager; thread-safe.
    """

    def __init__(self, cache_dir: Optional[PathLike]) -> None:
        self.packs: Optional[_Packs] = None
        self.unwritable = False  # after a failed write, facts are computed, not stored
        if cache_dir is not None:
            folder = os.path.join(os.fspath(cache_dir), FACTS_FOLDER)
            os.makedirs(folder, exist_ok=True)
            self.packs = _Packs(folder, max_body=1 << 10)

    def __enter__(self) -> FileFacts:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.packs is not None:
            self.packs.close()

    def get(self, path: str, kind: str, size: int, compute: Callable[[str], bytes]) -> bytes:
        """The ``size``-byte fact ``kind`` of ``path``: from the cache when a valid record
        holds it, else ``compute(path)`` (stored; its exceptions propagate)."""
        if self.packs is None:
            return compute(path)
        try:
            key = _file_key(path, kind, FACTS_FORMAT)
        except AudioError:  # not a readable file: nothing to key it by
            return compute(path)

        def parse(body: memoryview) -> bytes:
            if len(body) != size:
                raise ValueError(f"{len(body)} bytes for a {size}-byte fact")
            return bytes(body)

        value = self.packs.get(key, parse)
        if value is None:
            value = compute(path)
            try:
                if not self.unwritable:
                    self.packs.put(key, value)
            except OSError as exc:  # a full or read-only disk: the fact is good all the same
                self.unwritable = True
                logger.warning("could not cache facts about files in %s (%s)",
                               self.packs.folder, exc.strerror or exc)  # fmt: skip
        return value


# ---------------------------------------------------------------------- workers
#: What a worker returns: (error kind or "", features or None, message)
_Outcome = tuple[str, Optional[np.ndarray], str]


def _lost(path: str, config: FeatureConfig, keep_all_frames: bool, *, reason: str) -> _Outcome:
    """What :func:`_work` returns when its worker process died on every attempt."""
    return "FeatureError", None, f"{path!r}: skipped: {reason} while extracting it"


@on_worker_lost(_lost)
def _work(path: str, config: FeatureConfig, keep_all_frames: bool) -> _Outcome:
    """Extract one file (the caller caches it)."""
    try:
        feats = extract(path, config=config, keep_all_frames=keep_all_frames)
    except AudioError as exc:
        return "AudioError", None, str(exc)
    except FeatureError as exc:
        return "FeatureError", None, str(exc)
    except Exception as exc:  # the batch goes on: anything unexpected is a skip too
        return "FeatureError", None, f"{path!r}: {type(exc).__name__}: {exc}"
    return "", feats, ""


# ---------------------------------------------------------------------- public API
def extract_many(
    paths_or_records: Iterable[Union[PathLike, Record]],
    *,
    config: Optional[FeatureConfig] = None,
    options: Optional[RunOptions] = None,
    executor: Optional[LocalExecutor] = None,
    keep_all_frames: bool = False,
) -> ExtractionResult:
    """Extract features for many files, in parallel, with an optional disk cache.

    Parameters
    ----------
    paths_or_records : iterable of str, os.PathLike or Record
        The audio files. Duplicates are extracted once.
    config : FeatureConfig, optional
        Defaults to the ``general`` preset (``FeatureConfig()``).
    options : RunOptions, optional
        Cache folder, workers, progress callback and strictness (default: no
        cache, all cores as threads, no progress, bad files skipped).
    executor : LocalExecutor, optional
        Runs the files (default: ``options.n_jobs`` threads for this call). Pass
        an executor built with ``processes=True`` for worker processes.
    keep_all_frames : bool
        Passed to :func:`audiogmm.features.extract` (no VAD frame dropping).

    Returns
    -------
    ExtractionResult
        ``features`` (path → ``(n_frames, config.n_dims)`` array, input order),
        ``skipped``, ``n_extracted``, ``n_cached``.

    Raises
    ------
    AudioError, FeatureError
        Only with ``options.strict``.
    ParameterError
        Invalid *config* or ``n_jobs``.

    Examples
    --------
    >>> from audiogmm.data import read_manifest
    >>> res = extract_many(read_manifest("data_samples/speakers"),
    ...                    options=RunOptions(cache_dir="exp/feats", n_jobs=2))  # doctest: +SKIP
    >>> res.write_skipped_csv("exp/feats/skipped.csv")  # doctest: +SKIP
    """
    if config is None:
        config = FeatureConfig()
    elif not isinstance(config, FeatureConfig):
        raise ParameterError(f"config must be a FeatureConfig, got {type(config).__name__}")
    opts = options or RunOptions()
    n_jobs, strict, cache_dir = opts.n_jobs, opts.strict, opts.cache_dir
    if n_jobs is not None and (
        isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1
    ):
        raise ParameterError(f"n_jobs must be an integer >= 1 or None, got {n_jobs!r}")
    keep_all_frames = bool(keep_all_frames)

    paths: list[str] = []
    seen: set[str] = set()
    for item in paths_or_records:
        p = item.path if isinstance(item, Record) else os.fspath(item)
        if p not in seen:
            seen.add(p)
            paths.append(p)
    total = len(paths)

    packs: Optional[_Packs] = None
    if cache_dir is not None:
        cfg_dir = os.path.join(os.fspath(cache_dir), config.content_hash())
        os.makedirs(cfg_dir, exist_ok=True)
        cfg_file = os.path.join(cfg_dir, "config.json")
        if not os.path.exists(cfg_file):
            _atomic_write_bytes(cfg_file, config.to_json(indent=2).encode("utf-8"))
        # the largest body a valid file can give: MAX_SAMPLES at the config's hop
        max_frames = audio.MAX_SAMPLES // config.hop_length + 2
        packs = _Packs(cfg_dir, _NPY_HEADER_MAX + max_frames * config.n_dims * 8)
        parse, config_hash = _feature_parser(config), config.content_hash()

    results: dict[str, np.ndarray] = {}
    errors: dict[str, tuple[str, str]] = {}
    n_cached = 0
    n_extracted = 0
    cache_errors: list[str] = []

    def fail(path: str, kind: str, message: str) -> None:
        if strict:
            raise (AudioError if kind == "AudioError" else FeatureError)(message)
        errors[path] = (kind, message)

    def cache(path: str, key: str, feats: np.ndarray) -> None:
        assert packs is not None
        buf = io.BytesIO()
        np.save(buf, feats, allow_pickle=False)
        try:
            packs.put(key, buf.getvalue())
        except OSError as exc:  # e.g. a full disk: the features are good, the entry is not
            where = packs.path or packs.folder
            cache_errors.append(f"{where} (features of {path!r}): {exc.strerror or exc}")

    try:
        with reporter(opts.progress, total, "Extracting features") as tick:
            tasks: list[tuple[str, FeatureConfig, bool]] = []
            keys: list[str] = []
            for p in paths:
                if packs is not None:
                    try:
                        key = _file_key(p, config_hash, str(keep_all_frames), ENTRY_FORMAT)
                    except AudioError as exc:
                        fail(p, "AudioError", str(exc))
                        tick()
                        continue
                    arr = packs.get(key, parse)
                    if arr is not None:
                        results[p] = arr
                        n_cached += 1
                        tick()
                        continue
                    keys.append(key)
                tasks.append((p, config, keep_all_frames))

            with resolve(executor, n_jobs) as ex:
                outcomes = ex.map(_work, tasks, isolated=True, star=True)
                for i, ((p, *_), (kind, feats, message)) in enumerate(zip(tasks, outcomes)):
                    if kind:
                        fail(p, kind, message)
                    else:
                        assert feats is not None
                        results[p] = feats
                        n_extracted += 1
                        if packs is not None:
                            cache(p, keys[i], feats)
                    tick()
    finally:
        if packs is not None:
            packs.close()

    res = ExtractionResult(n_extracted=n_extracted, n_cached=n_cached, cache_errors=cache_errors)
    for p in paths:
        if p in results:
            res.features[p] = results[p]
        else:
            res.skipped.append(Skipped(p, errors[p][1]))
    if res.skipped:
        logger.warning("skipped %d of %d files", len(res.skipped), total)
    if cache_errors:
        logger.warning(
            "could not write %d of %d cache entries (first: %s)",
            len(cache_errors), len(tasks), cache_errors[0],
        )  # fmt: skip
    return res
