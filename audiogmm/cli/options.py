"""Option decorators shared by the commands (defined once), output helpers and the progress bar."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ..data.splits import TRAIN_FRACTION
from ..features.config import PRESETS
from .output import report_skipped  # re-exported: the commands import it from here

__all__ = [
    "ProgressBar",
    "echo_json",
    "feature_options",
    "jobs_option",
    "json_option",
    "load_config",
    "progress_for",
    "report_skipped",
    "run_options",
    "split_options",
]


def feature_options(f):
    f = click.option(
        "--config",
        "config_path",
        type=click.Path(exists=True, dir_okay=False),
        help="FeatureConfig JSON file (overrides --preset).",
    )(f)
    f = click.option(
        "--preset",
        type=click.Choice(sorted(PRESETS)),
        default="speech",
        show_default=True,
        help="Named feature preset.",
    )(f)
    return f


def jobs_option(f):
    return click.option(
        "--jobs",
        "-j",
        type=click.IntRange(min=1),
        default=None,
        help="Parallel workers [default: all cores].",
    )(f)


def run_options(f):
    f = click.option(
        "--cache", "cache_dir", type=click.Path(file_okay=False), help="Feature cache folder."
    )(f)
    f = jobs_option(f)
    f = click.option(
        "--strict", is_flag=True, help="Fail on the first bad audio file instead of skipping it."
    )(f)
    return f


def split_options(default: str):
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
            default=TRAIN_FRACTION,
            show_default=True,
            help="Share of each label's files that go to 'train' when DATA has no split column.",
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


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")(
        f
    )


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, sort_keys=True, default=str))


def load_config(preset: str, config_path: str | None):
    """The FeatureConfig of ``--config FILE`` (if given) or ``--preset NAME``."""
    from ..features import FeatureConfig

    if config_path:
        from ..exceptions import ParameterError

        with open(config_path, encoding="utf-8") as fh:
            try:
                return FeatureConfig.from_json(fh.read())
            except (ValueError, UnicodeDecodeError) as e:  # name the user's file
                raise ParameterError(f"{config_path!r}: {e}") from None
    return FeatureConfig.preset(preset)


class ProgressBar:
    """A ``progress(n_done, n_total, label)`` callback drawing one click bar per label on stderr."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._label: str | None = None

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None

    def __call__(self, done: int, total: int, label: str) -> None:
        if label != self._label or self._bar is None:
            self._close()
            self._label = label
            self._bar = click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True)
            self._bar.__enter__()
        self._bar.update(1)
        if done >= total:
            self._close()


def progress_for(ctx: click.Context) -> ProgressBar | None:
    """A progress bar when stderr is a terminal and the user did not ask for quiet."""
    if ctx.obj["verbosity"] < 0 or not sys.stderr.isatty():
        return None
    return ProgressBar()
