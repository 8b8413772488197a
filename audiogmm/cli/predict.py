"""``audiogmm predict``: a label per audio file."""

from __future__ import annotations

import click

from .options import (
    command_executor,
    echo_json,
    jobs_option,
    json_option,
    progress_for,
    reject_option,
    strict_option,
)
from .output import escape_name, report_skipped


@click.command("predict")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
# readable=False: an unreadable file is skipped and listed like bad audio, not a usage error
@click.argument("files", nargs=-1, required=True, type=click.Path(readable=False))
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Show the N best classes.",
)
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
    from ..pipeline import load_model, predict_files

    bundle = load_model(model)
    files = expand_paths(files)
    if not files:
        raise click.UsageError("no audio files found in the folder(s) given")
    opts = RunOptions(n_jobs=jobs, progress=progress_for(ctx), strict=strict)
    thr = _threshold(bundle.classifier, reject)
    with command_executor(files, jobs) as ex:
        res = predict_files(bundle, files, top=top, options=opts, executor=ex)
    if thr is not None:
        _reject(thr, res["results"])
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


def _threshold(clf, reject: str | float | None) -> float | None:
    """The per-frame LLR threshold ``--reject`` asks for (checked before any extraction)."""
    if reject is None:
        return None
    if not hasattr(clf, "resolve_threshold"):
        raise click.UsageError("--reject needs a model trained with --backend map")
    return clf.resolve_threshold(reject)


def _reject(thr: float, results: list) -> None:
    """Relabel results whose best per-frame LLR is below ``thr`` as unknown."""
    from ..models import UNKNOWN

    for r in results:
        r["llr_per_frame"] = r["top"][0]["loglik"] / r["n_frames"]
        r["threshold"] = thr
        if r["llr_per_frame"] < thr:
            r["label"] = UNKNOWN
