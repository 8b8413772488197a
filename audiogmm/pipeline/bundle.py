"""The model file users handle: a classifier bundled with the front end that made its features.

A bundle is a :class:`~audiogmm.models.GMMClassifier` file whose header also holds
the :class:`~audiogmm.features.FeatureConfig`, so prediction from audio always
extracts features exactly as training did. A fused model
(:class:`~audiogmm.models.FusedClassifier`) holds one configuration per member, under
``feature_configs``. The classifier itself knows nothing of audio; this module, in the
pipeline layer, joins the two.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from ..container import Validator, field_list, jsonable, read_kind
from ..data.kaldi import validate_kaldi_block
from ..data.splits import validate_split_block
from ..exceptions import ModelFileError, ParameterError
from ..features import FeatureConfig
from ..models import FusedClassifier, GMMClassifier, GSVClassifier, UBMClassifier
from ..models.fusion import MAX_MEMBERS
from .tuning import validate_selection_block

__all__ = ["Bundle", "HEADER_FIELDS", "load_model", "save_model"]


@dataclass
class Bundle:
    """A trained classifier, its feature configuration, and what the file's header said.

    Attributes
    ----------
    classifier : GMMClassifier, UBMClassifier or FusedClassifier
    config : FeatureConfig
        The front end (a fused model's first member's).
    header : dict
        The full JSON header of the file (format fields, training summary, ...).
    configs : list of FeatureConfig
        One front end per member of a fused model; ``[config]`` otherwise.
    """

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


def save_model(
    path: str | os.PathLike,
    classifier: GMMClassifier | FusedClassifier,
    config: Union[FeatureConfig, Sequence[FeatureConfig]],
    *,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write ``classifier`` and ``config`` to one model file (atomic, checksummed, no pickle).

    Parameters
    ----------
    classifier : GMMClassifier, UBMClassifier or FusedClassifier
    config : FeatureConfig, or a sequence of them for a FusedClassifier (one per member)
    extra : dict, optional
        More header blocks (e.g. ``"split"``); each needs a validator in
        :data:`HEADER_FIELDS`, which is run here, so that the file always loads.

    Raises
    ------
    ParameterError
        When the classifier's feature dimension differs from the config's, or an
        ``extra`` block has no validator or does not pass it.
    """
    if isinstance(classifier, FusedClassifier):
        configs = list(config) if not isinstance(config, FeatureConfig) else [config]
        dims = tuple(c.n_dims for c in configs if isinstance(c, FeatureConfig))
        if dims != classifier.n_dims or len(configs) != len(dims):
            raise ParameterError(
                f"the fused classifier's members have {classifier.n_dims}-dim features but "
                f"the feature configs give {dims}"
            )
        front = {"feature_configs": [c.to_dict() for c in configs]}
    else:
        if not isinstance(config, FeatureConfig):
            raise ParameterError("config must be one FeatureConfig for this classifier")
        if classifier.n_dims != config.n_dims:
            raise ParameterError(
                f"the classifier has {classifier.n_dims}-dim features but the feature config "
                f"gives {config.n_dims}"
            )
        front = {"feature_config": config.to_dict()}
    blocks = jsonable({**(extra or {}), **front})
    for key, value in blocks.items():
        check = HEADER_FIELDS.get(key)
        if check is None:
            raise ParameterError(
                f"cannot save {os.fspath(path)}: header block {key!r} has no validator in "
                "audiogmm.pipeline.bundle.HEADER_FIELDS, so the file could not be loaded"
            )
        try:
            check(value)
        except (ValueError, TypeError) as e:
            raise ParameterError(
                f"cannot save {os.fspath(path)}: header block {key!r}: {e}"
            ) from None
    classifier.save(path, extra=blocks)


