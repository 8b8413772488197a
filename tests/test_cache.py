"""audiogmm.data.cache: batch extraction, the feature cache, skipped files, serial == parallel."""

from __future__ import annotations

import csv
import json
import os
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiogmm.data import Record, read_manifest
from audiogmm.data.cache import (
    PACK_SUFFIX,
    ExtractionResult,
    FileFacts,
    RunOptions,
    Skipped,
    cache_key,
    extract_many,
)  # fmt: skip
from audiogmm.engine import LocalExecutor
from audiogmm.exceptions import AudioError, FeatureError, ParameterError
from audiogmm.features import PRESETS, extract

from .conftest_audio import make_bad_file_suite, real_clips, speech_like


def run_batch(paths, *, cache_dir=None, n_jobs=None, strict=False, progress=None, **kw):
    """extract_many with the run options spelled out as keywords."""
    opts = RunOptions(cache_dir=cache_dir, n_jobs=n_jobs, strict=strict, progress=progress)
    return extract_many(paths, options=opts, **kw)


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    return make_bad_file_suite(tmp_path_factory.mktemp("bad suite"))


@pytest.fixture
def clips(tmp_path):
    """Six small good files (16 kHz WAV)."""
    folder = tmp_path / "clips"
    folder.mkdir()
    paths = []
    for i in range(6):
        p = folder / f"c{i}.wav"
        sf.write(p, speech_like(16000, 0.6, seed=i), 16000)
        paths.append(str(p))
    return paths


#: A cache record's header: magic, key (raw SHA-256), body length; the 16-byte digest follows.
_HEADER = struct.Struct("<4s32sQ")


def records(cfg_dir: Path) -> dict[str, list[tuple[Path, int, int]]]:
    """key -> (pack, offset, body length) of each whole record in a config's cache folder."""
    out: dict[str, list[tuple[Path, int, int]]] = {}
    for pack in sorted(cfg_dir.glob("*" + PACK_SUFFIX)):
        data, off = pack.read_bytes(), 0
        while off + _HEADER.size + 16 <= len(data):
            magic, key, n = _HEADER.unpack_from(data, off)
            if magic != b"AGF1" or off + _HEADER.size + n + 16 > len(data):
                break
            out.setdefault(key.hex(), []).append((pack, off, n))
            off += _HEADER.size + n + 16
    return out


def read_skipped(path: Path) -> dict[str, str]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["path", "reason"]
    return {r[0]: r[1] for r in rows[1:]}


# ---------------------------------------------------------------------- acceptance 3, batch
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_batch_skips_bad_files_and_reports_them(suite, tmp_path, n_jobs):
    paths = [c.path for c in suite.values()]
    res = run_batch(paths, config=PRESETS["speech"], n_jobs=n_jobs, cache_dir=tmp_path / "c")
    good = [c.path for c in suite.values() if c.error is None]
    bad = {c.path: c for c in suite.values() if c.error is not None}
    assert list(res.features) == good  # input order
    assert [s.path for s in res.skipped] == list(bad)
    assert res.n_extracted == len(good) and res.n_cached == 0 and res.n_skipped == len(bad)
    for p in good:
        np.testing.assert_array_equal(res.features[p], extract(p, config=PRESETS["speech"]))
    res.write_skipped_csv(tmp_path / "skipped.csv")
    reasons = read_skipped(tmp_path / "skipped.csv")
    assert list(reasons) == list(bad)
    for p, case in bad.items():
        assert case.match in reasons[p] and p in reasons[p]


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_strict_raises_the_files_error(suite, clips, n_jobs):
    with pytest.raises(AudioError, match="empty file"):
        run_batch([*clips, suite["empty.wav"].path], n_jobs=n_jobs, strict=True)
    with pytest.raises(FeatureError, match="silent: no frame above"):
        run_batch([suite["silence.wav"].path], config=PRESETS["speech"], n_jobs=n_jobs,
                  strict=True)  # fmt: skip
    with pytest.raises(AudioError, match="not found"):
        run_batch([suite["missing.wav"].path], cache_dir=Path(clips[0]).parent / "c", strict=True)


def test_keep_all_frames_rescues_silence(suite):
    res = run_batch([suite["silence.wav"].path], config=PRESETS["speech"], n_jobs=1,
                    keep_all_frames=True)  # fmt: skip
    (x,) = res.features.values()
    assert x.shape == (101, 60) and np.isfinite(x).all() and not res.skipped


