"""The ``audiogmm`` command line: extract, train, evaluate, predict, info.

Every command parses its options, calls the library, and prints: human output
on stdout, ``--json`` output with sorted keys, logs and progress bars on stderr.
Exit codes: 0 success, 1 error (bad data, bad model file, ...), 2 usage error.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from typing import Any

import click

from ._version import __version__
from .exceptions import AudioGMMError, ConvergenceWarning

__all__ = ["main", "run_recipe"]

logger = logging.getLogger("audiogmm")

EXIT_CODES = "Exit codes: 0 success; 1 error (bad data, unreadable model, ...); 2 usage error."


class _Group(click.Group):
    """Turns library errors into one clear line and exit code 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AudioGMMError as e:
            raise click.ClickException(str(e)) from e
        except BrokenPipeError:  # e.g. `audiogmm info m.npz | head`: not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        except OSError as e:  # e.g. an output folder we may not write to
            raise click.ClickException(f"{type(e).__name__}: {e}") from e


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, sort_keys=True, default=str))


# -- shared options (defined once) ----------------------------------------------------------


def _feature_options(f):
    f = click.option(
        "--config",
        "config_path",
        type=click.Path(exists=True, dir_okay=False),
        help="FeatureConfig JSON file (overrides --preset).",
    )(f)
    f = click.option(
        "--preset",
        type=click.Choice(["speech", "dcase2016", "librosa"]),
        default="speech",
        show_default=True,
        help="Named feature preset.",
    )(f)
    return f


def _jobs_option(f):
    return click.option(
        "--jobs",
        "-j",
        type=click.IntRange(min=1),
        default=None,
        help="Parallel workers [default: all cores].",
    )(f)


def _run_options(f):
    f = click.option(
        "--cache", "cache_dir", type=click.Path(file_okay=False), help="Feature cache folder."
    )(f)
    f = _jobs_option(f)
    f = click.option(
        "--strict", is_flag=True, help="Fail on the first bad audio file instead of skipping it."
    )(f)
    return f


def _split_options(default: str):
    def deco(f):
        f = click.option(
            "--split",
            default=default,
            show_default=True,
            help="Which split to use ('all' for every file). Without a split column, a "
            "stratified split is made from --train-fraction and --seed.",
        )(f)
        f = click.option(
            "--train-fraction",
            type=click.FloatRange(0, 1, min_open=True, max_open=True),
            default=0.7,
            show_default=True,
        )(f)
        f = click.option(
            "--seed",
            type=int,
            default=0,
            show_default=True,
            help="Seed for the split and training.",
        )(f)
        return f

    return deco


def _json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")(
        f
    )


def _progress(ctx: click.Context) -> bool | None:
    return False if ctx.obj["verbosity"] < 0 else None


def _load_config(preset: str, config_path: str | None):
    from .features import FeatureConfig

    if config_path:
        with open(config_path, encoding="utf-8") as fh:
            return FeatureConfig.from_json(fh.read())
    return FeatureConfig.preset(preset)


def _report_skipped(skipped: list[dict[str, str]]) -> None:
    if skipped:
        click.echo(f"skipped {len(skipped)} file(s):", err=True)
        for s in skipped[:20]:
            click.echo(f"  {s['path']}: {s['reason']}", err=True)
        if len(skipped) > 20:
            click.echo(f"  ... and {len(skipped) - 20} more", err=True)


# -- the group -------------------------------------------------------------------------------


