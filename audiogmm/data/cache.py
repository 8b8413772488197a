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
from ..features import FeatureConfig
from ..features.extraction import derive, extract_several, extraction_roots
from ..io.atomic import atomic_write
from ..progress import Progress, reporter
from .manifests import Record

__all__ = ["PACK_SUFFIX", "ExtractionResult", "FileFacts", "RunOptions", "Skipped", "cache_key",
           "extract_many", "extract_many_configs", "file_key"]  # fmt: skip

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
def _work(path: str, configs: tuple[FeatureConfig, ...],
          keep_all_frames: bool) -> list[np.ndarray | Exception] | Exception:  # fmt: skip
    """One file's features under each config (one decode), or the AudioError or FeatureError
    that skips it under that config, or under all (an Exception, not a list)."""
    try:
        return extract_several(path, configs, keep_all_frames=keep_all_frames)
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
    return extract_many_configs(paths_or_records, [config], options=options, executor=executor,
                                keep_all_frames=keep_all_frames)[0]  # fmt: skip


def extract_many_configs(paths_or_records: Iterable[Union[PathLike, Record]],
                         configs: Sequence[FeatureConfig], *,
                         options: Optional[RunOptions] = None,
                         executor: Optional[LocalExecutor] = None,
                         keep_all_frames: bool = False) -> list[ExtractionResult]:  # fmt: skip
    """:func:`extract_many` under several configs at once: each file is decoded once for all
    of them, each distinct extraction (:func:`~audiogmm.features.extraction.extraction_roots`)
    computed once and cached, and the configs that differ from one only in CMVN or in fewer
    delta orders derived from its frames. Each result is bit-identical to
    :func:`extract_many` with that config alone.

    Returns
    -------
    list of ExtractionResult
        One per config, in their order; a file is skipped under a config only for a reason
        that config's extraction meets (every config skips an unreadable file)."""
    configs = list(configs)
    if not configs or not all(isinstance(c, FeatureConfig) for c in configs):
        got = ", ".join(type(c).__name__ for c in configs) or "none"
        raise ParameterError(f"configs must be one or more FeatureConfig objects, got {got}")
    opts = options or RunOptions()
    n_jobs, keep_all_frames = opts.n_jobs, bool(keep_all_frames)
    bad = isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1
    if n_jobs is not None and bad:
        raise ParameterError(f"n_jobs must be an integer >= 1 or None, got {n_jobs!r}")
    paths = list(dict.fromkeys(r.path if isinstance(r, Record) else os.fspath(r)
                               for r in paths_or_records))  # fmt: skip
    of = extraction_roots(configs)
    roots = list(dict.fromkeys(of))  # the configs extracted; the others derived
    packs = dict.fromkeys(roots) if opts.cache_dir is None else {
        r: feature_packs(opts.cache_dir, configs[r]) for r in roots}  # fmt: skip
    parse = {r: feature_parser(configs[r]) for r in roots}
    res = {r: ExtractionResult() for r in roots}
    features: dict[int, dict[str, np.ndarray]] = {r: {} for r in roots}
    errors: dict[int, dict[str, str]] = {r: {} for r in roots}
    keys: dict[tuple[int, str], Optional[str]] = {}

    def fail(r: int, path: str, exc: Exception) -> None:
        if opts.strict:
            raise exc
        errors[r][path] = str(exc)
    tasks: list[tuple[str, tuple[FeatureConfig, ...], bool]] = []
    missing: list[list[int]] = []  # the roots each task extracts
    try:
        with reporter(opts.progress, len(paths), "Extracting features") as tick:
            for p in paths:
                todo = []
                for r in roots:
                    try:
                        keys[r, p] = packs[r] and cache_key(p, configs[r],
                                                            keep_all_frames=keep_all_frames)
                    except AudioError as exc:
                        fail(r, p, exc)
                        continue
                    if keys[r, p] and (arr := packs[r].get(keys[r, p], parse[r])) is not None:
                        features[r][p] = arr
                        res[r].n_cached += 1
                    else:
                        todo.append(r)
                if todo:
                    tasks.append((p, tuple(configs[r] for r in todo), keep_all_frames))
                    missing.append(todo)
                else:
                    tick()
            with resolve(executor, n_jobs) as ex:
                outcomes = ex.map(_work, tasks, isolated=True, star=True)
                for (p, *_), todo, got in zip(tasks, missing, outcomes):
                    for r, feats in zip(todo, got if isinstance(got, list) else [got] * len(todo)):
                        if isinstance(feats, Exception):
                            fail(r, p, feats)
                            continue
                        features[r][p] = feats
                        res[r].n_extracted += 1
                        if packs[r]:
                            buf = io.BytesIO()
                            np.save(buf, feats, allow_pickle=False)
                            if err := packs[r].put(keys[r, p], buf.getvalue()):
                                where = packs[r].path or packs[r].folder
                                res[r].cache_errors.append(f"{where} (features of {p!r}): {err}")
                    tick()
    finally:
        for pk in packs.values():
            if pk is not None:
                pk.close()
    for r in roots:
        res[r].features = {p: features[r][p] for p in paths if p in features[r]}  # input order
        res[r].skipped = [Skipped(p, errors[r][p]) for p in paths if p not in features[r]]
    if lost := {p for r in roots for p in errors[r]}:
        logger.warning("skipped %d of %d files", len(lost), len(paths))
    if cache_errors := [e for r in roots for e in res[r].cache_errors]:
        logger.warning("could not write %d of %d cache entries (first: %s)",
                       len(cache_errors), sum(map(len, missing)), cache_errors[0])  # fmt: skip
    return [res[r] if configs[r] == c else res[r].derived(configs[r], c)
            for r, c in zip(of, configs)]  # fmt: skip
