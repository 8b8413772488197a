"""The commands that use a model file: ``predict`` (a label per file), ``evaluate`` (accuracy
and confusion on labelled files, or on a Kaldi directory's features), ``verify`` (LLRs of
trials), ``info`` (what the file holds) and ``plot`` (the fitted mixture of one class along
one feature dimension)."""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
from collections import Counter

import click
import numpy as np

from ..data import expand_paths, read_manifest
from ..exceptions import AudioGMMError, ModelFileError
from ..features import FeatureConfig
from ..io.atomic import atomic_write
from ..mixture import DiagGMM
from ..models import BACKENDS
from . import options
from .options import dims_text, echo_out, escape_name, format_selection, report_skipped

logger = logging.getLogger("audiogmm")
_MAX_FILES = 200  # plot's histogram frames: enough files for the shape, bounded time


@click.command("predict")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
# readable=False: an unreadable file is skipped and listed like bad audio, not a usage error
@click.argument("files", nargs=-1, required=True, type=click.Path(readable=False))
@click.option("--top", type=click.IntRange(min=1), default=1, show_default=True,
              help="Show the N best classes.")
@options.reject_option
@options.jobs_option
@options.strict_option
@options.json_option
def predict(model, files, top, reject, as_json, **_):
    """Classify audio FILES with MODEL (features are extracted exactly as in training).

    A folder among FILES stands for the audio files under it (recursively)."""
    from ..pipeline import predict_files
    bundle = options.load_classifier(model)
    paths = expand_paths(files)
    if not paths:
        raise click.UsageError(f"no audio files found in {', '.join(map(escape_name, files))}")
    if twice := [f for f, n in Counter(paths).items() if n > 1]:
        logger.warning("%d file(s) given more than once, classified once: %s", len(twice),
                       ", ".join(map(escape_name, twice[:5])))  # fmt: skip
        paths = list(dict.fromkeys(paths))
    options.reject_threshold(bundle.classifier, reject)  # its errors before any work
    with options.executor(paths) as ex:
        res = predict_files(bundle, paths, top=top, options=options.command_options(),
                            executor=ex, reject=reject)  # fmt: skip
    if as_json:
        echo_out(res, True)
    else:
        for r in res["results"]:  # one line per file, whatever its name holds
            alts = "  ".join(f"{escape_name(t['label'])}:{t['posterior']:.3f}" for t in r["top"])
            line = f"{escape_name(r['path'])}\t{escape_name(r['label'])}"
            click.echo(line + (f"\t{alts}" if top > 1 else ""))
        report_skipped(res["skipped"])
    if not res["results"]:
        n = len(res["skipped"])
        raise click.ClickException(f"no file could be classified ({n} skipped, listed above)")


def _split_note(info: dict) -> str:
    how = (f"split column of DATA, split {info['split']!r}" if info["from_column"]
           else f"split {info['split']!r}, seed {info['seed']}, train fraction "
           f"{info['train_fraction']:g}")  # fmt: skip
    source = {"model": "the split stored in the model",
              "options": "the split given on the command line",
              "defaults": "the default split (the model records none)"}[info["source"]]  # fmt: skip
    same = {True: "; DATA is the training manifest", None: "",
            False: "; DATA differs from the training manifest"}  # fmt: skip
    return f"evaluating on {source} ({how}{same[info['manifest_matches']]})"


@click.command("evaluate")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("data", type=click.Path(exists=True))
@options.split_options(stored=True)
@click.option("--allow-train-overlap", is_flag=True, help="Score files that were used to train "
              "MODEL instead of refusing them (inflates the accuracy).")  # fmt: skip
@click.option("--report", "report_dir", type=options.OutputPath(file_okay=False),
              help="Write metrics.json, metrics.txt, confusion.txt/.png here.")
