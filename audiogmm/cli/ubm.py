"""``audiogmm ubm``: a UBM from a feature shard store, out of core (``--dask``: on a cluster,
the store at the same path on every worker; the model is bit-identical either way)."""

from __future__ import annotations

import logging
import os
import warnings

import click

from ..exceptions import ConvergenceWarning
from ..models.ubm import UBM_DEFAULTS
from . import options
from .output import escape_name

logger = logging.getLogger("audiogmm")


@click.command("ubm")
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="UBM model file to write (.npz).")  # fmt: skip
@click.option("-k", "--components", type=click.IntRange(min=1), default=256, show_default=True,
              help="UBM components (`train --backend map --ubm` adapts every class from them).")
@click.option("--init", type=click.Choice(["split", "kmeans++"]), default=UBM_DEFAULTS["init"],
              show_default=True, help="Split growth from one component (as Kaldi), or "
              "k-means++ seeding.")  # fmt: skip
@click.option("--max-iter", type=click.IntRange(min=0), default=UBM_DEFAULTS["max_iter"],
              show_default=True, help="EM iterations, run in full (a fixed budget, as in "
              "Kaldi, not a convergence limit).")  # fmt: skip
@click.option("--subsample", type=click.IntRange(min=1), default=1, show_default=True,
              help="Use every N-th frame of the store.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the initialisation.")
@click.option("--checkpoint", type=click.Path(dir_okay=False),
              help="EM checkpoint file, written after every iteration (default: OUTPUT.ckpt.npz).")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint if it exists.")
@options.dask_option
@options.jobs_option
@options.json_option
def command(store, output, components, init, max_iter, subsample, seed, checkpoint, resume,
            as_json, **_):  # fmt: skip
    """Train a UBM on the frames of a shard store (`audiogmm extract DATA --shards STORE`).

    The UBM file records the store's front end; `audiogmm train DATA --backend map
    --ubm OUTPUT` adapts the classes from it.
    """
    from ..data.shards import open_store
    from ..exceptions import ModelFileError
    from ..io import EMCheckpoint, save
    from ..io.atomic import check_writable
    from ..models.ubm import train_ubm
    from ..pipeline.sources import store_config

    check_writable(output)
    st = open_store(store)
    try:
        extra = {"feature_config": store_config(st).to_dict()}
    except ModelFileError as e:  # an older store: the UBM is still usable with --preset
        logger.warning("%s; the UBM will not record its front end", e)
        extra = {}
    ckpt_path = checkpoint or output + ".ckpt.npz"
    check_writable(ckpt_path)
    ckpt = EMCheckpoint(ckpt_path, resume=resume, fingerprint={
        "store_frames": st.n_frames, "store_index": st.index_digest, "n_dims": st.n_dims,
        "config_hash": st.config_hash, "components": components, "init": init,
        "subsample": subsample, "seed": seed})  # fmt: skip
    with options.executor() as ex, warnings.catch_warnings():
        # --max-iter is a budget run in full: stopping there is not a failure to converge
        warnings.filterwarnings("ignore", "EM did not converge", ConvergenceWarning)
        gmm = train_ubm(st, components, subsample=subsample, executor=ex, checkpoint=ckpt,
                        init=init, max_iter=max_iter, random_state=seed)  # fmt: skip
    save(gmm, output, extra=extra)
    out = {"model": os.path.abspath(output), "n_frames": gmm.fit_report_["n_frames"],
           "n_components": components, "n_iter": gmm.n_iter_, "converged": gmm.converged_,
           "resumed_from": ckpt.resumed_from, "checkpoint": os.path.abspath(ckpt_path),
           "executor": repr(ex)}  # fmt: skip
    if as_json:
        return options.echo_json(out)
    click.echo(f"UBM of {components} components on {out['n_frames']:,} frames, {gmm.n_iter_} EM "
               f"iterations{' (resumed)' if ckpt.resumed_from else ''} -> {escape_name(output)}")
