"""The one EM loop, the monitor, the maximiser pieces and k-means, each on its own."""

import warnings

import numpy as np
import pytest

from audiogmm import DiagGMM, GMMClassifier, ParameterError
from audiogmm.mixture import ConvergenceMonitor, Params, em
from audiogmm.mixture.fit import kmeans_labels
from audiogmm.mixture.mstep import MLMaximiser, floor_weights, reseed
from audiogmm.mixture.sources import ArraySource
from audiogmm.mixture.stats import Stats

from .conftest import draw_mixture


@pytest.fixture
def count_runs(monkeypatch):
    """Count calls of em.run and monitor reports, wherever they come from."""
    calls = {"run": 0, "report": 0}
    real_run, real_report = em.run, ConvergenceMonitor.report

    def run(*a, **k):
        calls["run"] += 1
        return real_run(*a, **k)

    def report(self, *a, **k):
        calls["report"] += 1
        return real_report(self, *a, **k)

    monkeypatch.setattr(em, "run", run)
    monkeypatch.setattr(ConvergenceMonitor, "report", report)
    return calls


def test_fit_runs_through_the_one_loop(count_runs):
    X, _ = draw_mixture(2000, seed=1)
    g = DiagGMM(3, random_state=0).fit(X)
    assert count_runs["run"] == 1
    assert count_runs["report"] == len(g.history_) == g.n_iter_ + 1


def test_n_init_runs_the_loop_once_per_init(count_runs):
    X, _ = draw_mixture(2000, seed=1)
    g = DiagGMM(3, n_init=3, random_state=0, max_iter=5).fit(X)
    assert count_runs["run"] == 3
    assert len(g.fit_report_["init_final_mean_logliks"]) == 3
    assert 3 <= count_runs["report"] <= 3 * (5 + 1)


def test_split_init_rounds_run_through_the_loop(count_runs):
    X, _ = draw_mixture(2000, seed=1)
    DiagGMM(5, init="split", split_iter=2, random_state=0, max_iter=3).fit(X)
    # 1 -> 2 -> 4 -> 5 components: three split rounds, then the main fit
    assert count_runs["run"] == 4
    assert count_runs["report"] >= 3 * 3 + 1


def test_fit_iter_runs_through_the_loop(count_runs):
    X, _ = draw_mixture(2000, seed=1)
    g = DiagGMM(3, random_state=0).fit_iter([X[:700], X[700:]])
    assert count_runs["run"] == 1 and count_runs["report"] == len(g.history_)


@pytest.mark.parametrize("n_init", [1, 2])
def test_classifier_training_runs_all_classes_through_the_loop_at_once(count_runs, n_init):
    # the classes are stacked: one em.run per n_init round for all of them, and
    # every E-step of every class is still reported to that class's own monitor
    rng = np.random.default_rng(0)
    clips = [rng.normal(m, 1, (300, 2)) for m in (0, 0, 4, 4, 8)]
    clf = GMMClassifier(2, n_jobs=2, n_init=n_init).fit(clips, ["a", "a", "b", "b", "c"])
    assert count_runs["run"] == n_init
    reported = sum(len(m.history_) for m in clf.models_.values())
    assert count_runs["report"] == reported if n_init == 1 else count_runs["report"] > reported


def test_classifier_split_init_rounds_run_stacked(count_runs):
    # 1 -> 2 -> 4 -> 5 components: three stacked split rounds, then the main fit,
    # for all three classes together
    rng = np.random.default_rng(0)
    clips = [rng.normal(m, 1, (300, 2)) for m in (0, 4, 8)]
    clf = GMMClassifier(5, init="split", split_iter=2, max_iter=3).fit(clips, ["a", "b", "c"])
    assert count_runs["run"] == 4
    rounds = 3 * (2 + 1)
    assert count_runs["report"] == sum(rounds + len(m.history_) for m in clf.models_.values())


@pytest.fixture
def entered():
    """The code objects of the one orchestration and the one loop, seen as they are entered."""
    import sys
    import threading

    from audiogmm.mixture import fit

    watch = {fit.fit_mixtures.__code__: "fit_mixtures", em.run.__code__: "run"}
    seen: set[str] = set()

    def hook(frame, event, arg):
        if event == "call" and frame.f_code in watch:
            seen.add(watch[frame.f_code])

    sys.setprofile(hook)
    threading.setprofile(hook)  # executor threads too
    try:
        yield seen
    finally:
        sys.setprofile(None)
        threading.setprofile(None)


@pytest.mark.parametrize("what", ["DiagGMM.fit", "per-class ML", "UBM", "MAP"])
def test_every_fit_runs_through_the_one_orchestration_and_the_one_loop(entered, what):
    from audiogmm.models.ubm import UBMClassifier, train_ubm

    rng = np.random.default_rng(0)
    clips = [rng.normal(m, 1.0, (300, 2)) for m in (0, 0, 4, 4)]
    labels = ["a", "a", "b", "b"]
    if what == "DiagGMM.fit":
        DiagGMM(2, random_state=0, n_jobs=1).fit(clips[0])
    elif what == "per-class ML":
        GMMClassifier(2, n_jobs=1).fit(clips, labels)
    else:
        ubm = DiagGMM(4, random_state=0, n_jobs=1).fit(np.concatenate(clips))
        entered.clear()
        if what == "UBM":  # out of core, from chunks
            train_ubm(clips, 4, random_state=0, n_jobs=1)
        else:  # adaptation alone, from a given UBM
            UBMClassifier(4, n_jobs=1).fit(clips, labels, ubm=ubm)
    assert entered == {"fit_mixtures", "run"}


