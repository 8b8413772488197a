"""Model files and file-level work: a classifier saved with the
:class:`~audiogmm.features.FeatureConfig` that made its features (a fused model: one per
member), so that prediction extracts features exactly as training did, and a UBM with the
config it records; splits, evaluation and prediction from manifests (lists of
:class:`~audiogmm.data.Record`) or paths, through the cached front end. :func:`score_files`,
:func:`check_training_files` and :func:`labelled_results` are the one scoring path
(``verify`` and ``kaldi`` too)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from ..data import (
    TRAIN_FRACTION,
    ExtractionResult,
    Record,
    RunOptions,
    content_hash,
    extract_many_configs,
    read_manifest,
    select,
    split_records,
    split_spec,
    stored_training_paths,
    training_overlap,
)
from ..engine import LocalExecutor, resolve
from ..exceptions import DatasetError, ModelFileError, ParameterError
from ..features import FeatureConfig
from ..io import load, save
from ..mixture import DiagGMM
from ..models import FusedClassifier, GMMClassifier
from ..models.classifier import UNKNOWN, decide
from ..scoring import summary
from ..scoring.metrics import open_set_rates
from ..scoring.verification import calibrated_threshold

__all__ = ["Bundle", "check_training_files", "describe_split", "evaluate_classifier",
           "evaluation_split", "labelled_results", "load_model", "load_split", "load_ubm",
           "predict_files", "save_model", "score_files", "skipped_list"]  # fmt: skip

logger = logging.getLogger(__name__)


@dataclass
class Bundle:
    """A trained classifier, its front end ``config`` (a fused model's first member's), the
    file's full JSON ``header``, and ``configs``, one front end per member (``[config]``)."""

    classifier: Any
    config: FeatureConfig
    header: dict[str, Any] = field(default_factory=dict)
    configs: list[FeatureConfig] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.configs:
            self.configs = [self.config]

    @property
    def fused(self) -> bool:
        """Whether the classifier fuses several front ends (:class:`FusedClassifier`)."""
        return isinstance(self.classifier, FusedClassifier)


def save_model(path: str | os.PathLike, classifier: GMMClassifier | FusedClassifier,
               config: Union[FeatureConfig, Sequence[FeatureConfig]], *,
               extra: dict[str, Any] | None = None) -> None:  # fmt: skip
    """Write ``classifier`` and ``config`` (one per member of a FusedClassifier) to one model
    file (atomic, checksummed, no pickle). ``extra`` header blocks (e.g. ``"split"``) must
    be declared in the classifier's table (:mod:`audiogmm.io.tables`) and pass its checks,
    so the file always loads; ParameterError for those, or when feature dimensions differ."""
    fused = isinstance(classifier, FusedClassifier)
    if not (fused or isinstance(config, FeatureConfig)):
        raise ParameterError("config must be one FeatureConfig for this classifier")
    configs = [config] if isinstance(config, FeatureConfig) else list(config)
    _check_dims(classifier, configs, "", ParameterError)
    front = ({"feature_configs": [c.to_dict() for c in configs]} if fused
             else {"feature_config": config.to_dict()})  # fmt: skip
    save(classifier, path, extra={**(extra or {}), **front})


def _check_dims(model: Any, configs: list[Any], prefix: str, error: type[Exception]) -> None:
    """``error`` when the front ends' dimensions are not the model's (its members')."""
    fused = isinstance(model, FusedClassifier)
    dims = tuple(c.n_dims if isinstance(c, FeatureConfig) else None for c in configs)
    if dims != (model.n_dims if fused else (model.n_dims,)):
        gives = f"configs give {dims}" if fused else f"config gives {dims[0]}"
        what = "UBM" if isinstance(model, DiagGMM) else "classifier"
        raise error(f"{prefix}the {what} has {model.n_dims} dims but the feature {gives}")


def load_model(path: str | os.PathLike) -> Bundle:
    """Read a model file written by :func:`save_model`: :func:`audiogmm.io.load` checks
    every header field against the kind's table, this the front ends against the models.
    ModelFileError for a bad file, a missing or invalid feature config, or one whose
    dimension does not match the models."""
    name = os.fspath(path)
    clf = load(path)
    if not isinstance(clf, (GMMClassifier, FusedClassifier)):
        raise ModelFileError(f"{name}: holds a {type(clf).__name__}, not a classifier")
    header = clf.file_header_
    key = "feature_configs" if isinstance(clf, FusedClassifier) else "feature_config"
    if key not in header:
        raise ModelFileError(f"{name}: no feature configuration ({key!r}) in this file; use "
                             "audiogmm.pipeline.save_model or `audiogmm train` to make a model "
                             "for audio")  # fmt: skip
    blocks = header[key] if key == "feature_configs" else [header[key]]
    configs = [FeatureConfig.from_dict(c) for c in blocks]
    _check_dims(clf, configs, f"{name}: ", ModelFileError)
    cal = header.get("calibration")  # checked by the loader
    if type(clf) is GMMClassifier and cal:  # ml: --reject auto follows from the calibration
        clf.threshold_ = calibrated_threshold(cal["slope"], cal["offset"], cal["p_target"])
    return Bundle(clf, configs[0], header, configs=configs)


