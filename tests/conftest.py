"""Shared fixtures: synthetic data with known mixture parameters."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import settings

# no per-example deadline anywhere: a shared CI machine makes timing a source of flakes,
# and the invariants under test do not depend on it
settings.register_profile("audiogmm", deadline=None)
settings.load_profile("audiogmm")

# surface silent floating-point trouble in the maths under test (hmmlearn habit)
np.seterr(all="warn", under="ignore")

TRUE_WEIGHTS = np.array([0.5, 0.3, 0.2])
TRUE_MEANS = np.array([[-4.0, 0.0, 2.0], [0.0, 3.0, -1.0], [4.0, -2.0, 0.5]])
TRUE_VARS = np.array([[1.0, 0.5, 0.8], [0.6, 1.2, 0.4], [0.9, 0.7, 1.5]])


def draw_mixture(
    n: int, seed: int = 0, weights=TRUE_WEIGHTS, means=TRUE_MEANS, variances=TRUE_VARS
):
    rng = np.random.default_rng(seed)
    z = rng.choice(len(weights), size=n, p=weights)
    return means[z] + rng.standard_normal((n, means.shape[1])) * np.sqrt(variances[z]), z


@pytest.fixture
def mixture_data():
    X, z = draw_mixture(6000, seed=1)
    return X, z


def random_params(rng: np.random.Generator, K: int, D: int):
    w = rng.dirichlet(np.ones(K))
    m = rng.normal(0, 3, (K, D))
    v = rng.uniform(0.2, 3.0, (K, D))
    return w, m, v
