"""scikit-learn faces of the mixture and the classifiers (``pip install audiogmm[sklearn]``,
scikit-learn >= 1.6; examples in the README); nothing else in audiogmm imports this module."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, DensityMixin
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("audiogmm.sklearn needs scikit-learn >= 1.6: pip install "
                      "'audiogmm[sklearn]'") from e

from .exceptions import ParameterError
from .mixture import DiagGMM as _CoreGMM
from .mixture.sources import check_frames
from .models import GMMClassifier as _CoreClassifier
from .models import GSVClassifier as _CoreGSV
from .models.ubm import UBM_DEFAULTS

__all__ = ["DiagGMM", "GMMClassifier", "GSVClassifier"]

_FLOATS = [np.float64, np.float32]


def _fitted(name: str, get: Callable[[Any], Any]) -> property:
    """A property set by fit(): an AttributeError before (so that hasattr is False)."""

    def read(self: Any) -> Any:
        try:
            return get(self)
        except (AttributeError, IndexError):
            raise AttributeError(f"{name} is set by fit()") from None
    return property(read)


class DiagGMM(DensityMixin, BaseEstimator, _CoreGMM):
    """:class:`audiogmm.mixture.DiagGMM` as a scikit-learn density estimator (passes
    ``check_estimator``), plus ``n_features_in_``, ``covariances_`` (the variances, as
    ``GaussianMixture(covariance_type="diag")``), ``lower_bound_`` and ``lower_bounds_``
    (mean per-frame log-likelihood, nats, at the last and every iteration)."""

    def _check_fitted(self) -> None:
        check_is_fitted(self, "means_")

    def _frames(self, X: Any) -> np.ndarray:  # what every inference method of the core reads
        self._check_fitted()
        return super()._frames(validate_data(self, X, dtype=_FLOATS, reset=False))

    def fit(self, X: Any, y: None = None, *, sample_weight: Any = None,
            executor: Any = None) -> DiagGMM:  # fmt: skip
        """EM on ``X`` (n_samples, n_features), ``sample_weight`` (n_samples,) >= 0; self."""
        X = validate_data(self, X, dtype=_FLOATS, reset=True)
        return super().fit(X, sample_weight=sample_weight, executor=executor)

    def fit_predict(self, X: Any, y: None = None, *, sample_weight: Any = None) -> np.ndarray:
        """Fit, then return the most likely component of each sample, shape (n_samples,)."""
        return self.fit(X, sample_weight=sample_weight).predict(X)

    score = _CoreGMM.score  # not DensityMixin's, which returns None
    covariances_ = _fitted("covariances_", lambda self: self.variances_)
    lower_bound_ = _fitted("lower_bound_", lambda self: float(self.history_[-1]))
    lower_bounds_ = _fitted("lower_bounds_", lambda self: list(self.history_))


def _defaults(*classes: type) -> dict[str, Any]:
    """The keyword defaults of the core ``classes`` (the later ones win)."""
    return {p.name: p.default for cls in classes
            for p in inspect.signature(cls.__init__).parameters.values()
            if p.default is not p.empty}  # fmt: skip


#: The core classifier's keyword defaults (over the mixtures'): one default per parameter.
_DEFAULTS = _defaults(_CoreGMM, _CoreClassifier)
#: gsv's: its own, and its UBM's mixture defaults (``UBM_DEFAULTS`` over DiagGMM's).
_GSV_DEFAULTS = {**_defaults(_CoreGMM), **UBM_DEFAULTS, **_defaults(_CoreGSV)}
#: The mixture parameters of a gsv face: its UBM's (``gmm_params`` of the core).
_UBM_PARAMS = tuple(p for p in _defaults(_CoreGMM) if p not in ("n_components", "random_state",
                    "n_jobs", "weights_init", "means_init", "variances_init"))  # fmt: skip


class _ClipClassifier(ClassifierMixin, BaseEstimator):
    """A scikit-learn classifier of clips over a core classifier (built by ``_core``).

    ``X`` is a list (or 1-D object array) of clips of shape (n_frames_i, n_features), so
    that ``clone``, ``GridSearchCV`` and ``cross_val_score`` work; ``y`` labels of any
    sortable type come back from :meth:`predict` in that type (``classes_``). ``priors``
    are keyed by the ``y`` labels. ``model_`` is the fitted core classifier, labelled
    ``str(c)`` for each class ``c``."""

    def _core(self, priors: dict[str, float] | None) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # X is a list of 2-D clips, not one 2-D array
        return tags

    def fit(self, X: Sequence[Any], y: Any) -> _ClipClassifier:
        """Train the core classifier on the clips ``X`` and their labels ``y`` (n_clips,)."""
        clips = _clips(X)
        y = column_or_1d(np.asarray(y), warn=True)
        check_classification_targets(y)  # the core checks that there is one label per clip
        self.classes_, idx = np.unique(y, return_inverse=True)
        classes = self.classes_.tolist()
        keys = [str(c) for c in classes]
        if len(set(keys)) != len(keys):
            raise ValueError(f"classes {classes} do not have distinct texts")
        if missing := [c for c in classes if self.priors is not None and c not in self.priors]:
            raise ParameterError(f"priors missing for classes {missing}")
        priors = None if self.priors is None else {str(c): self.priors[c] for c in classes}
        self.model_ = self._core(priors)
        self.model_.fit(clips, [keys[i] for i in idx])
        # the core sorts its labels as text (e.g. "10" before "2"): columns as classes_
        self._columns = np.array([self.model_.labels_.index(k) for k in keys])
        self.n_features_in_ = self.model_.n_dims
        return self

    def decision_function(self, X: Sequence[Any]) -> np.ndarray:
        """The core's score of each clip for each class, (n_clips, n_classes): ml's total
        log-likelihood (nats), gsv's linear score (a log posterior up to a per-clip constant)."""
        check_is_fitted(self, "model_")
        return self.model_.score_matrix(_clips(X))[:, self._columns]

    def predict_log_proba(self, X: Sequence[Any]) -> np.ndarray:
        """Log posterior of each class, shape (n_clips, n_classes), columns as ``classes_``."""
        check_is_fitted(self, "model_")
        return self.model_.predict_log_proba(_clips(X))[:, self._columns]

    def predict_proba(self, X: Sequence[Any]) -> np.ndarray:
        """Posterior of each class, shape (n_clips, n_classes), columns as ``classes_``."""
        return np.exp(self.predict_log_proba(X))

    def predict(self, X: Sequence[Any]) -> np.ndarray:
        """Most likely class of each clip, shape (n_clips,), in the dtype of ``classes_``."""
        best = self.predict_log_proba(X).argmax(1)  # first: NotFittedError before classes_
        return self.classes_[best]