def load_ubm(path: str | os.PathLike) -> tuple[DiagGMM, FeatureConfig | None]:
    """A UBM written by ``audiogmm ubm`` (a DiagGMM file) and the FeatureConfig it records
    (None for one saved without, e.g. by ``DiagGMM.save``); ModelFileError naming the file
    for another kind of file or a bad feature configuration."""
    ubm = load(path, DiagGMM)
    block = ubm.file_header_.get("feature_config")  # checked by the loader
    config = None if block is None else FeatureConfig.from_dict(block)
    if config is not None:
        _check_dims(ubm, [config], f"{os.fspath(path)}: ", ModelFileError)
    return ubm, config


def load_split(data: str | os.PathLike | Sequence[Record], split: str | None,
               **split_options: Any) -> list[Record]:  # fmt: skip
    """Records of one split of a manifest (folder per label, CSV or Kaldi dir; or records);
    every record for ``split=None`` or ``"all"``. Without a split column, the deterministic
    stratified split of :func:`audiogmm.data.split_records` (``train_fraction``, ``seed``)."""
    records = read_manifest(data) if isinstance(data, (str, os.PathLike)) else list(data)
    if split in (None, "all"):
        return records
    return select(split_records(records, **split_options), split)


def describe_split(data: str | os.PathLike, split: str | None, train_records: Sequence[Record], *,
                   train_fraction: float = TRAIN_FRACTION, seed: int = 0, n_jobs: int | None = None,
                   cache_dir: str | os.PathLike | None = None) -> dict[str, Any]:  # fmt: skip
    """The split block (:func:`audiogmm.data.splits.split_spec`) to store in a model trained
    on ``train_records`` of ``data``: ``save_model(..., extra={"split": block})``."""
    return split_spec(read_manifest(data), train_records, split=split, seed=seed, n_jobs=n_jobs,
                      train_fraction=train_fraction, cache_dir=cache_dir)  # fmt: skip


def evaluation_split(model: Bundle, manifest: Sequence[Record], split: str | None, *,
                     train_fraction: float | None = None,
                     seed: int | None = None) -> tuple[list[Record], dict[str, Any]]:  # fmt: skip
    """Records of ``split`` of the evaluation ``manifest``, split as ``model`` was
    (``train_fraction``, ``seed`` None: the model's, so ``test`` of the training manifest is
    the held-out files), and ``source`` (model, options or defaults), ``split``, ``seed``,
    ``train_fraction``, ``from_column`` and ``manifest_matches`` (None: no split block)."""
    given = train_fraction is not None or seed is not None
    spec = model.header.get("split")  # checked by the loader
    manifest = list(manifest)
    stored = spec or {"seed": 0, "train_fraction": TRAIN_FRACTION}
    seed = stored["seed"] if seed is None else seed
    train_fraction = stored["train_fraction"] if train_fraction is None else train_fraction
    source = "options" if given else "model" if spec else "defaults"
    digest = spec and content_hash(manifest)
    matches = None if spec is None else digest == spec["manifest_hash"]
    if matches is False:
        logger.warning("the evaluation data is not the manifest this model was trained on "
                       "(content hash %s, the model's is %s); files are still checked against "
                       "the training files by content", digest, spec["manifest_hash"])
    info = {"source": source, "split": split or "all", "seed": seed,
            "train_fraction": train_fraction, "manifest_matches": matches,
            "from_column": bool(manifest) and all(r.split is not None for r in manifest)}
    return load_split(manifest, split, train_fraction=train_fraction, seed=seed), info


def skipped_list(res: ExtractionResult | Sequence[Any]) -> list[dict[str, str]]:
    """The skipped files of an extraction (or its ``skipped``) as ``{path, reason}`` dicts."""
    return [{"path": s.path, "reason": s.reason} for s in getattr(res, "skipped", res)]