def _check_blocks(name: str, header: dict[str, Any]) -> dict[str, Any]:
    out = dict(header)
    for key, check in HEADER_FIELDS.items():
        if key in out:
            try:
                out[key] = check(out[key])
            except ModelFileError as e:
                raise ModelFileError(f"{name}: {e}") from None
            except (ValueError, TypeError) as e:
                raise ModelFileError(f"{name}: invalid header field {key!r}: {e}") from None
    return out


def load_model(path: str | os.PathLike) -> Bundle:
    """Read a model file written by :func:`save_model`, validating everything.

    The classifier's own header fields are checked by
    :meth:`GMMClassifier.load <audiogmm.models.GMMClassifier.load>`; the fields the
    pipeline adds by :data:`HEADER_FIELDS`. A field with no validator refuses the file.

    Raises
    ------
    ModelFileError
        A bad file (see :meth:`GMMClassifier.load`), a missing or invalid feature
        config, or one whose dimension does not match the models.
    """
    name = os.fspath(path)
    kind = read_kind(path)
    if kind == FusedClassifier._FILE_KIND:
        return _load_fused(name, path)
    if kind == UBMClassifier._FILE_KIND:
        # the UBM loader validates its own fields; the pipeline's blocks are checked here
        clf = UBMClassifier.load(path)
        clf.file_header_ = _check_blocks(name, clf.file_header_)
    elif kind == GSVClassifier._FILE_KIND:
        clf = GSVClassifier.load(path, header_fields=HEADER_FIELDS)
    else:
        clf = GMMClassifier.load(path, header_fields=HEADER_FIELDS)
    header = clf.file_header_
    if "feature_configs" in header:
        raise ModelFileError(f"{name}: 'feature_configs' belongs to fused models only")
    if "feature_config" not in header:
        raise ModelFileError(
            f"{name}: no feature configuration in this file (saved with GMMClassifier.save); "
            "use audiogmm.pipeline.save_model or `audiogmm train` to make a model for audio"
        )
    config = header["feature_config"]
    if clf.n_dims != config.n_dims:
        raise ModelFileError(
            f"{name}: models have {clf.n_dims} dims but the feature config gives {config.n_dims}"
        )
    header = {**header, "feature_config": config.to_dict()}
    return Bundle(clf, config, header)


def _load_fused(name: str, path: str | os.PathLike) -> Bundle:
    clf = FusedClassifier.load(path, header_fields=HEADER_FIELDS)
    header = clf.file_header_
    configs = header.get("feature_configs")
    if configs is None or "feature_config" in header:
        raise ModelFileError(
            f"{name}: a fused model needs 'feature_configs' (and no 'feature_config')"
        )
    dims = tuple(c.n_dims for c in configs)
    if dims != clf.n_dims:
        raise ModelFileError(
            f"{name}: members have {clf.n_dims} dims but the feature configs give {dims}"
        )
    header = {**header, "feature_configs": [c.to_dict() for c in configs]}
    return Bundle(clf, configs[0], header, configs=list(configs))


def _feature_config(v: Any) -> FeatureConfig:
    # FeatureConfig validates every field's type and physical range (ParameterError)
    return FeatureConfig.from_dict(v)


def _feature_configs(v: Any) -> list[FeatureConfig]:
    items = field_list(v, "feature_configs", max_len=MAX_MEMBERS)
    if len(items) < 2:
        raise ValueError(f"a fused model needs 2 to {MAX_MEMBERS} feature configs")
    return [FeatureConfig.from_dict(c) for c in items]


#: Validators of the header fields the pipeline adds to a classifier file, one per
#: top-level key (the classifier's own are ``audiogmm.models.classifier.HEADER_FIELDS``).
#: A new block (e.g. ``"split"``) needs an entry here: a function that takes the raw
#: JSON value, returns the value to keep, and raises ValueError/TypeError with the reason.
HEADER_FIELDS: dict[str, Validator] = {
    "feature_config": _feature_config,
    "feature_configs": _feature_configs,
    "split": validate_split_block,
    "selection": validate_selection_block,
    "kaldi": validate_kaldi_block,
}
