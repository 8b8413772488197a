"""GMM-UBM: one universal background model, each class MAP-adapted from it, LLR scores.

The UBM is a :class:`~audiogmm.mixture.DiagGMM` on the pooled frames of every class
(every ``subsample``-th frame), or given (:func:`train_ubm`, out of core). Each class
is the UBM moved towards its frames by :class:`~audiogmm.mixture.mstep.MAPMaximiser`.
A clip's score for a class is the log-likelihood ratio ``sum_t log p(x_t | class) -
log p(x_t | UBM)`` (nats); its per-frame mean is the verification score. Open-set
rejection compares the best class's per-frame LLR with a calibrated threshold.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..engine import LocalExecutor, resolve
from ..exceptions import ConvergenceWarning, ParameterError
from ..mixture import DiagGMM, Params
from ..mixture.checks import check_params, is_int, is_real, need
from ..mixture.estep import select_scores, stacked_log_likelihood
from ..mixture.fit import fit_mixtures
from ..mixture.mstep import MAPMaximiser, check_adapt
from ..mixture.sources import ArraySource
from ..progress import Progress, reporter
from .classifier import GMMClassifier, check_clips, pool_clips

__all__ = ["UBMClassifier", "UBM_COMPONENTS", "UNKNOWN", "train_ubm"]

logger = logging.getLogger(__name__)

#: UBM size when none is given (64-256 is usual for speakers; 64 suits small sets).
UBM_COMPONENTS = 64
#: UBM settings unless given: Kaldi-style split growth (measured ~5x faster than
#: k-means++ seeding at K=64 on the dev speakers, same accuracy within noise), and
#: 10 EM iterations (Kaldi's train_diag_ubm.sh runs 4): a UBM only needs to cover
#: the feature space; MAP accuracy does not improve with more.
UBM_DEFAULTS = {"init": "split", "max_iter": 10}
#: Label :meth:`UBMClassifier.predict` gives a rejected clip.
UNKNOWN = "unknown"

#: Subsampling is skipped when it would leave fewer frames than this per UBM component.
_MIN_FRAMES_PER_COMPONENT = 20

class UBMClassifier(GMMClassifier):
    """Classes as MAP adaptations of one universal background model; LLR scores.

    Parameters
    ----------
    n_components : int > 0, default=64
        UBM components K (:data:`UBM_COMPONENTS`); every class model has K too.
    relevance : float >= 0, default=16.0
        MAP relevance factor r of the means (Reynolds et al. 2000 use 16).
    relevance_weights, relevance_variances : float >= 0 or None, default=None
        Relevance factors of weights and variances (None: ``relevance``).
    adapt : {"m", "mw", "mwv", ...}, default="m"
        Which parameters MAP moves; the others stay the UBM's. Only the adapted
        ones are stored per class.
    map_iter : int > 0, default=1
        MAP iterations (E-step against the current class model, prior the UBM).
    subsample : int > 0, default=4
        Train the UBM on every ``subsample``-th pooled frame (Kaldi's ``--subsample``,
        default 5 there): neighbouring 10 ms frames are nearly copies of each other.
        Data with fewer than ``20 * n_components * subsample`` frames is not thinned.
    top_c : int > 0 or None, default=None
        Score on the UBM's ``top_c`` best components per frame (None: all K).
    reject_far : float in (0, 1) or None, default=None
        Target false-accept rate of unknown clips for ``predict(reject="auto")``:
        ``fit`` trains a calibration model without ``calibration_fraction`` of the
        labels and sets :attr:`threshold_` from its scores on them.
    calibration_fraction : float in (0, 1), default=0.2
        Share of the labels (at least one) held out as unknown for calibration.
    priors : dict of str to float or None, default=None
        Class priors for the posteriors.
    n_jobs : int or None, default=None
        Threads (classes and chunks); results do not depend on it.
    random_state : int or None, default=0
    **gmm_params
        :class:`~audiogmm.mixture.DiagGMM` parameters of the UBM (``max_iter``,
        ``init``, ``split_iter``, ``var_floor``, ...); :data:`UBM_DEFAULTS` where not given.

    Attributes
    ----------
    labels_ : list of str
    ubm_ : DiagGMM
    weights_, means_, variances_ : ndarray
        Class models stacked, (M, K), (M, K, D), (M, K, D) (non-adapted parts are the UBM's).
    threshold_ : float or None
        Per-frame LLR below which ``predict(reject="auto")`` answers :data:`UNKNOWN`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> clips = [rng.normal(m, 1, (300, 2)) for m in (0, 0, 3, 3)]
    >>> clf = UBMClassifier(4, relevance=4).fit(clips, ["a", "a", "b", "b"])
    >>> clf.predict([rng.normal(3, 1, (80, 2))]).tolist()
    ['b']
    """

    def __init__(
        self,
        n_components: int = UBM_COMPONENTS,
        *,
        relevance: float = 16.0,
        relevance_weights: float | None = None,
        relevance_variances: float | None = None,
        adapt: str = "m",
        map_iter: int = 1,
        subsample: int = 4,
        top_c: int | None = None,
        reject_far: float | None = None,
        calibration_fraction: float = 0.2,
        priors: dict[str, float] | None = None,
        n_jobs: int | None = None,
        random_state: int | None = 0,
        **gmm_params: Any,
    ) -> None:
        super().__init__(
            n_components, priors=priors, n_jobs=n_jobs, random_state=random_state, **gmm_params
        )
        own = locals()
        for k in self._OWN:
            setattr(self, k, own[k])

    _OWN = (
        "relevance", "relevance_weights", "relevance_variances", "adapt", "map_iter",
        "subsample", "top_c", "reject_far", "calibration_fraction",
    )  # fmt: skip

    def __repr__(self) -> str:
        own = "".join(f", {k}={getattr(self, k)!r}" for k in self._OWN)
        extra = "".join(f", {k}={v!r}" for k, v in sorted(self.gmm_params.items()))
        return f"UBMClassifier({self.n_components}{own}{extra})"

    def _check_own(self) -> None:
        """Validate the MAP / scoring parameters (ParameterError naming the culprit)."""
        for name in ("relevance", "relevance_weights", "relevance_variances"):
            v = getattr(self, name)
            ok = (v is None and name != "relevance") or (is_real(v, finite=False) and v >= 0)
            need(self, ok, name, "a number >= 0" + (" or None" if name != "relevance" else ""))
        check_adapt(self.adapt)
        for name in ("map_iter", "subsample"):
            need(self, is_int(getattr(self, name)) and getattr(self, name) > 0, name, "an int > 0")
        top_c, far, frac = self.top_c, self.reject_far, self.calibration_fraction
        need(self, top_c is None or (is_int(top_c) and top_c > 0), "top_c", "None or an int > 0")
        need(self, far is None or (is_real(far) and 0 < far < 1), "reject_far", "None or in (0, 1)")
        need(self, is_real(frac) and 0 < frac < 1, "calibration_fraction", "in (0, 1)")

    def _ubm_model(self) -> DiagGMM:
        return DiagGMM(
            self.n_components, random_state=self.random_state, n_jobs=self.n_jobs,
            **{**UBM_DEFAULTS, **self.gmm_params},
        )  # fmt: skip

    def _maximiser(self, ubm: DiagGMM) -> MAPMaximiser:
        r = float(self.relevance)
        rw = r if self.relevance_weights is None else float(self.relevance_weights)
        rv = r if self.relevance_variances is None else float(self.relevance_variances)
        return MAPMaximiser(
            ubm.params_, adapt=check_adapt(self.adapt), relevance_means=r,
            relevance_weights=rw, relevance_variances=rv, var_floor=ubm.var_floor_,
            min_weight=ubm.min_weight,
        )  # fmt: skip

    # -- training ----------------------------------------------------------------------------

    def fit(
        self, clips: Sequence[np.ndarray], labels: Sequence[str], *, ubm: DiagGMM | None = None,
        progress: Progress = None, executor: LocalExecutor | None = None,
    ) -> UBMClassifier:  # fmt: skip
        """Train the UBM on pooled frames (unless given), then MAP-adapt one model per label.

        As :meth:`GMMClassifier.fit`; ``ubm``: a fitted UBM to adapt from (e.g. from
        :func:`train_ubm`), whose K replaces ``n_components``.
        """
        self._check_own()
        check_params(self._ubm_model())
        checked, labels = check_clips(clips, labels, None if ubm is None else ubm.n_dims)
        self.labels_ = sorted(set(labels))
        with resolve(executor, self.n_jobs) as ex:
            if ubm is None:
                step = self.subsample
                n_all = sum(X.shape[0] for X in checked)
                if step > 1 and n_all < _MIN_FRAMES_PER_COMPONENT * self.n_components * step:
                    # too little data to thin out: small sets keep every frame
                    logger.info("UBM: %d frames are too few to subsample; using all", n_all)
                    step = 1
                pooled = np.concatenate([X[::step] for X in checked], axis=0)
                with warnings.catch_warnings():
                    if "max_iter" not in self.gmm_params:  # a fixed budget by design
                        warnings.simplefilter("ignore", ConvergenceWarning)
                    ubm = self._ubm_model().fit_source(ArraySource(pooled), executor=ex)
                del pooled
            self.ubm_ = ubm
            self.n_components = ubm.n_components
            self.threshold_ = None
            if self.reject_far is not None:
                self.threshold_ = self._calibrate(checked, labels, ex)
            self._adapt_all(checked, labels, ex, progress)
        return self

    def _adapt_all(
        self, clips: list[np.ndarray], labels: list[str], ex: LocalExecutor,
        progress: Progress = None,
    ) -> None:  # fmt: skip
        """MAP-adapt one model per label in ``self.labels_`` from its clips (stacked after)."""
        data = {
            y: np.concatenate([X for X, lab in zip(clips, labels) if lab == y], axis=0)
            for y in self.labels_
        }
        maximiser = self._maximiser(self.ubm_)
        prior = self.ubm_.params_

        with reporter(progress, len(self.labels_), "Adapting class models") as tick:
            live = [y for y in self.labels_ if data[y].shape[0] > 0]
            models = {y: DiagGMM(self.ubm_.n_components, max_iter=self.map_iter) for y in live}
            fit_mixtures(
                [models[y] for y in live], [ArraySource(data[y]) for y in live],
                executor=ex, prior=prior, maximiser=maximiser, tick=tick,
            )  # fmt: skip
            out = []
            for y in self.labels_:
                if y in models:
                    m = models[y]
                    p = Params(m.weights_, m.means_, m.variances_)
                    rep = {k: m.fit_report_[k] for k in ("n_iter", "final_mean_loglik")}
                else:  # no frames: the prior itself, as MAP says
                    p, rep = prior.copy(), {"n_iter": 0, "final_mean_loglik": None}
                    tick()
                # MAP runs a fixed number of iterations: done is converged
                out.append((p, {"n_clips": labels.count(y), "n_frames": int(data[y].shape[0]),
                                "converged": True, "n_reseeded": 0, **rep}))  # fmt: skip
        self.weights_ = np.stack([p.weights for p, _ in out])
        self.means_ = np.stack([p.means for p, _ in out])
        self.variances_ = np.stack([p.variances for p, _ in out])
        self.var_floors_ = np.tile(self.ubm_.var_floor_, (len(self.labels_), 1))
        self.fit_report_ = {y: r for y, (_, r) in zip(self.labels_, out)}
        self.ubm_report_ = dict(getattr(self.ubm_, "fit_report_", {}))

    def _calibrate(self, clips: list[np.ndarray], labels: list[str], ex: LocalExecutor) -> float:
        """Threshold on the per-frame LLR for false-accept rate ``reject_far``.

        Unknowns are simulated by *held-out classes* (``calibration_fraction`` of the
        labels, at least one), left out of a calibration model (its own UBM and
        adaptations). Held-out clips of known classes would be the wrong stand-in: the
        UBM has seen their speakers, which lowers their scores (measured).
        """
        if len(self.labels_) < 2:
            raise ParameterError("reject_far needs at least 2 classes to calibrate on")
        rng = np.random.default_rng(self.random_state)
        n_out = min(
            len(self.labels_) - 1, max(1, round(self.calibration_fraction * len(self.labels_)))
        )
        out = set(rng.choice(self.labels_, size=n_out, replace=False).tolist())
        params = {k: getattr(self, k) for k in self._OWN}
        params["reject_far"] = None
        sub = UBMClassifier(
            self.n_components, priors=None, n_jobs=self.n_jobs, random_state=self.random_state,
            **params, **self.gmm_params,
        )  # fmt: skip
        keep = [i for i, y in enumerate(labels) if y not in out]
        sub.fit([clips[i] for i in keep], [labels[i] for i in keep], executor=ex)
        test = [clips[i] for i, y in enumerate(labels) if y in out and clips[i].shape[0] > 0]
        if not test:
            raise ParameterError(f"the calibration labels {sorted(out)} have no frames")
        impostor = np.sort(sub.score_samples(test, executor=ex).max(1))[::-1]
        k = int(math.floor(self.reject_far * len(impostor)))  # false accepts allowed
        thr = np.nextafter(impostor[k], np.inf) if k < len(impostor) else impostor[-1]
        self.calibration_ = {
            "held_out_labels": sorted(out),
            "n_impostor_trials": len(impostor),
            "target_far": self.reject_far,
        }
        return float(thr)

    # -- scoring -----------------------------------------------------------------------------

    def _frame_llr(self, clips: Sequence[np.ndarray], executor: LocalExecutor | None):
        allX, lengths = pool_clips(clips, self.n_dims)
        M = len(self.labels_)
        if not len(lengths):
            return np.zeros((0, M)), lengths
        ubm = self.ubm_.params_
        with resolve(executor, self.n_jobs) as ex:
            if self.top_c is not None and self.top_c < self.n_components:
                models, base = select_scores(
                    allX, ubm, self.weights_, self.means_, self.variances_,
                    top_c=self.top_c, executor=ex,
                )  # fmt: skip
            else:
                ll = stacked_log_likelihood(
                    allX,
                    np.concatenate([self.weights_, ubm.weights[None]]),
                    np.concatenate([self.means_, ubm.means[None]]),
                    np.concatenate([self.variances_, ubm.variances[None]]),
                    executor=ex,
                )
                models, base = ll[:, :M], ll[:, M]
        return np.add.reduceat(models - base[:, None], np.cumsum(lengths) - lengths, axis=0), lengths

    def score_matrix(
        self, clips: Sequence[np.ndarray], *, executor: LocalExecutor | None = None
    ) -> np.ndarray:
        """``sum_t [log p(x_t | class) - log p(x_t | UBM)]``, (n_clips, n_labels), nats.

        The UBM term is common to a row: argmax and posteriors are the class likelihoods'.
        """
        return self._frame_llr(clips, executor)[0]

    def score_samples(
        self, clips: Sequence[np.ndarray], *, executor: LocalExecutor | None = None
    ) -> np.ndarray:
        """Mean per-frame LLR (n_clips, n_labels), nats per frame: the verification score."""
        total, lengths = self._frame_llr(clips, executor)
        return total / np.maximum(lengths, 1)[:, None]

    def resolve_threshold(self, reject: str | float | None) -> float | None:
        """The per-frame LLR threshold that ``reject`` (None, "auto" or a number) means."""
        return parse_reject(reject, getattr(self, "threshold_", None), "reject='auto' needs a "
                            "calibrated threshold: train with reject_far (`audiogmm train "
                            "--backend map --reject-far 0.05`), or give a number")  # fmt: skip

    def predict(
        self, clips: Sequence[np.ndarray], *, reject: str | float | None = None
    ) -> np.ndarray:
        """Most likely class of each clip (n_clips,), object; :data:`UNKNOWN` when rejected.

        ``reject`` (None, "auto" for the calibrated :attr:`threshold_`, or a number):
        reject when the best class's per-frame LLR is below it.
        """
        thr = self.resolve_threshold(reject)
        total, lengths = self._frame_llr(clips, None)
        if not len(total):
            return np.array([], dtype=object)
        best = (total + self._log_priors()).argmax(1)
        out = np.array(self.labels_, dtype=object)[best]
        if thr is not None:
            out[self.rejection_scores(total, lengths) < thr] = UNKNOWN
        return out

    def rejection_scores(self, S: np.ndarray, n_frames: np.ndarray) -> np.ndarray:
        """The score each clip's best class is rejected on: its per-frame LLR against the UBM,
        (n_clips,), nats per frame; ``S`` is :meth:`score_matrix` (total LLRs over the
        ``n_frames`` frames of each clip).
        """
        best = self.log_proba_from_scores(S).argmax(1)
        return S[np.arange(len(best)), best] / np.maximum(n_frames, 1)


def parse_reject(reject: str | float | None, auto: float | None, why: str) -> float | None:
    """The threshold ``reject`` means: None, ``auto`` for ``"auto"`` (ParameterError
    ``why`` when the model has none), or the finite number given."""
    if reject is None:
        return None
    if isinstance(reject, str) and reject == "auto":
        if auto is None:
            raise ParameterError(why)
        return float(auto)
    if is_real(reject):
        return float(reject)
    raise ParameterError(f"reject must be None, 'auto' or a finite number; got {reject!r}")


def train_ubm(
    chunks, n_components: int = UBM_COMPONENTS, *, subsample: int = 1,
    executor: LocalExecutor | None = None, checkpoint: Any = None, **gmm_params: Any,
) -> DiagGMM:  # fmt: skip
    """Train a UBM out of core, for ``UBMClassifier.fit(..., ubm=...)``.

    ``chunks``: as for :meth:`DiagGMM.fit_iter` (every ``subsample``-th frame of each
    chunk kept), or a shard store (:func:`audiogmm.data.shards.open_store`), read in
    canonical blocks through the executor (e.g. a ``DaskExecutor``) with ``subsample``
    as its stride and an optional ``checkpoint``. ``gmm_params``: other DiagGMM
    parameters.
    """
    if not (is_int(subsample) and subsample > 0):
        raise ParameterError(f"subsample must be an int > 0; got {subsample!r}")
    if hasattr(chunks, "read_rows") or checkpoint is not None:  # a shard store: map its blocks
        from ..mixture.sources import ShardSource

        if not hasattr(chunks, "read_rows"):
            raise ParameterError("train_ubm: checkpoints need a shard store as the data")
        gmm = DiagGMM(n_components, **gmm_params)
        check_params(gmm)
        return gmm.fit_source(
            ShardSource(chunks, stride=subsample), executor=executor, checkpoint=checkpoint
        )

    def sub():
        for X in chunks() if callable(chunks) else chunks:
            yield np.asarray(X)[::subsample]

    return DiagGMM(n_components, **gmm_params).fit_iter(sub, executor=executor)
