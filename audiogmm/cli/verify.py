"""``audiogmm verify``: LLR scores of verification trials, EER and minDCF, DET report."""

from __future__ import annotations

import click

from .options import echo_json, json_option, progress_for, report_skipped, run_options


@click.command("verify")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("trials", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--norm",
    type=click.Choice(["none", "z", "t", "s"]),
    default="none",
    show_default=True,
    help="Score normalisation: z (by --cohort impostor files), t (by the model's other "
    "classes as impostor models), s (both).",
)
@click.option(
    "--cohort",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="An impostor audio file for z-/s-norm (repeat the option).",
)
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False),
    help="Write scores.csv, metrics.json and det.png here.",
)
@run_options
@json_option
@click.pass_context
def command(ctx, model, trials, norm, cohort, report_dir, cache_dir, jobs, strict, as_json):
    """Score the TRIALS (CSV: path,claim[,target]) with a --backend map MODEL.

    Each score is the mean per-frame log-likelihood ratio of the file under the
    claimed class against the UBM. With a target column (1 true claim, 0
    impostor), EER, minDCF and actDCF (p_target 0.01 and 0.05, C_miss = C_fa = 1),
    Cllr and minCllr (bits; Cllr and actDCF read the scores as LLRs) follow.
    """
    from ..data import RunOptions
    from ..pipeline import load_model
    from ..pipeline.verify import read_trials, verify_trials, write_verification_report

    bundle = load_model(model)
    opts = RunOptions(cache_dir=cache_dir, n_jobs=jobs, progress=progress_for(ctx), strict=strict)
    res = verify_trials(bundle, read_trials(trials), norm=norm, cohort=cohort, options=opts)
    if not res["trials"]:
        raise click.ClickException("no trial could be scored (every file was skipped)")
    if report_dir:
        write_verification_report(report_dir, res)
    if as_json:
        echo_json(res)
        return
    report_skipped(res["skipped"])
    for t in res["trials"]:
        click.echo(f"{t['path']}\t{t['claim']}\t{t['score']:.6f}")
    m = res.get("metrics")
    if m:
        click.echo(
            f"EER {100 * m['eer']:.2f}%  minDCF(0.01) {m['min_dcf_0.01']:.4f}  "
            f"minDCF(0.05) {m['min_dcf_0.05']:.4f}  actDCF(0.01) {m['act_dcf_0.01']:.4f}  "
            f"Cllr {m['cllr']:.4f}  minCllr {m['min_cllr']:.4f}  "
            f"({m['n_target']} target, {m['n_nontarget']} non-target trials)"
        )