def score_files(
    model: Bundle, items: Sequence[Any], opts: RunOptions, executor: LocalExecutor | None,
    *, verification: bool = False,
) -> tuple[list[dict[str, str]], list[str], list[np.ndarray], np.ndarray]:  # fmt: skip
    """Features with the model's own config (never the caller's), then one batched scoring:
    the skipped files (``{path, reason}``), the usable paths in input order, their frame
    counts (n_used,) and scores (n_used, n_labels): class scores, or ``verification`` ones."""
    clf = model.classifier
    with resolve(executor, opts.n_jobs) as ex:
        # one extraction per front end that no other member derives (a fused model has one
        # per member; a member differing only in CMVN is computed from another's frames)
        results = extract_many_configs(items, model.configs, options=opts, executor=ex)
        paths = [getattr(it, "path", None) or os.fspath(it) for it in items]
        used = [p for p in dict.fromkeys(paths) if all(p in r.features for r in results)]
        clip_sets = [[r.features[p] for p in used] for r in results]
        skipped = results[0].skipped
        if len(results) > 1:  # a file any member could not use is skipped, with its reason
            lost = {s.path: s for r in reversed(results) for s in r.skipped}
            skipped = [lost[p] for p in dict.fromkeys(paths) if p in lost]
        clips = clip_sets if model.fused else clip_sets[0]
        if not used:
            S = np.zeros((0, len(clf.labels_)))
        elif verification and model.fused:
            S = clf.verification_scores(clf.score_matrix(clips, executor=ex))
        elif verification:
            S = clf.score_samples(clips, executor=ex)
        else:
            S = clf.score_matrix(clips, executor=ex)
    lengths = np.array([len(X) for X in clip_sets[0]], dtype=np.int64)
    return skipped_list(skipped), used, lengths, S


def check_training_files(model: Bundle, records: Sequence[Record], *, allow: bool = False,
                         what: str = "evaluation", manifest: Sequence[Record] | None = None,
                         options: RunOptions | None = None) -> tuple[int | None, int]:  # fmt: skip
    """Refuse ``records`` (``what`` files) whose bytes match a training file of ``model``'s
    split block, unless ``allow``; with the training ``manifest``, a match under another
    path is a duplicate inside the dataset (scored, warned about). Returns the number of
    training files let through (``None``: no split block, nothing checked) and of duplicates."""
    opts = options or RunOptions()
    spec = model.header.get("split")  # checked by the loader
    if spec is None:
        # info, not a warning: recipes evaluate on a split they made themselves; the result
        # says so with train_overlap=None and the CLI prints it
        logger.info("this model does not record its training files (saved without a split "
                    "block), so the %s files cannot be checked against them", what)  # fmt: skip
        return None, 0
    overlap = training_overlap(spec, records, n_jobs=opts.n_jobs, cache_dir=opts.cache_dir)
    duplicates: list[Record] = []
    trained = stored_training_paths(spec, manifest) if overlap and manifest else None
    if trained is not None:
        # same manifest, so the training files are known by path: a content match elsewhere
        # is a copy inside the dataset (e.g. one sample under two names), not a split leak
        duplicates = [r for r in overlap if r.path not in trained]
        overlap = [r for r in overlap if r.path in trained]
    if duplicates:
        logger.warning("%d %s file(s) are byte-identical to training files listed under other "
                       "paths in the same manifest (duplicates in the dataset, e.g. %r); they are "
                       "scored, so the accuracy is somewhat optimistic", len(duplicates), what,
                       duplicates[0].path)  # fmt: skip
    if overlap and not allow:
        names = ", ".join(repr(r.path) for r in overlap[:3])
        more = f" and {len(overlap) - 3} more" if len(overlap) > 3 else ""
        if spec["split"] == "all":
            how = "every file of its manifest"
        elif spec["from_column"]:
            how = f"split {spec['split']!r} of its manifest's split column"
        else:
            how = (f"split {spec['split']!r} made with seed {spec['seed']} and train fraction "
                   f"{spec['train_fraction']:g}")  # fmt: skip
        raise DatasetError(f"{len(overlap)} of {len(records)} {what} files were used to train "
                           f"this model ({names}{more}); scoring them would overstate accuracy. "
                           f"Evaluate on held-out files (the model was trained on {how}), or "
                           "allow it explicitly (allow_train_overlap=True, --allow-train-overlap)")
    return len(overlap), len(duplicates)


def _threshold(clf: Any, reject: str | float | None) -> float | None:
    """The rejection threshold ``reject`` means for ``clf`` (None: no rejection)."""
    return None if reject is None else clf.resolve_threshold(reject)


