"""``audiogmm predict``: a label per audio file."""

from __future__ import annotations

import logging
from collections import Counter

import click

from . import options
from .output import escape_name, report_skipped

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
def command(ctx, model, files, top, reject, as_json, **_):
    """Classify audio FILES with MODEL (features are extracted exactly as in training).

    A folder among FILES stands for the audio files under it (recursively).
    """
    from ..data import expand_paths
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
        options.echo_json(res)
    else:
        for r in res["results"]:  # one line per file, whatever its name holds
            alts = "  ".join(f"{escape_name(t['label'])}:{t['posterior']:.3f}" for t in r["top"])
            line = f"{escape_name(r['path'])}\t{escape_name(r['label'])}"
            click.echo(line + (f"\t{alts}" if top > 1 else ""))
        report_skipped(res["skipped"])
    if not res["results"]:
        n = len(res["skipped"])
        raise click.ClickException(f"no file could be classified ({n} skipped, listed above)")
