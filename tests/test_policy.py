"""The process model: threads by default, processes only for large work, one executor per command."""

from __future__ import annotations

import itertools
import logging
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from audiogmm.cli import main
from audiogmm.engine import local
from audiogmm.engine.local import (
    PROCESS_MIN_AUDIO_S,
    SAMPLE_FILES,
    audio_work,
    count_until,
    executor_for_work,
)
from audiogmm.exceptions import ParameterError

ROOT = Path(__file__).resolve().parents[1]
SPEAKERS = ROOT / "data_samples" / "speakers"


@pytest.fixture(autouse=True)
def _no_override(monkeypatch):
    monkeypatch.delenv("AUDIOGMM_PROCESSES", raising=False)


@pytest.fixture
def plan(caplog):
    """``plan(work, n_jobs)``: the executor a command gets (closed) and the reason it logs."""

    def made(work, n_jobs=None):
        with caplog.at_level(logging.INFO, logger="audiogmm.engine"):
            ex = executor_for_work(work, n_jobs)
        ex.close()
        return ex, caplog.messages[-1]

    return made


@pytest.mark.parametrize("work", [0, 10, 240, 5_000, PROCESS_MIN_AUDIO_S - 1])
@pytest.mark.parametrize("n_jobs", [2, 8, None])
def test_small_work_runs_on_threads(work, n_jobs, plan):
    ex, reason = plan(work, n_jobs)
    assert not ex.processes and "threads" in reason


@pytest.mark.parametrize("work", [PROCESS_MIN_AUDIO_S, 10 * PROCESS_MIN_AUDIO_S])
@pytest.mark.parametrize("n_jobs", [2, 8])
def test_large_work_runs_on_processes(work, n_jobs, plan):
    ex, reason = plan(work, n_jobs)
    assert ex.processes and ex.n_workers == n_jobs and "processes" in reason


def test_one_job_never_starts_processes(plan):
    assert not plan(100 * PROCESS_MIN_AUDIO_S, 1)[0].processes


def test_environment_overrides_the_size_rule(monkeypatch, plan):
    monkeypatch.setenv("AUDIOGMM_PROCESSES", "1")
    assert plan(0, 2)[0].processes and not plan(0, 1)[0].processes
    monkeypatch.setenv("AUDIOGMM_PROCESSES", "0")
    assert not plan(100 * PROCESS_MIN_AUDIO_S, 2)[0].processes
    monkeypatch.setenv("AUDIOGMM_PROCESSES", "sometimes")
    with pytest.raises(ParameterError, match="AUDIOGMM_PROCESSES"):
        plan(0, 2)


def test_default_workers_cap(monkeypatch, plan):
    monkeypatch.setenv("AUDIOGMM_THREADS", "3")
    assert plan(10 * PROCESS_MIN_AUDIO_S)[0].n_workers == 3


def test_count_until_stops_reading_early():
    seen = []

    def values():
        for v in [1.0] * 100:
            seen.append(v)
            yield v

    assert count_until(values(), 10) == 10 and len(seen) == 10
    assert count_until([1.0, 2.0], 10) == 3.0


def _files(tmp_path, sizes):
    """Files of the given byte sizes, and their 'duration' (1 s per 1,000 bytes)."""
    paths = []
    for i, n in enumerate(sizes):
        p = tmp_path / f"f{i:04d}.bin"
        p.write_bytes(b"x" * n)
        paths.append(str(p))
    return paths, {p: n / 1000 for p, n in zip(paths, sizes)}


@pytest.mark.parametrize("n", [2 * SAMPLE_FILES + 1, 500])
def test_audio_work_far_below_the_limit_reads_a_sample_of_headers(tmp_path, n):
    paths, dur = _files(tmp_path, [1000 + 37 * (i % 11) for i in range(n)])
    read = []
    work = audio_work(paths, lambda p: read.append(p) or dur[p], 4.5 * sum(dur.values()))
    assert len(read) == SAMPLE_FILES and len(set(read)) == SAMPLE_FILES
    assert read[0] == paths[0] and read[-1] == paths[-1]  # spread over the whole list
    assert work == pytest.approx(sum(dur.values()), rel=0.02)  # sizes scale the sample


@pytest.mark.parametrize("factor", [3.5, 1.01, 0.99, 0.5])
def test_audio_work_near_or_above_the_limit_is_counted_from_every_header(tmp_path, factor):
    paths, dur = _files(tmp_path, [1000 + 37 * (i % 11) for i in range(200)])
    total, read = sum(dur.values()), []
    limit = factor * total
    work = audio_work(paths, lambda p: read.append(p) or dur[p], limit)
    assert (work >= limit) == (factor <= 1)  # the same choice as reading every header
    sample, rest = read[:SAMPLE_FILES], read[SAMPLE_FILES:]
    sums = list(itertools.accumulate(dur[p] for p in paths))
    stop = next((i + 1 for i, t in enumerate(sums) if t >= limit), len(paths))
    counted = paths[:stop]  # summed in order until the limit
    assert rest == [p for p in counted if p not in sample]  # each header read once
    assert work == pytest.approx(sums[stop - 1])


