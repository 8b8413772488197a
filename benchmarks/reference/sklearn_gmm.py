"""The "20-line librosa + scikit-learn script": one diagonal GMM per class on MFCC frames.

This is the baseline audiogmm is compared against, written the way users write it.
It does not import audiogmm. MANIFEST is a CSV file with the header ``path,label,split``
(paths relative to the CSV's folder). Training uses the rows whose split is
``--train-split`` and testing the rows whose split is ``--test-split``.

Front ends:

* ``speech``: ``librosa.load(sr=16000)``, ``librosa.feature.mfcc(n_mfcc=20, n_fft=512,
  win_length=400, hop_length=160)`` (25 ms / 10 ms), ``librosa.feature.delta``
  orders 1 and 2 (MFCC + delta + delta-delta, 60 dims), per-clip CMVN (mean and variance).
* ``librosa``: librosa's defaults (``librosa.load`` at 22050 Hz,
  ``librosa.feature.mfcc(y=y, sr=sr)``, 20 dims), no deltas, no CMVN.

Then one ``GaussianMixture(K, covariance_type="diag", random_state=seed)`` per class,
fitted on the pooled frames of that class's training clips (librosa's float32). If
scikit-learn stops with "ill-defined empirical covariance" (float32 round-off on clips with
many repeated frames), that class is refitted on float64 frames, as the error message
suggests. A test clip gets the class with the largest total log-likelihood
``score_samples(X).sum()``.

Run::

    python benchmarks/reference/sklearn_gmm.py MANIFEST.csv --frontend speech --json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time

T_START = time.perf_counter()


def features(path: str, frontend: str):
    import librosa
    import numpy as np

    if frontend == "librosa":
        y, sr = librosa.load(path)
        return librosa.feature.mfcc(y=y, sr=sr).T
    y, sr = librosa.load(path, sr=16000)
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20, n_fft=512, win_length=400, hop_length=160)
    X = np.vstack([mfcc, librosa.feature.delta(mfcc), librosa.feature.delta(mfcc, order=2)]).T
    return (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-8)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("manifest", help="CSV file with columns path,label,split")
    p.add_argument("--train-split", default="train")
    p.add_argument("--test-split", default="test")
    p.add_argument("--frontend", choices=["speech", "librosa"], default="speech")
    p.add_argument("--components", "-k", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON line")
    args = p.parse_args()

    stages = {}
    t = time.perf_counter()
    import librosa  # noqa: F401  (imported here so its cost shows as a stage)
    import numpy as np
    from sklearn.metrics import accuracy_score, balanced_accuracy_score
    from sklearn.mixture import GaussianMixture

    stages["import"] = time.perf_counter() - t

    folder = os.path.dirname(os.path.abspath(args.manifest))
    with open(args.manifest, newline="", encoding="utf-8") as f:
        rows = [(os.path.join(folder, r["path"]), r["label"], r["split"]) for r in csv.DictReader(f)]
    train = [(path, label) for path, label, split in rows if split == args.train_split]
    test = [(path, label) for path, label, split in rows if split == args.test_split]

    t = time.perf_counter()
    by_class = {}
    for path, label in train:
        by_class.setdefault(label, []).append(features(path, args.frontend))
    stages["train_features"] = time.perf_counter() - t

    t = time.perf_counter()
    models = {}
    for label, feats in by_class.items():
        X = np.vstack(feats)
        gm = GaussianMixture(args.components, covariance_type="diag", random_state=args.seed)
        try:
            models[label] = gm.fit(X)
        except ValueError:  # "ill-defined empirical covariance ... passing float64 data"
            models[label] = gm.fit(X.astype(np.float64))  # the fix the error message suggests
    stages["fit"] = time.perf_counter() - t

    t = time.perf_counter()
    test_feats = [features(path, args.frontend) for path, _ in test]
    stages["test_features"] = time.perf_counter() - t

    t = time.perf_counter()
    predicted = []
    for X in test_feats:
        scores = {c: gm.score_samples(X).sum() for c, gm in models.items()}
        predicted.append(max(scores, key=scores.get))
    stages["score"] = time.perf_counter() - t

    truth = [label for _, label in test]
    accuracy = accuracy_score(truth, predicted)
    if args.json:
        out = {
            "accuracy": accuracy,
            "balanced_accuracy": balanced_accuracy_score(truth, predicted),
            "n_test": len(test),
            "n_train": len(train),
            "seconds": time.perf_counter() - T_START,
            "stages": {k: round(v, 4) for k, v in stages.items()},
        }
        print(json.dumps(out))
    else:
        print(f"accuracy: {100 * accuracy:.2f}% ({len(test)} test files)")


if __name__ == "__main__":
    main()
