"""How well cross-validation on the training split ranks the backends, against the test side.

For each development set and split seed: held-out CV counts (3 folds by clip, every
second frame, ``general`` front end) of ml (K=16), map and gsv (a UBM of 64 per fold,
``audiogmm.selection.cv.backend_cv_scores``), then each backend fitted on the whole
training split and scored on the test split. Prints one JSON line per set and seed
(README "Presets and tuning": the evidence for ``auto``'s two-standard-error backend rule).

    python benchmarks/cv_backends.py --sets dev-hardspeakers,dev-speakers --seeds 0,1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _cli_common import devcorpus_datasets, write_manifest  # noqa: E402

from audiogmm.data import RunOptions, extract_many  # noqa: E402
from audiogmm.features import PRESETS  # noqa: E402
from audiogmm.models import BACKENDS  # noqa: E402
from audiogmm.pipeline.classify import load_split  # noqa: E402
from audiogmm.selection.cv import backend_cv_scores, cv_scores  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="dev-hardspeakers,dev-speakers,dev-sounds,dev-realsounds")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--cache", default=None, help="feature cache folder")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    sets, skip = devcorpus_datasets("dev-")
    if skip:
        raise SystemExit(skip)
    for seed in map(int, args.seeds.split(",")):
        for ds in (d for d in sets if d.name in args.sets.split(",")):
            out = tempfile.mkdtemp(prefix=f"cv-backends-{ds.name}-")
            write_manifest(ds, out, seed=seed)
            tr, te = load_split(ds.csv, "train"), load_split(ds.csv, "test")
            opts = RunOptions(n_jobs=2, cache_dir=args.cache)
            res = extract_many(tr + te, config=PRESETS["general"], options=opts)
            ctr, ltr = res.labelled_clips(tr)
            cte, lte = res.labelled_clips(te)
            sel = cv_scores(ctr, ltr, grid=[16], n_folds=3, frame_step=2, max_iter=5, n_jobs=2)
            row = {"set": ds.name, "seed": seed, "n_cv": int(sel.held.sum()),
                   "cv": {"ml": sel.accuracy_counts(sel.scores[16])[0]}, "test": {},
                   "n_test": len(cte)}  # fmt: skip
            S = backend_cv_scores([(ctr, ["map", "gsv"])], ltr, sel.folds, frame_step=2)
            row["cv"].update({b: sel.accuracy_counts(S[b])[0] for b in S})
            for b in ("ml", "map", "gsv"):
                t = time.perf_counter()
                clf = BACKENDS[b](16 if b == "ml" else 64, random_state=0, n_jobs=2).fit(ctr, ltr)
                row["test"][b] = int((clf.predict(cte) == np.array(lte)).sum())
                row[f"{b}_train_s"] = round(time.perf_counter() - t, 1)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
