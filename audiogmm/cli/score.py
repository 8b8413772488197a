"""The scoring commands: ``predict`` (a label per file), ``evaluate`` (accuracy and confusion
on labelled files, or on a Kaldi directory's features) and ``verify`` (LLRs of trials)."""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections import Counter

import click

from ..data import expand_paths, read_manifest
from . import options
from .output import echo_json, escape_name, report_skipped

logger = logging.getLogger("audiogmm")


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
@click.pass_context
def predict(ctx, model, files, top, reject, as_json, **_):
    """Classify audio FILES with MODEL (features are extracted exactly as in training).

    A folder among FILES stands for the audio files under it (recursively).
    """
    from ..pipeline import predict_files

    bundle = options.load_classifier(model)
    paths = expand_paths(files)
    if not paths:
        raise click.UsageError(f"no audio files found in {', '.join(map(escape_name, files))}")
    twice = [f for f, n in Counter(paths).items() if n > 1]
    if twice:
        logger.warning("%d file(s) given more than once, classified once: %s", len(twice),
                       ", ".join(map(escape_name, twice[:5])))  # fmt: skip
        paths = list(dict.fromkeys(paths))
    options.reject_threshold(bundle.classifier, reject)  # its errors before any work
    with options.executor(paths) as ex:
        res = predict_files(bundle, paths, top=top, options=options.run_options_of(ctx),
                            executor=ex, reject=reject)  # fmt: skip
    if as_json:
        echo_json(res)
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
@options.split_options("test", stored=True)
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
    was (the model stores its split), and files used in training are refused.
    """
    from ..data.kaldi import needs_kaldi_reader
    from ..pipeline import evaluate_classifier, evaluation_split, report
    from ..pipeline.classify import stored_split

    how = dict(train_fraction=train_fraction, seed=seed, allow_train_overlap=allow_train_overlap)
    if needs_kaldi_reader(data):  # feats.scp, or wav.scp + segments: no audio cache
        from ..pipeline.kaldi import evaluate_kaldi

        bundle, unit, res = None, "utterances", evaluate_kaldi(model, data, split=split, **how)
    else:
        bundle, unit = options.load_classifier(model), "files"
        stored_split(bundle, path=model)  # a bad split block is an error about this file
        manifest = read_manifest(data)
        records, split_info = evaluation_split(bundle, manifest, split, seed=seed,
                                               train_fraction=train_fraction)  # fmt: skip
        if ctx.obj["verbosity"] >= 0:
            click.echo(_split_note(split_info), err=True)
        options.reject_threshold(bundle.classifier, reject)
        with options.executor([r.path for r in records]) as ex:
            res = evaluate_classifier(bundle, records, options=options.run_options_of(ctx),
                                      executor=ex, manifest=manifest, reject=reject,
                                      allow_train_overlap=allow_train_overlap)  # fmt: skip
        res["split"] = split_info
    if report_dir:
        report.write_report(report_dir, res, bundle=bundle,
                            training=bundle and report.training_report(bundle))  # fmt: skip
    if as_json:
        return echo_json({k: v for k, v in res.items() if k != "predictions"})
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
@click.pass_context
def verify(ctx, model, trials, norm, cohort, report_dir, allow_train_overlap, as_json, **_):
    """Score the TRIALS (CSV: path,claim[,target]) with a --backend map MODEL.

    Each score is the mean per-frame log-likelihood ratio of the file under the claimed
    class against the UBM. With a target column (1 true claim, 0 impostor): EER, minDCF and
    actDCF (p_target 0.01 and 0.05, C_miss = C_fa = 1), Cllr and minCllr (bits; Cllr and
    actDCF read the scores as LLRs). Trials are streamed (memory grows with the distinct
    files); files that trained MODEL are refused (see --allow-train-overlap).
    """
    from ..pipeline.report import json_dumps
    from ..pipeline.verify import score_trials, write_verification_report

    res = score_trials(options.load_classifier(model), trials, norm=norm, cohort=cohort,
                       options=options.run_options_of(ctx), allow_train_overlap=allow_train_overlap)
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
    m = res.metrics
    if m:
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
