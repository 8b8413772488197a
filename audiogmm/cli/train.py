"""The commands that make features and models: ``extract`` (features into the cache, a shard
store or Kaldi files), ``train`` (one model file of any backend from any source, by
:func:`audiogmm.pipeline.sources.open_clips` and ``fit_backend``; an option that does not
apply to the backend or the source is a usage error naming it), ``tune`` (the cross-validation
table of ``--preset/--components auto``, no model) and ``ubm`` (a UBM from a feature shard
store, out of core; ``--dask``: the store at the same path on every worker, the model
bit-identical either way)."""

from __future__ import annotations

import inspect
import logging
import os
import warnings

import click

from ..data import read_manifest
from ..exceptions import ConvergenceWarning, ModelFileError, ParameterError
from ..features import FeatureConfig
from ..io.atomic import check_writable
from ..mixture import DiagGMM
from ..models import BACKENDS, DEFAULT_BACKEND, default_components
from ..models.classifier import oversized_reason
from ..models.fusion import MAX_MEMBERS
from ..models.ubm import UBM_DEFAULTS, train_ubm
from ..scoring.verification import calibrated_threshold
from . import options
from .options import dims_text, echo_out, escape_name

logger = logging.getLogger("audiogmm")

_GMM_DEFAULTS = {k: p.default for k, p in inspect.signature(DiagGMM).parameters.items()}
#: The backend options and the backends that read them: any other backend refuses them.
READ_BY = {"relevance": ("map", "gsv"), "ubm_components": ("map", "gsv", "ivector"),
           "ubm_path": ("map", "gsv", "ivector"), "adapt": ("map",), "reject_far": ("map",)}


def backend_params(ctx: click.Context, backend: str, p: dict) -> dict:
    """The classifier parameters of ``backend`` from the command's options ``p`` (usage
    errors for those it does not read). ``-k``, ``--init`` and ``--max-iter`` bind the class
    mixtures (ml) or the UBM (where only given values replace the UBM defaults)."""
    for name, readers in READ_BY.items():
        if backend not in readers:
            names = " or ".join([", ".join(readers[:-1]), readers[-1]] if readers[1:] else readers)
            options.refuse_given(ctx, (name,), f"applies to --backend {names} only")
    given = {name: p[name] for name in ("init", "max_iter") if p[name] is not None}
    if backend == "ml":
        return {"n_components": p["components"] or default_components("ml"),
                "init": _GMM_DEFAULTS["init"], "max_iter": _GMM_DEFAULTS["max_iter"], **given}
    # relevance left unset: the backend's own default (map 16 per class, gsv 4 per clip)
    own = {} if p["relevance"] is None else {"relevance": p["relevance"]}
    if backend == "map":
        own.update(adapt=p["adapt"], reject_far=p["reject_far"])
    if p["ubm_path"]:
        options.refuse_given(ctx, ("components", "ubm_components", "init", "max_iter"), "sets up "
                             "the UBM training, but --ubm gives the UBM (its size is the file's)")
        return own
    k, k2 = p["components"], p["ubm_components"]
    if k is not None and k2 is not None and k != k2:
        raise click.UsageError(f"-k {k} and --ubm-components {k2} disagree: both are the UBM size")
    return {"n_components": k or k2 or default_components(backend), **own, **given}


def _front_end(ubm_path, ubm_config, data_config, *, fixed: bool):
    """The UBM's front end if it records one, else ``data_config``; ``fixed``: they must agree."""
    if ubm_config is None:
        return data_config
    if fixed and data_config is not None and data_config != ubm_config:
        raise click.UsageError(
            f"the UBM {ubm_path} was trained on the front end {ubm_config.content_hash()}, "
            f"DATA's is {data_config.content_hash()}; use the front end the UBM was made with")
    return ubm_config


@click.command("train")
@click.argument("data", type=click.Path(exists=True))
@click.option("-o", "--output", required=True, type=options.OutputPath(dir_okay=False),
              help="Model file to write (.npz).")
@options.split_options()
@options.feature_options(auto=True, fuse=MAX_MEMBERS)
@options.components_option(None, "Components of the UBM (gsv, the default backend: "
    f"{default_components('gsv')}; map {default_components('map')}; ivector "
    f"{default_components('ivector')}), or per class (--backend ml, default "
    f"{default_components('ml')}). 'auto': chosen by cross-validation, the backend too (see "
    "--backends; with --backend ml, K per class among ml models).")  # fmt: skip
