"""Benchmark: what each feature engine costs, and whether librosa extras help.

``speed``: for each engine, in a fresh interpreter, the import of the front end, the
first extraction (1 s of audio: librosa's import and numba's compile or cache load
happen here for the librosa engine and the extras), and the steady speed over every
file of ``--data`` in seconds of audio per CPU second (best of ``--repeat``, one
thread). ``--cold`` points ``NUMBA_CACHE_DIR`` at an empty folder, as on a fresh install.

``extras``: clip-stratified 3-fold cross-validated accuracy (``cv_scores``, K
components, 10 EM iterations, every second frame: the procedure of
``bench_presets.py``) of each base preset with and without each extras feature, on
the training side of each data set (data_samples/sounds with ``--quick``, else the
development corpus's ``sounds`` and ``realsounds``).

Run::

    python benchmarks/bench_engines.py speed [--cold]
    python benchmarks/bench_engines.py extras --quick
    python benchmarks/bench_engines.py extras --bases general,sound --k 16
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

from _cli_common import ROOT, SAMPLES, Dataset, devcorpus_datasets, wilson, write_manifest
from _common import emit, rnd, table

_SPEED = r"""
import glob, json, os, sys, time
t0 = time.perf_counter()
from audiogmm.features import FeatureConfig
from audiogmm.features.extraction import extract
import numpy as np
t_import = time.perf_counter() - t0
config = FeatureConfig.from_json(sys.argv[1])
y = (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
t0 = time.perf_counter()
extract(y, config=config, sr=16000)
t_first = time.perf_counter() - t0
import soundfile as sf
files = sorted(glob.glob(os.path.join(sys.argv[2], "**", "*.flac"), recursive=True))
audio_s = sum(sf.info(f).duration for f in files)
best = float("inf")
for _ in range(int(sys.argv[3])):
    c0 = time.process_time()
    for f in files:
        extract(f, config=config)
    best = min(best, time.process_time() - c0)
mods = sorted({m.split(".")[0] for m in sys.modules} & {"librosa", "numba", "scipy"})
print(json.dumps({"import_s": t_import, "first_call_s": t_first, "audio_s": audio_s,
                  "cpu_s": best, "imports": mods}))
"""

ENGINES = {
    "numpy": {},
    "librosa": {"engine": "librosa"},
    "numpy+extras": {"extras": ["spectral_contrast", "spectral_flatness", "zero_crossing_rate"]},
}


def speed(args: argparse.Namespace) -> None:
    from audiogmm.features import PRESETS

    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for name, changes in ENGINES.items():
            cfg = PRESETS[args.preset].replace(**changes)
            env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1",
                   "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # fmt: skip
            if args.cold:
                env["NUMBA_CACHE_DIR"] = os.path.join(cache, name)
            cmd = [sys.executable, "-c", _SPEED, cfg.to_json(), args.data, str(args.repeat)]
            r = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            m = json.loads(r.stdout.strip().splitlines()[-1])
            row = {"bench": "engine_speed", "engine": name, "preset": args.preset,
                   "cold": args.cold,
                   "import_s": rnd(m["import_s"], 3), "first_call_s": rnd(m["first_call_s"], 3),
                   "x_real_time_per_cpu_s": rnd(m["audio_s"] / m["cpu_s"], 1),
                   "audio_s": rnd(m["audio_s"], 1),
                   "imports": ",".join(m["imports"]) or "-"}  # fmt: skip
            emit(row, args.json_out)
            rows.append(row)
    print()
    print(table(rows, [("engine", "engine", "s"), ("import_s", "import s", ".3f"),
                       ("first_call_s", "first call s", ".3f"),
                       ("x_real_time_per_cpu_s", "x real time / CPU s", ".1f"),
                       ("imports", "imports", "s")]))  # fmt: skip


def extras(args: argparse.Namespace) -> None:
    from audiogmm.data import RunOptions, extract_many, read_manifest
    from audiogmm.features import PRESETS
    from audiogmm.features.config import EXTRAS
    from audiogmm.selection.cv import cv_scores

    if args.quick:
        sets = [Dataset("samples-sounds", os.path.join(SAMPLES, "sounds"))]
    else:
        found, skip = devcorpus_datasets(prefix="dev-")
        sets = [ds for ds in found if ds.name in ("dev-sounds", "dev-realsounds")]
        if not sets:
            raise SystemExit(skip or "no dev sounds/realsounds")
    names = args.extras.split(",") if args.extras else sorted(EXTRAS)
    warnings.simplefilter("ignore")  # CV fits stop at 10 iterations on purpose; librosa's notes
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for ds in sets:
            write_manifest(ds, os.path.join(tmp, ds.name))
            train = [r for r in read_manifest(ds.csv) if r.split == "train"]
            for base in args.bases.split(","):
                for extra in [None, *names]:
                    cfg = PRESETS[base].replace(extras=[extra] if extra else [])
                    t0 = time.perf_counter()
                    res = extract_many(train, config=cfg, options=RunOptions(n_jobs=1))
                    t_ext = time.perf_counter() - t0
                    clips, labels = res.labelled_clips(train)
                    sel = cv_scores(clips, labels, grid=[args.k], n_folds=3, random_state=0,
                                    frame_step=2, max_iter=10, n_jobs=1)  # fmt: skip
                    c, n = sel.accuracy_counts(sel.scores[args.k])
                    lo, hi = wilson(c, n)
                    row = {"bench": "extras_cv", "dataset": ds.name, "base": base,
                           "extra": extra or "-", "K": args.k, "D": cfg.n_dims, "correct": c,
                           "n": n, "accuracy": rnd(c / n), "ci_low": rnd(lo), "ci_high": rnd(hi),
                           "extract_s": rnd(t_ext, 2)}  # fmt: skip
                    emit(row, args.json_out)
                    rows.append(row)
    print()
    print(table(rows, [("dataset", "dataset", "s"), ("base", "base", "s"), ("extra", "extra", "s"),
                       ("D", "D", "d"), ("correct", "clips", "d"), ("n", "of", "d"),
                       ("accuracy", "CV acc", ".3f"),
                       ("extract_s", "extract s", ".1f")]))  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--preset", default="general")
    s.add_argument("--data", default=SAMPLES, help="folder of .flac files (recursive)")
    s.add_argument("--repeat", type=int, default=3)
    s.add_argument("--cold", action="store_true", help="empty numba cache (a fresh install)")
    e = sub.add_parser("extras")
    e.add_argument("--quick", action="store_true", help="data_samples/sounds only")
    e.add_argument("--bases", default="general,sound", help="presets to add each extra to")
    e.add_argument("--extras", default="", help="comma-separated names (default: all)")
    e.add_argument("--k", type=int, default=16, help="components per class")
    for q in (s, e):
        q.add_argument("--json-out", metavar="PATH")
    args = p.parse_args()
    (speed if args.what == "speed" else extras)(args)


if __name__ == "__main__":
    main()
