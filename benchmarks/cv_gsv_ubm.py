"""The UBM size of ``--backend gsv`` on the speaker front end: CV on the training split
against the test side.

For each development set and split seed: the held-out CV counts (3 folds by clip, every
second frame) of ml on ``general`` (K=16, 5 EM iterations, the folds of
``audiogmm.selection.cv.cv_scores``) and of gsv on ``speaker`` at each UBM size (one UBM per
fold, uncalibrated), then each model fitted on the whole training split and scored on the test
split. One JSON line per set and seed (README "GMM supervectors": the UBM size table).

    python benchmarks/cv_gsv_ubm.py --seeds 0,1,2 --ubm-sizes 64,256
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
from audiogmm.selection.cv import cv_scores, held_out  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="dev-speakers,dev-speakers8k,dev-hardspeakers,dev-sounds,"
                    "dev-realsounds")  # fmt: skip
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--ubm-sizes", default="64,256")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    sets, skip = devcorpus_datasets("dev-")
    if skip:
        raise SystemExit(skip)
    sizes = [int(k) for k in args.ubm_sizes.split(",")]
    for seed in map(int, args.seeds.split(",")):
        for ds in (d for d in sets if d.name in args.sets.split(",")):
            write_manifest(ds, tempfile.mkdtemp(prefix=f"cv-gsv-{ds.name}-"), seed=seed)
            tr, te = load_split(ds.csv, "train"), load_split(ds.csv, "test")
            opts = RunOptions(n_jobs=2)
            g = extract_many(tr + te, config=PRESETS["general"], options=opts)
            s = extract_many(tr + te, config=PRESETS["speaker"], options=opts)
            gtr, ltr = g.labelled_clips(tr)
            gte, lte = g.labelled_clips(te)
            str_, ste = s.labelled_clips(tr)[0], s.labelled_clips(te)[0]
            sel = cv_scores(gtr, ltr, grid=[16], n_folds=3, frame_step=2, max_iter=5, n_jobs=2)
            names = sorted(set(ltr))
            row = {"set": ds.name, "seed": seed, "n_cv": int(sel.held.sum()), "n_test": len(gte),
                   "cv": {"ml": sel.accuracy_counts(sel.scores[16])[0]}, "test": {},
                   "fit_s": {}}  # fmt: skip
            for k in sizes:
                S = np.full((len(str_), len(names)), np.nan)
                for train, test in held_out(sel.folds).values():
                    clf = BACKENDS["gsv"](k, random_state=0, n_jobs=1).fit(
                        [str_[i][::2] for i in train], [ltr[i] for i in train], calibrate=False)
                    S[np.ix_(test, [names.index(y) for y in clf.labels_])] = clf.score_matrix(
                        [str_[i][::2] for i in test])
                row["cv"][f"gsv{k}"] = sel.accuracy_counts(S)[0]
                t = time.perf_counter()
                clf = BACKENDS["gsv"](k, random_state=0, n_jobs=2).fit(str_, ltr)
                row["fit_s"][f"gsv{k}"] = round(time.perf_counter() - t, 2)
                row["test"][f"gsv{k}"] = int((clf.predict(ste) == np.array(lte)).sum())
            clf = BACKENDS["ml"](16, random_state=0, n_jobs=2).fit(gtr, ltr)
            row["test"]["ml"] = int((clf.predict(gte) == np.array(lte)).sum())
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
