"""Adversarial reliability suite (the "reliability" issue), against the public API only.

Public API used: ``audiogmm.DiagGMM``, ``GMMClassifier``, ``FeatureConfig``, ``extract``,
``ModelFileError``, ``ParameterError``, ``AudioError``, ``audiogmm.audio.load``,
``audiogmm.cli.main`` (through ``CliRunner``) and the ``audiogmm`` console script
(through ``subprocess``). Nothing here imports a private module, so the tests survive a
restructuring of the package internals. (The model-file and file-mode sections, with
the container helpers, moved to tests/test_model_file.py and tests/test_files.py.)

These tests are meant to FAIL on the code that the issue describes and to pass once:

* the model loader trusts nothing (member names/sizes/shapes checked before
  decompressing, bounded header size and nesting, every header field validated) and
  loading any file under 10 MB costs < 300 MB;
* audio with an absurd sample rate or absurd samples is refused with ``AudioError``
  naming the file, and a permission problem says "permission denied";
* no fit ends with non-finite parameters, ``sample_weight`` and ``*_init`` are
  validated with ``ParameterError``, scores are finite for finite input, and log
  posteriors sum to 1;
* a dead extraction worker costs only its file, and killing the CLI with SIGKILL
  leaves no process of the run alive;
* written files honour the umask (and keep an overwritten file's mode), leftover
  temporary files are cleaned up, unwritable outputs are detected before the work;
* the CLI skips unreadable inputs in every command, escapes control characters in
  file names, and reports every error as one line naming the user's path.

Root ignores file permissions, so the permission tests drop to user ``nobody`` with
``os.setresuid`` (saved uid 0, restored afterwards) instead of being skipped.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import psutil
import pytest
import soundfile as sf
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import audiogmm
import audiogmm.audio
from audiogmm import (
    AudioError,
    DiagGMM,
    FeatureConfig,
    GMMClassifier,
    ParameterError,
)
from audiogmm.cli import main

from ..conftest_audio import speech_like

ROOT = Path(__file__).resolve().parents[1]
SPEAKERS = ROOT / "data_samples" / "speakers"
NOBODY = 65534
MB = 1 << 20

# ======================================================================================
# Shared fixtures and helpers
# ======================================================================================

_TMP = tempfile.mkdtemp(prefix="audiogmm-reliability-")
atexit.register(shutil.rmtree, _TMP, True)


@functools.cache
def base_model(kind: str) -> str:
    """A small valid model file of ``kind`` ("GMMClassifier" or "DiagGMM"); do not modify."""
    rng = np.random.default_rng(0)
    path = os.path.join(_TMP, f"base-{kind}.npz")
    if kind == "GMMClassifier":
        cfg = FeatureConfig.preset("speech")
        clips = [rng.normal(m, 1.0, (120, cfg.n_dims)) for m in (0.0, 0.0, 3.0, 3.0)]
        clf = GMMClassifier(2, feature_config=cfg, n_jobs=1, random_state=0, max_iter=20)
        clf.fit(clips, ["a", "a", "b", "b"])
        clf.save(path)
    else:
        DiagGMM(2, random_state=0, n_jobs=1).fit(rng.normal(0, 1, (300, 3))).save(path)
    return path


def wav_bytes(sr: int, samples, *, channels: int = 1, bits: int = 16, fmt: int = 1) -> bytes:
    """A canonical RIFF/WAVE file (44-byte header) built with struct: any header values."""
    samples = np.asarray(samples)
    if fmt == 3:
        data = samples.astype("<f4").tobytes()
    elif bits == 8:
        data = (samples.astype(np.int16) // 256 + 128).astype(np.uint8).tobytes()
    else:
        data = samples.astype("<i2").tobytes()
    block = channels * bits // 8
    fmt_chunk = struct.pack(
        "<4sIHHIIHH", b"fmt ", 16, fmt, channels, sr & 0xFFFFFFFF, (sr * block) & 0xFFFFFFFF,
        block, bits,
    )  # fmt: skip
    body = b"WAVE" + fmt_chunk + struct.pack("<4sI", b"data", len(data)) + data
    return struct.pack("<4sI", b"RIFF", len(body)) + body


@contextlib.contextmanager
def unprivileged():
    """Run the block as user ``nobody`` (real and effective uid) when we are root.

    Root bypasses file permissions, so chmod 000 alone proves nothing in CI containers.
    The saved uid stays 0, so privileges are restored afterwards.
    """
    if os.geteuid() != 0:
        yield
        return
    os.setresuid(NOBODY, NOBODY, 0)
    try:
        yield
    finally:
        os.setresuid(0, 0, 0)


@pytest.fixture
def public_dir():
    """A folder user ``nobody`` can traverse (pytest's tmp_path is 0700 root)."""
    d = Path(tempfile.mkdtemp(prefix="audiogmm-public-"))
    os.chmod(d, 0o755)
    yield d
    for dirpath, dirnames, filenames in os.walk(d):
        for n in dirnames + filenames:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(dirpath, n), 0o700)
    shutil.rmtree(d, ignore_errors=True)