def test_write_skipped_csv_with_nothing_skipped(clips, tmp_path):
    res = run_batch(clips, n_jobs=1)
    res.write_skipped_csv(tmp_path / "skipped.csv")
    assert read_skipped(tmp_path / "skipped.csv") == {}
    assert [f for f in os.listdir(tmp_path) if f.startswith(".tmp")] == []


# ---------------------------------------------------------------------- acceptance 4, cache
def test_cache_counts(clips, tmp_path):
    cache = tmp_path / "cache"
    cfg = PRESETS["speech"]
    first = run_batch(clips, config=cfg, cache_dir=cache, n_jobs=1)
    assert (first.n_extracted, first.n_cached) == (6, 0)
    second = run_batch(clips, config=cfg, cache_dir=cache, n_jobs=1)
    assert (second.n_extracted, second.n_cached) == (0, 6)
    for p in clips:
        np.testing.assert_array_equal(second.features[p], first.features[p])

    # touching one file re-extracts only it
    st = os.stat(clips[2])
    os.utime(clips[2], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    third = run_batch(clips, config=cfg, cache_dir=cache, n_jobs=1)
    assert (third.n_extracted, third.n_cached) == (1, 5)

    # a changed config re-extracts all, next to the old entries
    other = cfg.replace(n_mfcc=13)
    fourth = run_batch(clips, config=other, cache_dir=cache, n_jobs=2)
    assert (fourth.n_extracted, fourth.n_cached) == (6, 0)
    assert all(x.shape[1] == 39 for x in fourth.features.values())
    assert sorted(os.listdir(cache)) == sorted([cfg.content_hash(), other.content_hash()])
    cfg_dir = cache / cfg.content_hash()
    assert (cfg_dir / "config.json").read_text().startswith("{")
    # 6 current entries + 1 stale one for the touched file, in the packs of the two runs
    # that wrote any; no temp files left behind
    assert sum(len(v) for v in records(cfg_dir).values()) == 7
    assert len(list(cfg_dir.glob("*" + PACK_SUFFIX))) == 2
    assert not [f for f in os.listdir(cfg_dir) if f.startswith(".")]


def test_changed_content_same_mtime_size_is_keyed_by_mtime(clips, tmp_path):
    cache = tmp_path / "cache"
    run_batch(clips[:1], cache_dir=cache, n_jobs=1)
    sf.write(clips[0], speech_like(16000, 0.6, seed=99), 16000)  # rewrite: new mtime
    res = run_batch(clips[:1], cache_dir=cache, n_jobs=1)
    assert res.n_extracted == 1
    np.testing.assert_array_equal(res.features[clips[0]], extract(clips[0]))


def _record_of(cache: Path, clip: str, cfg) -> tuple[Path, int, int]:
    (rec,) = records(cache / cfg.content_hash())[cache_key(clip, cfg)]
    return rec


def _npy(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def _forged(arr: np.ndarray | bytes, key: str) -> bytes:
    """A record with a valid digest around any .npy bytes (even a pickled object array)."""
    import hashlib

    body = arr if isinstance(arr, bytes) else _npy(arr)
    head = _HEADER.pack(b"AGF1", bytes.fromhex(key), len(body))
    return head + body + hashlib.sha256(head + body).digest()[:16]


_THREE_ROWS = _npy(np.zeros((3, 60), np.float32))


@pytest.mark.parametrize(
    "forged",
    [
        np.zeros((3, 7), np.float32),
        np.zeros((3, 60), np.float64),
        np.full((3, 60), np.nan, np.float32),
        np.zeros((0, 60), np.float32),
        np.array([{"a": 1}], dtype=object),
        # a header that claims more rows than the data holds, or fewer
        _THREE_ROWS.replace(b"(3, 60), } ", b"(30, 60), }"),
        _THREE_ROWS + b"\0" * 240,
    ],
)
def test_invalid_cache_entry_is_recomputed(clips, tmp_path, forged):
    """A record whose digest is right but whose array is not features of this config."""
    cache = tmp_path / "cache"
    cfg = PRESETS["speech"]
    ref = run_batch(clips[:2], config=cfg, cache_dir=cache, n_jobs=1)
    pack, off, n = _record_of(cache, clips[0], cfg)
    data = pack.read_bytes()
    end = off + _HEADER.size + n + 16
    pack.write_bytes(data[:off] + _forged(forged, cache_key(clips[0], cfg)) + data[end:])
    res = run_batch(clips[:2], config=cfg, cache_dir=cache, n_jobs=1)
    assert (res.n_extracted, res.n_cached) == (1, 1)
    np.testing.assert_array_equal(res.features[clips[0]], ref.features[clips[0]])
    again = run_batch(clips[:2], config=cfg, cache_dir=cache, n_jobs=1)
    assert (again.n_extracted, again.n_cached) == (0, 2)  # the recomputed entry was kept
    np.testing.assert_array_equal(again.features[clips[0]], ref.features[clips[0]])


@pytest.mark.parametrize("cut", ["garbage", "truncated", "magic"])
def test_damaged_pack_is_recomputed_not_trusted(clips, tmp_path, cut):
    """Garbage over a record, a pack cut short, a wrong magic: those entries are computed again."""
    cache = tmp_path / "cache"
    cfg = PRESETS["speech"]
    ref = run_batch(clips[:3], config=cfg, cache_dir=cache, n_jobs=1)
    pack, off, n = _record_of(cache, clips[1], cfg)
    data = bytearray(pack.read_bytes())
    if cut == "garbage":
        data[off + _HEADER.size : off + _HEADER.size + 40] = b"x" * 40
    elif cut == "truncated":
        del data[off + 100 :]
    else:
        data[off : off + 4] = b"NOPE"
    pack.write_bytes(bytes(data))
    res = run_batch(clips[:3], config=cfg, cache_dir=cache, n_jobs=1)
    # the first record is whole; the damaged one is recomputed (and, when the scan of the
    # pack stops there, the third one too)
    want = (1, 2) if cut == "garbage" else (2, 1)
    assert (res.n_extracted, res.n_cached) == want
    for p in clips[:3]:
        np.testing.assert_array_equal(res.features[p], ref.features[p])


def test_keep_all_frames_has_its_own_cache_entries(clips, tmp_path):
    cache = tmp_path / "cache"
    run_batch(clips, cache_dir=cache, n_jobs=1)
    res = run_batch(clips, cache_dir=cache, n_jobs=1, keep_all_frames=True)
    assert res.n_extracted == 6


def test_records_duplicates_and_progress(clips):
    calls = []
    recs = [Record(p, "x") for p in clips]
    res = run_batch(
        [*recs, clips[0]], n_jobs=1, progress=lambda done, total, label: calls.append((done, total))
    )
    assert isinstance(res, ExtractionResult) and list(res.features) == clips
    assert calls == [(i, 6) for i in range(1, 7)]
    assert run_batch([], n_jobs=2).features == {}


def test_the_library_prints_nothing_the_cli_bar_draws(clips, capsys):
    from audiogmm.cli.options import ProgressBar

    run_batch(clips[:2], n_jobs=1, progress=lambda *a: None)
    assert capsys.readouterr().err == ""
    bar = ProgressBar()
    run_batch(clips[:2], n_jobs=1, progress=bar)
    assert "Extracting features" in capsys.readouterr().err


def test_worker_processes_only_when_asked_and_same_result(clips):
    threads = run_batch(clips, n_jobs=2)
    with LocalExecutor(2, processes=True) as ex:
        procs = extract_many(clips, options=RunOptions(n_jobs=2), executor=ex)
        assert True in ex._pools  # a worker-process pool was started because it was asked for
    for p in clips:
        np.testing.assert_array_equal(threads.features[p], procs.features[p])


@pytest.mark.parametrize("n_jobs", [0, -1, 1.5, True])
def test_bad_n_jobs(clips, n_jobs):
    with pytest.raises(ParameterError, match="n_jobs"):
        run_batch(clips, n_jobs=n_jobs)


def test_skipped_is_a_value():
    assert Skipped("a", "b") == Skipped("a", "b")


# ---------------------------------------------------------------------- acceptance 5
def clip_folder(tmp_path: Path, minimum: int = 100) -> list[str]:
    """≥ minimum real clips from data_samples/, cut into 2 s segments when there are too few."""
    real = real_clips()
    out = []
    if len(real) >= minimum:
        return real
    if real:  # cut several segments from each real clip
        folder = tmp_path / "segments"
        folder.mkdir()
        for i, p in enumerate(real):
            y, sr = sf.read(p, dtype="float32")
            for j in range(0, max(1, len(y) - sr), sr):
                q = folder / f"{i:03d}_{j // sr:02d}.flac"
                sf.write(q, y[j : j + 2 * sr], sr)
                out.append(str(q))
        if len(out) >= minimum:
            return out
    folder = tmp_path / "synthetic"  # data_samples/ absent: development fallback
    folder.mkdir()
    for i in range(minimum):
        q = folder / f"s{i:03d}.flac"
        sf.write(q, speech_like(16000, 1.0, seed=i), 16000)
        out.append(str(q))
    return out


def test_parallel_equals_serial_on_100_real_clips(tmp_path):
    paths = clip_folder(tmp_path)
    assert len(paths) >= 100
    serial = run_batch(paths, n_jobs=1)
    parallel = run_batch(paths, n_jobs=2, cache_dir=tmp_path / "cache")
    assert list(parallel.features) == list(serial.features)
    assert [s.path for s in parallel.skipped] == [s.path for s in serial.skipped]
    assert len(serial.features) >= 0.95 * len(paths)
    for p, x in serial.features.items():
        y = parallel.features[p]
        assert x.dtype == y.dtype == np.float32 and x.shape == y.shape
        np.testing.assert_array_equal(x, y)
    assert parallel.n_extracted == len(parallel.features)


def test_manifest_of_data_samples_in_parallel(tmp_path):
    if not real_clips(limit=1):
        pytest.skip("data_samples/ not present")
    from .conftest_audio import DATA_SAMPLES

    recs = read_manifest(DATA_SAMPLES / "sounds")[:12]
    cfg = PRESETS["dcase2016"]
    res = run_batch(recs, config=cfg, n_jobs=2, cache_dir=tmp_path / "c")
    again = run_batch(recs, config=cfg, n_jobs=2, cache_dir=tmp_path / "c")
    assert again.n_cached == res.n_extracted == len(res.features) == 12
    for r in recs:
        assert res.features[r.path].shape[1] == 60


# ---------------------------------------------------------------------- entries without fsync
def test_torn_entry_is_recomputed_not_trusted(clips, tmp_path):
    """A power loss can leave a record whose data blocks never reached the disk (zeros
    behind a good header): the digest catches it."""
    cache = tmp_path / "cache"
    cfg = PRESETS["speech"]
    ref = run_batch(clips[:2], config=cfg, cache_dir=cache, n_jobs=1)
    pack, off, n = _record_of(cache, clips[0], cfg)
    data = bytearray(pack.read_bytes())
    body = off + _HEADER.size
    npy_header = 10 + int.from_bytes(data[body + 8 : body + 10], "little")  # .npy v1 header
    data[body + npy_header : body + n] = bytes(n - npy_header)
    pack.write_bytes(bytes(data))
    res = run_batch(clips[:2], config=cfg, cache_dir=cache, n_jobs=1)
    assert (res.n_extracted, res.n_cached) == (1, 1)
    np.testing.assert_array_equal(res.features[clips[0]], ref.features[clips[0]])


def _cli(*args, preexec_fn=None, **popen):
    from .conftest_hostile import script_env

    cmd = [sys.executable, "-m", "audiogmm", *map(str, args)]
    if popen.pop("background", False):
        return subprocess.Popen(cmd, env=script_env(), preexec_fn=preexec_fn, **popen)
    return subprocess.run(cmd, env=script_env(), preexec_fn=preexec_fn, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def _file_size_limit(n_bytes: int):
    def limit():  # in the child: writes past n_bytes fail with EFBIG, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, n_bytes))

    return limit


def test_extract_reports_the_entries_it_could_not_write(tmp_path):
    """Issue 21, 19: a write error (here EFBIG from RLIMIT_FSIZE, as ENOSPC on a full disk)
    was logged per file and `extract` exited 0 saying every file was ready."""
    data = tmp_path / "data"
    for label, seconds in [("short", 0.6), ("long", 6.0)]:
        (data / label).mkdir(parents=True)
        for i in range(2 if label == "long" else 4):
            sf.write(data / label / f"{label}{i}.wav", speech_like(16000, seconds, seed=i), 16000)
    cache = tmp_path / "cache"
    r = _cli("extract", data, "--cache", cache, "-j", "1",
             preexec_fn=_file_size_limit(20_000))  # fmt: skip
    assert r.returncode == 1, r.stdout + r.stderr
    assert "4/6 files ready" in r.stdout and "2 not written" in r.stdout
    err = r.stderr.strip().splitlines()[-1]
    assert err.startswith("Error: could not write 2 cache entries; first: ")
    assert str(cache) in err and PACK_SUFFIX in err and "long" in err
    assert re.search(rf"\{PACK_SUFFIX} \(features of '[^']*long[^']*'\): \S", err)  # README's form
    # the entries that were written are whole: a rerun without the limit reads them back
    r = _cli("extract", data, "--cache", cache, "-j", "1", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["n_cached"], out["n_extracted"], out["cache_errors"]) == (4, 2, [])


def test_file_facts_that_cannot_be_written_are_computed_warned_once_then_kept(
    clips, tmp_path, caplog
):
    computed: list[str] = []

    def facts_of(paths):
        with FileFacts(tmp_path / "cache") as facts:
            return [facts.get(p, "k", 4, lambda p: computed.append(p) or b"abcd") for p in paths]

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))  # EFBIG, as ENOSPC on a full disk
    try:
        assert facts_of(clips) == [b"abcd"] * len(clips)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert computed == clips
    assert sum("could not cache facts about files" in m for m in caplog.messages) == 1
    computed.clear()
    assert facts_of(clips) == facts_of(clips) == [b"abcd"] * len(clips)
    assert computed == clips  # computed by the first of the two, read back by the second


def test_sigkill_during_cached_extraction_then_rerun_equals_clean_run(tmp_path):
    """Kill -9 a `extract --cache` mid-run; the rerun keeps every finished entry and gives
    the features of a run without any cache."""
    src = sorted(Path(__file__).parents[1].joinpath("data_samples", "sounds").rglob("*.flac"))
    data = tmp_path / "data"
    paths = []
    for i, f in enumerate(src[:40]):  # several copies: enough work to be killed mid-way
        for c in range(3):
            dst = data / f.parent.name / f"{c}-{i}-{f.name}"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, dst)
            paths.append(str(dst))
    cache = tmp_path / "cache"
    cfg_dir = cache / PRESETS["general"].content_hash()

    def entries() -> int:  # finished ones: whole records
        return sum(len(v) for v in records(cfg_dir).values())

    proc = _cli("extract", data, "--cache", cache, "-j", "2", background=True,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = entries() if cfg_dir.is_dir() else 0
            if done >= 10 or proc.poll() is not None:
                break
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "extract finished before it could be killed"
    finished = entries()
    assert 10 <= finished < len(paths)
    r = _cli("extract", data, "--cache", cache, "-j", "2", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["n_cached"] >= finished and out["n_cached"] + out["n_extracted"] == len(paths)
    assert "corrupt" not in r.stderr and "invalid" not in r.stderr
    cached = run_batch(paths, cache_dir=cache, n_jobs=1)
    assert cached.n_cached == len(paths)
    clean = run_batch(paths, n_jobs=1)
    assert list(cached.features) == list(clean.features) == paths
    for p in paths:
        np.testing.assert_array_equal(cached.features[p], clean.features[p])


# ---------------------------------------------------------------------- decoding speed-ups
@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_one_shot_resampling_equals_the_stream(tmp_path, monkeypatch, rate, channels):
    """A file of one block is resampled by one soxr call instead of a stream (the stream's
    set-up cost more than a clip's resampling): the samples, hence the features, are the
    same to the bit, for integer and float encodings, mono and stereo."""
    import audiogmm.audio as audio_mod

    y = np.stack([speech_like(rate, 1.3, seed=c) for c in range(channels)], axis=1)
    for subtype in ("PCM_16", "FLOAT"):
        path = tmp_path / f"{rate}-{channels}-{subtype}.wav"
        sf.write(path, 0.5 * y, rate, subtype=subtype)
        one_shot = audio_mod.load(path, sr=16000)
        with monkeypatch.context() as m:
            m.setattr(audio_mod, "_BLOCK_SAMPLES", 4096 * channels)  # many blocks: the stream
            streamed = audio_mod.load(path, sr=16000)
        np.testing.assert_array_equal(one_shot, streamed)
    feats = extract(str(path))
    with monkeypatch.context() as m:
        m.setattr(audio_mod, "_BLOCK_SAMPLES", 4096 * channels)
        np.testing.assert_array_equal(extract(str(path)), feats)


# ---------------------------------------------------------------------- several front ends
@pytest.mark.parametrize("rate, channels, subtype", [(44100, 2, "PCM_16"), (48000, 1, "FLOAT"),
                                                     (16000, 1, "PCM_24"), (8000, 2, "FLOAT")])
@pytest.mark.parametrize("block", [None, 4096])
def test_one_decode_at_several_rates_equals_a_load_at_each(tmp_path, monkeypatch, rate, channels,
                                                           subtype, block):  # fmt: skip
    # one block (one soxr call per rate) and many (one stream per rate), native rate included
    import audiogmm.audio as audio_mod

    y = np.stack([speech_like(rate, 1.7, seed=c) for c in range(channels)], axis=1)
    path = tmp_path / f"x-{rate}.wav"
    sf.write(path, 0.5 * y, rate, subtype=subtype)
    if block:
        monkeypatch.setattr(audio_mod, "_BLOCK_SAMPLES", block * channels)
    rates = [16000, 44100, rate, 22050]
    got = audio_mod.load_rates(path, rates)
    assert len(got) == len(rates)
    for r, g in zip(rates, got):
        np.testing.assert_array_equal(g, audio_mod.load(path, sr=r))
        assert g.dtype == np.float32


def test_load_rates_refuses_no_rate_and_a_bad_rate(clips):
    import audiogmm.audio as audio_mod

    with pytest.raises(ParameterError, match="at least one"):
        audio_mod.load_rates(clips[0], [])
    with pytest.raises(ParameterError, match="rate must be an integer"):
        audio_mod.load_rates(clips[0], [16000, 12.5])


def _several_configs():
    cmn = PRESETS["sound"].replace(cmvn="utterance", cmvn_norm_vars=False)
    # two roots at two rates, a CMVN variant derived from one, a second copy of the default
    return [PRESETS["speaker"], PRESETS["sound"], cmn, PRESETS["general"], PRESETS["speaker"]]


def test_extract_several_equals_extract_per_config_and_keeps_per_config_errors(tmp_path):
    from audiogmm.features.extraction import extract_several

    cfgs = _several_configs()
    p = tmp_path / "long.wav"
    sf.write(p, 0.5 * speech_like(44100, 1.2, seed=3), 44100)
    for c, got in zip(cfgs, extract_several(p, cfgs)):
        np.testing.assert_array_equal(got, extract(p, config=c))
    # 30 ms at 48 kHz: longer than the speaker preset's 25 ms window, shorter than sound's 40
    short = tmp_path / "short.wav"
    sf.write(short, 0.5 * speech_like(48000, 0.03, seed=4), 48000)
    got = extract_several(short, [PRESETS["speaker"], PRESETS["sound"]])
    np.testing.assert_array_equal(got[0], extract(short, config=PRESETS["speaker"]))
    with pytest.raises(AudioError, match="too short") as exc:
        extract(short, config=PRESETS["sound"])
    assert isinstance(got[1], AudioError) and str(got[1]) == str(exc.value)
    for bad in (["general"], []):
        with pytest.raises(ParameterError, match="one or more FeatureConfig"):
            extract_several(p, bad)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_extract_many_configs_equals_extract_many_per_config(suite, tmp_path, n_jobs):
    # bit for bit, skipped files and their reasons included; cached, then read back
    from audiogmm.data import extract_many_configs

    cfgs = _several_configs()
    short = tmp_path / "short.wav"
    sf.write(short, 0.5 * speech_like(48000, 0.03, seed=4), 48000)
    paths = [c.path for c in suite.values()] + [str(short)]
    opts = RunOptions(cache_dir=tmp_path / "c", n_jobs=n_jobs)
    for rnd in range(2):
        multi = extract_many_configs(paths, cfgs, options=opts)
        assert len(multi) == len(cfgs)
        for c, m in zip(cfgs, multi):
            one = run_batch(paths, config=c, n_jobs=n_jobs)
            assert list(m.features) == list(one.features)
            for p in one.features:
                np.testing.assert_array_equal(m.features[p], one.features[p])
            assert [(s.path, s.reason) for s in m.skipped] == [(s.path, s.reason)
                                                               for s in one.skipped]
        n_good = len(multi[0].features)
        # the two extracted front ends: computed in the first round, read back in the second
        assert [(m.n_extracted, m.n_cached) for m in multi[:2]] == (
            [(n_good, 0), (n_good - 1, 0)] if rnd == 0 else [(0, n_good), (0, n_good - 1)])
    assert str(short) in multi[0].features and str(short) not in multi[1].features
    with pytest.raises(ParameterError, match="one or more FeatureConfig"):
        extract_many_configs(paths, [])
    if n_jobs == 2:  # worker processes: the same features, the same skips
        with LocalExecutor(2, processes=True) as ex:
            procs = extract_many_configs(paths, cfgs, executor=ex)
        for m, q in zip(multi, procs):
            assert list(q.features) == list(m.features) and q.skipped == m.skipped
            for p in m.features:
                np.testing.assert_array_equal(q.features[p], m.features[p])
