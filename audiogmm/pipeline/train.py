"""The one training path: :func:`fit_backend` is the one place a backend (the registry
:data:`audiogmm.models.BACKENDS`) is chosen and fitted, whatever the clips were read from
(:func:`audiogmm.pipeline.sources.open_clips`)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..data import ExtractionResult, Record, RunOptions
from ..engine import LocalExecutor, resolve
from ..exceptions import ModelFileError, ParameterError
from ..features import FeatureConfig
from ..models import BACKENDS, GMMClassifier
from .sources import open_clips

__all__ = ["fit_backend", "load_ubm", "train_classifier"]


def fit_backend(
    clips: Sequence[np.ndarray], labels: Sequence[str], *, backend: str = "ml", ubm: Any = None,
    executor: LocalExecutor | None = None, progress: Any = None, **classifier_params: Any,
) -> GMMClassifier:  # fmt: skip
    """Fit the ``backend``'s classifier on clips: every training path ends here.

    Parameters
    ----------
    clips : sequence of ndarray, each of shape (n_frames_i, n_dims)
    labels : sequence of str, length n_clips
    backend : {"ml", "map", "gsv", "ivector"}
        The key of :data:`~audiogmm.models.BACKENDS` (else ParameterError).
    ubm : DiagGMM, optional
        A fitted UBM to use instead of training one (not with ``"ml"``: ParameterError).
    **classifier_params
        Parameters of the backend's classifier.

    Returns
    -------
    GMMClassifier or a subclass, with ``timing_["train_s"]``
    """
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


def load_ubm(path: str | os.PathLike) -> tuple[Any, FeatureConfig | None]:
    """A UBM written by ``audiogmm ubm`` (a DiagGMM file) and the FeatureConfig it records
    (None for a mixture saved without one, e.g. by ``DiagGMM.save``); ModelFileError for
    another kind of file or a bad feature configuration, naming the file."""
    from ..io import load
    from ..mixture import DiagGMM

    ubm = load(path, DiagGMM)
    block = getattr(ubm, "file_header_", {}).get("feature_config")  # checked by the loader
    if block is None:
        return ubm, None
    config = FeatureConfig.from_dict(block)
    if config.n_dims != ubm.n_dims:
        raise ModelFileError(f"{os.fspath(path)}: the UBM has {ubm.n_dims} dims but its feature "
                             f"config gives {config.n_dims}")  # fmt: skip
    return ubm, config


def train_classifier(
    records: Sequence[Record], *, config: FeatureConfig | None = None,
    options: RunOptions | None = None, executor: LocalExecutor | None = None,
    backend: str = "ml", ubm: Any = None, **classifier_params: Any,
) -> tuple[GMMClassifier, ExtractionResult]:  # fmt: skip
    """:func:`~audiogmm.pipeline.sources.open_clips` of labelled ``records`` fitted by
    :func:`fit_backend` (``backend``, ``ubm``, ``**classifier_params``), as ``train`` does;
    ``options`` (cache, workers, progress, strictness) and ``executor`` serve both.
    Returns the classifier, with ``timing_`` (``extract_s``, ``train_s``), and the
    extraction (``skipped``: the files that could not be used)."""
    opts = options or RunOptions()
    with resolve(executor, opts.n_jobs) as ex:
        clips = open_clips(records, config=config, options=opts, executor=ex)
        clf = fit_backend(clips.clips, clips.labels, backend=backend, ubm=ubm, executor=ex,
                          progress=opts.progress, n_jobs=opts.n_jobs, **classifier_params)
    clf.timing_ = {**clips.timing, **clf.timing_}
    return clf, clips.extraction
