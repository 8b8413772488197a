"""Adversarial reliability suite (the "reliability" issue), against the public API only.

Public API used: ``audiogmm.DiagGMM``, ``GMMClassifier``, ``FeatureConfig``, ``extract``,
``ModelFileError``, ``ParameterError``, ``AudioError``, ``audiogmm.audio.load``,
``audiogmm.cli.main`` (through ``CliRunner``) and the ``audiogmm`` console script
(through ``subprocess``). Nothing here imports a private module, so the tests survive a
restructuring of the package internals. The one piece of format knowledge is the
model-file container, isolated in :func:`tamper_header` and its two helpers below.

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
import hashlib
import io
import json
import os
import resource
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from audiogmm import (
    DiagGMM,
    FeatureConfig,
    GMMClassifier,
    ModelFileError,
)
from audiogmm.cli import main

ROOT = Path(__file__).resolve().parents[1]
SPEAKERS = ROOT / "data_samples" / "speakers"
NOBODY = 65534
MB = 1 << 20

# ======================================================================================
# Model-file container helpers.
#
# THE ONLY CODE IN THE TEST SUITE THAT KNOWS THE ON-DISK LAYOUT OF A MODEL FILE.
# Today a model file is an .npz (zip, members stored uncompressed by np.savez): one
# ``<name>.npy`` member per array, and ``__header__.npy``, a 1-D uint8 array holding UTF-8
# JSON whose "checksum" field is computed exactly like ``audiogmm/io.py::_checksum``:
#     sha256( json.dumps(header minus "checksum", sort_keys=True, separators=(",", ":"))
#             + for each array name in sorted order: f"{name}|{dtype.str}|{shape}|" + bytes )
# If the container changes (e.g. to safetensors) or the checksum changes (e.g. to a
# keyed MAC), update read_model_file / write_model_file / container_checksum and nothing
# else: every tampering test goes through tamper_header().
# ======================================================================================

HEADER_MEMBER = "__header__.npy"


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def container_checksum(header: dict, arrays: dict, raw: dict | None = None) -> str:
    """The checksum the current writer stores (mirror of ``audiogmm/io.py::_checksum``).

    ``raw`` maps placeholder strings used as values in ``header`` to raw JSON text that
    replaces them verbatim (for values ``json.dumps`` cannot produce, e.g. nesting that
    deep).
    """
    body = {k: v for k, v in header.items() if k != "checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    for placeholder, raw_text in (raw or {}).items():
        text = text.replace(json.dumps(placeholder), raw_text)
    h = hashlib.sha256(text.encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return "sha256:" + h.hexdigest()


def read_model_file(path) -> tuple[dict, dict]:
    """(header, arrays) of a trusted model file written by audiogmm (our own base files)."""
    with zipfile.ZipFile(path) as z:
        header = json.loads(np.load(io.BytesIO(z.read(HEADER_MEMBER))).tobytes().decode())
        arrays = {
            n[: -len(".npy")]: np.load(io.BytesIO(z.read(n)), allow_pickle=False)
            for n in z.namelist()
            if n != HEADER_MEMBER
        }
    return header, arrays


def write_model_file(path, header: dict, arrays: dict, *, raw=None, fix_checksum=True) -> None:
    """Write a model file; with ``fix_checksum`` the checksum is recomputed as the writer does."""
    header = dict(header)
    if fix_checksum:
        header["checksum"] = container_checksum(header, arrays, raw)
    text = json.dumps(header, sort_keys=True)
    for placeholder, raw_text in (raw or {}).items():
        text = text.replace(json.dumps(placeholder), raw_text)
    blob = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(HEADER_MEMBER, _npy_bytes(blob))
        for k, v in arrays.items():
            z.writestr(k + ".npy", _npy_bytes(v))


def tamper_header(src, dst, mutate=None, *, mutate_arrays=None, raw=None, fix_checksum=True):
    """Copy model file ``src`` to ``dst`` with ``mutate(header)`` / ``mutate_arrays(arrays)``
    applied in place and the checksum recomputed the way audiogmm computes it: the
    checksum is plain SHA-256, so anyone can do this; the loader must not trust it."""
    header, arrays = read_model_file(src)
    if mutate_arrays is not None:
        mutate_arrays(arrays)
        header["arrays"] = {
            k: {"dtype": v.dtype.str, "shape": list(v.shape)} for k, v in arrays.items()
        }
    if mutate is not None:
        mutate(header)
    write_model_file(dst, header, arrays, raw=raw, fix_checksum=fix_checksum)
    return dst


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


LOADERS = {"GMMClassifier": GMMClassifier.load, "DiagGMM": DiagGMM.load}


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


def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


@contextlib.contextmanager
def memory_guard(extra: int = 2 << 30):
    """Cap this process's address space at its current size + ``extra`` for the block.

    A safety net for the shared machine: a runaway allocation becomes a MemoryError (which
    the tests then report as a failure) instead of exhausting the host's memory.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _status_bytes("VmSize") + extra
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


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
# 1. Model loader: trust nothing
# ======================================================================================


