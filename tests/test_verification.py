"""EER, minDCF, DET against brute-force threshold sweeps and sklearn; z/t/s-norm."""

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from audiogmm import ParameterError
from audiogmm.cli import main
from audiogmm.data import Record, RunOptions, extract_many
from audiogmm.features import FeatureConfig
from audiogmm.pipeline import load_model, save_model, train_classifier
from audiogmm.scoring import det_curve, eer, min_dcf, snorm, tnorm, znorm
from audiogmm.scoring.metrics import open_set_rates


def brute_rates(y, s, thr):
    """P_miss, P_fa at one threshold by counting in plain Python (accept s >= thr)."""
    tar = [v for v, t in zip(s, y) if t == 1]
    non = [v for v, t in zip(s, y) if t == 0]
    p_miss = sum(1 for v in tar if v < thr) / len(tar)
    p_fa = sum(1 for v in non if v >= thr) / len(non)
    return p_miss, p_fa


def brute_sweep(y, s):
    ths = sorted(set(float(v) for v in s)) + [float("inf")]
    return [(t, *brute_rates(y, s, t)) for t in ths]


def brute_eer(y, s):
    pts = brute_sweep(y, s)
    for (_, m0, f0), (_, m1, f1) in zip(pts, pts[1:]):
        if m0 - f0 < 0 <= m1 - f1:
            # intersect the segment (f0, m0)-(f1, m1) with m = f
            a = (f0 - m0) / ((f0 - m0) - (f1 - m1))
            return m0 + a * (m1 - m0)
    _, m, _ = pts[0]
    return m  # already crossed at the first point (m >= f there)


def brute_min_dcf(y, s, p):
    best = min(p * m + (1 - p) * f for _, m, f in brute_sweep(y, s))
    return best / min(p, 1 - p)


def trials(seed, n_tar, n_non, sep=2.0, rounding=None):
    rng = np.random.default_rng(seed)
    s = np.concatenate([rng.normal(sep, 1, n_tar), rng.normal(0, 1, n_non)])
    if rounding is not None:
        s = np.round(s, rounding)  # ties
    y = np.concatenate([np.ones(n_tar, int), np.zeros(n_non, int)])
    perm = rng.permutation(len(y))
    return y[perm], s[perm]


@settings(max_examples=120, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 40), st.integers(1, 60),
       st.sampled_from([None, 0, 1]), st.sampled_from([-1.0, 0.0, 1.0, 4.0]))  # fmt: skip
def test_eer_and_min_dcf_match_brute_force(seed, n_tar, n_non, rounding, sep):
    y, s = trials(seed, n_tar, n_non, sep, rounding)
    e, _ = eer(y, s)
    assert abs(e - brute_eer(y, s)) <= 1e-9
    for p in (0.01, 0.05, 0.5):
        d, thr = min_dcf(y, s, p_target=p)
        assert abs(d - brute_min_dcf(y, s, p)) <= 1e-9
        m, f = brute_rates(y, s, thr)
        assert abs(d - (p * m + (1 - p) * f) / min(p, 1 - p)) <= 1e-9


def test_known_values():
    # perfectly separated: EER 0, minDCF 0
    y = [1, 1, 0, 0]
    assert eer(y, [3.0, 2.0, 1.0, 0.0])[0] == 0.0
    assert min_dcf(y, [3.0, 2.0, 1.0, 0.0], p_target=0.01)[0] == 0.0
    # perfectly inverted: EER 1; minDCF 1 (the trivial system is as good as it gets)
    assert eer(y, [0.0, 1.0, 2.0, 3.0])[0] == 1.0
    assert min_dcf(y, [0.0, 1.0, 2.0, 3.0], p_target=0.05)[0] == 1.0
    # one target among two non-targets in the middle: points (m, f) = (0,1), (0,.5), (1,.5), (1,0)
    # crossing the segment (0,.5)-(1,.5) at m = f = .5
    assert eer([0, 1, 0], [1.0, 2.0, 3.0])[0] == pytest.approx(0.5, abs=1e-12)


