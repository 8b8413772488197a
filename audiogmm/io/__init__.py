"""Every file audiogmm writes: one table per kind, checked on save and on load.

:func:`save` / :func:`load` (:mod:`.modelfile`): mixtures, classifiers and Stats;
:class:`EMCheckpoint`: an interrupted EM run. Modules: :mod:`.container` (one
checksummed ``.npz``, no pickle), :mod:`.atomic`, :mod:`.tables` in the vocabulary of
:mod:`.schema`.
"""

from ..lazy import lazy_exports

__all__ = ["EMCheckpoint", "load", "save"]

# lazy: the data layer checks its files with io.tables without importing the models
__getattr__, __dir__ = lazy_exports(
    __name__, {"EMCheckpoint": ".checkpoint", "load": ".modelfile", "save": ".modelfile"}
)
