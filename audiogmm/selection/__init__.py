"""Model selection on training files (``--preset auto --components auto``, ``audiogmm tune``):
``cv`` (held-out scores), ``rules`` (the decisions), ``steps`` (:func:`tune`'s steps)."""

from .steps import TuneResult, train_tuned, tune

__all__ = ["TuneResult", "train_tuned", "tune"]
