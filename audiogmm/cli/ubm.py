"""``audiogmm ubm``: a UBM from a feature shard store, out of core; and ``--dask``.

``--dask local:N`` starts a LocalCluster of N worker processes; ``--dask tcp://HOST:PORT``
joins a running scheduler (the store must be at the same path on every worker). Models
are bit-identical with or without it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings

import click

from ..exceptions import ConvergenceWarning
from ..models.ubm import UBM_DEFAULTS
from .options import echo_json, jobs_option, json_option
from .output import escape_name

logger = logging.getLogger("audiogmm")


dask_option = click.option(
    "--dask", "dask_spec", default=None, metavar="local:N|tcp://HOST:PORT",
    help="Run on Dask: a LocalCluster of N worker processes, or a running scheduler.",
)  # fmt: skip


@contextlib.contextmanager
def dask_or(dask_spec: str | None, fallback):
    """A DaskExecutor for ``dask_spec`` (closed after), or the ``fallback`` context's executor."""
    if not dask_spec:
        with fallback as ex:
            yield ex
        return
    from ..engine.dask import DaskExecutor, parse_spec

    try:
        parse_spec(dask_spec)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--dask") from None
    verbosity = click.get_current_context().obj["verbosity"]
    _quiet_dask(verbosity)
    with _workers_stderr(quiet=verbosity < 2 and dask_spec.startswith("local")):
        ex = DaskExecutor(dask_spec)
    logger.info("executor: %r", ex)
    with ex:
        yield ex


def _quiet_dask(verbosity: int) -> None:
    """Dask's INFO chatter (cluster start and stop) only at -vv, its warnings unless -q."""
    try:
        import distributed  # noqa: F401 - sets its loggers' levels on import: ours come after
    except ImportError:
        return  # DaskExecutor says what to install
    level = logging.INFO if verbosity >= 2 else logging.WARNING if verbosity >= 0 else logging.ERROR
    for name in ("distributed", "tornado"):
        logging.getLogger(name).setLevel(level)
    # the LocalCluster serves no dashboard (dashboard_address=None): its port is no concern
    warnings.filterwarnings("ignore", r"Port \d+ is already in use", UserWarning)


@contextlib.contextmanager
def _workers_stderr(*, quiet: bool):
    """Processes started inside get /dev/null as stderr when ``quiet``: a LocalCluster's
    workers would each print a traceback on Ctrl-C; their task errors come back through
    the client anyway."""
    if not quiet:
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


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
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the initialisation.")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
              help="EM checkpoint file, written after every iteration "
              "(default: OUTPUT.ckpt.npz).")  # fmt: skip
@click.option("--resume", is_flag=True, help="Continue from the checkpoint if it exists.")
@dask_option
@jobs_option
@json_option
def command(store, output, components, init, max_iter, subsample, seed, checkpoint, resume,
            dask_spec, jobs, as_json):  # fmt: skip
    """Train a UBM on the frames of a shard store (`audiogmm extract DATA --shards STORE`).

    The UBM file records the store's front end; `audiogmm train DATA --backend map
    --ubm OUTPUT` adapts the classes from it.
    """
    from ..data.shards import open_store
    from ..engine import LocalExecutor
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
    fingerprint = {
        "store_frames": st.n_frames, "store_index": st.index_digest, "n_dims": st.n_dims,
        "config_hash": st.config_hash, "components": components, "init": init,
        "subsample": subsample, "seed": seed,
    }  # fmt: skip
    ckpt = EMCheckpoint(ckpt_path, resume=resume, fingerprint=fingerprint)
    with dask_or(dask_spec, LocalExecutor(jobs)) as ex, warnings.catch_warnings():
        # --max-iter is a budget run in full: stopping there is not a failure to converge
        warnings.filterwarnings("ignore", "EM did not converge", ConvergenceWarning)
        gmm = train_ubm(
            st, components, subsample=subsample, executor=ex, checkpoint=ckpt,
            init=init, max_iter=max_iter, random_state=seed,
        )  # fmt: skip
    save(gmm, output, extra=extra)
    out = {
        "model": os.path.abspath(output), "n_frames": gmm.fit_report_["n_frames"],
        "n_components": components, "n_iter": gmm.n_iter_, "converged": gmm.converged_,
        "resumed_from": ckpt.resumed_from, "checkpoint": os.path.abspath(ckpt_path),
        "executor": repr(ex),
    }  # fmt: skip
    if as_json:
        return echo_json(out)
    click.echo(
        f"UBM of {components} components on {out['n_frames']:,} frames, {gmm.n_iter_} EM "
        f"iterations{' (resumed)' if ckpt.resumed_from else ''} -> {escape_name(output)}"
    )
