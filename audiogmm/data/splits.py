"""Train/test splits of a manifest: deterministic, stratified per label, recorded in the model
(:func:`split_spec`): evaluation re-makes it, refuses training files (:func:`training_overlap`)."""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np

from ..engine import default_workers
from ..exceptions import DatasetError, ParameterError
from .manifests import Record, content_hash

__all__ = ["IDENTITY", "TRAIN_FRACTION", "file_identity", "select", "split_records", "split_spec",
           "stored_training_paths", "training_overlap"]  # fmt: skip

#: Share of each label's files that go to "train" when a manifest has no split column.
TRAIN_FRACTION = 0.7


def split_records(records: Sequence[Record], *, train_fraction: float = TRAIN_FRACTION,
                  seed: int = 0) -> list[Record]:  # fmt: skip
    """The records (same order) with a deterministic, stratified train/test ``split``.
    Records that all have a split (a CSV ``split`` column) are returned unchanged; some but
    not all is a DatasetError. Else each label's files, sorted by path, are shuffled by a
    generator seeded with ``(seed, crc32(label))``, and ``round(train_fraction * n)`` go to
    ``"train"``: at least one, and at least one ``"test"`` of a label with two or more."""
    if not (0.0 < float(train_fraction) < 1.0):
        raise ParameterError(f"train_fraction must be in (0, 1), got {train_fraction}")
    records = list(records)
    has = [r.split is not None for r in records]
    if records and all(has):
        return records
    if any(has):
        raise DatasetError(f"{sum(has)} of {len(records)} records already have a split; "
                           "give every record a split or none")  # fmt: skip
    by_label: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_label.setdefault(r.label, []).append(i)
    split_of: dict[int, str] = {}
    for label, idx in by_label.items():
        idx.sort(key=lambda i: records[i].path)
        n = len(idx)
        n_train = max(1, min(int(round(train_fraction * n)), n - 1)) if n >= 2 else 1
        rng = np.random.default_rng([int(seed), zlib.crc32(label.encode("utf-8"))])
        for rank, j in enumerate(rng.permutation(n)):
            split_of[idx[j]] = "train" if rank < n_train else "test"
    return [replace(r, split=split_of[i]) for i, r in enumerate(records)]


def select(records: Iterable[Record], split: str) -> list[Record]:
    """Records whose ``split`` equals *split*; DatasetError listing the splits present if none."""
    records = list(records)
    out = [r for r in records if r.split == split]
    if not out:
        present = sorted({str(r.split) for r in records})
        hint = " (call split_records first)" if present == ["None"] else ""
        raise DatasetError(f"no record in split {split!r}; splits present: {present}{hint}")
    return out


#: How a training file is identified in a split block: a hash of its bytes, so a
#: renamed, moved or copied file is still recognised (name, path and mtime are not used).
IDENTITY = "blake2b-64 of the file bytes"


def file_identity(path: str | os.PathLike) -> str:
    """16 hex digits of a BLAKE2b hash of a file's bytes: a few hundred MB/s, far cheaper
    than decoding, and it catches renamed copies that a path would miss."""
    h = hashlib.blake2b(digest_size=8)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _identities(paths: Sequence[str], n_jobs: int | None, *, skip_unreadable: bool,
                cache_dir: str | os.PathLike | None = None) -> list[str | None]:  # fmt: skip
    """:func:`file_identity` of each path (None if unreadable and ``skip_unreadable``), on
    ``n_jobs`` threads (reads and BLAKE2b release the GIL), kept in ``cache_dir`` if given."""
    from .cache import FileFacts
    with FileFacts(cache_dir) as facts:
        def one(path: str) -> str | None:
            try:
                return facts.get(path, IDENTITY, 8, lambda p: bytes.fromhex(file_identity(p))).hex()
            except OSError:
                if skip_unreadable:
                    return None
                raise
        n = max(1, min(len(paths), default_workers() if n_jobs is None else n_jobs))
        with ThreadPoolExecutor(n) as pool:  # not an executor: a command has one, for its stages
            return list(pool.map(one, paths))


def split_spec(manifest: Sequence[Record], train_records: Iterable[Record], *, split: str | None,
               seed: int, train_fraction: float, n_jobs: int | None = None,
               cache_dir: str | os.PathLike | None = None) -> dict[str, Any]:  # fmt: skip
    """The split block a model stores (:data:`audiogmm.io.tables.SPLIT`) for ``train_records``
    (the files used), chosen from ``manifest`` (every record as read) by ``split`` (None or
    ``"all"``: every record), ``seed`` and ``train_fraction`` (:func:`split_records`);
    ``n_jobs`` threads hash the files (``train_files``: sorted distinct
    :func:`file_identity`), kept in ``cache_dir``."""
    manifest = list(manifest)
    ids = _identities([r.path for r in train_records], n_jobs, skip_unreadable=False,
                      cache_dir=cache_dir)  # fmt: skip
    return {
        "manifest_hash": content_hash(manifest), "n_manifest_files": len(manifest),
        "split": split or "all",
        "from_column": bool(manifest) and all(r.split is not None for r in manifest),
        "seed": int(seed), "train_fraction": float(train_fraction),
        "identity": IDENTITY, "train_files": sorted(set(ids)),
    }  # fmt: skip


def training_overlap(block: dict[str, Any], records: Iterable[Record], *, n_jobs: int | None = None,
                     cache_dir: str | os.PathLike | None = None) -> list[Record]:  # fmt: skip
    """The records (in input order) whose bytes match a training file of a checked split
    block (hashed as :func:`split_spec` does; an unreadable file is left to the extraction)."""
    records, trained = list(records), set(block["train_files"])
    ids = _identities([r.path for r in records], n_jobs, skip_unreadable=True,
                      cache_dir=cache_dir)  # fmt: skip
    return [r for r, i in zip(records, ids) if i in trained]


def stored_training_paths(block: dict[str, Any], manifest: Sequence[Record]) -> set[str] | None:
    """The paths of *manifest* (every record as read) that a checked split block put in
    training; None when the block was made from another manifest (content hash)."""
    manifest = list(manifest)
    if content_hash(manifest) != block["manifest_hash"]:
        return None
    if block["split"] == "all":
        return {r.path for r in manifest}
    records = split_records(manifest, train_fraction=block["train_fraction"], seed=block["seed"])
    return {r.path for r in records if r.split == block["split"]}
