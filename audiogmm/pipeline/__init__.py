"""Files in, results out: model bundles, train/evaluate/predict/verify workflows, reports.

No maths and no printing here; the CLI and the recipes format what these return. Model
selection (``--preset auto``) is :mod:`audiogmm.selection`.
"""

from .bundle import load_model, save_model
from .classify import describe_split, evaluate_classifier, evaluation_split, predict_files
from .sources import train_classifier

__all__ = ["describe_split", "evaluate_classifier", "evaluation_split", "load_model",
           "predict_files", "save_model", "train_classifier"]  # fmt: skip
