"""Benchmark: speaker identification end to end, audiogmm pipeline vs a plain librosa+sklearn
script.

Data: ``data_samples/speakers`` (9 speakers x 12 clips, 16 kHz), split with
``split_records(train_fraction=0.7, seed=0)`` (8 train / 4 test clips per speaker).
Both sides use K=16 diagonal components per speaker and the same clips:

* audiogmm: ``train_classifier`` (speech preset: 20 MFCC incl. log-energy + delta + delta-delta,
  energy VAD, utterance CMVN; extraction in worker processes, no cache) then
  ``evaluate_classifier``.
* reference, written the way users write it: per clip ``librosa.load(sr=16000)``,
  ``librosa.feature.mfcc(n_mfcc=20, n_fft=512, win_length=400, hop_length=160)``
  (25 ms / 10 ms), ``librosa.feature.delta`` (orders 1 and 2); one scikit-learn
  ``GaussianMixture(16, covariance_type="diag", random_state=0)`` per speaker; a
  scoring loop of ``score_samples(X).sum()`` per clip and speaker.

Wall time covers feature extraction, training and evaluation. Each side runs once
untimed first (``cold s``: imports of librosa, the forkserver start, numba caches),
then ``--repeats`` timed runs, interleaved; medians are reported.
``speedup`` = reference time / audiogmm time.

Run::

    python benchmarks/bench_pipeline.py            # ~15 s
    python benchmarks/bench_pipeline.py --quick    # 1 timed repeat, K=8
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
import soundfile as sf
from _common import ROOT, emit, parse_args, quiet_warnings, rnd, table

DATA = os.path.join(ROOT, "data_samples", "speakers")


def records():
    from audiogmm.data import read_manifest, select, split_records

    recs = split_records(read_manifest(DATA), train_fraction=0.7, seed=0)
    return select(recs, "train"), select(recs, "test")


def run_ours(train, test, k: int) -> float:
    from audiogmm.features import FeatureConfig
    from audiogmm.pipeline import evaluate_classifier, train_classifier
    from audiogmm.pipeline.classify import Bundle

    cfg = FeatureConfig.preset("speech")
    clf, _ = train_classifier(train, config=cfg, n_components=k)
    return float(evaluate_classifier(Bundle(clf, cfg), test)["accuracy"])


def reference_features(path: str) -> np.ndarray:
    import librosa

    y, sr = librosa.load(path, sr=16000)
    mfcc = librosa.feature.mfcc(
        y=y, sr=sr, n_mfcc=20, n_fft=512, win_length=400, hop_length=160
    )
    feats = np.vstack(
        [mfcc, librosa.feature.delta(mfcc), librosa.feature.delta(mfcc, order=2)]
    )
    return feats.T


def run_reference(train, test, k: int) -> float:
    from sklearn.mixture import GaussianMixture

    by_speaker: dict[str, list[np.ndarray]] = {}
    for r in train:
        by_speaker.setdefault(r.label, []).append(reference_features(r.path))
    models = {
        spk: GaussianMixture(k, covariance_type="diag", random_state=0).fit(np.vstack(feats))
        for spk, feats in by_speaker.items()
    }
    correct = 0
    for r in test:
        X = reference_features(r.path)
        scores = {spk: gm.score_samples(X).sum() for spk, gm in models.items()}
        correct += max(scores, key=scores.get) == r.label
    return correct / len(test)


def main() -> None:
    args = parse_args(__doc__)
    quiet_warnings()
    k = 8 if args.quick else 16
    repeats = 1 if args.quick else args.repeats
    t_start = time.perf_counter()
    train, test = records()
    runs = {"ours": run_ours, "ref": run_reference}
    cold, times, acc = {}, {name: [] for name in runs}, {}
    for rep in range(repeats + 1):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            acc[name] = fn(train, test, k)
            dt = time.perf_counter() - t0
            if rep == 0:
                cold[name] = dt
            else:
                times[name].append(dt)
    ours, ref = statistics.median(times["ours"]), statistics.median(times["ref"])
    audio_s = sum(sf.info(r.path).duration for r in [*train, *test])
    row = {
        "bench": "speaker_id_pipeline", "N": len(train) + len(test), "D": 60, "K": k,
        "dtype": "float32", "n_train": len(train), "n_test": len(test),
        "audio_s": rnd(audio_s, 1), "ours_s": rnd(ours), "ref_s": rnd(ref),
        "ratio": rnd(ref / ours, 2), "floor_s": None,
        "ours_cold_s": rnd(cold["ours"]), "ref_cold_s": rnd(cold["ref"]),
        "ours_accuracy": rnd(acc["ours"]), "ref_accuracy": rnd(acc["ref"]),
        "n_jobs": os.cpu_count(), "repeats": repeats,
    }  # fmt: skip
    emit(row, args.json_out)
    print()
    print(
        table(
            [row],
            [
                ("n_train", "train", "d"), ("n_test", "test", "d"), ("K", "K", "d"),
                ("ours_s", "audiogmm s", ".2f"), ("ref_s", "reference s", ".2f"),
                ("ratio", "speedup", ".1f"), ("ours_cold_s", "audiogmm cold s", ".2f"),
                ("ref_cold_s", "ref cold s", ".2f"), ("ours_accuracy", "audiogmm acc", ".3f"),
                ("ref_accuracy", "ref acc", ".3f"),
            ],
        )  # fmt: skip
    )
    print(
        f"total {time.perf_counter() - t_start:.0f} s; target: speedup >= 5 at equal or "
        "better accuracy"
    )


if __name__ == "__main__":
    main()
