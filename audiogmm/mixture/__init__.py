"""Diagonal Gaussian mixtures: statistics, E-step, M-step, initialisation, THE EM loop.

This package knows nothing about audio, features or datasets. Modules in
data-flow order: ``stats`` (the Stats contract), ``params``, ``kernels`` (fused
log-sum-exp), ``estep`` (log-density, accumulate, stacked scoring), ``mstep``
(ML maximiser, floors, re-seeding), ``sources`` (arrays or chunks, input checks),
``monitor`` (ConvergenceMonitor), ``em`` (run: the one loop), ``init`` (k-means++,
split), ``diag`` (DiagGMM: orchestration only).
"""

from .diag import DiagGMM
from .em import EMResult, run
from .estep import (
    accumulate,
    estimate_log_prob,
    log_likelihood,
    log_softmax,
    stacked_log_likelihood,
)
from .map import MAPMaximiser, map_adapt
from .monitor import ConvergenceMonitor
from .mstep import MLMaximiser, maximise
from .params import Params
from .stats import Stats

__all__ = [
    "ConvergenceMonitor",
    "DiagGMM",
    "EMResult",
    "MAPMaximiser",
    "MLMaximiser",
    "Params",
    "Stats",
    "accumulate",
    "estimate_log_prob",
    "log_likelihood",
    "log_softmax",
    "map_adapt",
    "maximise",
    "run",
    "stacked_log_likelihood",
]
