"""EM checkpoints: the state after every M-step, written atomically; resuming gives the same model.

After each M-step the wrapped maximiser writes the parameters and the monitor's state
(history, M-steps, re-seed flag) to one container file; a resumed run starts from them,
its first report carrying the saved re-seed flag. Every E-step is a function of the
parameters: the resumed run has the same bits.
"""

from __future__ import annotations

import os
from typing import Any

from ..exceptions import ModelFileError, ParameterError
from ..mixture.checks import validate_param_arrays
from ..mixture.monitor import ConvergenceMonitor
from ..mixture.params import Params
from .container import read_checked, write_container
from .tables import CHECKPOINT, FINGERPRINT, check

__all__ = ["EMCheckpoint"]

_KIND = "EMCheckpoint"
_ARRAYS = ("weights", "means", "variances")


class EMCheckpoint:
    """Write EM's state after every M-step to ``path`` (a container); with ``resume``, start
    from it if it exists. ``fingerprint`` (:data:`audiogmm.io.tables.FINGERPRINT`:
    ``components``, ``n_dims``, ``store_index`` digest, ...) must match the writing run's.

    Examples
    --------
    >>> ckpt = EMCheckpoint("ubm.ckpt.npz", resume=True)
    >>> gmm.fit_source(source, checkpoint=ckpt)  # doctest: +SKIP
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
        _, header, arrays = read_checked(self.path, {_KIND: CHECKPOINT}, names=_ARRAYS)
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
        monitor.n_iter = self.resumed_from = header["n_iter"]
        return Params(w, m, v), header["reseeded"]

    def attach(
        self, monitor: ConvergenceMonitor, maximiser: Any, reseeded: bool = False
    ) -> tuple[Any, Any]:
        """The monitor and maximiser for :func:`em.run` (``reseeded``: from :meth:`restore`)."""
        if reseeded:  # the first report after a resume carries the saved re-seed flag
            report = monitor.report

            def first(ll: float, *, reseeded: bool = False) -> None:
                del monitor.report  # later reports: the class's own method
                report(ll, reseeded=True)

            monitor.report = first

        def maximise(stats, params):
            new, events = maximiser(stats, params)
            self.save(new, monitor, bool(events))
            return new, events

        return monitor, maximise

    def save(self, params: Params, monitor: ConvergenceMonitor, reseeded: bool) -> None:
        """Write the state after an M-step (atomic: a crash leaves the previous checkpoint)."""
        header = {"history": list(monitor.history), "n_iter": monitor.n_iter,
                  "reseeded": bool(reseeded), "fingerprint": self.fingerprint}  # fmt: skip
        write_container(self.path, kind=_KIND, header=header, arrays=dict(zip(_ARRAYS, params)))
