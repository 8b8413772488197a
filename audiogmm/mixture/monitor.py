"""When EM stops: :class:`ConvergenceMonitor` (the hmmlearn habit), one per member of a stack."""

from __future__ import annotations

import logging
import sys
import warnings
from typing import Any

import numpy as np

__all__ = ["ConvergenceMonitor", "StackedMonitor"]

logger = logging.getLogger(__name__)


class ConvergenceMonitor:
    """Tracks the mean per-frame log-likelihood of EM and decides when to stop.

    Converged when ``|ll_i - ll_{i-1}| < tol * max(1, |ll_{i-1}|)``, stopped after
    ``max_iter`` M-steps; ``verbose > 0`` prints one line per report to stderr. A drop
    beyond ``drop_tol * max(1, |ll|, scale)`` warns (float32 needs ``drop_tol`` ~1e-5;
    ``scale``: a frame's typical log-likelihood terms, e.g. n_dims). ``history``: the
    mean log-likelihood per frame (nats) at each E-step; ``n_iter``: M-steps counted.

    Examples
    --------
    >>> m = ConvergenceMonitor(tol=1e-3, max_iter=10)
    >>> m.report(-10.0); m.stop()
    False
    >>> m.report(-9.99999); m.stop()
    True
    """

    def __init__(
        self, tol: float, max_iter: int, verbose: int = 0, *, drop_tol: float = 1e-9,
        scale: float = 1.0,
    ) -> None:  # fmt: skip
        self.tol, self.max_iter, self.verbose = tol, max_iter, verbose
        self.drop_tol, self.scale = drop_tol, scale
        self.history: list[float] = []
        self.n_iter = 0
        self._after_reseed = False

    def report(self, ll: float, *, reseeded: bool = False) -> None:
        """Record the mean log-likelihood of a new E-step.

        ``reseeded``: its parameters came from a re-seeding M-step, which may lower the
        likelihood (no drop warning, no convergence decision on that step).
        """
        if self.history and not reseeded:
            prev = self.history[-1]
            if ll < prev - self.drop_tol * max(1.0, abs(prev), self.scale):
                warnings.warn(
                    f"EM log-likelihood decreased from {prev:.10g} to {ll:.10g} "
                    f"(iteration {len(self.history)}); the data may be degenerate",
                    RuntimeWarning,
                    stacklevel=4,
                )
        logger.debug("EM iteration %d: mean log-likelihood %.8f nats/frame", len(self.history), ll)
        if self.verbose:
            delta = ll - self.history[-1] if self.history else float("nan")
            print(f"{len(self.history):>6d} {ll:>16.8f} {delta:>+14.6e}", file=sys.stderr)
        self.history.append(ll)
        self._after_reseed = reseeded

    @property
    def converged(self) -> bool:
        """Whether the last two reports differ by less than ``tol`` (relative)."""
        if len(self.history) < 2 or self._after_reseed:
            return False
        prev, cur = self.history[-2], self.history[-1]
        return abs(cur - prev) < self.tol * max(1.0, abs(prev))

    def stop(self) -> bool:
        """Whether EM should stop now; otherwise one more M-step is counted."""
        if self.converged or self.n_iter >= self.max_iter:
            return True
        self.n_iter += 1
        return False


class StackedMonitor:
    """One :class:`ConvergenceMonitor` per member of a stack; each member stops on its own.

    Attributes
    ----------
    running : ndarray of shape (n_members,), bool
        Members that have not stopped yet (updated in place by :meth:`stop`).
    """

    def __init__(self, monitors: list[ConvergenceMonitor]) -> None:
        self.monitors = monitors
        self.running = np.ones(len(monitors), dtype=bool)

    def report(self, lls: np.ndarray, *, reseeded: Any = False) -> None:
        """Each running member's mean log-likelihood; ``reseeded``: the last M-step's events."""
        again = {e["member"] for e in reseeded} if reseeded else set()
        for c in np.flatnonzero(self.running):
            self.monitors[c].report(float(lls[c]), reseeded=c in again)

    def stop(self) -> bool:
        """Stop the members whose monitor says so; True when none is left running."""
        for c in np.flatnonzero(self.running):
            if self.monitors[c].stop():
                self.running[c] = False
        return not self.running.any()

    history = property(lambda self: [m.history for m in self.monitors])
    converged = property(lambda self: [m.converged for m in self.monitors])
    n_iter = property(lambda self: [m.n_iter for m in self.monitors])
