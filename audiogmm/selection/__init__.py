"""Model selection on training files (``--preset auto --components auto``, ``audiogmm tune``):
``cv`` (clip-stratified folds, held-out scores per K), ``backends`` (the other backends held
out; ``train --calibrate``), ``rules`` (the decisions), ``state`` and ``steps`` (:func:`tune`).
"""

from .state import TuneResult
from .steps import train_tuned, tune

__all__ = ["TuneResult", "train_tuned", "tune"]
