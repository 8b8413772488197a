"""Model selection on training files (``--preset auto --components auto``, ``audiogmm tune``):
``cv`` (held-out scores and the decisions on them), ``steps`` (:func:`tune`'s steps), ``train``
(fitting what it chose) and ``fusion`` (fusions of backends, ``train --backend gsv+ml``)."""

from .fusion import train_fused
from .steps import TuneResult, tune
from .train import train_tuned

__all__ = ["TuneResult", "train_fused", "train_tuned", "tune"]
