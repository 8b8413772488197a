"""Helpers shared by the hostile-input tests (audio, numerics, workers, CLI contract).

Root ignores file permissions, so the permission tests drop to user ``nobody`` with
``os.setresuid`` (saved uid 0, restored afterwards) instead of being skipped.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
SPEAKERS = ROOT / "data_samples" / "speakers"
NOBODY = 65534
MB = 1 << 20


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
    """Run the block as user ``nobody`` (real and effective uid) when we are root."""
    if os.geteuid() != 0:
        yield
        return
    os.setresuid(NOBODY, NOBODY, 0)
    try:
        yield
    finally:
        os.setresuid(0, 0, 0)


@contextlib.contextmanager
def public_folder():
    """A folder user ``nobody`` can traverse (pytest's tmp_path is 0700 root)."""
    d = Path(tempfile.mkdtemp(prefix="audiogmm-public-"))
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        for dirpath, dirnames, filenames in os.walk(d):
            for n in dirnames + filenames:
                with contextlib.suppress(OSError):
                    os.chmod(os.path.join(dirpath, n), 0o700)
        shutil.rmtree(d, ignore_errors=True)


def invoke(args, **kw):
    """Run the CLI in-process; stdout and stderr are kept apart."""
    from audiogmm.cli import main

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
    """The ``audiogmm`` entry point of this checkout, run with this interpreter."""
    return [sys.executable, "-c", "import sys; from audiogmm.cli import main; sys.exit(main())"]


def script_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def speaker_clips(speaker: str, n: int) -> list[Path]:
    return sorted((SPEAKERS / speaker).glob("*.flac"))[:n]


@functools.cache
def small_classifier_model(folder: str) -> str:
    """A small valid classifier model file (speech config, labels a/b) in ``folder``."""
    from audiogmm import FeatureConfig, GMMClassifier
    from audiogmm.pipeline import save_model

    rng = np.random.default_rng(0)
    cfg = FeatureConfig.preset("speech")
    clips = [rng.normal(m, 1.0, (120, cfg.n_dims)) for m in (0.0, 0.0, 3.0, 3.0)]
    clf = GMMClassifier(2, n_jobs=1, random_state=0, max_iter=20).fit(clips, ["a", "a", "b", "b"])
    path = os.path.join(folder, "base-classifier.npz")
    save_model(path, clf, cfg)
    return path


# -- subprocess memory harness ---------------------------------------------------------

# The child loads nothing until told: SETUP (inserted below) imports what it needs and
# defines ``call(path)``, then warms it up on a valid file.
_CHILD = r"""
import json, os, resource, sys
def status(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
spec = json.loads(sys.argv[1])
SETUP
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
    call(spec["path"])
    outcome, message = "ok", ""
except BaseException as e:
    outcome, message = type(e).__name__, str(e)[:2000]
peak = status("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"outcome": outcome, "message": message, "base": base, "peak": peak,
                  "reset": reset}))
"""


def run_guarded(setup: str, spec: dict, *, cap: int = 3 << 30, timeout: float = 120) -> dict:
    """Run ``call(spec["path"])`` in a fresh interpreter under an address-space cap.

    ``setup`` is Python that defines ``call`` and warms it up (imports, first-use
    allocations) before the high-water mark is reset. Returns ``outcome`` (``"ok"`` or
    the exception's class name), ``message``, and ``growth``: peak RSS over the
    resident size after the warm-up.
    """
    spec = {"cap": cap, **spec}
    r = subprocess.run(
        [sys.executable, "-c", _CHILD.replace("SETUP", setup), json.dumps(spec)],
        capture_output=True, text=True, timeout=timeout, env=script_env(),
    )  # fmt: skip
    assert r.returncode == 0 and r.stdout.strip(), f"child crashed:\n{r.stdout}\n{r.stderr[-3000:]}"
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["growth"] = out["peak"] - out["base"]
    return out


_AUDIO_SETUP = """
import numpy as np
import soundfile as sf
import audiogmm.audio
call = lambda p: audiogmm.audio.load(p, sr=spec["sr"])
sf.write(spec["warm"], np.zeros(16000, np.float32), 8000)
audiogmm.audio.load(spec["warm"], sr=16000)  # warm-up, resampling included
"""


def run_guarded_audio_load(spec: dict, *, cap: int = 3 << 30, timeout: float = 120) -> dict:
    """``audio.load(spec["path"], sr=spec["sr"])`` in a fresh interpreter: outcome, peak growth."""
    return run_guarded(_AUDIO_SETUP, spec, cap=cap, timeout=timeout)
