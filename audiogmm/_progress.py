"""One progress-reporting convention for long steps (extraction, training).

``progress`` arguments across audiogmm mean: ``None`` a click progress bar on
stderr only when stderr is a terminal; ``True``/``False`` force it on/off; a
callable ``f(n_done, n_total)`` is called after each item instead.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Callable, Union

__all__ = ["ProgressFn", "Progress", "reporter"]

ProgressFn = Callable[[int, int], None]
Progress = Union[None, bool, ProgressFn]


@contextmanager
def reporter(progress: Progress, total: int, label: str) -> Iterator[Callable[[], None]]:
    """Yield a ``tick()`` that advances the bar or calls the callback by one item."""
    callback = progress if callable(progress) else None
    show = (progress is None and sys.stderr.isatty()) or progress is True
    bar = None
    if show and total:
        import click

        bar = click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True)
        bar.__enter__()
    done = 0
    lock = threading.Lock()  # ticks may come from worker threads

    def tick() -> None:
        nonlocal done
        with lock:
            done += 1
            if bar is not None:
                bar.update(1)
            if callback is not None:
                callback(done, total)

    try:
        yield tick
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