@click.option("--init", type=click.Choice(["split", "kmeans++"]),
              help="Initialisation: k-means++ on a subsample, or split growth from one component "
              f"[default: {_GMM_DEFAULTS['init']}; the UBM of --backend map/gsv/ivector: "
              f"{UBM_DEFAULTS['init']}].")  # fmt: skip
@click.option("--max-iter", type=click.IntRange(min=0),
              help=f"Maximum EM iterations per class [default: {_GMM_DEFAULTS['max_iter']}; "
              f"the UBM of --backend map/gsv/ivector runs exactly {UBM_DEFAULTS['max_iter']}].")
@click.option("--backend", type=options.Members(sorted(BACKENDS), MAX_MEMBERS),
              help=f"[default: {DEFAULT_BACKEND}] ml: one GMM per label; map: a UBM with "
              "MAP-adapted labels; gsv: GMM supervectors of a UBM + logistic regression; ivector: "
              "i-vectors of a UBM + LDA, WCCN and cosine scoring. Several joined by '+' (and "
              "one --preset each, or one for all): a late fusion of those models, each with "
              "its backend's defaults, weighted by a logistic regression on held-out folds "
              "of the training files (e.g. --backend gsv+ml --preset speaker+general).")  # fmt: skip
@options.backends_option()
@click.option("--ubm-components", type=click.IntRange(min=1), hidden=True,
              help="Same as -k with --backend map, gsv or ivector (the UBM size).")
@click.option("--ubm", "ubm_path", type=click.Path(exists=True, dir_okay=False),
              help="--backend map, gsv or ivector: use this UBM (`audiogmm ubm`) instead of "
              "training one; its front end is the model's.")  # fmt: skip
@click.option("--relevance", type=click.FloatRange(min=0), help="MAP relevance factor: of the "
              "class models (--backend map, default 16) or of each clip (gsv, default 4).")
@click.option("--adapt", type=click.Choice(["m", "mw", "mwv"]), default="m", show_default=True,
              help="MAP-adapt means, +weights, +variances (--backend map).")
@click.option("--reject-far", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Calibrate `predict --reject auto` for this false-accept rate of unknown "
              "clips (--backend map).")  # fmt: skip
@click.option("--calibrate", is_flag=True, help="--backend ml or map: fit a linear logistic "
              "calibration on held-out training folds, so that verify scores are log-likelihood "
              "ratios (map: and `--reject auto` is the Bayes threshold at prior 0.5); implied "
              "by --preset auto.")
