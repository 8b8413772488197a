"""The progress convention: a ``progress`` argument anywhere in audiogmm is None or a callable
``progress(n_done, n_total, label)`` called after each item, from any thread, one call at a
time. The library draws nothing; the CLI passes a callable that draws a bar on stderr."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Callable, Optional

__all__ = ["Progress", "reporter"]

Progress = Optional[Callable[[int, int, str], None]]


@contextmanager
def reporter(progress: Progress, total: int, label: str) -> Iterator[Callable[[], None]]:
    """Yield a ``tick()`` that reports one more item done to ``progress`` (if any)."""
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be None or a callable; got {progress!r}")
    done, lock = itertools.count(1), threading.Lock()  # ticks may come from worker threads

    def tick() -> None:
        with lock:
            if progress is not None:
                progress(next(done), total, label)

    yield tick
