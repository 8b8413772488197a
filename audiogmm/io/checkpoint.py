"""EM checkpoints: the state after every M-step, written atomically; resuming gives the same model.

A checkpoint wraps the maximiser and the monitor :func:`audiogmm.mixture.em.run` calls.
The maximiser writes, after each M-step, the parameters and the monitor's state
(history, M-steps, re-seed flag) to one container file; on resume they replace the
initialisation and the monitor's state, and the first report gets the saved re-seed
flag. Every E-step is a function of the parameters: the resumed run has the same bits.
"""

from __future__ import annotations

import os
from typing import Any

from ..exceptions import ModelFileError, ParameterError
from ..mixture.checks import validate_param_arrays
from ..mixture.em import ConvergenceMonitor
from ..mixture.stats import Params
from .container import CONTAINER_KEYS, read_container, write_container
from .schema import check
from .tables import CHECKPOINT, FINGERPRINT

__all__ = ["EMCheckpoint"]

_KIND = "EMCheckpoint"
_ARRAYS = ("weights", "means", "variances")


class EMCheckpoint:
    """Write EM's state after every M-step to ``path``; with ``resume``, start from it.

    ``path`` is a checksummed ``.npz`` container; ``resume`` continues from it if it
    exists. ``fingerprint`` (keys of :data:`audiogmm.io.tables.FINGERPRINT`:
    ``components``, ``n_dims``, ``store_frames``, ``store_index`` digest, ...) must match
    between the writing and the resuming run, and the arrays' sizes must agree with it.

    Examples
    --------
    >>> gmm.fit_source(source, checkpoint=EMCheckpoint("ubm.ckpt.npz", resume=True))  # doctest: +SKIP
    """

    def __init__(
        self, path: str | os.PathLike, *, resume: bool = False, fingerprint: dict | None = None
    ) -> None:
        self.path = os.fspath(path)
        self.resume = bool(resume)
        try:
            self.fingerprint = check(FINGERPRINT, dict(fingerprint or {}), "fingerprint")
        except ValueError as e:
            raise ParameterError(f"{self.path}: {e}") from None
        self.resumed_from: int | None = None  # M-steps already done when resumed

    def restore(self, monitor: ConvergenceMonitor) -> tuple[Params, bool] | None:
        """Saved parameters and re-seed flag, ``monitor``'s state restored; None: start afresh."""
        if not (self.resume and os.path.exists(self.path)):
            return None
        header, arrays = read_container(self.path, kind=_KIND, names=_ARRAYS)
        try:
            header = check(
                CHECKPOINT, {k: v for k, v in header.items() if k not in CONTAINER_KEYS}, ""
            )
        except ValueError as e:
            raise ModelFileError(f"{self.path}: header field {e}") from None
        w, m, v = (arrays[k] for k in _ARRAYS)
        validate_param_arrays(self.path, w, m, v)
        fp = header["fingerprint"]
        if fp != self.fingerprint:
            raise ModelFileError(
                f"{self.path}: the checkpoint was written for {fp}, "
                f"this run is {self.fingerprint}; remove it or drop --resume"
            )
        want = (fp.get("components", m.shape[0]), fp.get("n_dims", m.shape[-1]))
        if m.ndim != 2 or m.shape != want:
            raise ModelFileError(f"{self.path}: arrays of shape {m.shape} do not match its {fp}")
        if header["n_iter"] != len(header["history"]):
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
        header = {"history": list(monitor.history), "n_iter": monitor.n_iter,
                  "reseeded": bool(reseeded), "fingerprint": self.fingerprint}  # fmt: skip
        write_container(self.path, kind=_KIND, header=header, arrays=dict(zip(_ARRAYS, params)))


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
