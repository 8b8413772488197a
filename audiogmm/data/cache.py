"""Extract features for many files: in parallel, cached on disk, skipping bad files.

Layout of a cache directory::

    <cache_dir>/<config-hash>/config.json     the FeatureConfig (for humans)
    <cache_dir>/<config-hash>/<key>.npy       one (n_frames, n_dims) array per file

``key`` is the SHA-256 of the file's absolute path, size, ``st_mtime_ns``, the
config hash, the ``keep_all_frames`` flag and the entry format, so a changed file
or a changed config is re-extracted and everything else is read back. An entry is
the ``.npy`` bytes of the array (no pickle; ``np.load`` reads it) followed by a
16-byte SHA-256 digest of those bytes. Entries are written to a temporary file
and moved into place with :func:`os.replace`, in four system calls and without an
fsync (it cost as much as the extraction itself): a killed run leaves every finished
entry whole, and an entry torn by a power loss fails its digest. On reading, the digest, shape, dtype
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
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np

from .. import audio
from ..engine import LocalExecutor, resolve
from ..engine.processes import on_worker_lost
from ..exceptions import AudioError, DatasetError, FeatureError, ParameterError
from ..features import FeatureConfig, extract
from ..io.atomic import atomic_write, clean_stale_temps
from ..progress import Progress, reporter
from .manifests import Record

__all__ = [
    "ExtractionResult",
    "RunOptions",
    "Skipped",
    "cache_key",
    "cache_path",
    "extract_many",
]

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]


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
ENTRY_FORMAT = "npy+sha256-16"
_DIGEST_BYTES = 16
_NPY_HEADER_MAX = 1 << 16  # far above any header np.save writes for a 2-D array


def cache_key(path: PathLike, config: FeatureConfig, *, keep_all_frames: bool = False) -> str:
    """SHA-256 hex digest of (absolute path, size, mtime_ns, config hash, keep_all_frames, format).

    Raises
    ------
    AudioError
        If the file cannot be stat'ed (missing, unreadable, empty).
    """
    p = os.path.abspath(os.fspath(path))
    audio.check_file(p)
    st = os.stat(p)
    ident = "\0".join(
        [p, str(st.st_size), str(st.st_mtime_ns), config.content_hash(),
         str(bool(keep_all_frames)), ENTRY_FORMAT]
    )  # fmt: skip
    return hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()


def cache_path(
    cache_dir: PathLike, path: PathLike, config: FeatureConfig, *, keep_all_frames: bool = False
) -> str:
    """Where the features of *path* under *config* are cached in *cache_dir*."""
    key = cache_key(path, config, keep_all_frames=keep_all_frames)
    return os.path.join(os.fspath(cache_dir), config.content_hash(), key + ".npy")


def _atomic_write_bytes(dst: str, data: bytes) -> None:
    atomic_write(dst, lambda f: f.write(data))


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()[:_DIGEST_BYTES]  # SHA-NI: 3x BLAKE2b's speed


def _save_entry(dst: str, arr: np.ndarray) -> None:
    """Write one entry: the array's .npy bytes, then their digest (no fsync; see the module).

    Four system calls (create, write, close, rename): :func:`~audiogmm.io.atomic.atomic_write`'s
    general path (umask lookup, random name, chmod, buffered file) cost 5-8x more per entry
    than the write itself. ``os.open`` applies the umask to the new file's mode, and the
    temporary name (pid and thread, as ``atomic_write``'s) is removed by its stale-file
    cleaner should the process be killed between create and rename.
    """
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    data = buf.getvalue()
    folder, name = os.path.split(dst)
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{threading.get_ident()}-{name}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o666)
    try:
        try:
            view = memoryview(data + _digest(data))
            while view:  # a short write (a signal, a nearly full disk) continues
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, dst)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _load_cached(file: str, config: FeatureConfig) -> Optional[np.ndarray]:
    """The cached array if it exists and is valid, else None (never trusted blindly)."""
    # the largest entry a valid file can give: MAX_SAMPLES at the config's hop
    max_frames = audio.MAX_SAMPLES // config.hop_length + 2
    limit = _NPY_HEADER_MAX + max_frames * config.n_dims * 8 + _DIGEST_BYTES
    try:
        with open(file, "rb") as f:
            if os.fstat(f.fileno()).st_size > limit:
                raise ValueError("larger than any entry can be")
            data = f.read()
        body, digest = data[:-_DIGEST_BYTES], data[-_DIGEST_BYTES:]
        if len(data) <= _DIGEST_BYTES or _digest(body) != digest:
            raise ValueError("digest mismatch: torn or altered")
        arr = np.load(io.BytesIO(body), allow_pickle=False)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError) as exc:
        logger.warning("ignoring corrupt cache entry %s (%s); recomputing", file, exc)
        return None
    ok = (
        isinstance(arr, np.ndarray)
        and arr.ndim == 2
        and arr.shape[0] >= 1
        and arr.shape[1] == config.n_dims
        and arr.dtype == np.dtype(config.dtype)
        and bool(np.isfinite(arr).all())
    )
    if not ok:
        logger.warning("ignoring invalid cache entry %s; recomputing", file)
        return None
    return arr


# ---------------------------------------------------------------------- workers
#: What a worker returns: (error kind or "", features or None, message, cache write error or "")
_Outcome = tuple[str, Optional[np.ndarray], str, str]


def _lost(
    path: str,
    config: FeatureConfig,
    keep_all_frames: bool,
    cache_file: Optional[str],
    *,
    reason: str,
) -> _Outcome:
    """What :func:`_work` returns when its worker process died on every attempt."""
    return "FeatureError", None, f"{path!r}: skipped: {reason} while extracting it", ""


@on_worker_lost(_lost)
def _work(
    path: str, config: FeatureConfig, keep_all_frames: bool, cache_file: Optional[str]
) -> _Outcome:
    """Extract one file, and cache it when ``cache_file`` is given."""
    try:
        feats = extract(path, config=config, keep_all_frames=keep_all_frames)
    except AudioError as exc:
        return "AudioError", None, str(exc), ""
    except FeatureError as exc:
        return "FeatureError", None, str(exc), ""
    except Exception as exc:  # the batch goes on: anything unexpected is a skip too
        return "FeatureError", None, f"{path!r}: {type(exc).__name__}: {exc}", ""
    if cache_file is not None:
        try:
            _save_entry(cache_file, feats)
        except OSError as exc:  # e.g. a full disk: the features are good, the entry is not
            reason = exc.strerror or str(exc)
            return "", feats, "", f"{cache_file} (features of {path!r}): {reason}"
    return "", feats, "", ""


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

    cfg_dir: Optional[str] = None
    if cache_dir is not None:
        cfg_dir = os.path.join(os.fspath(cache_dir), config.content_hash())
        os.makedirs(cfg_dir, exist_ok=True)
        cfg_file = os.path.join(cfg_dir, "config.json")
        if not os.path.exists(cfg_file):
            _atomic_write_bytes(cfg_file, config.to_json(indent=2).encode("utf-8"))

    results: dict[str, np.ndarray] = {}
    errors: dict[str, tuple[str, str]] = {}
    n_cached = 0
    n_extracted = 0
    cache_errors: list[str] = []

    def fail(path: str, kind: str, message: str) -> None:
        if strict:
            raise (AudioError if kind == "AudioError" else FeatureError)(message)
        errors[path] = (kind, message)

    with reporter(opts.progress, total, "Extracting features") as tick:
        tasks: list[tuple[str, FeatureConfig, bool, Optional[str]]] = []
        for p in paths:
            cfile: Optional[str] = None
            if cfg_dir is not None:
                try:
                    key = cache_key(p, config, keep_all_frames=keep_all_frames)
                except AudioError as exc:
                    fail(p, "AudioError", str(exc))
                    tick()
                    continue
                cfile = os.path.join(cfg_dir, key + ".npy")
                arr = _load_cached(cfile, config)
                if arr is not None:
                    results[p] = arr
                    n_cached += 1
                    tick()
                    continue
            tasks.append((p, config, keep_all_frames, cfile))

        if tasks and cfg_dir is not None:
            clean_stale_temps(cfg_dir)  # what killed writers left (once per process)
        with resolve(executor, n_jobs) as ex:
            for (p, *_), (kind, feats, message, cache_error) in zip(
                tasks, ex.map(_work, tasks, isolated=True, star=True)
            ):
                if cache_error:
                    cache_errors.append(cache_error)
                if kind:
                    fail(p, kind, message)
                else:
                    assert feats is not None
                    results[p] = feats
                    n_extracted += 1
                tick()

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
