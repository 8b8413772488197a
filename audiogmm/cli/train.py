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
    format_selection,
    json_option,
    load_config,
    progress_for,
    report_skipped,
    run_options,
    split_options,
    tuning_options,
)
from .output import dims_text, escape_name
from .ubm import dask_option, dask_or

logger = logging.getLogger("audiogmm")


# -- GMM-UBM / MAP backend options (issue 10) -------------------------------------------------
def map_options(f):
    """``--backend ml|map`` and the UBM/MAP settings; ignored by ``--backend ml``."""
    from ..models.ubm import UBM_COMPONENTS

    for args, kw in reversed([
        (("--backend",), dict(type=click.Choice(["ml", "map"]), default="ml", show_default=True,
                              help="ml: one GMM per label; map: a UBM with MAP-adapted labels.")),
        (("--ubm-components",), dict(type=click.IntRange(min=1), default=UBM_COMPONENTS,
                                     show_default=True, help="UBM components (--backend map).")),
        (("--relevance",), dict(type=click.FloatRange(min=0), default=16.0, show_default=True,
                                help="MAP relevance factor (--backend map).")),
        (("--adapt",), dict(type=click.Choice(["m", "mw", "mwv"]), default="m", show_default=True,
                            help="MAP-adapt means, +weights, +variances (--backend map).")),
        (("--reject-far",), dict(type=click.FloatRange(0, 1, min_open=True, max_open=True),
                                 default=None, help="Calibrate `predict --reject auto` for this "
                                 "false-accept rate of unknown clips (--backend map).")),
    ]):  # fmt: skip
        f = click.option(*args, **kw)(f)
    return f


def map_params(ctx, backend, ubm_components, relevance, adapt, reject_far, components, init,
               max_iter):  # fmt: skip
    """Classifier parameters for the backend (``--init``/``--max-iter`` bind the UBM if given)."""
    if backend == "ml":
        return {"n_components": components, "init": init, "max_iter": max_iter}
    given = {
        k: v for k, v in (("init", init), ("max_iter", max_iter))
        if ctx.get_parameter_source(k) != click.core.ParameterSource.DEFAULT
    }  # fmt: skip
    return dict(n_components=ubm_components, relevance=relevance, adapt=adapt,
                reject_far=reject_far, **given)  # fmt: skip


# -- end of the GMM-UBM / MAP block ------------------------------------------------------------


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
@tuning_options(components_default=N_COMPONENTS)
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
@map_options
@run_options
@dask_option
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
    backend,
    ubm_components,
    relevance,
    adapt,
    reject_far,
    cache_dir,
    jobs,
    strict,
    dask_spec,
    as_json,
):
    """Train one GMM per label on DATA and write one model file."""
    from ..container import check_writable
    from ..data import RunOptions
    from ..pipeline import (
        describe_split,
        load_split,
        save_model,
        skipped_list,
        train_classifier,
        train_tuned,
    )

    check_writable(output)  # before the work, naming the user's path
    from ..data.shards import is_store

    if is_store(data):  # a shard store: its clips, labels and front end (no audio, no split)
        from .ubm import train_store

        if components == "auto" or preset == "auto":
            raise click.UsageError(
                "--preset auto / --components auto cross-validate audio front ends; a shard "
                "store has fixed features: give -k"
            )

        params = map_params(ctx, backend, ubm_components, relevance, adapt, reject_far,
                            components, init, max_iter)  # fmt: skip
        return train_store(ctx, data, output, backend=backend, params=params, seed=seed,
                           jobs=jobs, dask_spec=dask_spec, as_json=as_json)  # fmt: skip
    auto = preset == "auto" and not config_path
    config = None if auto else load_config(preset, config_path)
    from ..data.kaldi import needs_kaldi_reader

    if needs_kaldi_reader(data):  # feats.scp, or wav.scp + segments: no audio cache
        if auto or components == "auto":
            raise click.UsageError(
                "--preset auto / --components auto need audio to try front ends; a Kaldi "
                "feature directory has fixed features: give -k"
            )
        from .kaldi import train_kaldi_dir

        return train_kaldi_dir(
            ctx, data, output, split=split, train_fraction=train_fraction, seed=seed,
            config=config, backend=backend, jobs=jobs, as_json=as_json, max_iter=max_iter,
            params=map_params(ctx, backend, ubm_components, relevance, adapt, reject_far,
                              components, init, max_iter),
        )  # fmt: skip
    records = load_split(data, split, train_fraction=train_fraction, seed=seed)
    # per-class ConvergenceWarnings are summarised below, naming the classes
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    opts = RunOptions(cache_dir=cache_dir, n_jobs=jobs, progress=progress_for(ctx), strict=strict)
    extra = {}
    tuning = auto or components == "auto"
    if tuning and backend != "ml":
        raise click.UsageError(
            "--preset auto and --components auto select by cross-validating the ml "
            "backend; give a fixed --preset and -k with --backend map"
        )
    with dask_or(dask_spec, command_executor([r.path for r in records], jobs)) as ex:
        if tuning:
            clf, tuned = train_tuned(
                records, preset="auto" if auto else config, components=components,
                options=opts, executor=ex, random_state=seed, init=init, max_iter=max_iter,
            )  # fmt: skip
            config, res = tuned.member_configs or tuned.config, tuned.features
            extra["selection"] = tuned.to_header()
            components = clf.n_components
        else:
            clf, res = train_classifier(
                records,
                config=config,
                options=opts,
                executor=ex,
                backend=backend,
                random_state=seed,
                **map_params(
                    ctx, backend, ubm_components, relevance, adapt, reject_far, components, init,
                    max_iter,
                ),
            )
    not_conv = sorted(y for y, r in clf.fit_report_.items() if not r["converged"])
    if not_conv:
        logger.warning(
            "EM did not converge within --max-iter=%d for: %s",
            max_iter,
            ", ".join(escape_name(y) for y in not_conv),
        )
    from ..models.classifier import oversized_reason

    for y, r in clf.fit_report_.items():  # the OversizedModelWarning, as one line per class
        why = oversized_reason(r, r.get("n_components", clf.n_components))
        if why:
            logger.warning("class %s: %s", escape_name(y), why)
    # the model records its split and training files, so evaluate can refuse them
    used = [r for r in records if r.path in res.features]
    extra["split"] = describe_split(
        data, split, used, train_fraction=train_fraction, seed=seed, n_jobs=jobs
    )
    save_model(output, clf, config, extra=extra)
    skipped = skipped_list(res)
    out = {
        "model": os.path.abspath(output),
        "labels": clf.labels_,
        "n_files": len(records) - len(skipped),
        "n_components": clf.n_components,
        "backend": backend,
        "n_dims": clf.n_dims,
        "skipped": skipped,
        "timing": clf.timing_,
        "training": clf.fit_report_,
        "selection": extra.get("selection"),
    }
    if as_json:
        echo_json(out)
        return
    report_skipped(skipped)
    if "selection" in extra:
        click.echo(format_selection(extra["selection"]))
    click.echo(
        f"trained {len(clf.labels_)} classes x {clf.n_components} components ({backend}) "
        f"on {out['n_files']} files ({dims_text(clf.n_dims)}-dim features) in "
        f"{sum(clf.timing_.values()):.1f} s -> {escape_name(output)}"
    )
