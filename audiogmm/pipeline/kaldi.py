"""Split, evaluate and export Kaldi data directories, bypassing the audio cache.

``feats.scp`` gives feature matrices (no audio decoding), ``wav.scp`` + ``segments`` each
segment's features (:mod:`audiogmm.data.kaldi`). Utterances are split like files, by id,
and the model records the training ids (:func:`audiogmm.pipeline.sources.open_clips`), so
that :func:`evaluate_kaldi` refuses them.
The model is a bundle when the front end is known (``audiogmm extract --format kaldi``
stores it, or the directory was read from audio); features made by Kaldi itself give a
plain classifier file that ``evaluate`` reads but ``predict`` on audio refuses.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Optional

import numpy as np

from ..data import Record, RunOptions, extract_many, read_manifest, select, split_records
from ..data.kaldi import (
    CONFIG_FILE,
    Utterance,
    is_kaldi_feats_dir,
    read_feature_config,
    read_kaldi_utterances,
    utterance_ids,
    wav_scp_ids,
    write_feats,
)
from ..exceptions import DatasetError
from ..features import FeatureConfig
from ..models import GMMClassifier
from ..scoring import summary

__all__ = ["evaluate_kaldi", "export_kaldi", "load_kaldi_split"]

logger = logging.getLogger(__name__)


def load_kaldi_split(
    data_dir: str | os.PathLike, split: Optional[str], *, train_fraction: float, seed: int,
    config: Optional[FeatureConfig] = None, allow_pipes: bool = False,
    skipped: Optional[list[dict[str, str]]] = None,
) -> tuple[list[Utterance], Optional[FeatureConfig]]:  # fmt: skip
    """The utterances of one split of a Kaldi directory, and the config of their features.

    ``split`` None or ``"all"`` keeps every utterance; ``"train"``/``"test"`` make the
    stratified split of :func:`audiogmm.data.split_records`, by utterance id. The config
    is the stored :data:`~audiogmm.data.kaldi.CONFIG_FILE` for ``feats.scp`` (None when
    Kaldi made the features), else ``config``. Unusable segments are appended to
    ``skipped`` as ``{path, reason}`` (``path``: the utterance id).
    """
    used_config = read_feature_config(data_dir) if is_kaldi_feats_dir(data_dir) else (
        config or FeatureConfig())  # fmt: skip
    bad: dict[str, str] = {}
    utts = read_kaldi_utterances(data_dir, config=used_config, allow_pipes=allow_pipes,
                                 skipped=bad)  # fmt: skip
    if skipped is not None:
        skipped += [{"path": u, "reason": why} for u, why in sorted(bad.items())]
    if split in (None, "all"):
        return utts, used_config
    if any(u.label is None for u in utts):
        raise DatasetError(f"{os.fspath(data_dir)!r}: no utt2spk, so no labels to split by")
    # a Record's path is only a sort key for the split: here, the utterance id
    records = [Record(u.utt, u.label) for u in utts]
    chosen = select(split_records(records, train_fraction=train_fraction, seed=seed), split)
    keep = {r.path for r in chosen}
    return [u for u in utts if u.utt in keep], used_config


def evaluate_kaldi(
    model_path: str | os.PathLike, data_dir: str | os.PathLike, *,
    split: Optional[str] = "test", train_fraction: Optional[float] = None,
    seed: Optional[int] = None, allow_train_overlap: bool = False, allow_pipes: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Classify the utterances of a Kaldi directory and compute the metrics: a dict of
    :func:`audiogmm.scoring.summary` plus ``predictions``, ``train_overlap``, ``skipped``
    and ``seconds``.

    ``train_fraction`` and ``seed`` left at None take the model's stored values.
    Utterances the model was trained on are refused unless ``allow_train_overlap``.
    """
    t0 = time.perf_counter()
    model, data = os.fspath(model_path), os.fspath(data_dir)
    clf = GMMClassifier.load(model)  # a bundle or a bare classifier file; not a fused one
    stored = clf.file_header_.get("kaldi", {})  # checked by the loader
    tf = train_fraction if train_fraction is not None else stored.get("train_fraction", 0.7)
    sd = seed if seed is not None else stored.get("seed", 0)
    config = clf.file_header_.get("feature_config")
    config = None if config is None else FeatureConfig.from_dict(config)
    skipped: list[dict[str, str]] = []
    utts, data_config = load_kaldi_split(data, split, train_fraction=tf, seed=sd, config=config,
                                         allow_pipes=allow_pipes, skipped=skipped)  # fmt: skip
    if config is not None and data_config is not None and config != data_config:
        raise DatasetError(
            f"{data!r} holds features made with another configuration (hash "
            f"{data_config.content_hash()}) than {model!r} was trained on (hash "
            f"{config.content_hash()}); re-extract them with that model's settings"
        )
    if config is not None and data_config is None:
        logger.warning(
            "%s: features of unknown configuration (no %s); %s was trained on audiogmm "
            "features (hash %s)", data, CONFIG_FILE, model, config.content_hash(),
        )  # fmt: skip
    if any(u.label is None for u in utts):
        raise DatasetError(f"{data!r}: no utt2spk, so no labels to evaluate on")
    same_dir = stored.get("data") == os.path.abspath(data)
    overlap = sorted({u.utt for u in utts} & set(stored.get("train_utts", []))) if same_dir else []
    if overlap and not allow_train_overlap:
        raise DatasetError(f"{len(overlap)} of these utterances were used to train {model!r} "
                           f"(e.g. {overlap[:3]}); evaluate on --split test or pass "
                           "allow_train_overlap")  # fmt: skip
    S = clf.score_matrix([u.features for u in utts])
    pred = np.array(clf.labels_, dtype=object)[clf.log_proba_from_scores(S).argmax(1)]
    y_true = [u.label for u in utts]
    out = summary(y_true, list(pred), labels=sorted(set(clf.labels_) | set(y_true)))
    out.update(train_overlap=len(overlap), skipped=skipped, predictions=[
        {"utt": u.utt, "label": u.label, "predicted": str(p)} for u, p in zip(utts, pred)
    ], seconds=time.perf_counter() - t0)  # fmt: skip
    return out


