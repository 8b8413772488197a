"""What init, E- and M-step pass: :class:`Params`, and the sufficient statistics (float64):

``n`` (K,) ``sum_t w_t gamma_tk``; ``F``, ``S`` (K, D) ``sum_t w_t gamma_tk (x_t - c)`` and
``(x_t - c)**2``; ``loglik`` ``sum_t w_t log p(x_t)`` (nats); ``n_frames`` ``sum_t w_t``.
The moments are about a shift ``c`` (D,) near the data, so ``S/n - (F/n)**2`` does not
cancel under a large offset. ``a + b`` merges two shards (re-centring one if needed):
chunked, out-of-core, parallel and distributed training are built on it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..exceptions import ModelFileError, ParameterError

__all__ = ["Params", "Stats", "moments", "recentred"]

_ARRAY_KEYS = ("n", "F", "S", "shift", "scalars")


@dataclass
class Params:
    """Weights ([C,] K), summing to 1, means and variances ([C,] K, n_dims), > 0, float64, of
    one diagonal-covariance mixture or of C stacked ones."""

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray

    @property
    def n_components(self) -> int:
        return self.means.shape[-2]

    @property
    def n_dims(self) -> int:
        return self.means.shape[-1]

    def __iter__(self):
        return iter((self.weights, self.means, self.variances))

    def copy(self) -> Params:
        return Params(*(a.copy() for a in self))

    @classmethod
    def stack(cls, members: list[Params]) -> Params:
        """C mixtures of one K and D as one value with a leading axis C."""
        return cls(*(np.stack(a) for a in zip(*members)))

    def member(self, c: int) -> Params:
        """Mixture ``c`` of a stack (copies)."""
        return Params(*(a[c].copy() for a in self))


def moments(n: np.ndarray, F: np.ndarray, S: np.ndarray, shift: np.ndarray) -> tuple:
    """``mean = c + F/n`` and ``var = S/n - (F/n)**2`` (clipped at 0), each (..., K, D), NaN
    where ``n = 0``; ``n`` (..., K), ``F``/``S`` (..., K, D), ``shift`` ``c`` (..., D)."""
    with np.errstate(divide="ignore", invalid="ignore"):  # n = 0 gives NaN, by contract
        dm = F / n[..., None]
        var = np.maximum(S / n[..., None] - dm**2, 0.0)
    return shift[..., None, :] + dm, var


def recentred(n: np.ndarray, F: np.ndarray, S: np.ndarray, d: np.ndarray) -> tuple:
    """``F + n d`` and ``S + 2 d F + n d**2``: the moments about a shift moved by ``-d``
    (``d`` = old shift - new shift, broadcasting against ``F`` (..., K, D))."""
    nd = n[..., None] * d
    return F + nd, S + 2.0 * d * F + nd * d


@dataclass(eq=False)
class Stats:
    """Mergeable statistics (the module's fields) of one mixture, or of C stacked ones with
    a leading axis C on each."""

    n: np.ndarray
    F: np.ndarray
    S: np.ndarray
    loglik: float
    n_frames: float
    shift: np.ndarray

    @classmethod
    def zeros(cls, n_components: int, n_dims: int, *, shift: np.ndarray | None = None) -> Stats:
        """Empty statistics (the neutral element of ``+``)."""
        shift = np.zeros(n_dims) if shift is None else np.array(shift, dtype=np.float64)
        F = np.zeros((n_components, n_dims))
        return cls(np.zeros(n_components), F, F.copy(), 0.0, 0.0, shift)

    @property
    def n_components(self) -> int:
        return self.n.shape[-1]

    @property
    def n_dims(self) -> int:
        return self.F.shape[-1]

    @property
    def mean_loglik(self) -> float | np.ndarray:
        """Mean log-likelihood per frame (nats), ``loglik / n_frames`` (per member of a stack)."""
        if np.ndim(self.n_frames) or self.n_frames > 0:
            return self.loglik / self.n_frames
        return float("nan")

    def member(self, c: int) -> Stats:
        """Mixture ``c`` of a stack (copies)."""
        return Stats(self.n[c].copy(), self.F[c].copy(), self.S[c].copy(), float(self.loglik[c]),
                     float(self.n_frames[c]), self.shift[c].copy())  # fmt: skip

    @classmethod
    def of_frames(cls, X: np.ndarray, sample_weight: np.ndarray | None = None, *,
                  shift: np.ndarray, block: int = 65536) -> Stats:  # fmt: skip
        """Plain moments of frames ``X`` (n_frames, n_dims) about ``shift`` as one-component
        statistics, in float64 ``block`` frames at a time."""
        shift = np.asarray(shift, dtype=np.float64)
        D = shift.shape[0]
        n, F, S = 0.0, np.zeros(D), np.zeros(D)
        for start in range(0, X.shape[0], block):
            xc = np.asarray(X[start : start + block], dtype=np.float64) - shift
            if sample_weight is None:
                n += xc.shape[0]
                F += xc.sum(0)
                S += np.einsum("ij,ij->j", xc, xc)
            else:
                w = np.asarray(sample_weight[start : start + block], dtype=np.float64)
                n += w.sum()
                F += w @ xc
                S += w @ (xc * xc)
        return cls(np.array([n]), F[None], S[None], 0.0, float(n), shift.copy())

    def mean_var(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-component mean and variance, each (K, D) (see :func:`moments`)."""
        return moments(self.n, self.F, self.S, self.shift)

    def recentre(self, shift: np.ndarray) -> Stats:
        """The same statistics about another ``shift`` (:func:`recentred`)."""
        shift = np.asarray(shift, dtype=np.float64)
        if np.array_equal(shift, self.shift):
            return self
        F, S = recentred(self.n, self.F, self.S, self.shift - shift)
        return Stats(self.n.copy(), F, S, self.loglik, self.n_frames, shift.copy())

    def __add__(self, other: Stats) -> Stats:
        if not isinstance(other, Stats):
            return NotImplemented
        if self.F.shape != other.F.shape:
            raise ParameterError(f"cannot merge Stats of shape (K, D)={self.F.shape} with "
                                 f"{other.F.shape}")  # fmt: skip
        other = other.recentre(self.shift)
        return Stats(self.n + other.n, self.F + other.F, self.S + other.S,
                     float(self.loglik + other.loglik), float(self.n_frames + other.n_frames),
                     self.shift.copy())  # fmt: skip

    def __radd__(self, other: object) -> Stats:
        return self if isinstance(other, int) and other == 0 else NotImplemented  # sum()

    def allclose(self, other: Stats, *, rtol: float = 1e-9, atol: float = 0.0) -> bool:
        """Whether two statistics agree (after bringing them to a common shift)."""
        other = other.recentre(self.shift)
        return all(np.allclose(getattr(self, k), getattr(other, k), rtol=rtol, atol=atol)
                   for k in ("n", "F", "S", "loglik", "n_frames"))  # fmt: skip

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain float64 arrays, safe to ship between processes or save with numpy."""
        scalars = np.array([self.loglik, self.n_frames], dtype=np.float64)
        return {"n": self.n.copy(), "F": self.F.copy(), "S": self.S.copy(),
                "shift": self.shift.copy(), "scalars": scalars}  # fmt: skip

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], *, source: str = "arrays") -> Stats:
        """Inverse of :meth:`to_arrays`, with validation of keys, shapes and values."""
        missing = [k for k in _ARRAY_KEYS if k not in arrays]
        if missing:
            raise ModelFileError(f"{source}: statistics are missing arrays {missing}")
        a = {k: np.asarray(arrays[k]) for k in _ARRAY_KEYS}
        for k, v in a.items():
            if v.dtype != np.float64:
                raise ModelFileError(f"{source}: array {k!r} has dtype {v.dtype}, expected float64")
            if not np.all(np.isfinite(v)):
                raise ModelFileError(f"{source}: array {k!r} contains NaN or inf")
        if a["F"].ndim != 2:
            raise ModelFileError(f"{source}: 'F' must be 2-D")
        K, D = a["F"].shape
        want = {"n": (K,), "S": (K, D), "shift": (D,), "scalars": (2,)}
        if any(a[k].shape != shape for k, shape in want.items()):
            shapes = {k: a[k].shape for k in a}
            raise ModelFileError(f"{source}: inconsistent statistics shapes {shapes} for K={K}, "
                                 f"D={D}")  # fmt: skip
        if np.any(a["n"] < 0):
            raise ModelFileError(f"{source}: negative zeroth-order statistics")
        ll, nf = a["scalars"]
        return cls(a["n"], a["F"], a["S"], float(ll), float(nf), a["shift"])

    def __repr__(self) -> str:
        return (f"Stats(n_components={self.n_components}, n_dims={self.n_dims}, "
                f"n_frames={self.n_frames:g}, loglik={self.loglik:.6g})")  # fmt: skip
