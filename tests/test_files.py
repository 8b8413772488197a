"""Files audiogmm writes (reliability issue): modes honour the umask, overwrites keep the
old mode, temporary files of killed writers are cleaned up, and an output that cannot be
written is found before the long work, with an error naming the user's path.

Ported from the adversarial suite (tests/pending), plus the cleanup's safety rules.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from audiogmm import DiagGMM, ModelFileError
from audiogmm.io import atomic as container
from audiogmm.io import load, save
from audiogmm.pipeline import load_model, save_model

from .conftest_hostile import assert_one_line_error, invoke, public_folder, script_env, unprivileged
from .test_model_file import base_model

SPEAKERS = Path(__file__).resolve().parents[1] / "data_samples" / "speakers"


def speaker_clips(speaker: str, n: int) -> list[Path]:
    return sorted((SPEAKERS / speaker).glob("*.flac"))[:n]


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


@pytest.fixture
def public_dir():
    """A folder user ``nobody`` can traverse (pytest's tmp_path is 0700 root)."""
    with public_folder() as d:
        yield d


def _save(kind: str, p) -> None:
    if kind == "DiagGMM":
        save(load(base_model(kind), DiagGMM), p)
    else:
        b = load_model(base_model(kind))
        save_model(p, b.classifier, b.config)


# ======================================================================================
# Modes
# ======================================================================================


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002, 0o077])
@pytest.mark.parametrize("kind", ["DiagGMM", "GMMClassifier"])
def test_new_model_file_honours_umask(kind, mask, tmp_path):
    p = tmp_path / "new.npz"
    with umask(mask):
        _save(kind, p)
    assert _mode(p) == 0o666 & ~mask, oct(_mode(p))


@pytest.mark.parametrize("old", [0o664, 0o600, 0o644, 0o640])
@pytest.mark.parametrize("kind", ["DiagGMM", "GMMClassifier"])
def test_overwrite_keeps_the_old_mode(kind, old, tmp_path):
    p = tmp_path / "m.npz"
    shutil.copy(base_model(kind), p)
    os.chmod(p, old)
    with umask(0o022):
        _save(kind, p)
    assert _mode(p) == old, oct(_mode(p))


def test_cli_outputs_honour_umask(tmp_path):
    data = tmp_path / "data"
    for spk in ("ast_en", "flite_slt"):
        (data / spk).mkdir(parents=True)
        for c in speaker_clips(spk, 5):
            shutil.copy(c, data / spk / c.name)
    with umask(0o022):
        r = invoke(["-q", "extract", data, "--cache", tmp_path / "cache", "-j", "1",
                    "--skipped-csv", tmp_path / "skipped.csv"])  # fmt: skip
        assert r.exit_code == 0, r.output
        # the default splits: train on "train", evaluate on the held-out "test" files
        r = invoke(["-q", "train", data, "-o", tmp_path / "m.npz", "-k", "2",
                    "-j", "1", "--max-iter", "5"])  # fmt: skip
        assert r.exit_code == 0, r.output
        r = invoke(["-q", "evaluate", tmp_path / "m.npz", data, "-j", "1",
                    "--report", tmp_path / "report"])  # fmt: skip
        assert r.exit_code == 0, r.output
    files = [tmp_path / "skipped.csv", tmp_path / "m.npz"] + [
        p for d in ("cache", "report") for p in (tmp_path / d).rglob("*") if p.is_file()
    ]
    bad = {str(p): oct(_mode(p)) for p in files if _mode(p) != 0o644}
    assert not bad, f"files not created with umask 022: {bad}"


# ======================================================================================
# Temporary files of killed writers
# ======================================================================================