def export_kaldi(
    data: str | os.PathLike, out_dir: str | os.PathLike, *, config: FeatureConfig,
    options: Optional[RunOptions] = None, allow_pipes: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Extract the features of any manifest into ``out_dir/feats.ark`` + ``feats.scp``.

    Utterance ids are a Kaldi directory's own, else ``<label>-<file stem>``
    (:func:`audiogmm.data.kaldi.utterance_ids`). Returns ``ark``, ``scp``,
    ``n_utterances``, ``n_frames`` and ``skipped``.
    """
    from .classify import skipped_list

    skipped: list[dict[str, str]] = []
    kaldi_dir = os.path.isfile(os.path.join(data, "wav.scp"))
    if kaldi_dir and (allow_pipes or os.path.isfile(os.path.join(data, "segments"))):
        utts = read_kaldi_utterances(data, config=config, allow_pipes=allow_pipes)
        feats = {u.utt: u.features for u in utts}
        labels = {u.utt: u.label for u in utts if u.label is not None}
    else:
        records = read_manifest(data)
        res = extract_many(records, config=config, options=options)
        used = [r for r in records if r.path in res.features]
        ids = utterance_ids([r.path for r in used], [r.label for r in used])
        if kaldi_dir:  # keep a Kaldi directory's own ids
            own = wav_scp_ids(data)
            ids = [own.get(r.path, i) for r, i in zip(used, ids)]
        feats = {i: res.features[r.path] for i, r in zip(ids, used)}
        labels = {i: r.label for i, r in zip(ids, used)}
        skipped = skipped_list(res)
    ark, scp = write_feats(out_dir, feats, labels=labels or None, config=config)
    n_frames = int(sum(X.shape[0] for X in feats.values()))
    return {"ark": ark, "scp": scp, "n_utterances": len(feats), "n_frames": n_frames,
            "skipped": skipped}  # fmt: skip
