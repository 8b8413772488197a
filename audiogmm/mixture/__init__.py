"""Diagonal Gaussian mixtures: statistics, E-step, M-step, initialisation, THE EM loop; nothing
about audio, features, datasets or files (modules: README's Design list)."""

from .diag import DiagGMM
from .em import ConvergenceMonitor, EMResult, run
from .estep import accumulate, log_likelihood, log_softmax
from .mstep import MAPMaximiser, MLMaximiser, map_adapt, maximise
from .stats import Params, Stats

__all__ = [  # what README documents
    "ConvergenceMonitor", "DiagGMM", "EMResult", "MAPMaximiser", "MLMaximiser", "Params", "Stats",
    "accumulate", "log_likelihood", "log_softmax", "map_adapt", "maximise", "run",
]  # fmt: skip
