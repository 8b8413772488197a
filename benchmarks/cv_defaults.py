"""Benchmark: should the default change? Clip-held-out CV of variants of the default, training sides only.

Issue 22 item 6: a configuration replaces the default (``general`` preset, ``ml`` backend,
K=16) only if it beats it on both the speaker and the sound development sets by more
than the noise. For each data set of the development corpus (split as
``bench_accuracy.py`` splits it, seed 0), only the **training** files are read: each
candidate's features are extracted once (kept in a feature cache) and scored by
clip-stratified k-fold cross-validation with the training defaults (every frame, EM to
convergence; ``audiogmm.selection.cv.cv_scores``). A candidate changes one thing of
the default: the front end (``FeatureConfig`` fields), K, or a ``DiagGMM`` parameter.
``sklearn-librosa`` is the reference script itself (``librosa.feature.mfcc`` defaults and
``sklearn.mixture.GaussianMixture``) on the same folds; ``gsv`` and ``gsv-speaker`` are
the supervector backend (its defaults, UBM 256, each fold's model uncalibrated) on
``general`` and on the ``speaker`` preset, on the same folds.

Printed per data set and candidate: CV accuracy ± its standard error over clips, and the
paired difference to ``general`` ± its standard error (per-clip differences, the same
folds). With several ``--seeds`` (fold and EM seeds) each clip's correctness is averaged
over the seeds first, so the clip stays the unit of the standard error. The groups
``speakers`` (speakers, speakers8k, hardspeakers) and ``sounds`` (sounds, realsounds) pool
their clips. The rule of issue 22: a candidate replaces the default only if it beats it by
more than the standard error of the paired difference on both groups (``> SE``), in two
independent replications (``--seeds 0,1,2`` and ``--seeds 3,4,5``); README "Presets and
tuning" has the table and the outcome.

Run::

    nice -n 10 python benchmarks/cv_defaults.py                      # every candidate, seed 0
    nice -n 10 python benchmarks/cv_defaults.py --seeds 0,1,2 \
        --candidates general,split-init,22k,22k-split,mels128,c0drop,win64,win93,hann
    nice -n 10 python benchmarks/cv_defaults.py --candidates general,mfcc20 --sets dev-sounds
"""

from __future__ import annotations

import argparse
import os
import tempfile
import warnings

import numpy as np
from _common import emit, rnd, table
from bench_presets import dev_sets, training_sides

from audiogmm.data import RunOptions, extract_many
from audiogmm.features import PRESETS
from audiogmm.models import BACKENDS
from audiogmm.models.classifier import N_COMPONENTS
from audiogmm.selection.cv import clip_folds, cv_scores

#: The gsv UBM size these candidates were measured at (sessions 16-18; the default is now 64).
GSV_COMPONENTS = 256

