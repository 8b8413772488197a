"""The front end a feature shard store (``audiogmm extract DATA --shards STORE``) records.

The store carries every clip's frames, its label and the FeatureConfig, so training
from it (:func:`audiogmm.pipeline.sources.open_clips`) needs no audio, cache or split.
"""

from __future__ import annotations

from ..data.shards import ShardStore
from ..exceptions import ModelFileError
from ..features import FeatureConfig

__all__ = ["store_config"]


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
