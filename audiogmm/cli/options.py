"""What the commands share: option decorators (each defined once), run helpers, the progress
bar, and output (escaped names, the skipped list, JSON, the cross-validation table).

Human output is one line per file, tab-separated, so :func:`escape_name` writes control,
format and line-separator characters of a name C-style (``\\n``, ``\\x1b``, ``\\u2028``),
and undecodable bytes (surrogate escapes) as ``\\xNN``. Everything else, backslashes
included, is left as it is (Windows paths read unchanged). ``--json`` keeps names exact."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import struct
import sys
import unicodedata
import warnings
from collections.abc import Iterable
from typing import Any

import click

from ..audio import MAX_SAMPLES, SAMPLE_LIMIT_ENV
from ..data.splits import TRAIN_FRACTION
from ..engine import LocalExecutor, default_workers, one_blas_thread
from ..exceptions import AudioError, ModelFileError, ParameterError
from ..features import FeatureConfig
from ..features.config import DEFAULT_PRESET, PRESETS
from ..io.atomic import check_writable

logger = logging.getLogger("audiogmm")
AUTO_AND_CONFIG = "--config gives one front end and --preset auto chooses among several: give one"


def stack(*decorators):
    """One decorator of ``decorators``, the first one's option first in ``--help``."""
    return lambda f: functools.reduce(lambda g, d: d(g), reversed(decorators), f)


def _set_sample_limit(ctx, param, value):
    if value is not None:  # the environment carries it to worker processes too
        os.environ[SAMPLE_LIMIT_ENV] = str(value)


def _check_dask(ctx, param, value):
    from ..engine.dask import parse_spec
    try:
        return value and parse_spec(value) and value  # the spec as given, once checked
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


class OutputPath(click.Path):
    """An output file (a folder with ``file_okay=False``), checked writable as it is parsed,
    so before any work (:func:`audiogmm.io.atomic.check_writable`), by a probe in its nearest
    existing folder: the write makes the missing ones, so a usage error leaves none behind."""

    def convert(self, value, param, ctx):
        value = super().convert(value, param, ctx)
        if not (ctx and ctx.resilient_parsing):  # shell completion probes nothing
            check_writable(value, folder=not self.file_okay, create=False)
        return value


def _auto_or(convert, what: str, minimum: float = -float("inf")):
    """A callback passing None and ``auto`` through, and ``convert``-ing the rest."""

    def callback(ctx, param, value):
        if value is None or value == "auto":
            return value
        with contextlib.suppress(ValueError):
            if convert(value) >= minimum:
                return convert(value)
        raise click.BadParameter(f"must be 'auto' or {what}; got {value!r}")
    return callback


class Members(click.ParamType):
    """``NAME``, or ``NAME+NAME...``: one per member of a late fusion (at most ``most``), each
    one of ``choices``; ``alone`` names may not be joined. The value stays the string given."""

    name = "members"

    def __init__(self, choices: Iterable[str], most: int = 1, alone: Iterable[str] = ()) -> None:
        self.choices, self.most, self.alone = list(choices), most, set(alone)

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "[" + "|".join(self.choices) + "]" + ("[+...]" if self.most > 1 else "")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        parts = str(value).split("+")
        if bad := [p for p in parts if p not in self.choices]:
            self.fail(f"{bad[0]!r} is not one of {', '.join(map(repr, self.choices))}"
                      + (" (members of a fusion joined by '+')" if self.most > 1 else ""),
                      param, ctx)  # fmt: skip
        if len(parts) > 1 and (self.most < 2 or self.alone.intersection(parts)):
            self.fail(f"{value!r}: " + (f"{sorted(self.alone.intersection(parts))[0]!r} cannot be "
                      "joined with another" if self.most > 1 else "one name only"), param, ctx)
        if len(parts) > self.most:
            self.fail(f"{value!r}: a fusion has at most {self.most} members", param, ctx)
        return str(value)


json_option = click.option("--json", "as_json", is_flag=True,
                           help="Machine-readable JSON on stdout.")
jobs_option = click.option("--jobs", "-j", type=click.IntRange(min=1),
                           help="Parallel workers [default: all cores].")  # fmt: skip
#: ``--strict`` and ``--max-samples``: how bad and huge audio files are treated.
strict_option = stack(
    click.option("--strict", is_flag=True,
                 help="Fail on the first bad audio file instead of skipping it."),
    click.option("--max-samples", type=click.IntRange(min=1), envvar=SAMPLE_LIMIT_ENV,
                 expose_value=False, callback=_set_sample_limit, help="Longest audio file, in "
                 f"samples per channel (float32 in memory). [default: {MAX_SAMPLES}, 70 min at 16 "
                 f"kHz, 23 min at 48 kHz; env: {SAMPLE_LIMIT_ENV}]"))  # fmt: skip