def invoke(args, **kw):
    """Run the CLI in-process; stdout and stderr are kept apart."""
    return CliRunner().invoke(main, [str(a) for a in args], **kw)


def assert_one_line_error(r, path) -> None:
    """Exit 1, no traceback, exactly one stderr line, naming the user's path as given."""
    assert r.exception is None or isinstance(r.exception, SystemExit), (
        f"raw exception {type(r.exception).__name__}: {r.exception}"
    )
    assert r.exit_code == 1, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one error line, got:\n{r.stderr}"
    assert "Traceback" not in r.output
    assert str(path) in lines[0], f"error does not name {path}: {lines[0]}"


def console_script() -> list[str]:
    """The installed ``audiogmm`` entry point, run with this interpreter's environment."""
    script = Path(sys.executable).parent / "audiogmm"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from audiogmm.cli import main; sys.exit(main())"]


def script_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def speaker_clips(speaker: str, n: int) -> list[Path]:
    return sorted((SPEAKERS / speaker).glob("*.flac"))[:n]


# -- subprocess memory harness ---------------------------------------------------------

_CHILD = r"""
import json, os, resource, sys
def status(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
spec = json.loads(sys.argv[1])
import numpy as np
import audiogmm, audiogmm.audio
from audiogmm import DiagGMM, GMMClassifier
if spec["op"] == "model":
    call = {"DiagGMM": DiagGMM.load, "GMMClassifier": GMMClassifier.load}[spec["kind"]]
    call(spec["warm"])  # warm-up on a valid file: imports, first-use allocations
    arg = spec["path"]
else:
    import soundfile as sf
    call = lambda p: audiogmm.audio.load(p, sr=spec["sr"])
    sf.write(spec["warm"], np.zeros(16000, np.float32), 8000)
    audiogmm.audio.load(spec["warm"], sr=16000)  # warm-up, resampling included
    arg = spec["path"]
try:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset the high-water mark
    reset = True
except OSError:
    reset = False
base = status("VmRSS")
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
resource.setrlimit(resource.RLIMIT_AS, (status("VmSize") + spec["cap"], hard))  # safety net
try:
    call(arg)
    outcome, message = "ok", ""
except BaseException as e:
    outcome, message = type(e).__name__, str(e)[:2000]
peak = status("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"outcome": outcome, "message": message, "base": base, "peak": peak}))
"""


def run_guarded(spec: dict, *, cap: int = 3 << 30, timeout: float = 120) -> dict:
    """Run one load in a fresh interpreter; return outcome, message and peak RSS growth."""
    spec = {"cap": cap, **spec}
    r = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(spec)],
        capture_output=True, text=True, timeout=timeout, env=script_env(),
    )  # fmt: skip
    assert r.returncode == 0 and r.stdout.strip(), f"child crashed:\n{r.stdout}\n{r.stderr[-3000:]}"
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["growth"] = out["peak"] - out["base"]
    return out


# ======================================================================================
# 2. Numerics
# ======================================================================================


