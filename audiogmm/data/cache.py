"""The feature cache: many files extracted in parallel, kept on disk, bad files skipped.

Files go through an executor (threads, or processes); extraction's one BLAS call runs on one
thread, so results are bit-identical for any number of workers. Records are appended to
``<cache_dir>/<config-hash>/<run>.pack`` (features; ``config.json`` beside them for humans)
and ``<cache_dir>/files/<run>.pack`` (:class:`FileFacts`), keyed by a file's absolute path,
size, ``st_mtime_ns`` and what the entry depends on. A record is a header (magic, key,
length), a body (``.npy`` bytes: no pickle) and a 16-byte SHA-256 of both, one ``write``,
no fsync (a file per entry cost as much as the extraction): a kill tears one at most."""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
import struct
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Callable, Optional, TypeVar, Union

import numpy as np

from .. import audio
from ..audio import PathLike
from ..engine import LocalExecutor, resolve
from ..engine.local import on_worker_lost
from ..exceptions import AudioError, DatasetError, FeatureError, ParameterError
from ..features import FeatureConfig, extract
from ..features.extraction import derive
from ..io.atomic import atomic_write
from ..progress import Progress, reporter
from .manifests import Record

__all__ = ["PACK_SUFFIX", "ExtractionResult", "FileFacts", "RunOptions", "Skipped", "cache_key",
           "extract_many", "file_key"]  # fmt: skip

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: Entry format, part of the key: entries of another format are never read. "fft64": the
#: features since the FFT ran in float64 (last bits), so older entries are not mixed in.
ENTRY_FORMAT = "pack1+sha256-16+fft64"
#: A record: magic, key (raw SHA-256), body length; then the body (.npy bytes), then the digest.
_HEADER = struct.Struct("<4s32sQ")
_MAGIC = b"AGF1"
_DIGEST_BYTES = 16
_NPY_HEADER_MAX = 1 << 16  # far above any header np.save writes for a 2-D array
#: Suffix of the append-only files holding the records, one file per run that wrote any.
PACK_SUFFIX = ".pack"


def cache_key(path: PathLike, config: FeatureConfig, *, keep_all_frames: bool = False) -> str:
    """:func:`file_key` with the config hash, ``keep_all_frames`` and the entry format;
    AudioError when the file cannot be stat'ed (missing, unreadable, empty)."""
    return file_key(path, config.content_hash(), str(bool(keep_all_frames)), ENTRY_FORMAT)


def file_key(path: PathLike, *what: str) -> str:
    """SHA-256 hex digest of a file's absolute path, size and mtime_ns, and ``what``."""
    p = os.path.abspath(os.fspath(path))
    audio.check_file(p)
    st = os.stat(p)
    ident = "\0".join([p, str(st.st_size), str(st.st_mtime_ns), *what])
    return hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()


def _digest(signed: Union[bytes, memoryview]) -> bytes:
    return hashlib.sha256(signed).digest()[:_DIGEST_BYTES]  # SHA-NI: 3x BLAKE2b's speed


class Packs:
    """One cache folder's records (the folder made): an index of every ``*.pack`` in it (a
    scan stops at a record that is not whole: a killed writer's tail), and this run's pack,
    made with ``O_EXCL`` (and the umask), so a run never writes into another's file."""

    def __init__(self, folder: str, max_body: int) -> None:
        os.makedirs(folder, exist_ok=True)
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
                logger.warning("ignoring invalid cache entry %s at byte %d (%s); recomputing",
                               path, off, exc)  # fmt: skip
        return None

    def put(self, key: str, body: bytes) -> Optional[str]:
        """Append ``body`` under ``key`` to this run's pack (no fsync; see the module); the reason
        when it could not be written (a full disk; the partial record is removed), else None."""
        signed = _HEADER.pack(_MAGIC, bytes.fromhex(key), len(body)) + body
        data = signed + _digest(signed)
        with self.lock:
            try:
                if self.path is None:
                    name = f"{os.getpid()}-{time.time_ns()}-{os.urandom(4).hex()}{PACK_SUFFIX}"
                    path = os.path.join(self.folder, name)
                    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND
                    self.wfd, self.path = os.open(path, flags, 0o666), path
                view = memoryview(data)
                while view:  # a short write (a signal, a nearly full disk) continues
                    view = view[os.write(self.wfd, view) :]
            except OSError as exc:
                with contextlib.suppress(OSError):  # the records after this one stay readable
                    os.ftruncate(self.wfd, self.end)
                return exc.strerror or str(exc)
            self.end += len(data)
        return None

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
        if not (isinstance(arr, np.ndarray) and arr.ndim == 2 and arr.shape[0] >= 1
                and arr.shape[1] == config.n_dims and arr.dtype == dtype
                and np.isfinite(arr).all()):  # fmt: skip
            raise ValueError("not finite features of this configuration")
        return arr
    return parse


