"""``audiogmm verify``: LLR scores of verification trials, EER and minDCF, DET report."""

from __future__ import annotations

import itertools
import json
import math

import click

from . import options
from .output import escape_name, report_skipped


@click.command("verify")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("trials", type=click.Path(exists=True, dir_okay=False))
@click.option("--norm", type=click.Choice(["none", "z", "t", "s"]), default="none",
              show_default=True, help="Score normalisation: z (by --cohort impostor files), t "
              "(by the model's other classes as impostor models), s (both).")  # fmt: skip
@click.option("--cohort", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="An impostor audio file for z-/s-norm (repeat the option).")
@click.option("--report", "report_dir", type=click.Path(file_okay=False),
              help="Write scores.csv, metrics.json and det.png here.")
@click.option("--allow-train-overlap", is_flag=True, help="Score trial files that were used to "
              "train MODEL instead of refusing them (the error rates are then optimistic).")
@options.run_options
@options.json_option
@click.pass_context
def command(ctx, model, trials, norm, cohort, report_dir, allow_train_overlap, as_json, **_):
    """Score the TRIALS (CSV: path,claim[,target]) with a --backend map MODEL.

    Each score is the mean per-frame log-likelihood ratio of the file under the claimed
    class against the UBM. With a target column (1 true claim, 0 impostor): EER, minDCF and
    actDCF (p_target 0.01 and 0.05, C_miss = C_fa = 1), Cllr and minCllr (bits; Cllr and
    actDCF read the scores as LLRs). Trials are streamed (memory grows with the distinct
    files); files that trained MODEL are refused (see --allow-train-overlap).
    """
    from ..io.atomic import check_writable
    from ..pipeline.report import json_dumps
    from ..pipeline.verify import score_trials, write_verification_report

    if report_dir:
        check_writable(report_dir, folder=True)  # before the work, naming the user's path
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