def _assert_valid_gmm(g: DiagGMM, X: np.ndarray, tmp_path) -> None:
    for a in (g.weights_, g.means_, g.variances_):
        assert np.all(np.isfinite(a)), "fit ended with non-finite parameters"
    assert np.all(g.variances_ > 0) and abs(g.weights_.sum() - 1) < 1e-6
    p = tmp_path / "fit.npz"
    g.save(p)
    h = DiagGMM.load(p)  # whatever fit accepts, save/load must round-trip
    assert np.all(np.isfinite(h.score_samples(X))), "scores of the training data not finite"


def test_float32_at_1e30_fits_a_valid_model(tmp_path):
    """(x - c)^2 overflows float32 at 1e30: the fit must still end valid (float64 inside)."""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-3, 1, (200, 3)), rng.normal(3, 1, (200, 3))])
    X32 = (X * 1e30).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        g = DiagGMM(2, random_state=0).fit(X32)
    _assert_valid_gmm(g, X32, tmp_path)
    assert np.all(np.abs(g.means_) > 1e29), "the means should be at the scale of the data"


@settings(max_examples=30, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    scale_exp=st.integers(-40, 200),
    dtype=st.sampled_from([np.float32, np.float64]),
    k=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
@example(scale_exp=30, dtype=np.float32, k=2, seed=0)
@example(scale_exp=20, dtype=np.float32, k=1, seed=0)
def test_fit_either_refuses_or_ends_valid(scale_exp, dtype, k, seed, tmp_path):
    """Whatever the scale: ParameterError, or finite parameters that save, load and score."""
    rng = np.random.default_rng(seed)
    with np.errstate(over="ignore"):
        X = (rng.normal(0, 1, (120, 3)) * 10.0**scale_exp).astype(dtype)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            g = DiagGMM(k, random_state=seed, max_iter=10).fit(X)
    except ParameterError:
        return
    _assert_valid_gmm(g, X, tmp_path)


def test_classifier_refuses_clips_that_do_not_match_its_feature_config(tmp_path):
    cfg = FeatureConfig.preset("speech")
    rng = np.random.default_rng(0)
    clips = [rng.normal(m, 1, (100, 3)) for m in (0, 0, 3, 3)]
    with pytest.raises(ParameterError):
        clf = GMMClassifier(2, feature_config=cfg).fit(clips, ["a", "a", "b", "b"])
        clf.save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("scale", [1.0, 1e30])
def test_classifier_save_always_loads(scale, tmp_path):
    """A classifier that fit() and save() accept must load() (no config given: any width)."""
    rng = np.random.default_rng(1)
    clips = [(rng.normal(m, 1, (150, 3)) * scale).astype(np.float32) for m in (0, 0, 3, 3)]
    p = tmp_path / "m.npz"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            clf = GMMClassifier(2, random_state=0).fit(clips, ["a", "a", "b", "b"])
        clf.save(p)
    except ParameterError:
        assert not p.exists()
        return
    back = GMMClassifier.load(p)
    lp = back.predict_log_proba(clips)
    assert np.all(np.isfinite(lp)) and np.allclose(np.exp(lp).sum(1), 1.0)


_X3 = np.random.default_rng(2).normal(0, 1, (300, 3))
_MEANS = [[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]

BAD_PARAMS = [
    ("sample_weight_zeros", {}, {"sample_weight": np.zeros(300)}),
    ("sample_weight_nan", {}, {"sample_weight": np.full(300, np.nan)}),
    ("sample_weight_inf", {}, {"sample_weight": np.full(300, np.inf)}),
    ("sample_weight_one_inf", {}, {"sample_weight": np.r_[np.inf, np.ones(299)]}),
    ("sample_weight_string", {}, {"sample_weight": ["x"] * 300}),
    ("sample_weight_2d", {}, {"sample_weight": np.ones((300, 1))}),
    ("weights_init_zero_sum", {"means_init": _MEANS, "weights_init": [0.0, 0.0]}, {}),
    ("weights_init_inf", {"means_init": _MEANS, "weights_init": [np.inf, 1.0]}, {}),
    ("weights_init_nan", {"means_init": _MEANS, "weights_init": [np.nan, 1.0]}, {}),
    ("variances_init_inf", {"means_init": _MEANS, "variances_init": [[np.inf] * 3] * 2}, {}),
    ("variances_init_nan", {"means_init": _MEANS, "variances_init": [[np.nan] * 3] * 2}, {}),
    ("means_init_strings", {"means_init": [["a"] * 3] * 2}, {}),
    ("var_floor_abs_inf", {"var_floor_abs": np.inf}, {}),
    ("var_floor_inf", {"var_floor": np.inf}, {}),
    ("var_floor_abs_nan", {"var_floor_abs": np.nan}, {}),
]


@pytest.mark.parametrize("params,fit_kw", [(p, f) for _, p, f in BAD_PARAMS],
                         ids=[i for i, _, _ in BAD_PARAMS])  # fmt: skip
def test_bad_weights_and_inits_raise_parameter_error(params, fit_kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ParameterError):
            DiagGMM(2, random_state=0, **params).fit(_X3, **fit_kw)


def test_classifier_passes_bad_params_as_parameter_error():
    clips = [_X3[:150], _X3[150:]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ParameterError):
            GMMClassifier(2, var_floor_abs=np.inf).fit(clips, ["a", "b"])


@functools.cache
def _fitted_pair() -> tuple[DiagGMM, GMMClassifier]:
    rng = np.random.default_rng(3)
    g = DiagGMM(2, random_state=0).fit(rng.normal(0, 1, (400, 3)))
    clips = [rng.normal(m, 1, (100, 3)) for m in (0.0, 0.0, 2.0, 2.0, 4.0, 4.0)]
    clf = GMMClassifier(2, random_state=0).fit(clips, ["a", "a", "b", "b", "c", "c"])
    return g, clf


@pytest.mark.parametrize("value,dtype", [(1e20, np.float32), (-3e38, np.float32),
                                         (3.4e38, np.float32), (1e150, np.float64)])  # fmt: skip
def test_scores_finite_for_huge_finite_input(value, dtype):
    g, clf = _fitted_pair()
    X = np.full((4, 3), value, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert np.all(np.isfinite(g.score_samples(X)))
        S = clf.score_matrix([X])
        lp = clf.predict_log_proba([X])
    assert np.all(np.isfinite(S)), S
    assert not np.any(np.isnan(lp)) and np.allclose(np.exp(lp).sum(1), 1.0), lp


@settings(max_examples=60, deadline=None, database=None)
@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 8), st.just(3)),
                  elements=st.floats(width=32, allow_nan=False, allow_infinity=False)))  # fmt: skip