@options.reject_option
@options.run_options
@options.json_option
@click.pass_context
def evaluate(ctx, model, data, split, train_fraction, seed, allow_train_overlap, report_dir,
             reject, as_json, **_):  # fmt: skip
    """Classify the labelled files of DATA with MODEL and report accuracy.

    Without --seed/--train-fraction, DATA is split as the model's training data
    was (the model stores its split), and files used in training are refused."""
    from ..data.kaldi import needs_kaldi_reader
    from ..pipeline import evaluate_classifier, evaluation_split, report
    how = dict(train_fraction=train_fraction, seed=seed, allow_train_overlap=allow_train_overlap)
    if needs_kaldi_reader(data):  # feats.scp, or wav.scp + segments: no audio cache
        from ..pipeline.sources import evaluate_kaldi
        bundle, unit, res = None, "utterances", evaluate_kaldi(model, data, split=split, **how)
    else:
        bundle, unit = options.load_classifier(model), "files"
        manifest = read_manifest(data)
        records, split_info = evaluation_split(bundle, manifest, split, seed=seed,
                                               train_fraction=train_fraction)  # fmt: skip
        if ctx.obj["verbosity"] >= 0:
            click.echo(_split_note(split_info), err=True)
        options.reject_threshold(bundle.classifier, reject)
        with options.executor([r.path for r in records]) as ex:
            res = evaluate_classifier(bundle, records, options=options.command_options(),
                                      executor=ex, manifest=manifest, reject=reject,
                                      allow_train_overlap=allow_train_overlap)  # fmt: skip
        res["split"] = split_info
    if report_dir:
        report.write_report(report_dir, res, bundle=bundle,
                            training=bundle and report.training_report(bundle))  # fmt: skip
    if as_json:
        return echo_out({k: v for k, v in res.items() if k != "predictions"}, True)
    report_skipped(res["skipped"])
    labels = [escape_name(y) for y in res["confusion"]["labels"]]  # one row per label
    click.echo(report.format_confusion(labels, res["confusion"]["matrix"]), nl=False)
    click.echo(report.format_metrics(res), nl=False)
    click.echo(f"{res['n']} {unit} scored, {len(res['skipped'])} skipped")
    if res["train_overlap"]:
        click.echo(f"warning: {res['train_overlap']} of these {unit} were used in training "
                   "(--allow-train-overlap); the accuracy is optimistic", err=True)  # fmt: skip
    if "open_set" in res:
        click.echo(report.format_open_set(res["open_set"]))
    if report_dir:
        click.echo(f"report: {escape_name(report_dir)}", err=True)


@click.command("verify")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("trials", type=click.Path(exists=True, dir_okay=False))
@click.option("--norm", type=click.Choice(["none", "z", "t", "s"]), default="none",
              show_default=True, help="Score normalisation: z (by --cohort impostor files), t "
              "(by the model's other classes as impostor models), s (both).")  # fmt: skip
@click.option("--cohort", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="An impostor audio file for z-/s-norm (repeat the option).")
@click.option("--report", "report_dir", type=options.OutputPath(file_okay=False),
              help="Write scores.csv, metrics.json and det.png here.")
@click.option("--allow-train-overlap", is_flag=True, help="Score trial files that were used to "
              "train MODEL instead of refusing them (the error rates are then optimistic).")
@options.run_options
@options.json_option
def verify(model, trials, norm, cohort, report_dir, allow_train_overlap, as_json, **_):
    """Score the TRIALS (CSV: path,claim[,target]) with MODEL.

    Each score is a log-likelihood ratio of the file for the claimed class: map, per frame
    against the UBM; ml and fused models, against the model's other classes (ml: per frame);
    gsv and ivector, calibrated. A calibration stored by `train --calibrate` or `--preset
    auto` is applied (without --norm). With a target column (1 true claim, 0 impostor): EER,
    minDCF and actDCF (p_target 0.01 and 0.05, C_miss = C_fa = 1), Cllr and minCllr (bits; Cllr and
    actDCF read the scores as LLRs). Trials are streamed (memory grows with the distinct
    files); files that trained MODEL are refused (see --allow-train-overlap)."""
    from ..pipeline.report import json_dumps
    from ..pipeline.verify import score_trials, write_verification_report
    res = score_trials(options.load_classifier(model), trials, norm=norm, cohort=cohort,
                       options=options.command_options(), allow_train_overlap=allow_train_overlap)
    if not len(res.scores):
        raise click.ClickException("no trial could be scored (every file was skipped)")
    if report_dir:
        write_verification_report(report_dir, res)
    if as_json:  # one JSON object, the trials streamed last (keys sorted)
        click.echo(json_dumps(res.to_dict())[:-1] + ', "trials": [', nl=False)
        _echo_lines((_trial_json(t) for t in res), sep=", ")
        return click.echo("]}")
    report_skipped(res.skipped)
    _echo_lines(f"{escape_name(t['path'])}\t{escape_name(t['claim'])}\t{t['score']:.6f}\n"
                for t in res)  # fmt: skip
    if m := res.metrics:
        click.echo(f"EER {100 * m['eer']:.2f}%  minDCF(0.01) {m['min_dcf_0.01']:.4f}  "
                   f"minDCF(0.05) {m['min_dcf_0.05']:.4f}  actDCF(0.01) {m['act_dcf_0.01']:.4f}  "
                   f"Cllr {m['cllr']:.4f}  minCllr {m['min_cllr']:.4f}  "
                   f"({m['n_target']} target, {m['n_nontarget']} non-target trials)")  # fmt: skip
    if report_dir:
        click.echo(f"report: {escape_name(report_dir)}", err=True)


