"""Files in, results out: model bundles, train/evaluate/predict/verify workflows, reports.

No maths and no printing here; the CLI and the recipes format what these return. Model
selection (``--preset auto``) is :mod:`audiogmm.selection`."""

from .. import lazy_exports

_EXPORTS = {**dict.fromkeys(["describe_split", "evaluate_classifier", "evaluation_split",
                             "load_model", "predict_files", "save_model"], ".classify"),
            "train_classifier": ".sources"}  # fmt: skip
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