def test_scores_finite_for_any_finite_float32(X):
    g, clf = _fitted_pair()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert np.all(np.isfinite(g.score_samples(X)))
        assert np.all(np.isfinite(clf.score_matrix([X])))


@settings(max_examples=100, deadline=None, database=None)
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 5), st.just(3)),
                  elements=st.floats(-1e300, 1e300, allow_nan=False)))  # fmt: skip
@example(np.array([[-1e17, -1e17, -1e17]]))
@example(np.array([[1e300, -1e300, 0.0]]))
def test_log_proba_rows_sum_to_one(S):
    _, clf = _fitted_pair()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lp = clf.log_proba_from_scores(S)
    assert not np.any(np.isnan(lp)) and np.all(lp <= 1e-12)
    np.testing.assert_allclose(np.exp(lp).sum(1), 1.0, atol=1e-9)


def test_log_proba_two_equal_huge_scores():
    """The issue's example: a row of [-1e17, -1e17] must give [log 0.5, log 0.5]."""
    rng = np.random.default_rng(0)
    clf = GMMClassifier(1, random_state=0).fit(
        [rng.normal(0, 1, (50, 2)), rng.normal(3, 1, (50, 2))], ["a", "b"]
    )
    lp = clf.log_proba_from_scores(np.array([[-1e17, -1e17]]))
    np.testing.assert_allclose(lp, np.log([[0.5, 0.5]]), atol=1e-12)


# ======================================================================================
# 3. Audio
# ======================================================================================


@pytest.fixture(scope="module")
def odd_rate_wavs(tmp_path_factory):
    d = tmp_path_factory.mktemp("rates")
    noise = np.random.default_rng(0).integers(-3000, 3000, 60_000)
    out = {}
    for sr in (1, 7, 2_000_000_000):
        p = d / f"rate_{sr}.wav"
        p.write_bytes(wav_bytes(sr, noise))  # 120 kB
        out[sr] = p
    return out


