"""``audiogmm tune``: the cross-validation table of ``--preset/--components auto``, no model."""

from __future__ import annotations

import warnings

import click

from ..exceptions import ConvergenceWarning
from . import options
from .output import report_skipped


@click.command("tune")
@click.argument("data", type=click.Path(exists=True))
@options.split_options("train")
@options.tuning_options(components_default="auto", preset_default="auto")
@click.option("--folds", type=click.IntRange(min=2), default=3, show_default=True,
              help="Clip-stratified cross-validation folds.")
@options.run_options
@options.json_option
@click.pass_context
def command(ctx, data, split, train_fraction, seed, preset, config_path, components, folds,
            as_json, **_):  # fmt: skip
    """Cross-validate front ends and components on DATA's training files; print the table.

    The same search as `train --preset auto --components auto`, on the training
    split only, without writing a model. --config FILE alone tunes the components
    of that front end (on the default preset).
    """
    from ..pipeline.classify import load_split, skipped_list
    from ..selection import tune

    if preset == "auto" and config_path:
        if options.given(ctx, "preset"):
            raise click.UsageError(options.AUTO_AND_CONFIG)
        preset = None  # the file's fields on the default preset
    # the preset's name, not its config, keeps the name in the table
    chosen = preset if preset == "auto" or not config_path else options.load_config(
        preset, config_path)  # fmt: skip
    records = load_split(data, split, train_fraction=train_fraction, seed=seed)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    result = tune(records, preset=chosen, components=components, n_folds=folds,
                  options=options.run_options_of(ctx), random_state=seed)  # fmt: skip
    out = {"n_files": len(records), "selection": result.to_header(),
           "feature_config": result.config.to_dict(),
           "feature_configs": [c.to_dict() for c in result.member_configs] or None,
           "skipped": skipped_list(result.features)}  # fmt: skip
    if as_json:
        return options.echo_json(out)
    report_skipped(out["skipped"])
    click.echo(options.format_selection(out["selection"]))
