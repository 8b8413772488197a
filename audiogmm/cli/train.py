"""``audiogmm train``: one GMM per label, one model file."""

from __future__ import annotations

import logging
import os
import warnings

import click

from ..exceptions import ConvergenceWarning
from ..models.classifier import N_COMPONENTS
from .options import (
    command_executor,
    echo_json,
    feature_options,
    json_option,
    load_config,
    progress_for,
    report_skipped,
    run_options,
    split_options,
)

logger = logging.getLogger("audiogmm")


@click.command("train")
@click.argument("data", type=click.Path(exists=True))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="Model file to write (.npz).",
)
@split_options("train")
@feature_options
@click.option(
    "--components",
    "-k",
    type=click.IntRange(min=1),
    default=N_COMPONENTS,
    show_default=True,
    help="Components per class.",
)
@click.option(
    "--init",
    type=click.Choice(["split", "kmeans++"]),
    default="kmeans++",
    show_default=True,
    help="Initialisation: k-means++ on a subsample, or split growth from one component.",
)
@click.option(
    "--max-iter",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Maximum EM iterations per class.",
)
@run_options
@json_option
@click.pass_context
def command(
    ctx,
    data,
    output,
    split,
    train_fraction,
    seed,
    preset,
    config_path,
    components,
    init,
    max_iter,
    cache_dir,
    jobs,
    strict,
    as_json,
):
    """Train one GMM per label on DATA and write one model file."""
    from ..data import RunOptions
    from ..pipeline import load_split, save_model, skipped_list, train_classifier

    config = load_config(preset, config_path)
    records = load_split(data, split, train_fraction=train_fraction, seed=seed)
    # per-class ConvergenceWarnings are summarised below, naming the classes
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    opts = RunOptions(cache_dir=cache_dir, n_jobs=jobs, progress=progress_for(ctx), strict=strict)
    with command_executor([r.path for r in records], config, jobs) as ex:
        clf, res = train_classifier(
            records,
            config=config,
            options=opts,
            executor=ex,
            n_components=components,
            random_state=seed,
            init=init,
            max_iter=max_iter,
        )
    not_conv = sorted(y for y, r in clf.fit_report_.items() if not r["converged"])
    if not_conv:
        logger.warning(
            "EM did not converge within --max-iter=%d for: %s", max_iter, ", ".join(not_conv)
        )
    save_model(output, clf, config)
    skipped = skipped_list(res)
    out = {
        "model": os.path.abspath(output),
        "labels": clf.labels_,
        "n_files": len(records) - len(skipped),
        "n_components": components,
        "n_dims": clf.n_dims,
        "skipped": skipped,
        "timing": clf.timing_,
        "training": clf.fit_report_,
    }
    if as_json:
        echo_json(out)
        return
    report_skipped(skipped)
    click.echo(
        f"trained {len(clf.labels_)} classes x {components} components on {out['n_files']} files "
        f"({clf.n_dims}-dim features) in {sum(clf.timing_.values()):.1f} s -> {output}"
    )