@pytest.mark.parametrize("rate,sr", [(7, None), (1, None), (2_000_000_000, 16000),
                                     (2_000_000_000, None)])  # fmt: skip
def test_absurd_sample_rate_is_refused(odd_rate_wavs, rate, sr):
    p = odd_rate_wavs[rate]
    with pytest.raises(AudioError, match=r"(?i)sampl\w*[ _-]?rate") as ei:
        audiogmm.audio.load(p, sr=sr)
    assert str(p) in str(ei.value)


def test_1hz_wav_is_refused_before_allocation(odd_rate_wavs, tmp_path):
    """A 120 kB WAV declaring 1 Hz would need ~3.8 GB resampled to 16 kHz."""
    p = odd_rate_wavs[1]
    out = run_guarded(
        {"op": "audio", "path": str(p), "sr": 16000, "warm": str(tmp_path / "warm.wav")},
        cap=int(1.5 * (1 << 30)),
    )
    assert out["outcome"] == "AudioError", out
    assert str(p) in out["message"]
    assert out["growth"] < 300 * MB, out


def test_absurd_target_rate_is_a_parameter_error(tmp_path):
    """Resampling 0.5 s to 1 GHz would need 2 GB: the caller's ``sr`` is checked first."""
    p = tmp_path / "ok.wav"
    sf.write(p, speech_like(16000, 0.5), 16000)
    out = run_guarded(
        {"op": "audio", "path": str(p), "sr": 10**9, "warm": str(tmp_path / "warm.wav")},
        cap=int(1.5 * (1 << 30)),
    )
    assert out["outcome"] == "ParameterError", out
    assert out["growth"] < 300 * MB, out


@pytest.mark.parametrize("amplitude", [1e30, 3e38])
def test_absurd_samples_get_a_clear_reason(amplitude, tmp_path):
    """Finite but absurd float samples: AudioError naming the file, not "silent clip"."""
    p = tmp_path / "loud.wav"
    sf.write(p, (speech_like(16000, 1.0) * amplitude).astype(np.float32), 16000, subtype="FLOAT")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(AudioError, match="sample") as ei:
            audiogmm.audio.load(p, sr=16000)
        assert str(p) in str(ei.value)
        with pytest.raises(AudioError) as ei:
            audiogmm.extract(p)
    assert str(p) in str(ei.value)


def test_resampling_never_returns_non_finite(tmp_path):
    p = tmp_path / "loud8k.wav"
    sf.write(p, (speech_like(8000, 1.0) * 3e38).astype(np.float32), 8000, subtype="FLOAT")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            y = audiogmm.audio.load(p, sr=16000)
        except AudioError as e:
            assert str(p) in str(e)
            return
    assert np.all(np.isfinite(y)), "load returned NaN/inf samples after resampling"


@pytest.fixture
def locked_clip(public_dir):
    """A real FLAC nobody may read, in a folder everybody may traverse."""
    p = public_dir / "locked.flac"
    shutil.copy(speaker_clips("ast_en", 1)[0], p)
    os.chmod(p, 0)
    audiogmm.extract(speaker_clips("ast_en", 1)[0])  # warm imports as root
    return p


def test_permission_denied_is_named_in_audio_load(locked_clip):
    with unprivileged():
        with pytest.raises(AudioError) as e1:
            audiogmm.audio.load(locked_clip, sr=16000)
        with pytest.raises(AudioError) as e2:
            audiogmm.extract(locked_clip)
    for e in (e1, e2):
        msg = str(e.value)
        assert "permission denied" in msg.lower() and str(locked_clip) in msg, msg
        assert "corrupt" not in msg.lower(), msg


# ======================================================================================
# 5. CLI: unreadable inputs, control characters
# ======================================================================================


