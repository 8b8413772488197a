"""Model selection on training files (``--preset auto --components auto``, ``audiogmm tune``):
``cv`` (clip-stratified folds, held-out scores per K and per backend; ``train --calibrate``),
``rules`` (the decisions) and ``steps`` (:func:`tune`'s steps over their shared state).
"""

from .steps import TuneResult, train_tuned, tune

__all__ = ["TuneResult", "train_tuned", "tune"]
