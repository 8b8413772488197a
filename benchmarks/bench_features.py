"""Benchmark: decode + feature extraction, in seconds of audio per CPU second, per preset and source rate.

The clips of ``--data`` (default: ``data_samples/``, 577 s of speech and sounds) are
written at each source rate (8, 16, 22.05, 44.1 and 48 kHz; soxr VHQ, 16-bit, ``--format``
WAV or FLAC) to a temporary folder. Then, on one thread of this process, timed with
``time.process_time`` (CPU seconds, which a shared machine disturbs less than wall time;
median of ``--repeats``):

* audiogmm: :func:`audiogmm.data.extract_many` (no cache) with each preset: decode,
  resample to the preset's rate, features;
* librosa: ``librosa.feature.mfcc(y=librosa.load(path)[0], sr=22050)`` per file, the
  front end of the faster reference script (``benchmarks/reference/sklearn_gmm.py
  --frontend librosa``).

``x_rt_per_cpu_s`` is audio seconds / CPU seconds (real time per CPU second), and
``vs_librosa`` audiogmm's over librosa's on the same files. Run::

    python benchmarks/bench_features.py                        # all presets and rates
    python benchmarks/bench_features.py --quick                # 1 repeat, a third of the clips
    python benchmarks/bench_features.py --presets general --rates 8000,16000
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import soundfile as sf
import soxr
from _common import ROOT, emit, parse_args, rnd, table

RATES = (8000, 16000, 22050, 44100, 48000)
PRESET_NAMES = ("general", "speech", "sound", "dcase2016", "librosa")


def options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=os.path.join(ROOT, "data_samples"),
                   help="folder scanned recursively for audio files")  # fmt: skip
    p.add_argument("--presets", default=",".join(PRESET_NAMES), help="comma-separated")
    p.add_argument("--rates", default=",".join(map(str, RATES)), help="source rates in Hz")
    p.add_argument("--format", default="wav", choices=["wav", "flac"], help="file format")


def sources(data: str, every: int) -> list[tuple[np.ndarray, int]]:
    from audiogmm.audio import AUDIO_EXTENSIONS

    out = []
    for dirpath, dirnames, files in os.walk(data):
        dirnames.sort()
        for f in sorted(files):
            if os.path.splitext(f)[1].lower() in AUDIO_EXTENSIONS:
                y, sr = sf.read(os.path.join(dirpath, f), dtype="float32", always_2d=True)
                out.append((y.mean(axis=1), sr))
    return out[::every]


def write_at(clips, rate: int, folder: str, fmt: str) -> tuple[list[str], float]:
    os.makedirs(folder, exist_ok=True)
    paths, seconds = [], 0.0
    for i, (y, sr) in enumerate(clips):
        z = y if sr == rate else soxr.resample(y, sr, rate, quality="VHQ")
        path = os.path.join(folder, f"{i:04d}.{fmt}")
        sf.write(path, np.clip(z, -1.0, 1.0), rate, subtype="PCM_16")
        paths.append(path)
        seconds += len(z) / rate
    return paths, seconds


def cpu_time(fn, repeats: int) -> float:
    fn()  # warm-up: imports, caches, the page cache
    times = []
    for _ in range(max(1, repeats)):
        c0 = time.process_time()
        fn()
        times.append(time.process_time() - c0)
    return statistics.median(times)


def main() -> None:
    args = parse_args(__doc__, quick="1 repeat, every third clip", add=options)
    import librosa

    from audiogmm.data import RunOptions, extract_many
    from audiogmm.engine import one_blas_thread
    from audiogmm.features import FeatureConfig

    presets = [s for s in args.presets.split(",") if s]
    rates = [int(r) for r in args.rates.split(",") if r]
    repeats = 1 if args.quick else args.repeats
    clips = sources(args.data, 3 if args.quick else 1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp, one_blas_thread():
        for rate in rates:
            paths, audio_s = write_at(clips, rate, os.path.join(tmp, str(rate)), args.format)

            def ref(paths=paths):
                for p in paths:
                    y, sr = librosa.load(p)
                    librosa.feature.mfcc(y=y, sr=sr)

            ref_s = cpu_time(ref, repeats)
            for name in presets:
                config = FeatureConfig.preset(name)

                def ours(paths=paths, config=config):
                    extract_many(paths, config=config, options=RunOptions(n_jobs=1))

                ours_s = cpu_time(ours, repeats)
                row = {
                    "bench": "features", "preset": name, "source_rate": rate,
                    "preset_rate": config.sample_rate, "format": args.format,
                    "n_files": len(paths), "audio_s": rnd(audio_s, 1),
                    "cpu_s": rnd(ours_s), "x_rt_per_cpu_s": rnd(audio_s / ours_s, 0),
                    "librosa_cpu_s": rnd(ref_s), "librosa_x_rt_per_cpu_s": rnd(audio_s / ref_s, 0),
                    "vs_librosa": rnd(ref_s / ours_s, 2), "repeats": repeats,
                }  # fmt: skip
                emit(row, args.json_out)
                rows.append(row)
    print()
    print(table(rows, [
        ("preset", "preset", "s"), ("source_rate", "source Hz", "d"),
        ("preset_rate", "preset Hz", "d"), ("audio_s", "audio s", ".0f"),
        ("x_rt_per_cpu_s", "audiogmm x rt/cpu s", ".0f"),
        ("librosa_x_rt_per_cpu_s", "librosa x rt/cpu s", ".0f"), ("vs_librosa", "ratio", ".2f"),
    ]))  # fmt: skip


if __name__ == "__main__":
    main()