class FileFacts:
    """Small facts about files (a hash of their bytes, their duration): records of
    ``<cache_dir>/files`` keyed by :func:`file_key` and the fact's ``kind`` (None: always
    computed). A context manager; thread-safe."""

    def __init__(self, cache_dir: Optional[PathLike]) -> None:
        self.packs = None if cache_dir is None else Packs(
            os.path.join(os.fspath(cache_dir), "files"), max_body=1 << 10)  # fmt: skip
        self.unwritable = False  # after a failed write, facts are computed, not stored

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
            # a full or read-only disk: the fact is good all the same
            if key and not self.unwritable and (err := self.packs.put(key, value)):
                self.unwritable = True
                logger.warning("could not cache facts about files in %s (%s)",
                               self.packs.folder, err)  # fmt: skip
        return value


def feature_packs(cache_dir: PathLike, config: FeatureConfig) -> Packs:
    """The packs of ``config``'s features in ``cache_dir`` (its folder and config.json made)."""
    cfg_dir = os.path.join(os.fspath(cache_dir), config.content_hash())
    cfg_file = os.path.join(cfg_dir, "config.json")
    if not os.path.exists(cfg_file):  # atomic_write makes the folder
        atomic_write(cfg_file, config.to_json(indent=2))
    # the largest body a valid file can give: MAX_SAMPLES at the config's hop
    max_frames = audio.MAX_SAMPLES // config.hop_length + 2
    return Packs(cfg_dir, _NPY_HEADER_MAX + max_frames * config.n_dims * 8)


@dataclass(frozen=True)
class RunOptions:
    """How a file-level job runs: the feature cache folder (None: none), the workers
    (None: all cores), ``progress(n_done, n_total, label)`` (:mod:`audiogmm.progress`),
    and whether to fail on the first bad file instead of skipping it (``strict``)."""

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
    """What :func:`extract_many` produced: ``features`` (n_frames, n_dims) by the path as
    given (``Record.path`` for records) and ``skipped`` files, both in input order; the
    numbers of files computed and read back; ``cache_errors``, the entries that could not
    be written (a full disk), naming the entry and the reason (the features are good)."""

    features: dict[str, np.ndarray] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    n_extracted: int = 0
    n_cached: int = 0
    cache_errors: list[str] = field(default_factory=list)

    @property
    def n_skipped(self) -> int:
        """Number of skipped files."""
        return len(self.skipped)

    def labelled_clips(self, records: Sequence[Record]) -> tuple[list[np.ndarray], list[str]]:
        """The frames and labels of the usable ``records``, in their order; DatasetError
        when every file of some label was skipped (giving the first reason)."""
        kept = [(self.features[r.path], r.label) for r in records if r.path in self.features]
        lost = sorted({r.label for r in records} - {y for _, y in kept})
        if lost:
            first = f"; first: {self.skipped[0].reason}" if self.skipped else ""
            raise DatasetError(f"every training file of label(s) {lost} was skipped "
                               f"({len(self.skipped)} skipped in all{first})")  # fmt: skip
        return [X for X, _ in kept], [y for _, y in kept]

    def derived(self, source: FeatureConfig, target: FeatureConfig) -> ExtractionResult:
        """The same files' features under ``target``, computed from these (``source``'s):
        bit-identical to extracting with ``target`` when
        :func:`audiogmm.features.extraction.derivable` holds; the same files skipped."""
        features = {p: derive(X, source, target) for p, X in self.features.items()}
        return ExtractionResult(features=features, skipped=list(self.skipped))

    def write_skipped_csv(self, path: PathLike) -> None:
        """Write ``path,reason`` rows for the skipped files (atomically; header even if empty)."""
        atomic_write(path, [["path", "reason"], *([s.path, s.reason] for s in self.skipped)])