@pytest.fixture
def locked_world(public_dir):
    """Two speakers x 3 readable clips + one unreadable clip; a model trained as root."""
    data = public_dir / "data"
    for spk in ("ast_en", "flite_slt"):
        (data / spk).mkdir(parents=True)
        for c in speaker_clips(spk, 3):
            shutil.copy(c, data / spk / c.name)
    for d in [data, *data.iterdir()]:
        os.chmod(d, 0o755)
    model = public_dir / "m.npz"
    r = invoke(["-q", "train", data, "--split", "all", "-o", model, "-k", "2", "-j", "1",
                "--max-iter", "5"])  # fmt: skip
    assert r.exit_code == 0, r.output
    os.chmod(model, 0o644)
    good = sorted((data / "ast_en").glob("*.flac"))[0]
    # warm every command as root (imports, numba, click's help and usage-error formatting)
    # before running as nobody, who cannot read the interpreter's lazily imported modules
    for cmd in ("extract", "train", "evaluate", "predict"):
        invoke([cmd, "--help"])
        invoke([cmd])
    assert invoke(["-q", "predict", "-j", "1", model, good]).exit_code == 0
    assert invoke(["-q", "evaluate", model, data, "--split", "all", "-j", "1"]).exit_code == 0
    locked = data / "ast_en" / "locked.flac"
    shutil.copy(speaker_clips("ast_en", 5)[4], locked)
    os.chmod(locked, 0)
    out = public_dir / "out"
    out.mkdir()
    os.chmod(out, 0o777)
    return {"data": data, "model": model, "good": good, "locked": locked, "out": out}


@pytest.mark.parametrize("command", ["extract", "train", "evaluate", "predict"])
def test_unreadable_input_is_skipped_in_every_command(command, locked_world):
    w = locked_world
    args = {
        "extract": ["extract", w["data"], "--cache", w["out"] / "cache"],
        "train": ["train", w["data"], "--split", "all", "-o", w["out"] / "m2.npz", "-k", "2",
                  "--max-iter", "5"],
        "evaluate": ["evaluate", w["model"], w["data"], "--split", "all"],
        "predict": ["predict", w["model"], w["good"], w["locked"]],
    }[command]  # fmt: skip
    with unprivileged():
        r = invoke(["-q", *args, "-j", "1", "--json"])
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    skipped = out["skipped"]
    assert [os.path.basename(s["path"]) for s in skipped] == ["locked.flac"], skipped
    assert "permission denied" in skipped[0]["reason"].lower(), skipped[0]["reason"]
    if command == "predict":
        assert [os.path.basename(x["path"]) for x in out["results"]] == [w["good"].name]


def test_predict_human_output_lists_the_unreadable_file(locked_world):
    w = locked_world
    with unprivileged():
        r = invoke(["-q", "predict", "-j", "1", w["model"], w["good"], w["locked"]])
    assert r.exit_code == 0, r.output
    assert len(r.stdout.splitlines()) == 1 and r.stdout.startswith(str(w["good"]))
    assert "locked.flac" in r.stderr and "permission denied" in r.stderr.lower(), r.stderr


_CONTROL = "".join(map(chr, range(32))) + "\x7f"


def test_control_characters_in_names_are_escaped(tmp_path):
    clip = speaker_clips("flite_slt", 1)[0]
    names = ["new\nline.flac", "tab\there.flac", "bell\x07carriage\rreturn.flac", "plain.flac"]
    files = []
    for n in names:
        shutil.copy(clip, tmp_path / n)
        files.append(tmp_path / n)
    bad = tmp_path / "broken\nfile.wav"
    bad.write_bytes(b"not audio at all" * 100)
    r = invoke(["-q", "predict", "-j", "1", base_model("GMMClassifier"), *files, bad])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) == len(names), f"one line per file expected:\n{r.stdout!r}"
    for line in lines:
        fields = line.split("\t")
        assert len(fields) == 2, f"fields broken by a control character: {line!r}"
        assert not any(c in _CONTROL for c in fields[0]), repr(fields[0])
        assert fields[1] in ("a", "b")
    err_lines = r.stderr.splitlines()
    assert not any(
        ln.rstrip().endswith("broken") or ln.startswith("file.wav") for ln in err_lines
    ), f"a skipped file's name was split across lines:\n{r.stderr}"
    listed = [ln for ln in err_lines if "broken" in ln and "file.wav" in ln]
    assert listed, r.stderr