def test_run_is_monotone_and_reports_every_e_step():
    X, _ = draw_mixture(3000, seed=2)
    src = ArraySource(X)
    p0 = Params(np.full(3, 1 / 3), X[:3].copy(), np.ones((3, 3)))
    mon = ConvergenceMonitor(0.0, 12)
    res = em.run(src, p0, maximiser=MLMaximiser(np.full(3, 1e-6)), monitor=mon)
    assert res.n_iter == 12 and len(res.history) == 13 and not res.converged
    assert np.all(np.diff(res.history) >= -1e-12)
    np.testing.assert_array_equal(p0.means, X[:3])  # the start is not modified


# ---------------------------------------------------------------------- the monitor
def test_monitor_stops_on_tol_and_on_max_iter():
    m = ConvergenceMonitor(tol=1e-3, max_iter=5)
    m.report(-10.0)
    assert not m.stop() and m.n_iter == 1
    m.report(-9.0)
    assert not m.stop()
    m.report(-8.9999)
    assert m.converged and m.stop()
    m2 = ConvergenceMonitor(tol=0.0, max_iter=2)
    for ll in (-3.0, -2.0, -1.0):
        m2.report(ll)
        stopped = m2.stop()
    assert stopped and m2.n_iter == 2 and not m2.converged


def test_monitor_warns_on_a_drop_but_not_after_a_reseed():
    m = ConvergenceMonitor(tol=0.0, max_iter=10)
    m.report(-1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.report(-2.0, reseeded=True)  # a re-seed may lower the likelihood
        assert not m.converged
    with pytest.warns(RuntimeWarning, match="decreased"):
        m.report(-3.0)


def test_monitor_verbose_prints_aligned_lines(capsys):
    m = ConvergenceMonitor(tol=0.0, max_iter=3, verbose=1)
    m.report(-2.0)
    m.report(-1.5)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[1].split()[0] == "1" and float(err[1].split()[2]) == 0.5


# ---------------------------------------------------------------------- M-step pieces
@pytest.mark.parametrize("seed", range(20))
def test_floor_weights_are_the_closest_weights(seed):
    # max sum_k w_k log v_k over the floored simplex: no random feasible point does better
    rng = np.random.default_rng(seed)
    K = int(rng.integers(2, 8))
    w = rng.dirichlet(np.full(K, 0.3))
    floor = float(rng.uniform(0, 1 / K))
    v = floor_weights(w, floor)
    assert np.isclose(v.sum(), 1) and np.all(v >= floor - 1e-12)

    def objective(u):
        return float(np.sum(w * np.log(u)))

    for _ in range(300):
        u = floor + (1 - K * floor) * rng.dirichlet(np.ones(K))
        assert objective(u) <= objective(v) + 1e-12


def test_reseed_splits_the_heaviest_component_and_reports_it():
    p = Params(np.array([0.7, 0.29, 0.01]), np.array([[0.0], [5.0], [9.0]]), np.ones((3, 1)))
    st = Stats(np.array([700.0, 290.0, 1.0]), np.zeros((3, 1)), np.zeros((3, 1)), 0.0, 991.0,
               np.zeros(1))  # fmt: skip
    out, events = reseed(p, st, min_count=10)
    assert events == [{"component": 2, "occupancy": 1.0, "split_from": 0}]
    np.testing.assert_allclose(out.means[[0, 2], 0], [-0.2, 0.2])
    np.testing.assert_allclose(out.weights, [0.35, 0.29, 0.35] / np.sum([0.35, 0.29, 0.35]))
    assert p.weights[0] == 0.7  # input unchanged


def test_kmeans_recovers_separated_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    truth = rng.integers(0, 3, 600)
    X = centres[truth] + rng.normal(0, 0.5, (600, 2))
    lab = kmeans_labels(X, 3, np.random.default_rng(1))
    # the same partition up to renaming
    pairs = {(a, b) for a, b in zip(truth, lab)}
    assert len(pairs) == 3


def test_kmeans_with_more_clusters_than_distinct_points():
    X = np.repeat(np.array([[0.0], [1.0]]), 50, axis=0)
    lab = kmeans_labels(X, 4, np.random.default_rng(0))
    assert lab.shape == (100,) and lab.max() < 4


def test_split_growth_chunks_by_the_final_size():
    # Every split round's E-step chunks by the final K (chunk_size None: auto_chunk_size(K)),
    # so the summation order, and the bits, are the explicit chunk_size's. Chunking by each
    # round's smaller K instead changed a K=256 UBM in its last bits.
    from audiogmm.mixture.estep import auto_chunk_size

    X = np.random.default_rng(3).standard_normal((20_000, 4))
    auto = DiagGMM(32, init="split", max_iter=3, random_state=0).fit(X)
    fixed = DiagGMM(32, init="split", max_iter=3, random_state=0,
                    chunk_size=auto_chunk_size(32)).fit(X)  # fmt: skip
    for k in ("weights_", "means_", "variances_"):
        assert np.array_equal(getattr(auto, k), getattr(fixed, k)), k


def test_an_init_too_extreme_for_float64_is_refused_before_any_em():
    X = np.random.default_rng(0).normal(size=(2000, 1))
    gmm = DiagGMM(2, max_iter=3, means_init=[[0.0], [1e10]], variances_init=[[1e-300], [1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no EM step on inf/NaN
        with pytest.raises(ParameterError, match="too extreme to evaluate in float64"):
            gmm.fit(X)


def test_negative_init_weights_are_named_as_such():
    X = np.random.default_rng(0).normal(size=(200, 1))
    gmm = DiagGMM(2, weights_init=[-1.0, 2.0], means_init=[[0.0], [1.0]])
    with pytest.raises(ParameterError, match="weights_init must be finite, >= 0"):
        gmm.fit(X)
