"""The model file users handle: a classifier bundled with the front end that made its features.

A bundle is a :class:`~audiogmm.models.GMMClassifier` file whose header also holds
the :class:`~audiogmm.features.FeatureConfig`, so prediction from audio always
extracts features exactly as training did. The classifier itself knows nothing
of audio; this module, in the pipeline layer, joins the two.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..container import Validator, jsonable, read_kind
from ..data.kaldi import validate_kaldi_block
from ..data.splits import validate_split_block
from ..exceptions import ModelFileError, ParameterError
from ..features import FeatureConfig
from ..models import GMMClassifier, UBMClassifier
from .tuning import validate_selection_block

__all__ = ["Bundle", "HEADER_FIELDS", "load_model", "save_model"]


@dataclass
class Bundle:
    """A trained classifier, its feature configuration, and what the file's header said.

    Attributes
    ----------
    classifier : GMMClassifier
    config : FeatureConfig
    header : dict
        The full JSON header of the file (format fields, training summary, ...).
    """

    classifier: GMMClassifier
    config: FeatureConfig
    header: dict[str, Any] = field(default_factory=dict)


def save_model(
    path: str | os.PathLike,
    classifier: GMMClassifier,
    config: FeatureConfig,
    *,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write ``classifier`` and ``config`` to one model file (atomic, checksummed, no pickle).

    Parameters
    ----------
    extra : dict, optional
        More header blocks (e.g. ``"split"``); each needs a validator in
        :data:`HEADER_FIELDS`, which is run here, so that the file always loads.

    Raises
    ------
    ParameterError
        When the classifier's feature dimension differs from the config's, or an
        ``extra`` block has no validator or does not pass it.
    """
    if classifier.n_dims != config.n_dims:
        raise ParameterError(
            f"the classifier has {classifier.n_dims}-dim features but the feature config "
            f"gives {config.n_dims}"
        )
    blocks = jsonable({**(extra or {}), "feature_config": config.to_dict()})
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
    if read_kind(path) == UBMClassifier._FILE_KIND:
        # the UBM loader validates its own fields; the pipeline's blocks are checked here
        clf = UBMClassifier.load(path)
        clf.file_header_ = _check_blocks(name, clf.file_header_)
    else:
        clf = GMMClassifier.load(path, header_fields=HEADER_FIELDS)
    header = clf.file_header_
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


def _feature_config(v: Any) -> FeatureConfig:
    # FeatureConfig validates every field's type and physical range (ParameterError)
    return FeatureConfig.from_dict(v)


#: Validators of the header fields the pipeline adds to a classifier file, one per
#: top-level key (the classifier's own are ``audiogmm.models.classifier.HEADER_FIELDS``).
#: A new block (e.g. ``"split"``) needs an entry here: a function that takes the raw
#: JSON value, returns the value to keep, and raises ValueError/TypeError with the reason.
HEADER_FIELDS: dict[str, Validator] = {
    "feature_config": _feature_config,
    "split": validate_split_block,
    "selection": validate_selection_block,
    "kaldi": validate_kaldi_block,
}