# ======================================================================================
# 6. Processes: dead workers, killed parent
# ======================================================================================


@pytest.fixture(scope="module")
def long_data(tmp_path_factory):
    """A DATA folder with two 10-minute FLACs (workers busy for seconds) and real clips."""
    d = tmp_path_factory.mktemp("long")
    (d / "a").mkdir()
    (d / "b").mkdir()
    y = np.tile(speech_like(16000, 2.0, seed=5), 300)
    sf.write(d / "a" / "long.flac", y, 16000)
    shutil.copy(d / "a" / "long.flac", d / "b" / "long2.flac")
    for c in speaker_clips("ast_en", 4):
        shutil.copy(c, d / "a" / c.name)
    for c in speaker_clips("flite_slt", 4):
        shutil.copy(c, d / "b" / c.name)
    return d


def _holding(proc: psutil.Process, suffix: str) -> str | None:
    """The path of an open file of ``proc`` ending in ``suffix``, if any."""
    try:
        for f in proc.open_files():
            if f.path.endswith(suffix):
                return f.path
    except psutil.Error:
        pass
    return None


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _alive(procs) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            pass
    return out


def test_sigkill_of_the_cli_leaves_no_process_alive(long_data, tmp_path):
    cmd = [*console_script(), "-q", "extract", str(long_data), "--cache", str(tmp_path / "c"),
           "-j", "2"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=script_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    seen: dict[int, psutil.Process] = {}
    try:
        deadline = time.monotonic() + 20
        busy = False
        while time.monotonic() < deadline and proc.poll() is None and not busy:
            for p in _descendants(proc.pid):
                seen.setdefault(p.pid, p)
                busy = busy or _holding(p, ".flac") is not None
            time.sleep(0.01)
        assert busy, "no worker was seen working on a file before the run ended"
        for p in _descendants(proc.pid):
            seen.setdefault(p.pid, p)
        assert len(seen) >= 2, f"expected worker processes, saw {seen}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        limit = time.monotonic() + 10
        while _alive(seen.values()) and time.monotonic() < limit:
            time.sleep(0.1)
        survivors = _alive(seen.values())
        assert not survivors, "still alive 10 s after kill -9 of the CLI: " + ", ".join(
            f"{p.pid} {' '.join(p.cmdline()[:3])}" for p in survivors
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for p in _alive(seen.values()):  # only processes of this run, by pid
            with contextlib.suppress(psutil.Error):
                p.kill()


def test_killed_worker_costs_only_its_file(long_data, tmp_path):
    """SIGKILL the worker busy on long.flac (twice: first try and retry); the batch finishes."""
    target = os.path.realpath(long_data / "a" / "long.flac")
    cmd = [*console_script(), "-q", "extract", str(long_data), "--cache", str(tmp_path / "c"),
           "-j", "2", "--json"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=script_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, text=True)  # fmt: skip
    seen: dict[int, psutil.Process] = {}
    killed: set[int] = set()
    try:
        deadline = time.monotonic() + 40
        while proc.poll() is None and time.monotonic() < deadline:
            for p in _descendants(proc.pid):
                seen.setdefault(p.pid, p)
                if len(killed) < 2 and p.pid not in killed and _holding(p, "long.flac") == target:
                    with contextlib.suppress(psutil.Error):
                        p.kill()
                        killed.add(p.pid)
            time.sleep(0.003)
        out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for p in _alive(seen.values()):
            with contextlib.suppress(psutil.Error):
                p.kill()
    assert killed, "never caught a worker on long.flac (cannot test)"
    assert "Traceback" not in err, err[-3000:]
    assert proc.returncode == 0, err[-3000:]
    res = json.loads(out)
    skipped = {os.path.basename(s["path"]): s["reason"] for s in res["skipped"]}
    assert set(skipped) <= {"long.flac"}, f"files other than the killed one were lost: {skipped}"
    assert res["n_extracted"] + res["n_cached"] + len(skipped) == res["n_files"]
    if len(killed) == 2:  # killed on the first try and on the retry: skipped, with a reason
        assert "long.flac" in skipped and skipped["long.flac"].strip(), res
