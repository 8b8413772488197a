"""Dataset manifests: which audio files, with which label, in which split.

Three layouts give a list of :class:`Record`: a folder with one sub-folder per label (audio
found recursively, hidden files and folders skipped), a CSV ``path,label[,split]``, and a
Kaldi data directory (``wav.scp`` + ``utt2spk``). Listings are sorted: the same everywhere.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Optional, Union

from ..audio import AUDIO_EXTENSIONS
from ..exceptions import DatasetError, ParameterError
from ..io.atomic import atomic_write
from .tables import kaldi_labels, kaldi_table, listing, read_csv_rows, refuse_pipe, wav_path

__all__ = [
    "SPLIT_NAMES", "Record", "audio_files_under", "content_hash", "expand_paths", "read_csv",
    "read_folder", "read_kaldi_dir", "read_manifest", "write_csv"
]  # fmt: skip

PathLike = Union[str, "os.PathLike[str]"]

_CSV_COLUMNS = ("path", "label", "split")
#: The values a manifest's ``split`` column may hold (case matters): a typo such as
#: ``Train`` or ``trian`` would otherwise leave its files silently out of every split.
SPLIT_NAMES = ("train", "dev", "test", "enrol", "cohort")


@dataclass(frozen=True)
class Record:
    """One audio file: its absolute ``path``, ``label`` and ``split`` (one of
    :data:`SPLIT_NAMES`, or None before :func:`~audiogmm.data.splits.split_records`)."""

    path: str
    label: str
    split: Optional[str] = None


def _check_unique_and_present(records: list[Record], source: str) -> None:
    dups = [p for p, n in Counter(r.path for r in records).items() if n > 1]
    if dups:
        raise DatasetError(f"{source!r}: duplicate path(s) in manifest: {listing(dups)}")
    missing = [r.path for r in records if not os.path.isfile(r.path)]
    if missing:
        raise DatasetError(
            f"{source!r}: {len(missing)} file(s) listed in the manifest do not exist: "
            f"{listing(missing)}"
        )


def read_folder(root: PathLike) -> list[Record]:
    """Read ``root/<label>/**/<audio file>`` (files directly in *root* are ignored), sorted
    by label then path; DatasetError without a label sub-folder, or for one without audio."""
    base = os.path.abspath(os.fspath(root))
    if not os.path.isdir(base):
        raise DatasetError(f"{base!r}: expected a directory of label sub-folders")
    label_dirs = sorted(
        e.name for e in os.scandir(base) if e.is_dir() and not e.name.startswith(".")
    )
    if not label_dirs:
        raise DatasetError(
            f"{base!r}: no label sub-folders found; expected <root>/<label>/<audio files>"
        )
    found = {label: audio_files_under(os.path.join(base, label)) for label in label_dirs}
    empty = [label for label in label_dirs if not found[label]]
    if empty:
        raise DatasetError(
            f"{base!r}: label folder(s) with zero audio files: {listing(empty)} "
            f"(audio extensions: {' '.join(AUDIO_EXTENSIONS)})"
        )
    return [Record(p, label) for label in label_dirs for p in found[label]]


def audio_files_under(folder: PathLike) -> list[str]:
    """The audio files (by extension, :data:`~audiogmm.audio.AUDIO_EXTENSIONS`) under
    ``folder``, recursively, sorted; hidden files and folders are left out."""
    found = []
    for dirpath, dirnames, filenames in os.walk(os.fspath(folder)):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [os.path.join(dirpath, f) for f in filenames
                  if not f.startswith(".") and os.path.splitext(f)[1].lower() in AUDIO_EXTENSIONS]
    return sorted(found)


def expand_paths(paths: Iterable[PathLike]) -> list[str]:
    """Files as given (a missing one is reported by the extraction, like bad audio),
    folders replaced by the audio files under them."""
    paths = [os.fspath(p) for p in paths]
    return [f for p in paths for f in (audio_files_under(p) if os.path.isdir(p) else [p])]


def read_csv(
    path: PathLike, *, extra_columns: Literal["error", "ignore"] = "error"
) -> list[Record]:
    """The records of a CSV manifest ``path,label[,split]`` (paths relative to its folder),
    in file order; an empty ``split`` cell gives None. ``extra_columns``: what to do with
    other columns. DatasetError for text :func:`~.tables.read_csv_rows` refuses, missing
    or unknown columns, an empty cell, a split outside :data:`SPLIT_NAMES` or on some rows
    only, a missing file, or duplicate paths."""
    csv_path = os.path.abspath(os.fspath(path))
    if extra_columns not in ("error", "ignore"):
        raise ParameterError(f"extra_columns must be 'error' or 'ignore', got {extra_columns!r}")
    header, rows = read_csv_rows(csv_path, what="manifest")
    if not header:
        raise DatasetError(f"{csv_path!r}: empty CSV; expected a header 'path,label[,split]'")
    missing_cols = [c for c in ("path", "label") if c not in header]
    if missing_cols:
        raise DatasetError(
            f"{csv_path!r}: missing column(s) {missing_cols}; expected 'path,label[,split]', "
            f"got {header}"
        )
    unknown = [c for c in header if c not in _CSV_COLUMNS]
    if unknown and extra_columns == "error":
        raise DatasetError(
            f"{csv_path!r}: unknown column(s) {unknown}; expected only 'path,label[,split]'"
        )
    folder, records = os.path.dirname(csv_path), []
    for lineno, row in rows:
        if not row["path"] or not row["label"]:
            raise DatasetError(f"{csv_path!r} line {lineno}: empty path or label cell: {row}")
        path = os.path.normpath(os.path.join(folder, row["path"]))
        records.append(Record(path, row["label"], row.get("split") or None))
    if not records:
        raise DatasetError(f"{csv_path!r}: no rows after the header")
    splits = {r.split for r in records}
    if None in splits and len(splits) > 1:
        raise DatasetError(
            f"{csv_path!r}: some rows have a split and some do not; fill the split column "
            "for every row or leave it out"
        )
    odd = sorted(splits - {None, *SPLIT_NAMES})
    if odd:
        raise DatasetError(
            f"{csv_path!r}: unknown split value(s) {odd} in the split column (found "
            f"{sorted(splits - {None})}); expected some of {list(SPLIT_NAMES)}"
        )
    _check_unique_and_present(records, csv_path)
    return records


def read_kaldi_dir(data_dir: PathLike) -> list[Record]:
    """Read a Kaldi data directory (``wav.scp`` + ``utt2spk``; the label is the speaker),
    sorted by utterance id, ``split`` None; paths as :func:`~.tables.kaldi_path` resolves
    them. DatasetError for a missing ``utt2spk``, piped or archive entries, a ``segments``
    file (:mod:`audiogmm.data.kaldi` reads those), utterances without a speaker, duplicate
    utterances or paths, or missing audio files."""
    base = os.path.abspath(os.fspath(data_dir))
    scp = os.path.join(base, "wav.scp")
    if not os.path.isfile(scp):
        raise DatasetError(f"{base!r}: not a Kaldi data directory (no wav.scp)")
    if os.path.exists(os.path.join(base, "segments")):
        raise DatasetError(
            f"{base!r}: a 'segments' file is present, so its utterances are not files; "
            "`audiogmm train`, `evaluate` and `extract --format kaldi` honour segments, as "
            "does audiogmm.data.kaldi.read_segments"
        )
    wav = sorted(kaldi_table(base, "wav.scp"))
    spk = kaldi_labels(base, [u for u, _ in wav], required=True)
    for utt, value in wav:
        refuse_pipe(scp, utt, value)
    records = [Record(os.path.normpath(wav_path(scp, u, v)), spk[u]) for u, v in wav]
    _check_unique_and_present(records, scp)
    return records


def read_manifest(source: PathLike, **kwargs: str) -> list[Record]:
    """Read a Kaldi data directory, a folder of label sub-folders or a CSV manifest
    (``**kwargs`` go to :func:`read_csv`); a DatasetError when it is missing or malformed.

    Examples
    --------
    >>> records = read_manifest("data_samples/speakers")  # doctest: +SKIP
    >>> records = split_records(records, train_fraction=0.7, seed=0)  # doctest: +SKIP
    >>> train = select(records, "train")  # doctest: +SKIP
    """
    p = os.path.abspath(os.fspath(source))
    if os.path.isdir(p):
        return (read_kaldi_dir if os.path.isfile(os.path.join(p, "wav.scp")) else read_folder)(p)
    if os.path.isfile(p):
        return read_csv(p, **kwargs)  # type: ignore[arg-type]
    raise DatasetError(f"{p!r}: manifest not found (expected a folder, a CSV or a Kaldi data dir)")


def content_hash(records: Iterable[Record]) -> str:
    """16 hex digits of a SHA-256 of each record's path, label and split, in any order.

    Paths are relative to the deepest folder holding every file, so a copy of the dataset
    elsewhere hashes the same; the audio is not read (:func:`~.splits.file_identity` does).
    """
    records = list(records)
    root = os.path.commonpath([os.path.dirname(r.path) for r in records]) if records else ""
    rows = sorted(
        f"{os.path.relpath(r.path, root).replace(os.sep, '/')}\t{r.label}\t{r.split or ''}"
        for r in records
    )
    return hashlib.sha256("".join(f"{row}\n" for row in rows).encode("utf-8")).hexdigest()[:16]


def write_csv(records: Iterable[Record], path: PathLike) -> None:
    """Write records as a ``path,label[,split]`` CSV (paths absolute), atomically."""
    records = list(records)
    n = 3 if any(r.split is not None for r in records) else 2
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerows([_CSV_COLUMNS[:n], *([r.path, r.label, r.split or ""][:n] for r in records)])
    data = buf.getvalue().encode("utf-8")
    atomic_write(os.path.abspath(os.fspath(path)), lambda f: f.write(data))
