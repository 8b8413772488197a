"""Files in, results out: model bundles, train/evaluate/predict workflows, reports.

No maths and no printing here; the CLI and the recipes format what these return.
Modules: ``bundle`` (classifier + feature config in one file), ``train`` (the one
training path, every backend), ``classify`` (splits, evaluate, predict from files), ``report`` (metrics.json, confusion).
Model selection (``--preset auto``) is :mod:`audiogmm.selection`.
"""

from .bundle import Bundle, load_model, save_model
from .classify import (
    describe_split,
    evaluate_classifier,
    evaluation_split,
    load_split,
    predict_files,
    skipped_list,
    stored_split,
)
from .report import format_confusion, format_metrics, training_report, write_report
from .train import train_classifier

__all__ = [
    "Bundle",
    "describe_split",
    "evaluate_classifier",
    "evaluation_split",
    "format_confusion",
    "format_metrics",
    "load_model",
    "load_split",
    "predict_files",
    "save_model",
    "skipped_list",
    "stored_split",
    "train_classifier",
    "training_report",
    "write_report",
]