_G = PRESETS["general"]
_L = PRESETS["librosa"]
#: name -> (front end, K, DiagGMM parameters); None as front end: the reference script.
CANDIDATES = {
    "general": (_G, N_COMPONENTS, {}),
    "noD": (_G.replace(delta_order=0), N_COMPONENTS, {}),
    "mfcc20": (_G.replace(n_mfcc=20), N_COMPONENTS, {}),
    "mfcc20-noD": (_G.replace(n_mfcc=20, delta_order=0), N_COMPONENTS, {}),
    "mels128": (_G.replace(n_mels=128), N_COMPONENTS, {}),
    "22k": (_G.replace(sample_rate=22050), N_COMPONENTS, {}),
    "c0drop": (_G.replace(c0="drop"), N_COMPONENTS, {}),
    "K8": (_G, 8, {}),
    "K32": (_G, 32, {}),
    "floor1e-3": (_G, N_COMPONENTS, {"var_floor": 1e-3}),
    "split-init": (_G, N_COMPONENTS, {"init": "split"}),
    "22k-split": (_G.replace(sample_rate=22050), N_COMPONENTS, {"init": "split"}),
    "hann": (_G.replace(window="hann"), N_COMPONENTS, {}),
    # the FFT of the window's own length (640 samples at 16 kHz), not the next power of two
    "nfft640": (_G.replace(n_fft=640), N_COMPONENTS, {}),
    # the analysis band matched to 8 kHz files (nothing above 4 kHz): at 8 kHz, or mels to 4 kHz
    "8k": (_G.replace(sample_rate=8000, n_fft=512), N_COMPONENTS, {}),
    "fmax4k": (_G.replace(fmax=4000.0), N_COMPONENTS, {}),
    "win64": (_G.replace(win_ms=64.0), N_COMPONENTS, {}),
    "win93": (_G.replace(win_ms=_L.win_ms, hop_ms=_L.hop_ms, n_fft=2048), N_COMPONENTS, {}),
    "librosa": (_L, N_COMPONENTS, {}),
    "sklearn-librosa": (None, N_COMPONENTS, {}),
    # another backend: K is its UBM's size (gsv's defaults, fitted without calibration)
    "gsv": (_G, GSV_COMPONENTS, {"backend": "gsv"}),
    "gsv64": (_G, 64, {"backend": "gsv"}),
    "gsv-speaker": (PRESETS["speaker"], GSV_COMPONENTS, {"backend": "gsv"}),
    "gsv-sub8-it5": (_G, GSV_COMPONENTS, {"backend": "gsv", "subsample": 8, "max_iter": 5}),
    "gsv-speaker-sub8": (PRESETS["speaker"], GSV_COMPONENTS, {"backend": "gsv", "subsample": 8}),
    "gsv-speaker-sub8-it5": (PRESETS["speaker"], GSV_COMPONENTS,
                             {"backend": "gsv", "subsample": 8, "max_iter": 5}),
    # session variability: per-clip mean (and variance) normalisation of the speaker front end
    "gsv-speaker-cmn": (PRESETS["speaker"].replace(cmvn="utterance", cmvn_norm_vars=False),
                        GSV_COMPONENTS, {"backend": "gsv"}),
    "gsv-speaker-cmvn": (PRESETS["speaker"].replace(cmvn="utterance"), GSV_COMPONENTS,
                         {"backend": "gsv"}),
    "gsv-speaker-512": (PRESETS["speaker"], 512, {"backend": "gsv"}),
    "gsv-speaker-C1": (PRESETS["speaker"], GSV_COMPONENTS, {"backend": "gsv", "C": 1.0}),
    "gsv-speaker-C100": (PRESETS["speaker"], GSV_COMPONENTS, {"backend": "gsv", "C": 100.0}),
}
GROUPS = {
    "speakers": ("dev-speakers", "dev-speakers8k", "dev-hardspeakers"),
    "sounds": ("dev-sounds", "dev-realsounds"),
}


def librosa_features(paths: list[str]) -> list[np.ndarray]:
    """The reference script's front end: ``librosa.load`` at 22050 Hz, ``mfcc`` defaults."""
    import librosa

    out = []
    for p in paths:
        y, sr = librosa.load(p)
        out.append(librosa.feature.mfcc(y=y, sr=sr).T)
    return out


def sklearn_cv(clips, labels, k: int, n_folds: int, seed: int) -> np.ndarray:
    """Held-out correctness of each clip under the reference script's classifier (same folds)."""
    from sklearn.mixture import GaussianMixture

    names = sorted(set(labels))
    y = np.array([names.index(lab) for lab in labels])
    folds = clip_folds(labels, n_folds, random_state=seed)
    correct = np.full(len(clips), np.nan)
    for f in range(n_folds):
        test = np.flatnonzero(folds == f)
        S = np.empty((len(test), len(names)))
        for j in range(len(names)):
            X = np.vstack([clips[i] for i in np.flatnonzero((folds != f) & (y == j))])
            gm = GaussianMixture(k, covariance_type="diag", random_state=seed)
            try:
                gm.fit(X)
            except ValueError:  # as the script: refit on float64
                gm.fit(X.astype(np.float64))
            S[:, j] = [gm.score_samples(clips[i]).sum() for i in test]
        correct[test] = S.argmax(1) == y[test]
    return correct


def backend_cv(clips, labels, backend: str, k: int, n_folds: int, seed: int,
               **params) -> np.ndarray:  # fmt: skip
    """Held-out correctness of each clip under another backend (UBM of ``k``) on the same folds
    as ``cv_scores``: per fold, the backend fitted on the other folds' clips, uncalibrated."""
    folds = clip_folds(labels, n_folds, random_state=seed)
    correct = np.full(len(clips), np.nan)
    for f in range(n_folds):
        train, test = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        clf = BACKENDS[backend](k, random_state=seed, **params).fit(
            [clips[i] for i in train], [labels[i] for i in train], calibrate=False)
        pred = clf.predict([clips[i] for i in test])
        correct[test] = pred == np.array([labels[i] for i in test], dtype=object)
    return correct