run_options = stack(strict_option, jobs_option, click.option(
    "--cache", "cache_dir", type=click.Path(file_okay=False), help="Feature cache folder."))
dask_option = click.option(
    "--dask", "dask_spec", metavar="local:N|tcp://HOST:PORT", callback=_check_dask,
    help="Run on Dask: a LocalCluster of N worker processes, or a running scheduler.")
#: ``--reject auto|THRESHOLD`` (open set: any model).
reject_option = click.option(
    "--reject", metavar="auto|THRESHOLD", callback=_auto_or(float, "a number"),
    help="Open set: 'unknown' when the best class's LLR (map: per frame against the UBM; ml: "
    "per frame against the other classes; gsv, ivector and fusions: calibrated, against the "
    "other classes) is below THRESHOLD, or the model's (auto: map's and a calibrated ml "
    "model's from training; gsv, ivector and fusions: 0, the Bayes one).")


def feature_options(*, auto: bool = False, default: str = DEFAULT_PRESET, fuse: int = 1):
    """``--preset NAME`` (``auto`` too when tuning; ``NAME+NAME`` for a fusion of up to
    ``fuse`` members) and ``--config FILE`` on top of it."""
    more = (", or 'auto': the default, another front end or a late fusion of up to three, chosen "
            "by clip-stratified cross-validation on the training files")  # fmt: skip
    joined = "; or one per member of a late fusion, joined by '+' (see --backend)"
    return stack(
        click.option("--preset", type=Members(sorted(PRESETS) + ["auto"] * auto, fuse, ["auto"]),
                     default=default, show_default=True,
                     help="Named feature preset" + (more if auto else "") + (joined if fuse > 1
                                                                            else "") + "."),
        click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
                     help="FeatureConfig JSON file; its fields replace those of --preset (a "
                     'partial file such as {"n_mfcc": 13} changes only those).'))  # fmt: skip


def split_options(*, stored: bool = False):
    """``--split`` (``train``), ``--train-fraction``, ``--seed``; ``stored``: ``evaluate``'s,
    ``--split test`` and the model's stored split the default, so the last two default to None."""
    note = " [default: the model's stored split]" if stored else ""
    return stack(
        click.option("--seed", type=int, default=None if stored else 0, show_default=not stored,
                     help=("Seed of the split." if stored else "Seed for the split and "
                           "training.") + note),
        click.option("--train-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True),
                     default=None if stored else TRAIN_FRACTION, show_default=not stored,
                     help="Share of each label's files that go to 'train' when DATA has no "
                     "split column." + note),
        click.option("--split", default="test" if stored else "train", show_default=True,
                     help="Which split to use ('all' for every file). Without a split column, "
                     "a stratified split is made from --train-fraction and --seed."))  # fmt: skip


def components_option(default: str | None, help: str):
    """``--components K|auto`` (``-k``); ``default`` None: the command resolves K."""
    return click.option("--components", "-k", metavar="K|auto", default=default, help=help,
                        callback=_auto_or(int, "an integer >= 1", minimum=1),
                        show_default=default is not None)  # fmt: skip


def _backends(ctx, param, value):
    """``auto``, ``none`` or a comma list of backends other than ml -> "auto" or a tuple; not
    given, None (:func:`~audiogmm.selection.tune`'s own default)."""
    from ..models import BACKENDS
    if value is None or value == "auto":
        return value
    names = [] if value == "none" else [v.strip() for v in value.split(",")]
    known = sorted(set(BACKENDS) - {"ml"})
    bad = [v for v in names if v not in known]
    if bad or len(set(names)) != len(names) or (value != "none" and not names):
        raise click.BadParameter(f"expected auto, none, or backends among {', '.join(known)} "
                                 f"joined by commas, once each; got {value!r}", ctx, param)
    return tuple(names)


def backends_option():
    """``--backends auto|none|A,B``: the backends ``--preset auto --components auto`` tries."""
    return click.option(
        "--backends", callback=_backends, metavar="auto|none|LIST",
        help="Backends that --preset auto / --components auto cross-validate beside the ml "
        "choice (one UBM of 64 per fold). auto: gsv on the default front end, the base the "
        "others must beat (the ml choice by 2 standard errors), and gsv on the speaker front "
        "end too (by 1) under --preset auto when no file is sampled above 16 kHz; LIST names "
        "them, e.g. map,gsv (gsv listed: the base); none: the ml choice alone.  "
        "[default: auto; with --backend ml, none]")


