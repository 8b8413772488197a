"""Cold start: the front end is librosa's arithmetic without librosa (or scipy).

The spectral and post-processing steps no longer call librosa at run time (its
modules compile numba code on first use), nor scipy on the default path (its
``fft``/``ndimage`` imports cost ~0.25 s per process). These tests hold the restated
formulas to *exact* equality with librosa (``np.array_equal``, not a tolerance) for
the window, mel filterbank, ``power_to_db`` and deltas, for every window, every
preset and on real and random signals. The one step computed differently is the
DCT of the MFCC (a float64 matrix product instead of scipy's float32 FFT-based
DCT): it is checked against the exact float64 DCT to within one rounding of the
output dtype, and against librosa to within a few. The tests also check in a fresh
interpreter that an extraction imports neither librosa, numba nor scipy. They also check
the numba threshold of the E-step kernels and the numba cache folder.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import textwrap
import warnings

import librosa
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audiogmm.features import PRESETS, extract, spectral
from audiogmm.features import config as fconfig
from audiogmm.features.config import WINDOWS
from audiogmm.features.spectral import window

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIPS = sorted(glob.glob(os.path.join(ROOT, "data_samples", "*", "*", "*.flac")))


def _same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.array_equal(a, b), f"max abs diff {np.max(np.abs(a - b))}"


# ---------------------------------------------------------------------- pieces
@pytest.mark.parametrize("name", sorted(WINDOWS))
@pytest.mark.parametrize("n", [1, 2, 3, 200, 400, 551, 1102, 2048])
def test_window_is_librosa_get_window(name, n):
    window.cache_clear()
    _same(window(name, n), librosa.filters.get_window(name, n, fftbins=True))


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("htk", [False, True])
@pytest.mark.parametrize("norm", ["slaney", None])
def test_mel_filterbank_is_librosa_mel(name, htk, norm):
    c = PRESETS[name]
    kw = dict(sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax)
    _same(
        spectral.mel_filterbank(**kw, htk=htk, norm=norm),
        librosa.filters.mel(**kw, htk=htk, norm=norm),
    )


@settings(max_examples=40, deadline=None)
@given(
    sr=st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000]),
    n_fft=st.sampled_from([128, 255, 256, 512, 1024, 2048]),
    n_mels=st.integers(1, 64),
    fmin=st.floats(0, 900),
    fmax_frac=st.one_of(st.none(), st.floats(0.5, 1.0)),
    htk=st.booleans(),
)
def test_mel_filterbank_is_librosa_mel_everywhere(sr, n_fft, n_mels, fmin, fmax_frac, htk):
    fmax = None if fmax_frac is None else fmax_frac * sr / 2
    kw = dict(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa's 'empty filters' warning: compare numbers only
        ref = librosa.filters.mel(**kw)
    _same(spectral.mel_filterbank(**kw), ref)


def _librosa_cepstra(mel: np.ndarray, c) -> np.ndarray:
    log_mel = librosa.power_to_db(mel, ref=1.0, amin=spectral.AMIN, top_db=c.top_db)
    return librosa.feature.mfcc(S=log_mel, n_mfcc=c.n_mfcc, lifter=c.lifter)


def _exact_cepstra(mel: np.ndarray, c) -> np.ndarray:
    """librosa's formulas with the DCT in float64 (scipy's, on the float64 log spectrum)."""
    import scipy.fft

    log_mel = librosa.power_to_db(mel, ref=1.0, amin=spectral.AMIN, top_db=c.top_db)
    M = scipy.fft.dct(log_mel.astype(np.float64), axis=-2, type=2, norm="ortho")[: c.n_mfcc]
    if c.lifter > 0:
        M *= 1 + (c.lifter / 2) * np.sin(np.pi * np.arange(1, 1 + c.n_mfcc) / c.lifter)[:, None]
    return M


def _dct_close(ours: np.ndarray, ref: np.ndarray, exact: np.ndarray) -> None:
    """Within one output rounding of the exact DCT, and a few of librosa's float32 one."""
    assert ours.dtype == ref.dtype and ours.shape == ref.shape
    eps = np.finfo(ours.dtype).eps
    scale = np.max(np.abs(exact))  # a DCT output's error scales with the whole input
    err = np.max(np.abs(ours.astype(np.float64) - exact))
    assert err <= 2 * eps * scale, f"{err} vs exact (scale {scale})"
    err = np.max(np.abs(ours.astype(np.float64) - ref.astype(np.float64)))
    assert err <= 16 * eps * scale, f"{err} vs librosa (scale {scale})"


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("seed", range(3))
def test_cepstra_are_librosa_power_to_db_and_mfcc(name, seed):
    c = PRESETS[name]
    rng = np.random.default_rng(seed)
    mel = (rng.standard_normal((c.n_mels, 57)) ** 2 * 10.0 ** rng.uniform(-14, 2)).astype(
        np.float32
    )
    mel[:, :3] = 0.0  # digital silence hits the amin floor
    for m in (mel, np.asfortranarray(mel), mel.T.copy().T):  # as laid out by mel_and_energy
        _dct_close(spectral.cepstra(m, c), _librosa_cepstra(m, c), _exact_cepstra(m, c))
    for lifter in (0.0, 1.5, 22.0):
        for top_db in (None, 80.0, 3.0):
            cc = c.replace(lifter=lifter, top_db=top_db)
            _dct_close(spectral.cepstra(mel, cc), _librosa_cepstra(mel, cc),
                       _exact_cepstra(mel, cc))  # fmt: skip


