"""The one training path and Kaldi directories. :func:`open_clips` reads one clip set from
any source: audio (a folder per label, a CSV, a Kaldi ``wav.scp``, or records), a Kaldi
``feats.scp`` or ``wav.scp`` + ``segments``, or a shard store; :data:`KINDS` says what each
source cannot take, so that a caller refuses it first. :func:`fit_backend` is the one place
a backend (:data:`audiogmm.models.BACKENDS`) is chosen and fitted. Kaldi directories are
evaluated and exported as ``train`` reads them, bypassing the audio cache; features made by
Kaldi itself give a plain classifier file (no front end)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional

import numpy as np

from ..data import TRAIN_FRACTION, ExtractionResult, Record, RunOptions, extract_many, read_manifest
from ..data.kaldi import (
    CONFIG_FILE,
    is_kaldi_feats_dir,
    needs_kaldi_reader,
    read_feature_config,
    read_kaldi_utterances,
    utterance_ids,
    wav_scp_ids,
    write_feats,
)
from ..data.shards import ShardStore, is_store, open_store
from ..engine import LocalExecutor, resolve
from ..exceptions import DatasetError, ModelFileError, ParameterError
from ..features import FeatureConfig
from ..models import BACKENDS, DEFAULT_BACKEND, GMMClassifier
from .classify import describe_split, labelled_results, load_split, skipped_list

__all__ = ["KINDS", "ClipSet", "audio_clips", "evaluate_kaldi", "export_kaldi", "fit_backend",
           "kaldi_clips", "open_clips", "source_kind", "store_config",
           "train_classifier"]  # fmt: skip

logger = logging.getLogger(__name__)


class Kind(NamedTuple):
    """What a kind of source is: its unit, its name, and the options it cannot take."""

    unit: str
    name: str
    #: ``train`` options (parameter names) that do not apply, and why
    not_for: tuple[str, ...] = ()
    why: str = ""


KINDS = {
    "audio": Kind("file", "audio manifest"),
    "kaldi": Kind("utterance", "Kaldi feature directory", ("calibrate",),
                  "applies to audio data only"),
    "store": Kind("clip", "shard store", ("preset", "config_path", "split", "train_fraction",
                                          "cache_dir", "strict", "calibrate"),
                  "does not apply to a shard store (its clips, labels and front end are fixed)"),
}  # fmt: skip


@dataclass
class ClipSet:
    """Labelled clips from one source (``kind``: audio, kaldi, store), and what to save with
    their model: ``clips`` (n_frames_i, n_dims) each, their ``labels`` and ``names`` (file
    paths or utterance ids; none for a store), ``config`` (their front end; None for features
    made by Kaldi), ``blocks`` (``split`` or ``kaldi``, saved so that scoring can refuse the
    training data), ``skipped`` (``{path, reason}``), ``timing`` (``extract_s`` or
    ``read_s``), ``info`` (``store``) and the audio's ``extraction``."""

    kind: str
    clips: list[np.ndarray]
    labels: list[str]
    config: Optional[FeatureConfig]
    blocks: dict[str, Any] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    timing: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    extraction: Optional[ExtractionResult] = None

    @property
    def unit(self) -> str:
        """What one clip is: ``file``, ``utterance`` or ``clip``."""
        return KINDS[self.kind].unit


def source_kind(data: str | os.PathLike) -> str:
    """``"store"`` for a shard store, ``"kaldi"`` for ``feats.scp`` (or ``wav.scp`` +
    ``segments``), else ``"audio"`` (a manifest of audio files)."""
    if is_store(data):
        return "store"
    return "kaldi" if needs_kaldi_reader(data) else "audio"


