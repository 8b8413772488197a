"""Scores to numbers a reviewer asks for: accuracy, confusion, per-class metrics
(``metrics``); EER, minDCF, DET, score normalisation and calibration (``verification``)."""

from .metrics import summary
from .verification import det_curve, eer, min_dcf, snorm, tnorm, znorm

__all__ = ["det_curve", "eer", "min_dcf", "snorm", "summary", "tnorm", "znorm"]