@options.run_options
@options.dask_option
@options.json_option
@click.pass_context
def train(ctx, data, output, preset, config_path, components, backend, ubm_path, reject_far,
          calibrate, as_json, **_):  # fmt: skip
    """Train a classifier on DATA and write one model file (see --backend).

    DATA: a folder per label, a CSV, a Kaldi directory, or a shard store
    (`audiogmm extract DATA --cache C --shards STORE`)."""
    from ..pipeline.classify import load_ubm, save_model
    from ..pipeline.sources import KINDS, source_kind
    auto, ml_only = preset == "auto", backend == "ml"
    tuning, kind = auto or components == "auto", KINDS[source_kind(data)]
    backend = backend or DEFAULT_BACKEND
    members = fusion_members(ctx, preset, backend, kind)
    for wrong, why in [
        (auto and config_path, options.AUTO_AND_CONFIG),
        (tuning and options.given(ctx, "backend") and not ml_only, "--preset auto and --components "
         "auto choose the backend (the default, gsv, against the ml choice and others; "
         f"--backend ml: ml alone); give a fixed --preset and -k with --backend {backend}"),
        (calibrate and (backend not in ("ml", "map") or tuning), "--calibrate applies to "
         "--backend ml and map (gsv and ivector calibrate their scores always, and --preset "
         "auto calibrates what it chooses)"),
        (calibrate and reject_far is not None, "--reject-far searches a threshold and --calibrate "
         "sets it from the prior: give one"),
        (tuning and kind.not_for, "--preset auto / --components auto need audio to try front "
         f"ends; a {kind.name} has fixed features: give -k"),
        (not tuning and ctx.params["backends"] is not None, "--backends lists what --preset auto / "
         "--components auto try; with a fixed model, --backend chooses it"),
    ]:  # fmt: skip
        if wrong:
            raise click.UsageError(why)
    searched = options.searched_backends(components, "ml" if ml_only else None,
                                         ctx.params["backends"]) if tuning else None  # fmt: skip
    if tuning and not ml_only:
        options.refuse_given(ctx, (*READ_BY, "init", "max_iter"), "sets up one backend, and "
                             "--preset auto / --components auto train the backend they choose "
                             "with its defaults (--backend ml: choose among ml models with it)")
    params = {} if members else backend_params(ctx, "ml" if tuning else backend, ctx.params)
    options.refuse_given(ctx, kind.not_for, kind.why)
    ubm, ubm_config = load_ubm(ubm_path) if ubm_path else (None, None)
    if ubm_path and ubm_config is None:
        logger.warning("%s records no front end; it must match --preset/--config", ubm_path)
    fixed = options.given(ctx, "preset") or options.given(ctx, "config_path")
    config = None if auto or members else _front_end(ubm_path, ubm_config, options.load_config(
        preset, config_path), fixed=fixed)  # fmt: skip
    fit = dict(backend=backend, ubm=ubm, random_state=ctx.params["seed"], **params)
    with warnings.catch_warnings():
        # per-class ConvergenceWarnings are summarised below, naming the classes
        warnings.simplefilter("ignore", ConvergenceWarning)
        if members:
            clf, clips, extra = _fit_fused(ctx, data, members)
        else:
            clf, clips, extra = _fit(ctx, data, fit, config, ubm_config, tuning, calibrate,
                                     searched)  # fmt: skip
    # the model records its split (or training utterances), so that scoring can refuse them
    extra = {**clips.blocks, **extra}
    if clips.config is None:  # features made by Kaldi: a plain classifier file
        clf.save(output, extra=extra)
    else:
        save_model(output, clf, clips.config, extra=extra)
    cfg = clips.config  # one front end, or one per member of a fused model
    front = cfg.to_dict() if isinstance(cfg, FeatureConfig) else cfg and [c.to_dict() for c in cfg]
    backend = (extra.get("selection") or {}).get("backend", backend)  # auto may choose it
    if members:  # each member as its backend, named
        for model, (p, b) in zip(clf.members, members):
            report_training(model, b, f"member {b} ({p})")
    else:
        report_training(clf, backend)
    out = dict(model=os.path.abspath(output), labels=clf.labels_, n_components=clf.n_components,
               backend=backend, n_dims=clf.n_dims, timing=clf.timing_, training=clf.fit_report_,
               n_files=len(clips.clips), skipped=clips.skipped, selection=extra.get("selection"),
               feature_config=front, **clips.info)  # fmt: skip
    how = (f"as a late fusion of {' + '.join(f'{b} ({p})' for p, b in members)}" if members
           else f"from a UBM of {clf.n_components} components ({backend})" if backend != "ml"
           else f"x {clf.n_components} components (ml)")  # fmt: skip
    note = "" if clips.config else " (Kaldi features: evaluate on feats.scp, no audio predict)"
    n, unit = len(clf.labels_), clips.unit + ("" if out["n_files"] == 1 else "s")
    echo_out(out, as_json, f"trained {n} class{'' if n == 1 else 'es'} {how} on {out['n_files']} "
             f"{unit} ({dims_text(clf.n_dims)}-dim features) in {sum(clf.timing_.values()):.1f} s "
             f"-> {escape_name(output)}{note}")  # fmt: skip


#: What a fusion's members are trained with: each backend's defaults, so these are refused.
_SINGLE_MODEL = ("components", "init", "max_iter", "ubm_components", "ubm_path", "relevance",
                 "adapt", "reject_far", "calibrate", "config_path")  # fmt: skip


def fusion_members(ctx: click.Context, preset: str, backend: str, kind) -> list[tuple[str, str]]:
    """The (preset, backend) of each member when ``--preset`` or ``--backend`` names several
    (:func:`~audiogmm.selection.fusion.fusion_pairs`), else []; usage errors for what a fusion
    refuses."""
    from ..selection.fusion import fusion_pairs
    try:
        members = fusion_pairs(preset, backend)
    except ParameterError as e:
        raise click.UsageError(f"--preset {preset} --backend {backend}: {e}") from None
    if members:
        options.refuse_given(ctx, _SINGLE_MODEL, "sets up a single model; a fusion trains each "
                             "member with its backend's defaults (and its weights calibrate it)")
        if kind.not_for:
            raise click.UsageError(f"a fusion extracts each member's front end from audio; DATA "
                                   f"is a {kind.name}")  # fmt: skip
    return members


