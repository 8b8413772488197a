"""Option decorators shared by the commands (defined once), output helpers and the progress bar."""

from __future__ import annotations

import json
import os
import struct
import sys
from collections.abc import Iterable
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from ..data.splits import TRAIN_FRACTION
from ..features.presets import DEFAULT_PRESET, PRESETS
from .output import (
    escape_name,
    report_skipped,  # re-exported: the commands import it from here
)

if TYPE_CHECKING:
    from ..data.packs import FileFacts

__all__ = [
    "ProgressBar", "echo_json", "command_executor", "format_selection", "feature_options", "given",
    "jobs_option", "load_classifier", "json_option", "load_config", "plural", "progress_for",
    "refuse_given", "reject_option", "reject_threshold", "report_skipped", "run_options",
    "strict_option", "split_options", "tuning_options",
]  # fmt: skip


def feature_options(f, *, auto: bool = False, default: str = DEFAULT_PRESET):
    """``--preset NAME`` (``auto`` too when tuning) and ``--config FILE`` on top of it."""
    f = click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
                     help="FeatureConfig JSON file; its fields replace those of --preset (a "
                     'partial file such as {"n_mfcc": 13} changes only those).')(f)  # fmt: skip
    more = (", or 'auto': the default, another front end or a late fusion of up to three, chosen "
            "by clip-stratified cross-validation on the training files.")  # fmt: skip
    return click.option("--preset", type=click.Choice(sorted(PRESETS) + ["auto"] * auto),
                        default=default, show_default=True,
                        help="Named feature preset" + (more if auto else "."))(f)  # fmt: skip


def jobs_option(f):
    return click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
                        help="Parallel workers [default: all cores].")(f)  # fmt: skip


def run_options(f):
    f = click.option("--cache", "cache_dir", type=click.Path(file_okay=False),
                     help="Feature cache folder.")(f)  # fmt: skip
    return strict_option(jobs_option(f))


def _set_sample_limit(ctx, param, value):
    from ..audio import SAMPLE_LIMIT_ENV

    if value is not None:  # the environment carries it to worker processes too
        os.environ[SAMPLE_LIMIT_ENV] = str(value)


def strict_option(f):
    """``--strict`` and ``--max-samples`` (how bad and huge audio files are treated)."""
    from ..audio import MAX_SAMPLES, SAMPLE_LIMIT_ENV

    f = click.option(
        "--max-samples", type=click.IntRange(min=1), envvar=SAMPLE_LIMIT_ENV, expose_value=False,
        callback=_set_sample_limit, help=f"Longest audio file, in samples per channel (float32 "
        f"in memory). [default: {MAX_SAMPLES}, 70 min at 16 kHz, 23 min at 48 kHz; env: "
        f"{SAMPLE_LIMIT_ENV}]",
    )(f)  # fmt: skip
    return click.option("--strict", is_flag=True,
                        help="Fail on the first bad audio file instead of skipping it.")(f)  # fmt: skip


def split_options(default: str, *, stored: bool = False):
    """``--split``, ``--train-fraction``, ``--seed``.

    ``stored``: the model's stored split is the default (``evaluate``): the options
    default to None, and their help says so.
    """
    note = " [default: the model's stored split]" if stored else ""

    def deco(f):
        f = click.option("--split", default=default, show_default=True,
                         help="Which split to use ('all' for every file). Without a split column, "
                         "a stratified split is made from --train-fraction and --seed.")(f)  # fmt: skip
        f = click.option("--train-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True),
                         default=None if stored else TRAIN_FRACTION, show_default=not stored,
                         help="Share of each label's files that go to 'train' when DATA has no "
                         "split column." + note)(f)  # fmt: skip
        return click.option("--seed", type=int, default=None if stored else 0, show_default=not stored,
                            help=("Seed of the split." if stored else "Seed for the split and "
                                  "training.") + note)(f)  # fmt: skip

    return deco


def _reject_value(ctx, param, value):
    if value is None or value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise click.BadParameter(f"must be 'auto' or a number; got {value!r}") from None


def reject_option(f):
    """``--reject auto|THRESHOLD`` (open set: map, gsv and ivector models)."""
    return click.option(
        "--reject", default=None, metavar="auto|THRESHOLD", callback=_reject_value,
        help="Open set (--backend map, gsv, ivector models): answer 'unknown' when the best "
        "class's LLR is below THRESHOLD (map: per frame, against the UBM; gsv, ivector: "
        "calibrated, against the other classes), or below the model's threshold (auto: map's "
        "calibrated in training, gsv's and ivector's 0, the Bayes threshold at equal priors).",
    )(f)  # fmt: skip


