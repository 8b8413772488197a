"""``audiogmm predict``: a label per audio file."""

from __future__ import annotations

import click

from .options import (
    command_executor,
    echo_json,
    jobs_option,
    json_option,
    progress_for,
    report_skipped,
)


@click.command("predict")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Show the N best classes.",
)
@jobs_option
@json_option
@click.pass_context
def command(ctx, model, files, top, jobs, as_json):
    """Classify audio FILES with MODEL (features are extracted exactly as in training)."""
    from ..data import RunOptions
    from ..pipeline import load_model, predict_files

    bundle = load_model(model)
    opts = RunOptions(n_jobs=jobs, progress=progress_for(ctx))
    with command_executor(files, bundle.config, jobs) as ex:
        res = predict_files(bundle, files, top=top, options=opts, executor=ex)
    if as_json:
        echo_json(res)
    else:
        for r in res["results"]:
            alts = "  ".join(f"{t['label']}:{t['posterior']:.3f}" for t in r["top"])
            click.echo(f"{r['path']}\t{r['label']}" + (f"\t{alts}" if top > 1 else ""))
        report_skipped(res["skipped"])
    if not res["results"]:
        raise click.ClickException("no file could be classified")
