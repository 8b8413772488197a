"""The i-vector backend against dense references, brute force and the command line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audiogmm.data import extract_many
from audiogmm.exceptions import ParameterError
from audiogmm.models import IVectorClassifier
from audiogmm.models import ivector as iv
from audiogmm.models.classifier import UNKNOWN
from audiogmm.pipeline import load_model
from audiogmm.scoring.verification import cllr

from .test_supervector import PICK, SPEAKERS, _clips, _direct_stats, _ubm, cli


def _dense_reference(T_feat, Sigma, stats):
    """The i-vector model in the supervector space, one dense matrix per clip: Kenny's
    formulas with ``Sigma`` (KD, KD) and ``N_u = diag(n_uk repeated D times)``.

    Returns the i-vectors, the M-step's new T (feature units) and the bound."""
    KD, R = T_feat.shape
    P = np.linalg.inv(Sigma)
    C, A, bound, W = np.zeros((KD, R)), {}, 0.0, []
    D = KD // len(stats[0][0])
    for n, F in stats:
        N = np.diag(np.repeat(n, D))
        L = np.eye(R) + T_feat.T @ P @ N @ T_feat  # precision of w given the clip
        Linv = np.linalg.inv(L)
        b = T_feat.T @ P @ F.ravel()
        w = Linv @ b
        W.append(w)
        C += np.outer(F.ravel(), w)
        for k, nk in enumerate(n):
            A[k] = A.get(k, 0.0) + nk * (Linv + np.outer(w, w))
        bound += 0.5 * b @ Linv @ b - 0.5 * np.linalg.slogdet(L)[1]
    T_new = np.vstack([C[k * D : (k + 1) * D] @ np.linalg.inv(A[k]) for k in sorted(A)])
    return np.array(W), T_new, bound


def test_ivectors_and_one_em_step_equal_a_dense_reference():
    """Issue 22 acceptance: the extractor and the T-EM agree with a direct dense numpy
    implementation (precision I + T' Sigma^-1 N T per clip) to 1e-8."""
    K, D, R = 3, 2, 2
    ubm = _ubm(K, D)
    rng = np.random.default_rng(3)
    clips = [rng.normal(rng.normal(0, 1, D), 1.5, (T, D)) for T in (5, 40, 200, 13, 77)]
    sigma = np.sqrt(ubm.variances_).ravel()
    T = rng.normal(0, 0.5, (K * D, R))  # whitened
    T_feat = sigma[:, None] * T  # in feature units
    stats = [_direct_stats(X, ubm) for X in clips]
    W_ref, T_new_ref, bound_ref = _dense_reference(T_feat, np.diag(sigma**2), stats)

    n, f = iv.whitened_stats(clips, ubm)
    np.testing.assert_allclose(n, [s[0] for s in stats], rtol=1e-10, atol=1e-10)
    W = iv.extract_ivectors(T, n, f)
    np.testing.assert_allclose(W, W_ref, rtol=1e-8, atol=1e-10)
    C, A, bound = iv.tv_estep(T, n, f)
    assert bound == pytest.approx(bound_ref, rel=1e-8)
    T_new = iv.tv_maximise(C, A, T)
    np.testing.assert_allclose(sigma[:, None] * T_new, T_new_ref, rtol=1e-8, atol=1e-10)


def test_the_bound_is_the_marginal_log_likelihood_of_the_statistics():
    """The bound is log N(f_u; 0, N_u^-1 + T T') - log N(f_u; 0, N_u^-1) summed over the
    clips: for fixed alignments, the whitened first-order statistics per frame of a clip
    are Gaussian with that covariance, and with T = 0 without it."""
    rng = np.random.default_rng(1)
    K, D, R, U = 2, 3, 2, 4
    n = rng.uniform(0.5, 30, (U, K))
    f = rng.normal(0, 3, (U, K * D))
    T = rng.normal(0, 1, (K * D, R))

    def logn(x, cov):
        return -0.5 * (x @ np.linalg.solve(cov, x) + np.linalg.slogdet(2 * np.pi * cov)[1])

    want = 0.0
    for u in range(U):
        Ninv = np.diag(1 / np.repeat(n[u], D))
        x = Ninv @ f[u]  # the stats per frame
        want += logn(x, Ninv + T @ T.T) - logn(x, Ninv)
    assert iv.tv_estep(T, n, f)[2] == pytest.approx(want, rel=1e-9)


