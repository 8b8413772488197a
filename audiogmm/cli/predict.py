"""``audiogmm predict``: a label per audio file."""

from __future__ import annotations

import logging
from collections import Counter

import click

from .options import (
    command_executor,
    echo_json,
    jobs_option,
    json_option,
    load_classifier,
    progress_for,
    reject_option,
    reject_threshold,
    strict_option,
)
from .output import escape_name, report_skipped

logger = logging.getLogger("audiogmm")


@click.command("predict")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
# readable=False: an unreadable file is skipped and listed like bad audio, not a usage error
@click.argument("files", nargs=-1, required=True, type=click.Path(readable=False))
@click.option("--top", type=click.IntRange(min=1), default=1, show_default=True,
              help="Show the N best classes.")
@reject_option
@jobs_option
@strict_option
@json_option
@click.pass_context
def command(ctx, model, files, top, reject, jobs, strict, as_json):
    """Classify audio FILES with MODEL (features are extracted exactly as in training).

    A folder among FILES stands for the audio files under it (recursively).
    """
    from ..data import RunOptions, expand_paths
    from ..pipeline import predict_files

    bundle = load_classifier(model)
    given_files = files
    files = expand_paths(files)
    if not files:
        raise click.UsageError(f"no audio files found in {', '.join(map(escape_name, given_files))}")
    if len(set(files)) < len(files):
        twice = [f for f, n in Counter(files).items() if n > 1]
        logger.warning("%d file(s) given more than once, classified once: %s", len(twice),
                       ", ".join(map(escape_name, twice[:5])))  # fmt: skip
        files = list(dict.fromkeys(files))
    opts = RunOptions(n_jobs=jobs, progress=progress_for(ctx), strict=strict)
    reject_threshold(bundle.classifier, reject)  # its errors before any work
    with command_executor(files, jobs) as ex:
        res = predict_files(bundle, files, top=top, options=opts, executor=ex, reject=reject)
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