def _set(path: list, value):
    def mutate(h):
        node = h
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value

    return mutate


def _update_config(**changes):
    def mutate(h):
        h["feature_config"].update(changes)

    return mutate


# (kind, id, mutation): every one of these must be refused by load() with ModelFileError
HEADER_CASES = [
    # scoring-time chunking / threading parameters
    ("DiagGMM", "chunk_size_negative", _set(["params", "chunk_size"], -5)),
    ("DiagGMM", "chunk_size_fractional", _set(["params", "chunk_size"], 2.5)),
    ("DiagGMM", "chunk_size_zero", _set(["params", "chunk_size"], 0)),
    ("DiagGMM", "chunk_size_string", _set(["params", "chunk_size"], "big")),
    ("DiagGMM", "n_jobs_string", _set(["params", "n_jobs"], "two")),
    ("DiagGMM", "n_jobs_negative", _set(["params", "n_jobs"], -1)),
    ("DiagGMM", "n_jobs_fractional", _set(["params", "n_jobs"], 1.5)),
    ("DiagGMM", "tol_string", _set(["params", "tol"], "x")),
    ("DiagGMM", "var_floor_negative", _set(["params", "var_floor"], -1.0)),
    ("DiagGMM", "init_unknown", _set(["params", "init"], "evil")),
    ("DiagGMM", "params_list", _set(["params"], [1, 2])),
    ("DiagGMM", "training_string", _set(["training"], "oops")),
    ("DiagGMM", "training_list", _set(["training"], [1, 2, 3])),
    ("DiagGMM", "training_history_string", _set(["training", "history"], "abc")),
    ("DiagGMM", "training_history_number", _set(["training", "history"], 5)),
    ("GMMClassifier", "chunk_size_negative", _set(["gmm_params", "chunk_size"], -5)),
    ("GMMClassifier", "chunk_size_fractional", _set(["gmm_params", "chunk_size"], 0.5)),
    ("GMMClassifier", "n_jobs_string", _set(["gmm_params", "n_jobs"], "two")),
    ("GMMClassifier", "gmm_params_string", _set(["gmm_params"], "abc")),
    ("GMMClassifier", "gmm_params_tol_nan", _set(["gmm_params", "tol"], float("nan"))),
    # priors
    ("GMMClassifier", "priors_string", _set(["priors"], "ab")),
    ("GMMClassifier", "priors_list", _set(["priors"], ["a", "b"])),
    ("GMMClassifier", "priors_nan", _set(["priors"], {"a": float("nan"), "b": 1.0})),
    ("GMMClassifier", "priors_inf", _set(["priors"], {"a": float("inf"), "b": 1.0})),
    ("GMMClassifier", "priors_value_string", _set(["priors"], {"a": "x", "b": 1.0})),
    ("GMMClassifier", "priors_negative", _set(["priors"], {"a": -1.0, "b": 1.0})),
    ("GMMClassifier", "priors_zero_sum", _set(["priors"], {"a": 0.0, "b": 0.0})),
    ("GMMClassifier", "priors_overflow", _set(["priors"], {"a": 1e308, "b": 1e308})),
    ("GMMClassifier", "priors_missing_label", _set(["priors"], {"a": 1.0})),
    # labels, sizes, seeds
    ("GMMClassifier", "labels_string", _set(["labels"], "ab")),
    ("GMMClassifier", "labels_nested", _set(["labels"], [["a"], ["b"]])),
    ("GMMClassifier", "n_components_fractional", _set(["n_components"], 2.5)),
    ("GMMClassifier", "n_components_string", _set(["n_components"], "2")),
    ("GMMClassifier", "n_components_mismatch", _set(["n_components"], 7)),
    ("GMMClassifier", "random_state_string", _set(["random_state"], "seed")),
    ("GMMClassifier", "random_state_negative", _set(["random_state"], -1)),
    # training block of the wrong type
    ("GMMClassifier", "training_list", _set(["training"], [1, 2])),
    ("GMMClassifier", "training_string", _set(["training"], "oops")),
    ("GMMClassifier", "training_entry_string", _set(["training", "a"], "x")),
    ("GMMClassifier", "training_loglik_string", _set(["training", "a", "final_mean_loglik"], "x")),
    # feature config: types and sane physical bounds on rates and windows
    ("GMMClassifier", "config_string", _set(["feature_config"], "speech")),
    ("GMMClassifier", "config_rate_string", _update_config(sample_rate="16000")),
    (
        "GMMClassifier",
        "config_rate_1GHz",
        _update_config(sample_rate=10**9, win_ms=0.025, hop_ms=0.01, n_fft=32768),
    ),
    (
        "GMMClassifier",
        "config_rate_8Hz",
        _update_config(sample_rate=8, win_ms=1000.0, hop_ms=500.0, n_fft=8, fmin=0.0, fmax=None),
    ),
    ("GMMClassifier", "config_n_fft_2G", _update_config(n_fft=2**31)),
    ("GMMClassifier", "config_hop_1e9ms", _update_config(hop_ms=1e9)),
    ("GMMClassifier", "config_n_mels_1e7", _update_config(n_mels=10**7)),
    ("GMMClassifier", "config_delta_width_1e7", _update_config(delta_width=10**7 + 1)),
]


