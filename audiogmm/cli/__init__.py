"""The ``audiogmm`` command line, thin over the library: the commands that make features and
models in :mod:`.train`, those that use a model file in :mod:`.use`.

Human output on stdout, ``--json`` with sorted keys, logs and progress bars on stderr.
Library errors become one line and exit code 1 here, in :class:`_Group`, and nowhere else."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import sys
import threading
import warnings
from typing import Any, NoReturn

import click

from .._version import __version__
from ..exceptions import AudioGMMError
from . import train, use
from .options import escape_name

__all__ = ["main"]

logger = logging.getLogger("audiogmm")
EXIT_CODES = ("Exit codes: 0 success; 1 error (bad data, unreadable model, ...); 2 usage error; "
              "130 interrupted (Ctrl-C).")  # fmt: skip
#: Seconds the interrupted command has to unwind (atomic writes remove their temporary
#: files) before it is stopped where it stands.
UNWIND_S = 0.5
VERBOSITY = [(["-v", "--verbose"], 1, "More log output on stderr: -v progress notes, -vv also "
               "every EM iteration."),
              (["-q", "--quiet"], -1, "Less output: no progress bars, warnings only (-qq: errors "
               "only).")]  # fmt: skip


def _stop() -> NoReturn:
    """Exit 130 now: no traceback, threads not joined, processes killed (atomic outputs)."""
    import multiprocessing
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write("interrupted\n")
        sys.stderr.flush()
        sys.stdout.flush()
    for child in multiprocessing.active_children():
        child.kill()
    os._exit(130)


def _on_interrupt(signum: int, frame: Any) -> None:
    """Ctrl-C: unwind (KeyboardInterrupt) within :data:`UNWIND_S`, else stop anyway."""
    import multiprocessing
    if getattr(_on_interrupt, "pending", False):  # a second Ctrl-C: now
        _stop()
    _on_interrupt.pending = True  # type: ignore[attr-defined]
    logging.getLogger("distributed").setLevel(logging.CRITICAL)  # its shutdown is no news
    if pools := sys.modules.get("audiogmm.engine.processes"):
        pools.close_all()  # the deaths below are ours: no retries, no "killed" warnings
    for child in multiprocessing.active_children():  # worker processes: nothing to unwind
        child.kill()
    timer = threading.Timer(UNWIND_S, _stop)
    timer.daemon = True
    timer.start()
    raise KeyboardInterrupt


class _Group(click.Group):
    """Turns library errors into one clear line and exit code 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AudioGMMError as e:
            raise click.ClickException(escape_name(e)) from e
        except BrokenPipeError:  # e.g. `audiogmm info m.npz | head`: not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        except OSError as e:  # e.g. an output folder we may not write to
            text = f"{e.filename}: {e.strerror}" if e.filename and e.strerror else str(e)
            raise click.ClickException(escape_name(text)) from e
        except KeyboardInterrupt:
            _stop()
        except (click.ClickException, click.exceptions.Exit):
            raise  # click's own: already one message and an exit code
        except Exception as e:  # a bug or an unforeseen input: still one line, not a traceback
            logger.debug("unexpected error", exc_info=True)
            text = f"unexpected {type(e).__name__}: {e} (run with -vv for details)"
            raise click.ClickException(escape_name(text)) from e


@click.group(cls=_Group, epilog=EXIT_CODES,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="audiogmm")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Gaussian mixture models for audio: train per-class GMMs on MFCCs and classify clips.

    DATA is a folder with one sub-folder per label, a CSV file with columns
    path,label[,split] (paths relative to the CSV), or a Kaldi data directory
    (wav.scp + utt2spk, optionally segments; or feats.scp + utt2spk, no audio)."""
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # the CLI (never the library) decides how warnings look: one log line on stderr
    warnings.showwarning = lambda message, category, *a, **kw: logger.warning(
        "%s: %s", category.__name__, message)  # fmt: skip
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, _on_interrupt)
        ctx.call_on_close(lambda: signal.signal(signal.SIGINT, previous))


def _add_verbosity(sign: int, ctx: click.Context, param: click.Parameter, value: int) -> None:
    """The callback of -v (``sign`` 1) and -q (-1): the group's and the subcommand's add up."""
    obj = ctx.ensure_object(dict)  # the group's, shared with the subcommand
    level = obj["verbosity"] = obj.get("verbosity", 0) + sign * value
    logger.setLevel(logging.DEBUG if level >= 2 else logging.INFO if level == 1
                    else logging.WARNING if level >= -1 else logging.ERROR)  # fmt: skip


for _cmd in (main, train.extract, train.train, use.evaluate, use.predict, use.info,
             train.tune, use.verify, train.ubm, use.plot):  # fmt: skip
    _cmd.params += [click.Option(flags, count=True, expose_value=False, help=help,
                                 callback=functools.partial(_add_verbosity, sign))
                    for flags, sign, help in VERBOSITY]  # fmt: skip
    if _cmd is not main:
        main.add_command(_cmd)
        # the whole first line in `audiogmm --help`, not cut at 45 characters
        _cmd.short_help = (_cmd.help or "").strip().split("\n")[0]
        _cmd.epilog = EXIT_CODES