_KILL_AT_COMMIT = r"""
import os, signal, sys
import numpy as np
def die(*a, **k):
    os.kill(os.getpid(), signal.SIGKILL)
mode, target = sys.argv[1], sys.argv[2]
from audiogmm import DiagGMM
from audiogmm.io import save
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
    save(g, os.path.join(target, "m.npz"))
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
        save(load(base_model("DiagGMM"), DiagGMM), out / "next.npz")
        assert sorted(p.name for p in out.iterdir()) == ["next.npz"]
    else:
        r = invoke(["-q", "extract", data, "--cache", out, "-j", "1"])
        assert r.exit_code == 0, r.output
        names = [p.name for p in out.rglob("*") if p.is_file()]
        stale = [n for n in names if n != "config.json" and not n.endswith(".pack")]
        assert not stale, f"leftover temporary files were not cleaned up: {stale}"


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.fixture
def fresh_cleanup(monkeypatch):
    """Forget which folders this process already cleaned (cleanup runs once per folder)."""
    monkeypatch.setattr(container, "_CLEANED", set())


def _touch(path: Path, age_s: float) -> Path:
    path.write_bytes(b"partial")
    t = time.time() - age_s
    os.utime(path, (t, t))
    return path


def test_cleanup_removes_only_what_no_live_writer_can_own(tmp_path, fresh_cleanup):
    """Dead writer + untouched for a while: removed. A live writer's file, a dead writer's
    recent file, or files that are not our temporary files: kept."""
    dead, live = _dead_pid(), os.getppid()
    hour, day = 3600, 86400
    removed = [
        _touch(tmp_path / f".tmp-{dead}-abcd1234-m.npz", hour),
        _touch(tmp_path / f".tmp-{live}-abcd1234-m.npz", 3 * day),  # pid reused long ago
        _touch(tmp_path / ".tmp-k2j3h4g5m.npz", 3 * day),  # older audiogmm versions' names
    ]
    kept = [
        _touch(tmp_path / f".tmp-{live}-abcd1234-a.npz", hour),  # a writer still running
        _touch(tmp_path / f".tmp-{dead}-abcd1234-b.npz", 10),  # maybe another host's writer
        _touch(tmp_path / "notes.tmp-1", 3 * day),
        _touch(tmp_path / "model.npz", 3 * day),
    ]
    (tmp_path / f".tmp-{dead}-dir").mkdir()
    kept.append(tmp_path / f".tmp-{dead}-dir")
    container.atomic_write(tmp_path / "new.txt", lambda f: f.write(b"x"))
    assert not [p for p in removed if p.exists()]
    assert all(p.exists() for p in kept)


def test_cleanup_runs_once_per_folder(tmp_path, fresh_cleanup):
    container.atomic_write(tmp_path / "a.txt", lambda f: f.write(b"x"))
    late = _touch(tmp_path / f".tmp-{_dead_pid()}-abcd1234-m.npz", 3 * 86400)
    container.atomic_write(tmp_path / "b.txt", lambda f: f.write(b"x"))
    assert late.exists()  # found by the next process that writes here


def test_atomic_write_takes_bytes_text_rows_or_a_writer_and_returns_the_path(tmp_path):
    out = {n: container.atomic_write(tmp_path / n, d) for n, d in [
        ("b.bin", b"\x00\xff"), ("t.txt", "caf\u00e9\n"), ("r.csv", iter([["a", "b,c"], [1, 2]])),
        ("w.bin", lambda f: f.write(b"w"))]}  # fmt: skip
    assert out == {n: str(tmp_path / n) for n in out}
    assert [(tmp_path / n).read_bytes() for n in out] == [
        b"\x00\xff", "caf\u00e9\n".encode(), b'a,"b,c"\n1,2\n', b"w"]


# ======================================================================================
# Outputs checked before the work
# ======================================================================================


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
    assert not list(cache.rglob("*.pack")), "features were extracted before checking the output"


def test_train_output_that_is_a_folder_is_found_before_the_work(small_data, tmp_path):
    output = tmp_path / "models"
    output.mkdir()
    cache = tmp_path / "cache"
    r = invoke(["-q", "train", small_data, "--split", "all", "-o", output, "-k", "2", "-j", "1",
                "--cache", cache])  # fmt: skip
    assert r.exit_code == 2 and str(output) in r.stderr, r.output  # click's usage error
    assert not list(cache.rglob("*.pack")), "features were extracted before checking the output"


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
    assert "permission denied" in r.stderr.lower(), r.stderr
    assert not list(cache.rglob("*.pack")), "features were extracted before checking the output"


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
    assert not list(cache.rglob("*.pack")), "features were extracted before checking the output"


def test_unwritable_skipped_csv_is_found_before_the_work(small_data, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    csv = blocker / "skipped.csv"
    cache = tmp_path / "cache"
    r = invoke(["-q", "extract", small_data, "--cache", cache, "-j", "1", "--skipped-csv", csv])
    assert_one_line_error(r, csv)
    assert not list(cache.rglob("*.pack")), "features were extracted before checking the output"


def test_unwritable_cache_of_extract_is_found_before_the_work(small_data, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    r = invoke(["-q", "extract", small_data, "--cache", blocker / "cache", "-j", "1"])
    assert_one_line_error(r, blocker / "cache")


def test_overwrite_never_copies_set_id_bits(tmp_path):
    p = tmp_path / "m.npz"
    shutil.copy(base_model("DiagGMM"), p)
    os.chmod(p, 0o4755)
    _save("DiagGMM", p)
    assert _mode(p) == 0o755, oct(_mode(p))


def test_unreadable_model_says_permission_denied(public_dir):
    p = public_dir / "m.npz"
    shutil.copy(base_model("DiagGMM"), p)
    os.chmod(p, 0o000)
    with unprivileged(), pytest.raises(ModelFileError, match="permission denied") as ei:
        load(p, DiagGMM)
    assert str(p) in str(ei.value)


def test_library_save_into_a_readonly_folder_names_the_output(public_dir):
    """The API (not only the CLI) names the user's file, never the temporary file."""
    ro = public_dir / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    g = load(base_model("DiagGMM"), DiagGMM)
    with unprivileged(), pytest.raises(PermissionError) as ei:
        save(g, ro / "m.npz")
    msg = str(ei.value)
    assert str(ro / "m.npz") in msg and ".tmp-" not in msg and "permission denied" in msg, msg


