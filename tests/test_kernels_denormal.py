"""Negligible responsibilities are exact zeros, never float32 denormals (which made the
statistics GEMM after the E-step many times slower, on both kernels)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audiogmm.mixture import kernels


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tiny_responsibilities_are_zero_and_rows_still_sum_to_one(fast, dtype):
    if fast and not kernels.HAVE_NUMBA:
        pytest.skip("numba not installed")
    rng = np.random.default_rng(0)
    # gaps of 0..200 nats below each row's best: exp underflows into the denormal range
    L = (-rng.uniform(0, 200, size=(500, 64))).astype(dtype)
    L[:, 0] = 0.0
    lse = np.empty(500, dtype=dtype)
    kernels.resp_inplace(L, None, lse, fast=fast)
    tiny = np.finfo(np.float32).tiny
    assert not np.any((L > 0) & (L < tiny)), "denormal responsibilities"
    assert np.all((L == 0) | (L >= kernels.NEGLIGIBLE_RESPONSIBILITY / 64))
    np.testing.assert_allclose(L.sum(1), 1.0, rtol=1e-6)
    assert np.count_nonzero(L == 0) > 0  # the flush did happen


@settings(max_examples=80, deadline=None)
@given(
    st.integers(0, 60), st.integers(1, 40), st.integers(1, 3), st.integers(0, 2**31 - 1),
    st.booleans(),
)
def test_row_max_by_columns_equals_numpy_max(n, k, lead, seed, with_specials):
    from audiogmm.mixture.kernels import _max_keepdims, row_max_and_sum

    rng = np.random.default_rng(seed)
    L = rng.normal(0, 50, size=(lead, n, k))
    if with_specials and L.size:
        flat = L.reshape(-1)
        flat[rng.integers(0, flat.size, 3)] = rng.choice([np.nan, -np.inf, np.inf, -0.0], 3)
    for X in (L, L[0]):  # 3-D (segmented scoring) and 2-D (E-step) layouts
        want = X.max(axis=-1, keepdims=True)
        got = _max_keepdims(X)
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)  # NaN where numpy gives NaN
    if L[0].size:
        with np.errstate(invalid="ignore", under="ignore"):
            m, s = row_max_and_sum(L[0])
            m_ref = L[0].max(axis=-1, keepdims=True)
            s_ref = np.exp(L[0] - m_ref).sum(axis=-1, keepdims=True)
        np.testing.assert_array_equal(m, m_ref)
        np.testing.assert_array_equal(s, s_ref)
