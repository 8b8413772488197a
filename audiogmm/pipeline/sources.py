"""One clip set from any training source: audio, a Kaldi directory or a shard store.

:func:`open_clips` reads DATA (a folder per label, a CSV or a Kaldi ``wav.scp``; a Kaldi
``feats.scp``, or ``wav.scp`` + ``segments``; a shard store) into a :class:`ClipSet`:
the clips and labels to fit (:func:`audiogmm.pipeline.train.fit_backend`), their front
end, the header block that records the split, and the files that could not be used.
:data:`KINDS` says what each source cannot take, so a caller refuses it before the work;
:func:`store_config` is the validated front end a shard store records.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional

import numpy as np

from ..data import ExtractionResult, Record, RunOptions, extract_many
from ..data.kaldi import needs_kaldi_reader
from ..data.shards import ShardStore, is_store, open_store
from ..engine import LocalExecutor
from ..exceptions import DatasetError, ModelFileError
from ..features import FeatureConfig
from .classify import describe_split, load_split, skipped_list
from .kaldi import load_kaldi_split

__all__ = ["KINDS", "ClipSet", "audio_clips", "open_clips", "source_kind", "store_config"]


class Kind(NamedTuple):
    """What a kind of source is: its unit, its name, and the options it cannot take."""

    unit: str
    name: str
    #: ``train`` options (parameter names) that do not apply, and why
    not_for: tuple[str, ...] = ()
    why: str = ""


KINDS = {
    "audio": Kind("file", "audio manifest"),
    "kaldi": Kind("utterance", "Kaldi feature directory", ("calibrate",), "applies to audio data only"),
    "store": Kind("clip", "shard store", ("preset", "config_path", "split", "train_fraction",
                                          "cache_dir", "strict", "calibrate"),
                  "does not apply to a shard store (its clips, labels and front end are fixed)"),
}  # fmt: skip


@dataclass
class ClipSet:
    """Labelled training clips from one source, and what to save with their model.

    Attributes
    ----------
    kind : {"audio", "kaldi", "store"}
        The key of :data:`KINDS`.
    clips : list of ndarray, each of shape (n_frames_i, n_dims)
    labels : list of str, length n_clips
    config : FeatureConfig or None
        The clips' front end; None for features made by Kaldi itself.
    blocks : dict
        Header blocks to save with the model: ``split`` (audio) or ``kaldi`` (the
        training utterances), so that scoring can refuse the training data.
    skipped : list of dict
        ``{path, reason}`` of each file (utterance id, for Kaldi) that could not be used.
    timing, info : dict
        Seconds spent reading (``extract_s`` or ``read_s``); more to report (``store``).
    """

    kind: str
    clips: list[np.ndarray]
    labels: list[str]
    config: Optional[FeatureConfig]
    blocks: dict[str, Any] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    timing: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

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
    data: str | os.PathLike, *, split: Optional[str] = None, train_fraction: float = 0.7,
    seed: int = 0, config: Optional[FeatureConfig] = None, options: Optional[RunOptions] = None,
    executor: Optional[LocalExecutor] = None, records: Optional[Sequence[Record]] = None,
) -> ClipSet:  # fmt: skip
    """The training clips of ``data``, of any kind (:func:`source_kind`).

    ``split`` ({"train", "test", "all"} or None for every file; a store's clips all
    train), ``train_fraction`` and ``seed`` choose the files (the stratified
    :func:`audiogmm.data.split_records` of a manifest without a split column, or of a
    Kaldi directory by utterance id). ``config`` is the front end for audio (default
    ``FeatureConfig()``; stores and ``feats.scp`` carry their own); ``options`` and
    ``executor`` run the extraction; ``records`` are the split's records when already read.

    DatasetError for no clips, a label without any usable file, or unlabelled utterances;
    ModelFileError for a store or feature directory whose feature configuration is invalid.
    """
    kind = source_kind(data)
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
        skipped: list[dict[str, str]] = []
        utts, config = load_kaldi_split(data, split, train_fraction=train_fraction, seed=seed,
                                        config=config, skipped=skipped)  # fmt: skip
        if not utts:
            raise DatasetError("no training utterances")
        unlabelled = [u.utt for u in utts if u.label is None]
        if unlabelled:
            raise DatasetError(f"no label (utt2spk) for {len(unlabelled)} utterance(s)")
        block = {"data": os.path.abspath(os.fspath(data)), "split": split,
                 "train_fraction": train_fraction, "seed": seed, "train_utts": [u.utt for u in utts]}  # fmt: skip
        return ClipSet(kind, [u.features for u in utts], [u.label for u in utts], config,
                       blocks={"kaldi": block}, skipped=skipped, timing={"extract_s": 0.0})  # fmt: skip
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
    data: str | os.PathLike, records: Sequence[Record], features: ExtractionResult,
    config: Any, *, split: Optional[str], train_fraction: float, seed: int,
    n_jobs: Optional[int] = None, extract_s: float = 0.0, cache_dir: Optional[str] = None,
) -> ClipSet:  # fmt: skip
    """The clip set of ``records`` of the manifest ``data``, from their extraction.

    ``config`` is the front end of ``features`` (one per member of a fused model).
    The ``split`` block records the files used, so that scoring can refuse them (their
    hashes kept in ``cache_dir``).
    """
    clips, labels = features.labelled_clips(records)
    used = [r for r in records if r.path in features.features]
    block = describe_split(data, split, used, train_fraction=train_fraction, seed=seed,
                           n_jobs=n_jobs, cache_dir=cache_dir)  # fmt: skip
    return ClipSet("audio", clips, labels, config, blocks={"split": block},
                   skipped=skipped_list(features), timing={"extract_s": extract_s})  # fmt: skip


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
