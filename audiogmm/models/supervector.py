"""GMM supervectors (Campbell, Sturim & Reynolds 2006): a clip's MAP-adapted UBM means as
offsets scaled by ``sqrt(w_k) / sigma_k`` (:func:`supervectors`; their inner product is the
linearised KL kernel), classified by multinomial logistic regression (:func:`logistic_regression`,
scikit-learn's objective) into log posteriors up to a constant; a class's verification score
is its posterior odds over its prior odds, an LLR."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..engine import LocalExecutor, one_blas_thread
from ..exceptions import ConvergenceWarning, ParameterError
from ..mixture import DiagGMM
from ..mixture.checks import is_int, is_real, need
from .classifier import raw_llr
from .ubm import UBM_COMPONENTS, EmbeddingClassifier, clip_stats

__all__ = ["GSVClassifier", "lbfgs", "logistic_regression", "row_space", "supervectors",
           "unit_rows"]

#: Iteration budget of each logistic regression.
_MAX_ITER = 1000
#: Its stopping rule: every gradient component of the (per-clip mean) objective below this.
#: scikit-learn stops at 1e-4, about 1% of the coefficients from its optimum on the dev
#: speakers and sounds; 1e-6 is within 0.02% of it, in 34-46 iterations (0.1 s).
_GTOL = 1e-6
#: ... or when a step lowers the loss by less than this, relative (scikit-learn's setting).
_FTOL = 64 * np.finfo(np.float64).eps
#: Curvature pairs :func:`lbfgs` keeps (scipy's L-BFGS-B default).
_MEMORY = 10
#: :func:`row_space` keeps directions with a singular value above this share of the largest
#: (float64 eigenvalues of the Gram matrix, their squares, resolve them to about 1e-5).
_RANK_TOL = 1e-5


def supervectors(clips: Sequence[np.ndarray], ubm: DiagGMM, *, relevance: float = 16.0,
                 executor: LocalExecutor | None = None) -> np.ndarray:  # fmt: skip
    """MAP-mean supervectors (n_clips, K * D), float64, of clips under a fitted UBM: row ``i``
    is ``sqrt(w_k) (mu'_ikd - mu_kd) / sigma_kd`` in (k, d) order, ``mu'_ik - mu_k = F_ik /
    (n_ik + relevance)`` (:func:`clip_stats`; 0 where ``n_ik = 0``); ``executor`` as there."""
    prior = ubm.params_
    scale = np.sqrt(prior.weights)[:, None] / np.sqrt(prior.variances)
    n, F = clip_stats(clips, ubm, executor=executor)
    r = float(relevance)
    if not r >= 0:
        raise ParameterError(f"relevance must be a number >= 0 (inf: the prior); got {relevance!r}")
    den = (n + r)[:, :, None]
    # a component without frames keeps the prior (offset 0), also when r = 0
    off = np.divide(F, den, out=np.zeros_like(F), where=den > 0)
    return (off * scale).reshape(len(F), F.shape[1] * F.shape[2])


def unit_rows(Z: np.ndarray) -> np.ndarray:
    """``Z`` (n, P) with each row divided by its Euclidean length (a zero row stays zero)."""
    norm = np.sqrt(np.einsum("ij,ij->i", Z, Z))[:, None]
    return np.divide(Z, norm, out=np.zeros_like(Z), where=norm > 0)


def lbfgs(loss_grad: Callable[[np.ndarray], tuple[float, np.ndarray]], x: np.ndarray, *,
          gtol: float, ftol: float = _FTOL, max_iter: int = _MAX_ITER,
          memory: int = _MEMORY) -> tuple[np.ndarray, int, bool]:  # fmt: skip
    """Minimise a smooth function by L-BFGS (Nocedal & Wright, Algorithm 7.4 and 7.5) from
    ``x`` (n,): the two-loop recursion over the last ``memory`` curvature pairs (a pair whose
    curvature is not positive is not kept), a backtracking line search to the Armijo
    condition from the unit step (the first step scaled to unit length). Stops when every
    gradient component is at most ``gtol``, or a step lowers the loss by at most ``ftol``
    relative (scipy's L-BFGS-B rules). Returns ``(x, n_iter, converged)``; a line search that
    cannot lower the loss stops with ``converged`` False.

    scipy's L-BFGS-B solves the same problem as well; importing ``scipy.optimize`` cost
    0.3 s in every process that fits a gsv model, and its bound handling ~1 ms an iteration
    at 22,000 unknowns (dev speakers at 8 kHz: 0.13-0.15 s a fit against 0.09-0.10 s here).
    """
    f, g = loss_grad(x)
    pairs: list[tuple[np.ndarray, np.ndarray, float]] = []  # (s, y, 1 / y.s), oldest first
    for it in range(max_iter):
        if np.max(np.abs(g), initial=0.0) <= gtol:
            return x, it, True
        d = -g
        alphas = []
        for s_, y_, rho in reversed(pairs):
            a = rho * float(s_ @ d)
            alphas.append(a)
            d = d - a * y_
        if pairs:
            s_, y_, rho = pairs[-1]
            d = d / (rho * float(y_ @ y_))  # H0 = s.y / y.y
        else:
            d = d / max(1.0, float(np.linalg.norm(g)))
        for (s_, y_, rho), a in zip(pairs, reversed(alphas)):
            d = d + (a - rho * float(y_ @ d)) * s_
        slope = float(g @ d)
        if not slope < 0:  # not a descent direction (rounding): steepest descent
            d, slope, pairs = -g, -float(g @ g), []
        t = 1.0
        while True:
            x_new = x + t * d
            f_new, g_new = loss_grad(x_new)
            if f_new <= f + 1e-4 * t * slope:
                break
            t *= 0.5
            if t < 1e-20:
                return x, it, False
        s_, y_ = x_new - x, g_new - g
        sy = float(s_ @ y_)
        if sy > 1e-10 * float(s_ @ s_):
            pairs.append((s_, y_, 1.0 / sy))
            del pairs[:-memory]
        small = f - f_new <= ftol * max(abs(f), abs(f_new), 1.0)
        x, f, g = x_new, f_new, g_new
        if small:
            return x, it + 1, True
    return x, max_iter, False


def logistic_regression(
    Z: np.ndarray, y: np.ndarray, n_classes: int, C: float, *, gtol: float = _GTOL,
    max_iter: int = _MAX_ITER,
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """L2-penalised multinomial logistic regression, scikit-learn's objective: minimises
    ``mean_i [logsumexp(z_i) - z_i,y_i] + |W|^2 / (2 C n)`` over ``z_i = W x_i + b`` (the
    intercepts unpenalised), by L-BFGS from zero (:func:`lbfgs`), as scikit-learn solves it.
    Importing scikit-learn costs 1.2 s, scipy's optimiser 0.3-0.5 s, a fit of 491 clips x 46
    classes 0.1 s.

    Parameters
    ----------
    Z : ndarray (n, P) float64
    y : ndarray (n,) int in [0, n_classes)
    n_classes : int >= 2
        Two classes are fitted as scikit-learn fits them: one decision function ``w x + b``
        (penalty ``|w|^2``), returned as the class scores ``(-(w x + b) / 2, (w x + b) / 2)``.
    C : float > 0
    gtol : float
        Stop when every gradient component is at most ``gtol`` in magnitude (or the loss
        stops moving in float64).

    Returns
    -------
    coef : ndarray (n_classes, P)
    intercept : ndarray (n_classes,)
    n_iter : int
    converged : bool

    Raises
    ------
    ParameterError
        ``Z`` not a finite 2-D array of at least one row, ``y`` not its rows' classes in ``range(n_classes)``,
        ``n_classes`` below 2, or ``C`` not a finite number > 0.
    """
    Z, y = np.asarray(Z, dtype=np.float64), np.asarray(y)
    if Z.ndim != 2 or Z.shape[0] < 1 or not np.isfinite(Z).all():
        raise ParameterError(f"Z must be a finite (n >= 1, P) array; got shape {Z.shape}")
    if not (is_int(n_classes) and n_classes >= 2 and is_real(C) and C > 0):
        raise ParameterError(f"n_classes must be an int >= 2 and C a finite number > 0; got "
                             f"{n_classes!r}, {C!r}")  # fmt: skip
    if y.shape != (Z.shape[0],) or y.dtype.kind not in "iu" or not (
            0 <= y.min() and y.max() < n_classes):  # fmt: skip
        raise ParameterError(f"y must hold one class in range({n_classes}) per row of Z")
    n, P = Z.shape
    free = 1 if n_classes == 2 else n_classes  # two classes: class 0's score fixed at 0
    onehot = np.zeros((n, n_classes))
    onehot[np.arange(n), y] = 1.0
    lam, size = 1.0 / (C * n), free * P

    def loss_grad(w: np.ndarray) -> tuple[float, np.ndarray]:
        W, b = w[:size].reshape(free, P), w[size:]
        S = Z @ W.T + b
        if free == 1:
            S = np.concatenate([np.zeros((n, 1)), S], axis=1)
        top = S.max(1, keepdims=True)
        lse = top + np.log(np.exp(S - top).sum(1, keepdims=True))
        f = float(np.sum(lse) - np.sum(S * onehot)) / n + 0.5 * lam * float(np.vdot(W, W))
        G = ((np.exp(S - lse) - onehot) / n)[:, n_classes - free:]
        return f, np.concatenate([(G.T @ Z + lam * W).ravel(), G.sum(0)])

    # small dense products: one BLAS thread is faster than a pool
    with one_blas_thread(), np.errstate(over="ignore", under="ignore"):
        w, n_iter, converged = lbfgs(loss_grad, np.zeros(size + free), gtol=gtol,
                                     max_iter=max_iter)  # fmt: skip
    W, b = w[:size].reshape(free, P), w[size:]
    if free == 1:
        W, b = np.concatenate([-W, W]) / 2, np.concatenate([-b, b]) / 2
    return W, b, n_iter, converged


def row_space(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of the rows of ``Z`` (n, P) in an orthonormal basis of their span:
    ``(Z @ B.T, B)``, B (r, P) with r <= n. An L2-penalised linear model of ``Z`` has its
    weights in that span (``W = W' B``), so it can be fitted on r instead of P unknowns.

    From the eigenvectors of the Gram matrix ``Z Z^T`` (one product: 5-10x faster than an
    SVD of Z at n = 344-491, P = 15,360). Directions whose singular value is below
    :data:`_RANK_TOL` times the largest are left out: the Gram matrix cannot resolve them,
    and a penalised weight along them is negligible.

    Returns
    -------
    coords : ndarray (n, r) float64
    basis : ndarray (r, P) float64
        Orthonormal rows (to the Gram matrix's float64 precision).
    """
    Z = np.asarray(Z, dtype=np.float64)
    with one_blas_thread():
        lam, U = np.linalg.eigh(Z @ Z.T)
        top = lam[-1] if lam.size else 0.0  # eigh sorts ascending
        keep = lam > (_RANK_TOL**2 * top if top > 0 else np.inf)
        root = np.sqrt(lam[keep])
        return U[:, keep] * root, (U[:, keep] / root).T @ Z


def _logistic(Z: np.ndarray, labels: Sequence[str],
              C: float) -> tuple[np.ndarray, np.ndarray, int, bool]:  # fmt: skip
    """:func:`logistic_regression` of ``Z`` on ``labels`` (classes sorted): ``(coef (M, P),
    intercept (M,), n_iter, converged)``; ConvergenceWarning when it did not converge."""
    names = sorted(set(labels))
    index = {name: i for i, name in enumerate(names)}
    y = np.array([index[lab] for lab in labels], dtype=np.int64)
    coef, icpt, n_iter, converged = logistic_regression(Z, y, len(names), C)
    if not converged:
        warnings.warn(f"logistic regression: not converged in {n_iter} iterations",
                      ConvergenceWarning, stacklevel=3)  # fmt: skip
    return coef, icpt, n_iter, converged


class GSVClassifier(EmbeddingClassifier):
    """GMM supervectors of one UBM, classified by multinomial logistic regression.

    Parameters
    ----------
    n_components : int > 0, default=64
        UBM components K (:data:`~audiogmm.models.ubm.UBM_COMPONENTS`).
    relevance : float >= 0, default=4.0
        MAP relevance of each clip's means (:func:`supervectors`); below map's 16, as a clip
        has far fewer frames than a class (dev hard speakers: 4 beat 16 by 0.3-0.9 points).
    C : float > 0, default=10.0
        Inverse L2 strength of the logistic regression, on supervectors of RMS length 1.
    length_norm : bool, default=True
        Divide each clip's supervector by its length (:func:`unit_rows`) before the back end.
        The UBM has seen the training clips, so their MAP offsets are shorter than those of
        unseen clips (dev realsounds: RMS 0.57 against 0.85); unit length removes that
        mismatch and each clip's duration from the scores. Over the 15 dev splits of
        speakers and sounds it gained 12-26 clips in training-side CV (1.8-3.0 SE) and
        12-19 on the test sides (README, "GMM supervectors"). Files saved before it existed
        load with False, as they were fitted.
    subsample, priors, n_jobs, random_state, **gmm_params
        As for :class:`UBMClassifier` (priors on top of the training proportions).

    Attributes
    ----------
    labels_, ubm_, calibration_
        As for :class:`UBMClassifier` and :class:`~audiogmm.models.ubm.EmbeddingClassifier`.
    coef_ : ndarray of shape (n_labels, K * D)
    intercept_ : ndarray of shape (n_labels,)
        Class score of a supervector ``s``: ``coef_ @ s + intercept_``.
    """

    own_params = ("relevance", "C", "length_norm", "subsample")

    def __init__(self, n_components: int = UBM_COMPONENTS, *, relevance: float = 4.0,
                 C: float = 10.0, length_norm: bool = True, subsample: int = 4,
                 priors: dict[str, float] | None = None,
                 n_jobs: int | None = None, random_state: int | None = 0,
                 **gmm_params: Any) -> None:  # fmt: skip
        self._keep(locals())

    def _check_own(self) -> None:
        need(self, is_real(self.C) and self.C > 0, "C", "a finite number > 0")
        r = self.relevance
        need(self, is_real(r, finite=False) and r >= 0, "relevance", "a number >= 0")
        need(self, isinstance(self.length_norm, (bool, np.bool_)), "length_norm", "True or False")

    def _embed(self, clips: Sequence[np.ndarray], ex: LocalExecutor | None) -> np.ndarray:
        sv = supervectors(clips, self.ubm_, relevance=self.relevance, executor=ex)
        return unit_rows(sv) if self.length_norm else sv

    def _fit_back_end(self, sv: np.ndarray, labels: list[str], calibrate: bool,
                      ex: LocalExecutor | None = None) -> tuple[int, bool]:  # fmt: skip
        """The logistic regression and its calibration, their fits side by side on ``ex``'s
        threads; (n_iter, converged)."""
        if len(self.labels_) < 2:
            self.coef_, self.intercept_ = np.zeros((1, sv.shape[1])), np.zeros(1)
            return 0, True
        # one global scale (the RMS length of the training supervectors) makes C mean
        # the same for any K and D; it is folded into the stored coefficients
        scale = float(np.sqrt(np.mean(np.sum(sv * sv, 1)))) or 1.0
        Z, basis = sv / scale, None
        if Z.shape[0] < Z.shape[1]:
            Z, basis = row_space(Z)
        C = float(self.C)

        def raw(Ztr, ytr, Zte):
            c, i, _, _ = _logistic(Ztr, ytr, C)
            return raw_llr(Zte @ c.T + i)
        if calibrate:
            self.calibration_, fitted = self._held_out_calibration(
                Z, labels, raw, ex, beside=lambda: _logistic(Z, labels, C))
        else:
            fitted = _logistic(Z, labels, C)
        coef, icpt, n_iter, converged = fitted
        coef = (coef if basis is None else coef @ basis) / scale
        self.coef_, self.intercept_ = np.asarray(coef, np.float64), np.asarray(icpt, np.float64)
        return n_iter, converged

    def _scores(self, sv: np.ndarray) -> np.ndarray:
        return sv @ self.coef_.T + self.intercept_

    def verification_scores(self, S: np.ndarray, n_frames: np.ndarray) -> np.ndarray:
        """Each class's LLR against all the others (n_clips, n_labels), nats (0 with one class):
        the :func:`raw_llr` of ``S``, calibrated by :attr:`calibration_` when there is one."""
        return np.zeros_like(S) if S.shape[1] < 2 else self._calibrated(raw_llr(S))
