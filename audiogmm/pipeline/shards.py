"""Train a classifier from a feature shard store (``audiogmm extract DATA --shards STORE``).

The store carries every clip's frames, its label and the FeatureConfig, so training
needs no audio, no cache and no split: every clip is a training clip.
"""

from __future__ import annotations

import time
from typing import Any

from ..data.shards import ShardStore
from ..engine import LocalExecutor
from ..exceptions import DatasetError, ModelFileError
from ..features import FeatureConfig
from ..models import GMMClassifier
from ..progress import Progress
from .train import fit_backend

__all__ = ["store_config", "train_from_store"]


def store_config(store: ShardStore) -> FeatureConfig:
    """The FeatureConfig a store was extracted with (validated like any loaded config)."""
    if not store.config:
        raise ModelFileError(
            f"{store.folder}: the store does not record its feature configuration; "
            "re-create it with `audiogmm extract DATA --shards DIR`"
        )
    try:
        config = FeatureConfig.from_json(store.config)
    except (ValueError, TypeError) as e:
        raise ModelFileError(f"{store.folder}: invalid feature configuration ({e})") from None
    if store.config_hash and config.content_hash() != store.config_hash:
        raise ModelFileError(f"{store.folder}: the feature configuration does not match its hash")
    return config


def train_from_store(
    store: ShardStore,
    *,
    backend: str = "ml",
    executor: LocalExecutor | None = None,
    progress: Progress = None,
    **classifier_params: Any,
) -> tuple[GMMClassifier, FeatureConfig]:
    """A classifier fitted on every clip of ``store`` by
    :func:`audiogmm.pipeline.train.fit_backend` (``timing_`` gains ``read_s``), and the
    store's FeatureConfig to save with it."""
    config = store_config(store)
    if store.n_clips == 0:
        raise DatasetError(f"{store.folder}: the store holds no clips")
    t0 = time.perf_counter()
    clips = [store.clip_frames(i) for i in range(store.n_clips)]
    t1 = time.perf_counter()
    clf = fit_backend(clips, list(store.labels), backend=backend, executor=executor,
                      progress=progress, **classifier_params)  # fmt: skip
    clf.timing_ = {"read_s": t1 - t0, **clf.timing_}
    return clf, config