def test_det_curve_matches_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    for seed, rounding in [(0, None), (1, 1), (2, 0)]:
        y, s = trials(seed, 30, 70, 1.0, rounding)
        fpr, fnr, thr = det_curve(y, s)
        sf, sn, st_ = metrics.det_curve(y, s)
        idx = np.searchsorted(thr, st_)
        assert np.array_equal(thr[idx], st_)
        np.testing.assert_allclose(fpr[idx], sf, rtol=0, atol=1e-12)
        np.testing.assert_allclose(fnr[idx], sn, rtol=0, atol=1e-12)
        # and every point of ours equals the brute-force count
        for t, a, b in zip(thr, fpr, fnr):
            m, f = brute_rates(y, s, t)
            assert (a, b) == (f, m)


def test_bad_inputs():
    with pytest.raises(ParameterError, match="need target and non-target"):
        eer([1, 1], [0.1, 0.2])
    with pytest.raises(ParameterError, match="only 1"):
        eer([1, 2], [0.1, 0.2])
    with pytest.raises(ParameterError, match="NaN"):
        eer([1, 0], [0.1, np.nan])
    with pytest.raises(ParameterError, match="p_target"):
        min_dcf([1, 0], [0.1, 0.2], p_target=0.0)


def test_score_normalisation():
    rng = np.random.default_rng(0)
    s = rng.normal(size=5)
    zc = rng.normal(3, 2, (5, 50))
    tc = rng.normal(-1, 0.5, (5, 40))
    z = znorm(s, zc)
    np.testing.assert_allclose(z, (s - zc.mean(1)) / zc.std(1))
    t = tnorm(s, tc)
    np.testing.assert_allclose(t, (s - tc.mean(1)) / tc.std(1))
    np.testing.assert_allclose(snorm(s, zc, tc), 0.5 * (z + t))
    # a constant cohort shifts but does not scale (and gives no NaN)
    out = znorm([1.0], np.array([[2.0, 2.0]]))
    assert out.tolist() == [-1.0]
    with pytest.raises(ParameterError, match="cohort"):
        znorm(s, zc[:3])


# -- `audiogmm verify` on real speakers -----------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
SPEAKERS = ROOT / "data_samples" / "speakers"
PICK = ["ast_en", "ast_it", "flite_kal", "flite_rms"]


@pytest.fixture(scope="module")
def verify_setup(tmp_path_factory):
    """A map model on 5 clips of 4 speakers; trials: 3 other clips each x every claim."""
    d = tmp_path_factory.mktemp("verify")
    train, test = [], []
    for spk in PICK:
        files = sorted((SPEAKERS / spk).glob("*.flac"))
        train += [Record(str(f), spk) for f in files[:5]]
        test += [(f, spk) for f in files[5:8]]
    clf, _ = train_classifier(train, backend="map", n_components=8, relevance=8.0,
                              options=RunOptions(n_jobs=1))  # fmt: skip
    model = d / "m.npz"
    save_model(model, clf, FeatureConfig())
    rows = ["path,claim,target"]
    for f, spk in test:
        rows += [f"{os.path.relpath(f, d)},{c},{int(c == spk)}" for c in PICK]
    (d / "trials.csv").write_text("\n".join(rows) + "\n")
    cohort = [
        sorted((SPEAKERS / s).glob("*.flac"))[0] for s in ("ast_ru", "menardi_it", "flite_slt")
    ]
    return d, model, cohort


def cli(args, code=0):
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == code, r.output
    return r