@settings(deadline=None, max_examples=40, database=None)
@given(
    K=st.integers(1, 4), D=st.integers(1, 3), R=st.integers(1, 4), U=st.integers(1, 9),
    seed=st.integers(0, 2**32 - 1), zero=st.booleans(),
)  # fmt: skip
def test_em_never_lowers_the_bound(K, D, R, U, seed, zero):
    rng = np.random.default_rng(seed)
    n = rng.gamma(0.7, 20, (U, K))
    if zero:  # a component no clip touches keeps its rows
        n[:, 0] = 0.0
    f = rng.normal(0, 1, (U, K * D)) * np.sqrt(np.repeat(n, D, axis=1)) * rng.uniform(0.5, 3)
    R = min(R, U, K * D)
    T, hist = iv.train_tv(n, f, R, n_iter=8)
    assert len(hist) == 9 and np.all(np.isfinite(hist))
    assert np.all(np.diff(hist) >= -1e-9 * np.maximum(1, np.abs(hist[:-1]))), hist
    if zero:
        T0, _ = iv.train_tv(n, f, R, n_iter=0)
        np.testing.assert_array_equal(T.reshape(K, D, R)[0], T0.reshape(K, D, R)[0])


def test_blocks_and_executor_do_not_change_the_statistics(monkeypatch):
    from audiogmm.engine import LocalExecutor

    rng = np.random.default_rng(2)
    n, f, T = rng.uniform(0, 9, (23, 3)), rng.normal(0, 2, (23, 6)), rng.normal(0, 1, (6, 2))
    whole = iv.tv_estep(T, n, f)
    monkeypatch.setattr(iv, "_BLOCK", 5)
    with LocalExecutor(2) as ex:
        parts = iv.tv_estep(T, n, f, executor=ex)
    for a, b in zip(whole, parts):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(iv.extract_ivectors(T, n, f), _ivecs_unblocked(T, n, f), rtol=1e-12)


def _ivecs_unblocked(T, n, f):
    K, R = n.shape[1], T.shape[1]
    D = T.shape[0] // K
    out = []
    for nu, fu in zip(n, f):
        L = np.eye(R) + T.T @ (np.repeat(nu, D)[:, None] * T)
        out.append(np.linalg.solve(L, T.T @ fu))
    return np.array(out)


# -- the back end: LDA, WCCN, cosine ------------------------------------------------------------


def _labelled(M=4, per=7, P=5, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (M, P))
    mix = rng.normal(0, 1, (P, P))
    Z = np.vstack([rng.normal(c, 1, (per, P)) @ mix for c in centres])
    return Z, [f"c{i}" for i in range(M) for _ in range(per)]


def _scatters(Z, labels):
    y = np.array(labels)
    m = Z.mean(0)
    Sw, Sb = np.zeros((Z.shape[1],) * 2), np.zeros((Z.shape[1],) * 2)
    for c in sorted(set(labels)):
        Zc = Z[y == c]
        for z in Zc:
            Sw += np.outer(z - Zc.mean(0), z - Zc.mean(0))
        Sb += len(Zc) * np.outer(Zc.mean(0) - m, Zc.mean(0) - m)
    return Sw / len(Z), Sb / len(Z)


def test_lda_maximises_the_fisher_ratio_brute_force():
    Z, labels = _labelled()
    Sw, Sb = _scatters(Z, labels)
    A = iv.lda(Z, labels, 3)
    assert A.shape == (5, 3)
    np.testing.assert_allclose(A.T @ Sw @ A, np.eye(3), atol=1e-7)  # whitens the classes
    ratio = lambda v: (v @ Sb @ v) / (v @ Sw @ v)  # noqa: E731
    top = np.sort(np.linalg.eigvals(np.linalg.solve(Sw, Sb)).real)[::-1]
    np.testing.assert_allclose([ratio(A[:, i]) for i in range(3)], top[:3], rtol=1e-7)
    rng = np.random.default_rng(0)  # no direction beats the first
    assert max(ratio(v) for v in rng.normal(size=(2000, 5))) <= ratio(A[:, 0]) * (1 + 1e-9)


def test_wccn_whitens_the_mean_class_covariance():
    Z, labels = _labelled(P=3)
    y = np.array(labels)
    W = np.mean([np.cov(Z[y == c].T, bias=True) for c in sorted(set(labels))], axis=0)
    B = iv.wccn(Z, labels)
    np.testing.assert_allclose(B @ B.T, np.linalg.inv(W), rtol=1e-5)  # the ridge
    assert np.allclose(B, np.tril(B))


def test_cosine_scores_brute_force():
    Z, labels = _labelled()
    centre, P, means = iv.cosine_back_end(Z, labels)
    assert P.shape == (5, 3) and means.shape == (4, 3)
    np.testing.assert_allclose(centre, Z.mean(0))
    np.testing.assert_allclose(P, iv.lda(Z - centre, labels, 3) @ iv.wccn((Z - centre) @ iv.lda(
        Z - centre, labels, 3), labels))  # fmt: skip
    S = iv._cosines((centre, P, means), Z)
    for i in range(0, len(Z), 5):
        x = (Z[i] - centre) @ P
        for j, c in enumerate(sorted(set(labels))):
            imgs = [(z - centre) @ P for z, lab in zip(Z, labels) if lab == c]
            m = np.mean([v / np.linalg.norm(v) for v in imgs], axis=0)
            want = x @ m / (np.linalg.norm(x) * np.linalg.norm(m))
            assert S[i, j] == pytest.approx(want, rel=1e-9)
    assert (S.argmax(1) == np.repeat(np.arange(4), 7)).mean() > 0.9


