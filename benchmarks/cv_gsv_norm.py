"""gsv with and without length-normalised supervectors: CV on the training split and the
test side, paired clip by clip.

For each development set and split seed (the splits of ``bench_accuracy.py``): held-out
counts of 3-fold CV by clip on the training split (one UBM per fold, every frame,
uncalibrated) and test counts of the model fitted on the whole training split, for
``GSVClassifier(K, length_norm=False)`` and ``length_norm=True``. Then, pooled over the
splits, each variant's gain over ``length_norm=False`` in clips with its standard error
(of the per-clip paired differences). README "GMM supervectors": the length normalisation.

    python benchmarks/cv_gsv_norm.py --seeds 0,1,2                      # speaker sets, UBM 64
    python benchmarks/cv_gsv_norm.py --seeds 0,1,2 --sets dev-sounds,dev-realsounds
    python benchmarks/cv_gsv_norm.py --seeds 0,1,2 --sets dev-sounds,dev-realsounds \\
        --preset general --ubm 256
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _cli_common import devcorpus_datasets, write_manifest  # noqa: E402

from audiogmm.data import RunOptions, extract_many  # noqa: E402
from audiogmm.features import PRESETS  # noqa: E402
from audiogmm.models import GSVClassifier  # noqa: E402
from audiogmm.pipeline.classify import load_split  # noqa: E402
from audiogmm.selection.cv import clip_folds, held_out  # noqa: E402

VARIANTS = {"raw": False, "length_norm": True}


def predictions(train, labels, test, K: int) -> dict[str, np.ndarray]:
    """Each variant's predicted label of every ``test`` clip."""
    out = {}
    for name, norm in VARIANTS.items():
        clf = GSVClassifier(K, length_norm=norm, random_state=0, n_jobs=2)
        out[name] = clf.fit(train, labels, calibrate=False).predict(test)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="dev-speakers,dev-speakers8k,dev-hardspeakers")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--preset", default="speaker", choices=sorted(PRESETS))
    ap.add_argument("--ubm", type=int, default=64, help="UBM components")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    sets, skip = devcorpus_datasets("dev-")
    if skip:
        raise SystemExit(skip)
    right = {"cv": {v: [] for v in VARIANTS}, "test": {v: [] for v in VARIANTS}}
    for seed in map(int, args.seeds.split(",")):
        for ds in (d for d in sets if d.name in args.sets.split(",")):
            write_manifest(ds, tempfile.mkdtemp(prefix=f"cv-gsv-norm-{ds.name}-"), seed=seed)
            tr, te = load_split(ds.csv, "train"), load_split(ds.csv, "test")
            feats = extract_many(tr + te, config=PRESETS[args.preset], options=RunOptions(n_jobs=2))
            X, y = feats.labelled_clips(tr)
            Xt, yt = feats.labelled_clips(te)
            y, yt = np.array(y), np.array(yt)
            row = {"set": ds.name, "seed": seed, "preset": args.preset, "ubm": args.ubm,
                   "n_cv": len(y), "n_test": len(yt), "cv": {}, "test": {}}  # fmt: skip
            for name, pred in predictions(X, list(y), Xt, args.ubm).items():
                right["test"][name].append(pred == yt)
                row["test"][name] = int((pred == yt).sum())
            cv = {v: np.zeros(len(y), bool) for v in VARIANTS}
            for train, test in held_out(clip_folds(list(y), 3, random_state=0)).values():
                got = predictions([X[i] for i in train], list(y[train]), [X[i] for i in test],
                                  args.ubm)  # fmt: skip
                for name, pred in got.items():
                    cv[name][test] = pred == y[test]
            for name, ok in cv.items():
                right["cv"][name].append(ok)
                row["cv"][name] = int(ok.sum())
            print(json.dumps(row), flush=True)
    for side, per in right.items():
        base = np.concatenate(per["raw"]).astype(float)
        for name in VARIANTS:
            d = np.concatenate(per[name]).astype(float) - base
            se = d.std(ddof=1) * np.sqrt(d.size) if d.size > 1 else 0.0
            print(f"{side}: {name} {d.sum():+.0f} clips of {d.size} against raw (SE {se:.1f})")


if __name__ == "__main__":
    main()
