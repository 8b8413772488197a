"""Extract features for many files: in parallel, cached on disk, skipping bad files.

The cache's storage is :mod:`audiogmm.data.packs`. Files are extracted through an
executor (:class:`~audiogmm.engine.LocalExecutor`): threads by default, worker processes
when the caller passes one built with ``processes=True``. Extraction runs its only BLAS
call on one thread, so results are bit-identical for any number of workers.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np

from ..engine import LocalExecutor, resolve
from ..engine.processes import on_worker_lost
from ..exceptions import AudioError, DatasetError, FeatureError, ParameterError
from ..features import FeatureConfig, extract
from ..io.atomic import atomic_write
from ..progress import Progress, reporter
from .manifests import Record
from .packs import cache_key, feature_packs, feature_parser

__all__ = ["ExtractionResult", "RunOptions", "Skipped", "extract_many"]

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]


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
        Frames per file, keyed by the path as given (``Record.path`` for records), in
        input order; skipped files are absent.
    skipped : list of Skipped
        Bad files with the reason, in input order.
    n_extracted, n_cached : int
        Files computed in this run; files read back from the cache.
    cache_errors : list of str
        Cache entries that could not be written (e.g. a full disk), naming the entry and
        the reason; those files' features are in ``features`` all the same.
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
        kept = [(self.features[r.path], r.label) for r in records if r.path in self.features]
        lost = sorted({r.label for r in records} - {y for _, y in kept})
        if lost:
            raise DatasetError(
                f"every training file of label(s) {lost} was skipped ({len(self.skipped)} "
                f"skipped in all{self.first_skipped()})"
            )
        return [X for X, _ in kept], [y for _, y in kept]

    def derived(self, source: FeatureConfig, target: FeatureConfig) -> ExtractionResult:
        """The same files' features under ``target``, computed from these (``source``'s):
        bit-identical to extracting with ``target`` when
        :func:`audiogmm.features.extraction.derivable` holds; the same files skipped."""
        from ..features.extraction import derive

        return ExtractionResult(
            features={p: derive(X, source, target) for p, X in self.features.items()},
            skipped=list(self.skipped),
        )

    def write_skipped_csv(self, path: PathLike) -> None:
        """Write ``path,reason`` rows for the skipped files (atomically; header even if empty)."""
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(
            [["path", "reason"], *([s.path, s.reason] for s in self.skipped)]
        )
        data = buf.getvalue().encode("utf-8")
        atomic_write(os.fspath(path), lambda f: f.write(data))


def _lost(path: str, config: FeatureConfig, keep_all_frames: bool, *, reason: str) -> Exception:
    """What :func:`_work` returns when its worker process died on every attempt."""
    return FeatureError(f"{path!r}: skipped: {reason} while extracting it")


@on_worker_lost(_lost)
def _work(path: str, config: FeatureConfig, keep_all_frames: bool) -> np.ndarray | Exception:
    """One file's features, or the AudioError or FeatureError that skips it."""
    try:
        return extract(path, config=config, keep_all_frames=keep_all_frames)
    except (AudioError, FeatureError) as exc:
        return exc.with_traceback(None)  # no frames (and their arrays) kept alive
    except Exception as exc:  # the batch goes on: anything unexpected is a skip too
        return FeatureError(f"{path!r}: {type(exc).__name__}: {exc}")


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
    n_jobs, keep_all_frames = opts.n_jobs, bool(keep_all_frames)
    if n_jobs is not None and (
        isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1
    ):
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
                            _store(packs, keys[p], p, feats, res.cache_errors)
                    tick()
    finally:
        if packs is not None:
            packs.close()
    for p in paths:
        if p in features:
            res.features[p] = features[p]
        else:
            res.skipped.append(Skipped(p, errors[p]))
    if res.skipped:
        logger.warning("skipped %d of %d files", len(res.skipped), len(paths))
    if res.cache_errors:
        logger.warning("could not write %d of %d cache entries (first: %s)",
                       len(res.cache_errors), len(tasks), res.cache_errors[0])  # fmt: skip
    return res


def _store(packs, key: str, path: str, feats: np.ndarray, errors: list[str]) -> None:
    """Cache ``path``'s features; a failed write (a full disk) is added to ``errors``."""
    buf = io.BytesIO()
    np.save(buf, feats, allow_pickle=False)
    try:
        packs.put(key, buf.getvalue())
    except OSError as exc:  # the features are good, the entry is not
        where = packs.path or packs.folder
        errors.append(f"{where} (features of {path!r}): {exc.strerror or exc}")