class GMMClassifier(_ClipClassifier):
    """:class:`audiogmm.models.GMMClassifier` as a scikit-learn classifier: one DiagGMM per
    class of ``y`` on the pooled frames of its clips (:class:`_ClipClassifier` for ``X``,
    ``y``, ``priors`` and ``model_``); the other parameters are the core classes'."""

    def __init__(
        self, n_components: int = _DEFAULTS["n_components"], *,
        priors: dict[Any, float] | None = _DEFAULTS["priors"],
        random_state: int | None = _DEFAULTS["random_state"],
        n_jobs: int | None = _DEFAULTS["n_jobs"], max_iter: int = _DEFAULTS["max_iter"],
        tol: float = _DEFAULTS["tol"], var_floor: float = _DEFAULTS["var_floor"],
        var_floor_abs: float = _DEFAULTS["var_floor_abs"],
        min_weight: float = _DEFAULTS["min_weight"], min_count: float = _DEFAULTS["min_count"],
        init: str = _DEFAULTS["init"], n_init: int = _DEFAULTS["n_init"],
        init_max_samples: int = _DEFAULTS["init_max_samples"],
        split_iter: int = _DEFAULTS["split_iter"], chunk_size: int | None = _DEFAULTS["chunk_size"],
        verbose: int = _DEFAULTS["verbose"],
    ) -> None:  # fmt: skip
        args = locals()  # stored as given (scikit-learn's rule)
        vars(self).update((k, v) for k, v in args.items() if k != "self")

    def _core(self, priors: dict[str, float] | None) -> _CoreClassifier:
        return _CoreClassifier(**{**self.get_params(), "priors": priors})