def _fit_fused(ctx, data, members: list[tuple[str, str]]):
    """The fusion of ``members`` (:func:`~audiogmm.selection.train_fused`) on DATA's training
    files usable under every member's front end, its clip set and header blocks."""
    from ..pipeline.classify import load_split
    from ..pipeline.sources import audio_clips
    from ..selection import train_fused
    p = ctx.params
    how = dict(split=p["split"], train_fraction=p["train_fraction"], seed=p["seed"])
    records = load_split(data, **how)
    opts = options.command_options()
    # many independent fits, as auto's: worker processes from its threshold, started now
    with options.executor([r.path for r in records], selection=True) as ex:
        clf, used, results = train_fused(records, members, random_state=p["seed"], options=opts,
                                         executor=ex)  # fmt: skip
        clips = audio_clips(data, used, results[0], [FeatureConfig.preset(n) for n, _ in members],
                            n_jobs=p["jobs"], extract_s=clf.timing_["extract_s"],
                            cache_dir=p["cache_dir"], **how)  # fmt: skip
    return clf, clips, {}


def _fit(ctx, data, fit, config, ubm_config, tuning, calibrate, backends):
    """The fitted (or auto-chosen, calibrated if asked) classifier, its clips, header blocks;
    ``backends``: what auto tries beside the ml models (:func:`.options.searched_backends`)."""
    from ..pipeline.classify import load_split
    from ..pipeline.sources import audio_clips, fit_backend, open_clips, source_kind
    from ..selection import train_tuned
    p, jobs = ctx.params, ctx.params["jobs"]
    how = dict(split=p["split"], train_fraction=p["train_fraction"], seed=p["seed"])
    records = load_split(data, **how) if source_kind(data) == "audio" else None
    opts = options.command_options()
    extra = {}  # audio: threads or processes by its duration; features already made: threads
    with options.executor(None if records is None else [r.path for r in records],
                          selection=tuning) as ex:  # fmt: skip
        if tuning:
            n_components = fit["n_components"]  # the ml K (16 unless -k), or "auto"
            fit = {k: v for k, v in fit.items() if k not in ("backend", "ubm", "n_components")}
            # a preset by name keeps its name in the table (--config FILE: "config")
            named = "auto" if config is None else config if p["config_path"] else p["preset"]
            clf, tuned = train_tuned(records, preset=named,
                                     components=n_components, options=opts, executor=ex,
                                     backends=backends, **fit)  # fmt: skip
            clips = audio_clips(data, records, tuned.features, tuned.member_configs or tuned.config,
                                n_jobs=jobs, cache_dir=p["cache_dir"], **how)  # fmt: skip
            extra["selection"] = tuned.to_header()
            # map: on held-out folds below; a single ml front end: from the CV's held-out
            # scores (tuned.calibration); fusions are calibrated by their weights
            calibrate = tuned.backend == "map"
            if tuned.calibration:
                extra["calibration"] = tuned.calibration
            fit = {"backend": tuned.backend, "n_components": clf.n_components,
                   "random_state": p["seed"]}
        else:
            clips = open_clips(data, config=config, options=opts, executor=ex, records=records,
                               **how)  # fmt: skip
            clips.config = _front_end(p["ubm_path"], ubm_config, clips.config, fixed=True)
            clf = fit_backend(clips.clips, clips.labels, executor=ex, progress=opts.progress,
                              n_jobs=jobs, **fit)  # fmt: skip
            clf.timing_ = {**clips.timing, **clf.timing_}
        if calibrate:
            extra["calibration"] = _calibrate(clf, clips, fit, ex)
    return clf, clips, extra


def _calibrate(clf, clips, fit: dict, ex) -> dict:
    """The held-out calibration block of ``fit`` (ml, map); a map model's --reject auto
    threshold (an ml model's follows from the block when the file is loaded)."""
    from ..selection.cv import calibrate_backend
    cal = calibrate_backend(clips.clips, clips.labels, executor=ex, **fit)
    threshold = calibrated_threshold(cal["slope"], cal["offset"], cal["p_target"])
    if threshold is None:
        logger.warning("calibration: the held-out scores do not rise with the target (slope "
                       "%.3g); no --reject auto threshold", cal["slope"])  # fmt: skip
    elif fit["backend"] == "map":  # stored in the file (ml's follows from the block on load)
        clf.threshold_ = threshold
    return cal


#: A fusion member's over-sized mixture: -k does not apply to fusions.
_MEMBER_ADVICE = "a fusion keeps each backend's default size: give more data, or fuse others"


