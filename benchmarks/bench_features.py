"""Benchmark: decode + feature extraction throughput, in seconds of audio per wall second.

Runs :func:`audiogmm.data.extract_many` (no cache) over every audio file under
``--data`` (default ``data_samples/``) for each ``--jobs`` value and prints one
JSON line per run::

    python benchmarks/bench_features.py                 # speech preset, jobs 1 and 2
    python benchmarks/bench_features.py --jobs 4 --preset dcase2016

``x_real_time`` is audio seconds / wall seconds (best of ``--repeat``);
``x_real_time_per_core`` divides it by the number of jobs, and for ``--jobs 1``
``x_real_time_per_cpu_s`` uses CPU time instead of wall time (robust on a busy machine). The process pool is
warmed up once before timing (the first pool start imports librosa in the
forkserver, ~1-3 s, paid once per process).
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time

import click
import soundfile as sf

__all__ = ["main"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _audio_files(data: str) -> list[str]:
    from audiogmm.audio import AUDIO_EXTENSIONS

    out = []
    for dirpath, dirnames, files in os.walk(data):
        dirnames.sort()
        out.extend(
            os.path.join(dirpath, f)
            for f in sorted(files)
            if os.path.splitext(f)[1].lower() in AUDIO_EXTENSIONS
        )
    return out


@click.command()
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False),
    default=os.path.join(ROOT, "data_samples"),
    show_default=True,
    help="Folder scanned recursively for audio files.",
)
@click.option("--preset", default="speech", show_default=True, help="FeatureConfig preset.")
@click.option(
    "--jobs", "jobs", type=int, multiple=True, default=(1, 2), show_default=True, help="Repeatable."
)
@click.option("--repeat", type=int, default=3, show_default=True, help="Best of N runs.")
@click.option(
    "--copies",
    type=int,
    default=3,
    show_default=True,
    help="Process each file this many times (via symlinks), to amortise the pool start.",
)
def main(data: str, preset: str, jobs: tuple[int, ...], repeat: int, copies: int) -> None:
    """Print seconds of audio processed per second of wall time, per --jobs value."""
    from audiogmm.data import RunOptions, extract_many
    from audiogmm.engine import LocalExecutor
    from audiogmm.features import FeatureConfig

    def run(paths, n_jobs):  # worker processes, as the CLI uses for large jobs
        with LocalExecutor(n_jobs, processes=n_jobs > 1) as ex:
            return extract_many(paths, config=config, options=RunOptions(n_jobs=n_jobs), executor=ex)

    config = FeatureConfig.preset(preset)
    files = _audio_files(data)
    if not files:
        raise click.ClickException(f"no audio files under {data}")
    audio_s = sum(sf.info(f).duration for f in files) * max(1, copies)
    tmp = tempfile.TemporaryDirectory(prefix="bench_features_")
    if copies > 1:
        linked = []
        for c in range(copies):
            for i, f in enumerate(files):
                link = os.path.join(tmp.name, f"{c}_{i}{os.path.splitext(f)[1]}")
                os.symlink(os.path.abspath(f), link)
                linked.append(link)
        files = linked
    run(files[:4], 1)  # import librosa, warm caches
    for n_jobs in jobs:
        if n_jobs > 1:  # start the forkserver (and its librosa import) outside the timing
            run(files[: 2 * n_jobs], n_jobs)
        best = best_cpu = float("inf")
        n_frames = 0
        for _ in range(max(1, repeat)):
            t0, c0 = time.perf_counter(), time.process_time()
            res = run(files, n_jobs)
            best = min(best, time.perf_counter() - t0)
            best_cpu = min(best_cpu, time.process_time() - c0)
            n_frames = sum(len(x) for x in res.features.values())
        print(
            json.dumps(
                {
                    "what": "decode+features (extract_many, no cache)",
                    "preset": preset,
                    "jobs": n_jobs,
                    "n_files": len(files),
                    "copies": copies,
                    "n_skipped": len(res.skipped),
                    "audio_s": round(audio_s, 2),
                    "n_frames": n_frames,
                    "D": config.n_dims,
                    "dtype": config.dtype,
                    "seconds": round(best, 4),
                    "x_real_time": round(audio_s / best, 1),
                    "x_real_time_per_core": round(audio_s / best / n_jobs, 1),
                    # this process's CPU time: the per-core cost when the machine is shared
                    # (meaningful for jobs=1 only; workers' CPU time is not counted)
                    "x_real_time_per_cpu_s": round(audio_s / best_cpu, 1) if n_jobs == 1 else None,
                    "cpus": os.cpu_count(),
                    "machine": platform.processor() or platform.machine(),
                },
                sort_keys=True,
            )
        )
    tmp.cleanup()


if __name__ == "__main__":
    main()