# -- the classifier -------------------------------------------------------------------------


def test_classifier_scores_are_the_calibrated_cosines_of_its_ivectors():
    clips, labels = _clips()
    clf = IVectorClassifier(4, rank=3, n_iter=4, n_jobs=1).fit(clips, labels)
    assert clf.T_.shape == (8, 3) and len(clf.tv_history_) == 5  # n_iter + 1 E-steps
    assert np.all(np.diff(clf.tv_history_) >= 0)
    n, f = iv.whitened_stats(clips, clf.ubm_)
    W = iv.extract_ivectors(clf.T_, n, f)
    np.testing.assert_allclose(clf.ivectors(clips), W)
    a, b = clf.calibration_
    cos = iv._cosines((clf.centre_, clf.projection_, clf.class_means_), W)
    np.testing.assert_allclose(clf.score_matrix(clips), a * cos + b)
    np.testing.assert_allclose(clf.score_samples(clips), a * cos + b)
    assert (clf.predict(clips) == np.array(labels)).mean() > 0.8
    # rejection: the best class's calibrated LLR against the Bayes threshold 0
    S = clf.score_matrix(clips)
    pred = clf.predict(clips, reject="auto")
    assert list(pred == UNKNOWN) == list(S.max(1) < 0)
    assert (clf.predict(clips, reject=1e9) == UNKNOWN).all()
    with pytest.raises(ParameterError, match="reject must be"):
        clf.predict(clips, reject="sometimes")


def test_progress_reports_each_em_iteration_and_no_class_adaptation():
    """The embeddings train only the UBM: no MAP-adapted class models (they were never used)."""
    clips, labels = _clips(n_per=3)
    seen = []
    IVectorClassifier(4, rank=2, n_iter=3).fit(clips, labels, progress=lambda *a: seen.append(a))
    assert seen == [(i, 3, "Training the i-vector extractor") for i in (1, 2, 3)]


def test_rank_is_capped_by_the_data_and_parameters_are_checked():
    clips, labels = _clips(n_per=3)
    clf = IVectorClassifier(4, rank=100, n_iter=1).fit(clips, labels)
    assert clf.T_.shape[1] == len(clips) - 3  # full-rank within-class scatter
    for bad in (dict(rank=0), dict(n_iter=-1), dict(rank=2.5)):
        with pytest.raises(ParameterError, match=next(iter(bad))):
            IVectorClassifier(4, **bad).fit(clips, labels)
    one = IVectorClassifier(4, rank=2, n_iter=1).fit(clips[:3], labels[:3])
    assert one.predict(clips[:2]).tolist() == ["c0", "c0"] and one.calibration_ is None
    with pytest.raises(ParameterError, match="calibrated"):
        one.predict(clips[:1], reject="auto")


def test_save_load_roundtrip(tmp_path):
    clips, labels = _clips()
    clf = IVectorClassifier(4, rank=3, n_iter=2).fit(clips, labels)
    clf.save(tmp_path / "iv.npz")
    back = IVectorClassifier.load(tmp_path / "iv.npz")
    assert isinstance(back, IVectorClassifier) and (back.rank, back.n_iter) == (3, 2)
    np.testing.assert_array_equal(back.score_matrix(clips), clf.score_matrix(clips))
    assert back.tv_history_ == clf.tv_history_ and back.calibration_ == clf.calibration_


