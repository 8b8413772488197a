"""What the recipes share (Kaldi's ``utils/parse_options.sh`` and the ``$stage`` guard), nothing more.

``@recipe(STAGES)`` turns a function into a click command with ``--exp``, ``--stage``,
``--stop-stage`` and ``--force``, writes ``cmd.txt`` and ``settings.json`` first, and
maps audiogmm errors to one line and exit code 1. Inside, ``if st(N):`` guards
stage N and ``st.done(message)`` closes it with its wall time.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, Callable

import click

from audiogmm import AudioGMMError
from audiogmm.io.atomic import atomic_write

__all__ = ["Stages", "recipe"]


class Stages:
    """The stage guard of one experiment folder.

    Parameters
    ----------
    exp_dir : path
        Where every stage writes (created).
    names : sequence of str
        Stage names, numbered from 0.
    stage, stop_stage : int
        Run stages ``stage`` .. ``stop_stage`` (default: the last one).
    settings : dict
        Every setting of the run (JSON-able). Stored in ``settings.json``; a run
        that starts after stage 0 refuses outputs made with other settings unless
        ``force``.
    force : bool
        Reuse earlier outputs even when their settings differ.
    log : callable
        Where stage lines go.
    """

    def __init__(
        self,
        exp_dir: str,
        names: Sequence[str],
        *,
        stage: int = 0,
        stop_stage: int | None = None,
        settings: dict[str, Any],
        force: bool = False,
        log: Callable[[str], None] = click.echo,
    ) -> None:
        last = len(names) - 1
        stop_stage = last if stop_stage is None else stop_stage
        if not 0 <= stage <= last:
            raise click.BadParameter(f"must be in 0..{last}; got {stage}", param_hint="--stage")
        if not stage <= stop_stage <= last:
            raise click.BadParameter(
                f"must be in {stage}..{last}; got {stop_stage}", param_hint="--stop-stage"
            )
        self.dir = os.path.abspath(exp_dir)
        self.names, self.first, self.last, self.log = list(names), stage, stop_stage, log
        self._current: tuple[int, float] | None = None
        os.makedirs(self.dir, exist_ok=True)
        stored = self.path("settings.json")
        if stage > 0 and os.path.exists(stored) and not force:
            with open(stored, encoding="utf-8") as fh:
                old = json.load(fh)
            differ = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            if differ:
                shown = ", ".join(f"{k}: {old.get(k)!r} -> {settings.get(k)!r}" for k in differ)
                raise click.UsageError(
                    f"{self.dir} holds outputs made with other settings ({shown}); start at "
                    "--stage 0 to redo them, or pass --force to reuse them anyway"
                )
        self.write("cmd.txt", " ".join(sys.argv) + "\n")
        self.write("settings.json", json.dumps(settings, indent=2, sort_keys=True) + "\n")

    def path(self, *parts: str) -> str:
        """A path inside the experiment folder."""
        return os.path.join(self.dir, *parts)

    def write(self, name: str, text: str) -> None:
        """Write a text file in the experiment folder, atomically."""
        atomic_write(self.path(name), lambda f: f.write(text.encode("utf-8")))

    def __call__(self, n: int) -> bool:
        """Whether stage ``n`` runs; if so, announce it and start its clock."""
        if not self.first <= n <= self.last:
            return False
        self.log(f"[stage {n}] {self.names[n]} ...")
        self._current = (n, time.perf_counter())
        return True

    def done(self, message: str) -> None:
        """Close the current stage with a one-line result and its wall time."""
        assert self._current is not None, "done() without a running stage"
        n, t0 = self._current
        self.log(f"[stage {n}] {self.names[n]}: {message} ({time.perf_counter() - t0:.1f} s)")
        self._current = None


def recipe(names: Sequence[str], *, exp: str) -> Callable:
    """Decorator: a click command with the stage options, calling ``fn(st, **options)``.

    Every option of the recipe except ``--jobs`` goes into ``settings.json``.
    """

    def deco(fn: Callable) -> click.Command:
        @click.option("--exp", "exp_dir", default=exp, show_default=True, help="Experiment folder.")
        @click.option("--stage", default=0, show_default=True, type=int, help="First stage to run.")
        @click.option(
            "--stop-stage", default=None, type=int, help="Last stage to run [default: the last]."
        )
        @click.option(
            "--force", is_flag=True, help="Reuse earlier stages' outputs even if settings differ."
        )
        @functools.wraps(fn)
        def command(exp_dir: str, stage: int, stop_stage: int | None, force: bool, **options):
            settings = {k: v for k, v in options.items() if k != "jobs"}
            try:
                st = Stages(exp_dir, names, stage=stage, stop_stage=stop_stage,
                            settings=settings, force=force)  # fmt: skip
                fn(st, **options)
            except AudioGMMError as e:  # one line and exit 1, as in the audiogmm CLI
                raise click.ClickException(str(e)) from e

        stages_help = "; ".join(f"{i} {n}" for i, n in enumerate(names))
        return click.command(
            context_settings={"help_option_names": ["-h", "--help"]},
            epilog=f"Stages: {stages_help}.",
        )(command)

    return deco