def searched_backends(components: str | int | None, backend: str | None,
                      backends: tuple[str, ...] | str | None) -> tuple[str, ...] | str | None:
    """What ``--preset auto`` / ``--components auto`` (``train``, ``tune``) try beside the ml
    models, as :func:`~audiogmm.selection.tune`'s ``backends``: ``--backends`` as given, or
    none with ``--backend ml`` (``backend``; None: not given) unless ``--backends`` lists some.
    A number for ``-k`` sets only the ml models' K per class, which the default backend (the
    base) does not read: a usage error without ``--backend ml``."""
    from ..models import DEFAULT_BACKEND
    from ..models.ubm import UBM_COMPONENTS
    if components not in (None, "auto") and backend != "ml":
        raise click.UsageError(
            f"-k {components} sets the ml models' K per class, but auto also compares the default "
            f"backend, {DEFAULT_BACKEND}, at a UBM of {UBM_COMPONENTS}: give --backend ml (ml "
            "models alone), or -k auto")  # fmt: skip
    return () if backend == "ml" and backends is None else backends


def given(ctx: click.Context, name: str) -> bool:
    """Whether the user typed option ``name`` (not its default)."""
    return ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)


def refuse_given(ctx: click.Context, names: Iterable[str], why: str) -> None:
    """A usage error naming the first option of ``names`` the user typed: it ``why``."""
    for p in ctx.command.params:
        if p.name in names and given(ctx, p.name):
            raise click.UsageError(f"{max(p.opts, key=len)} {why}", ctx)


def load_classifier(path: str):
    """The model bundle at ``path``; a UBM (a single mixture) says how to use it instead."""
    from ..io.container import read_kind
    from ..pipeline import load_model
    with contextlib.suppress(ModelFileError):  # else load_model says what is wrong with it
        if read_kind(path) == "DiagGMM":
            raise click.ClickException(
                f"{escape_name(path)}: a single mixture (e.g. a UBM from `audiogmm ubm`), not a "
                "classifier; adapt classes from it with `audiogmm train DATA --backend map "
                f"--ubm {escape_name(path)}`")  # fmt: skip
    return load_model(path)


def reject_threshold(clf: Any, reject: str | float | None) -> float | None:
    """The threshold ``--reject`` asks of ``clf`` (checked before any work): a per-frame
    LLR for map and ml models (ml: against the other classes), a calibrated LLR for gsv,
    ivector and fused ones."""
    if reject is None:
        return None
    try:
        return clf.resolve_threshold(reject)
    except ParameterError as e:  # auto, and the model has no threshold: say how to get one
        if reject != "auto":
            raise click.UsageError(str(e)) from None
        how = {"GMMClassifier": "train it with --calibrate (or --preset auto)",
               "UBMClassifier": "train it with --backend map --reject-far F (e.g. 0.05) or "
                                "--calibrate"}.get(type(clf).__name__)  # fmt: skip
        raise click.ClickException(f"--reject auto needs a calibrated threshold, which this "
                                   f"model has not: {how}, or give --reject a number" if how
                                   else str(e)) from None  # fmt: skip


def load_config(preset: str | None, config_path: str | None):
    """The FeatureConfig of ``--preset NAME`` (the default one for ``auto``), with the fields
    of ``--config FILE`` on top (a partial file such as ``{"n_mfcc": 13}`` changes only those)."""
    base = FeatureConfig() if preset in (None, "auto") else FeatureConfig.preset(preset)
    if not config_path:
        return base
    with open(config_path, "rb") as fh:
        raw = fh.read(1 << 20)
    try:
        fields = json.loads(raw)
        if not isinstance(fields, dict):
            raise ParameterError("expected a JSON object of FeatureConfig fields, got "
                                 f"{raw[:40]!r}")
        return base.replace(**fields)
    except (ValueError, UnicodeDecodeError, RecursionError, TypeError) as e:  # name the file
        raise ParameterError(f"{config_path!r}: {e}") from None


def command_options():
    """The :class:`~audiogmm.data.RunOptions` of the command's ``--cache/--jobs/--strict``."""
    from ..data import RunOptions
    ctx = click.get_current_context()
    # a progress bar when stderr is a terminal and the user did not ask for quiet
    bar = None if ctx.obj["verbosity"] < 0 or not sys.stderr.isatty() else ProgressBar()
    return RunOptions(cache_dir=ctx.params.get("cache_dir"), n_jobs=ctx.params["jobs"],
                      progress=bar, strict=ctx.params["strict"])  # fmt: skip


