#!/usr/bin/env python
"""Closed-set speaker identification: GMM supervectors of a UBM with a logistic regression
(Campbell 2006; the default backend, as `audiogmm train`), or one GMM per speaker (Reynolds
1995; --backend ml).

Run:  python recipes/speaker_id.py                 (bundled data_samples/speakers)
      python recipes/speaker_id.py --data DIR_OR_CSV_OR_KALDI_DIR -k 128
      python recipes/speaker_id.py --stage 3        (re-evaluate the model in --exp)
      python recipes/speaker_id.py --preset speaker -k 256
                    (the most accurate single model on the dev speaker sets, at 2-2.5x the
                     default's time: README "Which configuration")
      python recipes/speaker_id.py --backend gsv+ml --preset speaker+general
                    (its late fusion with ml on the default front end: more accurate, half
                     the EER, at 4-5x the default's training time: README "Fusions of
                     backends")
"""

from __future__ import annotations

import json
import os

import click
from _stages import recipe

from audiogmm.cli.options import Members
from audiogmm.data import (
    ExtractionResult,
    RunOptions,
    extract_many_configs,
    read_manifest,
    select,
    split_records,
)
from audiogmm.data.manifests import read_csv, write_csv
from audiogmm.exceptions import ParameterError
from audiogmm.features import PRESETS
from audiogmm.models import BACKENDS, DEFAULT_BACKEND, default_components
from audiogmm.models.fusion import MAX_MEMBERS
from audiogmm.pipeline import evaluate_classifier, load_model, save_model, train_classifier
from audiogmm.pipeline.report import format_confusion, training_report, write_report
from audiogmm.selection import train_fused
from audiogmm.selection.fusion import fusion_pairs

HERE = os.path.dirname(os.path.abspath(__file__))

# -- Begin configuration section ------------------------------------------------------------
DATA = os.path.join(HERE, "..", "data_samples", "speakers")  # folder / CSV / Kaldi dir
PRESET = "general"  # the default: 16 kHz, 40/20 ms, 13 MFCC + D; no VAD/CMVN (README "Presets")
COMPONENTS = None  # the backend's default, as `audiogmm train -k`: UBM 64 (gsv, map), 16 per speaker (ml)
TRAIN_FRACTION = 0.7  # per speaker, stratified, deterministic for a given SEED
SEED = 0
# -- End configuration section --------------------------------------------------------------


STAGES = ("prepare", "extract", "train", "evaluate", "report")


@recipe(STAGES, exp="exp/speaker_id")
@click.option("--data", default=DATA, show_default=True, type=click.Path(exists=True),
              help="Label folders, CSV or Kaldi dir.")  # fmt: skip
@click.option("--preset", default=PRESET, show_default=True,
              type=Members(sorted(PRESETS), MAX_MEMBERS),
              help="A preset, or one per member of a fusion joined by '+' (see --backend).")
@click.option("--components", "-k", default=COMPONENTS, type=click.IntRange(min=1),
              callback=lambda ctx, _, k: k or (None if "+" in ctx.params["backend"]
                                               else default_components(ctx.params["backend"])),
              help="As `audiogmm train -k`: components per speaker (ml) or of the UBM (map, "
              "gsv) [default: the backend's].")  # fmt: skip
@click.option("--train-fraction", default=TRAIN_FRACTION, show_default=True,
              type=click.FloatRange(0, 1, min_open=True, max_open=True))  # fmt: skip
@click.option("--backend", default=DEFAULT_BACKEND, show_default=True,
              type=Members(sorted(BACKENDS), MAX_MEMBERS),
              is_eager=True,  # read by -k's default
              help="As `audiogmm train --backend`: ml, a GMM per speaker; map, MAP-adapted "
              "speakers of a UBM; gsv, a UBM's supervectors + logistic regression; several "
              "joined by '+', a late fusion of those models (each with its defaults).")  # fmt: skip
@click.option("--seed", default=SEED, show_default=True, type=int)
@click.option("--jobs", "-j", default=None, type=click.IntRange(min=1),
              help="Workers [default: all cores].")  # fmt: skip
