"""``DiagGMM``: the diagonal-covariance mixture estimator. It only orchestrates.

Validation, initialisation (:mod:`.init`), the EM loop (:func:`.em.run`) with the
ML maximiser (:mod:`.mstep`), ``n_init`` restarts, scoring (:mod:`.estep`) and
persistence (:mod:`audiogmm.container`) are each done by the module that owns them.
"""

from __future__ import annotations

import inspect
import math
import os
import time
import warnings
from typing import Any, Literal

import numpy as np

from ..container import (
    field_bool,
    field_dict,
    field_int,
    field_list,
    field_real,
    info_block,
    jsonable,
    read_container,
    write_container,
)
from ..engine import LocalExecutor, resolve
from ..exceptions import ConvergenceWarning, ModelFileError, ParameterError
from . import em
from .checks import (
    MAX_VAR_FLOOR_ABS,
    check_enough_frames,
    check_params,
    check_sample_weight,
    is_int,
    user_init,
    validate_param_arrays,
)
from .estep import accumulate as _accumulate
from .estep import (
    auto_chunk_size,
    compute_dtype,
    estimate_log_prob,
    log_likelihood,
    log_softmax,
)
from .init import init_kmeans, init_split
from .monitor import ConvergenceMonitor
from .mstep import MLMaximiser, global_mean_var
from .params import Params
from .sources import ArraySource, ChunkSource, IterSource, check_frames
from .stats import Stats

__all__ = ["DiagGMM", "FIT_REPORT_FIELDS", "HEADER_FIELDS", "check_seed", "check_verbose"]


