"""``audiogmm evaluate``: accuracy and confusion of a model on labelled files."""

from __future__ import annotations

import click

from .options import (
    command_executor,
    echo_json,
    json_option,
    progress_for,
    report_skipped,
    run_options,
    split_options,
)


@click.command("evaluate")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("data", type=click.Path(exists=True))
@split_options("test")
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False),
    help="Write metrics.json, confusion.txt/.png here.",
)
@run_options
@json_option
@click.pass_context
def command(
    ctx, model, data, split, train_fraction, seed, report_dir, cache_dir, jobs, strict, as_json
):
    """Classify the labelled files of DATA with MODEL and report accuracy."""
    from ..data import RunOptions
    from ..pipeline import (
        evaluate_classifier,
        format_confusion,
        load_model,
        load_split,
        write_report,
    )

    bundle = load_model(model)
    records = load_split(data, split, train_fraction=train_fraction, seed=seed)
    opts = RunOptions(cache_dir=cache_dir, n_jobs=jobs, progress=progress_for(ctx), strict=strict)
    with command_executor([r.path for r in records], bundle.config, jobs) as ex:
        res = evaluate_classifier(bundle, records, options=opts, executor=ex)
    if report_dir:
        write_report(report_dir, res)
    if as_json:
        echo_json({k: v for k, v in res.items() if k != "predictions"})
        return
    report_skipped(res["skipped"])
    click.echo(format_confusion(res["confusion"]["labels"], res["confusion"]["matrix"]), nl=False)
    click.echo(
        f"accuracy: {100 * res['accuracy']:.2f}% ({res['n']} files, {len(res['skipped'])} skipped)"
    )
