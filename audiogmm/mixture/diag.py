"""``DiagGMM``: the diagonal-covariance mixture estimator. It only validates and delegates:
fits to :func:`.fit.fit_mixtures`, scoring to :mod:`.estep`, files to :mod:`audiogmm.io`."""

from __future__ import annotations

import inspect
import math
from typing import Any, Literal

import numpy as np

from ..engine import LocalExecutor, resolve
from ..exceptions import ParameterError
from .checks import check_enough_frames, check_params, check_sample_weight, is_int
from .estep import accumulate as _accumulate
from .estep import estimate_log_prob, log_likelihood, log_softmax
from .fit import fit_mixtures, frames_per_chunk, ml_maximiser, var_floor_of
from .mstep import global_mean_var
from .sources import ArraySource, ChunkSource, IterSource, check_frames
from .stats import Params, Stats

__all__ = ["DiagGMM"]


class DiagGMM:
    """Diagonal-covariance Gaussian mixture trained by log-domain EM.

    Parameters
    ----------
    n_components : int > 0, default=1
        Number of components K (any value, not only powers of two).
    max_iter : int >= 0, default=100
        Maximum EM iterations after initialisation.
    tol : float >= 0, default=1e-4
        Threshold on the relative change of the mean per-frame log-likelihood.
    var_floor : float >= 0, default=0.01
        Variance floor relative to the data's global variance (HTK's 0.01).
    var_floor_abs : float > 0, default=1e-8
        Absolute minimum variance (zero-variance dimensions sit there, with a RuntimeWarning).
    min_weight : float >= 0, default=1e-5
        Weight floor (Kaldi's ``min-gaussian-weight``).
    min_count : float >= 0, default=10.0
        Occupancy under which a component is re-seeded: ``min(min_count, n_frames / (2 K))``.
    init : {"kmeans++", "split"}, default="kmeans++"
        k-means++ and Lloyd steps on a subsample, or split growth from one component (HTK MU).
    n_init : int > 0, default=1
        Number of initialisations; the best final log-likelihood wins.
    init_max_samples : int > 0, default=50000
        Size of the random subsample initialisation works on.
    split_iter : int >= 0, default=3
        EM iterations after each split round (``init="split"``).
    weights_init, means_init, variances_init : ndarray, optional
        Initial weights (n_components,) (default uniform), means (n_components, n_dims)
        (given: no ``init``, as in scikit-learn), variances (default the global variance).
    random_state : int, numpy Generator or None, default=None
        Seed for every random choice (subsample, seeding, sampling).
    chunk_size : int or None, default=None
        Frames per E-step chunk (None: ~1 MB blocks); changes results only by rounding.
    n_jobs : int or None, default=None
        Threads without an executor (None: ``AUDIOGMM_THREADS`` or all cores); any value, same bits.
    verbose : int, default=0
        Print per-iteration progress to stderr when > 0.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_, variances_ : ndarray of shape (n_components, n_dims)
    var_floor_ : ndarray of shape (n_dims,)
        The absolute variance floor in force.
    history_ : list of float
        Mean per-frame log-likelihood (nats) at each EM iteration.
    converged_ : bool
    n_iter_ : int
    fit_report_ : dict
        Training summary: frames, iterations, re-seeding events, timing.

    Notes
    -----
    Degenerate data never yields NaN parameters (``var_floor_abs``, ``min_count``). float32
    frames are computed in float32 (float64 statistics) unless a narrow component or the
    data's range needs float64.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(1000, 2))
    >>> gmm = DiagGMM(3, random_state=0).fit(X)
    >>> gmm.means_.shape
    (3, 2)"""

    def __init__(
        self, n_components: int = 1, *, max_iter: int = 100, tol: float = 1e-4,
        var_floor: float = 0.01, var_floor_abs: float = 1e-8, min_weight: float = 1e-5,
        min_count: float = 10.0, init: Literal["kmeans++", "split"] = "kmeans++",
        n_init: int = 1, init_max_samples: int = 50_000, split_iter: int = 3,
        weights_init: np.ndarray | None = None, means_init: np.ndarray | None = None,
        variances_init: np.ndarray | None = None,
        random_state: int | np.random.Generator | None = None, chunk_size: int | None = None,
        n_jobs: int | None = None, verbose: int = 0,
    ) -> None:  # fmt: skip
        # stored as given, validated in fit (scikit-learn's rule)
        vars(self).update({k: v for k, v in locals().items() if k != "self"})

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters, as in scikit-learn."""
        names = inspect.signature(type(self).__init__).parameters
        return {k: getattr(self, k) for k in names if k != "self"}

    def set_params(self, **params: Any) -> DiagGMM:
        """Set constructor parameters; unknown names raise ParameterError."""
        valid = set(self.get_params())
        for k, v in params.items():
            if k not in valid:
                raise ParameterError(f"unknown parameter {k!r}; valid: {sorted(valid)}")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        parts = [repr(self.n_components)]
        for name, p in list(inspect.signature(type(self).__init__).parameters.items())[2:]:
            v = getattr(self, name, None)
            if isinstance(v, np.ndarray):
                parts.append(f"{name}=<array {v.shape}>")
            elif v is not p.default and not (type(v) is type(p.default) and v == p.default):
                parts.append(f"{name}={v!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def _check_fitted(self) -> None:
        if not hasattr(self, "means_"):
            raise ParameterError(f"this {type(self).__name__} is not fitted yet; call fit() or "
                                 "load() first")  # fmt: skip

    @property
    def n_dims(self) -> int:
        """Feature dimension D of a fitted model."""
        self._check_fitted()
        return self.means_.shape[1]

    @property
    def params_(self) -> Params:
        """The fitted parameters as one :class:`Params` value (views, not copies)."""
        self._check_fitted()
        return Params(self.weights_, self.means_, self.variances_)

    def _frames(self, X: np.ndarray) -> np.ndarray:
        return check_frames(X, n_dims=self.n_dims, min_frames=0)

    def accumulate(self, X: np.ndarray, sample_weight: np.ndarray | None = None, *,
                   out: Stats | None = None, executor: LocalExecutor | None = None) -> Stats:
        """Sufficient statistics of ``X`` (n_frames, n_dims) under the current parameters
        (pure). ``sample_weight`` (n_frames,) >= 0; ``out``: statistics to add into;
        ``executor`` runs the chunks (default ``n_jobs`` threads)."""
        X = self._frames(X)
        sample_weight = check_sample_weight(sample_weight, X.shape[0])
        with resolve(executor, self.n_jobs) as ex:
            return _accumulate(X, self.params_, sample_weight=sample_weight, out=out,
                               chunk_size=frames_per_chunk(self), executor=ex)  # fmt: skip

    def maximise(self, stats: Stats) -> DiagGMM:
        """M-step: set the parameters from ``stats`` (floors and re-seeding applied); self."""
        if stats.n_components != self.n_components:
            raise ParameterError(f"stats have {stats.n_components} components; the model has "
                                 f"{self.n_components}")  # fmt: skip
        if getattr(self, "var_floor_", None) is None:
            self.var_floor_ = var_floor_of(self, global_mean_var(stats)[1])
        params, _ = ml_maximiser(self)(stats, self.params_ if hasattr(self, "means_") else None)
        self.weights_, self.means_, self.variances_ = params
        return self

    def fit(self, X: np.ndarray, y: None = None, *, sample_weight: np.ndarray | None = None,
            executor: LocalExecutor | None = None) -> DiagGMM:  # fmt: skip
        """EM on frames ``X`` (n_frames, n_dims), ``sample_weight`` (n_frames,) >= 0; self.
        ``executor`` as for :meth:`accumulate`. ParameterError for bad parameters, or ``X``
        not 2-D, non-finite, or with fewer frames than components."""
        check_params(self)
        X = check_frames(X)
        check_enough_frames(X.shape[0], self.n_components, "X")
        sample_weight = check_sample_weight(sample_weight, X.shape[0])
        return self.fit_source(ArraySource(X, sample_weight), executor=executor)

    def fit_iter(self, chunks: ChunkSource, *, executor: LocalExecutor | None = None) -> DiagGMM:
        """EM on data streamed in chunks (out of core); self. ``chunks``: a callable returning
        an iterable of arrays (n_i, n_dims) (e.g. memory-mapped ``.npy`` files), or a
        re-iterable such as a list; every pass iterates it afresh."""
        check_params(self)
        return self.fit_source(IterSource(chunks), executor=executor)

    def fit_source(self, source, *, executor: LocalExecutor | None = None,
                   checkpoint: Any = None) -> DiagGMM:  # fmt: skip
        """Fit from a validated source; self. ``checkpoint`` (:class:`audiogmm.io.EMCheckpoint`,
        ``n_init=1``) saves EM's state after every M-step and resumes from it."""
        fit_mixtures([self], [source], executor=executor, checkpoint=checkpoint)
        return self

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """Per-frame log-likelihood ``log p(x_t)`` in nats, shape (n_frames,), float64."""
        X = self._frames(X)
        with resolve(None, self.n_jobs) as ex:
            return log_likelihood(X, self.params_, chunk_size=frames_per_chunk(self), executor=ex)

    def score(self, X: np.ndarray, y: None = None) -> float:
        """Mean per-frame log-likelihood of ``X`` in nats."""
        return float(self.score_samples(X).mean())

    def log_likelihood_total(self, X: np.ndarray) -> float:
        """Total log-likelihood of ``X`` summed over frames, in nats."""
        return float(self.score_samples(X).sum())

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Posterior component probabilities, (n_frames, n_components); memory O(chunk x K)."""
        return self._per_chunk(X, lambda L: np.exp(log_softmax(L)), (self.n_components,))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Most likely component per frame, shape (n_frames,) (memory O(chunk x K))."""
        return self._per_chunk(X, lambda L: L.argmax(1), (), np.intp)

    def _per_chunk(self, X: np.ndarray, f, tail: tuple, dtype=np.float64) -> np.ndarray:
        """``f`` of each chunk's joint log-likelihoods, into one (n_frames, *tail) array."""
        X = self._frames(X)
        n, step = X.shape[0], frames_per_chunk(self)
        out = np.empty((n, *tail), dtype=dtype)
        for s in range(0, n, step):
            out[s : s + step] = f(estimate_log_prob(X[s : s + step], *self.params_))
        return out

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw frames (n_samples, n_dims) from the mixture, and each one's component."""
        self._check_fitted()
        if not is_int(n_samples) or n_samples < 1:
            raise ParameterError(f"n_samples must be an int >= 1; got {n_samples!r}")
        rng = np.random.default_rng(self.random_state)
        labels = rng.choice(self.n_components, size=n_samples, p=self.weights_)
        sd = np.sqrt(self.variances_[labels])
        return self.means_[labels] + rng.standard_normal((n_samples, self.n_dims)) * sd, labels

    def _n_parameters(self) -> int:
        return 2 * self.means_.size + self.means_.shape[0] - 1

    def bic(self, X: np.ndarray) -> float:
        """Bayesian information criterion on ``X`` (lower is better)."""
        return -2 * self.log_likelihood_total(X) + self._n_parameters() * math.log(len(X))

    def aic(self, X: np.ndarray) -> float:
        """Akaike information criterion on ``X`` (lower is better)."""
        return -2 * self.log_likelihood_total(X) + 2 * self._n_parameters()
