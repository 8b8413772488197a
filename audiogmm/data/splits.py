"""Train/test splits of a manifest: deterministic, stratified per label."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import replace

import numpy as np

from ..exceptions import DatasetError, ParameterError
from .manifests import Record

__all__ = ["TRAIN_FRACTION", "labels", "select", "split_records"]

#: Share of each label's files that go to "train" when a manifest has no split column.
TRAIN_FRACTION = 0.7


def labels(records: Iterable[Record]) -> list[str]:
    """Sorted distinct labels of *records*."""
    return sorted({r.label for r in records})


def _label_seed(seed: int, label: str) -> np.random.Generator:
    # One stream per (seed, label): a label's split does not depend on the other labels.
    return np.random.default_rng([int(seed), zlib.crc32(label.encode("utf-8"))])


def split_records(
    records: Sequence[Record], *, train_fraction: float = TRAIN_FRACTION, seed: int = 0
) -> list[Record]:
    """Assign a deterministic, stratified train/test split.

    If every record already has a split (e.g. a CSV ``split`` column), the
    records are returned unchanged. Otherwise each label's files (sorted by
    path) are shuffled with a generator seeded by ``(seed, crc32(label))`` and
    ``round(train_fraction * n)`` go to ``"train"``, clamped so that each label
    has at least one train record and, when it has >= 2 files, at least one
    test record.

    Parameters
    ----------
    records : sequence of Record
    train_fraction : float in (0, 1)
    seed : int

    Returns
    -------
    list of Record
        Same order as *records*, with ``split`` in ``{"train", "test"}``.

    Raises
    ------
    ParameterError
        *train_fraction* outside (0, 1).
    DatasetError
        Some records have a split and others do not.
    """
    if not (0.0 < float(train_fraction) < 1.0):
        raise ParameterError(f"train_fraction must be in (0, 1), got {train_fraction}")
    records = list(records)
    has = [r.split is not None for r in records]
    if records and all(has):
        return records
    if any(has):
        raise DatasetError(
            f"{sum(has)} of {len(records)} records already have a split; "
            "give every record a split or none"
        )
    by_label: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_label.setdefault(r.label, []).append(i)
    split_of: dict[int, str] = {}
    for label in sorted(by_label):
        idx = sorted(by_label[label], key=lambda i: records[i].path)
        n = len(idx)
        n_train = int(round(train_fraction * n))
        n_train = max(1, min(n_train, n - 1)) if n >= 2 else 1
        order = _label_seed(seed, label).permutation(n)
        for rank, j in enumerate(order):
            split_of[idx[j]] = "train" if rank < n_train else "test"
    return [replace(r, split=split_of[i]) for i, r in enumerate(records)]


def select(records: Iterable[Record], split: str) -> list[Record]:
    """Records whose ``split`` equals *split*.

    Raises
    ------
    DatasetError
        If no record has that split (the message lists the splits present).
    """
    records = list(records)
    out = [r for r in records if r.split == split]
    if not out:
        present = sorted({str(r.split) for r in records})
        raise DatasetError(
            f"no record in split {split!r}; splits present: {present}"
            + (" (call split_records first)" if present == ["None"] else "")
        )
    return out
