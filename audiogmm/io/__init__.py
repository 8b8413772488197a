"""Every file audiogmm writes: one table per kind, checked on save and on load.

:func:`save` and :func:`load` handle a :class:`~audiogmm.mixture.DiagGMM`, a
:class:`~audiogmm.models.GMMClassifier`, a :class:`~audiogmm.models.UBMClassifier`, a
:class:`~audiogmm.models.FusedClassifier` and :class:`~audiogmm.mixture.Stats`;
:class:`EMCheckpoint` the state of an interrupted EM run. The container (one ``.npz``,
no pickle, checksummed) is :mod:`audiogmm.io.container`, atomic writes
:mod:`audiogmm.io.atomic`; the field tables are
:mod:`audiogmm.io.tables`, in the vocabulary of :mod:`audiogmm.io.schema`.
"""

from ..lazy import lazy_exports

__all__ = ["EMCheckpoint", "load", "save"]

# lazy: the data layer checks its files with io.tables without importing the models
__getattr__, __dir__ = lazy_exports(
    __name__, {"EMCheckpoint": ".checkpoint", "load": ".modelfile", "save": ".modelfile"}
)