def main(st, data, preset, components, train_fraction, backend, seed, jobs):
    """Speaker identification: prepare, extract, train, evaluate, report into --exp."""
    try:
        members = fusion_pairs(preset, backend)  # [] for a single model
    except ParameterError as e:
        raise click.UsageError(str(e)) from None
    if members and components is not None:
        raise click.UsageError("-k sets up a single model; a fusion trains each member with its "
                               "backend's defaults")  # fmt: skip
    configs = [PRESETS[p] for p, _ in members] or [PRESETS[preset]]
    opts = RunOptions(cache_dir=st.path("features"), n_jobs=jobs)

    if st(0):  # read DATA, make a stratified train/test split -> records.csv
        records = split_records(read_manifest(data), train_fraction=train_fraction, seed=seed)
        write_csv(records, st.path("records.csv"))
        n_train = len(select(records, "train"))
        st.done(f"{len(records)} files, {len({r.label for r in records})} speakers, "
                f"{n_train} train / {len(records) - n_train} test")  # fmt: skip
    records = read_csv(st.path("records.csv"))

    if st(1):  # features of every file, cached -> features/, skipped.csv
        results = extract_many_configs(records, configs, options=opts)  # one decode per file
        res = results[0]
        lost = {k.path: k for r in reversed(results) for k in r.skipped}  # under any member's
        ExtractionResult(skipped=list(lost.values())).write_skipped_csv(st.path("skipped.csv"))
        frames = sum(x.shape[0] for x in res.features.values())
        st.done(f"{len(res.features)} files, {frames} frames ({res.n_extracted} extracted, "
                f"{res.n_cached} cached, {res.n_skipped} skipped -> skipped.csv)")  # fmt: skip

    if st(2):  # one model per speaker, or a late fusion of the members' models -> model.npz
        if members:
            clf, _, _ = train_fused(select(records, "train"), members, random_state=seed,
                                    options=opts)  # fmt: skip
            save_model(st.path("model.npz"), clf, configs)
            st.done(f"{len(clf.labels_)} speakers, a fusion of " + " + ".join(
                f"{b} ({p}, weight {a:.3g})" for (p, b), a in zip(members, clf.weights))
                + " -> model.npz")  # fmt: skip
        else:
            clf, _ = train_classifier(select(records, "train"), config=configs[0], options=opts,
                                      backend=backend, n_components=components,
                                      random_state=seed)  # fmt: skip
            save_model(st.path("model.npz"), clf, configs[0])
            if backend == "ml":
                iters = [r["n_iter"] for r in clf.fit_report_.values()]
                how = f"{min(iters)}-{max(iters)} EM iterations per speaker"
            else:  # the classes adapt from the UBM: its EM is the one to report
                how = f"the UBM in {clf.ubm_report_.get('n_iter', '?')} EM iterations"
            st.done(f"{len(clf.labels_)} speakers, K={clf.n_components} ({backend}), {how} "
                    "-> model.npz")  # fmt: skip

    if st(3):  # classify the test files by max total log-likelihood -> results.json
        res = evaluate_classifier(load_model(st.path("model.npz")), select(records, "test"),
                                  options=opts)  # fmt: skip
        st.write("results.json", json.dumps(res, indent=2, sort_keys=True) + "\n")
        st.done(f"accuracy {100 * res['accuracy']:.2f}% on {res['n']} test files "
                f"({len(res['skipped'])} skipped)")  # fmt: skip

    if st(4):  # metrics.json, confusion.txt/.png, training_curves.json/.png -> report/
        with open(st.path("results.json"), encoding="utf-8") as fh:
            res = json.load(fh)
        files = write_report(
            st.path("report"), {k: v for k, v in res.items() if k != "predictions"},
            training=training_report(load_model(st.path("model.npz"))),
        )  # fmt: skip
        click.echo(
            format_confusion(res["confusion"]["labels"], res["confusion"]["matrix"]).rstrip()
        )
        click.echo(f"ACCURACY {100 * res['accuracy']:.2f}% ({res['n']} test files)")
        st.done(", ".join(os.path.relpath(f, st.dir) for f in files))


# Expected on the bundled data_samples/speakers (9 speakers, 36 test clips), K=16:
#   ACCURACY 100.00%   (about 5-10 s on 2 cores, most of it feature extraction)

if __name__ == "__main__":
    main()
