"""Extract features for many files: in parallel, cached on disk, skipping bad files.

The cache's storage (layout, keys, records, what a killed run leaves) is
:mod:`audiogmm.data.packs`. Files are extracted through an executor
(:class:`~audiogmm.engine.LocalExecutor`): threads in this process by default, worker
processes only when the caller passes an executor built with ``processes=True``. Feature
extraction runs its only BLAS call on one thread, so results are bit-identical for any
number of workers.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Optional, TypeVar, Union

import numpy as np

from ..engine import LocalExecutor, resolve
from ..engine.processes import on_worker_lost
from ..exceptions import AudioError, DatasetError, FeatureError, ParameterError
from ..features import FeatureConfig, extract
from ..io.atomic import atomic_write
from ..progress import Progress, reporter
from .manifests import Record
from .packs import ENTRY_FORMAT, Packs, feature_packs, feature_parser, file_key

__all__ = [
    "ExtractionResult",
    "RunOptions",
    "Skipped",
    "extract_many",
]

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
T = TypeVar("T")


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
    """What :func:`extract_many` produced.

    Attributes
    ----------
    features : dict of str to np.ndarray [shape=(n_frames, n_dims)]
        Frames per file, keyed by the path as given (``Record.path`` for
        records), in input order; skipped files are absent.
    skipped : list of Skipped
        Bad files with the reason, in input order.
    n_extracted, n_cached : int
        Files computed in this run; files read back from the cache.
    cache_errors : list of str
        Cache entries that could not be written (e.g. a full disk), naming the entry
        and the reason; those files' features are in ``features`` all the same.
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
        """The frames and labels of the usable ``records``, in their order; DatasetError
        when every file of some label was skipped (giving the first reason)."""
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
        data = buf.getvalue().encode("utf-8")
        atomic_write(os.fspath(path), lambda f: f.write(data))


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
    paths_or_records: Iterable[Union[PathLike, Record]], *,
    config: Optional[FeatureConfig] = None, options: Optional[RunOptions] = None,
    executor: Optional[LocalExecutor] = None, keep_all_frames: bool = False,
) -> ExtractionResult:  # fmt: skip
    """Extract features for many files, in parallel, with an optional disk cache.

    Parameters
    ----------
    paths_or_records : iterable of str, os.PathLike or Record
        The audio files. Duplicates are extracted once.
    config : FeatureConfig, optional
        Defaults to the ``general`` preset (``FeatureConfig()``).
    options : RunOptions, optional
        Default: no cache, all cores as threads, no progress, bad files skipped.
    executor : LocalExecutor, optional
        Default: ``options.n_jobs`` threads for this call (``processes=True`` for workers).
    keep_all_frames : bool
        No VAD frame dropping (:func:`audiogmm.features.extract`).

    Returns
    -------
    ExtractionResult
        ``features`` (path → ``(n_frames, config.n_dims)`` array, input order),
        ``skipped``, ``n_extracted``, ``n_cached``. AudioError or FeatureError only with
        ``options.strict``; ParameterError for an invalid *config* or ``n_jobs``.
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

    packs: Optional[Packs] = None
    if cache_dir is not None:
        packs = feature_packs(cache_dir, config)
        parse, config_hash = feature_parser(config), config.content_hash()

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
                        key = file_key(p, config_hash, str(keep_all_frames), ENTRY_FORMAT)
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