def open_clips(data: str | os.PathLike | Sequence[Record], *, split: Optional[str] = None,
               train_fraction: float = TRAIN_FRACTION, seed: int = 0,
               config: Optional[FeatureConfig] = None, options: Optional[RunOptions] = None,
               executor: Optional[LocalExecutor] = None,
               records: Optional[Sequence[Record]] = None) -> ClipSet:  # fmt: skip
    """The training clips of ``data`` of any kind (:func:`source_kind`), or of records (no
    manifest: no split block). ``split``, ``train_fraction`` and ``seed`` as
    :func:`.classify.load_split` (a store's clips all train); ``config``: the audio's front
    end (default ``FeatureConfig()``; stores and ``feats.scp`` carry their own); ``records``:
    the split's when already read. DatasetError for no clips, a label without a usable file
    or unlabelled utterances; ModelFileError for an invalid stored feature configuration."""
    if not isinstance(data, (str, os.PathLike)):
        data, records = None, list(data)
    kind = "audio" if data is None else source_kind(data)
    if kind == "store":
        store = open_store(data)
        config = store_config(store)
        if store.n_clips == 0:
            raise DatasetError(f"{store.folder}: the store holds no clips")
        t0 = time.perf_counter()
        clips = [store.clip_frames(i) for i in range(store.n_clips)]
        return ClipSet(kind, clips, list(store.labels), config, info={"store": store.folder},
                       timing={"read_s": time.perf_counter() - t0})  # fmt: skip
    if kind == "kaldi":
        return kaldi_clips(data, split=split, train_fraction=train_fraction, seed=seed,
                           config=config)  # fmt: skip
    if records is None:
        records = load_split(data, split, train_fraction=train_fraction, seed=seed)
    if not records:
        raise DatasetError("no training files")
    config = config or FeatureConfig()
    opts = options or RunOptions()
    t0 = time.perf_counter()
    res = extract_many(records, config=config, options=opts, executor=executor)
    return audio_clips(data, records, res, config, split=split, train_fraction=train_fraction,
                       seed=seed, n_jobs=opts.n_jobs, extract_s=time.perf_counter() - t0,
                       cache_dir=opts.cache_dir)  # fmt: skip


def audio_clips(data: str | os.PathLike | None, records: Sequence[Record],
                features: ExtractionResult, config: Any, *, split: Optional[str],
                train_fraction: float, seed: int, n_jobs: Optional[int] = None,
                extract_s: float = 0.0, cache_dir: Optional[str] = None) -> ClipSet:  # fmt: skip
    """The clip set of ``records`` of the manifest ``data`` from their extraction, whose
    front end is ``config`` (one per member of a fused model); the ``split`` block (none
    when ``data`` is None) records the files used (their hashes kept in ``cache_dir``)."""
    clips, labels = features.labelled_clips(records)
    used = [r for r in records if r.path in features.features]
    blocks = {} if data is None else {"split": describe_split(
        data, split, used, train_fraction=train_fraction, seed=seed, n_jobs=n_jobs,
        cache_dir=cache_dir)}  # fmt: skip
    return ClipSet("audio", clips, labels, config, blocks=blocks, skipped=skipped_list(features),
                   timing={"extract_s": extract_s}, names=[r.path for r in used],
                   extraction=features)  # fmt: skip


def kaldi_clips(data_dir: str | os.PathLike, *, split: Optional[str], train_fraction: float,
                seed: int, config: Optional[FeatureConfig] = None,
                allow_pipes: bool = False) -> ClipSet:  # fmt: skip
    """The labelled utterances of one split of a Kaldi directory (split by utterance id),
    their config the stored :data:`~audiogmm.data.kaldi.CONFIG_FILE` for ``feats.scp``
    (None when Kaldi made the features), else ``config`` (default ``FeatureConfig()``)."""
    data = os.fspath(data_dir)
    config = read_feature_config(data) if is_kaldi_feats_dir(data) else config or FeatureConfig()
    bad: dict[str, str] = {}
    utts = read_kaldi_utterances(data, config=config, allow_pipes=allow_pipes, skipped=bad)
    if split not in (None, "all") and any(u.label is None for u in utts):
        raise DatasetError(f"{data!r}: no utt2spk, so no labels to split by")
    # a Record's path is only a sort key for the split: here, the utterance id
    keep = {r.path for r in load_split([Record(u.utt, u.label) for u in utts], split,
                                       train_fraction=train_fraction, seed=seed)}  # fmt: skip
    utts = [u for u in utts if u.utt in keep]
    if not utts:
        raise DatasetError(f"{data!r}: no utterances")
    unlabelled = [u.utt for u in utts if u.label is None]
    if unlabelled:
        raise DatasetError(f"{data!r}: no label (utt2spk) for {len(unlabelled)} utterance(s)")
    names = [u.utt for u in utts]
    block = {"data": os.path.abspath(data), "split": split, "train_fraction": train_fraction,
             "seed": seed, "train_utts": names}  # fmt: skip
    skipped = [{"path": u, "reason": why} for u, why in sorted(bad.items())]
    return ClipSet("kaldi", [u.features for u in utts], [u.label for u in utts], config,
                   blocks={"kaldi": block}, skipped=skipped, timing={"extract_s": 0.0},
                   names=names)  # fmt: skip


