"""Files in, results out: model bundles, train/evaluate/predict workflows, reports.

No maths and no printing here; the CLI and the recipes format what these return.
Modules: ``bundle`` (classifier + feature config in one file), ``sources`` (one clip set
from any training source), ``train`` (the one training path, every backend), ``classify``
(splits, evaluate, predict from files), ``verify`` (trials), ``report`` (metrics.json,
confusion, curves), ``plot``. Model selection (``--preset auto``) is :mod:`audiogmm.selection`.
"""

from .bundle import load_model, save_model
from .classify import describe_split, evaluate_classifier, evaluation_split, predict_files
from .train import train_classifier

__all__ = ["describe_split", "evaluate_classifier", "evaluation_split", "load_model",
           "predict_files", "save_model", "train_classifier"]  # fmt: skip