def test_check_writable_leaves_nothing_behind(tmp_path):
    container.check_writable(tmp_path / "sub" / "m.npz")
    container.check_writable(tmp_path / "reports", folder=True)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["reports", "sub"]


def test_a_header_over_the_limit_is_refused_at_save_not_written(tmp_path):
    """The reader refuses headers over MAX_HEADER_BYTES, so the writer never makes one."""
    import numpy as np

    from audiogmm.exceptions import ParameterError
    from audiogmm.io.container import MAX_HEADER_BYTES, write_container

    path = tmp_path / "big.npz"
    huge = {"notes": "x" * (MAX_HEADER_BYTES + 1)}
    with pytest.raises(ParameterError, match="over the limit.*'notes'"):
        write_container(path, kind="DiagGMM", header=huge, arrays={"w": np.ones(2)})
    assert not path.exists()


# ======================================================================================
# A full disk names the file being written (issue 21, item 19)
# ======================================================================================


@pytest.fixture
def full_disk(monkeypatch):
    """Every fsync fails as on a full file system (data is only known lost at fsync)."""
    import errno

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)


def test_atomic_write_on_a_full_disk_names_the_output_and_leaves_nothing(tmp_path, full_disk):
    import errno

    with pytest.raises(OSError) as ei:
        container.atomic_write(tmp_path / "out.bin", lambda f: f.write(b"x" * 100))
    assert str(tmp_path / "out.bin") in str(ei.value) and "no space left" in str(ei.value)
    assert ei.value.errno == errno.ENOSPC
    assert os.listdir(tmp_path) == []


def test_a_write_that_fails_without_a_file_name_names_the_output(tmp_path):
    """ENOSPC raised by write() carries no file name: the error names the output."""
    import errno

    def write(f):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match=f"{tmp_path / 'r.txt'}: cannot write"):
        container.atomic_write(tmp_path / "r.txt", write)


def _store_for_cli(folder):
    import numpy as np

    from audiogmm.data.shards import write_store
    from audiogmm.features import FeatureConfig

    cfg = FeatureConfig()
    rng = np.random.default_rng(0)
    clips = [(f"c{i}", "ab"[i % 2], rng.normal(i % 2, 1, (200, cfg.n_dims)).astype(np.float32))
             for i in range(6)]  # fmt: skip
    return write_store(folder, clips, config_hash=cfg.content_hash(), config=cfg.to_json())


@pytest.mark.parametrize("command", ["ubm", "train", "extract"])
def test_a_full_disk_names_the_file_being_written(command, tmp_path, small_data, monkeypatch):
    """`ubm` (its checkpoint), `train -o` and `extract --shards`: one line naming the path."""
    store = _store_for_cli(tmp_path / "store")
    import errno

    out = tmp_path / "out"
    real = os.fsync

    def no_space(fd):  # only the outputs' file system is full (not the feature cache's)
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(out)):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr(os, "fsync", no_space)
    args, named = {
        "ubm": (["ubm", store.folder, "-o", out / "u.npz", "-k", "2", "--max-iter", "1"],
                out / "u.npz.ckpt.npz"),
        "train": (["train", store.folder, "-o", out / "m.npz", "-k", "2"], out / "m.npz"),
        "extract": (["extract", small_data, "--shards", out / "s", "-j", "1",
                     "--cache", tmp_path / "cache"],
                    out / "s" / "shard-00000.npy"),
    }[command]  # fmt: skip
    r = invoke(["-q", *args])
    assert_one_line_error(r, named)
    assert "no space left on device" in r.stderr.lower()


def test_a_full_disk_under_verify_report_names_the_file(tmp_path, monkeypatch):
    import errno

    from audiogmm.data import Record, RunOptions
    from audiogmm.features import FeatureConfig
    from audiogmm.pipeline import train_classifier

    spk = ("ast_en", "flite_kal")
    files = {s: speaker_clips(s, 5) for s in spk}
    train = [Record(str(f), s) for s in spk for f in files[s][:3]]
    clf, _ = train_classifier(train, backend="map", n_components=4,
                              options=RunOptions(n_jobs=1))  # fmt: skip
    save_model(tmp_path / "m.npz", clf, FeatureConfig())
    rows = ["path,claim,target"] + [f"{f},{c},{int(c == s)}" for s in spk for f in files[s][3:]
                                    for c in spk]  # fmt: skip
    (tmp_path / "trials.csv").write_text("\n".join(rows) + "\n")
    out, real = tmp_path / "rep", os.fsync

    def no_space(fd):
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(out)):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr(os, "fsync", no_space)
    r = invoke(["-q", "verify", tmp_path / "m.npz", tmp_path / "trials.csv", "--report", out,
                "-j", "1"])  # fmt: skip
    assert_one_line_error(r, out)
    assert "no space left on device" in r.stderr.lower()