def test_audio_work_of_a_short_list_reads_every_header_once(tmp_path):
    paths, dur = _files(tmp_path, [1000] * (2 * SAMPLE_FILES))
    read = []
    assert audio_work(paths, lambda p: read.append(p) or dur[p], 1e9) == sum(dur.values())
    assert read == paths


def test_audio_work_survives_missing_and_empty_files(tmp_path):
    paths, dur = _files(tmp_path, [0] * 100)
    paths.append(str(tmp_path / "gone.wav"))
    dur[paths[-1]] = 0.0
    assert audio_work(paths, dur.__getitem__, 10.0) == 0.0  # no size: every header, no error


def test_executor_for_work_builds_what_the_plan_says(monkeypatch):
    with executor_for_work(PROCESS_MIN_AUDIO_S, 2) as ex:
        assert ex.processes and ex.n_workers == 2
    with executor_for_work(10, 2) as ex:
        assert not ex.processes


@pytest.fixture
def chosen(monkeypatch):
    """The ``processes`` chosen by each executor_for_work call; every executor runs threads."""
    made = []

    class Threads(local.LocalExecutor):
        def __init__(self, n=None, *, processes=None):
            if processes is not None:  # executor_for_work passes it; nothing else does
                made.append(processes)
            super().__init__(n)

    monkeypatch.setattr(local, "LocalExecutor", Threads)
    return made


@pytest.fixture
def small_data(tmp_path):
    data = tmp_path / "data"  # outputs go next to it, not into it
    for spk in ("ast_en", "flite_slt"):
        (data / spk).mkdir(parents=True)
        for f in sorted((SPEAKERS / spk).glob("*.flac"))[:4]:
            shutil.copy(f, data / spk / f.name)
    return data


def test_cli_uses_one_threaded_executor_per_command_and_logs_it(
    small_data, tmp_path, monkeypatch, caplog
):
    made = []
    real_init = local.LocalExecutor.__init__

    def spy(self, *a, **kw):
        real_init(self, *a, **kw)
        made.append(self)

    monkeypatch.setattr(local.LocalExecutor, "__init__", spy)
    model = tmp_path / "m.npz"
    with caplog.at_level(logging.INFO, logger="audiogmm.engine"):
        r = CliRunner().invoke(
            main, ["-v", "train", str(small_data), "-o", str(model), "-k", "2", "-j", "2"],
            catch_exceptions=False,
        )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert any("executor: 2 threads" in m for m in caplog.messages)
    parallel = [e for e in made if e.n_workers > 1 or e.processes]
    assert len(parallel) == 1 and not parallel[0].processes  # one pool, reused by every stage
    made.clear()
    r = CliRunner().invoke(
        main, ["evaluate", str(model), str(small_data), "--split", "all", "-j", "2",
               "--allow-train-overlap"],
        catch_exceptions=False,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert len([e for e in made if e.n_workers > 1]) == 1


def test_cli_picks_processes_for_large_work(small_data, tmp_path, monkeypatch, caplog, chosen):
    monkeypatch.setattr(local, "PROCESS_MIN_AUDIO_S", 1.0)  # the data set is "large" now
    made = chosen
    with caplog.at_level(logging.INFO, logger="audiogmm.engine"):
        r = CliRunner().invoke(
            main, ["-v", "extract", str(small_data), "--cache", str(tmp_path / "c"), "-j", "2"],
            catch_exceptions=False,
        )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert made == [True]
    assert any("worker processes" in m for m in caplog.messages)


def test_work_is_audio_seconds_whatever_the_front_end(small_data, monkeypatch, chosen):
    # the front end costs about the same per second of audio at any hop, so the choice
    # must not move with the frame rate of the preset
    from audiogmm.audio import info
    from audiogmm.cli.options import command_executor

    paths = [str(p) for p in sorted(Path(small_data).rglob("*.flac"))]
    total = sum(info(p).duration_s for p in paths)
    made = chosen
    for limit, want in ((total * 1.01, False), (total * 0.99, True)):
        monkeypatch.setattr(local, "PROCESS_MIN_AUDIO_S", limit)
        with command_executor(paths, 2):
            pass
        assert made[-1] is want


def test_durations_kept_in_the_cache_decide_alike_without_reading_headers(
    small_data, tmp_path, monkeypatch, chosen
):
    import audiogmm.audio
    from audiogmm.cli.options import command_executor

    paths = [str(p) for p in sorted(Path(small_data).rglob("*.flac"))]
    total = sum(audiogmm.audio.info(p).duration_s for p in paths)
    made, read = chosen, []
    real_info = audiogmm.audio.info
    monkeypatch.setattr(audiogmm.audio, "info", lambda p: read.append(p) or real_info(p))
    for limit, want in ((total * 1.01, False), (total * 0.99, True)):
        monkeypatch.setattr(local, "PROCESS_MIN_AUDIO_S", limit)
        for run in range(2):  # only the very first run reads the headers: then the cache
            read.clear()
            with command_executor(paths, 2, tmp_path / "C"):
                pass
            assert made[-1] is want
            assert read == (paths if run == 0 and not want else [])
