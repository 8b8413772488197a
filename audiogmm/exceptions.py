"""The audiogmm errors: each derives from :class:`AudioGMMError` and from the matching
built-in, so that ``except ValueError`` or ``except OSError`` keeps working."""

from __future__ import annotations

__all__ = ["AudioGMMError", "ParameterError", "AudioError", "FeatureError", "DatasetError",
           "ClusterError", "ModelFileError", "ConvergenceWarning",
           "OversizedModelWarning"]  # fmt: skip


class AudioGMMError(Exception):
    """Root of every error raised by audiogmm."""


class ParameterError(AudioGMMError, ValueError):
    """A parameter or an input array is invalid (shape, value, dtype)."""


class AudioError(AudioGMMError, OSError):
    """An audio file is missing, unreadable, corrupt, empty or too short."""


class FeatureError(AudioGMMError, ValueError):
    """Features could not be computed (e.g. a silent clip, non-finite values)."""


class DatasetError(AudioGMMError, ValueError):
    """A manifest (folder, CSV or Kaldi directory) is malformed."""


class ModelFileError(AudioGMMError, ValueError):
    """A model or statistics file is truncated, tampered with, or of another version."""


class ConvergenceWarning(UserWarning):
    """EM stopped at ``max_iter`` before reaching ``tol``."""


class OversizedModelWarning(ConvergenceWarning):
    """A class has too few frames for its number of components (see ``oversized_reason``)."""


class ClusterError(AudioGMMError, RuntimeError):
    """The distributed engine failed: the Dask scheduler cannot be reached or was lost."""
