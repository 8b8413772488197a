"""GMM-UBM: one universal background model (on every class's pooled frames, or given by
:func:`train_ubm`), each class MAP-adapted from it. A clip's score for a class is the LLR
``sum_t log p(x_t | class) - log p(x_t | UBM)`` (nats); its per-frame mean is the verification
score, on which open-set rejection (:class:`OpenSetClassifier`, shared with ``gsv`` and
``ivector``) compares the best class with a calibrated threshold. What ``gsv`` and ``ivector``
share: their E-step (:func:`clip_stats`) and :class:`EmbeddingClassifier`."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..engine import LocalExecutor, resolve
from ..exceptions import ConvergenceWarning, ParameterError
from ..mixture import DiagGMM
from ..mixture.checks import check_params, is_int, is_real, need
from ..mixture.estep import accumulate_many, select_scores, stacked_log_likelihood
from ..mixture.fit import fit_mixtures
from ..mixture.mstep import MAPMaximiser, check_adapt
from ..mixture.sources import ArraySource
from ..progress import Progress, reporter
from ..scoring.verification import CalibrationWarning, bayes_threshold, fit_calibration
from .classifier import REPORT_KEYS, GMMClassifier, by_label, check_clips, check_each

__all__ = ["EmbeddingClassifier", "UBMClassifier", "UBM_COMPONENTS",
           "clip_stats", "train_ubm"]  # fmt: skip

logger = logging.getLogger(__name__)

#: UBM size of map and gsv when none is given (64-256 is usual for speakers; 64 suits small
#: sets). gsv at 64 on the default front end, with length-normalised supervectors: level with
#: 256 on the dev speakers (0.973 against 0.972, three splits) and 8 points above it on the
#: dev realsounds, for about a third of its fitting time (README "The default, checked a
#: third time").
UBM_COMPONENTS = 64
#: UBM settings unless given: Kaldi-style split growth (measured ~5x faster than
#: k-means++ seeding at K=64 on the dev speakers, same accuracy within noise), and
#: 10 EM iterations (Kaldi's train_diag_ubm.sh runs 4): a UBM only needs to cover
#: the feature space; MAP accuracy does not improve with more.
UBM_DEFAULTS = {"init": "split", "max_iter": 10}

#: Subsampling is skipped when it would leave fewer frames than this per UBM component.
_MIN_FRAMES_PER_COMPONENT = 20
#: Clips per E-step call of :func:`clip_stats`: the call's (clips, K, 2D + 1) float64
#: accumulator bounds its memory (64 clips at K=256, D=60: 16 MB).
CLIPS_PER_CALL = 64


class OpenSetClassifier(GMMClassifier):
    """A UBM (:meth:`_fit_ubm`) under the classes (map, gsv, ivector). Subclasses define
    ``verification_scores(S, n_frames)``, each class's score (n_clips, n_labels), nats, from a
    :meth:`score_matrix` ``S``, on which :meth:`GMMClassifier.rejection_scores` rejects; and
    ``auto_threshold()`` (of ``reject="auto"``; ParameterError saying why when the model has
    none)."""

    def _ubm_model(self) -> DiagGMM:
        gp = {**UBM_DEFAULTS, **self.gmm_params}
        return DiagGMM(self.n_components, random_state=self.random_state, n_jobs=self.n_jobs, **gp)

    def _fit_ubm(self, clips: Sequence[np.ndarray], labels: Sequence[str], ubm: DiagGMM | None,
                 ex: LocalExecutor) -> tuple[list[np.ndarray], list[str]]:  # fmt: skip
        """``ubm_``: ``ubm`` (its K wins) or one trained on every ``subsample``-th pooled frame
        (all of them below ``20 * K * subsample``); the clips and labels checked."""
        need(self, is_int(self.subsample) and self.subsample > 0, "subsample", "an int > 0")
        check_params(self._ubm_model())
        checked, labels = check_clips(clips, labels, None if ubm is None else ubm.n_dims)
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
        self.ubm_, self.n_components = ubm, ubm.n_components
        rep = getattr(ubm, "fit_report_", {})
        self.ubm_report_ = {k: rep[k] for k in ("n_frames", *REPORT_KEYS) if k in rep}
        return checked, labels


class UBMClassifier(OpenSetClassifier):
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
        Which parameters MAP moves (and each class stores); the others stay the UBM's.
    map_iter : int > 0, default=1
        MAP iterations (E-step against the current class model, prior the UBM).
    subsample : int > 0, default=4
        Train the UBM on every ``subsample``-th pooled frame (neighbouring frames are nearly
        copies; Kaldi's 5), unless there are fewer than ``20 * n_components * subsample``.
    top_c : int > 0 or None, default=None
        Score on the UBM's ``top_c`` best components per frame (None: all K).
    reject_far : float in (0, 1) or None, default=None
        Target false-accept rate of unknown clips for ``predict(reject="auto")``
        (:attr:`threshold_`, on ``calibration_fraction`` of the labels, at least one).
    calibration_fraction : float in (0, 1), default=0.2
    priors, n_jobs, random_state, **gmm_params
        As for :class:`GMMClassifier`; ``gmm_params`` are the UBM's (:data:`UBM_DEFAULTS`).

    Attributes
    ----------
    labels_, ubm_ : list of str, DiagGMM
    weights_, means_, variances_ : ndarray
        Class models stacked, (M, K), (M, K, D), (M, K, D) (non-adapted parts are the UBM's).
    threshold_ : float or None
        Per-frame LLR below which ``predict(reject="auto")`` answers :data:`UNKNOWN`.
    """

    own_params = (
        "relevance", "relevance_weights", "relevance_variances", "adapt", "map_iter",
        "subsample", "top_c", "reject_far", "calibration_fraction",
    )  # fmt: skip

    def __init__(self, n_components: int = UBM_COMPONENTS, *, relevance: float = 16.0,
                 relevance_weights: float | None = None, relevance_variances: float | None = None,
                 adapt: str = "m", map_iter: int = 1, subsample: int = 4, top_c: int | None = None,
                 reject_far: float | None = None, calibration_fraction: float = 0.2,
                 priors: dict[str, float] | None = None, n_jobs: int | None = None,
                 random_state: int | None = 0, **gmm_params: Any) -> None:  # fmt: skip
        self._keep(locals())

    def _check_own(self) -> None:
        """Validate the MAP / scoring parameters (ParameterError naming the culprit)."""
        for name in ("relevance", "relevance_weights", "relevance_variances"):
            v = getattr(self, name)
            ok = (v is None and name != "relevance") or (is_real(v, finite=False) and v >= 0)
            need(self, ok, name, "a number >= 0" + (" or None" if name != "relevance" else ""))
        check_adapt(self.adapt)
        need(self, is_int(self.map_iter) and self.map_iter > 0, "map_iter", "an int > 0")
        top_c, far, frac = self.top_c, self.reject_far, self.calibration_fraction
        need(self, top_c is None or (is_int(top_c) and top_c > 0), "top_c", "None or an int > 0")
        need(self, far is None or (is_real(far) and 0 < far < 1), "reject_far", "None or in (0, 1)")
        need(self, is_real(frac) and 0 < frac < 1, "calibration_fraction", "in (0, 1)")

    def fit(self, clips: Sequence[np.ndarray], labels: Sequence[str], *, ubm: DiagGMM | None = None,
            progress: Progress = None,
            executor: LocalExecutor | None = None) -> UBMClassifier:  # fmt: skip
        """Train the UBM on pooled frames (unless ``ubm``, e.g. from :func:`train_ubm`, whose K
        wins), then MAP-adapt one model per label; as :meth:`GMMClassifier.fit`."""
        self._check_own()
        with resolve(executor, self.n_jobs) as ex:
            checked, labels = self._fit_ubm(clips, labels, ubm, ex)
            self.labels_ = sorted(set(labels))
            far = self.reject_far
            self.threshold_ = None if far is None else self._calibrate(checked, labels, ex)
            # MAP-adapt one model per label from its clips
            data, ubm = by_label(checked, labels, self.labels_), self.ubm_
            prior, r = ubm.params_, float(self.relevance)
            rw, rv = (r if v is None else float(v)
                      for v in (self.relevance_weights, self.relevance_variances))  # fmt: skip
            maximiser = MAPMaximiser(
                prior, adapt=check_adapt(self.adapt), relevance_means=r, relevance_weights=rw,
                relevance_variances=rv, var_floor=ubm.var_floor_, min_weight=ubm.min_weight,
            )  # fmt: skip
            live = [y for y in self.labels_ if data[y].shape[0] > 0]
            models = {y: DiagGMM(ubm.n_components, max_iter=self.map_iter) for y in live}
            with reporter(progress, len(self.labels_), "Adapting class models") as tick:
                fit_mixtures([models[y] for y in live], [ArraySource(data[y]) for y in live],
                             executor=ex, prior=prior, maximiser=maximiser, tick=tick)  # fmt: skip
                for _ in range(len(self.labels_) - len(live)):
                    tick()
        # a label without frames: the prior itself, as MAP says
        ps = [models[y].params_ if y in models else prior for y in self.labels_]
        self.weights_, self.means_, self.variances_ = (
            np.stack([getattr(p, k) for p in ps]) for k in ("weights", "means", "variances")
        )
        self.var_floors_ = np.tile(ubm.var_floor_, (len(self.labels_), 1))
        none = {"n_iter": 0, "final_mean_loglik": None}
        # MAP runs a fixed number of iterations: done is converged
        self.fit_report_ = {
            y: {"n_clips": labels.count(y), "n_frames": int(data[y].shape[0]), "converged": True,
                "n_reseeded": 0, **{k: models[y].fit_report_[k] if y in models else v
                                    for k, v in none.items()}}
            for y in self.labels_
        }  # fmt: skip
        return self

    def _calibrate(self, clips: list[np.ndarray], labels: list[str], ex: LocalExecutor) -> float:
        """Per-frame LLR threshold for false-accept rate ``reject_far`` on *held-out classes*
        under a model trained without them (held-out clips of known classes are the wrong
        stand-in: the UBM has seen their speakers)."""
        if len(self.labels_) < 2:
            raise ParameterError("reject_far needs at least 2 classes to calibrate on")
        rng = np.random.default_rng(self.random_state)
        M = len(self.labels_)
        n_out = min(M - 1, max(1, round(self.calibration_fraction * M)))
        out = set(rng.choice(self.labels_, size=n_out, replace=False).tolist())
        own = {**{k: getattr(self, k) for k in self.own_params}, "reject_far": None}
        sub = UBMClassifier(self.n_components, n_jobs=self.n_jobs, random_state=self.random_state,
                            **own, **self.gmm_params)  # fmt: skip
        keep = [i for i, y in enumerate(labels) if y not in out]
        sub.fit([clips[i] for i in keep], [labels[i] for i in keep], executor=ex)
        test = [clips[i] for i, y in enumerate(labels) if y in out and clips[i].shape[0] > 0]
        if not test:
            raise ParameterError(f"the calibration labels {sorted(out)} have no frames")
        impostor = np.sort(sub.score_samples(test, executor=ex).max(1))[::-1]
        k = int(math.floor(self.reject_far * len(impostor)))  # false accepts allowed
        thr = np.nextafter(impostor[k], np.inf) if k < len(impostor) else impostor[-1]
        self.calibration_ = {"held_out_labels": sorted(out), "n_impostor_trials": len(impostor),
                             "target_far": self.reject_far}  # fmt: skip
        return float(thr)

    def _frame_scores(self, X: np.ndarray, ex: LocalExecutor) -> np.ndarray:
        """``log p(x_t | class) - log p(x_t | UBM)``: the UBM term changes no argmax/posterior."""
        ubm, M = self.ubm_.params_, len(self.labels_)
        if self.top_c is not None and self.top_c < self.n_components:
            models, base = select_scores(
                X, ubm, self.weights_, self.means_, self.variances_, top_c=self.top_c, executor=ex
            )
        else:
            stack = [np.concatenate([getattr(self, k + "_"), getattr(ubm, k)[None]])
                     for k in ("weights", "means", "variances")]  # fmt: skip
            ll = stacked_log_likelihood(X, *stack, executor=ex)
            models, base = ll[:, :M], ll[:, M]
        return models - base[:, None]

    def verification_scores(self, S: np.ndarray, n_frames: np.ndarray) -> np.ndarray:
        """Mean per-frame LLR (n_clips, n_labels), nats per frame."""
        return S / np.maximum(n_frames, 1)[:, None]

    def auto_threshold(self) -> float:
        """:attr:`threshold_` (calibrated for ``reject_far``)."""
        if getattr(self, "threshold_", None) is None:
            raise ParameterError("reject='auto' needs a calibrated threshold: train with reject_far"
                                 " (`audiogmm train --backend map --reject-far 0.05`), or give a "
                                 "number")  # fmt: skip
        return self.threshold_


