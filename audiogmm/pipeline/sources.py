"""One clip set from any training source: audio (a folder per label, a CSV, a Kaldi
``wav.scp``, or records), a Kaldi ``feats.scp`` or ``wav.scp`` + ``segments``, or a shard
store (:func:`open_clips`). :data:`KINDS` says what each source cannot take, so that a
caller refuses it before the work."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional

import numpy as np

from ..data import ExtractionResult, Record, RunOptions, extract_many
from ..data.kaldi import (
    is_kaldi_feats_dir,
    needs_kaldi_reader,
    read_feature_config,
    read_kaldi_utterances,
)
from ..data.shards import ShardStore, is_store, open_store
from ..engine import LocalExecutor
from ..exceptions import DatasetError, ModelFileError
from ..features import FeatureConfig
from .classify import describe_split, load_split, skipped_list

__all__ = ["KINDS", "ClipSet", "audio_clips", "kaldi_clips", "open_clips", "source_kind",
           "store_config"]  # fmt: skip


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
    """Labelled clips from one source, and what to save with their model.

    Attributes
    ----------
    kind : {"audio", "kaldi", "store"}
    clips : list of ndarray, each of shape (n_frames_i, n_dims)
    labels, names : list of str, length n_clips
        Each clip's label, and file path or utterance id (``names`` empty for a store).
    config : FeatureConfig or None
        The clips' front end; None for features made by Kaldi itself.
    blocks : dict
        ``split`` (a manifest's) or ``kaldi``, saved with the model so that scoring can
        refuse the training data.
    skipped, timing, info, extraction
        ``{path, reason}`` of unusable files (utterance ids for Kaldi); ``extract_s`` or
        ``read_s``; ``store``; the audio's ExtractionResult (None for other kinds).
    """

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


def open_clips(
    data: str | os.PathLike | Sequence[Record], *, split: Optional[str] = None,
    train_fraction: float = 0.7, seed: int = 0, config: Optional[FeatureConfig] = None,
    options: Optional[RunOptions] = None, executor: Optional[LocalExecutor] = None,
    records: Optional[Sequence[Record]] = None,
) -> ClipSet:  # fmt: skip
    """The training clips of ``data`` of any kind (:func:`source_kind`), or of records
    (then no manifest, so no split block).

    ``split``, ``train_fraction`` and ``seed`` choose the files as :func:`.classify.load_split`
    (a store's clips all train); ``config`` is the front end for audio (default
    ``FeatureConfig()``; stores and ``feats.scp`` carry their own); ``options`` and
    ``executor`` run the extraction; ``records``, the split's records when already read.
    DatasetError for no clips, a label without any usable file, or unlabelled utterances;
    ModelFileError for a store or feature directory whose feature configuration is invalid.
    """
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


def audio_clips(
    data: str | os.PathLike | None, records: Sequence[Record], features: ExtractionResult,
    config: Any, *, split: Optional[str], train_fraction: float, seed: int,
    n_jobs: Optional[int] = None, extract_s: float = 0.0, cache_dir: Optional[str] = None,
) -> ClipSet:  # fmt: skip
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


def kaldi_clips(
    data_dir: str | os.PathLike, *, split: Optional[str], train_fraction: float, seed: int,
    config: Optional[FeatureConfig] = None, allow_pipes: bool = False,
) -> ClipSet:  # fmt: skip
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