def _echo_lines(lines, *, sep: str = "") -> None:
    """Write ``lines`` joined by ``sep`` in blocks (one write per trial is slow)."""
    lines, lead = iter(lines), ""
    while block := list(itertools.islice(lines, 4096)):
        click.echo(lead + sep.join(block), nl=False)
        lead = sep  # the separator goes between blocks too


def _trial_json(t: dict) -> str:
    """One trial as JSON with sorted keys (by hand: a million json.dumps calls are slow)."""
    score = repr(t["score"]) if math.isfinite(t["score"]) else "null"
    target = "null" if t["target"] is None else str(int(t["target"]))
    return (f'{{"claim": {json.dumps(t["claim"])}, "path": {json.dumps(t["path"])}, '
            f'"score": {score}, "target": {target}}}')  # fmt: skip


_ADAPT = {"m": "means", "mw": "means and weights", "mwv": "means, weights and variances"}
#: Per backend: its settings (``--json``) read from the classifier, and their line of text.
_BACKENDS = {
    "map": (lambda c: {"relevance": c.relevance, "adapt": c.adapt, "threshold": c.threshold_,
                       "reject_far": c.reject_far, "top_c": c.top_c},
            "map (GMM-UBM): {ubm}, classes MAP-adapted ({adapted}, relevance {relevance:g})"),
    "gsv": (lambda c: {"relevance": c.relevance, "length_norm": c.length_norm, "C": c.C,
                       "calibration": c.calibration_},
            "gsv: supervectors of {ubm} (relevance {relevance:g}, length_norm {length_norm}), "
            "logistic regression (C {C:g}), scores {cal}"),
    "ivector": (lambda c: {"rank": int(c.T_.shape[1]), "n_iter": c.n_iter,
                           "lda_dims": int(c.projection_.shape[1]), "calibration": c.calibration_},
                "ivector: i-vectors of rank {rank} ({n_iter} EM iterations) of {ubm}, LDA to "
                "{lda_dims} dims + WCCN, cosine scores {cal}")}  # fmt: skip


def _load_any(model: str):
    """(bundle, classifier, DiagGMM, header) of any model file, None where absent."""
    from ..io import load
    from ..pipeline import load_model
    try:
        bundle = load_model(model)
        return bundle, bundle.classifier, None, bundle.header
    except ModelFileError as first:
        try:
            obj = load(model)
        except ModelFileError:
            raise first from None
        if isinstance(obj, DiagGMM):
            return None, None, obj, obj.file_header_
        if "feature_config" in getattr(obj, "file_header_", {"feature_config": 0}):
            raise first from None  # a bundle that failed its checks, or Stats
        return None, obj, None, obj.file_header_


def _show(field: str, text: str) -> None:
    click.echo(f"{field + ':':<15}{text}")


def _backend(clf) -> str:
    """The ``--backend`` name of a classifier, or ``"fused"``."""
    return next((k for k, c in BACKENDS.items() if type(clf) is c), "fused")


def _summary(model: str, bundle, clf, gmm, header: dict) -> dict:
    """What ``info --json`` prints."""
    from ..pipeline.report import has_class_mixtures
    out = {"file": os.path.abspath(model), "format_version": header["format_version"],
           "audiogmm_version": header["audiogmm_version"]}  # fmt: skip
    if gmm is not None:
        return out | {"kind": "DiagGMM", "n_components": gmm.n_components, "n_dims": gmm.n_dims,
                      "feature_config": header.get("feature_config"),
                      "training": gmm.fit_report_}  # fmt: skip
    split = None if bundle is None else bundle.header.get("split")
    cfg, fused = bundle and bundle.config, bundle is not None and bundle.fused
    out |= {
        "labels": clf.labels_, "n_dims": clf.n_dims, "kind": type(clf).__name__,
        # a GSV model has no class mixtures: its K is the UBM's
        "n_components": int(clf.means_.shape[1]) if not fused and has_class_mixtures(clf)
        else clf.n_components,
        "feature_config": cfg and cfg.to_dict(), "feature_config_hash": cfg and cfg.content_hash(),
        "feature_configs": [c.to_dict() for c in bundle.configs] if fused else None,
        "training": clf.fit_report_, "selection": header.get("selection"),
        # the digests are for evaluate's overlap check, not for reading
        "split": split and {k: v for k, v in split.items() if k != "train_files"}
        | {"n_train_files": len(split["train_files"])},
        "backend": _backend(clf),
        # verify's scores: `train --calibrate` or auto (ml, map), else the model's own
        "calibration": header.get("calibration")}  # fmt: skip
    if out["backend"] in _BACKENDS:
        ubm = getattr(getattr(clf, "ubm_", None), "n_components", None)
        out[out["backend"]] = {"ubm_components": ubm, **_BACKENDS[out["backend"]][0](clf)}
        out["ubm_training"] = getattr(clf, "ubm_report_", None) or None  # its EM
    if fused:  # each member's backend, size (per class for ml, else its UBM's) and weight
        weights = clf.weights or [None] * len(clf.members)
        out["members"] = [{"backend": _backend(m),
                           "n_components": m.n_components, "n_dims": m.n_dims, "weight": a}
                          for m, a in zip(clf.members, weights)]  # fmt: skip
    return out