def train_ubm(chunks, n_components: int = UBM_COMPONENTS, *, subsample: int = 1,
              executor: LocalExecutor | None = None, checkpoint: Any = None,
              **gmm_params: Any) -> DiagGMM:  # fmt: skip
    """A UBM trained out of core (for ``UBMClassifier.fit(..., ubm=...)``) on ``chunks`` as for
    :meth:`DiagGMM.fit_iter`, or on a shard store (:func:`audiogmm.data.shards.open_store`) in
    canonical blocks through the executor, with an optional ``checkpoint``; every
    ``subsample``-th frame kept. ``gmm_params``: other DiagGMM parameters, over
    :data:`UBM_DEFAULTS` (the UBM of ``UBMClassifier`` and ``audiogmm ubm``)."""
    if not (is_int(subsample) and subsample > 0):
        raise ParameterError(f"subsample must be an int > 0; got {subsample!r}")
    gmm = DiagGMM(n_components, **{**UBM_DEFAULTS, **gmm_params})
    if hasattr(chunks, "read_rows") or checkpoint is not None:  # a shard store: map its blocks
        from ..mixture.sources import ShardSource
        if not hasattr(chunks, "read_rows"):
            raise ParameterError("train_ubm: checkpoints need a shard store as the data")
        check_params(gmm)
        return gmm.fit_source(
            ShardSource(chunks, stride=subsample), executor=executor, checkpoint=checkpoint
        )

    def sub():
        for X in chunks() if callable(chunks) else chunks:
            yield np.asarray(X)[::subsample]
    return gmm.fit_iter(sub, executor=executor)