def report_training(clf, backend: str, member: str = "") -> None:
    """Warn, one line each: classes whose EM did not converge; a mixture too large for its
    frames (each class's with ml, the UBM's otherwise); a class trained on a single file.
    ``member``: a fusion's member these are about (named first; no advice on -k)."""
    rep, pre = clf.fit_report_, member and f"{member}: "
    if not_conv := sorted(y for y, r in rep.items() if not r.get("converged", True)):
        logger.warning("%sEM did not converge within %s=%d for: %s", pre,
                       "its default max_iter" if member else "--max-iter",
                       max(rep[y].get("n_iter", 0) for y in not_conv),
                       ", ".join(escape_name(y) for y in not_conv))  # fmt: skip
    if backend == "ml":
        for y, r in rep.items():
            n = r.get("n_components", clf.n_components)
            if why := oversized_reason(r, n, **({"advice": _MEMBER_ADVICE} if member else {})):
                logger.warning("%sclass %s: %s", pre, escape_name(y), why)
    elif "n_frames" in getattr(clf, "ubm_report_", {}):
        advice = _MEMBER_ADVICE if member else "lower -k (the UBM size), or give more data"
        if why := oversized_reason(clf.ubm_report_, clf.n_components, advice=advice):
            logger.warning("%sthe UBM: %s", pre, why)
    if single := [escape_name(y) for y, r in rep.items() if r.get("n_clips") == 1]:
        logger.warning("%strained on a single file: %s (the model learns that recording, not "
                       "the class)", pre, ", ".join(single))  # fmt: skip


@click.command("tune")
@click.argument("data", type=click.Path(exists=True))
@options.split_options()
@options.feature_options(auto=True, default="auto")
@options.components_option("auto", "'auto': K per class of the ml candidates chosen by "
                           "clip-stratified cross-validation on the training files (the "
                           "backends' UBM: 64); a number K: ml models of K components per "
                           "class, with --backend ml.")
@click.option("--folds", type=click.IntRange(min=2), default=3, show_default=True,
              help="Clip-stratified cross-validation folds.")
@click.option("--backend", type=click.Choice(sorted(BACKENDS)),
              help="ml: compare ml models only, as `train --backend ml --preset auto "
              "--components auto` (needed with a number for -k). Without it, the default "
              f"backend ({DEFAULT_BACKEND}) is the base, as in `train`.")
@options.backends_option()
@options.run_options
@options.json_option
@click.pass_context
def tune(ctx, data, split, train_fraction, seed, preset, config_path, components, folds,
         backend, backends, as_json, **_):  # fmt: skip
    """Cross-validate front ends, K and backends on the training files; print the table.

    The same search as `train --preset auto --components auto`, on the training
    split only, without writing a model. --config FILE alone tunes the components
    of that front end (on the default preset)."""
    from ..pipeline.classify import load_split, skipped_list
    from ..selection import tune as cross_validate
    if preset == "auto" and config_path and options.given(ctx, "preset"):
        raise click.UsageError(options.AUTO_AND_CONFIG)
    if backend not in (None, "ml"):
        raise click.UsageError(f"tune chooses the backend (--backends lists those it tries); "
                               f"--backend {backend} fixes one: `train --backend {backend}`")
    backends = options.searched_backends(components, backend, backends)
    # a preset by name keeps its name in the table; --config FILE: on the default preset
    chosen = options.load_config(preset, config_path) if config_path else preset
    records = load_split(data, split, train_fraction=train_fraction, seed=seed)
    with options.executor([r.path for r in records], selection=True) as ex:
        result = cross_validate(records, preset=chosen, components=components, n_folds=folds,
                                options=options.command_options(), random_state=seed,
                                executor=ex, backends=backends)  # fmt: skip
    out = {"n_files": len(records), "selection": result.to_header(),
           "feature_config": result.config.to_dict(),
           "feature_configs": [c.to_dict() for c in result.member_configs] or None,
           "skipped": skipped_list(result.features)}  # fmt: skip
    echo_out(out, as_json)


@click.command("ubm")
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", required=True, type=options.OutputPath(dir_okay=False),
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
@click.option("--checkpoint", type=options.OutputPath(dir_okay=False),
              help="EM checkpoint file, written after every iteration (default: OUTPUT.ckpt.npz).")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint if it exists.")