# -- the command line -------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["ivector", "gsv"])
def test_cli_train_evaluate_predict_verify_reject_info(backend, tmp_path):
    for spk in PICK:
        (tmp_path / "data" / spk).mkdir(parents=True)
        for f in sorted((SPEAKERS / spk).glob("*.flac"))[:8]:
            shutil.copy(f, tmp_path / "data" / spk / f.name)
    data, model = tmp_path / "data", tmp_path / "m.npz"
    out = json.loads(cli(["-q", "train", data, "-o", model, "--backend", backend, "-k", "8",
                          "--jobs", "1", "--json"]).output)  # fmt: skip
    assert out["backend"] == backend and out["n_components"] == 8
    clf = load_model(model).classifier
    assert clf.ubm_.n_components == 8 and clf.calibration_ is not None
    ev = json.loads(cli(["-q", "evaluate", model, data, "--jobs", "1", "--json"]).output)
    assert ev["accuracy"] >= 0.75
    # predict --reject: the best class's calibrated LLR against the threshold (auto: 0)
    clips = sorted((SPEAKERS / "flite_slt").glob("*.flac"))[8:10]
    pr = json.loads(cli(["-q", "predict", model, *clips, "--reject", "auto", "--json"]).output)
    X = extract_many([str(c) for c in clips], config=load_model(model).config).features
    S = clf.score_matrix([X[str(c)] for c in clips])
    want = clf.rejection_scores(S, np.array([len(X[str(c)]) for c in clips]))
    best = clf.log_proba_from_scores(S).argmax(1)
    np.testing.assert_allclose(want, clf.verification_scores(S, None)[np.arange(len(best)), best])
    for r, w in zip(pr["results"], want):
        assert r["threshold"] == 0.0 and r["reject_score"] == pytest.approx(w)
        assert (r["label"] == UNKNOWN) == (w < 0)
    pr = json.loads(cli(["-q", "predict", model, clips[0], "--reject", "1e9", "--json"]).output)
    assert pr["results"][0]["label"] == UNKNOWN
    # evaluate --reject on held-out files of known and unknown speakers: open-set rates
    held = tmp_path / "held"
    for spk, files in (("ast_en", slice(8, 11)), ("ast_fr", slice(8, 11)), ("flite_rms", slice(3))):
        (held / spk).mkdir(parents=True)
        for f in sorted((SPEAKERS / spk).glob("*.flac"))[files]:
            shutil.copy(f, held / spk / f.name)
    ev = json.loads(cli(["-q", "evaluate", model, held, "--split", "all", "--reject", "auto",
                         "--jobs", "1", "--json"]).output)  # fmt: skip
    assert (ev["n"], ev["open_set"]["n_unknown"]) == (9, 3)
    # verify: calibrated scores, Cllr beside EER
    test = [(f, spk) for spk in PICK for f in sorted((SPEAKERS / spk).glob("*.flac"))[8:10]]
    rows = ["path,claim,target"] + [f"{f},{c},{int(c == s)}" for f, s in test for c in PICK]
    (tmp_path / "trials.csv").write_text("\n".join(rows) + "\n")
    res = json.loads(cli(["-q", "verify", model, tmp_path / "trials.csv", "--json"]).output)
    y, s = [t["target"] for t in res["trials"]], [t["score"] for t in res["trials"]]
    assert res["metrics"]["cllr"] == pytest.approx(cllr(y, s)) and res["metrics"]["eer"] <= 0.25
    # info: the UBM size and the back end's own numbers
    info = json.loads(cli(["info", model, "--json"]).output)
    assert info["backend"] == backend and info["n_components"] == 8
    block = info[backend]
    assert block["ubm_components"] == 8
    assert ("rank" in block) if backend == "ivector" else block["relevance"] == 4.0
    text = cli(["info", model]).output
    assert f"backend:       {backend}" in text and "calibrated to LLRs" in text
    # no class mixtures to report on: the re-seeds and likelihood are the UBM's, on its line
    classes = text.split("UBM fit:", 1)[1].split("\n", 1)[1]
    assert "nan" not in text and "re-seeded" not in classes


@pytest.mark.parametrize("args, flag", [
    (["--backend", "ivector", "--relevance", "4"], "--relevance"),
    (["--backend", "ivector", "--adapt", "mw"], "--adapt"),
    (["--backend", "ivector", "--reject-far", "0.1"], "--reject-far"),
])  # fmt: skip
def test_cli_options_ivector_does_not_read_are_usage_errors(args, flag):
    from audiogmm.cli import train

    ctx = train.train.make_context("train", [str(SPEAKERS), "-o", "m.npz", *args])
    with pytest.raises(Exception, match=flag):
        train.backend_params(ctx, ctx.params["backend"], ctx.params)


def test_cli_k_is_the_ubm_size_of_ivector():
    from audiogmm.cli import train

    def params(*args):
        ctx = train.train.make_context("train", [str(SPEAKERS), "-o", "m.npz", *args])
        return train.backend_params(ctx, ctx.params["backend"], ctx.params)

    assert params("--backend", "ivector") == {"n_components": 256}
    assert params("--backend", "ivector", "-k", "32") == {"n_components": 32}


@pytest.mark.parametrize("kind", ["one clip per class", "all identical"])
def test_cosine_back_end_of_a_degenerate_fold_is_finite(kind):
    # auto's CV folds can hold one clip per class (no within-class scatter) or identical
    # i-vectors; LDA and WCCN once overflowed there, and eigh stopped with "did not converge"
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(4, 6)) if kind == "one clip per class" else np.ones((4, 6))
    centre, P, means = iv.cosine_back_end(Z, ["a", "b", "c", "d"])
    assert P.shape == (6, 3) and np.isfinite(P).all() and np.isfinite(means).all()