@click.group(
    cls=_Group, epilog=EXIT_CODES, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(__version__, prog_name="audiogmm")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (repeatable).")
@click.option("-q", "--quiet", count=True, help="Less output: no progress bars, warnings only.")
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: int) -> None:
    """Gaussian mixture models for audio: train per-class GMMs on MFCCs and classify clips.

    DATA is a folder with one sub-folder per label, a CSV file with columns
    path,label[,split] (paths relative to the CSV), or a Kaldi data directory
    (wav.scp + utt2spk).
    """
    level = verbose - quiet
    logging.basicConfig(
        level={-1: logging.WARNING, 0: logging.WARNING, 1: logging.INFO}.get(
            level, logging.DEBUG if level > 1 else logging.ERROR
        ),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # library warnings become one log line on stderr, without the source-line echo
    warnings.showwarning = lambda message, category, *args, **kw: logger.warning(
        "%s: %s", category.__name__, message
    )
    ctx.obj = {"verbosity": level}


def _command(**kw):
    return main.command(epilog=EXIT_CODES, **kw)


@_command()
@click.argument("data", type=click.Path(exists=True))
@_feature_options
@_run_options
@click.option(
    "--skipped-csv",
    type=click.Path(dir_okay=False),
    help="Write the skipped files and reasons here.",
)
@_json_option
@click.pass_context
def extract(ctx, data, preset, config_path, cache_dir, jobs, strict, skipped_csv, as_json):
    """Extract features of every file in DATA into the cache (re-runs skip done work)."""
    from .cache import extract_many
    from .datasets import read_manifest

    if not cache_dir:
        raise click.UsageError("extract needs --cache DIR (where the features go)")
    config = _load_config(preset, config_path)
    records = read_manifest(data)
    res = extract_many(
        records,
        config=config,
        cache_dir=cache_dir,
        n_jobs=jobs,
        strict=strict,
        progress=_progress(ctx),
    )
    if skipped_csv:
        res.write_skipped_csv(skipped_csv)
    skipped = [{"path": s.path, "reason": s.reason} for s in res.skipped]
    out = {
        "n_files": len(records),
        "n_extracted": res.n_extracted,
        "n_cached": res.n_cached,
        "n_frames": int(sum(x.shape[0] for x in res.features.values())),
        "skipped": skipped,
        "config_hash": config.content_hash(),
    }
    if as_json:
        _echo_json(out)
        return
    _report_skipped(skipped)
    click.echo(
        f"{len(res.features)}/{len(records)} files ready in {cache_dir} "
        f"({res.n_extracted} extracted, {res.n_cached} from cache, {len(skipped)} skipped)"
    )


@_command()
@click.argument("data", type=click.Path(exists=True))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="Model file to write (.npz).",
)
@_split_options("train")
@_feature_options
@click.option(
    "--components",
    "-k",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Components per class.",
)
@click.option(
    "--init", type=click.Choice(["split", "kmeans++"]), default="kmeans++", show_default=True
)
@click.option("--max-iter", type=click.IntRange(min=0), default=100, show_default=True)
@_run_options
@_json_option
@click.pass_context
def train(
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
    from .pipeline import load_split, train_classifier

    config = _load_config(preset, config_path)
    records = load_split(data, split, train_fraction=train_fraction, seed=seed)
    # per-class ConvergenceWarnings are summarised below, naming the classes
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    clf, res = train_classifier(
        records,
        config=config,
        n_components=components,
        cache_dir=cache_dir,
        n_jobs=jobs,
        progress=_progress(ctx),
        strict=strict,
        random_state=seed,
        init=init,
        max_iter=max_iter,
    )
    not_conv = sorted(y for y, r in clf.fit_report_.items() if not r["converged"])
    if not_conv:
        logger.warning(
            "EM did not converge within --max-iter=%d for: %s", max_iter, ", ".join(not_conv)
        )
    clf.save(output)
    skipped = [{"path": s.path, "reason": s.reason} for s in res.skipped]
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
        _echo_json(out)
        return
    _report_skipped(skipped)
    click.echo(
        f"trained {len(clf.labels_)} classes x {components} components on {out['n_files']} files "
        f"({clf.n_dims}-dim features) in {sum(clf.timing_.values()):.1f} s -> {output}"
    )


@_command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("data", type=click.Path(exists=True))
@_split_options("test")
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False),
    help="Write metrics.json, confusion.txt/.png here.",
)
@_run_options
@_json_option
@click.pass_context
def evaluate(
    ctx, model, data, split, train_fraction, seed, report_dir, cache_dir, jobs, strict, as_json
):
    """Classify the labelled files of DATA with MODEL and report accuracy."""
    from .classifier import GMMClassifier
    from .pipeline import evaluate_classifier, load_split

    clf = GMMClassifier.load(model)
    records = load_split(data, split, train_fraction=train_fraction, seed=seed)
    res = evaluate_classifier(
        clf, records, cache_dir=cache_dir, n_jobs=jobs, progress=_progress(ctx), strict=strict
    )
    if report_dir:
        from .report import write_report

        write_report(report_dir, res)
    if as_json:
        _echo_json({k: v for k, v in res.items() if k != "predictions"})
        return
    from .report import format_confusion

    _report_skipped(res["skipped"])
    click.echo(format_confusion(res["confusion"]["labels"], res["confusion"]["matrix"]), nl=False)
    click.echo(
        f"accuracy: {100 * res['accuracy']:.2f}% ({res['n']} files, {len(res['skipped'])} skipped)"
    )