@click.command("info")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@options.json_option
def info(model, as_json):
    """Describe a model file (a trained classifier, or a DiagGMM.save mixture).

    Labels, sizes, feature config, training summary with re-seed counts."""
    bundle, clf, gmm, header = _load_any(model)
    out = _summary(model, bundle, clf, gmm, header)
    if as_json:
        return echo_out(out, True)
    _show("file", escape_name(out["file"]))
    _show("format", f"audiogmm v{out['format_version']} (written by {out['audiogmm_version']})")
    if gmm is not None:
        cfg, rep = out["feature_config"], out["training"]
        use = (f"a UBM (`audiogmm ubm`) for `train --backend map|gsv|ivector --ubm`, front end "
               f"hash {FeatureConfig.from_dict(cfg).content_hash()}" if cfg is not None
               else "no feature configuration (not a classifier for audio)")  # fmt: skip
        _show("mixture", f"one DiagGMM, {gmm.n_components} diagonal components x {gmm.n_dims} "
              f"dims; {use}")  # fmt: skip
        if rep:
            _show("training", _fit_text(rep))
        return
    _show("classes", f"{len(clf.labels_)}: {', '.join(map(escape_name, clf.labels_))}")
    dims, b = dims_text(out["n_dims"]), out.get(out["backend"], {})
    if b:
        _show("backend", _BACKENDS[out["backend"]][1].format(
            **b, ubm=f"a UBM of {b['ubm_components']} diagonal components x {dims} dims",
            cal="calibrated to LLRs" if b.get("calibration") else "not calibrated",
            adapted=_ADAPT.get(b.get("adapt"))))  # fmt: skip
    elif out.get("members"):
        _show("members", " + ".join(
            f"{m['backend']} ({m['n_components']} "
            + ("components per class" if m["backend"] == "ml" else "UBM components")
            + f", {m['n_dims']} dims" + ("" if m["weight"] is None else f", weight {m['weight']:.4g}")
            + ")" for m in out["members"]) + " (late fusion)")  # fmt: skip
    else:
        _show("mixtures", f"{out['n_components']} diagonal components x {dims} dims")
    if out.get("ubm_training"):
        _show("UBM fit", _fit_text(out["ubm_training"], budget=True))
    if out["backend"] in ("ml", "fused"):
        cal = out["calibration"]
        if out["backend"] == "fused":
            how = "fused scores, " + ("calibrated by the fusion weights" if clf.weights
                                      else "not calibrated (the old sum rule)")
        elif cal:
            how = f"calibrated to LLRs ({cal['slope']:.4g} x score {cal['offset']:+.4g})"
        else:
            how = "not calibrated (train --calibrate)"
        _show("verify", "each class against the others, " + how)
    if out["backend"] == "map":
        _show("threshold", "none (predict --reject needs a number)" if b["threshold"] is None
              else f"{b['threshold']:.4f} per-frame LLR (--reject auto, " + (
                  "Bayes threshold of the calibrated LLR" if b["reject_far"] is None
                  else f"target false accept {b['reject_far']:g}") + ")")  # fmt: skip
    if bundle is None:
        _show("features", "none stored (a bare classifier file, e.g. of Kaldi features)")
    for c in bundle.configs if bundle is not None else []:
        more = "" if c.engine == "numpy" else f", engine {c.engine}"
        more += f", extras {', '.join(n for n, _ in c.extras)}" if c.extras else ""
        _show("features", f"{c.sample_rate} Hz, {c.win_ms:g}/{c.hop_ms:g} ms, {c.n_mels} mels, "
              f"{c.n_mfcc} MFCC, deltas {c.delta_order}, VAD {'on' if c.vad else 'off'}, CMVN "
              f"{c.cmvn}{more} (hash {c.content_hash()})")  # fmt: skip
    sp = out["split"]
    if sp is None:
        _show("split", "not recorded (evaluate cannot check for training files)")
    else:
        how = ("the manifest's split column" if sp["from_column"]
               else f"seed {sp['seed']}, train fraction {sp['train_fraction']:g}")  # fmt: skip
        _show("split", f"trained on split {sp['split']!r} ({how}) of a manifest of "
              f"{sp['n_manifest_files']} files (hash {sp['manifest_hash']}); "
              f"{sp['n_train_files']} training files recorded by content hash")  # fmt: skip
    if out["selection"]:  # checked field by field when the file was read
        click.echo(format_selection(out["selection"]))
    from ..pipeline.report import has_class_mixtures  # loaded by _summary already

    # the training report is the classifier's (a fusion's: its first member's)
    own = has_class_mixtures(clf.members[0] if out["backend"] == "fused" else clf)
    for y, r in sorted(out["training"].items()):
        if not isinstance(r, dict):
            continue
        k = f"K={str(r['n_components']):<3} " if "n_components" in r else ""
        # gsv and ivector classes have no mixture of their own: no EM, likelihood or re-seeds
        # (their n_iter is the back end's, shared by every class: the UBM's line has the EM)
        ll = ("" if "final_mean_loglik" not in r else f"  ll/frame {r['final_mean_loglik']:.3f}"
              f"  {r.get('n_reseeded', '?')} re-seeded")  # fmt: skip
        it = f"  {r.get('n_iter', '?'):>3} it" if own else ""
        click.echo(f"  {escape_name(y):<20} {k}{r.get('n_clips', '?'):>5} clips "
                   f"{r.get('n_frames', '?'):>8} frames{it}{ll}")


