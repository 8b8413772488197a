"""``audiogmm evaluate``: accuracy and confusion of a model on labelled files, or on the
features of a Kaldi directory (:func:`audiogmm.pipeline.sources.evaluate_kaldi`)."""

from __future__ import annotations

import click

from . import options
from .output import escape_name, report_skipped


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
@click.option("--report", "report_dir", type=click.Path(file_okay=False),
              help="Write metrics.json, metrics.txt, confusion.txt/.png here.")
@options.reject_option
@options.run_options
@options.json_option
@click.pass_context
def command(ctx, model, data, split, train_fraction, seed, allow_train_overlap, report_dir, reject,
            as_json, **_):  # fmt: skip
    """Classify the labelled files of DATA with MODEL and report accuracy.

    Without --seed/--train-fraction, DATA is split as the model's training data
    was (the model stores its split), and files used in training are refused.
    """
    from ..data import read_manifest
    from ..data.kaldi import needs_kaldi_reader
    from ..io.atomic import check_writable
    from ..pipeline import evaluate_classifier, evaluation_split, report
    from ..pipeline.classify import stored_split

    if report_dir:
        check_writable(report_dir, folder=True)  # before the work, naming the user's path
    how = dict(train_fraction=train_fraction, seed=seed, allow_train_overlap=allow_train_overlap)
    if needs_kaldi_reader(data):  # feats.scp, or wav.scp + segments: no audio cache
        from ..pipeline.sources import evaluate_kaldi

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
        return options.echo_json({k: v for k, v in res.items() if k != "predictions"})
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