@_command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Show the N best classes.",
)
@_jobs_option
@_json_option
@click.pass_context
def predict(ctx, model, files, top, jobs, as_json):
    """Classify audio FILES with MODEL (features are extracted exactly as in training)."""
    from .classifier import GMMClassifier
    from .pipeline import predict_files

    clf = GMMClassifier.load(model)
    res = predict_files(clf, files, top=top, n_jobs=jobs, progress=_progress(ctx))
    if as_json:
        _echo_json(res)
    else:
        for r in res["results"]:
            alts = "  ".join(f"{t['label']}:{t['posterior']:.3f}" for t in r["top"])
            click.echo(f"{r['path']}\t{r['label']}" + (f"\t{alts}" if top > 1 else ""))
        _report_skipped(res["skipped"])
    if not res["results"]:
        raise click.ClickException("no file could be classified")


@_command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@_json_option
def info(model, as_json):
    """Describe a model file: labels, sizes, feature config, training summary."""
    from .classifier import GMMClassifier

    clf = GMMClassifier.load(model)
    header = clf.file_header_
    out = {
        "file": os.path.abspath(model),
        "format_version": header["format_version"],
        "audiogmm_version": header["audiogmm_version"],
        "labels": clf.labels_,
        "n_components": int(clf.means_.shape[1]),
        "n_dims": clf.n_dims,
        "feature_config": clf.config.to_dict(),
        "feature_config_hash": clf.config.content_hash(),
        "training": header.get("training", {}),
    }
    if as_json:
        _echo_json(out)
        return
    click.echo(f"file:          {out['file']}")
    click.echo(
        f"format:        audiogmm v{out['format_version']} (written by {out['audiogmm_version']})"
    )
    click.echo(f"classes:       {len(clf.labels_)}: {', '.join(clf.labels_)}")
    click.echo(f"mixtures:      {out['n_components']} diagonal components x {out['n_dims']} dims")
    cfg = clf.config
    click.echo(
        f"features:      {cfg.sample_rate} Hz, {cfg.win_ms:g}/{cfg.hop_ms:g} ms, {cfg.n_mels} mels, "
        f"{cfg.n_mfcc} MFCC, deltas {cfg.delta_order}, VAD {'on' if cfg.vad else 'off'}, "
        f"CMVN {cfg.cmvn} (hash {out['feature_config_hash']})"
    )
    for y, r in sorted(out["training"].items()):
        click.echo(
            f"  {y:<20} {r.get('n_clips', '?'):>5} clips {r.get('n_frames', '?'):>8} frames  "
            f"{r.get('n_iter', '?'):>3} it  ll/frame {r.get('final_mean_loglik', float('nan')):.3f}"
        )


def run_recipe(command: click.Command) -> None:
    """Run a recipe's click command with the CLI's error handling (one line, exit 1)."""
    try:
        command.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(1)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except (AudioGMMError, OSError) as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(1)