@contextlib.contextmanager
def command_executor(paths: Iterable[str], jobs: int | None, cache_dir: str | None = None, *,
                     selection: bool = False):  # fmt: skip
    """The command's one executor for the audio files ``paths``, then closed: threads, or
    processes when their duration (from the headers, kept in the cache ``cache_dir``) pays
    for starting them (:func:`audiogmm.engine.local.executor_for_work`, a lower bound for
    model ``selection``, whose workers start at once, in the background; logged at ``-v``).
    BLAS runs on one thread: the many small products of training are slower on a waking pool."""
    from ..audio import info  # looked up now: tests count the header reads
    from ..data.cache import FileFacts
    from ..engine import local
    limit = local.SELECTION_PROCESS_MIN_AUDIO_S if selection else local.PROCESS_MIN_AUDIO_S
    def seconds(facts: FileFacts, path: str) -> float:
        with contextlib.suppress(AudioError):  # extraction reports the file; it adds no work
            raw = facts.get(path, "duration_s", 8, lambda p: struct.pack("<d", info(p).duration_s))
            return struct.unpack("<d", raw)[0]
        return 0.0
    work = 0.0
    if (jobs or default_workers()) > 1:  # with one worker there is nothing to decide
        with FileFacts(cache_dir) as facts:
            work = local.audio_work(list(paths), functools.partial(seconds, facts), limit)
    with local.executor_for_work(work, jobs, min_audio_s=limit) as ex, one_blas_thread():
        if selection:  # the workers start while the features are extracted on threads
            ex.warm(["audiogmm.selection.cv"])
        yield ex


@contextlib.contextmanager
def executor(paths: Iterable[str] | None = None, *, selection: bool = False):
    """The command's one executor, then closed: a DaskExecutor for ``--dask`` (INFO logs at
    -vv, warnings unless -q; a LocalCluster's workers' stderr, where each would print a
    traceback on Ctrl-C, is /dev/null below -vv: task errors come back through the client);
    else :func:`command_executor` for the audio files ``paths``; else threads."""
    ctx = click.get_current_context()
    spec, jobs, verbosity = ctx.params.get("dask_spec"), ctx.params["jobs"], ctx.obj["verbosity"]
    if not spec:
        with (LocalExecutor(jobs) if paths is None
              else command_executor(paths, jobs, ctx.params.get("cache_dir"),
                                    selection=selection)) as ex:  # fmt: skip
            yield ex
        return
    from ..engine.dask import DaskExecutor
    with contextlib.suppress(ImportError):  # else DaskExecutor says what to install
        import distributed  # noqa: F401 - sets its loggers' levels on import: ours come after
        level = (logging.INFO if verbosity >= 2 else logging.WARNING if verbosity >= 0
                 else logging.ERROR)  # fmt: skip
        for name in ("distributed", "tornado"):
            logging.getLogger(name).setLevel(level)
        # the LocalCluster serves no dashboard (dashboard_address=None): its port is no concern
        warnings.filterwarnings("ignore", r"Port \d+ is already in use", UserWarning)
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        if verbosity < 2 and spec.startswith("local"):
            os.dup2(devnull, 2)
        ex = DaskExecutor(spec)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    logger.info("executor: %r", ex)
    with ex:
        yield ex


class ProgressBar:
    """A ``progress(n_done, n_total, label)`` callback drawing one click bar per label on stderr."""

    def __init__(self) -> None:
        self._bar: Any = None

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None

    def __call__(self, done: int, total: int, label: str) -> None:
        if self._bar is None or self._bar.label != label:
            self._close()
            self._bar = click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True)
            self._bar.__enter__()
        # by what was done, not by calls: work reported in jumps (cached files, classes
        # finishing together) must not leave the bar, and its ETA, behind
        self._bar.update(max(0, done - self._bar.pos))
        if done >= total:
            self._close()


_SHORT = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
# control, format (e.g. bidi overrides), line/paragraph separators, lone surrogates
_UNSAFE = {"Cc", "Cf", "Zl", "Zp", "Cs"}


def _escape_char(c: str) -> str:
    n = ord(c)
    if 0xDC80 <= n <= 0xDCFF:  # os.fsdecode's stand-in for an undecodable byte
        return f"\\x{n - 0xDC00:02x}"
    return _SHORT.get(c) or (f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000
                             else f"\\U{n:08x}")  # fmt: skip