class GSVClassifier(_ClipClassifier):
    """:class:`audiogmm.models.GSVClassifier` as a scikit-learn classifier: GMM supervectors
    of one UBM (``n_components``), length-normalised unless ``length_norm=False``, and a
    logistic regression (:class:`_ClipClassifier` for ``X``, ``y``, ``priors`` and
    ``model_``). ``relevance``, ``C``, ``length_norm`` and ``subsample`` are the core's; the
    mixture parameters are its UBM's, with the UBM's defaults (split growth, 10 EM
    iterations). The fit calibrates the verification scores (``model_.score_samples``), as
    the core does."""

    def __init__(
        self, n_components: int = _GSV_DEFAULTS["n_components"], *,
        relevance: float = _GSV_DEFAULTS["relevance"], C: float = _GSV_DEFAULTS["C"],
        length_norm: bool = _GSV_DEFAULTS["length_norm"],
        subsample: int = _GSV_DEFAULTS["subsample"],
        priors: dict[Any, float] | None = _GSV_DEFAULTS["priors"],
        random_state: int | None = _GSV_DEFAULTS["random_state"],
        n_jobs: int | None = _GSV_DEFAULTS["n_jobs"], max_iter: int = _GSV_DEFAULTS["max_iter"],
        tol: float = _GSV_DEFAULTS["tol"], var_floor: float = _GSV_DEFAULTS["var_floor"],
        var_floor_abs: float = _GSV_DEFAULTS["var_floor_abs"],
        min_weight: float = _GSV_DEFAULTS["min_weight"],
        min_count: float = _GSV_DEFAULTS["min_count"], init: str = _GSV_DEFAULTS["init"],
        n_init: int = _GSV_DEFAULTS["n_init"],
        init_max_samples: int = _GSV_DEFAULTS["init_max_samples"],
        split_iter: int = _GSV_DEFAULTS["split_iter"],
        chunk_size: int | None = _GSV_DEFAULTS["chunk_size"],
        verbose: int = _GSV_DEFAULTS["verbose"],
    ) -> None:  # fmt: skip
        args = locals()  # stored as given (scikit-learn's rule)
        vars(self).update((k, v) for k, v in args.items() if k != "self")

    def _core(self, priors: dict[str, float] | None) -> _CoreGSV:
        params = self.get_params()
        # the UBM's parameters that differ from its defaults, as a core caller gives them
        # (a given max_iter, for one, lets the UBM's ConvergenceWarning through)
        ubm = {k: params.pop(k) for k in _UBM_PARAMS}
        given = {k: v for k, v in ubm.items() if v != _GSV_DEFAULTS[k]}
        return _CoreGSV(**{**params, "priors": priors}, **given)


def _clips(X: Any) -> list[np.ndarray]:
    """A list of clips from a list/tuple or a 1-D object array; each clip is checked."""
    array = isinstance(X, np.ndarray)
    if not (isinstance(X, (list, tuple)) or array and X.dtype == object):
        got = f"a {X.dtype} array of shape {X.shape}" if array else type(X).__name__
        raise ValueError("X must be a list (or 1-D object array) of clips of shape "
                         f"(n_frames, n_features); got {got}")  # fmt: skip
    return [check_frames(np.asarray(c), name=f"clip {i}") for i, c in enumerate(X)]
