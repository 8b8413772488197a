"""Model selection on training files: ``--preset auto --components auto`` and ``audiogmm tune``.

Modules: ``cv`` (clip-stratified folds, held-out scores, per-class K), ``backends``
(the other backends on held-out folds; ``train --calibrate``), ``rules`` (the decisions
from those scores), ``state`` (what the steps share) and ``steps`` (:func:`tune`'s steps,
:func:`train_tuned`).
"""

from .state import TuneResult
from .steps import train_tuned, tune

__all__ = ["TuneResult", "train_tuned", "tune"]
