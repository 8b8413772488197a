"""Evaluate and export Kaldi data directories (``feats.scp``, or ``wav.scp`` + ``segments``),
read as ``train`` reads them (:func:`.sources.kaldi_clips`), bypassing the audio cache.
Features made by Kaldi itself give a plain classifier file (no front end)."""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Optional

from ..data import RunOptions, extract_many, read_manifest
from ..data.kaldi import CONFIG_FILE, read_kaldi_utterances, utterance_ids, wav_scp_ids, write_feats
from ..exceptions import DatasetError
from ..features import FeatureConfig
from ..models import GMMClassifier
from .classify import labelled_results, skipped_list
from .sources import kaldi_clips

__all__ = ["evaluate_kaldi", "export_kaldi"]

logger = logging.getLogger(__name__)


def evaluate_kaldi(
    model_path: str | os.PathLike, data_dir: str | os.PathLike, *,
    split: Optional[str] = "test", train_fraction: Optional[float] = None,
    seed: Optional[int] = None, allow_train_overlap: bool = False, allow_pipes: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Classify the utterances of a Kaldi directory: :func:`.classify.labelled_results`
    (predictions by ``utt``) plus ``train_overlap``, ``skipped`` and ``seconds``. Split as
    the model's training data (``train_fraction``, ``seed`` None: the model's values);
    its training utterances refused unless ``allow_train_overlap``."""
    t0 = time.perf_counter()
    model, data = os.fspath(model_path), os.fspath(data_dir)
    clf = GMMClassifier.load(model)  # a bundle or a bare classifier file; not a fused one
    stored = clf.file_header_.get("kaldi", {})  # checked by the loader
    config = clf.file_header_.get("feature_config")
    config = None if config is None else FeatureConfig.from_dict(config)
    tf = stored.get("train_fraction", 0.7) if train_fraction is None else train_fraction
    sd = stored.get("seed", 0) if seed is None else seed
    utts = kaldi_clips(data, split=split, train_fraction=tf, seed=sd, config=config,
                       allow_pipes=allow_pipes)  # fmt: skip
    if config is not None and utts.config is not None and config != utts.config:
        raise DatasetError(
            f"{data!r} holds features made with another configuration (hash "
            f"{utts.config.content_hash()}) than {model!r} was trained on (hash "
            f"{config.content_hash()}); re-extract them with that model's settings"
        )
    if config is not None and utts.config is None:
        logger.warning(
            "%s: features of unknown configuration (no %s); %s was trained on audiogmm "
            "features (hash %s)", data, CONFIG_FILE, model, config.content_hash(),
        )  # fmt: skip
    same_dir = stored.get("data") == os.path.abspath(data)
    overlap = sorted(set(utts.names) & set(stored.get("train_utts", []))) if same_dir else []
    if overlap and not allow_train_overlap:
        raise DatasetError(f"{len(overlap)} of these utterances were used to train {model!r} "
                           f"(e.g. {overlap[:3]}); evaluate on --split test or pass "
                           "allow_train_overlap")  # fmt: skip
    out = labelled_results(clf, clf.score_matrix(utts.clips), utts.labels, utts.names, key="utt")
    out.update(train_overlap=len(overlap), skipped=utts.skipped, seconds=time.perf_counter() - t0)
    return out


def export_kaldi(
    data: str | os.PathLike, out_dir: str | os.PathLike, *, config: FeatureConfig,
    options: Optional[RunOptions] = None, allow_pipes: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Extract the features of any manifest into ``out_dir/feats.ark`` + ``feats.scp``,
    by a Kaldi directory's own utterance ids, else ``<label>-<file stem>``
    (:func:`audiogmm.data.kaldi.utterance_ids`): ``ark``, ``scp``, ``n_utterances``,
    ``n_frames`` and ``skipped``."""
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
