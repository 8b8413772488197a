"""Checks at the mixtures' public boundary (parameters, weights, loaded arrays) and the one
number vocabulary (:func:`is_int`, :func:`is_real`, :func:`need`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..exceptions import ModelFileError, ParameterError
from .estep import gemm_weights
from .stats import Params

__all__ = ["check_enough_frames", "check_params", "check_sample_weight", "is_int", "is_real",
           "need", "user_init", "validate_param_arrays"]  # fmt: skip

#: Bounds of ``var_floor_abs``: its inverse (a precision) and square stay far from overflow.
MIN_VAR_FLOOR_ABS = 1e-150
MAX_VAR_FLOOR_ABS = 1e150


def is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def is_real(v: Any, finite: bool = True) -> bool:
    """A real number (not a bool); finite unless ``finite=False``."""
    ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
    return ok and (not finite or math.isfinite(v))


def need(obj: Any, cond: bool, name: str, what: str) -> None:
    """ParameterError ``"<name> must be <what>; got <value>"`` unless ``cond``."""
    if not cond:
        raise ParameterError(f"{name} must be {what}; got {getattr(obj, name)!r}")


def check_params(o: Any) -> None:
    """Validate a DiagGMM's constructor parameters (the one place they are checked)."""
    for name, lo in (("n_components", 1), ("max_iter", 0), ("n_init", 1),
                     ("init_max_samples", 1), ("split_iter", 0)):  # fmt: skip
        need(o, is_int(getattr(o, name)) and getattr(o, name) >= lo, name, f"an int >= {lo}")
    for name in ("tol", "var_floor", "min_count"):
        need(o, is_real(getattr(o, name)) and getattr(o, name) >= 0, name, "a finite number >= 0")
    lo, hi = MIN_VAR_FLOOR_ABS, MAX_VAR_FLOOR_ABS
    need(o, is_real(o.var_floor_abs) and lo <= o.var_floor_abs <= hi, "var_floor_abs",
         f"a number in [{lo:g}, {hi:g}] (1/var must stay finite)")  # fmt: skip
    need(o, is_real(o.min_weight) and 0 <= o.min_weight < 1.0 / o.n_components, "min_weight",
         "in [0, 1/n_components)")  # fmt: skip
    need(o, o.init in ("kmeans++", "split"), "init", "'kmeans++' or 'split'")
    for name in ("n_jobs", "chunk_size"):
        v = getattr(o, name)
        need(o, v is None or (is_int(v) and v > 0), name, "None or an int > 0")


def check_enough_frames(n_frames: int, n_components: int, what: str) -> None:
    """ParameterError when ``what`` has fewer frames than components."""
    if n_frames < n_components:
        raise ParameterError(f"n_components={n_components} but {what} has {n_frames} frames; "
                             "use fewer components or more data")  # fmt: skip


def check_sample_weight(sample_weight: Any, n: int, name: str = "sample_weight",
                        per: str = "frame") -> np.ndarray | None:  # fmt: skip
    """Weights, one ``per`` frame (or clip), as float64 (n,), or None; ParameterError naming
    ``name`` unless numeric, finite, >= 0, of that shape, with a finite sum > 0."""
    if sample_weight is None:
        return None
    sw = _float_array(sample_weight, name)
    if sw.shape != (n,):
        raise ParameterError(f"{name} must have shape ({n},) (one per {per}); got {sw.shape}")
    if not np.all(np.isfinite(sw)) or np.any(sw < 0):
        raise ParameterError(f"{name} must be finite and >= 0")
    with np.errstate(over="ignore"):
        total = float(sw.sum())
    if not 0 < total < np.inf:
        raise ParameterError(f"{name} must sum to a finite number > 0; got sum {total:g} (all "
                             "zero: nothing to fit; overflow: rescale the weights)")  # fmt: skip
    return sw


def _float_array(value: Any, name: str) -> np.ndarray:
    try:
        return np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be an array of numbers; got {value!r:.80}") from None


def user_init(gmm: Any, Xs: np.ndarray) -> Params:
    """Parameters from ``weights_init``/``means_init``/``variances_init`` (validated);
    ``Xs`` (n, n_dims): the subsample, whose variance is the default ``variances_init``."""
    K, D = gmm.n_components, Xs.shape[1]
    m = _float_array(gmm.means_init, "means_init")
    w = gmm.weights_init
    w = np.full(K, 1.0 / K) if w is None else _float_array(w, "weights_init")
    if gmm.variances_init is None:
        v = np.tile(np.maximum(Xs.var(0), gmm.var_floor_), (K, 1))
    else:
        v = _float_array(gmm.variances_init, "variances_init")
    if m.shape != (K, D) or v.shape != (K, D) or w.shape != (K,):
        raise ParameterError(f"means_init/variances_init must have shape ({K}, {D}) and "
                             f"weights_init ({K},); got {m.shape}, {v.shape}, {w.shape}")
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(v)) and np.all(v > 0)):
        raise ParameterError("means_init and variances_init must be finite with variances > 0")
    with np.errstate(over="ignore"):
        total = w.sum()
    if not (np.all(np.isfinite(w)) and np.all(w >= 0) and 0 < total < np.inf):
        raise ParameterError("weights_init must be finite, >= 0, not all zero, with a finite sum")
    p = Params(w / total, m, v)
    with np.errstate(all="ignore"):
        W = gemm_weights(p.weights, m, v, p.weights @ m, np.float64)
    if not np.isfinite(W[:-1]).all() or np.isnan(W[-1]).any() or np.all(W[-1] == -np.inf):
        raise ParameterError("means_init/variances_init are too extreme to evaluate in float64 "
                             "(1/variance or (mean - centre)**2 / variance overflows)")  # fmt: skip
    return p


def validate_param_arrays(name: str, w, m, v) -> None:
    """ModelFileError naming ``name`` unless loaded parameters (one mixture or a stack) are
    present, consistent, float64, finite, with variances > 0 and weights summing to 1."""
    if w is None or m is None or v is None:
        raise ModelFileError(f"{name}: missing weights, means or variances")
    if m.ndim < 2 or 0 in m.shape or v.shape != m.shape or w.shape != m.shape[:-1]:
        raise ModelFileError(f"{name}: inconsistent shapes weights {w.shape}, means {m.shape}, "
                             f"variances {v.shape}")  # fmt: skip
    for label, a in (("weights", w), ("means", m), ("variances", v)):
        if a.dtype != np.float64:
            raise ModelFileError(f"{name}: {label} have dtype {a.dtype}, expected float64")
        if not np.all(np.isfinite(a)):
            raise ModelFileError(f"{name}: {label} contain NaN or inf")
    if np.any(v <= 0):
        raise ModelFileError(f"{name}: variances must be > 0")
    with np.errstate(over="ignore", divide="ignore"):
        # the log-density's constant terms: finite, or every score would be inf or NaN
        const = np.sum(np.log(v), -1) + np.sum(m * m / v, -1)
        finite = np.all(np.isfinite(1.0 / v)) and np.all(np.isfinite(const))
    if not finite:
        raise ModelFileError(f"{name}: means and variances give a non-finite log-density "
                             "(variances too small for the means)")  # fmt: skip
    if np.any(w < 0) or not np.allclose(w.sum(-1), 1.0, rtol=0, atol=1e-6):
        raise ModelFileError(f"{name}: weights must be >= 0 and sum to 1; sums {w.sum(-1)}")
