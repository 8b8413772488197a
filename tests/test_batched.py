"""Many classes trained at once (stacked EM) give exactly what training each class alone gives."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audiogmm import DiagGMM, GMMClassifier
from audiogmm.engine import LocalExecutor, one_blas_thread
from audiogmm.mixture import ConvergenceMonitor, Params, em, kernels
from audiogmm.mixture.em import StackedMonitor
from audiogmm.mixture.mstep import MLMaximiser
from audiogmm.mixture.sources import ArraySource, StackedSource


def corpus(seed: int, n_classes: int, dtype=np.float64, D: int = 3):
    """Clips of classes of very different sizes; some have fewer clusters than components."""
    rng = np.random.default_rng(seed)
    clips, labels = [], []
    for i in range(n_classes):
        n_clusters = int(rng.integers(1, 5))
        centres = rng.normal(0, 6, (n_clusters, D))
        for _ in range(int(rng.integers(1, 4))):
            n = int(rng.integers(20, 400))
            X = centres[rng.integers(n_clusters, size=n)] + rng.normal(0, 0.5, (n, D))
            clips.append((X + 100.0 * i).astype(dtype))
            labels.append(f"class{i:02d}")
    return clips, labels


def per_class(clips, labels, n_components, random_state=0, **gmm_params):
    """Each class trained alone, seeded as GMMClassifier documents (its rank in the labels)."""
    ys = sorted(set(labels))
    seeds = np.random.SeedSequence(random_state).spawn(len(ys))
    out = {}
    with warnings.catch_warnings(), one_blas_thread():
        warnings.simplefilter("ignore")
        for y, s in zip(ys, seeds):
            X = np.concatenate([c for c, lab in zip(clips, labels) if lab == y])
            g = DiagGMM(n_components, random_state=int(s.generate_state(1)[0]), **gmm_params)
            out[y] = g.fit_source(ArraySource(X), executor=LocalExecutor(1))
    return out


def assert_same_fit(clf: GMMClassifier, alone: dict) -> None:
    # bit-identical: every member does the same floating-point operations as a run
    # of its own (same chunks, GEMM operands, kernel calls, row-wise reductions)
    assert clf.labels_ == sorted(alone)
    for y, g in alone.items():
        m = clf.models_[y]
        np.testing.assert_array_equal(m.weights_, g.weights_)
        np.testing.assert_array_equal(m.means_, g.means_)
        np.testing.assert_array_equal(m.variances_, g.variances_)
        np.testing.assert_array_equal(m.var_floor_, g.var_floor_)
        assert m.history_ == g.history_
        assert (m.n_iter_, m.converged_) == (g.n_iter_, g.converged_)
        drop = {"seconds"}
        assert {k: v for k, v in m.fit_report_.items() if k not in drop} == {
            k: v for k, v in g.fit_report_.items() if k not in drop
        }


def fit_all(clips, labels, K, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GMMClassifier(K, **kw).fit(clips, labels)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_classifier_equals_per_class_training_with_reseeds(n_jobs):
    clips, labels = corpus(0, 7)
    kw = dict(max_iter=40, chunk_size=128)  # several chunks per class, classes packed per task
    clf = fit_all(clips, labels, 6, n_jobs=n_jobs, **kw)
    alone = per_class(clips, labels, 6, **kw)
    assert_same_fit(clf, alone)
    # the case the test is about: classes stop at different iterations, some re-seed
    assert len({g.n_iter_ for g in alone.values()}) > 1
    assert sum(g.fit_report_["n_reseeded"] for g in alone.values()) > 0


def test_classifier_equals_per_class_training_float32_weight_floor_n_init():
    clips, labels = corpus(1, 5, dtype=np.float32)
    kw = dict(n_init=3, min_weight=0.1, max_iter=30)  # the floor binds: fallback M-steps
    clf = fit_all(clips, labels, 5, n_jobs=2, **kw)
    assert_same_fit(clf, per_class(clips, labels, 5, **kw))
    assert any(len(set(g.fit_report_["init_final_mean_logliks"])) > 1 for g in clf.models_.values())


@pytest.mark.parametrize("init", ["split", "kmeans++"])
def test_classifier_equals_per_class_training_per_init(init):
    clips, labels = corpus(2, 4)
    kw = dict(init=init, split_iter=2, max_iter=25)
    assert_same_fit(fit_all(clips, labels, 5, **kw), per_class(clips, labels, 5, **kw))


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_classes=st.integers(1, 6),
    K=st.integers(1, 6),
    chunk=st.sampled_from([None, 7, 50, 300]),
    f32=st.booleans(),
)
def test_stacked_training_equals_per_class_training(seed, n_classes, K, chunk, f32):
    clips, labels = corpus(seed, n_classes, dtype=np.float32 if f32 else np.float64)
    kw = dict(max_iter=15, chunk_size=chunk, random_state=seed)
    assert_same_fit(fit_all(clips, labels, K, n_jobs=2, **kw), per_class(clips, labels, K, **kw))


def test_stacked_run_members_equal_their_own_runs():
    """em.run on a stack: each member's params, history, stopping, events and last stats."""
    rng = np.random.default_rng(3)
    Xs = [rng.normal(0, 1 + c, (150 + 97 * c, 2)) for c in range(4)]
    Xs[1][:40] += 30.0  # a far cluster grabs one component, others starve: re-seeds
    starts = [Params(np.full(4, 0.25), X[:4].copy(), np.ones((4, 2))) for X in Xs]
    floors = [np.full(2, 1e-3)] * 4
    tols = [0.0, 1e-3, 1e-6, 1e-2]  # each member stops at its own iteration
    alone = [
        em.run(ArraySource(X), p, maximiser=MLMaximiser(f, 1e-3, 10.0),
               monitor=ConvergenceMonitor(t, 20), chunk_size=64)  # fmt: skip
        for X, p, f, t in zip(Xs, starts, floors, tols)
    ]
    mon = StackedMonitor([ConvergenceMonitor(t, 20) for t in tols])
    res = em.run(
        StackedSource(Xs, mon.running), Params.stack(starts),
        maximiser=MLMaximiser(np.stack(floors), 1e-3, 10.0, mon), monitor=mon, chunk_size=64,
    )  # fmt: skip
    assert len({r.n_iter for r in alone}) > 1 and any(r.events for r in alone)
    for a, b in zip(alone, em.unstack(res)):
        for x, y in zip(a.params, b.params):
            np.testing.assert_array_equal(x, y)
        assert (a.history, a.converged, a.n_iter, a.events) == (b.history, b.converged, b.n_iter, b.events)
        for k in ("n", "F", "S", "shift"):
            np.testing.assert_array_equal(getattr(a.stats, k), getattr(b.stats, k))
        assert (a.stats.loglik, a.stats.n_frames) == (b.stats.loglik, b.stats.n_frames)
    np.testing.assert_array_equal(starts[0].means, Xs[0][:4])  # the start is not modified


