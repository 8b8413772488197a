"""Benchmark: GMM-UBM with MAP adaptation against one ML GMM per class; top-C; open set.

Three measurements, in process, on features extracted once (``speech`` preset, cached
under ``~/.cache/audiogmm/bench_ubm``), training time excluding extraction:

1. ``accuracy``: closed-set speaker identification on ``data_samples/speakers`` and the
   development speakers (``~/.cache/audiogmm/devcorpus/speakers``, built by
   ``benchmarks/data/make_devcorpus.py``; skipped when missing), 70/30 stratified split
   per speaker (seed 0, as ``audiogmm train``/``evaluate``). ``ml``: ``GMMClassifier(16)``
   (the ``audiogmm train`` default); ``map``: ``UBMClassifier`` (K=64 UBM, r=16, means,
   the ``--backend map`` defaults). Accuracy with its 95% Wilson interval, the paired
   discordant counts (ml right / map wrong and vice versa), and the median training
   time over ``--repeats``.
2. ``topc``: a K=256 UBM (every 4th dev training frame, 10 EM iterations) with MAP
   speakers; 1,000 clips (the dev clips, cycled) scored with all 256 components and with
   the UBM's top C=5 per frame. Median scoring times, speed-up, and the share of clips
   whose decision (argmax) changes.
3. ``openset``: 20% of the dev speakers (seeded) are unknown; the others train a map
   model with ``reject_far=0.05`` (threshold calibrated on held-out *training* speakers).
   False-accept rate = unknown clips given a speaker label; false-reject rate = known
   test clips answered ``unknown``; both with Wilson intervals.

Run::

    python benchmarks/bench_ubm.py                 # everything
    python benchmarks/bench_ubm.py --quick         # data_samples only, small top-C run
    python benchmarks/bench_ubm.py --parts accuracy,openset
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
from _cli_common import wilson
from _common import ROOT, emit, median_time, rnd, table

from audiogmm.data import RunOptions, extract_many, read_manifest, select, split_records
from audiogmm.exceptions import ConvergenceWarning
from audiogmm.features import FeatureConfig
from audiogmm.models import GMMClassifier, UBMClassifier
from audiogmm.models.classifier import UNKNOWN

CACHE = os.path.expanduser("~/.cache/audiogmm/bench_ubm")
DEV = os.path.join(
    os.environ.get("AUDIOGMM_DEVCORPUS") or os.path.expanduser("~/.cache/audiogmm/devcorpus"),
    "speakers",
)
SMALL = os.path.join(ROOT, "data_samples", "speakers")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="data_samples only; small top-C run")
    p.add_argument("--json-out", metavar="PATH", help="append the JSON lines to PATH")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats (median)")
    p.add_argument("--parts", default="accuracy,topc,openset")
    p.add_argument("--jobs", type=int, default=None, help="threads (default all cores)")
    return p.parse_args()


def load(source: str, jobs: int | None):
    """Records with a 70/30 split and their features (extracted once, cached)."""
    records = split_records(read_manifest(source), train_fraction=0.7, seed=0)
    res = extract_many(
        records, config=FeatureConfig.preset("speech"), options=RunOptions(cache_dir=CACHE, n_jobs=jobs)
    )
    return [r for r in records if r.path in res.features], res.features


def xy(records, feats, split):
    rs = select(records, split)
    return [feats[r.path] for r in rs], [r.label for r in rs]


def accuracy_part(name, source, args, out_rows):
    records, feats = load(source, args.jobs)
    Xtr, ytr = xy(records, feats, "train")
    Xte, yte = xy(records, feats, "test")
    backends = {
        "ml": lambda: GMMClassifier(16, random_state=0, n_jobs=args.jobs),
        "map": lambda: UBMClassifier(64, relevance=16.0, random_state=0, n_jobs=args.jobs),
    }
    right = {}
    for b, make in backends.items():
        sec, clf = median_time(lambda make=make: make().fit(Xtr, ytr), args.repeats)
        pred = clf.predict(Xte)
        right[b] = np.array([p == y for p, y in zip(pred, yte)])
        k, n = int(right[b].sum()), len(yte)
        lo, hi = wilson(k, n)
        rec = {"what": "ubm_accuracy", "data": name, "backend": b, "n_classes": len(set(ytr)),
               "n_train": len(ytr), "n_test": n, "correct": k, "accuracy": rnd(k / n),
               "ci95": [rnd(lo), rnd(hi)], "train_s": rnd(sec, 3)}  # fmt: skip
        emit(rec, args.json_out)
        out_rows.append(rec)
    emit({"what": "ubm_accuracy_paired", "data": name,
          "ml_right_map_wrong": int((right["ml"] & ~right["map"]).sum()),
          "map_right_ml_wrong": int((right["map"] & ~right["ml"]).sum())}, args.json_out)  # fmt: skip


def topc_part(args):
    source = SMALL if args.quick or not os.path.isdir(DEV) else DEV
    records, feats = load(source, args.jobs)
    Xtr, ytr = xy(records, feats, "train")
    K, C, n_clips = (32, 5, 100) if args.quick else (256, 5, 1000)
    t0 = time.perf_counter()
    clf = UBMClassifier(K, relevance=16.0, subsample=4, max_iter=10, random_state=0,
                        n_jobs=args.jobs).fit(Xtr, ytr)  # fmt: skip
    train_s = time.perf_counter() - t0
    every = [feats[r.path] for r in records]
    clips = [every[i % len(every)] for i in range(n_clips)]
    clf.top_c = None
    full_s, full = median_time(lambda: clf.score_matrix(clips), args.repeats)
    clf.top_c = C
    top_s, top = median_time(lambda: clf.score_matrix(clips), args.repeats)
    changed = float(np.mean(full.argmax(1) != top.argmax(1)))
    rec = {"what": "ubm_topc", "data": os.path.basename(os.path.dirname(source)) or source,
           "K": K, "C": C, "n_clips": n_clips, "n_classes": len(clf.labels_),
           "n_frames": int(sum(len(x) for x in clips)), "ubm_train_s": rnd(train_s, 2),
           "full_s": rnd(full_s, 3), "topc_s": rnd(top_s, 3), "speedup": rnd(full_s / top_s, 2),
           "changed_decisions": rnd(changed, 4),
           "max_abs_llr_diff_per_frame": rnd(float(np.max(np.abs(full - top) / np.array(
               [[len(x)] for x in clips]))), 4)}  # fmt: skip
    emit(rec, args.json_out)
    return rec


def openset_part(args):
    if not os.path.isdir(DEV):
        print(f"# openset: skipped, no development speakers at {DEV}")
        return None
    records, feats = load(DEV, args.jobs)
    speakers = sorted({r.label for r in records})
    rng = np.random.default_rng(0)
    unknown = set(rng.choice(speakers, size=max(1, round(0.2 * len(speakers))), replace=False))
    known = [r for r in records if r.label not in unknown]
    Xtr, ytr = xy(known, feats, "train")
    Xte, yte = xy(known, feats, "test")
    Xun = [feats[r.path] for r in records if r.label in unknown]
    clf = UBMClassifier(64, relevance=16.0, reject_far=0.05, random_state=0,
                        n_jobs=args.jobs).fit(Xtr, ytr)  # fmt: skip
    pk, pu = clf.predict(Xte, reject="auto"), clf.predict(Xun, reject="auto")
    fa, fr = int((pu != UNKNOWN).sum()), int((pk == UNKNOWN).sum())
    wrong = int(sum(p != y and p != UNKNOWN for p, y in zip(pk, yte)))
    rec = {"what": "ubm_openset", "data": "dev-speakers", "n_known": len(set(ytr)),
           "n_unknown_speakers": len(unknown), "target_far": 0.05,
           "threshold": rnd(clf.threshold_, 4), "calibrated_on": clf.calibration_,
           "false_accept": rnd(fa / len(Xun)), "fa_ci95": [rnd(v) for v in wilson(fa, len(Xun))],
           "n_unknown_clips": len(Xun), "false_reject": rnd(fr / len(Xte)),
           "fr_ci95": [rnd(v) for v in wilson(fr, len(Xte))], "n_known_clips": len(Xte),
           "known_misidentified": wrong}  # fmt: skip
    emit(rec, args.json_out)
    return rec


def main() -> None:
    args = parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    parts = set(args.parts.split(","))
    rows: list[dict] = []
    if "accuracy" in parts:
        accuracy_part("data_samples-speakers", SMALL, args, rows)
        if not args.quick and os.path.isdir(DEV):
            accuracy_part("dev-speakers", DEV, args, rows)
        print(table(rows, [("data", "data", "s"), ("backend", "backend", "s"),
                           ("n_test", "test clips", "d"), ("accuracy", "accuracy", ".4f"),
                           ("train_s", "train s", ".2f")]))  # fmt: skip
    if "topc" in parts:
        topc_part(args)
    if "openset" in parts and not args.quick:
        openset_part(args)


if __name__ == "__main__":
    main()