def store_config(store: ShardStore) -> FeatureConfig:
    """The FeatureConfig a store was extracted with (validated like any loaded config)."""
    if not store.config:
        raise ModelFileError(f"{store.folder}: the store does not record its feature "
                             "configuration; re-create it with `audiogmm extract DATA --shards "
                             "DIR`")  # fmt: skip
    try:
        config = FeatureConfig.from_json(store.config)
    except (ValueError, TypeError) as e:
        raise ModelFileError(f"{store.folder}: invalid feature configuration ({e})") from None
    if store.config_hash and config.content_hash() != store.config_hash:
        raise ModelFileError(f"{store.folder}: the feature configuration does not match its hash")
    return config


def fit_backend(clips: Sequence[np.ndarray], labels: Sequence[str], *,
                backend: str = DEFAULT_BACKEND,
                ubm: Any = None, executor: LocalExecutor | None = None, progress: Any = None,
                **classifier_params: Any) -> GMMClassifier:  # fmt: skip
    """Fit the ``backend``'s classifier on clips: every training path ends here.

    Parameters
    ----------
    clips : sequence of ndarray, each of shape (n_frames_i, n_dims)
    labels : sequence of str, length n_clips
    backend : {"gsv", "ml", "map", "ivector"}, a key of :data:`~audiogmm.models.BACKENDS`
        (default :data:`~audiogmm.models.DEFAULT_BACKEND`, as ``train``)
    ubm : DiagGMM, optional; a fitted UBM instead of training one (not with ``"ml"``)
    **classifier_params : the backend classifier's parameters

    Returns
    -------
    GMMClassifier or a subclass, with ``timing_["train_s"]``; ParameterError for a bad backend."""
    if backend not in BACKENDS:
        raise ParameterError(f"backend must be one of {sorted(BACKENDS)}; got {backend!r}")
    if ubm is not None and backend == "ml":
        raise ParameterError("a given UBM needs backend='map', 'gsv' or 'ivector'")
    clf = BACKENDS[backend](**classifier_params)
    t0 = time.perf_counter()
    with resolve(executor, classifier_params.get("n_jobs")) as ex:
        given = {} if ubm is None else {"ubm": ubm}  # the ml backend takes no ubm
        clf.fit(clips, labels, progress=progress, executor=ex, **given)
    clf.timing_ = {"train_s": time.perf_counter() - t0}
    return clf


def train_classifier(records: Sequence[Record], *, config: FeatureConfig | None = None,
                     options: RunOptions | None = None, executor: LocalExecutor | None = None,
                     **fit_params: Any) -> tuple[GMMClassifier, ExtractionResult]:  # fmt: skip
    """:func:`open_clips` of labelled ``records`` fitted by :func:`fit_backend` (``fit_params``:
    ``backend``, ``ubm``, the classifier's parameters), as ``train`` does; ``options`` (cache,
    workers, progress, strictness) and ``executor`` serve both. Returns the classifier, with
    ``timing_`` (``extract_s``, ``train_s``), and the extraction (``skipped``: files not used)."""
    opts = options or RunOptions()
    with resolve(executor, opts.n_jobs) as ex:
        clips = open_clips(records, config=config, options=opts, executor=ex)
        clf = fit_backend(clips.clips, clips.labels, executor=ex, progress=opts.progress,
                          n_jobs=opts.n_jobs, **fit_params)
    clf.timing_ = {**clips.timing, **clf.timing_}
    return clf, clips.extraction


def evaluate_kaldi(model_path: str | os.PathLike, data_dir: str | os.PathLike, *,
                   split: Optional[str] = "test", train_fraction: Optional[float] = None,
                   seed: Optional[int] = None, allow_train_overlap: bool = False,
                   allow_pipes: bool = False) -> dict[str, Any]:  # fmt: skip
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
    tf = stored.get("train_fraction", TRAIN_FRACTION) if train_fraction is None else train_fraction
    utts = kaldi_clips(data, split=split, train_fraction=tf, allow_pipes=allow_pipes,
                       seed=stored.get("seed", 0) if seed is None else seed, config=config)
    if config is not None and utts.config is not None and config != utts.config:
        raise DatasetError(f"{data!r} holds features made with another configuration (hash "
                           f"{utts.config.content_hash()}) than {model!r} was trained on (hash "
                           f"{config.content_hash()}); re-extract them with that model's settings")
    if config is not None and utts.config is None:
        logger.warning("%s: features of unknown configuration (no %s); %s was trained on "
                       "audiogmm features (hash %s)", data, CONFIG_FILE, model,
                       config.content_hash())  # fmt: skip
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