@options.dask_option
@options.jobs_option
@options.json_option
def ubm(store, output, components, init, max_iter, subsample, seed, checkpoint, resume,
        as_json, **_):  # fmt: skip
    """Train a UBM on the frames of a shard store (`audiogmm extract DATA --shards STORE`).

    The UBM file records the store's front end; `audiogmm train DATA --backend map
    --ubm OUTPUT` adapts the classes from it."""
    from ..data.shards import open_store
    from ..io import EMCheckpoint, save
    from ..pipeline.sources import store_config
    st = open_store(store)
    try:
        extra = {"feature_config": store_config(st).to_dict()}
    except ModelFileError as e:  # an older store: the UBM is still usable with --preset
        logger.warning("%s; the UBM will not record its front end", e)
        extra = {}
    ckpt_path = checkpoint or output + ".ckpt.npz"  # by OUTPUT, whose folder is checked
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
    echo_out(out, as_json, f"UBM of {components} components on {out['n_frames']:,} frames, "
             f"{gmm.n_iter_} EM iterations{' (resumed)' if ckpt.resumed_from else ''} -> "
             f"{escape_name(output)}")  # fmt: skip


@click.command("extract")
@click.argument("data", type=click.Path(exists=True))
@options.feature_options()
@options.run_options
@click.option("--skipped-csv", type=options.OutputPath(dir_okay=False),
              help="Write the skipped files and reasons here.")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["cache", "kaldi"]), default="cache",
              show_default=True, help="cache: fill --cache DIR; kaldi: write "
              "feats.ark/feats.scp (+utt2spk) to --output DIR, for Kaldi tools and "
              "`audiogmm train DIR` (needs the kaldi extra).")  # fmt: skip
@click.option("-o", "--output", type=options.OutputPath(file_okay=False),
              help="Folder for --format kaldi.")
@click.option("--allow-pipes", is_flag=True, help="Run piped wav.scp entries ('cmd |') of a "
              "Kaldi DATA dir: shell commands written in a data file, so only for data you "
              "trust (--format kaldi).")  # fmt: skip
@click.option("--shards", "shards_dir", type=options.OutputPath(file_okay=False),
              help="Also write the features as a shard store here (for `audiogmm ubm`, Dask).")
@options.dask_option
@options.json_option
def extract(data, preset, config_path, cache_dir, skipped_csv, fmt, output, allow_pipes,
            shards_dir, as_json, **_):  # fmt: skip
    """Extract features of every file in DATA into the cache (re-runs skip done work)."""
    from ..data import extract_many
    from ..pipeline.classify import skipped_list
    config, opts = options.load_config(preset, config_path), options.command_options()
    failed = 0
    if fmt == "kaldi":
        from ..pipeline.sources import export_kaldi
        if not output:
            raise click.UsageError("--format kaldi needs --output DIR")
        out = export_kaldi(data, output, config=config, options=opts, allow_pipes=allow_pipes)
        text = (f"{out['n_utterances']} utterances ({out['n_frames']} frames) -> {out['scp']} "
                f"({len(out['skipped'])} skipped)")  # fmt: skip
    else:
        if not cache_dir:
            raise click.UsageError("extract needs --cache DIR (where the features go)")
        check_writable(cache_dir, folder=True)  # before the work, naming the user's path
        records = read_manifest(data)
        with options.executor([r.path for r in records]) as ex:
            res = extract_many(records, config=config, options=opts, executor=ex)
        if shards_dir:  # on top of the cache: the extracted (or cached) frames, in manifest order
            from ..data.shards import write_store
            write_store(shards_dir, ((r.path, r.label, res.features[r.path]) for r in records
                                     if r.path in res.features),
                        config_hash=config.content_hash(), config=config.to_json())  # fmt: skip
        if skipped_csv:
            res.write_skipped_csv(skipped_csv)
        failed = len(res.cache_errors)
        out = {"n_files": len(records), "n_extracted": res.n_extracted, "n_cached": res.n_cached,
               "cache_errors": res.cache_errors, "skipped": skipped_list(res),
               "n_frames": int(sum(x.shape[0] for x in res.features.values()))}  # fmt: skip
        text = (f"{len(res.features) - failed}/{len(records)} files ready in "
                f"{escape_name(cache_dir)} ({res.n_extracted - failed} extracted, {res.n_cached} "
                f"from cache, {len(out['skipped'])} skipped"
                + (f", {failed} not written" if failed else "") + ")")  # fmt: skip
    out["config_hash"] = config.content_hash()
    echo_out(out, as_json, text)
    if failed:  # the cache is this command's output: a missing entry is a failure
        raise click.ClickException(escape_name(
            f"could not write {failed} cache entries; first: {res.cache_errors[0]}"))
