"""File-level classification workflows shared by the CLI and the recipes.

These functions go from manifests (lists of :class:`~audiogmm.data.Record`) or file
paths to results, through the cached front end, with one executor per call that
every stage reuses. They hold no maths and print nothing; the CLI and the recipes
format what they return.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..data import (
    ExtractionResult,
    Record,
    RunOptions,
    extract_many,
    read_manifest,
    select,
    split_records,
)
from ..engine import LocalExecutor, resolve
from ..exceptions import DatasetError
from ..features import FeatureConfig
from ..models import GMMClassifier
from ..scoring import summary
from .bundle import Bundle

__all__ = ["evaluate_classifier", "load_split", "predict_files", "train_classifier"]

logger = logging.getLogger(__name__)


def load_split(data: str | os.PathLike, split: str | None, **split_options: Any) -> list[Record]:
    """Records of one split of a manifest (folder per label, CSV or Kaldi dir).

    When the manifest has no split column, a deterministic stratified split is
    made by :func:`audiogmm.data.split_records` (``train_fraction``, ``seed``), the
    same on every call, so ``train`` and ``test`` never overlap. ``split=None``
    or ``"all"`` returns every record.
    """
    records = read_manifest(data)
    if split in (None, "all"):
        return records
    return select(split_records(records, **split_options), split)


def skipped_list(res: ExtractionResult) -> list[dict[str, str]]:
    """The skipped files of an extraction as ``{path, reason}`` dicts."""
    return [{"path": s.path, "reason": s.reason} for s in res.skipped]


def _first_skipped(res: ExtractionResult) -> str:
    """``"; first: <reason>"`` for messages about skipped files (the reason names the file)."""
    return f"; first: {res.skipped[0].reason}" if res.skipped else ""


def _score_files(
    model: Bundle, items: Sequence[Any], opts: RunOptions, executor: LocalExecutor | None
) -> tuple[ExtractionResult, list[str], list[np.ndarray], np.ndarray]:
    """Features with the model's own config (never the caller's), then one batched scoring.

    Returns the extraction, the usable paths in input order, their frames, and the
    (n_used, n_labels) total log-likelihoods.
    """
    clf = model.classifier
    with resolve(executor, opts.n_jobs) as ex:
        res = extract_many(items, config=model.config, options=opts, executor=ex)
        paths = [getattr(it, "path", None) or os.fspath(it) for it in items]
        used = [p for p in dict.fromkeys(paths) if p in res.features]
        clips = [res.features[p] for p in used]
        S = clf.score_matrix(clips, executor=ex) if used else np.zeros((0, len(clf.labels_)))
    return res, used, clips, S


def train_classifier(
    records: Sequence[Record],
    *,
    config: FeatureConfig | None = None,
    options: RunOptions | None = None,
    executor: LocalExecutor | None = None,
    **classifier_params: Any,
) -> tuple[GMMClassifier, ExtractionResult]:
    """Extract features for ``records`` and fit one GMM per label.

    Parameters
    ----------
    records : sequence of Record
        Training files with labels (the ``split`` field is ignored here).
    config : FeatureConfig, optional
        Front end; default the ``speech`` preset. Save the result with
        :func:`audiogmm.pipeline.save_model` to keep the two together.
    options : RunOptions, optional
        Cache, workers, progress, strictness.
    executor : LocalExecutor, optional
        Shared by extraction and training (default: one for this call).
    **classifier_params
        :class:`~audiogmm.models.GMMClassifier` parameters (``n_components``,
        ``random_state``, ``max_iter``, ``init``, ...).

    Returns
    -------
    classifier : GMMClassifier
        With ``timing_`` (``extract_s``, ``train_s``).
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
    opts = options or RunOptions()
    clf = GMMClassifier(n_jobs=opts.n_jobs, **classifier_params)
    with resolve(executor, opts.n_jobs) as ex:
        t0 = time.perf_counter()
        res = extract_many(records, config=config, options=opts, executor=ex)
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
                f"every training file of label(s) {lost} was skipped ({len(res.skipped)} "
                f"skipped in all{_first_skipped(res)})"
            )
        clf.fit(clips, labels, progress=opts.progress, executor=ex)
    clf.timing_ = {"extract_s": t1 - t0, "train_s": time.perf_counter() - t1}
    return clf, res


def evaluate_classifier(
    model: Bundle,
    records: Sequence[Record],
    *,
    options: RunOptions | None = None,
    executor: LocalExecutor | None = None,
) -> dict[str, Any]:
    """Classify labelled files with a model bundle and compute metrics.

    Raises
    ------
    DatasetError
        When every file was skipped (the message gives the first reason).

    Returns
    -------
    dict
        :func:`audiogmm.scoring.summary` (``accuracy``, ``n``, ``per_class``,
        ``confusion``) plus ``skipped`` (list of ``{path, reason}``),
        ``predictions`` (list of ``{path, label, predicted}``), ``unknown_labels``
        and ``seconds``.
    """
    t0 = time.perf_counter()
    clf = model.classifier
    res, used_paths, _, S = _score_files(model, records, options or RunOptions(), executor)
    if records and not used_paths:
        raise DatasetError(
            f"none of the {len(records)} files could be evaluated: all were skipped"
            f"{_first_skipped(res)}"
        )
    by_path = {r.path: r for r in records}
    used = [by_path[p] for p in used_paths]
    pred = np.array(clf.labels_, dtype=object)[clf.log_proba_from_scores(S).argmax(1)]
    y_true = [r.label for r in used]
    unknown = sorted(set(y_true) - set(clf.labels_))
    if unknown:
        logger.warning("labels %s are not in the model; those clips count as errors", unknown)
    out = summary(y_true, list(pred), labels=sorted(set(clf.labels_) | set(y_true)))
    out["skipped"] = skipped_list(res)
    out["unknown_labels"] = unknown
    out["predictions"] = [
        {"path": r.path, "label": r.label, "predicted": str(p)} for r, p in zip(used, pred)
    ]
    out["seconds"] = time.perf_counter() - t0
    return out


def predict_files(
    model: Bundle,
    paths: Sequence[str | os.PathLike],
    *,
    top: int = 1,
    options: RunOptions | None = None,
    executor: LocalExecutor | None = None,
) -> dict[str, Any]:
    """Classify audio files with the model's own feature configuration.

    Returns
    -------
    dict
        ``results``: one ``{path, label, n_frames, top: [{label, loglik, posterior}]}``
        per usable file (``loglik`` is the total over frames in nats, ``posterior``
        the softmax over classes), and ``skipped``.
    """
    clf = model.classifier
    res, used, clips, S = _score_files(
        model, [os.fspath(p) for p in paths], options or RunOptions(), executor
    )
    LP = clf.log_proba_from_scores(S)
    k = max(1, min(top, len(clf.labels_)))
    results = []
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
    return {"results": results, "skipped": skipped_list(res)}
