"""The parameters of a diagonal GMM (or of a stack of them), passed between init, E- and M-step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Params"]


@dataclass
class Params:
    """Weights, means and variances of one diagonal-covariance mixture, or of C stacked ones.

    Parameters
    ----------
    weights : ndarray of shape ([C,] n_components), float64, summing to 1
    means : ndarray of shape ([C,] n_components, n_dims), float64
    variances : ndarray of shape ([C,] n_components, n_dims), float64, > 0
    """

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
        return Params(self.weights.copy(), self.means.copy(), self.variances.copy())

    @classmethod
    def stack(cls, members: list[Params]) -> Params:
        """C mixtures of one K and D as one value with a leading axis C."""
        return cls(*(np.stack(a) for a in zip(*members)))

    def member(self, c: int) -> Params:
        """Mixture ``c`` of a stack (copies)."""
        return Params(self.weights[c].copy(), self.means[c].copy(), self.variances[c].copy())