def test_cepstra_fail_on_a_wrong_dct():
    # the tolerance of _dct_close is far below any real mistake (norm, lifter, offset)
    c = PRESETS["speech"]
    mel = (np.random.default_rng(0).standard_normal((c.n_mels, 30)) ** 2).astype(np.float32)
    ours = spectral.cepstra(mel, c)
    with pytest.raises(AssertionError):
        _dct_close(ours, _librosa_cepstra(mel, c.replace(lifter=21.0)), _exact_cepstra(mel, c))
    with pytest.raises(AssertionError):
        _dct_close(ours * np.float32(1 + 1e-5), _librosa_cepstra(mel, c), _exact_cepstra(mel, c))


@pytest.mark.parametrize("mode", ["nearest", "mirror", "constant", "wrap"])
@pytest.mark.parametrize("width", [3, 9, 15])
@pytest.mark.parametrize("n", [1, 2, 4, 5, 7, 8, 9, 10, 30])
def test_delta_is_librosa_delta_on_short_clips(mode, width, n):
    x = np.random.default_rng(n).standard_normal((13, n)).astype(np.float32)
    for order in (1, 2):
        _same(
            spectral.delta(x, width=width, order=order, mode=mode),
            librosa.feature.delta(x, width=width, order=order, mode=mode),
        )


@pytest.mark.parametrize("mode", ["nearest", "mirror", "constant", "wrap", "interp"])
@pytest.mark.parametrize("width", [3, 5, 9])
@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_delta_is_librosa_delta(mode, width, order, dtype):
    x = np.random.default_rng(width * 10 + order).standard_normal((13, 41)).astype(dtype)
    spectral._savgol_coeffs.cache_clear()
    _same(
        spectral.delta(x, width=width, order=order, mode=mode),
        librosa.feature.delta(x, width=width, order=order, mode=mode),
    )


# ---------------------------------------------------------------------- end to end
@pytest.fixture
def librosa_front_end(monkeypatch):
    """Swap every restated formula for the librosa call it replaced."""

    def padded_window(name, win_length, n_fft):
        w = librosa.filters.get_window(name, win_length, fftbins=True)
        return librosa.util.pad_center(w, size=n_fft).astype(np.float32)

    def mel_filterbank(**kw):  # the same layout as ours: the transpose of a C-order array
        return np.ascontiguousarray(librosa.filters.mel(**kw).T).T

    def energy_norm(name, win_length, n_fft):
        w = librosa.filters.get_window(name, win_length, fftbins=True)
        return 1.0 / (n_fft * float(np.sum(np.asarray(w, dtype=np.float64) ** 2)))

    def delta(ceps, *, width, order, mode):
        return librosa.feature.delta(ceps, width=width, order=order, mode=mode)

    monkeypatch.setattr(spectral, "_padded_window", padded_window)
    monkeypatch.setattr(spectral, "mel_filterbank", mel_filterbank)
    monkeypatch.setattr(spectral, "_energy_norm", energy_norm)
    # the cepstra stay ours on both sides: their DCT is checked on its own above
    monkeypatch.setattr("audiogmm.features.extraction.numpy_delta", delta)


