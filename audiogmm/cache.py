"""Extract features for many files: in parallel, cached on disk, skipping bad files.

Layout of a cache directory::

    <cache_dir>/<config-hash>/config.json     the FeatureConfig (for humans)
    <cache_dir>/<config-hash>/<key>.npy       one (n_frames, n_dims) array per file

``key`` is the SHA-256 of the file's absolute path, size, ``st_mtime_ns``, the
config hash and the ``keep_all_frames`` flag, so a changed file or a changed
config is re-extracted and everything else is read back. Cache files are plain
``.npy`` (no pickle), written to a temporary file and moved into place with
:func:`os.replace`; on reading they are validated (shape, dtype, finiteness) and
recomputed when anything is off.

Workers are processes (``concurrent.futures.ProcessPoolExecutor``, "forkserver"
start method where available, otherwise "spawn"; librosa is preloaded once in
the forkserver). Pools are kept per worker count and reused by later calls, so
workers stay warm; they are shut down at interpreter exit. Feature extraction runs its only BLAS call on one thread (see
:mod:`audiogmm.features`), so results are bit-identical for any number of jobs.
As with any spawn/forkserver pool, a script that calls :func:`extract_many` with
``n_jobs > 1`` needs the ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import atexit
import csv
import hashlib
import io
import logging
import multiprocessing
import os
import threading
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np

from . import audio
from ._progress import ProgressFn, reporter
from .datasets import Record
from .exceptions import AudioError, FeatureError, ParameterError
from .features import FeatureConfig, extract
from .io import atomic_write

__all__ = [
    "ExtractionResult",
    "Skipped",
    "cache_key",
    "cache_path",
    "extract_many",
]

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

# Modules the forkserver imports once, so forked workers start warm (librosa's
# lazy import costs seconds per process otherwise).
_PRELOAD = [
    "numpy",
    "scipy.signal",
    "soundfile",
    "soxr",
    "threadpoolctl",
    "librosa.core.spectrum",
    "librosa.filters",
    "librosa.feature",
    "librosa.feature.spectral",
    "librosa.feature.utils",
    "audiogmm.features",
    "audiogmm.cache",
]


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
    """

    features: dict[str, np.ndarray] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    n_extracted: int = 0
    n_cached: int = 0

    @property
    def n_skipped(self) -> int:
        """Number of skipped files."""
        return len(self.skipped)

    def write_skipped_csv(self, path: PathLike) -> None:
        """Write ``path,reason`` rows for the skipped files (atomically; header even if empty)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["path", "reason"])
        for s in self.skipped:
            w.writerow([s.path, s.reason])
        _atomic_write_bytes(os.fspath(path), buf.getvalue().encode("utf-8"))


# ---------------------------------------------------------------------- cache files
def cache_key(path: PathLike, config: FeatureConfig, *, keep_all_frames: bool = False) -> str:
    """SHA-256 hex digest of (absolute path, size, mtime_ns, config hash, keep_all_frames).

    Raises
    ------
    AudioError
        If the file cannot be stat'ed (missing, unreadable, empty).
    """
    p = os.path.abspath(os.fspath(path))
    audio._check_file(p)
    st = os.stat(p)
    ident = "\0".join(
        [p, str(st.st_size), str(st.st_mtime_ns), config.content_hash(), str(bool(keep_all_frames))]
    )
    return hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()


def cache_path(
    cache_dir: PathLike, path: PathLike, config: FeatureConfig, *, keep_all_frames: bool = False
) -> str:
    """Where the features of *path* under *config* are cached in *cache_dir*."""
    key = cache_key(path, config, keep_all_frames=keep_all_frames)
    return os.path.join(os.fspath(cache_dir), config.content_hash(), key + ".npy")


def _atomic_write_bytes(dst: str, data: bytes) -> None:
    atomic_write(dst, lambda f: f.write(data))


def _save_npy(dst: str, arr: np.ndarray) -> None:
    atomic_write(dst, lambda f: np.save(f, arr, allow_pickle=False))


def _load_cached(file: str, config: FeatureConfig) -> Optional[np.ndarray]:
    """The cached array if it exists and is valid, else None (never trusted blindly)."""
    try:
        arr = np.load(file, allow_pickle=False)
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
def _work(
    path: str, config: FeatureConfig, keep_all_frames: bool, cache_file: Optional[str]
) -> tuple[str, Optional[np.ndarray], str]:
    """Extract one file. Returns (error kind or "", features or None, message)."""
    try:
        feats = extract(path, config=config, keep_all_frames=keep_all_frames)
    except AudioError as exc:
        return "AudioError", None, str(exc)
    except FeatureError as exc:
        return "FeatureError", None, str(exc)
    except Exception as exc:  # the batch goes on: anything unexpected is a skip too
        return "FeatureError", None, f"{path!r}: {type(exc).__name__}: {exc}"
    if cache_file is not None:
        try:
            _save_npy(cache_file, feats)
        except OSError as exc:
            logger.warning("could not write cache file %s (%s)", cache_file, exc)
    return "", feats, ""


_POOLS: dict[int, ProcessPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(n_workers: int) -> ProcessPoolExecutor:
    """A process pool kept alive between calls (workers stay warm; shut down at exit)."""
    with _POOLS_LOCK:
        ex = _POOLS.get(n_workers)
        if ex is None or getattr(ex, "_broken", False) or getattr(ex, "_shutdown_thread", False):
            ex = ProcessPoolExecutor(max_workers=n_workers, mp_context=_mp_context())
            _POOLS[n_workers] = ex
        return ex


def _shutdown_pools() -> None:
    with _POOLS_LOCK:
        for ex in _POOLS.values():
            ex.shutdown(wait=True, cancel_futures=True)
        _POOLS.clear()


atexit.register(_shutdown_pools)


def _mp_context() -> multiprocessing.context.BaseContext:
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


def _default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


# ---------------------------------------------------------------------- public API
def extract_many(
    paths_or_records: Iterable[Union[PathLike, Record]],
    *,
    config: Optional[FeatureConfig] = None,
    cache_dir: Optional[PathLike] = None,
    n_jobs: Optional[int] = None,
    strict: bool = False,
    progress: Union[None, bool, ProgressFn] = None,
    keep_all_frames: bool = False,
) -> ExtractionResult:
    """Extract features for many files, in parallel, with an optional disk cache.

    Parameters
    ----------
    paths_or_records : iterable of str, os.PathLike or Record
        The audio files. Duplicates are extracted once.
    config : FeatureConfig, optional
        Defaults to the ``speech`` preset.
    cache_dir : str or os.PathLike, optional
        Feature cache directory (created if needed). ``None`` disables caching.
    n_jobs : int >= 1, optional
        Worker processes; ``None`` = the number of usable cores. ``1`` runs in
        this process without a pool.
    strict : bool
        Raise the first bad file's :class:`AudioError` / :class:`FeatureError`
        instead of skipping it.
    progress : bool or callable, optional
        ``None``: a click progress bar on stderr when stderr is a terminal;
        ``True``/``False``: force it on/off; a callable ``f(n_done, n_total)``
        is called after each file instead.
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
        Only with ``strict=True``.
    ParameterError
        Invalid *config* or *n_jobs*.

    Examples
    --------
    >>> from audiogmm.datasets import read_manifest
    >>> res = extract_many(read_manifest("data_samples/speakers"),
    ...                    cache_dir="exp/feats", n_jobs=2)  # doctest: +SKIP
    >>> res.write_skipped_csv("exp/feats/skipped.csv")  # doctest: +SKIP
    """
    if config is None:
        config = FeatureConfig.preset("speech")
    elif not isinstance(config, FeatureConfig):
        raise ParameterError(f"config must be a FeatureConfig, got {type(config).__name__}")
    if n_jobs is None:
        n_jobs = _default_jobs()
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1:
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

    def fail(path: str, kind: str, message: str) -> None:
        if strict:
            raise (AudioError if kind == "AudioError" else FeatureError)(message)
        errors[path] = (kind, message)

    with reporter(progress, total, "Extracting features") as tick:
        tasks: list[tuple[str, Optional[str]]] = []
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
            tasks.append((p, cfile))

        def collect(path: str, out: tuple[str, Optional[np.ndarray], str]) -> None:
            nonlocal n_extracted
            kind, feats, message = out
            if kind:
                fail(path, kind, message)
            else:
                assert feats is not None
                results[path] = feats
                n_extracted += 1
            tick()

        workers = min(int(n_jobs), len(tasks))
        if workers <= 1:
            for p, cfile in tasks:
                collect(p, _work(p, config, keep_all_frames, cfile))
        else:
            ex = _pool(workers)
            futures: dict[Future, str] = {
                ex.submit(_work, p, config, keep_all_frames, cfile): p for p, cfile in tasks
            }
            try:
                for fut in as_completed(futures):
                    collect(futures[fut], fut.result())
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise

    res = ExtractionResult(n_extracted=n_extracted, n_cached=n_cached)
    for p in paths:
        if p in results:
            res.features[p] = results[p]
        else:
            res.skipped.append(Skipped(p, errors[p][1]))
    if res.skipped:
        logger.warning("skipped %d of %d files", len(res.skipped), total)
    return res
