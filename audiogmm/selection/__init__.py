"""Model selection on training files (``--preset auto --components auto``, ``audiogmm tune``):
``cv`` (held-out scores and the decisions on them), ``steps`` (:func:`tune`'s steps), and
``fusion`` (fusions of backends, ``train --backend gsv+ml``)."""

from .fusion import train_fused
from .steps import TuneResult, train_tuned, tune

__all__ = ["TuneResult", "train_fused", "train_tuned", "tune"]
