"""Calibration and calibration-sensitive metrics against closed forms and brute force."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from scipy.optimize import minimize

from audiogmm.exceptions import ParameterError
from audiogmm.scoring.verification import (
    CalibrationWarning,
    act_dcf,
    apply_calibration,
    bayes_threshold,
    cllr,
    fit_calibration,
    min_cllr,
    min_dcf,
    pav,
)


def _gaussian_llr_trials(n: int, mu: float = 2.0, seed: int = 0):
    """Scores that ARE log-likelihood ratios: N(+mu, 2mu) targets, N(-mu, 2mu) non-targets."""
    rng = np.random.default_rng(seed)
    sd = math.sqrt(2 * mu)
    s = np.concatenate([rng.normal(mu, sd, n), rng.normal(-mu, sd, n)])
    return np.r_[np.ones(n, int), np.zeros(n, int)], s


def _cllr_by_hand(y, llr) -> float:
    y, llr = np.asarray(y), np.asarray(llr, float)
    c_tar = np.mean([math.log2(1 + math.exp(-x)) for x in llr[y == 1]])
    c_non = np.mean([math.log2(1 + math.exp(x)) for x in llr[y == 0]])
    return 0.5 * (c_tar + c_non)


def test_cllr_closed_forms():
    y = [1, 1, 0, 0, 0]
    assert cllr(y, [0, 0, 0, 0, 0]) == pytest.approx(1.0)
    llr = [2.0, -1.0, 0.5, -3.0, -0.25]
    assert cllr(y, llr) == pytest.approx(_cllr_by_hand(y, llr), rel=1e-12)
    # no overflow far out: 1000 nats the right way costs ~0, the wrong way 1000/ln2 bits
    assert cllr([1, 0], [1000.0, -1000.0]) == pytest.approx(0.0, abs=1e-300)
    assert cllr([1, 0], [-1000.0, 1000.0]) == pytest.approx(1000 / math.log(2), rel=1e-12)


def test_calibrated_scores_keep_their_cllr_and_the_fit_finds_them():
    y, s = _gaussian_llr_trials(20000)
    # the LLR of N(mu, 2mu) against N(-mu, 2mu) is the score itself: Cllr ~ minCllr
    assert cllr(y, s) - min_cllr(y, s) < 0.01
    a, b = fit_calibration(y, s)
    assert a == pytest.approx(1.0, abs=0.05) and b == pytest.approx(0.0, abs=0.05)
    # an affine distortion is undone exactly (up to sampling): s = 2 t + 3
    t = (s - 3.0) / 2.0
    a2, b2 = fit_calibration(y, t)
    assert a2 == pytest.approx(2 * a, rel=1e-6) and b2 == pytest.approx(3 * a + b, rel=1e-6)
    assert cllr(y, apply_calibration(t, a2, b2)) == pytest.approx(
        cllr(y, apply_calibration(s, a, b))
    )


def test_fit_calibration_is_the_optimum_of_the_weighted_cross_entropy():
    rng = np.random.default_rng(3)
    y = (rng.random(60) < 0.3).astype(int)
    s = rng.normal(0, 1, 60) + 1.5 * y
    for p in (0.5, 0.1):
        a, b = fit_calibration(y, s, p_target=p)
        lp = math.log(p / (1 - p))

        def obj(th, p=p, lp=lp):
            m = th[0] * s + th[1] + lp
            return p * np.mean(np.logaddexp(0, -m[y == 1])) + (1 - p) * np.mean(
                np.logaddexp(0, m[y == 0])
            )

        ref = minimize(obj, [0.0, 0.0], method="Nelder-Mead",
                       options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 10000}).x  # fmt: skip
        assert (a, b) == pytest.approx(tuple(ref), abs=1e-4)
        assert obj([a, b]) <= obj(ref) + 1e-10  # the 1e-6 ridge costs ~1e-12


def test_pav_matches_isotonic_regression():
    from sklearn.isotonic import isotonic_regression

    rng = np.random.default_rng(1)
    for _ in range(30):
        y = rng.normal(size=12)
        w = rng.uniform(0.1, 2, 12)
        assert pav(y, w) == pytest.approx(isotonic_regression(y, sample_weight=w), abs=1e-12)


def _min_cllr_brute(y, s) -> float:
    """Every monotone step function of the score: contiguous blocks of distinct scores."""
    y, s = np.asarray(y), np.asarray(s, float)
    groups = [y[s == u] for u in np.unique(s)]
    nt, nn = (y == 1).sum(), (y == 0).sum()
    best = math.inf
    for cuts in itertools.product([0, 1], repeat=len(groups) - 1):
        blocks, cur = [], [groups[0]]
        for c, g in zip(cuts, groups[1:]):
            if c:
                blocks.append(np.concatenate(cur))
                cur = []
            cur.append(g)
        blocks.append(np.concatenate(cur))
        ps = [b.mean() for b in blocks]
        if any(p2 < p1 for p1, p2 in zip(ps, ps[1:])):
            continue  # not monotone
        cost = 0.0
        for b, p in zip(blocks, ps):
            with np.errstate(divide="ignore"):
                llr = math.log(p) - math.log1p(-p) if 0 < p < 1 else (math.inf if p else -math.inf)
            llr -= math.log(nt / nn)
            kt, kn = (b == 1).sum(), (b == 0).sum()
            cost += (kt / nt * np.logaddexp(0, -llr) if kt else 0.0) + (
                kn / nn * np.logaddexp(0, llr) if kn else 0.0
            )
        best = min(best, cost / (2 * math.log(2)))
    return best


def test_min_cllr_equals_brute_force_on_small_sets_with_ties():
    rng = np.random.default_rng(7)
    checked = 0
    while checked < 60:
        n = int(rng.integers(3, 9))
        y = rng.integers(0, 2, n)
        if y.min() == y.max():
            continue
        s = rng.integers(0, 5, n).astype(float)  # ties on purpose
        assert min_cllr(y, s) == pytest.approx(_min_cllr_brute(y, s), abs=1e-12)
        # a rising linear calibration is one monotone map among all: never below minCllr
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CalibrationWarning)
            a, b = fit_calibration(y, s)
        if a >= 0:
            assert cllr(y, apply_calibration(s, a, b)) >= min_cllr(y, s) - 1e-9
        checked += 1


def test_min_cllr_is_zero_when_separated_and_one_when_uninformative():
    assert min_cllr([1, 1, 0, 0], [3.0, 2.0, 1.0, -5.0]) == 0.0
    assert min_cllr([1, 0, 1, 0], [1.0, 1.0, 1.0, 1.0]) == pytest.approx(1.0)


def test_act_dcf_closed_form_and_above_min_dcf():
    y = [1, 1, 1, 0, 0, 0, 0]
    llr = [3.0, 0.5, -1.0, 2.0, 0.0, -0.5, -4.0]
    # p = 0.5: threshold 0, accept >= 0: misses {-1} (1/3), false alarms {2, 0} (2/4)
    assert bayes_threshold(0.5) == 0.0
    assert act_dcf(y, llr, p_target=0.5) == pytest.approx((0.5 / 3 + 0.5 * 0.5) / 0.5)
    # p = 0.1: threshold log 9 = 2.197: misses 2/3, false alarms 0
    assert act_dcf(y, llr, p_target=0.1) == pytest.approx(0.1 * (2 / 3) / 0.1)
    rng = np.random.default_rng(2)
    for _ in range(20):
        yy = np.r_[np.ones(15, int), np.zeros(25, int)]
        ss = rng.normal(0, 2, 40) + yy
        for p in (0.01, 0.05, 0.5):
            assert act_dcf(yy, ss, p_target=p) >= min_dcf(yy, ss, p_target=p)[0] - 1e-12


def test_separable_scores_warn_and_stay_finite():
    y = [1, 1, 1, 0, 0, 0]
    s = [5.0, 4.0, 3.0, 1.0, 0.0, -1.0]
    with pytest.warns(CalibrationWarning, match="separate"):
        a, b = fit_calibration(y, s)
    llr = apply_calibration(s, a, b)
    assert np.all(np.isfinite(llr)) and a > 0
    assert np.all(llr[:3] > 0) and np.all(llr[3:] < 0)
    assert math.isfinite(cllr(y, llr)) and min_cllr(y, s) == 0.0
    with pytest.warns(CalibrationWarning, match="separate"):  # touching at one score too
        assert math.isfinite(fit_calibration([1, 1, 0, 0], [2.0, 1.0, 1.0, 0.0])[0])


def test_identical_scores_warn_and_give_llr_zero():
    with pytest.warns(CalibrationWarning, match="same"):
        assert fit_calibration([1, 0, 1, 0], [7.0] * 4) == (0.0, 0.0)
    with pytest.warns(CalibrationWarning, match="same"):
        assert fit_calibration([1, 0], [1e300, 1e300]) == (0.0, 0.0)


@pytest.mark.parametrize(
    "y, s",
    [
        ([1, 1], [0.0, 1.0]),
        ([1, 0], [0.0, math.nan]),
        ([1, 2], [0.0, 1.0]),
        ([1, 0, 1], [0.0, 1.0]),
    ],
)
def test_bad_trials_are_refused(y, s):
    for f in (cllr, min_cllr, fit_calibration):
        with pytest.raises(ParameterError):
            f(y, s)
    with pytest.raises(ParameterError):
        fit_calibration([1, 0], [0.0, 1.0], p_target=1.0)
    for p, cm in ((0.0, 1.0), (1.0, 1.0), (math.nan, 1.0), (0.5, 0.0), (0.5, math.inf)):
        with pytest.raises(ParameterError):
            act_dcf([1, 0], [0.0, 1.0], p_target=p, c_miss=cm)


# -- train --calibrate (issue 22 item 3) ---------------------------------------------------


def _clips(rng, centres, n_clips=4, n=150, D=3):
    clips, labels = [], []
    for j, c in enumerate(centres):
        for _ in range(n_clips):
            clips.append(rng.normal(c, 1.0, (n, D)))
            labels.append(f"s{j}")
    return clips, labels


@pytest.mark.filterwarnings("ignore::audiogmm.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore:X has \\(near\\) zero variance:RuntimeWarning")
def test_held_out_calibration_of_separable_or_identical_scores_warns_and_stays_finite():
    from audiogmm.selection.cv import calibrate_backend

    rng = np.random.default_rng(0)
    clips, labels = _clips(rng, [0.0, 2.0, -2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)  # separable or not, finite
        cal = calibrate_backend(clips, labels, "map", n_components=4, n_jobs=1)
    assert all(math.isfinite(cal[k]) for k in ("slope", "offset")) and cal["slope"] > 0
    assert cal["n_target"] == 12 and cal["n_nontarget"] == 24  # every clip held out once
    same = [np.tile(rng.normal(size=(1, 3)), (150, 1))] * 12  # one clip: identical scores
    with pytest.warns(CalibrationWarning, match="same"):
        cal = calibrate_backend(same, labels, "map", n_components=1, n_jobs=1)
    assert (cal["slope"], cal["offset"]) == (0.0, 0.0)
    with warnings.catch_warnings():  # ml (each class against the others) calibrates as well
        warnings.simplefilter("ignore", CalibrationWarning)
        cal = calibrate_backend(clips, labels, "ml", n_components=2, n_jobs=1)
    assert all(math.isfinite(cal[k]) for k in ("slope", "offset")) and cal["slope"] > 0


def test_train_calibrate_makes_verify_scores_llrs_and_reject_auto_the_prior(tmp_path):
    from pathlib import Path

    from click.testing import CliRunner

    from audiogmm.cli import main
    from audiogmm.data import read_manifest
    from audiogmm.pipeline import load_model
    from audiogmm.pipeline.verify import Trial, verify_trials

    data = Path(__file__).resolve().parents[1] / "data_samples" / "speakers"
    run = CliRunner()
    raw, cal = tmp_path / "raw.npz", tmp_path / "cal.npz"
    for out, more in ((raw, []), (cal, ["--calibrate"])):
        r = run.invoke(main, ["-q", "train", str(data), "--backend", "map", "-k", "8", "-o",
                              str(out), "-j", "1", *more])  # fmt: skip
        assert r.exit_code == 0, r.output
    m_raw, m_cal = load_model(raw), load_model(cal)
    block = m_cal.header["calibration"]
    a, b = block["slope"], block["offset"]
    assert a > 0 and 0 < block["n_target"] < block["n_nontarget"]
    # --reject auto: the Bayes threshold of the prior 0.5 (LLR 0), on the raw scale
    assert m_cal.classifier.threshold_ == pytest.approx(-b / a)
    assert m_raw.classifier.threshold_ is None and "calibration" not in m_raw.header
    # the same model otherwise; verify reports a * raw + b, the LLRs
    recs = read_manifest(data)
    trials = [Trial(r.path, y, int(y == r.label)) for r in recs[:4]
              for y in m_raw.classifier.labels_[:3]]  # fmt: skip
    s_raw, s_cal = (
        np.array([t["score"] for t in verify_trials(m, trials, allow_train_overlap=True,
                                                    options=None)["trials"]])
        for m in (m_raw, m_cal)
    )  # fmt: skip
    np.testing.assert_allclose(s_cal, a * s_raw + b, rtol=1e-9, atol=1e-9)
    from audiogmm.exceptions import ModelFileError

    from .test_model_file import tamper_header

    for key, bad in (("slope", float("nan")), ("p_target", 1.0), ("n_target", -1)):
        t = tamper_header(cal, tmp_path / "t.npz", lambda h, k=key, v=bad: h["calibration"].__setitem__(k, v))
        with pytest.raises(ModelFileError, match=f"calibration.{key}"):
            load_model(t)
    r = run.invoke(main, ["train", str(data), "--backend", "gsv", "--calibrate", "-o",
                          str(tmp_path / "x.npz")])  # fmt: skip
    assert r.exit_code == 2 and "--calibrate applies to --backend ml and map" in r.output
    r = run.invoke(main, ["train", str(data), "--backend", "map", "--calibrate", "--reject-far",
                          "0.1", "-o", str(tmp_path / "x.npz")])  # fmt: skip
    assert r.exit_code == 2 and "give one" in r.output
