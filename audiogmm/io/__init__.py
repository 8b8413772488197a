"""Every file audiogmm writes: :func:`save` / :func:`load` (mixtures, classifiers, Stats) and
:class:`EMCheckpoint`, each kind checked by its table (:mod:`.tables`) on save and on load."""

from .. import lazy_exports

__all__ = ["EMCheckpoint", "load", "save"]

# lazy: the data layer checks its files with io.tables without importing the models
__getattr__, __dir__ = lazy_exports(__name__, dict.fromkeys(__all__, ".modelfile"))