def test_cli_verify_scores_metrics_and_report(verify_setup):
    d, model, _ = verify_setup
    out = json.loads(cli(["-q", "verify", model, d / "trials.csv", "--json", "--jobs", "1",
                          "--report", d / "rep"]).output)  # fmt: skip
    trials = out["trials"]
    assert len(trials) == 48 and out["skipped"] == []
    y = [t["target"] for t in trials]
    s = [t["score"] for t in trials]
    m = out["metrics"]
    assert (m["n_target"], m["n_nontarget"]) == (12, 36)
    assert abs(m["eer"] - brute_eer(y, s)) <= 1e-9
    for p in (0.01, 0.05):
        assert abs(m[f"min_dcf_{p:g}"] - brute_min_dcf(y, s, p)) <= 1e-9
    assert m["eer"] <= 0.25  # real speakers: most claims are told apart
    # each score is the mean per-frame LLR of the file under the claimed model
    bundle = load_model(model)
    f0 = str(d / trials[0]["path"])  # paths are shown as the trials file writes them
    X = extract_many([f0], config=bundle.config).features[f0]
    j = bundle.classifier.labels_.index(trials[0]["claim"])
    assert trials[0]["score"] == pytest.approx(bundle.classifier.score_samples([X])[0, j])
    rep = d / "rep"
    assert {p.name for p in rep.iterdir()} == {"scores.csv", "metrics.json", "det.png"}
    assert (rep / "det.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((rep / "metrics.json").read_text())["metrics"] == m
    lines = (rep / "scores.csv").read_text().splitlines()
    assert lines[0] == "path,claim,target,score" and len(lines) == 49


def test_cli_verify_normalisation(verify_setup):
    d, model, cohort = verify_setup
    base = json.loads(cli(["-q", "verify", model, d / "trials.csv", "--json"]).output)
    cargs = [a for c in cohort for a in ("--cohort", c)]
    for norm, extra in (("t", []), ("z", cargs), ("s", cargs)):
        out = json.loads(cli(["-q", "verify", model, d / "trials.csv", "--json", "--norm", norm,
                              *extra]).output)  # fmt: skip
        assert out["norm"] == norm
        assert [t["score"] for t in out["trials"]] != [t["score"] for t in base["trials"]]
        assert 0 <= out["metrics"]["eer"] <= 1
    r = cli(["-q", "verify", model, d / "trials.csv", "--norm", "z"], code=1)
    assert "cohort" in r.output


def test_cli_verify_bad_trials(verify_setup, tmp_path):
    _, model, cohort = verify_setup
    bad = tmp_path / "t.csv"
    bad.write_text(f"path,claim\n{cohort[0]},nobody\n")
    assert "not classes of the model" in cli(["-q", "verify", model, bad], code=1).output
    bad.write_text(f"path,claim,target\n{cohort[0]},ast_en,2\n")
    assert "row 2" in cli(["-q", "verify", model, bad], code=1).output
    bad.write_text(f"file,who\n{cohort[0]},ast_en\n")
    assert "path,claim" in cli(["-q", "verify", model, bad], code=1).output
    # no target column: scores only, no metrics
    ok = tmp_path / "ok.csv"
    ok.write_text(f"path,claim\n{cohort[0]},ast_en\n")
    out = json.loads(cli(["-q", "verify", model, ok, "--json"]).output)
    assert "metrics" not in out and len(out["trials"]) == 1


@pytest.mark.slow
def test_recipe_speaker_verification(tmp_path):
    sys.path.insert(0, str(ROOT / "recipes"))
    spec = importlib.util.spec_from_file_location(
        "sv", ROOT / "recipes" / "speaker_verification.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    exp = tmp_path / "exp"
    args = ["--data", str(SPEAKERS), "--exp", str(exp), "--ubm-components", "8", "-j", "2"]
    r = CliRunner().invoke(mod.main, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    for stage in range(8):
        assert f"[stage {stage}]" in r.output
    for f in ("records.csv", "ubm.npz", "model.npz", "trials.csv", "scores.json",
              "scores_norm.json", "report/det.png", "report_norm/metrics.json"):  # fmt: skip
        assert (exp / f).exists(), f
    res = json.loads((exp / "scores.json").read_text())
    assert res["metrics"]["eer"] <= 0.1 and res["metrics"]["n_target"] >= 20
    assert json.loads((exp / "scores_norm.json").read_text())["norm"] == "s"
    # stages talk through files: re-score only
    r = CliRunner().invoke(mod.main, args + ["--stage", "5"], catch_exceptions=False)
    assert r.exit_code == 0 and "[stage 2]" not in r.output and "EER" in r.output


def test_open_set_rates_by_hand():
    y_true = ["a", "a", "b", "b", "x", "x", "x", "y"]
    y_pred = ["a", "unknown", "a", "b", "unknown", "a", "unknown", "b"]
    r = open_set_rates(y_true, y_pred, known=["a", "b"], unknown="unknown")
    assert (r["n_known"], r["n_unknown"]) == (4, 4)
    assert r["false_accept"] == 2 / 4 and r["false_reject"] == 1 / 4
    assert r["misidentified"] == 1 / 4
    empty = open_set_rates(["a"], ["a"], known=["a"], unknown="unknown")
    assert np.isnan(empty["false_accept"]) and empty["false_reject"] == 0.0
    with pytest.raises(ParameterError, match="predictions"):
        open_set_rates(["a"], [], known=["a"], unknown="unknown")


def test_cli_verify_json_is_strict_and_paths_are_the_users(verify_setup, tmp_path):
    """All scores tie (every class is the UBM): the EER threshold is +inf, written as null."""
    d, _, _ = verify_setup
    model = tmp_path / "tie.npz"
    train = [Record(str(f), spk) for spk in PICK for f in sorted((SPEAKERS / spk).glob("*.flac"))[:3]]
    clf, _ = train_classifier(train, backend="map", n_components=2, relevance=1e300,
                              options=RunOptions(n_jobs=1))  # fmt: skip
    save_model(model, clf, FeatureConfig())
    r = cli(["-q", "verify", model, d / "trials.csv", "--json", "--report", tmp_path / "rep"])

    def refuse(name):
        raise AssertionError(f"{name} is not JSON")

    out = json.loads(r.output, parse_constant=refuse)
    assert out["metrics"]["eer_threshold"] is None and out["n_trials"] == 48
    json.loads((tmp_path / "rep" / "metrics.json").read_text(), parse_constant=refuse)
    # paths as the trials file writes them, in text and JSON (as predict keeps the user's)
    written = (d / "trials.csv").read_text().splitlines()[1].split(",")[0]
    assert out["trials"][0]["path"] == written
    text = cli(["-q", "verify", model, d / "trials.csv"]).output
    assert text.splitlines()[0].split("\t")[0] == written


def test_verify_memory_does_not_grow_with_the_trials(verify_setup, tmp_path):
    """Streaming: more trials cost numeric arrays only, never a Python object each.

    (17 bytes a trial are kept; the exact EER/minDCF sort copies of the scores, ~60 bytes a
    trial while they run.)
    """
    import tracemalloc

    from audiogmm.pipeline.verify import score_trials

    d, model, _ = verify_setup
    bundle = load_model(model)
    rows = (d / "trials.csv").read_text().splitlines()
    cache = tmp_path / "cache"

    def peak(n):
        path = tmp_path / f"t{n}.csv"
        body = rows[1:] * (n // len(rows[1:]))
        path.write_text("\n".join([rows[0], *(os.path.join(d, r) for r in body)]) + "\n")
        opts = RunOptions(n_jobs=1, cache_dir=str(cache))
        score_trials(bundle, path, options=opts)  # fill the cache
        tracemalloc.start()
        res = score_trials(bundle, path, options=opts)
        n_rows = sum(1 for _ in res)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert n_rows == len(body)
        return top

    small, large = peak(9_984), peak(49_968)
    # the old list of Trial objects and result dicts cost ~600 bytes a trial (24 MB here)
    assert large - small < 40_000 * 100, (small, large)


def _brute_class_llr(per_frame: np.ndarray) -> np.ndarray:
    """Each class against the mean likelihood of the others, in plain loops (float64)."""
    n, M = per_frame.shape
    out = np.empty((n, M))
    for i in range(n):
        for c in range(M):
            others = [per_frame[i, j] for j in range(M) if j != c]
            top = max(others)
            out[i, c] = per_frame[i, c] - (top + np.log(np.mean(np.exp(np.array(others) - top))))
    return out


@pytest.fixture(scope="module")
def ml_verify_setup(tmp_path_factory):
    """An ml model on 5 clips of 4 speakers, once plain and once --calibrate;
    trials: 3 other clips each x every claim."""
    d = tmp_path_factory.mktemp("verify_ml")
    rows, data = ["path,label,split"], d / "data.csv"
    trials = ["path,claim,target"]
    for spk in PICK:
        files = sorted((SPEAKERS / spk).glob("*.flac"))
        rows += [f"{f},{spk},train" for f in files[:5]] + [f"{f},{spk},test" for f in files[5:8]]
        trials += [f"{f},{c},{int(c == spk)}" for f in files[5:8] for c in PICK]
    data.write_text("\n".join(rows) + "\n")
    (d / "trials.csv").write_text("\n".join(trials) + "\n")
    for name, more in (("ml.npz", []), ("cal.npz", ["--calibrate"])):
        cli(["-q", "train", data, "--backend", "ml", "-k", "4", "-j", "1", "-o", d / name, *more])
    return d


def test_an_ml_model_verifies_each_class_against_the_others(ml_verify_setup):
    # issue 22: only map, gsv, ivector and fused models verified, so the default model and an
    # auto model that kept it could not; an ml claim is scored against the other classes
    d = ml_verify_setup
    out = json.loads(cli(["-q", "verify", d / "ml.npz", d / "trials.csv", "--json"]).output)
    trials = out["trials"]
    assert len(trials) == 48 and out["skipped"] == []
    bundle = load_model(d / "ml.npz")
    clf, paths = bundle.classifier, list(dict.fromkeys(t["path"] for t in trials))
    feats = extract_many([Record(p, "") for p in paths], config=bundle.config).features
    # each class's own DiagGMM, float64, mean log-likelihood per frame
    per_frame = np.array([[clf.models_[y].score(feats[p].astype(np.float64))
                           for y in clf.labels_] for p in paths])  # fmt: skip
    want = _brute_class_llr(per_frame)
    got = np.array([t["score"] for t in trials])
    idx = [(paths.index(t["path"]), clf.labels_.index(t["claim"])) for t in trials]
    np.testing.assert_allclose(got, [want[i, c] for i, c in idx], rtol=1e-4, atol=1e-3)
    m = out["metrics"]
    assert (m["n_target"], m["n_nontarget"]) == (12, 36) and m["eer"] < 0.25
    assert m["eer"] == pytest.approx(brute_eer([t["target"] for t in trials], got))


def test_train_calibrate_on_an_ml_model_makes_verify_scores_llrs(ml_verify_setup):
    d = ml_verify_setup
    raw, cal = load_model(d / "ml.npz"), load_model(d / "cal.npz")
    block = cal.header["calibration"]
    assert "calibration" not in raw.header and block["slope"] > 0
    assert block["n_target"] == 20 and block["n_nontarget"] == 60  # 20 held-out clips x 4
    s_raw, s_cal = (
        np.array([t["score"] for t in json.loads(cli(
            ["-q", "verify", d / name, d / "trials.csv", "--json"]).output)["trials"]])
        for name in ("ml.npz", "cal.npz")
    )  # fmt: skip
    np.testing.assert_allclose(s_cal, block["slope"] * s_raw + block["offset"], rtol=1e-9,
                               atol=1e-9)  # fmt: skip
    # --reject auto: where the calibrated LLR is 0 (the next test decides with it)
    assert cal.classifier.threshold_ == pytest.approx(-block["offset"] / block["slope"])


def test_info_says_how_an_ml_model_verifies(ml_verify_setup):
    d = ml_verify_setup
    assert "verify:        each class against the others, not calibrated" in cli(
        ["info", d / "ml.npz"]).output
    out = cli(["info", d / "cal.npz"]).output
    block = json.loads(cli(["info", d / "cal.npz", "--json"]).output)["calibration"]
    assert block["slope"] > 0 and f"calibrated to LLRs ({block['slope']:.4g} x score" in out


def test_a_calibrated_ml_model_rejects_the_unknown_at_its_bayes_threshold(ml_verify_setup):
    # the default backend had no open set: --reject was refused unless map, gsv or ivector
    from audiogmm.models.classifier import UNKNOWN, class_llr

    d = ml_verify_setup
    bundle = load_model(d / "cal.npz")
    clf, block = bundle.classifier, bundle.header["calibration"]
    # the raw score at which slope * score + offset = 0, the Bayes threshold of prior 0.5
    assert clf.threshold_ == pytest.approx(-block["offset"] / block["slope"], rel=1e-12)
    assert load_model(d / "ml.npz").classifier.threshold_ is None
    others = ["ast_fr", "menardi_it"]  # speakers the model does not know
    files = [sorted((SPEAKERS / s).glob("*.flac"))[7] for s in PICK + others]
    feats = extract_many([Record(str(f), "") for f in files], config=bundle.config).features
    X = [feats[str(f)] for f in files]
    llr = class_llr(clf.score_matrix(X), np.array([len(x) for x in X]))
    best = llr.argmax(1)  # equal priors: the best posterior is the best class against the others
    want = [UNKNOWN if llr[i, b] < clf.threshold_ else clf.labels_[b] for i, b in enumerate(best)]
    assert list(clf.predict(X, reject="auto")) == want
    assert list(clf.predict(X, reject=1e9)) == [UNKNOWN] * len(files)
    out = json.loads(cli(["-q", "predict", d / "cal.npz", *files, "--reject", "auto",
                          "--json"]).output)  # fmt: skip
    assert [p["label"] for p in out["results"]] == want
    r = cli(["-q", "predict", d / "ml.npz", files[0], "--reject", "auto"], code=1)
    assert "train it with --calibrate" in r.output
