import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audiogmm import ModelFileError, ParameterError, Stats
from audiogmm.io import load, save
from audiogmm.mixture import Params, accumulate

from .conftest import random_params


def _stats(seed, K=3, D=2, n=50):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, D))
    return accumulate(X, Params(*random_params(rng, K, D))), X


def test_zeros_is_neutral():
    s, _ = _stats(0)
    z = Stats.zeros(3, 2)
    assert (s + z).allclose(s, rtol=1e-12)
    assert sum([s, z]).allclose(s, rtol=1e-12)


def test_recentre_is_exact_change_of_origin():
    s, _ = _stats(1)
    r = s.recentre(np.array([3.0, -2.0])).recentre(s.shift)
    assert r.allclose(s, rtol=1e-10)
    raw0, raw1 = s.recentre(np.zeros(2)), s.recentre(np.array([10.0, 10.0])).recentre(np.zeros(2))
    F0, S0, F1, S1 = raw0.F, raw0.S, raw1.F, raw1.S
    np.testing.assert_allclose(F0, F1, rtol=1e-10)
    np.testing.assert_allclose(S0, S1, rtol=1e-10)


def test_merge_with_different_shifts():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(80, 2))
    p = random_params(rng, 3, 2)
    a = accumulate(X[:30], Params(*p), shift=np.array([1.0, 2.0]))
    b = accumulate(X[30:], Params(*p), shift=np.array([-5.0, 0.0]))
    whole = accumulate(X, Params(*p))
    assert (a + b).allclose(whole, rtol=1e-10)


def test_shape_mismatch_raises():
    with pytest.raises(ParameterError, match="cannot merge"):
        Stats.zeros(3, 2) + Stats.zeros(2, 2)


def test_arrays_and_file_round_trip(tmp_path):
    s, _ = _stats(3)
    r = Stats.from_arrays(s.to_arrays())
    assert r.allclose(s, rtol=0)
    save(s, tmp_path / "s.npz")
    t = load(tmp_path / "s.npz", Stats)
    for k in ("n", "F", "S", "shift"):
        np.testing.assert_array_equal(getattr(t, k), getattr(s, k))
    assert t.loglik == s.loglik and t.n_frames == s.n_frames


def test_from_arrays_validates():
    s, _ = _stats(4)
    a = s.to_arrays()
    a["F"] = a["F"][:, :1]
    with pytest.raises(ModelFileError, match="inconsistent"):
        Stats.from_arrays(a)
    a = s.to_arrays()
    a["n"][0] = np.nan
    with pytest.raises(ModelFileError, match="NaN"):
        Stats.from_arrays(a)


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 120),
    K=st.integers(1, 4),
    D=st.integers(1, 4),
    cuts=st.lists(st.integers(0, 120), max_size=5),
    chunk=st.integers(1, 64),
)
def test_split_accumulation_merges_to_whole(seed, n, K, D, cuts, chunk):
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 2, size=(n, D)) + rng.normal(0, 5, size=D)
    p = random_params(rng, K, D)
    whole = accumulate(X, Params(*p))
    edges = [0, *sorted(c for c in cuts if c < n), n]
    parts = [
        accumulate(X[a:b], Params(*p), chunk_size=chunk) for a, b in zip(edges[:-1], edges[1:]) if b > a
    ]
    assert sum(parts).allclose(whole, rtol=1e-9, atol=1e-9)
