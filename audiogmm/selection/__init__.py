"""Model selection on training files (``--preset auto --components auto``, ``audiogmm tune``):
``cv`` (held-out scores and the decisions on them), ``steps`` (:func:`tune`'s steps),
``result`` (what it returns, and the model file's record of it), ``train``
(fitting what it chose) and ``fusion`` (fusions of backends, ``train --backend gsv+ml``)."""

from .fusion import train_fused
from .result import TuneResult
from .steps import tune
from .train import train_tuned

__all__ = ["TuneResult", "train_fused", "train_tuned", "tune"]