def labelled_results(clf: Any, S: np.ndarray, y_true: Sequence[str], names: Sequence[str], *,
                     lengths: np.ndarray | None = None, threshold: float | None = None,
                     key: str = "path") -> dict[str, Any]:  # fmt: skip
    """Metrics of the class scores ``S`` (n_clips, n_labels) of clips labelled ``y_true``:
    :func:`audiogmm.scoring.summary` plus ``unknown_labels``, ``predictions`` (``{key:
    name, label, predicted}``) and, with a ``threshold`` (clips of ``lengths`` frames
    rejected below it) or labels the model does not know, ``open_set``."""
    pred = decide(clf, S, lengths, threshold)
    unknown = sorted(set(y_true) - set(clf.labels_))
    if unknown:
        logger.warning("labels %s are not in the model; those clips count as errors", unknown)
    extra = {UNKNOWN} if threshold is not None else set()
    out = summary(y_true, list(pred), labels=sorted(set(clf.labels_) | set(y_true) | extra))
    if unknown or threshold is not None:
        out["open_set"] = open_set_rates(y_true, list(pred), known=clf.labels_, unknown=UNKNOWN)
    out["unknown_labels"] = unknown
    out["predictions"] = [{key: n, "label": y, "predicted": str(p)}
                          for n, y, p in zip(names, y_true, pred)]  # fmt: skip
    return out


def evaluate_classifier(model: Bundle, records: Sequence[Record], *,
                        options: RunOptions | None = None, executor: LocalExecutor | None = None,
                        manifest: Sequence[Record] | None = None, allow_train_overlap: bool = False,
                        reject: str | float | None = None) -> dict[str, Any]:  # fmt: skip
    """Classify labelled files (``records``) with a model bundle and compute metrics.

    Parameters
    ----------
    manifest, allow_train_overlap : where ``records`` come from, whether to score training
        files (:func:`check_training_files`)
    reject : {'auto'} or float, optional
        ``unknown`` when the chosen class's ``rejection_scores`` (map: per-frame LLR against
        the UBM; ml: against the other classes, per frame; gsv, ivector: calibrated LLR
        against the other classes; a fusion: its fused LLR against the other classes) is
        below this threshold (``"auto"``: the model's; ml: from its calibration; gsv,
        ivector and a fusion with fitted weights: 0).

    Returns
    -------
    dict : :func:`labelled_results` plus ``skipped`` (``{path, reason}``), ``train_overlap``,
        ``train_duplicates`` and ``seconds``. DatasetError when every file is skipped."""
    t0 = time.perf_counter()
    clf = model.classifier
    thr = _threshold(clf, reject)
    opts = options or RunOptions()
    overlap, n_duplicates = check_training_files(model, records, allow=allow_train_overlap,
                                                 manifest=manifest, options=opts)  # fmt: skip
    skipped, used_paths, lengths, S = score_files(model, records, opts, executor)
    if records and not used_paths:
        first = f"; first: {skipped[0]['reason']}" if skipped else ""
        raise DatasetError(f"none of the {len(records)} files could be evaluated: all were "
                           f"skipped{first}")  # fmt: skip
    by_path = {r.path: r for r in records}
    labels = [by_path[p].label for p in used_paths]
    out = labelled_results(clf, S, labels, used_paths, lengths=lengths, threshold=thr)
    out.update(skipped=skipped, train_overlap=overlap, train_duplicates=n_duplicates,
               seconds=time.perf_counter() - t0)  # fmt: skip
    return out


def predict_files(model: Bundle, paths: Sequence[str | os.PathLike], *, top: int = 1,
                  options: RunOptions | None = None, executor: LocalExecutor | None = None,
                  reject: str | float | None = None) -> dict[str, Any]:  # fmt: skip
    """Classify audio files with the model's own front end (``reject`` as in
    :func:`evaluate_classifier`): ``skipped`` and ``results``, one ``{path, label,
    n_frames, top: [{label, loglik, posterior}]}`` per usable file (``loglik``: the class
    score, for ml and map the total log-likelihood in nats; ``posterior``: the softmax
    over classes; with ``reject`` also ``reject_score`` and ``threshold``)."""
    clf = model.classifier
    thr = _threshold(clf, reject)
    items = [os.fspath(p) for p in paths]
    skipped, used, lengths, S = score_files(model, items, options or RunOptions(), executor)
    LP = clf.log_proba_from_scores(S)
    k = max(1, min(top, len(clf.labels_)))
    pred = decide(clf, S, lengths, thr) if used else []
    rej = clf.rejection_scores(S, lengths) if thr is not None and used else None
    results = []
    for i, p in enumerate(used):
        order = np.argsort(-LP[i], kind="stable")[:k]
        top = [{"label": clf.labels_[j], "loglik": float(S[i, j]),
                "posterior": float(np.exp(LP[i, j]))} for j in order]  # fmt: skip
        r = {"path": p, "label": pred[i], "n_frames": int(lengths[i]), "top": top}
        if rej is not None:
            r.update(reject_score=float(rej[i]), threshold=thr)
        results.append(r)
    return {"results": results, "skipped": skipped}