@pytest.mark.parametrize(
    "kind,mutate",
    [(k, m) for k, _, m in HEADER_CASES],
    ids=[f"{k}-{i}" for k, i, _ in HEADER_CASES],
)
def test_tampered_header_field_is_refused(kind, mutate, tmp_path):
    """A header edited with a recomputed checksum is validated field by field on load."""
    p = tamper_header(base_model(kind), tmp_path / "tampered.npz", mutate)
    with memory_guard():
        with pytest.raises(ModelFileError) as ei:
            LOADERS[kind](p)
    assert str(p) in str(ei.value)


@pytest.mark.parametrize("kind", ["DiagGMM", "GMMClassifier"])
def test_deeply_nested_header_is_refused(kind, tmp_path):
    """100,000 nested lists in the header: ModelFileError, not RecursionError."""
    raw = {"@@DEEP@@": "[" * 100_000 + "]" * 100_000}
    p = tamper_header(
        base_model(kind), tmp_path / "deep.npz", _set(["training"], "@@DEEP@@"), raw=raw
    )
    with pytest.raises(ModelFileError) as ei:
        LOADERS[kind](p)
    assert str(p) in str(ei.value)


@pytest.mark.parametrize("kind", ["DiagGMM", "GMMClassifier"])
def test_oversized_header_is_refused(kind, tmp_path):
    """A 9 MB header (valid JSON, valid checksum) exceeds any sane header size."""

    def pad(h):
        h["training"] = dict(h.get("training") or {})
        h["training"]["notes"] = "x" * (9 * MB)

    p = tamper_header(base_model(kind), tmp_path / "big.npz", pad)
    assert os.path.getsize(p) < 10 * MB
    with pytest.raises(ModelFileError) as ei:
        LOADERS[kind](p)
    assert str(p) in str(ei.value)


def _zip_with_members(dst, src, extra: list[tuple[str, bytes]], *, drop=()) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename not in drop:
                zout.writestr(info.filename, zin.read(info.filename))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Duplicate name"
            for name, data in extra:
                zout.writestr(name, data)
    return Path(dst)


@pytest.mark.parametrize(
    "case",
    ["duplicate_member", "suffixless_twin", "path_traversal_name", "directory_entry"],
)
def test_ambiguous_zip_members_are_refused(case, tmp_path):
    """Member names are checked against the header: no duplicates, twins or odd names."""
    src = base_model("DiagGMM")
    other = _npy_bytes(np.zeros((2, 3)))
    extra = {
        "duplicate_member": [("means.npy", other)],
        "suffixless_twin": [("means", other)],
        "path_traversal_name": [("../means.npy", other)],
        "directory_entry": [("means.npy/", b"")],
    }[case]
    p = _zip_with_members(tmp_path / "odd.npz", src, extra)
    with pytest.raises(ModelFileError) as ei:
        DiagGMM.load(p)
    assert str(p) in str(ei.value)


