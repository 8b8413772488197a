"""One diagonal GMM per class, trained stacked and scored in one batched pass; a clip goes to the
class with the largest total log-likelihood. No audio here: the feature config is the file's."""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..engine import LocalExecutor, resolve
from ..exceptions import OversizedModelWarning, ParameterError
from ..mixture import DiagGMM, log_softmax
from ..mixture.checks import check_enough_frames, check_params, is_int, is_real
from ..mixture.estep import stacked_log_likelihood
from ..mixture.fit import fit_mixtures
from ..mixture.kernels import row_max_and_sum
from ..mixture.sources import ArraySource, check_frames
from ..progress import Progress, reporter

__all__ = ["UNKNOWN", "GMMClassifier", "N_COMPONENTS", "REPORT_KEYS", "class_llr", "class_seeds",
           "decide", "log_odds", "raw_llr"]

logger = logging.getLogger(__name__)

#: Components per class when none is given (the DCASE 2016 baseline uses 16).
N_COMPONENTS = 16
#: A class's mixture is called over-sized below this many frames per component, or
#: when EM had to re-seed at least half of its components (components keep emptying).
MIN_FRAMES_PER_COMPONENT = 10


def oversized_reason(
    report: Mapping[str, Any], n_components: int, *,
    advice: str = "lower -k / n_components, or let --components auto choose",
) -> str | None:  # fmt: skip
    """Why ``n_components`` are too many for a class's ``fit_report_`` entry ``report``
    (``n_frames``, ``n_reseeded``), with ``advice``; or None."""
    n, reseeded = int(report["n_frames"]), int(report.get("n_reseeded", 0))
    per = n / max(1, n_components)
    if per < MIN_FRAMES_PER_COMPONENT or reseeded >= max(3, (n_components + 1) // 2):
        return (
            f"K={n_components} components for {n} frames ({per:.1f} frames per component, "
            f"{reseeded} re-seeds): the model is over-sized for this data; {advice}"
        )
    return None


#: What a model keeps of a mixture's ``fit_report_``: no wall time, so that a model file is
#: the same bytes wherever and however it was fitted.
REPORT_KEYS = ("n_iter", "converged", "final_mean_loglik", "n_reseeded", "compute_dtype",
               "notes", "history")  # fmt: skip


def check_clips(clips: Sequence[np.ndarray], labels: Sequence[str],
                n_dims: int | None = None) -> tuple[list[np.ndarray], list[str]]:  # fmt: skip
    """Training clips checked as by :func:`check_each` (empty ones allowed), labels as str."""
    if len(clips) != len(labels):
        raise ParameterError(f"{len(clips)} clips but {len(labels)} labels")
    if not clips:
        raise ParameterError("no training clips")
    labels = [str(y) for y in labels]
    return check_each(clips, n_dims, min_frames=0, labels=labels), labels


def check_each(clips: Sequence[np.ndarray], n_dims: int | None, *, min_frames: int = 1,
               labels: Sequence[str] | None = None) -> list[np.ndarray]:  # fmt: skip
    """Each clip ``check_frames``-checked (finite, of ``n_dims`` or the first clip's width), the
    ParameterError naming the clip (and its label)."""
    checked = []
    for i, X in enumerate(clips):
        name = f"clip {i}" if labels is None else f"clip {i} (label {labels[i]!r})"
        checked.append(check_frames(X, n_dims=n_dims, name=name, min_frames=min_frames))
        n_dims = checked[-1].shape[1]
    return checked


def by_label(clips: Sequence[np.ndarray], labels: Sequence[str],
             classes: Sequence[str]) -> dict[str, np.ndarray]:  # fmt: skip
    """The frames of each of ``classes``' clips, concatenated in clip order."""
    return {y: np.concatenate([X for X, lab in zip(clips, labels) if lab == y]) for y in classes}


#: Label a rejected clip gets (open-set models: ``predict(reject=...)``).
UNKNOWN = "unknown"


def decide(clf: Any, S: np.ndarray, n_frames: np.ndarray | None,
           threshold: float | None) -> np.ndarray:  # fmt: skip
    """Each clip's most likely class (n_clips,), object, from ``clf``'s ``score_matrix`` ``S``
    (n_clips, n_labels) of clips of ``n_frames`` frames: the argmax of the class posteriors
    (the first on ties), :data:`UNKNOWN` where ``rejection_scores`` (of an open-set model) is
    below ``threshold``. The one decision rule: ``predict`` and the pipeline's results."""
    pred = np.array(clf.labels_, dtype=object)[clf.log_proba_from_scores(S).argmax(1)]
    if threshold is not None:
        pred[clf.rejection_scores(S, n_frames) < threshold] = UNKNOWN
    return pred


def log_odds(log_post: np.ndarray) -> np.ndarray:
    """Log odds ``log p / (1 - p)`` of log probabilities ``log_post`` (<= 0), precise at
    both ends; ``+inf`` where ``p == 1``."""
    lp = np.minimum(np.asarray(log_post, dtype=np.float64), 0.0)
    with np.errstate(divide="ignore"):  # p == 1: log(1 - p) = -inf, odds +inf
        # log(1 - e^lp): expm1 near p = 1, log1p near p = 0 (Maechler's log1mexp)
        l1m = np.where(lp > -math.log(2.0), np.log(-np.expm1(lp)), np.log1p(-np.exp(lp)))
    return lp - l1m


def raw_llr(S: np.ndarray) -> np.ndarray:
    """Posterior log odds of each class over its prior odds 1 : (M - 1), clipped finite, from
    class scores ``S`` (n_clips, M >= 2) that are log posteriors up to a per-clip constant.
    Each clip's best class takes its odds from the others, ``-logsumexp_j (S_j - S_c)``:
    through its posterior (near 1) they would lose all precision past ~37 nats."""
    S = np.asarray(S, dtype=np.float64)
    out = log_odds(log_softmax(S))  # the other classes: posteriors <= 1/2, precise
    r = np.arange(len(S))
    c = S.argmax(1) if S.size else np.zeros(0, dtype=np.int64)
    with np.errstate(invalid="ignore"):  # non-finite scores: log_softmax's answer stands
        D = S - S[r, c][:, None]
        D[r, c] = -np.inf  # the others only
        m, s = row_max_and_sum(D)
        top = -(m[:, 0] + np.log(s[:, 0]))
    ok = np.isfinite(S[r, c]) & ~np.isnan(top)
    out[r[ok], c[ok]] = top[ok]
    return np.clip(out + math.log(S.shape[1] - 1), -1e6, 1e6)


def class_llr(S: np.ndarray, n_frames: np.ndarray) -> np.ndarray:
    """Each class's LLR against the other classes (n_clips, M), nats: the :func:`raw_llr` of
    total log-likelihoods ``S`` (n_clips, M) per frame of clips of ``n_frames`` (n_clips,)
    frames (0 with one class). An ml model's verification score (its impostors are the
    other classes), before any calibration."""
    S = np.asarray(S, dtype=np.float64)
    if S.shape[1] < 2:
        return np.zeros_like(S)
    return raw_llr(S / np.maximum(np.asarray(n_frames, dtype=np.float64), 1.0)[:, None])


class ModelFile:
    """``save`` and ``load`` of a model, through :mod:`audiogmm.io` (one checksummed ``.npz``)."""

    def save(self, path: str | os.PathLike, *, extra: dict[str, Any] | None = None) -> None:
        """Write to one checksummed ``.npz`` file; see :func:`audiogmm.io.save`."""
        from ..io import save
        save(self, path, extra=extra)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Any:
        """Read a file of this class written by :meth:`save`; see :func:`audiogmm.io.load`."""
        from ..io import load
        return load(path, cls)


def class_seeds(random_state: int | None, n_labels: int) -> list[int]:
    """The mixture seed of each of ``n_labels`` sorted labels of a :class:`GMMClassifier`:
    a :class:`numpy.random.SeedSequence` child of ``random_state`` by the label's index."""
    return [int(c.generate_state(1)[0])
            for c in np.random.SeedSequence(random_state).spawn(n_labels)]  # fmt: skip


class GMMClassifier(ModelFile):
    """Per-class diagonal GMMs with maximum-total-log-likelihood decisions.

    Parameters
    ----------
    n_components : int > 0, default=16
        Components per class (:data:`N_COMPONENTS`).
    priors : dict of str to float or None, default=None
        Class priors for the posteriors (default equal).
    n_jobs : int or None, default=None
        Threads when ``fit`` gets no executor (None: all cores); results do not depend on it.
    random_state : int or None, default=0
        Seed; each class gets an independent stream derived from it and its rank.
    **gmm_params
        Other :class:`~audiogmm.mixture.DiagGMM` parameters of every class (of the UBM in the
        other classifiers, which share these four).

    Attributes
    ----------
    labels_ : list of str
        Class names, sorted.
    models_ : dict of str to DiagGMM
    weights_, means_, variances_ : ndarray
        The class mixtures stacked: (n_labels, K), (n_labels, K, D), (n_labels, K, D).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> clips = [rng.normal(m, 1, (200, 2)) for m in (0, 0, 5, 5)]
    >>> clf = GMMClassifier(2).fit(clips, ["a", "a", "b", "b"])
    >>> clf.predict([rng.normal(5, 1, (50, 2))]).tolist()
    ['b']
    """

    #: A subclass's own constructor parameters (its repr; the gsv and ivector file blocks).
    own_params: tuple[str, ...] = ()
    #: The attribute whose presence means fitted (or loaded).
    fitted_by = "labels_"
    #: ``reject="auto"``'s threshold on :meth:`rejection_scores` (None: none; an ml model's
    #: comes from its file's calibration, a map model's from training).
    threshold_: float | None = None
    #: Whether :meth:`score_matrix` sums per-frame scores over a clip's frames (a late fusion
    #: divides them by the clip's frames) or gives one score per clip (gsv, ivector).
    scores_per_frame = True

    def __init__(self, n_components: int = N_COMPONENTS, *, priors: dict[str, float] | None = None,
                 n_jobs: int | None = None, random_state: int | None = 0,
                 **gmm_params: Any) -> None:  # fmt: skip
        self._keep(locals())

    def _keep(self, args: dict[str, Any]) -> None:
        """Keep a constructor's arguments (its ``locals()``), refusing unknown DiagGMM ones."""
        gmm_params = args["gmm_params"]
        unknown = set(gmm_params) - set(DiagGMM().get_params())
        if unknown:
            raise ParameterError(f"unknown DiagGMM parameter(s) {sorted(unknown)}")
        for k in ("n_components", "priors", "n_jobs", "random_state", *self.own_params):
            setattr(self, k, args[k])
        self.gmm_params = gmm_params

    def __repr__(self) -> str:
        own = "".join(f", {k}={getattr(self, k)!r}" for k in (*self.own_params, "random_state"))
        extra = "".join(f", {k}={v!r}" for k, v in sorted(self.gmm_params.items()))
        return f"{type(self).__name__}({self.n_components}{own}{extra})"

    def _set_labels(self, labels: list[str]) -> None:
        self.labels_ = sorted(set(labels))
        if len(self.labels_) < 2:
            logger.warning("only one class (%r): every clip will be given that label", labels[0])

    def _class_model(self, seed: int | None) -> DiagGMM:
        return DiagGMM(self.n_components, random_state=seed, n_jobs=self.n_jobs, **self.gmm_params)

    def fit(self, clips: Sequence[np.ndarray], labels: Sequence[str], *, progress: Progress = None,
            executor: LocalExecutor | None = None,
            seeds: Mapping[str, int] | None = None) -> GMMClassifier:  # fmt: skip
        """Train one DiagGMM per label on its clips' pooled frames (each (n_frames_i, n_dims));
        self. ``progress(n_done, n_total, label)`` after each class; ``executor`` runs the
        E-steps (default: ``n_jobs`` threads); ``seeds``: each label's mixture seed (default
        :func:`class_seeds` by the label's index here; a larger classifier's seeds fit some of
        its classes alone, bit for bit). ParameterError: mismatched lengths or widths,
        non-finite frames, bad mixture parameters, a class with fewer frames than K."""
        check_params(self._class_model(None))
        clips, labels = check_clips(clips, labels)
        self._set_labels(labels)
        data = by_label(clips, labels, self.labels_)
        for y, X in data.items():
            check_enough_frames(X.shape[0], self.n_components, f"class {y!r}")
        if seeds is None:
            seeds = dict(zip(self.labels_, class_seeds(self.random_state, len(self.labels_))))
        if not isinstance(seeds, Mapping):
            raise ParameterError(f"seeds must map labels to ints; got {type(seeds).__name__}")
        bad = [y for y in self.labels_ if not is_int(seeds.get(y)) or not 0 <= seeds[y] < 2**32]
        if bad:
            raise ParameterError(f"seeds must give every label an int in [0, 2**32); not for "
                                 f"{bad[:5]}")  # fmt: skip
        models = [self._class_model(int(seeds[y])) for y in self.labels_]
        with (
            reporter(progress, len(self.labels_), "Training class GMMs") as tick,
            resolve(executor, self.n_jobs) as ex,
        ):
            fit_mixtures(models, [ArraySource(data[y]) for y in self.labels_], executor=ex)
            for y, gmm in zip(self.labels_, models):
                logger.info("class %r: %d frames, %d iterations, mean log-likelihood %.4f",
                            y, data[y].shape[0], gmm.n_iter_, gmm.history_[-1],)  # fmt: skip
                tick()
        self.set_models(dict(zip(self.labels_, models)))
        self.fit_report_ = {
            y: {"n_clips": labels.count(y), "n_frames": int(data[y].shape[0]),
                **{k: m.fit_report_[k] for k in REPORT_KEYS}}  # fmt: skip
            for y, m in self.models_.items()
        }
        for y, r in self.fit_report_.items():
            if why := oversized_reason(r, self.n_components):
                warnings.warn(f"class {y!r}: {why}", OversizedModelWarning, stacklevel=2)
        return self

    def set_models(self, models: Mapping[str, DiagGMM]) -> GMMClassifier:
        """Adopt fitted mixtures, one per label, of one D (stacked for scoring); self. K may
        differ: the stack has the largest, a smaller mixture's unused slots weigh 0."""
        self.labels_ = sorted(models)
        self.models_ = {y: models[y] for y in self.labels_}
        ms = [self.models_[y] for y in self.labels_]
        K = max(len(m.weights_) for m in ms)
        for name, fill in (("weights_", 0.0), ("means_", 0.0), ("variances_", 1.0)):
            parts = [getattr(m, name) for m in ms]
            out = np.full((len(ms), K, *parts[0].shape[1:]), fill)
            for i, p in enumerate(parts):
                out[i, : len(p)] = p
            setattr(self, name, out)
        self.var_floors_ = np.stack([m.var_floor_ for m in ms])
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, self.fitted_by):
            raise ParameterError(
                f"this {type(self).__name__} is not fitted yet; call fit() or load()"
            )

    @property
    def n_dims(self) -> int:
        """Feature dimension D of a fitted classifier (its UBM's when it has one)."""
        self._check_fitted()
        return self.ubm_.n_dims if hasattr(self, "ubm_") else self.means_.shape[2]

    def score_matrix(self, clips: Sequence[np.ndarray], *,
                     executor: LocalExecutor | None = None) -> np.ndarray:  # fmt: skip
        """``sum_t log p(x_t | class)`` (n_clips, n_labels), nats, of ``clips`` each (n_frames_i
        >= 1, n_dims), in one batched pass (chunks run by ``executor``, default ``n_jobs``)."""
        checked = check_each(clips, self.n_dims)
        if not checked:
            return np.zeros((0, len(self.labels_)))
        dtype = np.float32 if all(X.dtype == np.float32 for X in checked) else np.float64
        allX = np.concatenate([X.astype(dtype, copy=False) for X in checked], axis=0)
        lengths = np.array([X.shape[0] for X in checked], dtype=np.int64)
        with resolve(executor, self.n_jobs) as ex:
            frame_scores = self._frame_scores(allX, ex)
        return np.add.reduceat(frame_scores, np.cumsum(lengths) - lengths, axis=0)

    def _frame_scores(self, X: np.ndarray, ex: LocalExecutor) -> np.ndarray:
        """Each frame's score under each class, (n_frames, n_labels), summed per clip."""
        return stacked_log_likelihood(X, self.weights_, self.means_, self.variances_, executor=ex)

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
        """Class log posteriors (n_clips, n_labels) from :meth:`score_matrix` and the priors."""
        return log_softmax(np.asarray(scores, dtype=np.float64) + self._log_priors())

    def verification_scores(self, S: np.ndarray, n_frames: np.ndarray) -> np.ndarray:
        """Each class's score for verification (n_clips, n_labels), nats, from a
        :meth:`score_matrix` ``S`` of clips of ``n_frames`` frames: here :func:`class_llr`.
        Uncalibrated: ``train --calibrate`` (and ``auto``) store a calibration that ``verify``
        applies."""
        return class_llr(S, n_frames)

    def score_samples(self, clips: Sequence[np.ndarray], *,
                      executor: LocalExecutor | None = None) -> np.ndarray:  # fmt: skip
        """:meth:`verification_scores` of ``clips``, (n_clips, n_labels)."""
        S = self.score_matrix(clips, executor=executor)
        return self.verification_scores(S, np.array([len(X) for X in clips]))

    def predict_log_proba(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Log posterior of each class, (n_clips, n_labels)."""
        return self.log_proba_from_scores(self.score_matrix(clips))

    def predict_proba(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Posterior class probabilities, shape (n_clips, n_labels)."""
        return np.exp(self.predict_log_proba(clips))

    def predict(self, clips: Sequence[np.ndarray], *,
                reject: str | float | None = None) -> np.ndarray:  # fmt: skip
        """Most likely class (max posterior, :func:`decide`) of each clip (n_clips,), object;
        :data:`UNKNOWN` where its :meth:`rejection_scores` is below the threshold ``reject``
        means (:meth:`resolve_threshold`)."""
        thr = self.resolve_threshold(reject)
        return decide(self, self.score_matrix(clips), np.array([len(X) for X in clips]), thr)

    def resolve_threshold(self, reject: str | float | None) -> float | None:
        """The threshold that ``reject`` means: None, ``auto_threshold()`` for "auto", or the
        finite number given (ParameterError otherwise)."""
        if reject is None or is_real(reject):
            return None if reject is None else float(reject)
        if isinstance(reject, str) and reject == "auto":
            return float(self.auto_threshold())
        raise ParameterError(f"reject must be None, 'auto' or a finite number; got {reject!r}")

    def auto_threshold(self) -> float:
        """:attr:`threshold_`: the raw :func:`class_llr` at which the calibrated LLR reaches
        the Bayes threshold of the calibration's prior. ``load_model`` sets it from the file's
        ``calibration`` block (``train --calibrate``, ``--preset auto``)."""
        if self.threshold_ is None:
            raise ParameterError("reject='auto' needs a calibrated ml model (`audiogmm train "
                                 "--calibrate` or `--preset auto`): give a number (the score "
                                 "of the best class against the others, nats per frame)")
        return self.threshold_

    def rejection_scores(self, S: np.ndarray, n_frames: np.ndarray) -> np.ndarray:
        """The verification score of each clip's best class, (n_clips,), from a
        :meth:`score_matrix` ``S`` of clips of ``n_frames`` frames."""
        best = self.log_proba_from_scores(S).argmax(1)
        return self.verification_scores(S, n_frames)[np.arange(len(best)), best]