def test_one_e_step_map_per_iteration_for_all_classes(monkeypatch):
    # the fixed cost of an iteration (an executor map, its BLAS limit) is paid once
    # for all classes, not once per class
    calls = {"map": 0}
    real = LocalExecutor.map

    def counting(self, *a, **k):
        calls["map"] += 1
        return real(self, *a, **k)

    monkeypatch.setattr(LocalExecutor, "map", counting)
    clips, labels = corpus(4, 8)
    clf = fit_all(clips, labels, 3, n_jobs=1, max_iter=20)
    longest = max(m.n_iter_ for m in clf.models_.values())
    assert calls["map"] <= (longest + 1) + 1  # E-steps of the longest class + one init map
    assert sum(m.n_iter_ + 1 for m in clf.models_.values()) > 2 * calls["map"]


def test_stacked_e_step_scores_each_frame_against_its_own_class_only(monkeypatch):
    # memory stays O(chunk x K): no (frames x classes*K) block, whatever the classes
    seen = []
    real = kernels.resp_inplace

    def spy(L, w, lse, **k):
        seen.append(L.shape)
        return real(L, w, lse, **k)

    monkeypatch.setattr(kernels, "resp_inplace", spy)
    rng = np.random.default_rng(5)
    Xs = [rng.normal(c, 1, (300 + 50 * c, 2)) for c in range(6)]
    params = Params.stack([Params(np.full(3, 1 / 3), X[:3].copy(), np.ones((3, 2))) for X in Xs])
    st_ = StackedSource(Xs, np.ones(len(Xs), dtype=bool)).accumulate(params, chunk_size=128)
    assert seen and all(cols == 3 and rows <= 128 for rows, cols in seen)
    assert sum(rows for rows, _ in seen) == sum(len(X) for X in Xs)
    np.testing.assert_allclose(st_.n.sum(1), [len(X) for X in Xs])


@pytest.mark.parametrize("weights", ["none", "all", "mixed"])
@pytest.mark.parametrize("n_workers", [1, 2])
def test_a_task_of_many_members_gives_each_its_own_statistics(weights, n_workers, monkeypatch):
    # the E-step computes a task's responsibilities in one call for all its members' rows:
    # each member's statistics stay those of its own E-step, bit for bit, whether weighted,
    # unweighted or both, and a member whose scores overflow float32 is saturated alone
    from audiogmm.mixture.estep import accumulate_many

    rng = np.random.default_rng(11)
    Xs = [rng.normal(c, 1 + c, (37 + 29 * c, 3)).astype(np.float32) for c in range(5)]
    Xs[1][5] = 3e19  # (x - c)**2 overflows float32: this member's chunk is redone, saturated
    sws = [None if weights == "none" or (weights == "mixed" and c % 2) else
           rng.random(len(X)) for c, X in enumerate(Xs)]  # fmt: skip
    P = Params.stack([Params(np.full(4, 0.25), X[:4].astype(np.float64), np.ones((4, 3)))
                      for X in Xs])  # fmt: skip
    shifts = np.stack([X.mean(0, dtype=np.float64) for X in Xs])
    members, calls = list(range(len(Xs))), []
    real = kernels.resp_inplace
    monkeypatch.setattr(kernels, "resp_inplace", lambda L, *a, **k: calls.append(len(L))
                        or real(L, *a, **k))  # fmt: skip
    with LocalExecutor(n_workers) as ex, one_blas_thread():
        many = accumulate_many(Xs, P.weights, P.means, P.variances, members, shifts=shifts,
                               sample_weights=sws, chunk_size=512, executor=ex)  # fmt: skip
        if weights != "mixed":  # some call covers several members (each is one chunk here)
            assert any(n not in {len(X) for X in Xs} for n in calls)
        assert len(Xs[1]) in calls  # the overflowed member, again alone
        for j in members:
            own = accumulate_many([Xs[j]], P.weights[j : j + 1], P.means[j : j + 1],
                                  P.variances[j : j + 1], [0], shifts=shifts[j : j + 1],
                                  sample_weights=[sws[j]], chunk_size=512)  # fmt: skip
            for a, b in zip(many, own):
                np.testing.assert_array_equal(a[j], b[0])
    assert np.isfinite(many[0]).all() and np.isfinite(many[1]).all()