def _variants():
    for name, c in PRESETS.items():
        yield name, c
        for w in ("hann", "hamming", "blackman"):
            if w != c.window:
                yield f"{name}-{w}", c.replace(window=w)
    yield "speech-htk-nonorm", PRESETS["speech"].replace(htk=True, mel_norm=None, lifter=0.0)
    yield "dcase-float64", PRESETS["dcase2016"].replace(dtype="float64")


VARIANTS = dict(_variants())


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_extract_is_bit_identical_to_the_librosa_front_end(variant, request):
    c = VARIANTS[variant]
    rng = np.random.default_rng(7)
    signals = [np.asarray(0.1 * rng.standard_normal(c.sample_rate), dtype=np.float32)]
    signals += [str(p) for p in CLIPS[:: max(1, len(CLIPS) // 4)]]
    ours = [extract(s, config=c, keep_all_frames=True) for s in signals]
    request.getfixturevalue("librosa_front_end")
    ref = [extract(s, config=c, keep_all_frames=True) for s in signals]
    assert len(ours) >= 4
    for a, b in zip(ours, ref):
        _same(a, b)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(400, 6000),
    scale=st.floats(1e-6, 1.0),
    seed=st.integers(0, 2**31 - 1),
    name=st.sampled_from(sorted(VARIANTS)),
)
def test_extract_is_bit_identical_on_random_signals(n, scale, seed, name):
    c = VARIANTS[name]
    y = (scale * np.random.default_rng(seed).standard_normal(max(n, c.win_length)))
    y = y.astype(np.float32)
    ours = extract(y, config=c, keep_all_frames=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            "audiogmm.features.extraction.numpy_delta",
            lambda x, **kw: librosa.feature.delta(x, **kw),
        )
        ref = extract(y, config=c, keep_all_frames=True)
    _same(ours, ref)


def test_feature_format_version_bumped_for_the_numpy_fft_and_dct():
    # version 2: numpy's FFT and the float64 DCT change the last bits of the features,
    # so caches written by version 1 must not be reused (the version is in the cache key)
    assert fconfig.FEATURE_FORMAT_VERSION >= 2


# ---------------------------------------------------------------------- imports
def _fresh(code: str, env: dict | None = None) -> str:
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT, **(env or {})},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("preset", ["speech", "dcase2016"])
def test_extraction_imports_neither_librosa_nor_numba(preset):
    assert CLIPS
    out = _fresh(
        f"""
        import sys
        from audiogmm.features.extraction import extract
        from audiogmm.features import PRESETS
        x = extract({CLIPS[0]!r}, config=PRESETS[{preset!r}])
        assert x.shape[0] > 10
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("librosa", "numba")))
        """
    )
    assert out.strip() == "[]"


@pytest.mark.parametrize("preset", ["general", "speech"])
def test_extraction_imports_no_scipy(preset):
    # scipy.fft + scipy.ndimage cost ~0.25 s per process: more than a small run's extraction
    out = _fresh(
        f"""
        import sys
        from audiogmm.features import PRESETS
        from audiogmm.features.extraction import extract
        extract({CLIPS[0]!r}, config=PRESETS[{preset!r}])
        print(sorted(m for m in sys.modules if m.split(".")[0] == "scipy"))
        """
    )
    assert out.strip() == "[]"


def test_train_and_evaluate_commands_import_no_scipy(tmp_path):
    # nor multiprocessing: worker processes only when asked, and their import costs ~10 ms
    out = _fresh(
        f"""
        import sys
        from click.testing import CliRunner
        from audiogmm.cli import main
        data = {os.path.join(ROOT, "data_samples", "speakers")!r}
        m = {str(tmp_path / "m.npz")!r}
        for args in (["train", data, "-o", m, "-k", "2", "--max-iter", "3"],
                     ["evaluate", m, data]):
            r = CliRunner().invoke(main, ["-q", *args])
            assert r.exit_code == 0, r.output
        heavy = ("scipy", "librosa", "numba", "multiprocessing")
        print(sorted(m for m in sys.modules if m.split(".")[0] in heavy))
        """
    )
    assert out.strip() == "[]"


# ---------------------------------------------------------------------- numba
def test_use_numba_size_rule_and_overrides(monkeypatch):
    from audiogmm.exceptions import ParameterError
    from audiogmm.mixture import kernels

    monkeypatch.setattr(kernels, "HAVE_NUMBA", True)
    monkeypatch.delenv("AUDIOGMM_NUMBA", raising=False)
    big, small = kernels.NUMBA_MIN_WORK, kernels.NUMBA_MIN_WORK - 1
    assert kernels.use_numba(big) and not kernels.use_numba(small)
    assert kernels.use_numba(small, True) and not kernels.use_numba(big, False)
    assert not kernels.use_numba(big, single_pass=True)  # scoring must repay the load alone
    assert not kernels.use_numba(64 * big, single_pass=True)  # map's scoring of 1e8 elements
    assert kernels.use_numba(256 * big, single_pass=True)
    # a pass of a known run: numba only where the whole run repays its load
    run = kernels.NUMBA_MIN_RUN_WORK
    assert kernels.use_numba(big, passes=run // big) and not kernels.use_numba(big, passes=3)
    assert not kernels.use_numba(small, passes=10**9)  # each pass must be big enough too
    assert kernels.use_numba(big, True, passes=1) and not kernels.use_numba(run, False, passes=9)
    monkeypatch.setenv("AUDIOGMM_NUMBA", "1")
    assert kernels.use_numba(1) and not kernels.use_numba(big, False)
    monkeypatch.setenv("AUDIOGMM_NUMBA", "0")
    assert not kernels.use_numba(big) and not kernels.use_numba(big, True)
    monkeypatch.setenv("AUDIOGMM_NUMBA", "yes")
    with pytest.raises(ParameterError, match="AUDIOGMM_NUMBA"):
        kernels.use_numba(big)
    monkeypatch.setattr(kernels, "HAVE_NUMBA", False)
    monkeypatch.setenv("AUDIOGMM_NUMBA", "1")
    assert not kernels.use_numba(big, True)


def test_em_runs_decide_numba_by_their_length(monkeypatch):
    """A fit tells the E-step how many passes its run takes: a UBM-like short run over big
    passes stays on NumPy (numba's load would cost more than it saves), a long one does not;
    a caller's own E-step (length unknown) keeps the per-pass rule."""
    from audiogmm.mixture import DiagGMM, accumulate, kernels

    seen = []

    def spy(work, fast=None, **kw):
        seen.append((work, kw.get("passes")))
        return False  # decide nothing: only what was asked is checked

    monkeypatch.setattr(kernels, "use_numba", spy)
    X = np.random.default_rng(0).standard_normal((600, 3)).astype(np.float32)
    for max_iter in (2, 40):
        seen.clear()
        DiagGMM(4, max_iter=max_iter, tol=0.0, random_state=0).fit(X)
        assert seen and {p for _, p in seen} == {max_iter + 1}, seen
    g = DiagGMM(4, max_iter=3, tol=0.0, random_state=0).fit(X)
    seen.clear()
    accumulate(X, g.params_)
    assert seen == [(600 * 4, None)]


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("weighted", [False, True])
def test_forced_numba_matches_numpy_on_small_problems(monkeypatch, dtype, tol, weighted):
    from audiogmm.mixture import kernels
    from audiogmm.mixture.estep import accumulate, stacked_log_likelihood
    from audiogmm.mixture.stats import Params

    if not kernels.HAVE_NUMBA:
        pytest.skip("numba not installed")
    rng = np.random.default_rng(3)
    X = rng.normal(0, 2, (700, 5)).astype(dtype)
    sw = rng.uniform(0, 2, 700) if weighted else None
    ps = [Params(rng.dirichlet(np.ones(8)), rng.normal(0, 2, (8, 5)), rng.uniform(0.3, 2, (8, 5)))
          for _ in range(3)]  # fmt: skip
    W = np.stack([p.weights for p in ps])
    Mu, V = np.stack([p.means for p in ps]), np.stack([p.variances for p in ps])
    ref = accumulate(X, ps[0], sample_weight=sw, fast=False)
    ref_s = stacked_log_likelihood(X, W, Mu, V, fast=False)

    def no_numpy(*a, **k):
        raise AssertionError("the NumPy path ran although numba was forced")

    monkeypatch.setattr(kernels, "_resp_inplace_numpy", no_numpy)
    monkeypatch.setattr(kernels, "_segment_lse_numpy", no_numpy)
    monkeypatch.setenv("AUDIOGMM_NUMBA", "1")
    got = accumulate(X, ps[0], sample_weight=sw)
    got_s = stacked_log_likelihood(X, W, Mu, V)
    assert got.allclose(ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(got_s, ref_s, rtol=tol)
    monkeypatch.delenv("AUDIOGMM_NUMBA")
    with pytest.raises(AssertionError, match="NumPy path ran"):
        accumulate(X, ps[0], sample_weight=sw)  # small: the size rule picks NumPy


def test_mixed_dtypes_and_strided_outputs_run_the_numpy_twin(monkeypatch):
    # the kernels take one float dtype, C-contiguous: the 2-D view of a 1-D output must be a
    # view, not a copy that the kernel would fill and drop
    from audiogmm.mixture import kernels

    calls = []
    kernel = lambda *a: calls.append(a)  # noqa: E731
    monkeypatch.setattr(kernels, "_compiled", lambda: {np.dtype(np.float32): kernel,
                                                       np.dtype(np.float64): kernel})
    monkeypatch.setattr(kernels, "HAVE_NUMBA", True)
    L = np.zeros((4, 3), np.float32)
    kernels.resp_inplace(L, None, np.empty(8, np.float32)[::2], fast=True)  # strided lse
    kernels.resp_inplace(L, np.ones(4), np.empty(4, np.float32), fast=True)  # float64 weights
    kernels.segment_lse(np.zeros((4, 6), np.float16), 3, np.empty((4, 2)), fast=True)
    assert calls == [] and np.allclose(L, 1 / 3)
    kernels.resp_inplace(L, None, np.empty(4, np.float32), fast=True)
    kernels.segment_lse(np.zeros((4, 6), np.float32), 3, np.empty((4, 2)), fast=True)  # scores
    assert len(calls) == 2


def test_small_fit_and_scoring_do_not_import_numba():
    out = _fresh(
        """
        import sys
        import numpy as np
        from audiogmm.mixture.diag import DiagGMM
        X = np.random.default_rng(0).normal(size=(3000, 20)).astype(np.float32)
        g = DiagGMM(16, random_state=0).fit(X)
        g.score_samples(X)
        print(sorted(m for m in sys.modules if m.split(".")[0] == "numba"))
        """
    )
    assert out.strip() == "[]"


def test_numba_cache_dir_rule(tmp_path):
    from audiogmm.mixture.kernels import numba_cache_dir

    ro = tmp_path / "site"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        writable = os.access(ro, os.W_OK)  # root may write anyway
        env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
        expect = None if writable else str(tmp_path / "xdg" / "audiogmm" / "numba")
        assert numba_cache_dir(str(ro), env) == expect
        assert numba_cache_dir(str(ro), {**env, "NUMBA_CACHE_DIR": "/x"}) is None
    finally:
        ro.chmod(0o755)
    assert numba_cache_dir(str(tmp_path), {}) is None


def test_kernels_cache_under_home_when_the_package_is_read_only(tmp_path):
    from audiogmm.mixture import kernels

    if not kernels.HAVE_NUMBA:
        pytest.skip("numba not installed")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(XDG_CACHE_HOME=str(tmp_path), PYTHONPATH=ROOT, AUDIOGMM_NUMBA="1")
    code = """
        import os
        real = os.access
        import audiogmm.mixture.kernels as k
        pkg = os.path.dirname(os.path.abspath(k.__file__))
        os.access = lambda p, m, **kw: False if os.path.abspath(p) == pkg else real(p, m, **kw)
        import numpy as np
        L = np.zeros((4, 3)); lse = np.empty(4)
        k.resp_inplace(L, None, lse)
        import numba
        print(numba.config.CACHE_DIR)
        """
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                       text=True, cwd=str(tmp_path), env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    cache = tmp_path / "audiogmm" / "numba"
    assert r.stdout.strip() == str(cache)
    assert any(p.suffix in (".nbi", ".nbc") for p in cache.rglob("*"))


def test_the_command_starts_blas_on_one_thread():
    # the console entry point sets the BLAS thread count before numpy loads: a BLAS thread
    # pool spins up at import (~0.1-0.2 s of CPU per command) that no command uses
    pytest.importorskip("threadpoolctl")
    # (other tests' imports may leave OMP_NUM_THREADS set, which OpenBLAS reads too)
    blas_vars = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    env = {k: v for k, v in os.environ.items() if k not in blas_vars}
    env["PYTHONPATH"] = ROOT
    code = textwrap.dedent(
        """
        import sys
        from audiogmm.__main__ import one_blas_thread_env
        if sys.argv[1] == "entry":
            one_blas_thread_env()
        import numpy, threadpoolctl
        print([i["num_threads"] for i in threadpoolctl.threadpool_info()
               if i["user_api"] == "blas"])
        """
    )

    def threads(how: str, **more: str) -> str:
        return subprocess.run([sys.executable, "-c", code, how], env={**env, **more},
                              check=True, capture_output=True, text=True).stdout.strip()
    library = threads("library")  # a library import leaves the user's BLAS alone
    if library in ("[]", "[1]"):
        pytest.skip(f"BLAS threads by default: {library}; nothing to show")
    assert threads("entry") == "[1]"
    assert threads("entry", OPENBLAS_NUM_THREADS="2") == "[2]"  # the user's setting wins


def test_the_command_keeps_freed_memory_for_the_next_arrays():
    # glibc maps each ~1 MB array afresh and returns it on free: every clip's arrays were
    # faulted in again (10-15 % of a two-thread extraction); the command keeps them
    code = textwrap.dedent(
        """
        import resource, sys
        import numpy as np
        from audiogmm.__main__ import keep_freed_memory
        applied = keep_freed_memory() if sys.argv[1] == "entry" else None
        x = np.random.default_rng(0).standard_normal((166, 1024))
        def clips():
            for _ in range(50):
                np.fft.rfft(x.copy(), axis=-1)
        clips()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        clips()
        print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["PYTHONPATH"] = ROOT

    def run(how: str, **more: str) -> list[str]:
        return subprocess.run([sys.executable, "-c", code, how], env={**env, **more},
                              check=True, capture_output=True, text=True).stdout.split()
    applied, faults = run("entry")
    if applied == "False":
        pytest.skip("no glibc mallopt here")
    _, library_faults = run("library")  # a library import leaves the allocator alone
    assert int(faults) < 100 < int(library_faults)
    assert run("entry", MALLOC_ARENA_MAX="2")[0] == "False"  # the user's tuning wins


def test_a_second_process_loads_the_kernel_from_numbas_cache_and_computes_the_same(tmp_path):
    # a compiled function held in a closure pickles differently in every process, and numba
    # keys its cache by the closure's pickle: such kernels compiled again in every command
    from audiogmm.mixture import kernels

    if not kernels.HAVE_NUMBA:
        pytest.skip("numba not installed")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "nb"), "PYTHONPATH": ROOT}
    code = """
        import hashlib
        import numpy as np
        from audiogmm.mixture import kernels
        rng = np.random.default_rng(0)
        h = hashlib.sha256()
        for K in (16, 64, 256):
            L = (30 * rng.standard_normal((3000, K))).astype(np.float32)
            lse = np.empty(3000, np.float32)
            kernels.resp_inplace(L, None, lse)
            h.update(L.tobytes() + lse.tobytes())
            kernels.resp_inplace(L, rng.random(3000).astype(np.float32), lse)
            S, out = (30 * rng.standard_normal((500, 4 * K))).astype(np.float32), np.empty(
                (500, 4), np.float32)
            kernels.segment_lse(S, K, out)
            h.update(L.tobytes() + lse.tobytes() + out.tobytes())
            L64 = 30 * rng.standard_normal((300, K))
            kernels.resp_inplace(L64, None, lse64 := np.empty(300))
            h.update(L64.tobytes() + lse64.tobytes())
        from audiogmm.mixture import compiled
        st = [compiled.blocks_lse32.stats, compiled.blocks_lse64.stats]
        print(sum(sum(s.cache_hits.values()) for s in st),
              sum(sum(s.cache_misses.values()) for s in st), h.hexdigest())
        """
    runs = [subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                           text=True, cwd=str(tmp_path), env=env) for _ in range(2)]  # fmt: skip
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
    first, second = (r.stdout.split() for r in runs)
    assert first[:2] == ["0", "2"] and second[:2] == ["2", "0"]  # compiled, then loaded
    # the same numbers from the kernel compiled here and the one loaded from the cache: a
    # kernel calling another ran inlined when compiled, linked apart when loaded, and its
    # float32 responsibilities differed in the last bit (K = 64, 256)
    assert first[2] == second[2]
