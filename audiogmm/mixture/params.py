"""The parameters of a diagonal GMM, as one small value passed between init, E-step and M-step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Params"]


@dataclass
class Params:
    """Weights, means and variances of one diagonal-covariance mixture.

    Parameters
    ----------
    weights : ndarray of shape (n_components,), float64
        Mixture weights, summing to 1.
    means : ndarray of shape (n_components, n_dims), float64
    variances : ndarray of shape (n_components, n_dims), float64, > 0
    """

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    @property
    def n_dims(self) -> int:
        return self.means.shape[1]

    def __iter__(self):
        """``weights, means, variances = params``."""
        return iter((self.weights, self.means, self.variances))

    def copy(self) -> Params:
        return Params(self.weights.copy(), self.means.copy(), self.variances.copy())

    def is_finite(self) -> bool:
        """Whether every parameter is finite and every variance and weight usable."""
        return bool(
            np.all(np.isfinite(self.weights))
            and np.all(np.isfinite(self.means))
            and np.all(np.isfinite(self.variances))
            and np.all(self.variances > 0)
        )