class DiagGMM:
    """Diagonal-covariance Gaussian mixture trained by log-domain EM.

    Parameters
    ----------
    n_components : int > 0, default=1
        Number of mixture components K (any value, not only powers of two).
    max_iter : int >= 0, default=100
        Maximum EM iterations after initialisation.
    tol : float >= 0, default=1e-4
        Convergence threshold on the relative change of the mean per-frame
        log-likelihood.
    var_floor : float >= 0, default=0.01
        Variance floor relative to the global variance of the training data
        (HTK uses 0.01).
    var_floor_abs : float > 0, default=1e-8
        Absolute minimum variance, for dimensions with (near-)zero global variance.
    min_weight : float >= 0, default=1e-5
        Weight floor (Kaldi's ``min-gaussian-weight``).
    min_count : float >= 0, default=10.0
        A component whose occupancy (soft frame count) falls below
        ``min(min_count, n_frames / (2 K))`` is re-seeded by splitting the heaviest
        component (Kaldi's ``min-gaussian-occupancy``).
    init : {"kmeans++", "split"}, default="kmeans++"
        ``"kmeans++"``: k-means++ seeding and a few Lloyd steps on a subsample.
        ``"split"``: start from one component and split the heaviest ones (HTK
        ``MU``, +-0.2 sigma) up to K, with ``split_iter`` EM rounds in between.
    n_init : int > 0, default=1
        Number of initialisations; the fit with the best final log-likelihood wins.
    init_max_samples : int > 0, default=50000
        Size of the random subsample used for initialisation.
    split_iter : int >= 0, default=3
        EM iterations after each split round (``init="split"``).
    weights_init : ndarray of shape (n_components,), optional
        User-provided initial weights (default uniform when ``means_init`` is given).
    means_init : ndarray of shape (n_components, n_dims), optional
        User-provided initial means; skips ``init`` (as in scikit-learn).
    variances_init : ndarray of shape (n_components, n_dims), optional
        User-provided initial variances (default the global variance).
    random_state : int, numpy Generator or None, default=None
        Seed for every random choice (subsample, seeding, sampling).
    chunk_size : int or None, default=None
        Frames per E-step chunk; None picks ~1 MB blocks. Does not change results
        beyond floating-point rounding.
    n_jobs : int or None, default=None
        Threads over chunks (None: all cores, or ``AUDIOGMM_THREADS``), used when
        ``fit`` is not given an executor. Results are bit-identical for any value.
    verbose : int, default=0
        Print per-iteration progress to stderr when > 0.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_dims)
    variances_ : ndarray of shape (n_components, n_dims)
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
    Degenerate data never yields NaN parameters. Frames that are all identical (or
    dimensions with zero variance) give a valid model whose variances sit at
    ``var_floor_abs``, with a RuntimeWarning. A component whose occupancy collapses
    is re-seeded (see ``min_count``) and reported in ``fit_report_["reseeded"]``.
    Fewer frames than components, NaN/inf, or a wrong shape raise ParameterError.
    float32 frames are computed in float32 (float64 statistics), except when a
    collapsed component makes float32 inaccurate; then that E-step runs in float64.

    See Also
    --------
    audiogmm.models.GMMClassifier : one DiagGMM per class.
    audiogmm.mixture.em.run : the EM loop every fit runs through.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(1000, 2))
    >>> gmm = DiagGMM(3, random_state=0).fit(X)
    >>> gmm.means_.shape
    (3, 2)
    """

    _FILE_KIND = "DiagGMM"

    def __init__(
        self,
        n_components: int = 1,
        *,
        max_iter: int = 100,
        tol: float = 1e-4,
        var_floor: float = 0.01,
        var_floor_abs: float = 1e-8,
        min_weight: float = 1e-5,
        min_count: float = 10.0,
        init: Literal["kmeans++", "split"] = "kmeans++",
        n_init: int = 1,
        init_max_samples: int = 50_000,
        split_iter: int = 3,
        weights_init: np.ndarray | None = None,
        means_init: np.ndarray | None = None,
        variances_init: np.ndarray | None = None,
        random_state: int | np.random.Generator | None = None,
        chunk_size: int | None = None,
        n_jobs: int | None = None,
        verbose: int = 0,
    ) -> None:
        self.n_components = n_components
        self.max_iter = max_iter
        self.tol = tol
        self.var_floor = var_floor
        self.var_floor_abs = var_floor_abs
        self.min_weight = min_weight
        self.min_count = min_count
        self.init = init
        self.n_init = n_init
        self.init_max_samples = init_max_samples
        self.split_iter = split_iter
        self.weights_init = weights_init
        self.means_init = means_init
        self.variances_init = variances_init
        self.random_state = random_state
        self.chunk_size = chunk_size
        self.n_jobs = n_jobs
        self.verbose = verbose

    _FILE_KIND = "DiagGMM"

    # -- scikit-learn style plumbing --------------------------------------------------------

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters, as in scikit-learn."""
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params: Any) -> DiagGMM:
        """Set constructor parameters; unknown names raise ParameterError."""
        valid = set(self._param_names())
        for k, v in params.items():
            if k not in valid:
                raise ParameterError(f"unknown parameter {k!r}; valid: {sorted(valid)}")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        parts = []
        for name, p in sig.parameters.items():
            if name == "self":
                continue
            v = getattr(self, name)
            if name == "n_components":
                parts.append(repr(v))
            elif isinstance(v, np.ndarray):
                parts.append(f"{name}=<array {v.shape}>")
            elif v is not p.default and not (type(v) is type(p.default) and v == p.default):
                parts.append(f"{name}={v!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def _check_fitted(self) -> None:
        if not hasattr(self, "means_"):
            raise ParameterError(
                f"this {type(self).__name__} is not fitted yet; call fit() or load() first"
            )

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

    def _set(self, p: Params) -> None:
        self.weights_, self.means_, self.variances_ = p.weights, p.means, p.variances

    def _executor(self, executor: LocalExecutor | None):
        return resolve(executor, self.n_jobs)

    # -- E-step / M-step on the current parameters -------------------------------------------

    def accumulate(
        self,
        X: np.ndarray,
        sample_weight: np.ndarray | None = None,
        *,
        out: Stats | None = None,
        executor: LocalExecutor | None = None,
    ) -> Stats:
        """Sufficient statistics of ``X`` under the current parameters (pure; model unchanged).

        Parameters
        ----------
        X : ndarray of shape (n_frames, n_dims)
        sample_weight : ndarray of shape (n_frames,), optional
            Non-negative, finite per-frame weights.
        out : Stats, optional
            Statistics to add into.
        executor : LocalExecutor, optional
            Runs the chunks (default: a pool of ``n_jobs`` threads for this call).

        Returns
        -------
        Stats
        """
        self._check_fitted()
        X = check_frames(X, n_dims=self.n_dims, min_frames=0)
        sample_weight = check_sample_weight(sample_weight, X.shape[0])
        with self._executor(executor) as ex:
            return _accumulate(
                X, self.params_, sample_weight=sample_weight, chunk_size=self._chunk,
                executor=ex, shift=None if out is None else out.shift, out=out,
            )  # fmt: skip

    def maximise(self, stats: Stats) -> DiagGMM:
        """M-step: set the parameters from ``stats`` (floors and re-seeding applied).

        Returns
        -------
        self
        """
        if stats.n_components != self.n_components:
            raise ParameterError(
                f"stats have {stats.n_components} components; the model has {self.n_components}"
            )
        if getattr(self, "var_floor_", None) is None:
            self.var_floor_ = self._var_floor(global_mean_var(stats)[1])
        params, _ = self._maximiser()(stats, self.params_ if hasattr(self, "means_") else None)
        self._set(params)
        return self

    def _var_floor(self, gvar: np.ndarray) -> np.ndarray:
        return np.maximum(self.var_floor * gvar, self.var_floor_abs)

    def _maximiser(self) -> MLMaximiser:
        return MLMaximiser(self.var_floor_, self.min_weight, self.min_count)

    @property
    def _chunk(self) -> int:
        return self.chunk_size or auto_chunk_size(self.n_components)

    # -- fitting -----------------------------------------------------------------------------

    def fit(
        self,
        X: np.ndarray,
        y: None = None,
        *,
        sample_weight: np.ndarray | None = None,
        executor: LocalExecutor | None = None,
    ) -> DiagGMM:
        """Estimate the parameters with EM.

        Parameters
        ----------
        X : ndarray of shape (n_frames, n_dims), float32 or float64
            Training frames. float32 is computed in float32 with float64 statistics.
        y : ignored
        sample_weight : ndarray of shape (n_frames,), optional
            Non-negative per-frame weights.
        executor : LocalExecutor, optional
            Runs the E-step chunks (default: a pool of ``n_jobs`` threads for this call).

        Returns
        -------
        self

        Raises
        ------
        ParameterError
            Bad parameters, or X not 2-D, non-finite, or with fewer frames than components.
        """
        check_params(self)
        X = check_frames(X)
        check_enough_frames(X.shape[0], self.n_components, "X")
        sample_weight = check_sample_weight(sample_weight, X.shape[0])
        return self.fit_source(ArraySource(X, sample_weight), executor=executor)

    def fit_iter(self, chunks: ChunkSource, *, executor: LocalExecutor | None = None) -> DiagGMM:
        """Estimate the parameters with EM from data streamed in chunks (out of core).

        Parameters
        ----------
        chunks : callable returning an iterable of arrays, or a re-iterable (e.g. a list)
            Each pass over the data calls ``chunks()`` (or iterates it) afresh; every
            chunk is an array of shape (n_i, n_dims). Use memory-mapped ``.npy`` files
            or a generator function reading from disk for data larger than memory.
        executor : LocalExecutor, optional
            Runs the E-step chunks.

        Returns
        -------
        self
        """
        check_params(self)
        return self.fit_source(IterSource(chunks), executor=executor)

    def _global_moments(self, source) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One pass of plain moments over the source (also counts its frames).

        Returns the global mean and variance, and a (2, n_dims) probe of the data's
        extremes in its own dtype (what :func:`compute_dtype` looks at).
        """
        total = None
        lo = hi = None
        for Xc, sw in source:
            if total is None:
                total = Stats.zeros(1, Xc.shape[1], shift=np.asarray(Xc[0], dtype=np.float64))
                lo, hi = Xc.min(0), Xc.max(0)
            total = total + Stats.of_frames(Xc, sw, shift=total.shift)
            lo, hi = np.minimum(lo, Xc.min(0)), np.maximum(hi, Xc.max(0))
        if total is None:
            raise ParameterError("fit_iter: the chunks hold no frames")
        check_enough_frames(source.n_frames, self.n_components, "the data")
        if not total.n[0] > 0:
            raise ParameterError("sample_weight sums to 0: there is nothing to fit")
        with np.errstate(over="ignore", invalid="ignore"):
            gmean, gvar = global_mean_var(total)
        if not (np.isfinite(gmean).all() and np.isfinite(gvar).all()):
            peak = max(float(np.max(np.abs(lo))), float(np.max(np.abs(hi))))
            raise ParameterError(
                f"the data's variance overflows float64 (|x| up to {peak:.3g}); rescale the data"
            )
        return gmean, gvar, np.stack([lo, hi])

    def _subsample(self, source, rng: np.random.Generator) -> np.ndarray:
        """The random rows initialisation works on, (min(init_max_samples, n), D) float64."""
        m = min(self.init_max_samples, source.n_frames)
        return source.gather(np.sort(rng.choice(source.n_frames, size=m, replace=False)))

    def _init_params(
        self, source, rng: np.random.Generator, executor: LocalExecutor
    ) -> tuple[Params, list[dict[str, Any]]]:
        K = self.n_components
        Xs = self._subsample(source, rng)
        D = Xs.shape[1]
        if self.means_init is not None:
            return user_init(self, K, D, Xs), []
        if self.init == "kmeans++":
            return init_kmeans(Xs, K, rng, self._maximiser())
        params = init_split(
            Xs, K, var_floor=self.var_floor_, split_iter=self.split_iter,
            executor=executor, chunk_size=self._chunk,
        )  # fmt: skip
        return params, []

    def fit_source(
        self, source, *, executor: LocalExecutor | None = None, checkpoint: Any = None
    ) -> DiagGMM:
        """Fit from a data source whose frames are already validated (no checks repeated).

        :meth:`fit` and :meth:`fit_iter` validate and call this; so does a classifier
        that has checked its classes' frames once.

        Parameters
        ----------
        source : ArraySource, IterSource or ShardSource
        executor : LocalExecutor, optional
        checkpoint : EMCheckpoint, optional
            Write EM's state after every M-step; resume from it when it says so
            (:mod:`audiogmm.mixture.checkpoint`; needs ``n_init=1``).

        Returns
        -------
        self
        """
        t0 = time.perf_counter()
        if checkpoint is not None and self.n_init != 1:
            raise ParameterError(f"EM checkpoints need n_init=1; got n_init={self.n_init}")
        rng, gmean, gvar, extremes = self._start(source)
        runs = []
        with self._executor(executor) as ex:
            for _ in range(self.n_init):
                monitor, maximiser, saved = self._monitor(source), self._maximiser(), None
                if checkpoint is not None:  # resume: saved parameters replace the init
                    saved = checkpoint.restore(monitor)
                if saved is None:
                    params, init_events = self._init_params(source, rng, ex)
                else:
                    params, init_events = saved[0], []
                if checkpoint is not None:
                    monitor, maximiser = checkpoint.attach(
                        monitor, maximiser, saved is not None and saved[1]
                    )
                res = em.run(
                    source, params, maximiser=maximiser, monitor=monitor,
                    executor=ex, chunk_size=self._chunk,
                )  # fmt: skip
                res.events = init_events + res.events
                runs.append(res)
        return self._finish(runs, source, gmean, gvar, extremes, t0)

    def _start(self, source) -> tuple[np.random.Generator, np.ndarray, np.ndarray, np.ndarray]:
        """The fit's random stream, global moments, per-dimension extremes, variance floor (set)."""
        rng = np.random.default_rng(self.random_state)
        gmean, gvar, extremes = self._global_moments(source)
        zero_dims = np.flatnonzero(gvar <= self.var_floor_abs)
        if zero_dims.size:
            warnings.warn(
                f"X has (near) zero variance in dimension(s) {zero_dims.tolist()[:10]}; "
                f"their variances are set to var_floor_abs={self.var_floor_abs:g}",
                RuntimeWarning,
                stacklevel=4,
            )
        with np.errstate(over="ignore"):
            self.var_floor_ = self._var_floor(gvar)
        if not np.all(self.var_floor_ <= MAX_VAR_FLOOR_ABS):
            raise ParameterError(
                f"var_floor={self.var_floor!r} times the data's variance gives floors up to "
                f"{np.max(self.var_floor_):.3g} (limit {MAX_VAR_FLOOR_ABS:g}); lower var_floor"
            )
        return rng, gmean, gvar, extremes

    def _monitor(self, source) -> ConvergenceMonitor:
        return ConvergenceMonitor(
            self.tol, self.max_iter, self.verbose,
            drop_tol=source.drop_tol, scale=self.var_floor_.shape[0],
        )  # fmt: skip

    def _finish(
        self,
        runs: list[em.EMResult],
        source,
        gmean: np.ndarray,
        gvar: np.ndarray,
        extremes: np.ndarray,
        t0: float,
    ) -> DiagGMM:
        """Adopt the best of the ``n_init`` runs; the fit report; the convergence warning."""
        which, best = em.best_of(runs)
        p = best.params
        try:  # the same checks as save/load: a fit never ends with a model that cannot load
            validate_param_arrays("EM result", p.weights, p.means, p.variances)
        except ModelFileError as e:
            raise ParameterError(
                f"{e}; check means_init/variances_init against the data's scale, or rescale "
                "the data"
            ) from None
        self._set(best.params)
        self.history_ = list(best.history)
        self.converged_ = best.converged
        self.n_iter_ = best.n_iter
        self.fit_report_ = {
            "n_frames": int(source.n_frames),
            "n_dims": int(gvar.shape[0]),
            "n_components": self.n_components,
            "n_iter": best.n_iter,
            "converged": best.converged,
            "final_mean_loglik": best.final_mean_loglik,
            "history": list(best.history),
            "best_init": which,
            "init_final_mean_logliks": [r.final_mean_loglik for r in runs],
            "reseeded": best.events,
            "n_reseeded": len(best.events),
            "global_mean_norm": float(np.linalg.norm(gmean)),
            "compute_dtype": np.dtype(
                compute_dtype(extremes, p.weights, p.means, p.variances)
            ).name,
            "notes": [],
            "seconds": time.perf_counter() - t0,
        }
        if extremes.dtype == np.float32 and self.fit_report_["compute_dtype"] == "float64":
            peak = float(np.max(np.abs(extremes)))
            self.fit_report_["notes"].append(
                f"float32 data computed in float64: its range (|x| up to {peak:.3g}) or a "
                "narrow component would overflow or lose (x - c)**2 / var in float32"
            )
        if not best.converged and self.max_iter > 0:
            warnings.warn(
                f"EM did not converge in max_iter={self.max_iter} iterations "
                f"(tol={self.tol:g}); raise max_iter, loosen tol, or try init='split'",
                ConvergenceWarning,
                stacklevel=4,
            )
        return self

    # -- inference ---------------------------------------------------------------------------

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """Per-frame log-likelihood ``log p(x_t)`` in nats.

        Parameters
        ----------
        X : ndarray of shape (n_frames, n_dims)

        Returns
        -------
        ndarray of shape (n_frames,), float64
        """
        self._check_fitted()
        X = check_frames(X, n_dims=self.n_dims, min_frames=0)
        with self._executor(None) as ex:
            return log_likelihood(X, self.params_, chunk_size=self._chunk, executor=ex)

    def score(self, X: np.ndarray, y: None = None) -> float:
        """Mean per-frame log-likelihood of ``X`` in nats."""
        return float(self.score_samples(X).mean())

    def log_likelihood_total(self, X: np.ndarray) -> float:
        """Total log-likelihood of ``X`` summed over frames, in nats."""
        return float(self.score_samples(X).sum())

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Posterior component probabilities, shape (n_frames, n_components)."""
        self._check_fitted()
        X = check_frames(X, n_dims=self.n_dims, min_frames=0)
        L = estimate_log_prob(X, self.weights_, self.means_, self.variances_)
        return np.exp(log_softmax(L))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Most likely component per frame, shape (n_frames,)."""
        return self.predict_proba(X).argmax(1)

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw frames from the mixture.

        Returns
        -------
        X : ndarray of shape (n_samples, n_dims)
        labels : ndarray of shape (n_samples,), the component of each frame
        """
        self._check_fitted()
        if not is_int(n_samples) or n_samples < 1:
            raise ParameterError(f"n_samples must be an int >= 1; got {n_samples!r}")
        rng = np.random.default_rng(self.random_state)
        labels = rng.choice(self.n_components, size=n_samples, p=self.weights_)
        X = self.means_[labels] + rng.standard_normal((n_samples, self.n_dims)) * np.sqrt(
            self.variances_[labels]
        )
        return X, labels

    def _n_parameters(self) -> int:
        K, D = self.means_.shape
        return 2 * K * D + K - 1

    def bic(self, X: np.ndarray) -> float:
        """Bayesian information criterion on ``X`` (lower is better)."""
        return -2 * self.log_likelihood_total(X) + self._n_parameters() * math.log(len(X))

    def aic(self, X: np.ndarray) -> float:
        """Akaike information criterion on ``X`` (lower is better)."""
        return -2 * self.log_likelihood_total(X) + 2 * self._n_parameters()

    # -- persistence -------------------------------------------------------------------------

    def save(self, path: str | os.PathLike, *, extra: dict[str, Any] | None = None) -> None:
        """Write the model to one ``.npz`` file (no pickle, checksummed, atomic).

        ``extra`` holds more header blocks of :data:`HEADER_FIELDS` (e.g. a UBM's
        ``feature_config``); :meth:`load` returns them in ``file_header_``.

        Raises
        ------
        ParameterError
            When the model holds something :meth:`load` would refuse (non-finite
            parameters, a parameter of the wrong type): such a file is never written.

        See Also
        --------
        DiagGMM.load
        """
        self._check_fitted()
        params = {k: v for k, v in self.get_params().items() if not k.endswith("_init")}
        if not isinstance(self.random_state, (int, np.integer, type(None))):
            params["random_state"] = None
        header = jsonable(
            {**(extra or {}), "params": params, "training": getattr(self, "fit_report_", {})}
        )
        arrays = {
            "weights": self.weights_,
            "means": self.means_,
            "variances": self.variances_,
            "var_floor": self.var_floor_,
        }
        name = os.fspath(path)
        try:  # the checks load() makes, so that every saved file loads
            for key in header:
                if key not in HEADER_FIELDS:
                    raise ValueError(f"header block {key!r} is not one of {sorted(HEADER_FIELDS)}")
                HEADER_FIELDS[key](header[key])
            validate_param_arrays(name, *(np.asarray(arrays[k]) for k in list(arrays)[:3]))
        except (ValueError, TypeError) as e:
            raise ParameterError(f"cannot save {name}: {e}") from None
        write_container(path, kind=self._FILE_KIND, header=header, arrays=arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> DiagGMM:
        """Read a model written by :meth:`save`, validating everything.

        Every header field is checked like a constructor argument (see
        :data:`HEADER_FIELDS`), the arrays like fitted parameters.

        Raises
        ------
        ModelFileError
            Missing, truncated or tampered file, another format version, or invalid
            parameters (non-finite, variances <= 0, weights not summing to 1), naming
            the file and the field.
        """
        header, arrays = read_container(
            path,
            kind=cls._FILE_KIND,
            names=("weights", "means", "variances", "var_floor"),
            fields=HEADER_FIELDS,
            required=("params",),
        )
        name = os.fspath(path)
        gmm = cls(**header["params"])
        w, m, v, f = (arrays.get(k) for k in ("weights", "means", "variances", "var_floor"))
        validate_param_arrays(name, w, m, v)
        if (
            f is None
            or f.shape != (m.shape[1],)
            or f.dtype != np.float64
            or not np.all(np.isfinite(f))
            or np.any(f <= 0)
        ):
            raise ModelFileError(f"{name}: invalid var_floor array")
        if m.shape[0] != gmm.n_components:
            raise ModelFileError(
                f"{name}: header says n_components={gmm.n_components}, arrays have {m.shape[0]}"
            )
        gmm.weights_, gmm.means_, gmm.variances_, gmm.var_floor_ = w, m, v, f
        gmm.fit_report_ = header.get("training", {})
        gmm.history_ = list(gmm.fit_report_.get("history", []))
        gmm.file_header_ = header
        return gmm


# -- the model file's header: one validator per top-level key ------------------------------


def _real_list(v: Any, what: str) -> list[float]:
    return [field_real(x, f"{what}[{i}]", finite=False) for i, x in enumerate(field_list(v, what))]


def _count(v: Any, what: str) -> int:
    return field_int(v, what, lo=0)


#: Types of the known entries of a fit report (others are kept as plain JSON).
FIT_REPORT_FIELDS = {
    "n_frames": _count,
    "n_dims": lambda v, what: field_int(v, what, lo=1),
    "n_components": lambda v, what: field_int(v, what, lo=1),
    "n_iter": _count,
    "converged": field_bool,
    "final_mean_loglik": lambda v, what: field_real(v, what, finite=False),
    "history": _real_list,
    "best_init": _count,
    "init_final_mean_logliks": _real_list,
    "reseeded": field_list,
    "n_reseeded": _count,
    "global_mean_norm": lambda v, what: field_real(v, what, lo=0.0),
    "seconds": lambda v, what: field_real(v, what, lo=0.0),
}


def check_seed(v: Any, what: str) -> int | None:
    """A stored ``random_state``: None or an int in [0, 2**128)."""
    return None if v is None else field_int(v, what, lo=0, hi=2**128 - 1)


def check_verbose(v: Any, what: str) -> int:
    """A stored ``verbose``: an int (or bool) >= 0."""
    return field_int(int(v) if isinstance(v, bool) else v, what, lo=0)


def _params_block(v: Any) -> dict[str, Any]:
    """The constructor parameters, checked exactly as ``fit`` checks them."""
    params = field_dict(v, "params")
    allowed = [k for k in DiagGMM._param_names() if not k.endswith("_init")]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown[:5]}; valid: {allowed}")
    gmm = DiagGMM(**params)
    check_params(gmm)
    check_seed(gmm.random_state, "params.random_state")
    check_verbose(gmm.verbose, "params.verbose")
    return params


#: Validators of the top-level header fields of a DiagGMM file (see
#: :func:`audiogmm.container.read_container`). Add one entry per new field.
HEADER_FIELDS = {
    "params": _params_block,
    "training": lambda v: info_block(v, "training", FIT_REPORT_FIELDS),
    # a UBM's front end (`audiogmm ubm`); the pipeline validates it as a FeatureConfig
    "feature_config": lambda v: field_dict(v, "feature_config"),
}