@on_worker_lost(lambda path, *_, reason: FeatureError(
    f"{path!r}: skipped: {reason} while extracting it"))  # fmt: skip
def _work(path: str, config: FeatureConfig, keep_all_frames: bool) -> np.ndarray | Exception:
    """One file's features, or the AudioError or FeatureError that skips it."""
    try:
        return extract(path, config=config, keep_all_frames=keep_all_frames)
    except (AudioError, FeatureError) as exc:
        return exc.with_traceback(None)  # no frames (and their arrays) kept alive
    except Exception as exc:  # the batch goes on: anything unexpected is a skip too
        return FeatureError(f"{path!r}: {type(exc).__name__}: {exc}")


def extract_many(paths_or_records: Iterable[Union[PathLike, Record]], *,
                 config: Optional[FeatureConfig] = None, options: Optional[RunOptions] = None,
                 executor: Optional[LocalExecutor] = None,
                 keep_all_frames: bool = False) -> ExtractionResult:  # fmt: skip
    """Extract features for many files, in parallel, with an optional disk cache.

    Parameters
    ----------
    paths_or_records : iterable of str, os.PathLike or Record
        The audio files; duplicates are extracted once.
    config : FeatureConfig, optional
        Default: the ``general`` preset (``FeatureConfig()``).
    options : RunOptions, optional
        Default: no cache, all cores as threads, no progress, bad files skipped.
    executor : LocalExecutor, optional
        Default: ``options.n_jobs`` threads for this call (``processes=True`` for workers).
    keep_all_frames : bool
        No VAD frame dropping (:func:`audiogmm.features.extract`).

    Returns
    -------
    ExtractionResult
        Features (n_frames, config.n_dims) by path, in input order. AudioError or
        FeatureError only with ``options.strict``; ParameterError for a bad config or n_jobs."""
    if config is None:
        config = FeatureConfig()
    elif not isinstance(config, FeatureConfig):
        raise ParameterError(f"config must be a FeatureConfig, got {type(config).__name__}")
    opts = options or RunOptions()
    n_jobs, keep_all_frames = opts.n_jobs, bool(keep_all_frames)
    bad = isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1
    if n_jobs is not None and bad:
        raise ParameterError(f"n_jobs must be an integer >= 1 or None, got {n_jobs!r}")
    paths = list(dict.fromkeys(r.path if isinstance(r, Record) else os.fspath(r)
                               for r in paths_or_records))  # fmt: skip
    packs = None if opts.cache_dir is None else feature_packs(opts.cache_dir, config)
    parse = feature_parser(config)
    res, features, errors, keys = ExtractionResult(), {}, {}, {}

    def fail(path: str, exc: Exception) -> None:
        if opts.strict:
            raise exc
        errors[path] = str(exc)
    try:
        with reporter(opts.progress, len(paths), "Extracting features") as tick:
            tasks = []
            for p in paths:
                try:
                    keys[p] = packs and cache_key(p, config, keep_all_frames=keep_all_frames)
                except AudioError as exc:
                    fail(p, exc)
                    tick()
                    continue
                if keys[p] and (arr := packs.get(keys[p], parse)) is not None:
                    features[p] = arr
                    res.n_cached += 1
                    tick()
                else:
                    tasks.append((p, config, keep_all_frames))
            with resolve(executor, n_jobs) as ex:
                outcomes = ex.map(_work, tasks, isolated=True, star=True)
                for (p, *_), feats in zip(tasks, outcomes):
                    if isinstance(feats, Exception):
                        fail(p, feats)
                    else:
                        features[p] = feats
                        res.n_extracted += 1
                        if packs:
                            buf = io.BytesIO()
                            np.save(buf, feats, allow_pickle=False)
                            if err := packs.put(keys[p], buf.getvalue()):
                                where = packs.path or packs.folder
                                res.cache_errors.append(f"{where} (features of {p!r}): {err}")
                    tick()
    finally:
        if packs is not None:
            packs.close()
    res.features = {p: features[p] for p in paths if p in features}  # in input order
    res.skipped = [Skipped(p, errors[p]) for p in paths if p not in features]
    if res.skipped:
        logger.warning("skipped %d of %d files", len(res.skipped), len(paths))
    if res.cache_errors:
        logger.warning("could not write %d of %d cache entries (first: %s)",
                       len(res.cache_errors), len(tasks), res.cache_errors[0])  # fmt: skip
    return res