def cv_correct(name, train, cache, n_folds, seed) -> np.ndarray:
    """Held-out correctness (0/1) of each training clip for candidate ``name``."""
    cfg, k, params = CANDIDATES[name]
    if cfg is None:
        labels = [r.label for r in train]
        return sklearn_cv(librosa_features([r.path for r in train]), labels, k, n_folds, seed)
    res = extract_many(train, config=cfg, options=RunOptions(cache_dir=cache, n_jobs=1))
    clips, labels = res.labelled_clips(train)
    if len(clips) != len(train):
        raise SystemExit(f"{name}: {len(train) - len(clips)} training files skipped")
    if "backend" in params:
        rest = {p: v for p, v in params.items() if p != "backend"}
        return backend_cv(clips, labels, params["backend"], k, n_folds, seed, **rest)
    sel = cv_scores(clips, labels, grid=[k], n_folds=n_folds, random_state=seed, n_jobs=1,
                    **params)  # fmt: skip
    return (sel.scores[k].argmax(1) == sel.y).astype(float)


def summary(c: np.ndarray, base: np.ndarray) -> dict:
    """Accuracy ± SE over clips, and the paired difference to ``base`` ± SE."""
    n = len(c)
    d = c - base
    return {"n": n, "accuracy": rnd(c.mean()), "se": rnd(c.std(ddof=1) / np.sqrt(n)),
            "diff": rnd(d.mean()), "diff_se": rnd(d.std(ddof=1) / np.sqrt(n))}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--candidates", default=",".join(CANDIDATES))
    p.add_argument("--sets", metavar="LIST", help="subset of the data sets, e.g. dev-sounds")
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--seeds", default="0", help="comma-separated fold/EM seeds (default 0)")
    p.add_argument("--cache", default=os.path.expanduser("~/.cache/audiogmm/cv_defaults"),
                   help="feature cache folder")  # fmt: skip
    p.add_argument("--json-out", metavar="PATH")
    p.add_argument("--base", default="general",
                   help="the candidate the paired differences are taken against")  # fmt: skip
    args = p.parse_args()
    names, base_name = args.candidates.split(","), args.base
    if base_name not in names:
        names.insert(0, base_name)
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        p.error(f"unknown candidate(s) {unknown}; choose from {list(CANDIDATES)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    sets = dev_sets(p, args.sets)
    warnings.simplefilter("ignore")  # over-sized-model warnings of small folds
    correct: dict[tuple[str, str], np.ndarray] = {}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for ds, train in training_sides(sets, tmp):
            for name in names:
                runs = [cv_correct(name, train, args.cache, args.folds, s) for s in seeds]
                correct[ds.name, name] = np.mean(runs, axis=0)
            for name in names:
                row = {"bench": "cv_defaults", "dataset": ds.name, "candidate": name,
                       **summary(correct[ds.name, name], correct[ds.name, base_name])}  # fmt: skip
                emit(row, args.json_out)
                rows.append(row)
    for group, members in GROUPS.items():
        have = [m for m in members if (m, base_name) in correct]
        if not have:
            continue
        for name in names:
            c = np.concatenate([correct[m, name] for m in have])
            base = np.concatenate([correct[m, base_name] for m in have])
            row = {"bench": "cv_defaults", "dataset": f"[{group}]", "candidate": name,
                   **summary(c, base)}  # fmt: skip
            row["beats_default"] = name != base_name and row["diff"] > row["diff_se"]
            emit(row, args.json_out)
            rows.append(row)
    print()
    print(table(rows, [("dataset", "dataset", "s"), ("candidate", "candidate", "s"),
                       ("n", "clips", "d"), ("accuracy", "CV acc", ".3f"), ("se", "SE", ".3f"),
                       ("diff", f"vs {base_name}", "+.3f"), ("diff_se", "SE", ".3f"), ("beats_default", "> SE", "")]))  # fmt: skip


if __name__ == "__main__":
    main()