def _write_bomb_member(z: zipfile.ZipFile, name: str, npy_header: dict, n_bytes: int, fill: bytes):
    """Stream a member of n_bytes (after the .npy header) of ``fill`` bytes, deflated."""
    with z.open(name, "w", force_zip64=True) as f:
        np.lib.format.write_array_header_1_0(f, npy_header)
        chunk = fill * (16 * MB // len(fill))
        left = n_bytes
        while left > 0:
            f.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)


def make_bomb(dst, kind: str, where: str, n_bytes: int = 640 * MB) -> Path:
    """A < 10 MB model file that decompresses to ``n_bytes``.

    where = "array":    a listed member (means.npy) declares and holds a huge array;
            "unlisted": an extra member not in the header holds it;
            "header":   the JSON header itself is followed by n_bytes of whitespace
                        (still valid JSON, valid checksum).
    """
    header, arrays = read_model_file(base_model(kind))
    header["checksum"] = container_checksum(header, arrays)
    text = json.dumps(header, sort_keys=True).encode()
    with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        if where == "header":
            hdr = {"descr": "|u1", "fortran_order": False, "shape": (len(text) + n_bytes,)}
            with z.open(HEADER_MEMBER, "w", force_zip64=True) as f:
                np.lib.format.write_array_header_1_0(f, hdr)
                f.write(text)
                chunk = b" " * (16 * MB)
                left = n_bytes
                while left > 0:
                    f.write(chunk[: min(left, len(chunk))])
                    left -= len(chunk)
        else:
            z.writestr(HEADER_MEMBER, _npy_bytes(np.frombuffer(text, np.uint8)))
        for k, v in arrays.items():
            if where == "array" and k == "means":
                hdr = {"descr": "<f8", "fortran_order": False, "shape": (n_bytes // 8,)}
                _write_bomb_member(z, "means.npy", hdr, n_bytes, b"\0")
            else:
                z.writestr(k + ".npy", _npy_bytes(v))
        if where == "unlisted":
            hdr = {"descr": "<f8", "fortran_order": False, "shape": (n_bytes // 8,)}
            _write_bomb_member(z, "zz_extra.npy", hdr, n_bytes, b"\0")
    assert os.path.getsize(dst) < 10 * MB
    return Path(dst)


@pytest.mark.parametrize("where", ["array", "unlisted", "header"])
def test_zip_bomb_is_refused_cheaply(where, tmp_path):
    """A ~4 MB file inflating to 640 MB: refused before decompressing, peak growth < 300 MB."""
    p = make_bomb(tmp_path / f"bomb-{where}.npz", "GMMClassifier", where)
    out = run_guarded({"op": "model", "kind": "GMMClassifier", "path": str(p),
                       "warm": base_model("GMMClassifier")})  # fmt: skip
    assert out["outcome"] == "ModelFileError", out
    assert str(p) in out["message"]
    assert out["growth"] < 300 * MB, f"loading used {out['growth'] / MB:.0f} MB: {out}"


def test_huge_window_config_costs_no_memory(tmp_path):
    """A feature config with a 2e7-sample window is refused without allocating it."""
    mutate = _update_config(win_ms=1.25e6, n_fft=20_000_000)
    p = tamper_header(base_model("GMMClassifier"), tmp_path / "window.npz", mutate)
    out = run_guarded({"op": "model", "kind": "GMMClassifier", "path": str(p),
                       "warm": base_model("GMMClassifier")})  # fmt: skip
    assert out["outcome"] == "ModelFileError", out
    assert str(p) in out["message"]
    assert out["growth"] < 300 * MB, f"loading used {out['growth'] / MB:.0f} MB: {out}"


def test_text_file_as_model_is_not_called_pickle(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("this is a text file, not a model\n" * 10)
    with pytest.raises(ModelFileError) as ei:
        GMMClassifier.load(p)
    msg = str(ei.value)
    assert str(p) in msg and "pickle" not in msg.lower(), msg


@pytest.mark.parametrize(
    "damage",
    ["text_file", "deep_nesting", "training_list", "training_entry", "priors_string", "n_jobs"],
)
@pytest.mark.parametrize("command", ["info", "predict"])
def test_cli_damaged_model_is_one_line_error(command, damage, tmp_path):
    """Every damaged model gives exit 1 and one line naming the model path, no traceback."""
    src, p = base_model("GMMClassifier"), tmp_path / "model.npz"
    if damage == "text_file":
        p.write_text("not a model\n")
    elif damage == "deep_nesting":
        tamper_header(
            src, p, _set(["training"], "@@D@@"), raw={"@@D@@": "[" * 50_000 + "]" * 50_000}
        )
    elif damage == "training_list":
        tamper_header(src, p, _set(["training"], [1, 2]))
    elif damage == "training_entry":
        tamper_header(src, p, _set(["training", "a"], "x"))
    elif damage == "priors_string":
        tamper_header(src, p, _set(["priors"], "ab"))
    else:
        tamper_header(src, p, _set(["gmm_params", "n_jobs"], "two"))
    clip = speaker_clips("ast_en", 1)[0]
    args = ["info", p] if command == "info" else ["predict", "-j", "1", p, clip]
    r = invoke(["-q", *args])
    assert_one_line_error(r, p)


# ======================================================================================
# 4. Files: modes, leftovers, unwritable outputs
# ======================================================================================


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
@pytest.mark.parametrize("kind", ["DiagGMM", "GMMClassifier"])
def test_new_model_file_honours_umask(kind, mask, tmp_path):
    obj = LOADERS[kind](base_model(kind))
    p = tmp_path / "new.npz"
    with umask(mask):
        obj.save(p)
    assert _mode(p) == 0o666 & ~mask, oct(_mode(p))


@pytest.mark.parametrize("kind", ["DiagGMM", "GMMClassifier"])
def test_overwrite_keeps_the_old_mode(kind, tmp_path):
    obj = LOADERS[kind](base_model(kind))
    p = tmp_path / "m.npz"
    shutil.copy(base_model(kind), p)
    os.chmod(p, 0o664)
    with umask(0o022):
        obj.save(p)
    assert _mode(p) == 0o664, oct(_mode(p))


def test_cli_outputs_honour_umask(tmp_path):
    data = tmp_path / "data"
    for spk in ("ast_en", "flite_slt"):
        (data / spk).mkdir(parents=True)
        for c in speaker_clips(spk, 2):
            shutil.copy(c, data / spk / c.name)
    with umask(0o022):
        r = invoke(["-q", "extract", data, "--cache", tmp_path / "cache", "-j", "1",
                    "--skipped-csv", tmp_path / "skipped.csv"])  # fmt: skip
        assert r.exit_code == 0, r.output
        r = invoke(["-q", "train", data, "--split", "all", "-o", tmp_path / "m.npz", "-k", "2",
                    "-j", "1", "--max-iter", "5"])  # fmt: skip
        assert r.exit_code == 0, r.output
    files = [tmp_path / "skipped.csv", tmp_path / "m.npz"] + [
        p for p in (tmp_path / "cache").rglob("*") if p.is_file()
    ]
    bad = {str(p): oct(_mode(p)) for p in files if _mode(p) != 0o644}
    assert not bad, f"files not created with umask 022: {bad}"


_KILL_AT_COMMIT = r"""
import os, signal, sys
import numpy as np
def die(*a, **k):
    os.kill(os.getpid(), signal.SIGKILL)
mode, target = sys.argv[1], sys.argv[2]
from audiogmm import DiagGMM
g = DiagGMM(1, random_state=0).fit(np.random.default_rng(0).normal(size=(50, 2)))
if mode == "cli":
    from audiogmm.cli import main
    # warm-up run elsewhere (imports, numba caches) before arming the trap
    main(["-q", "extract", sys.argv[3], "--cache", target + "-warm", "-j", "1"],
         standalone_mode=False)
# die between writing the temporary file and moving it into place (whichever call comes)
for name in ("replace", "rename", "link", "fsync", "fdatasync", "fchmod", "chmod"):
    if hasattr(os, name):
        setattr(os, name, die)
if mode == "model":
    g.save(os.path.join(target, "m.npz"))
else:
    main(["-q", "extract", sys.argv[3], "--cache", target, "-j", "1"])
print("NOT KILLED")
"""


@pytest.mark.parametrize("mode", ["model", "cli"])
def test_leftover_temp_files_are_cleaned_on_next_write(mode, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    data = tmp_path / "data"
    (data / "a").mkdir(parents=True)
    shutil.copy(speaker_clips("ast_en", 1)[0], data / "a" / "x.flac")
    r = subprocess.run([sys.executable, "-c", _KILL_AT_COMMIT, mode, str(out), str(data)],
                       capture_output=True, text=True, env=script_env(), timeout=120)  # fmt: skip
    assert r.returncode == -signal.SIGKILL, f"writer was not killed mid-write: {r.stdout}{r.stderr}"
    leftovers = [p for p in out.rglob("*") if p.is_file()]
    assert leftovers, "the killed writer left no temporary file (cannot test the cleanup)"
    old = time.time() - 3 * 86400  # from a run killed days ago
    for p in leftovers:
        os.utime(p, (old, old))
    if mode == "model":
        DiagGMM.load(base_model("DiagGMM")).save(out / "next.npz")
        assert sorted(p.name for p in out.iterdir()) == ["next.npz"]
    else:
        r = invoke(["-q", "extract", data, "--cache", out, "-j", "1"])
        assert r.exit_code == 0, r.output
        names = [p.name for p in out.rglob("*") if p.is_file()]
        stale = [n for n in names if n != "config.json" and not n.endswith(".npy")]
        assert not stale, f"leftover temporary files were not cleaned up: {stale}"


@pytest.fixture
def small_data(tmp_path):
    data = tmp_path / "data"
    for spk in ("ast_en", "flite_slt"):
        (data / spk).mkdir(parents=True)
        for c in speaker_clips(spk, 3):
            shutil.copy(c, data / spk / c.name)
    return data


def test_unwritable_train_output_is_found_before_the_work(small_data, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    output = blocker / "models" / "m.npz"
    cache = tmp_path / "cache"
    r = invoke(["-q", "train", small_data, "--split", "all", "-o", output, "-k", "2", "-j", "1",
                "--cache", cache])  # fmt: skip
    assert_one_line_error(r, output)
    assert not list(cache.rglob("*.npy")), "features were extracted before checking the output"


def test_readonly_train_output_is_found_before_the_work(public_dir):
    data = public_dir / "data"
    for spk in ("ast_en", "flite_slt"):
        (data / spk).mkdir(parents=True)
        for c in speaker_clips(spk, 3):
            shutil.copy(c, data / spk / c.name)
    for d in [data, *data.iterdir()]:
        os.chmod(d, 0o755)
    ro = public_dir / "readonly"
    ro.mkdir(mode=0o555)
    os.chmod(ro, 0o555)
    cache = public_dir / "cache"
    cache.mkdir()
    os.chmod(cache, 0o777)
    output = ro / "m.npz"
    # warm-up as root (imports, numba compilation) so the unprivileged run only runs
    assert invoke(["-q", "extract", data, "-j", "1", "--cache", public_dir / "warm"]).exit_code == 0
    with unprivileged():
        r = invoke(["-q", "train", data, "--split", "all", "-o", output, "-k", "2", "-j", "1",
                    "--cache", cache])  # fmt: skip
    assert_one_line_error(r, output)
    assert ".tmp-" not in r.stderr, r.stderr
    assert not list(cache.rglob("*.npy")), "features were extracted before checking the output"


def test_unwritable_report_folder_is_found_before_the_work(small_data, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    report = blocker / "report"
    cache = tmp_path / "cache"
    model = tmp_path / "m.npz"
    r = invoke(["-q", "train", small_data, "--split", "all", "-o", model, "-k", "2", "-j", "1"])
    assert r.exit_code == 0, r.output
    r = invoke(["-q", "evaluate", model, small_data, "--split", "all", "--report", report,
                "-j", "1", "--cache", cache])  # fmt: skip
    assert_one_line_error(r, report)
    assert not list(cache.rglob("*.npy")), "features were extracted before checking the output"


# ======================================================================================
# Self-checks of the helpers (these pass today: they make the failures above meaningful)
# ======================================================================================


@pytest.mark.parametrize("kind", ["DiagGMM", "GMMClassifier"])
def test_tamper_helper_writes_files_the_loader_accepts(kind, tmp_path):
    """A no-op tampering must load: the tests above fail for their mutation, not the helper."""
    p = tamper_header(base_model(kind), tmp_path / "same.npz", lambda h: None)
    LOADERS[kind](p)
    q = tamper_header(
        base_model(kind), tmp_path / "stale.npz", _set(["kind"], kind), fix_checksum=False
    )
    LOADERS[kind](q)
