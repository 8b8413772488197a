"""``audiogmm ubm``: a UBM from a feature shard store, out of core, on Dask if asked; and ``--dask``.

``--dask local:N`` starts a LocalCluster of N worker processes for the command;
``--dask tcp://HOST:PORT`` joins a running scheduler (``dask scheduler`` +
``dask worker tcp://HOST:PORT`` on each machine; the store must be at the same
path on every worker). Without ``--dask`` the command's own executor is used.
Models are bit-identical in every case.
"""

from __future__ import annotations

import contextlib
import os

import click

from .options import echo_json, jobs_option, json_option
from .output import escape_name


def dask_option(f):
    """``--dask local:N | tcp://HOST:PORT``: run the command's tasks on Dask."""
    return click.option(
        "--dask",
        "dask_spec",
        default=None,
        metavar="local:N|tcp://HOST:PORT",
        help="Run on Dask: a LocalCluster of N worker processes, or a running scheduler.",
    )(f)


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
    with DaskExecutor(dask_spec) as ex:
        yield ex


@click.command("ubm")
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="UBM model file to write (.npz).")  # fmt: skip
@click.option("-k", "--components", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--init", type=click.Choice(["split", "kmeans++"]), default="split",
              show_default=True)  # fmt: skip
@click.option("--max-iter", type=click.IntRange(min=0), default=10, show_default=True)
@click.option("--subsample", type=click.IntRange(min=1), default=1, show_default=True,
              help="Use every N-th frame of the store.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
              help="EM checkpoint file, written after every iteration "
              "(default: OUTPUT.ckpt.npz).")  # fmt: skip
@click.option("--resume", is_flag=True, help="Continue from the checkpoint if it exists.")
@dask_option
@jobs_option
@json_option
def command(store, output, components, init, max_iter, subsample, seed, checkpoint, resume,
            dask_spec, jobs, as_json):  # fmt: skip
    """Train a UBM on the frames of a shard store (`audiogmm extract DATA --shards STORE`)."""
    from ..data.shards import open_store
    from ..engine import LocalExecutor
    from ..io import EMCheckpoint, save
    from ..io.atomic import check_writable
    from ..models.ubm import train_ubm

    check_writable(output)
    st = open_store(store)
    ckpt_path = checkpoint or output + ".ckpt.npz"
    check_writable(ckpt_path)
    fingerprint = {
        "store_frames": st.n_frames, "store_index": st.index_digest, "n_dims": st.n_dims,
        "config_hash": st.config_hash,
        "components": components, "init": init, "subsample": subsample, "seed": seed,
    }  # fmt: skip
    ckpt = EMCheckpoint(ckpt_path, resume=resume, fingerprint=fingerprint)
    with dask_or(dask_spec, LocalExecutor(jobs)) as ex:
        gmm = train_ubm(
            st, components, subsample=subsample, executor=ex, checkpoint=ckpt,
            init=init, max_iter=max_iter, random_state=seed,
        )  # fmt: skip
    save(gmm, output)
    out = {
        "model": os.path.abspath(output), "n_frames": gmm.fit_report_["n_frames"],
        "n_components": components, "n_iter": gmm.n_iter_, "converged": gmm.converged_,
        "resumed_from": ckpt.resumed_from, "checkpoint": os.path.abspath(ckpt_path),
        "executor": repr(ex),
    }  # fmt: skip
    if as_json:
        echo_json(out)
        return
    click.echo(
        f"UBM of {components} components on {out['n_frames']:,} frames, {gmm.n_iter_} EM "
        f"iterations{' (resumed)' if ckpt.resumed_from else ''} -> {escape_name(output)}"
    )


def train_store(ctx, data, output, *, backend, params, seed, jobs, dask_spec, as_json) -> None:
    """``audiogmm train STORE``: the classifier from a shard store's clips, labels and front end."""
    from ..data.shards import open_store
    from ..engine import LocalExecutor
    from ..pipeline import save_model
    from ..pipeline.shards import train_from_store
    from .options import progress_for

    if params.get("n_components") == "auto":
        raise click.UsageError("--components auto cross-validates audio files; give -k with a store")
    store = open_store(data)
    with dask_or(dask_spec, LocalExecutor(jobs)) as ex:
        clf, _config = train_from_store(
            store, backend=backend, executor=ex, progress=progress_for(ctx),
            random_state=seed, n_jobs=jobs, **params,
        )  # fmt: skip
        save_model(output, clf, _config)
    out = {
        "model": os.path.abspath(output), "labels": clf.labels_, "n_files": store.n_clips,
        "n_components": clf.n_components, "backend": backend, "n_dims": clf.n_dims,
        "skipped": [], "timing": clf.timing_, "training": clf.fit_report_, "store": store.folder,
    }  # fmt: skip
    if as_json:
        echo_json(out)
        return
    click.echo(
        f"trained {len(clf.labels_)} classes x {clf.n_components} components ({backend}) "
        f"on {store.n_clips} clips of the store ({clf.n_dims}-dim features) -> "
        f"{escape_name(output)}"
    )
