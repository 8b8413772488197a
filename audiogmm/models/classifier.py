"""One diagonal GMM per class; a clip goes to the class with the largest total log-likelihood.

Scoring is batched: the components of every class are stacked, and all clips are
scored against all classes by :func:`audiogmm.mixture.stacked_log_likelihood` in one
chunked GEMM followed by a per-class log-sum-exp, instead of a Python loop over
classes. The classifier knows nothing about audio: the feature configuration
travels in the model file bundle that :mod:`audiogmm.pipeline.bundle` writes.
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..container import (
    Validator,
    field_bool,
    field_dict,
    field_int,
    field_list,
    field_real,
    field_str,
    info_block,
    jsonable,
    read_container,
    write_container,
)
from ..engine import LocalExecutor, one_blas_thread, resolve
from ..exceptions import ModelFileError, OversizedModelWarning, ParameterError
from ..mixture import DiagGMM, em, log_softmax, stacked_log_likelihood
from ..mixture.checks import check_enough_frames, check_params, validate_param_arrays
from ..mixture.diag import check_seed, check_verbose
from ..mixture.init import init_split
from ..mixture.sources import ArraySource, check_frames
from ..mixture.stacked import StackedMaximiser, StackedMonitor, StackedParams, StackedSource
from ..progress import Progress, reporter

__all__ = [
    "CLASS_REPORT_FIELDS",
    "GMMClassifier",
    "HEADER_FIELDS",
    "MIN_FRAMES_PER_COMPONENT",
    "N_COMPONENTS",
    "oversized_reason",
]

logger = logging.getLogger(__name__)

#: Components per class when none is given (the DCASE 2016 baseline uses 16).
N_COMPONENTS = 16


def _fit_together(models: list[DiagGMM], Xs: list[np.ndarray], ex: LocalExecutor) -> None:
    """Fit ``models[c]`` on ``Xs[c]``, all at once: one :func:`em.run` per ``n_init`` round.

    The models share every parameter but the seed (a classifier's classes). Each
    one ends exactly as ``models[c].fit_source(ArraySource(Xs[c]))`` would: the
    same random stream, initialisation, iterations, stopping and report. What is
    shared is the fixed cost of each EM iteration (one E-step map, one M-step).
    """
    t0 = time.perf_counter()
    sources = [ArraySource(X) for X in Xs]
    first = models[0]
    runs: list[list[em.EMResult]] = [[] for _ in models]
    # the whole fit under one BLAS thread, as when each class ran inside a worker
    with one_blas_thread():
        starts = [m._start(src) for m, src in zip(models, sources)]
        stacked = StackedSource(Xs)
        for _ in range(first.n_init):
            if first.init == "split" and first.means_init is None:
                # split growth is EM: its rounds run stacked too
                subs = [m._subsample(src, st[0]) for m, src, st in zip(models, sources, starts)]
                grown = init_split(
                    subs, first.n_components, var_floor=[m.var_floor_ for m in models],
                    split_iter=first.split_iter, executor=ex, chunk_size=first._chunk,
                )  # fmt: skip
                inits = [(p, []) for p in grown]
            else:  # k-means++ stays per class (its small GEMMs decide labels), in parallel
                inits = list(
                    ex.map(
                        lambda c: models[c]._init_params(sources[c], starts[c][0], ex),
                        range(len(models)),
                    )
                )
            monitor = StackedMonitor([m._monitor(src) for m, src in zip(models, sources)])
            maximiser = StackedMaximiser(
                np.stack([m.var_floor_ for m in models]), monitor, first.min_weight, first.min_count
            )
            res = em.run(
                stacked, StackedParams.of([p for p, _ in inits]), maximiser=maximiser,
                monitor=monitor, executor=ex, chunk_size=first._chunk,
            )  # fmt: skip
            for c, r in enumerate(em.unstack(res)):
                r.events = inits[c][1] + r.events
                runs[c].append(r)
    for m, src, (_, gmean, gvar, extremes), rs in zip(models, sources, starts, runs):
        m._finish(rs, src, gmean, gvar, extremes, t0)



#: A class's mixture is called over-sized below this many frames per component, or
#: when EM had to re-seed at least half of its components (components keep emptying).
MIN_FRAMES_PER_COMPONENT = 10


def oversized_reason(
    report: Mapping[str, Any],
    n_components: int,
    *,
    advice: str = "lower -k / n_components, or let --components auto choose",
) -> str | None:
    """Why a class's mixture has too many components for its data, or None.

    Parameters
    ----------
    report : mapping
        One class's entry of ``fit_report_`` (``n_frames``, ``n_reseeded``).
    n_components : int
        Components of that class's mixture.
    advice : str
        What to do about it (a UBM's differs from a class's).
    """
    n, reseeded = int(report["n_frames"]), int(report.get("n_reseeded", 0))
    per = n / max(1, n_components)
    if per < MIN_FRAMES_PER_COMPONENT or reseeded >= max(3, (n_components + 1) // 2):
        return (
            f"K={n_components} components for {n} frames ({per:.1f} frames per component, "
            f"{reseeded} re-seeds): the model is over-sized for this data; {advice}"
        )
    return None

class GMMClassifier:
    """Per-class diagonal GMMs with maximum-total-log-likelihood decisions.

    Parameters
    ----------
    n_components : int > 0, default=16
        Components per class (:data:`N_COMPONENTS`).
    priors : dict of str to float or None, default=None
        Class priors for :meth:`predict_log_proba` (default equal).
    n_jobs : int or None, default=None
        Classes trained concurrently (threads) when ``fit`` gets no executor;
        None means all cores. Results do not depend on it.
    random_state : int or None, default=0
        Seed; each class gets an independent stream derived from it and its rank.
    **gmm_params
        Any other :class:`~audiogmm.mixture.DiagGMM` parameter (``max_iter``, ``tol``,
        ``init``, ``var_floor``, ...), applied to every class.

    Attributes
    ----------
    labels_ : list of str
        Class names, sorted.
    models_ : dict of str to DiagGMM
        The fitted per-class mixtures.
    weights_, means_, variances_ : ndarray
        The class mixtures stacked: (n_labels, K), (n_labels, K, D), (n_labels, K, D).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> clips = [rng.normal(m, 1, (200, 2)) for m in (0, 0, 5, 5)]
    >>> clf = GMMClassifier(2).fit(clips, ["a", "a", "b", "b"])
    >>> clf.predict([rng.normal(5, 1, (50, 2))]).tolist()
    ['b']
    """

    _FILE_KIND = "GMMClassifier"

    def __init__(
        self,
        n_components: int = N_COMPONENTS,
        *,
        priors: dict[str, float] | None = None,
        n_jobs: int | None = None,
        random_state: int | None = 0,
        **gmm_params: Any,
    ) -> None:
        self.n_components = n_components
        self.priors = priors
        self.n_jobs = n_jobs
        self.random_state = random_state
        unknown = set(gmm_params) - set(DiagGMM._param_names())
        unknown |= {"n_components", "random_state", "n_jobs"} & set(gmm_params)
        if unknown:
            raise ParameterError(f"unknown DiagGMM parameter(s) {sorted(unknown)}")
        self.gmm_params = gmm_params

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in sorted(self.gmm_params.items()))
        return f"GMMClassifier({self.n_components}, random_state={self.random_state!r}{extra})"

    def _class_model(self, seed: int | None) -> DiagGMM:
        return DiagGMM(self.n_components, random_state=seed, n_jobs=self.n_jobs, **self.gmm_params)

    # -- training ----------------------------------------------------------------------------

    def fit(
        self,
        clips: Sequence[np.ndarray],
        labels: Sequence[str],
        *,
        progress: Progress = None,
        executor: LocalExecutor | None = None,
    ) -> GMMClassifier:
        """Train one DiagGMM per label on the pooled frames of its clips.

        Parameters
        ----------
        clips : sequence of ndarray, each of shape (n_frames_i, n_dims)
            Feature frames of each training clip.
        labels : sequence of str, length n_clips
            Class of each clip.
        progress : callable, optional
            ``progress(n_done, n_total, label)`` after each class.
        executor : LocalExecutor, optional
            Trains classes concurrently (default: ``n_jobs`` threads for this call).

        Returns
        -------
        self

        Raises
        ------
        ParameterError
            Mismatched lengths, inconsistent dimensions, non-finite frames, bad
            mixture parameters, or a class with fewer frames than ``n_components``.
        """
        if len(clips) != len(labels):
            raise ParameterError(f"{len(clips)} clips but {len(labels)} labels")
        if not clips:
            raise ParameterError("no training clips")
        check_params(self._class_model(None))
        labels = [str(y) for y in labels]
        D = None
        per_label: dict[str, list[np.ndarray]] = {}
        for i, (X, y) in enumerate(zip(clips, labels)):
            X = check_frames(X, n_dims=D, name=f"clip {i} (label {y!r})", min_frames=0)
            D = X.shape[1]
            per_label.setdefault(y, []).append(X)
        self.labels_ = sorted(per_label)
        if len(self.labels_) < 2:
            logger.warning(
                "only one class (%r): every clip will be given that label", self.labels_[0]
            )
        data = {y: np.concatenate(per_label[y], axis=0) for y in self.labels_}
        for y, X in data.items():
            check_enough_frames(X.shape[0], self.n_components, f"class {y!r}")
        seeds = np.random.SeedSequence(self.random_state)
        children = seeds.spawn(len(self.labels_))
        class_seeds = {y: int(c.generate_state(1)[0]) for y, c in zip(self.labels_, children)}

        models = [self._class_model(class_seeds[y]) for y in self.labels_]
        with (
            reporter(progress, len(self.labels_), "Training class GMMs") as tick,
            resolve(executor, self.n_jobs) as ex,
        ):
            _fit_together(models, [data[y] for y in self.labels_], ex)
            for y, gmm in zip(self.labels_, models):
                logger.info(
                    "class %r: %d frames, %d iterations, mean log-likelihood %.4f",
                    y, data[y].shape[0], gmm.n_iter_, gmm.history_[-1],
                )  # fmt: skip
                tick()
        self.models_ = dict(zip(self.labels_, models))
        self._stack()
        self.fit_report_ = {
            y: {
                "n_clips": len(per_label[y]),
                "n_frames": int(data[y].shape[0]),
                **{
                    k: m.fit_report_[k]
                    for k in (
                        "n_iter",
                        "converged",
                        "final_mean_loglik",
                        "n_reseeded",
                        "compute_dtype",
                        "notes",
                        "history",
                    )
                },
            }
            for y, m in self.models_.items()
        }
        for y, r in self.fit_report_.items():
            why = oversized_reason(r, r.get("n_components", self.n_components))
            if why:
                warnings.warn(f"class {y!r}: {why}", OversizedModelWarning, stacklevel=2)
        return self

    def _stack(self) -> None:
        ms = [self.models_[y] for y in self.labels_]
        self.weights_ = np.stack([m.weights_ for m in ms])
        self.means_ = np.stack([m.means_ for m in ms])
        self.variances_ = np.stack([m.variances_ for m in ms])
        self.var_floors_ = np.stack([m.var_floor_ for m in ms])

    # -- scoring -----------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "labels_"):
            raise ParameterError("this GMMClassifier is not fitted yet; call fit() or load()")

    @property
    def n_dims(self) -> int:
        """Feature dimension D of a fitted classifier."""
        self._check_fitted()
        return self.means_.shape[2]

    def score_matrix(
        self, clips: Sequence[np.ndarray], *, executor: LocalExecutor | None = None
    ) -> np.ndarray:
        """Total log-likelihood of every clip under every class, in one batched pass.

        Parameters
        ----------
        clips : sequence of ndarray, each of shape (n_frames_i, n_dims), n_frames_i >= 1
        executor : LocalExecutor, optional
            Runs the chunks (default: ``n_jobs`` threads for this call).

        Returns
        -------
        ndarray of shape (n_clips, n_labels), float64
            ``sum_t log p(x_t | class)`` in nats, columns in the order of ``labels_``.
        """
        self._check_fitted()
        checked = [
            check_frames(X, n_dims=self.n_dims, name=f"clip {i}", min_frames=1)
            for i, X in enumerate(clips)
        ]
        if not checked:
            return np.zeros((0, len(self.labels_)))
        dtype = np.float32 if all(X.dtype == np.float32 for X in checked) else np.float64
        allX = np.concatenate([X.astype(dtype, copy=False) for X in checked], axis=0)
        with resolve(executor, self.n_jobs) as ex:
            frame_ll = stacked_log_likelihood(
                allX, self.weights_, self.means_, self.variances_, executor=ex
            )
        starts = np.cumsum([0] + [X.shape[0] for X in checked[:-1]])
        return np.add.reduceat(frame_ll, starts, axis=0)

    def _log_priors(self) -> np.ndarray:
        if not self.priors:
            return np.full(len(self.labels_), -np.log(len(self.labels_)))
        missing = set(self.labels_) - set(self.priors)
        if missing:
            raise ParameterError(f"priors missing for labels {sorted(missing)}")
        p = np.array([float(self.priors[y]) for y in self.labels_])
        if not np.all(np.isfinite(p)) or np.any(p <= 0):
            raise ParameterError("priors must be finite and > 0")
        return np.log(p / p.sum())

    def log_proba_from_scores(self, scores: np.ndarray) -> np.ndarray:
        """Class log posteriors from a :meth:`score_matrix` result (softmax with log priors).

        Parameters
        ----------
        scores : ndarray of shape (n_clips, n_labels)

        Returns
        -------
        ndarray of shape (n_clips, n_labels); each row's exponentials sum to 1.
        """
        return log_softmax(np.asarray(scores, dtype=np.float64) + self._log_priors())

    def predict_log_proba(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Log posterior of each class: softmax of total log-likelihoods plus log priors.

        Returns
        -------
        ndarray of shape (n_clips, n_labels)
        """
        return self.log_proba_from_scores(self.score_matrix(clips))

    def predict_proba(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Posterior class probabilities, shape (n_clips, n_labels)."""
        return np.exp(self.predict_log_proba(clips))

    def predict(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Most likely class of each clip (max total log-likelihood + log prior).

        Returns
        -------
        ndarray of shape (n_clips,), dtype object (str labels)
        """
        S = self.score_matrix(clips) + self._log_priors()
        if not len(S):
            return np.array([], dtype=object)
        return np.array(self.labels_, dtype=object)[S.argmax(1)]

    # -- persistence -------------------------------------------------------------------------

    def save(self, path: str | os.PathLike, *, extra: dict[str, Any] | None = None) -> None:
        """Write all class models to one checksummed ``.npz`` (atomic, no pickle).

        Parameters
        ----------
        path : path
        extra : dict, optional
            More JSON header fields (the pipeline stores the feature configuration
            here); returned by :meth:`load` in ``file_header_``.

        Raises
        ------
        ParameterError
            When the classifier holds something :meth:`load` would refuse (non-finite
            parameters, bad priors, ...): a file that cannot be loaded is never written.
        """
        self._check_fitted()
        header = jsonable({**(extra or {}), "labels": list(self.labels_), **self._own_fields()})
        arrays = {
            "weights": self.weights_,
            "means": self.means_,
            "variances": self.variances_,
            "var_floors": self.var_floors_,
        }
        try:  # the checks load() makes, so that every saved file loads
            self._from_file("the classifier to save", {**header}, arrays)
        except ModelFileError as e:
            raise ParameterError(f"cannot save {os.fspath(path)}: {e}") from None
        write_container(path, kind=self._FILE_KIND, header=header, arrays=arrays)

    def _own_fields(self) -> dict[str, Any]:
        """The header fields of this classifier besides ``labels`` (also a fused member's)."""
        return {
            "n_components": self.n_components,
            "priors": self.priors,
            "random_state": self.random_state,
            "gmm_params": {k: v for k, v in self.gmm_params.items() if not k.endswith("_init")},
            "training": getattr(self, "fit_report_", {}),
        }

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        *,
        header_fields: Mapping[str, Validator] | None = None,
    ) -> GMMClassifier:
        """Read a classifier written by :meth:`save`, validating everything.

        Parameters
        ----------
        path : path
        header_fields : mapping of str to validator, optional
            Validators of the header fields a higher layer added (e.g. the pipeline's
            ``feature_config``). With them, any field without a validator refuses the
            file; without them, fields that are not the classifier's are kept in
            ``file_header_`` as plain JSON, unvalidated (the classifier never uses them).

        Raises
        ------
        ModelFileError
            Missing, truncated, tampered, other version, or invalid contents, naming
            the file and the field.
        """
        name = os.fspath(path)
        header, arrays = read_container(
            path,
            kind=cls._FILE_KIND,
            names=("weights", "means", "variances", "var_floors"),
            fields={**HEADER_FIELDS, **(header_fields or {})},
            required=("labels", "n_components"),
            unknown="keep" if header_fields is None else "refuse",
        )
        return cls._from_file(name, header, arrays)

    @classmethod
    def _from_file(
        cls, name: str, header: dict[str, Any], arrays: dict[str, np.ndarray]
    ) -> GMMClassifier:
        """A classifier from validated header fields and arrays, after the cross-field checks."""
        for key, check in HEADER_FIELDS.items():
            if key in header:
                try:
                    header[key] = check(header[key])
                except (ValueError, TypeError) as e:
                    raise ModelFileError(f"{name}: invalid header field {key!r}: {e}") from None
        labels = header["labels"]
        training = header.get("training") or {}
        priors = header.get("priors")

        def bad(key: str, why: str) -> ModelFileError:
            return ModelFileError(f"{name}: invalid header field {key!r}: {why}")

        try:
            clf = cls(
                header["n_components"],
                priors=priors,
                random_state=header.get("random_state"),
                **header.get("gmm_params", {}),
            )
            check_params(clf._class_model(None))
        except ParameterError as e:
            raise bad("gmm_params", str(e)) from None
        if priors is not None:
            if set(priors) != set(labels):
                raise bad("priors", f"keys {sorted(priors)[:10]} are not the labels")
            total = sum(priors.values())
            if not math.isfinite(total) or min(priors.values()) / total < 1e-300:
                raise bad("priors", "their sum overflows, or one is 0 relative to it")
        if not set(training) <= set(labels):
            raise bad(
                "training", f"entries {sorted(set(training) - set(labels))[:5]} are not labels"
            )
        w, m, v = arrays.get("weights"), arrays.get("means"), arrays.get("variances")
        validate_param_arrays(name, w, m, v)
        f = arrays.get("var_floors")
        if m.ndim != 3 or m.shape[0] != len(labels):
            raise ModelFileError(f"{name}: {len(labels)} labels but means of shape {m.shape}")
        if m.shape[1] != clf.n_components:
            raise bad("n_components", f"{clf.n_components}, but the arrays hold {m.shape[1]}")
        if (
            f is None
            or f.shape != (m.shape[0], m.shape[2])
            or f.dtype != np.float64
            or not np.all(np.isfinite(f))
            or not np.all(f > 0)
        ):
            raise ModelFileError(f"{name}: invalid var_floors array")
        clf.labels_ = labels
        clf.weights_, clf.means_, clf.variances_, clf.var_floors_ = w, m, v, f
        clf.models_ = {}
        for i, y in enumerate(labels):
            g = DiagGMM(m.shape[1], **clf.gmm_params)
            g.weights_, g.means_, g.variances_, g.var_floor_ = w[i], m[i], v[i], f[i]
            clf.models_[y] = g
        clf.fit_report_ = training
        clf.file_header_ = header
        return clf


# -- the model file's header: one validator per top-level key ------------------------------

_MAX_LABELS = 100_000


def _labels(v: Any) -> list[str]:
    labels = field_list(v, "labels", max_len=_MAX_LABELS)
    if not labels:
        raise ValueError("labels must not be empty")
    out = [field_str(y, f"labels[{i}]", max_len=1024) for i, y in enumerate(labels)]
    if len(set(out)) != len(out):
        raise ValueError("labels must be unique")
    return out


def _priors(v: Any) -> dict[str, float] | None:
    if v is None or v == {}:
        return None  # equal priors, as the constructor takes them
    d = field_dict(v, "priors")
    return {k: field_real(p, f"priors[{k!r}]", lo=5e-324) for k, p in d.items()}


def _gmm_params(v: Any) -> dict[str, Any]:
    d = field_dict(v, "gmm_params")
    banned = {"n_components", "random_state", "n_jobs"}
    allowed = [k for k in DiagGMM._param_names() if k not in banned and not k.endswith("_init")]
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        raise ValueError(f"unknown DiagGMM parameter(s) {unknown[:5]}; valid: {allowed}")
    if "verbose" in d:
        check_verbose(d["verbose"], "gmm_params.verbose")
    return d  # values are checked with n_components, in _from_file


#: Types of the known entries of one class's training summary (others kept as plain JSON).
CLASS_REPORT_FIELDS = {
    "n_clips": lambda v, what: field_int(v, what, lo=0),
    "n_frames": lambda v, what: field_int(v, what, lo=0),
    "n_iter": lambda v, what: field_int(v, what, lo=0),
    "converged": field_bool,
    "final_mean_loglik": lambda v, what: field_real(v, what, finite=False),
    "n_reseeded": lambda v, what: field_int(v, what, lo=0),
    "compute_dtype": lambda v, what: _one_of(field_str(v, what), ("float32", "float64"), what),
    "notes": lambda v, what: [field_str(x, f"{what}[{i}]", max_len=1024)
                              for i, x in enumerate(field_list(v, what, max_len=64))],
    "history": lambda v, what: [field_real(x, f"{what}[{i}]", finite=False)
                                for i, x in enumerate(field_list(v, what, max_len=1 << 16))],
}  # fmt: skip


def _one_of(v: str, choices: tuple[str, ...], what: str) -> str:
    if v not in choices:
        raise ValueError(f"{what} must be one of {list(choices)}, got {v!r}")
    return v


def _training(v: Any) -> dict[str, dict[str, Any]]:
    d = field_dict(v, "training")
    return {y: info_block(r, f"training[{y!r}]", CLASS_REPORT_FIELDS) for y, r in d.items()}


#: Validators of the classifier's top-level header fields (see
#: :func:`audiogmm.container.read_container`): one entry per field. Cross-field checks
#: (priors and training keyed by the labels, sizes against the arrays) follow in ``load``.
HEADER_FIELDS: dict[str, Validator] = {
    "labels": _labels,
    "n_components": lambda v: field_int(v, "n_components", lo=1),
    "priors": _priors,
    "random_state": lambda v: check_seed(v, "random_state"),
    "gmm_params": _gmm_params,
    "training": _training,
}
