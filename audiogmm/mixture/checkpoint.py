"""EM checkpoints: the state after every M-step, written atomically; resuming gives the same model.

The EM loop (:func:`audiogmm.mixture.em.run`) is not changed: a checkpoint wraps
the two objects it already calls. The wrapped *maximiser* writes, after each
M-step, the new parameters and the monitor's state (history, M-steps counted,
whether the step re-seeded) to one checksummed container file (atomic replace).
On resume, the saved parameters replace the initialisation, the monitor gets its
state back, and the wrapped *monitor* passes the saved re-seed flag to the first
report, exactly as the uninterrupted loop would have. Every E-step is a
deterministic function of the parameters, so the resumed run computes the same
bits as the uninterrupted one.
"""

from __future__ import annotations

import math
import os
from typing import Any

from ..container import read_container, write_container
from ..exceptions import ModelFileError
from .checks import validate_param_arrays
from .monitor import ConvergenceMonitor
from .params import Params

__all__ = ["EMCheckpoint"]

_KIND = "EMCheckpoint"


def _history(v: Any) -> list[float]:
    if not isinstance(v, list) or not all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v
    ):
        raise ValueError("must be a list of finite numbers")
    return [float(x) for x in v]


def _count(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError("must be an int >= 0")
    return v


def _flag(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("must be true or false")
    return v


def _fingerprint(v: Any) -> dict:
    if not isinstance(v, dict) or not all(isinstance(k, str) for k in v):
        raise ValueError("must be an object")
    return v


_FIELDS = {"history": _history, "n_iter": _count, "reseeded": _flag, "fingerprint": _fingerprint}


class EMCheckpoint:
    """Write EM's state after every M-step to ``path``; with ``resume``, start from it.

    Parameters
    ----------
    path : path
        The checkpoint file (a checksummed ``.npz`` container).
    resume : bool, default=False
        Continue from ``path`` if it exists (a missing file starts afresh).
    fingerprint : dict, optional
        What must match between the run that wrote the file and the one resuming
        (e.g. n_components, n_dims, n_frames); a mismatch is refused.

    Examples
    --------
    >>> gmm.fit_source(source, checkpoint=EMCheckpoint("ubm.ckpt.npz", resume=True))  # doctest: +SKIP
    """

    def __init__(
        self, path: str | os.PathLike, *, resume: bool = False, fingerprint: dict | None = None
    ) -> None:
        self.path = os.fspath(path)
        self.resume = bool(resume)
        self.fingerprint = dict(fingerprint or {})
        self.resumed_from: int | None = None  # M-steps already done when resumed

    def restore(self, monitor: ConvergenceMonitor) -> tuple[Params, bool] | None:
        """Saved parameters and re-seed flag, with ``monitor``'s state restored; None to start afresh."""
        if not (self.resume and os.path.exists(self.path)):
            return None
        header, arrays = read_container(
            self.path, kind=_KIND, names=("weights", "means", "variances"),
            fields=_FIELDS, required=tuple(_FIELDS),
        )  # fmt: skip
        w, m, v = arrays["weights"], arrays["means"], arrays["variances"]
        validate_param_arrays(self.path, w, m, v)
        if header["fingerprint"] != self.fingerprint:
            raise ModelFileError(
                f"{self.path}: the checkpoint was written for {header['fingerprint']}, "
                f"this run is {self.fingerprint}; remove it or drop --resume"
            )
        if not header["history"] or header["n_iter"] != len(header["history"]):
            raise ModelFileError(f"{self.path}: 'n_iter' does not match the history's length")
        monitor.history = list(header["history"])
        monitor.n_iter = header["n_iter"]
        self.resumed_from = header["n_iter"]
        return Params(w, m, v), header["reseeded"]

    def attach(
        self, monitor: ConvergenceMonitor, maximiser: Any, reseeded: bool = False
    ) -> tuple[Any, Any]:
        """The monitor and maximiser to pass to :func:`em.run` (``reseeded``: from :meth:`restore`)."""
        return _Monitor(monitor, reseeded), _Maximiser(self, maximiser, monitor)

    def save(self, params: Params, monitor: ConvergenceMonitor, reseeded: bool) -> None:
        """Write the state after an M-step (atomic: a crash leaves the previous checkpoint)."""
        write_container(
            self.path,
            kind=_KIND,
            header={
                "history": list(monitor.history), "n_iter": monitor.n_iter,
                "reseeded": bool(reseeded), "fingerprint": self.fingerprint,
            },  # fmt: skip
            arrays={"weights": params.weights, "means": params.means,
                    "variances": params.variances},  # fmt: skip
        )


class _Maximiser:
    """The wrapped maximiser: maximise, then checkpoint."""

    def __init__(self, ckpt: EMCheckpoint, inner: Any, monitor: ConvergenceMonitor) -> None:
        self.ckpt, self.inner, self.monitor = ckpt, inner, monitor

    def __call__(self, stats, params):
        new, events = self.inner(stats, params)
        self.ckpt.save(new, self.monitor, bool(events))
        return new, events


class _Monitor:
    """The wrapped monitor: the first report after a resume carries the saved re-seed flag."""

    def __init__(self, inner: ConvergenceMonitor, reseeded: bool) -> None:
        self._inner, self._first = inner, reseeded

    def report(self, ll: float, *, reseeded: bool = False) -> None:
        first, self._first = self._first, False
        self._inner.report(ll, reseeded=reseeded or first)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