def given(ctx: click.Context, name: str) -> bool:
    """Whether the user typed option ``name`` (not its default)."""
    src = ctx.get_parameter_source(name)
    return src is not None and src != click.core.ParameterSource.DEFAULT


def refuse_given(ctx: click.Context, names: Iterable[str], why: str) -> None:
    """A usage error naming the first option of ``names`` the user typed: it ``why``."""
    for p in ctx.command.params:
        if p.name in names and given(ctx, p.name):
            flag = max(p.opts, key=len)
            raise click.UsageError(f"{flag} {why}", ctx)


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 class``, ``2 classes``."""
    return f"{n} {word if n == 1 else words or word + 's'}"


def load_classifier(path: str):
    """The model bundle at ``path``; a UBM (a single mixture) says how to use it instead."""
    from ..exceptions import ModelFileError
    from ..io.container import read_kind
    from ..pipeline import load_model

    try:
        kind = read_kind(path)
    except ModelFileError:
        kind = None  # load_model says what is wrong with it
    if kind == "DiagGMM":
        raise click.ClickException(
            f"{escape_name(path)}: a single mixture (e.g. a UBM from `audiogmm ubm`), not a "
            "classifier; adapt classes from it with `audiogmm train DATA --backend map --ubm "
            f"{escape_name(path)}`"
        )
    return load_model(path)


def reject_threshold(clf: Any, reject: str | float | None) -> float | None:
    """The threshold ``--reject`` asks of ``clf`` (checked before any work): a per-frame
    LLR for map models, a calibrated LLR for gsv and ivector ones."""
    from ..exceptions import ParameterError
    from ..pipeline.classify import can_reject

    if reject is None:
        return None
    if not can_reject(clf):
        raise click.UsageError("--reject needs a model trained with --backend map, gsv or ivector")
    if reject == "auto" and getattr(clf, "threshold_", 0) is None:  # a map model without one
        raise click.ClickException(
            "--reject auto needs a calibrated threshold, which this model has not: train it "
            "with --backend map --reject-far F (e.g. 0.05), or give --reject a number"
        )
    try:
        return clf.resolve_threshold(reject)
    except ParameterError as e:
        raise click.ClickException(str(e)) from None


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")(f)


def echo_json(obj: Any) -> None:
    """``obj`` as one line of strict JSON (sorted keys; NaN and infinities as null)."""
    from ..pipeline.report import json_dumps

    click.echo(json_dumps(obj))


def load_config(preset: str | None, config_path: str | None):
    """The FeatureConfig of ``--preset NAME``, with the fields of ``--config FILE`` on top.

    A partial ``--config`` (e.g. ``{"n_mfcc": 13}``) changes only its fields of the
    chosen preset (of the default one when the preset is ``auto``).
    """
    from ..exceptions import ParameterError
    from ..features import FeatureConfig

    base = FeatureConfig() if preset in (None, "auto") else FeatureConfig.preset(preset)
    if not config_path:
        return base
    with open(config_path, "rb") as fh:
        raw = fh.read(1 << 20)
    try:
        fields = json.loads(raw)
        if not isinstance(fields, dict):
            raise ParameterError(f"expected a JSON object of FeatureConfig fields, got {raw[:40]!r}")
        return base.replace(**fields)
    except (ValueError, UnicodeDecodeError, RecursionError, TypeError) as e:  # name the file
        raise ParameterError(f"{config_path!r}: {e}") from None


def _audio_seconds(facts: FileFacts, path: str) -> float:
    """Seconds of audio in ``path`` by its header, kept in ``facts``
    (:class:`~audiogmm.data.packs.FileFacts`); 0 for a file that cannot be read."""
    from ..audio import info
    from ..exceptions import AudioError

    try:
        raw = facts.get(path, "duration_s", 8, lambda p: struct.pack("<d", info(p).duration_s))
    except AudioError:  # extraction reports the file; it adds no work
        return 0.0
    return struct.unpack("<d", raw)[0]


@contextmanager
def command_executor(
    paths: Iterable[str], jobs: int | None, cache_dir: str | os.PathLike | None = None
):  # fmt: skip
    """The command's one executor, for the work on the audio files ``paths``, then closed.

    Threads, or worker processes when the estimated work (audio duration from the
    files' headers, kept in the feature cache ``cache_dir`` for the next command) is
    large enough to pay for starting them
    (:func:`audiogmm.engine.policy.plan`; the choice is logged at ``-v``). BLAS runs
    on one thread for the whole command: parallelism comes from the executor, and
    the many small products of training (k-means, M-steps) are slower on a waking
    BLAS pool.
    """
    from ..data.packs import FileFacts
    from ..engine import default_workers, one_blas_thread
    from ..engine.policy import PROCESS_MIN_AUDIO_S, count_until, executor_for_work

    work = 0.0
    if (jobs or default_workers()) > 1:  # with one worker there is nothing to decide
        with FileFacts(cache_dir) as facts:
            seconds = (_audio_seconds(facts, p) for p in paths)
            work = count_until(seconds, PROCESS_MIN_AUDIO_S)
    with executor_for_work(work, jobs) as ex, one_blas_thread():
        yield ex


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
        # by what was done, not by calls: work reported in jumps (cached files, classes
        # finishing together) must not leave the bar, and its ETA, behind
        self._bar.update(max(0, done - self._bar.pos))
        if done >= total:
            self._close()


def progress_for(ctx: click.Context) -> ProgressBar | None:
    """A progress bar when stderr is a terminal and the user did not ask for quiet."""
    if ctx.obj["verbosity"] < 0 or not sys.stderr.isatty():
        return None
    return ProgressBar()


# -- model selection (--preset auto, --components auto) ------------------------------------

AUTO_AND_CONFIG = "--config gives one front end and --preset auto chooses among several: give one"


class _Components(click.ParamType):
    """An int >= 1 or ``auto``."""

    name = "K|auto"

    def convert(self, value, param, ctx):
        if isinstance(value, int) or value == "auto":
            return value
        try:
            k = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is neither an integer >= 1 nor 'auto'", param, ctx)
        if k < 1:
            self.fail(f"{k} is not >= 1 (or 'auto')", param, ctx)
        return k


def tuning_options(
    *, components_default, components_help: str | None = None, preset_default=DEFAULT_PRESET
):
    """``--preset`` (a preset or ``auto``), ``--config``, ``--components`` (K or ``auto``).

    ``components_default`` None: the command resolves it (``components_help`` says how).
    """

    def deco(f):
        f = click.option(
            "--components", "-k", type=_Components(), default=components_default,
            show_default=components_default is not None, help=components_help
            or "Components per class, or 'auto': per-class K (or one K) chosen by "
            "clip-stratified cross-validation on the training files.",
        )(f)  # fmt: skip
        return feature_options(f, auto=True, default=preset_default)

    return deco


def format_selection(sel: dict[str, Any]) -> str:
    """The cross-validation table of a ``selection`` record (train, tune, info), as text."""
    rows = [(escape_name(r["front_end"])[:40], escape_name(r["components"])[:12], r)
            for r in sel["table"]]  # fmt: skip
    w = max([11, *(len(f) for f, _, _ in rows)])
    lines = [
        f"model selection: {sel['n_folds']}-fold CV by clip on the training files "
        f"(EM <= {sel['cv_max_iter']} iterations per fit, {sel['seconds']:.1f} s)",
        f"  {'stage':<11} {'front end':<{w}} {'components':<10} {'accuracy':>8} {'SE':>6}  "
        f"{'95% Wilson':<15} {'clips':>9}",
    ]
    for fe, comp, r in rows:
        mark = " *" if r.get("chosen") else ""
        p, n = r["accuracy"], max(1, r["n"])
        se = (p * (1 - p) / n) ** 0.5 if 0 <= p <= 1 else float("nan")  # binomial
        lines.append(
            f"  {escape_name(r['stage'])[:11]:<11} {fe:<{w}} {comp:<10} {p:>8.3f} {se:>6.3f}  "
            f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}] {r['correct']:>4}/{r['n']:<4}{mark}"
        )
    ks = sorted(set(sel["n_components"].values()))
    k_text = str(ks[0]) if len(ks) == 1 else f"{ks[0]}-{ks[-1]} per class"
    backend = sel.get("backend", "ml")
    lines.append(
        f"chosen: front end {escape_name(sel['front_end'])}, components "
        f"{escape_name(sel['components_rule'])} "
        f"(K = {k_text})" + ("" if backend == "ml" else f", backend {escape_name(backend)}")
    )
    return "\n".join(lines)
