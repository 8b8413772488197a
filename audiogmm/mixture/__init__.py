"""Diagonal Gaussian mixtures: statistics, E-step, M-step, initialisation, THE EM loop.

This package knows nothing about audio, features, datasets or files. Modules in data-flow
order: ``stats`` (Params, Stats), ``kernels`` (fused log-sum-exp), ``estep``, ``mstep`` (ML,
MAP), ``sources``, ``em`` (the one loop), ``fit`` (the one orchestration, initialisation),
``checks``, ``diag`` (DiagGMM).
"""

from .diag import DiagGMM
from .em import ConvergenceMonitor, EMResult, run
from .estep import accumulate, log_likelihood, log_softmax
from .mstep import MAPMaximiser, MLMaximiser, map_adapt, maximise
from .stats import Params, Stats

__all__ = [  # what README documents
    "ConvergenceMonitor", "DiagGMM", "EMResult", "MAPMaximiser", "MLMaximiser", "Params", "Stats",
    "accumulate", "log_likelihood", "log_softmax", "map_adapt", "maximise", "run",
]  # fmt: skip
