"""File-level workflows shared by the CLI and the recipes: train, evaluate, predict.

These functions go from manifests (lists of :class:`~audiogmm.datasets.Record`) or
file paths to results, through the cached parallel front end. They hold no maths
and print nothing; the CLI and the recipes format what they return.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .cache import ExtractionResult, extract_many
from .classifier import GMMClassifier
from .datasets import Record, read_manifest, select, split_records
from .exceptions import DatasetError
from .features import FeatureConfig
from .metrics import summary

__all__ = ["load_split", "train_classifier", "evaluate_classifier", "predict_files"]

logger = logging.getLogger(__name__)


def load_split(
    data: str | os.PathLike,
    split: str | None,
    *,
    train_fraction: float = 0.7,
    seed: int = 0,
) -> list[Record]:
    """Records of one split of a manifest (folder per label, CSV or Kaldi dir).

    When the manifest has no split column, a deterministic stratified split is
    made with ``train_fraction`` and ``seed`` (the same on every call, so
    ``train`` and ``test`` never overlap). ``split=None`` or ``"all"`` returns
    every record.
    """
    records = read_manifest(data)
    if split in (None, "all"):
        return records
    return select(split_records(records, train_fraction=train_fraction, seed=seed), split)


def _skipped(res: ExtractionResult) -> list[dict[str, str]]:
    return [{"path": s.path, "reason": s.reason} for s in res.skipped]


def train_classifier(
    records: Sequence[Record],
    *,
    config: FeatureConfig | None = None,
    n_components: int = 16,
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int | None = None,
    progress: bool | None = None,
    strict: bool = False,
    random_state: int | None = 0,
    **gmm_params: Any,
) -> tuple[GMMClassifier, ExtractionResult]:
    """Extract features for ``records`` and fit one GMM per label.

    Parameters
    ----------
    records : sequence of Record
        Training files with labels (the ``split`` field is ignored here).
    config : FeatureConfig, optional
        Front end; default the ``speech`` preset. Embedded in the model.
    n_components : int
        Components per class.
    cache_dir : path, optional
        Feature cache; re-runs skip files already extracted with this config.
    n_jobs : int, optional
        Processes for extraction and threads for training (default: all cores).
    progress : bool, optional
        Progress bar on stderr (default: only when stderr is a terminal).
    strict : bool
        Fail on the first bad file instead of skipping it.
    random_state : int, optional
        Seed.
    **gmm_params
        Passed to every :class:`~audiogmm.gmm.DiagGMM`.

    Returns
    -------
    classifier : GMMClassifier
    extraction : ExtractionResult
        With ``skipped`` listing the files that could not be used.

    Raises
    ------
    DatasetError
        No records, or a label left without any usable file.
    """
    if not records:
        raise DatasetError("no training files")
    config = config or FeatureConfig.preset("speech")
    t0 = time.perf_counter()
    res = extract_many(
        records, config=config, cache_dir=cache_dir, n_jobs=n_jobs, strict=strict, progress=progress
    )
    t1 = time.perf_counter()
    clips, labels = [], []
    for r in records:
        X = res.features.get(r.path)
        if X is not None:
            clips.append(X)
            labels.append(r.label)
    lost = sorted({r.label for r in records} - set(labels))
    if lost:
        raise DatasetError(
            f"every training file of label(s) {lost} was skipped; see the skipped list "
            f"({len(res.skipped)} files)"
        )
    clf = GMMClassifier(
        n_components, feature_config=config, n_jobs=n_jobs, random_state=random_state, **gmm_params
    )
    clf.fit(clips, labels, progress=progress)
    clf.timing_ = {"extract_s": t1 - t0, "train_s": time.perf_counter() - t1}
    return clf, res


def _features(clf, paths, *, cache_dir, n_jobs, progress, strict) -> ExtractionResult:
    # the model's own feature config, never the caller's: prediction must match training
    return extract_many(
        paths,
        config=clf.config,
        cache_dir=cache_dir,
        n_jobs=n_jobs,
        strict=strict,
        progress=progress,
    )


def evaluate_classifier(
    clf: GMMClassifier,
    records: Sequence[Record],
    *,
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int | None = None,
    progress: bool | None = None,
    strict: bool = False,
) -> dict[str, Any]:
    """Classify labelled files and compute metrics.

    Returns
    -------
    dict
        :func:`audiogmm.metrics.summary` (``accuracy``, ``n``, ``per_class``,
        ``confusion``) plus ``skipped`` (list of ``{path, reason}``),
        ``predictions`` (list of ``{path, label, predicted}``), ``unknown_labels``
        and ``seconds``.
    """
    t0 = time.perf_counter()
    res = _features(
        clf, records, cache_dir=cache_dir, n_jobs=n_jobs, progress=progress, strict=strict
    )
    used = [r for r in records if r.path in res.features]
    pred = clf.predict([res.features[r.path] for r in used]) if used else np.array([], dtype=object)
    y_true = [r.label for r in used]
    unknown = sorted(set(y_true) - set(clf.labels_))
    if unknown:
        logger.warning("labels %s are not in the model; those clips count as errors", unknown)
    out = summary(y_true, list(pred), labels=sorted(set(clf.labels_) | set(y_true)))
    out["skipped"] = _skipped(res)
    out["unknown_labels"] = unknown
    out["predictions"] = [
        {"path": r.path, "label": r.label, "predicted": str(p)} for r, p in zip(used, pred)
    ]
    out["seconds"] = time.perf_counter() - t0
    return out


def predict_files(
    clf: GMMClassifier,
    paths: Sequence[str | os.PathLike],
    *,
    top: int = 1,
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int | None = None,
    progress: bool | None = None,
    strict: bool = False,
) -> dict[str, Any]:
    """Classify audio files with the model's own feature configuration.

    Returns
    -------
    dict
        ``results``: one ``{path, label, n_frames, top: [{label, loglik, posterior}]}``
        per usable file (``loglik`` is the total over frames in nats, ``posterior``
        the softmax over classes), and ``skipped``.
    """
    paths = [os.fspath(p) for p in paths]
    res = _features(
        clf, paths, cache_dir=cache_dir, n_jobs=n_jobs, progress=progress, strict=strict
    )
    used = [p for p in paths if p in res.features]
    results = []
    if used:
        clips = [res.features[p] for p in used]
        S = clf.score_matrix(clips)
        LP = clf.log_proba_from_scores(S)
        k = max(1, min(top, len(clf.labels_)))
        for i, p in enumerate(used):
            order = np.argsort(-LP[i], kind="stable")[:k]
            results.append(
                {
                    "path": p,
                    "label": clf.labels_[order[0]],
                    "n_frames": int(clips[i].shape[0]),
                    "top": [
                        {
                            "label": clf.labels_[j],
                            "loglik": float(S[i, j]),
                            "posterior": float(np.exp(LP[i, j])),
                        }
                        for j in order
                    ],
                }
            )
    return {"results": results, "skipped": _skipped(res)}
