"""Benchmark: cross-validated accuracy of candidate front ends, on training sides only.

How the default ``general`` preset was chosen (README "Presets and tuning"). For each data
set (the development corpus's ``sounds/``, ``speakers/`` and ``speakers8k/``, split 70/30
per class with seed 0 as ``bench_accuracy.py`` does; ``realsounds/`` 45/55), the
**training** files are extracted with each candidate front end and scored by
clip-stratified 3-fold cross-validation at K components per class
(``audiogmm.selection.cv.cv_scores``: 10 EM iterations, every second frame), the
procedure of ``--preset auto`` with twice its EM iterations. The test files are never read.
Printed per candidate: CV accuracy with its 95% Wilson interval, feature dimension, and
the extraction time of the training files (one thread).

Run::

    python benchmarks/bench_presets.py                    # every candidate, K=16
    python benchmarks/bench_presets.py --k 8 --candidates general,general+dd,sound
    python benchmarks/bench_presets.py --quick            # data_samples/ only
    python benchmarks/bench_presets.py --sets dev-realsounds
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from collections.abc import Iterator

from _cli_common import SAMPLES, Dataset, devcorpus_datasets, wilson, write_manifest
from _common import emit, rnd, table

from audiogmm.data import Record, RunOptions, extract_many, read_manifest
from audiogmm.features import PRESETS
from audiogmm.selection.cv import cv_scores

_S16 = PRESETS["sound"].replace(sample_rate=16000, n_fft=1024, fmax=None, delta_mode="interp")
CANDIDATES = {
    "speech": PRESETS["speech"],
    "sound-interp": PRESETS["sound"].replace(delta_mode="interp"),
    "sound": PRESETS["sound"],
    "sound-22k": PRESETS["sound"].replace(sample_rate=22050, n_fft=1024, fmax=None),
    "sound-16k": _S16,
    "sound-16k-32/16ms": _S16.replace(win_ms=32.0, hop_ms=16.0, n_fft=512),
    "sound-16k-20mfcc": _S16.replace(n_mfcc=20),
    "general+dd": PRESETS["general"].replace(delta_order=2),
    "general": PRESETS["general"],
    "general+cmn": PRESETS["general"].replace(cmvn="utterance", cmvn_norm_vars=False),
}


def dev_sets(p: argparse.ArgumentParser, wanted: str | None) -> list[Dataset]:
    """The development corpus's data sets, or those named in ``wanted`` (comma-separated)."""
    sets, skip = devcorpus_datasets(prefix="dev-")
    if skip:
        raise SystemExit(skip)
    if not wanted:
        return sets
    unknown = sorted(set(wanted.split(",")) - {ds.name for ds in sets})
    if unknown:
        p.error(f"unknown data set(s) {unknown}; choose from {[ds.name for ds in sets]}")
    return [ds for ds in sets if ds.name in wanted.split(",")]


def training_sides(sets: list[Dataset], tmp: str) -> Iterator[tuple[Dataset, list[Record]]]:
    """Each data set with its training records (split as bench_accuracy.py splits it, seed 0)."""
    for ds in sets:
        write_manifest(ds, os.path.join(tmp, ds.name))
        yield ds, [r for r in read_manifest(ds.csv) if r.split == "train"]


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="data_samples/ only")
    p.add_argument("--k", type=int, default=16, help="components per class")
    p.add_argument("--candidates", default=",".join(CANDIDATES))
    p.add_argument("--json-out", metavar="PATH")
    p.add_argument("--sets", metavar="LIST",
                   help="comma-separated subset of the data sets, e.g. dev-realsounds")  # fmt: skip
    args = p.parse_args()
    names = args.candidates.split(",")
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        p.error(f"unknown candidate(s) {unknown}; choose from {list(CANDIDATES)}")
    if args.quick:
        sets = [Dataset("samples-" + s, os.path.join(SAMPLES, s)) for s in ("speakers", "sounds")]
    else:
        sets = dev_sets(p, args.sets)
    warnings.simplefilter("ignore")  # CV fits stop at 10 iterations on purpose
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for ds, train in training_sides(sets, tmp):
            for name in names:
                cfg = CANDIDATES[name]
                t0 = time.perf_counter()
                res = extract_many(train, config=cfg, options=RunOptions(n_jobs=1))
                t_ext = time.perf_counter() - t0
                clips, labels = res.labelled_clips(train)
                sel = cv_scores(clips, labels, grid=[args.k], n_folds=3, random_state=0,
                                frame_step=2, max_iter=10, n_jobs=1)  # fmt: skip
                c, n = sel.accuracy_counts(sel.scores[args.k])
                lo, hi = wilson(c, n)
                row = {"bench": "preset_cv", "dataset": ds.name, "candidate": name, "K": args.k,
                       "D": cfg.n_dims, "correct": c, "n": n, "accuracy": rnd(c / n),
                       "ci_low": rnd(lo), "ci_high": rnd(hi), "extract_s": rnd(t_ext, 3)}  # fmt: skip
                emit(row, args.json_out)
                rows.append(row)
    print()
    print(table(rows, [("dataset", "dataset", "s"), ("candidate", "candidate", "s"),
                       ("D", "D", "d"), ("correct", "clips", "d"), ("accuracy", "CV acc", ".3f"),
                       ("ci_low", "low", ".3f"), ("ci_high", "high", ".3f"),
                       ("extract_s", "extract s", ".2f")]))  # fmt: skip


if __name__ == "__main__":
    main()
