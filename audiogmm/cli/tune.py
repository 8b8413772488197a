"""``audiogmm tune``: the cross-validation table of ``--preset auto --components auto``, no model."""

from __future__ import annotations

import logging
import warnings

import click

from ..exceptions import ConvergenceWarning
from .options import (
    AUTO_AND_CONFIG,
    echo_json,
    format_selection,
    given,
    json_option,
    load_config,
    progress_for,
    report_skipped,
    run_options,
    split_options,
    tuning_options,
)

logger = logging.getLogger("audiogmm")


@click.command("tune")
@click.argument("data", type=click.Path(exists=True))
@split_options("train")
@tuning_options(components_default="auto", preset_default="auto")
@click.option("--folds", type=click.IntRange(min=2), default=3, show_default=True,
              help="Clip-stratified cross-validation folds.")
@run_options
@json_option
@click.pass_context
def command(ctx, data, split, train_fraction, seed, preset, config_path, components, folds,
            cache_dir, jobs, strict, as_json):  # fmt: skip
    """Cross-validate front ends and components on DATA's training files; print the table.

    The same search as `train --preset auto --components auto`, on the training
    split only, without writing a model. --config FILE alone tunes the components
    of that front end (on the default preset).
    """
    from ..data import RunOptions
    from ..pipeline.classify import load_split, skipped_list
    from ..selection import tune

    if preset == "auto" and config_path:
        if given(ctx, "preset"):
            raise click.UsageError(AUTO_AND_CONFIG)
        preset = None  # the file's fields on the default preset
    chosen = "auto" if preset == "auto" else load_config(preset, config_path)
    if not isinstance(chosen, str) and not config_path:
        chosen = preset  # keep the preset's name in the table
    records = load_split(data, split, train_fraction=train_fraction, seed=seed)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    opts = RunOptions(cache_dir=cache_dir, n_jobs=jobs, progress=progress_for(ctx), strict=strict)
    result = tune(
        records, preset=chosen, components=components, n_folds=folds, options=opts,
        random_state=seed,
    )  # fmt: skip
    out = {"n_files": len(records), "selection": result.to_header(),
           "feature_config": result.config.to_dict(),
           "feature_configs": [c.to_dict() for c in result.member_configs] or None,
           "skipped": skipped_list(result.features)}  # fmt: skip
    if as_json:
        echo_json(out)
        return
    report_skipped(out["skipped"])
    click.echo(format_selection(out["selection"]))