def clip_stats(clips: Sequence[np.ndarray], ubm: DiagGMM, *,
               executor: LocalExecutor | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Each clip's Baum-Welch statistics under a fitted UBM, float64 (zero for a clip without
    frames): ``n`` (n_clips, K), ``n_k = sum_t gamma_tk``, and ``F`` (n_clips, K, D),
    ``F_k = sum_t gamma_tk (x_t - mu_k)``. ``executor`` runs the clips (the result does not
    depend on it): each clip's arithmetic is that of :func:`~audiogmm.mixture.accumulate` of
    the clip alone, :data:`CLIPS_PER_CALL` clips per E-step call."""
    prior = ubm.params_
    checked = check_each(clips, ubm.n_dims, min_frames=0)
    K, D = prior.means.shape
    n_out, F_out = np.zeros((len(checked), K)), np.zeros((len(checked), K, D))
    shift = prior.weights @ prior.means  # accumulate's default centre
    with resolve(executor, getattr(ubm, "n_jobs", None)) as ex:
        for a in range(0, len(checked), CLIPS_PER_CALL):
            part = list(checked[a : a + CLIPS_PER_CALL])
            R = len(part)
            # the one UBM broadcast over the clips: a stack of R members that share it
            n, F, _, _, _ = accumulate_many(
                part, np.broadcast_to(prior.weights, (R, K)),
                np.broadcast_to(prior.means, (R, K, D)),
                np.broadcast_to(prior.variances, (R, K, D)), list(range(R)),
                shifts=np.broadcast_to(shift, (R, D)), executor=ex)  # fmt: skip
            n_out[a : a + R] = n
            F_out[a : a + R] = F - n[:, :, None] * (prior.means - shift)
    return n_out, F_out


class EmbeddingClassifier(OpenSetClassifier):
    """A UBM, one vector per clip (:meth:`vectors`), a back end scoring it per class, and LLRs
    (``verification_scores``) calibrated by ``calibration_`` (:meth:`_held_out_calibration`).
    Subclasses define those two, ``_check_own``, ``_embed``, ``_fit_back_end`` (the back end,
    and ``calibration_`` by :meth:`_held_out_calibration` when asked), ``_scores``."""

    fitted_by = "calibration_"
    scores_per_frame = False

    def fit(self, clips: Sequence[np.ndarray], labels: Sequence[str], *, ubm: DiagGMM | None = None,
            progress: Progress = None, executor: LocalExecutor | None = None,
            calibrate: bool = True) -> EmbeddingClassifier:  # fmt: skip
        """Train the UBM as :meth:`UBMClassifier.fit` does (unless ``ubm``, whose K wins), the
        clips' vectors, then the back end; self (ivector ticks ``progress`` per T-EM step).
        ``calibrate=False`` skips the held-out calibration (``calibration_`` None: raw scores,
        the same decisions), for a model that only classifies, as in cross-validation."""
        self._check_own()
        with resolve(executor, self.n_jobs) as ex:
            checked, labels = self._fit_ubm(clips, labels, ubm, ex)
            self._set_labels(labels)
            Z = self._fit_vectors(checked, ex, progress)
            self.calibration_ = None
            n_iter, converged = self._fit_back_end(Z, labels, calibrate, ex)
        self.fit_report_ = {
            y: {"n_clips": labels.count(y),
                "n_frames": sum(len(X) for X, lab in zip(checked, labels) if lab == y),
                "n_iter": n_iter, "converged": converged}
            for y in self.labels_
        }  # fmt: skip
        return self

    def _fit_vectors(self, clips: Sequence[np.ndarray], ex: LocalExecutor, progress: Progress):
        """The training clips' vectors, (n_clips, P)."""
        return self._embed(clips, ex)

    def vectors(self, clips: Sequence[np.ndarray], *,
                executor: LocalExecutor | None = None) -> np.ndarray:  # fmt: skip
        """The clips' vectors (supervectors, i-vectors), (n_clips, P)."""
        check_each(clips, self.n_dims)
        return self._embed(clips, executor)

    def score_matrix(self, clips: Sequence[np.ndarray], *,
                     executor: LocalExecutor | None = None) -> np.ndarray:  # fmt: skip
        """Each clip's score for each class, (n_clips, n_labels), float64: gsv's linear scores
        (log posteriors up to a per-clip constant), ivector's calibrated cosines (LLRs)."""
        return self._scores(self.vectors(clips, executor=executor))

    def auto_threshold(self) -> float:
        """The Bayes threshold of calibrated LLRs at equal priors and costs, 0
        (:func:`~audiogmm.scoring.verification.bayes_threshold`)."""
        self._check_fitted()
        if self.calibration_ is None:
            raise ParameterError("reject='auto' needs calibrated scores, which this model has not "
                                 "(it had fewer than 2 training clips in some class): give a "
                                 "number")  # fmt: skip
        return bayes_threshold(0.5)

    def _held_out_calibration(
        self, Z: np.ndarray, labels: list[str],
        raw_scores: Callable[[np.ndarray, list[str], np.ndarray], np.ndarray],
        ex: LocalExecutor | None = None, beside: Callable[[], Any] | None = None,
    ) -> tuple[tuple[float, float] | None, Any]:  # fmt: skip
        """``fit_calibration`` ``(a, b)`` of the raw scores of clips ``Z`` (n_clips, P) held out
        of the back end (None below 2 clips in a class): ``raw_scores(Z_train, labels_train,
        Z_test)`` (n_test, M), classes sorted. ``min(4, smallest class)`` stratified folds
        (every class trains in every fold), drawn with ``random_state``; the folds are tasks
        of ``ex`` (threads), and so is ``beside()`` (e.g. the back end on every clip), whose
        result is returned too: ``(calibration or None, beside's result or None)``. Each
        task's result is the same however they are scheduled."""
        y = np.array(labels)
        classes = sorted(set(labels))
        k = min(4, min(labels.count(c) for c in classes))
        fold = np.empty(len(y), dtype=np.int64)
        rng = np.random.default_rng(self.random_state)
        for c in classes:
            idx = np.flatnonzero(y == c)
            fold[rng.permutation(idx)] = np.arange(len(idx)) % max(k, 1)

        def task(f: int) -> Any:  # -1: beside; else fold f's held-out raw scores
            if f < 0:
                return beside()
            out = fold == f
            return raw_scores(Z[~out], list(y[~out]), Z[out])
        jobs = ([-1] if beside is not None else []) + (list(range(k)) if k >= 2 else [])
        got = list(ex.map(task, jobs) if ex is not None else map(task, jobs))
        other = got.pop(0) if beside is not None else None
        if k < 2:
            return None, other
        raw = np.empty((len(y), len(classes)))
        for f, scores in enumerate(got):
            raw[fold == f] = scores
        target = (y[:, None] == np.array(classes)[None, :]).astype(np.int64)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CalibrationWarning)
            a, b = fit_calibration(target.ravel(), raw.ravel())
        for w in caught:  # easy training data: nothing the user can act on at train time
            logger.info("calibration: %s", w.message)
        return (a, b), other

    def _calibrated(self, raw: np.ndarray) -> np.ndarray:
        """``a raw + b`` with ``(a, b) = calibration_``; ``raw`` itself without one."""
        if self.calibration_ is None:
            return raw
        a, b = self.calibration_
        return a * raw + b
