"""Model selection on training files: ``--preset auto --components auto`` and ``audiogmm tune``.

Modules: ``cv`` (clip-stratified folds, held-out scores, per-class K), ``backends``
(the other backends on held-out folds; ``train --calibrate``), ``rules`` (the
decisions from those scores), ``state`` (what the steps share), ``steps`` (front ends,
components, front end, fusion, backend) and ``search`` (:func:`tune`, :func:`train_tuned`).
"""

from .search import train_tuned, tune
from .state import TuneResult

__all__ = ["TuneResult", "train_tuned", "tune"]