def escape_name(text: object) -> str:
    """``str(text)`` (a file name, label or message) printable on one line.

    >>> escape_name("new\\nline.wav"), escape_name("plain é.wav")
    ('new\\\\nline.wav', 'plain é.wav')"""
    s = str(text)
    if s.isprintable():  # the common case: nothing to do
        return s
    return "".join(_escape_char(c) if unicodedata.category(c) in _UNSAFE else c for c in s)


def dims_text(n_dims: int | tuple[int, ...]) -> str:
    """``26``, or ``26+39`` for a fused model's members."""
    return "+".join(map(str, n_dims)) if isinstance(n_dims, tuple) else str(n_dims)


def report_skipped(skipped: list[dict[str, str]]) -> None:
    """List skipped files and reasons on stderr, one escaped line each (at most 20); the
    count is the library's warning (``skipped N of M files``). Nothing with -qq."""
    if click.get_current_context().obj["verbosity"] < -1:
        return
    for s in skipped[:20]:
        named = (f"{s['path']!r}: ", f"{s['path']}: ")  # the reason names the file too
        reason = next((s["reason"][len(n) :] for n in named if s["reason"].startswith(n)),
                      s["reason"])  # fmt: skip
        click.echo(f"  {escape_name(s['path'])}: {escape_name(reason)}", err=True)
    if len(skipped) > 20:
        click.echo(f"  ... and {len(skipped) - 20} more", err=True)


def echo_out(out: dict[str, Any], as_json: bool, text: str | None = None) -> None:
    """``out`` as one line of strict JSON (sorted keys; NaN and infinities as null), or its
    ``skipped`` files (on stderr), its ``selection`` table and ``text``."""
    from ..pipeline.report import json_dumps
    if as_json:
        return click.echo(json_dumps(out))
    report_skipped(out.get("skipped", []))
    if out.get("selection"):
        click.echo(format_selection(out["selection"]))
    if text is not None:
        click.echo(text)


def format_selection(sel: dict[str, Any]) -> str:
    """The cross-validation table of a ``selection`` record (train, tune, info), as text."""
    rows = [(escape_name(r["front_end"])[:40], escape_name(r["components"])[:12], r)
            for r in sel["table"]]  # fmt: skip
    w = max([11, *(len(f) for f, _, _ in rows)])
    lines = [f"model selection: {sel['n_folds']}-fold CV by clip on the training files "
             f"(ml fits: EM <= {sel['cv_max_iter']} iterations; {sel['seconds']:.1f} s)",
             f"  {'stage':<11} {'front end':<{w}} {'components':<10} {'accuracy':>8} {'SE':>6}  "
             f"{'95% Wilson':<15} {'clips':>9}"]  # fmt: skip
    for fe, comp, r in rows:
        p, n = r["accuracy"], max(1, r["n"])
        se = (p * (1 - p) / n) ** 0.5 if 0 <= p <= 1 else float("nan")  # binomial
        lines.append(f"  {escape_name(r['stage'])[:11]:<11} {fe:<{w}} {comp:<10} {p:>8.3f} "
                     f"{se:>6.3f}  [{r['ci_low']:.3f}, {r['ci_high']:.3f}] {r['correct']:>4}/"
                     f"{r['n']:<4}" + (" *" if r.get("chosen") else ""))  # fmt: skip
    ks, backend = sorted(set(sel["n_components"].values())), sel.get("backend", "ml")
    k_text = str(ks[0]) if len(ks) == 1 else f"{ks[0]}-{ks[-1]} per class"
    ubm = next((c for _, c, r in rows if r["stage"] == "backend" and r.get("chosen")), None)
    if backend == "ml" or ubm is None:
        lines.append(f"chosen: front end {escape_name(sel['front_end'])}, components "
                     f"{escape_name(sel['components_rule'])} (K = {k_text})"
                     + ("" if backend == "ml" else f", backend {escape_name(backend)}"))
    else:  # the classes' K does not apply: the backend's UBM size does
        lines.append(f"chosen: backend {escape_name(backend)} ({ubm}) on front end "
                     f"{escape_name(sel['front_end'])}")  # fmt: skip
    if skipped := sorted(sel.get("not_tried") or {}):
        names = ", ".join(escape_name(b) for b in skipped)
        lines.append(f"not tried: backend{'s' if len(skipped) > 1 else ''} {names} (reasons "
                     "in --json; --backends LIST tries those listed, `train --backend NAME` "
                     "trains one)")  # fmt: skip
    return "\n".join(lines)