def _fit_text(rep: dict, budget: bool = False) -> str:
    """One mixture's fit report (a UBM's, a DiagGMM file's) as one line of ``info``;
    ``budget``: its EM runs a fixed number of iterations (a backend's UBM), not to tolerance."""
    state = ("converged" if rep.get("converged") else "a fixed budget" if budget
             else "not converged")  # fmt: skip
    return (f"{rep.get('n_frames', '?')} frames, {rep.get('n_iter', '?')} it "
            f"({state}), ll/frame "
            f"{rep.get('final_mean_loglik', float('nan')):.3f}, "
            f"{rep.get('n_reseeded', 0)} re-seeded")  # fmt: skip


@click.command("plot")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("data", type=click.Path(exists=True), required=False)
@click.option("--class", "label", help="Class to draw [default: the model's first].")
@click.option("--dim", type=click.IntRange(min=0),
              help="Feature dimension, 0-based [default: where the classes differ most].")
@click.option("-o", "--output", type=options.OutputPath(dir_okay=False), required=True,
              help="PNG file to write.")
def plot(model, data, label, dim, output):
    """Draw MODEL's mixture for one class: components dashed, mixture solid.

    With DATA (labelled files, as for `evaluate`), a histogram of the class's frames
    (at most 200 files) is drawn under the curves. For a --backend map model the UBM
    is drawn with the adapted class. Needs matplotlib."""
    from ..features import extract
    from ..pipeline import load_model
    from ..pipeline.report import drawn, figure_png, mixture_figure, separating_dimension
    bundle = load_model(model)
    config = drawn(bundle)[1]  # the front end of the mixtures drawn (a fused model's member)
    label = str(bundle.classifier.labels_[0]) if label is None else label
    frames = None
    if data:
        feats = []
        for p in [r.path for r in read_manifest(data) if r.label == label][:_MAX_FILES]:
            try:
                feats.append(extract(p, config=config))
            except AudioGMMError as e:  # a bad file costs the histogram one file, not the plot
                click.echo(escape_name(f"skipped: {e}"), err=True)
        if not feats:
            raise click.ClickException(escape_name(f"no usable file of class {label!r} in {data}"))
        frames = np.concatenate(feats)
    d = separating_dimension(bundle) if dim is None else dim
    atomic_write(output, figure_png(mixture_figure(bundle, label, d, frames)))
    name, unit = config.dimension_names()[d]
    click.echo(escape_name(f"wrote {output}: class {label!r}, dimension {d} ({name}, {unit})"))
