"""Dataset manifests: which audio files, with which label, in which split.

Three layouts are read into a list of :class:`Record` (absolute path, label,
split or ``None``):

* a folder with one sub-folder per label (audio files found recursively in
  each sub-folder; hidden files and folders are skipped);
* a CSV file with a header ``path,label[,split]`` (paths relative to the CSV's
  folder, or absolute);
* a Kaldi data directory: ``wav.scp`` (``utt path``) + ``utt2spk`` (the speaker
  is the label).

All listings are sorted, so a manifest reads the same on every machine.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
import stat
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Optional, Union

from ..audio import AUDIO_EXTENSIONS
from ..exceptions import DatasetError, ParameterError
from ..io.atomic import atomic_write

__all__ = [
    "SPLIT_NAMES",
    "Record",
    "audio_files_under",
    "content_hash",
    "expand_paths",
    "read_csv",
    "read_csv_rows",
    "read_folder",
    "read_kaldi_dir",
    "read_manifest",
    "write_csv",
]

PathLike = Union[str, "os.PathLike[str]"]

_CSV_COLUMNS = ("path", "label", "split")
_MAX_LISTED = 5
#: The values a manifest's ``split`` column may hold (case matters): a typo such as
#: ``Train`` or ``trian`` would otherwise leave its files silently out of every split.
SPLIT_NAMES = ("train", "dev", "test", "enrol", "cohort")
#: Longest line of a CSV or Kaldi table, in bytes (far beyond any path): bounds memory.
MAX_LINE_BYTES = 1 << 20


@dataclass(frozen=True)
class Record:
    """One audio file of a dataset.

    Attributes
    ----------
    path : str
        Absolute path of the audio file.
    label : str
        Class label (sub-folder name, CSV ``label`` column, or Kaldi speaker).
    split : str or None
        ``"train"``, ``"test"`` (or any name from a CSV ``split`` column), or
        ``None`` before :func:`split_records`.
    """

    path: str
    label: str
    split: Optional[str] = None


def listing(items: Sequence[str]) -> str:
    shown = ", ".join(repr(s) for s in items[:_MAX_LISTED])
    more = f" and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else ""
    return shown + more


def _check_unique_and_present(records: list[Record], source: str) -> None:
    seen: dict[str, int] = {}
    dups = []
    for r in records:
        if r.path in seen:
            dups.append(r.path)
        seen[r.path] = 1
    if dups:
        raise DatasetError(f"{source!r}: duplicate path(s) in manifest: {listing(dups)}")
    missing = [r.path for r in records if not os.path.isfile(r.path)]
    if missing:
        raise DatasetError(
            f"{source!r}: {len(missing)} file(s) listed in the manifest do not exist: "
            f"{listing(missing)}"
        )


def read_folder(root: PathLike) -> list[Record]:
    """Read a folder with one sub-folder per label.

    Parameters
    ----------
    root : str or os.PathLike
        ``root/<label>/**/<file>`` with an audio extension (``.wav .flac .ogg .mp3
        .aiff .aif .au``, any case). Files directly in *root* are ignored.

    Returns
    -------
    list of Record
        Sorted by label, then path; ``split`` is ``None``.

    Raises
    ------
    DatasetError
        No label sub-folder, or a label sub-folder without any audio file.
    """
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
    records: list[Record] = []
    empty = []
    for label in label_dirs:
        found = audio_files_under(os.path.join(base, label))
        if not found:
            empty.append(label)
        records.extend(Record(p, label) for p in found)
    if empty:
        raise DatasetError(
            f"{base!r}: label folder(s) with zero audio files: {listing(empty)} "
            f"(audio extensions: {' '.join(AUDIO_EXTENSIONS)})"
        )
    return records



def audio_files_under(folder: PathLike) -> list[str]:
    """The audio files (by extension, :data:`~audiogmm.audio.AUDIO_EXTENSIONS`) under
    ``folder``, recursively, sorted; hidden files and folders are left out."""
    found = []
    for dirpath, dirnames, filenames in os.walk(os.fspath(folder)):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(
            os.path.join(dirpath, name)
            for name in filenames
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS
        )
    return sorted(found)


def expand_paths(paths: Iterable[PathLike]) -> list[str]:
    """Files as given, folders replaced by the audio files under them (in order).

    Anything that is not a folder is kept as given, so a missing or unreadable
    file is reported by the extraction, like bad audio.
    """
    out: list[str] = []
    for p in paths:
        p = os.fspath(p)
        out.extend(audio_files_under(p) if os.path.isdir(p) else [p])
    return out

def _text_lines(path: str, what: str) -> Iterator[str]:
    """The lines of a UTF-8 text file (BOM dropped), each refused with its line number when
    it is not UTF-8 or longer than :data:`MAX_LINE_BYTES`."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block open() forever
            raise DatasetError(f"{path!r}: {what} is not a regular file")
        f = open(path, "rb")
    except FileNotFoundError:
        raise DatasetError(f"{path!r}: {what} file not found") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path!r}: cannot read {what} ({exc})") from None
    with f:
        lineno = 0
        while True:
            lineno += 1
            try:
                raw = f.readline(MAX_LINE_BYTES + 1)
            except OSError as exc:
                raise DatasetError(f"{path!r} line {lineno}: cannot read {what} ({exc})") from None
            if not raw:
                return
            if len(raw) > MAX_LINE_BYTES:
                raise DatasetError(
                    f"{path!r} line {lineno}: longer than {MAX_LINE_BYTES} bytes; not a {what}"
                )
            if lineno == 1:
                if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                    raise DatasetError(f"{path!r}: {what} is UTF-16 text; save it as UTF-8")
                if raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8) :]
            if b"\0" in raw:
                raise DatasetError(
                    f"{path!r} line {lineno}: NUL byte (UTF-16 or binary data?); save the "
                    f"{what} as UTF-8 text"
                )
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DatasetError(
                    f"{path!r} line {lineno}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at "
                    f"column {exc.start + 1}; Latin-1 or another encoding?); save the {what} "
                    "as UTF-8"
                ) from None


def read_csv_rows(
    path: PathLike, *, what: str
) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """Open a CSV table with a header row: its column names, and its rows one at a time.

    The one CSV reader of manifests and trials files. Every problem is one
    :class:`~audiogmm.exceptions.DatasetError` naming the file and the line: not a
    regular file, not UTF-8 (UTF-16, Latin-1), a NUL byte, a line over
    :data:`MAX_LINE_BYTES` or a field over :func:`csv.field_size_limit`, a repeated
    column name, or non-empty cells beyond the header's columns. A UTF-8 BOM is
    accepted. Rows stream, so memory does not grow with the file.

    Parameters
    ----------
    path : str or os.PathLike
    what : str
        What the file is, for messages (``"manifest"``, ``"trials file"``).

    Returns
    -------
    header : list of str
        Column names, stripped of spaces.
    rows : iterator of (int, dict of str to str)
        The line number where each row ends, and its cells by column name
        (stripped; ``""`` for a missing cell). Blank rows are left out.
    """
    name = os.fspath(path)
    gen = _csv_rows(name, what)
    header = next(gen)
    return header, gen  # type: ignore[return-value]


def _csv_rows(name: str, what: str):
    n_lines = 0  # lines read so far: csv's own line_num lags on some errors

    def counted() -> Iterator[str]:
        nonlocal n_lines
        for line in _text_lines(name, what):
            n_lines += 1
            yield line

    reader = csv.reader(counted())

    def rows() -> Iterator[list[str]]:
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:  # a field over the size limit, a stray quote
                raise DatasetError(f"{name!r} line {n_lines}: {exc}") from None
            if any(c.strip() for c in row):
                yield row

    it = rows()
    header = [h.strip() for h in next(it, [])]
    if len(set(header)) != len(header):
        raise DatasetError(f"{name!r}: repeated column names in header {header}")
    yield header
    for row in it:
        extra = row[len(header) :]
        if any(c.strip() for c in extra):
            raise DatasetError(
                f"{name!r} line {n_lines}: {len(row)} cells but the header has "
                f"{len(header)} columns (an unquoted comma?)"
            )
        cells = [c.strip() for c in row[: len(header)]]
        yield n_lines, dict(zip(header, cells + [""] * (len(header) - len(cells))))


def read_csv(
    path: PathLike, *, extra_columns: Literal["error", "ignore"] = "error"
) -> list[Record]:
    """Read a CSV manifest with header ``path,label[,split]``.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file (UTF-8, optional BOM). Relative paths in it are relative
        to the CSV's folder.
    extra_columns : {"error", "ignore"}
        What to do with columns other than ``path``, ``label`` and ``split``.

    Returns
    -------
    list of Record
        In file order. An empty ``split`` cell gives ``split=None``.

    Raises
    ------
    DatasetError
        Missing CSV, not UTF-8 text (:func:`read_csv_rows`), missing or unknown
        columns, empty path or label cell, a split value outside :data:`SPLIT_NAMES`,
        a listed file that does not exist, duplicate paths, or a mix of rows with and
        without a split.
    """
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
    folder = os.path.dirname(csv_path)
    records = []
    for lineno, row in rows:
        p, label, split = row["path"], row["label"], row.get("split") or None
        if not p or not label:
            raise DatasetError(f"{csv_path!r} line {lineno}: empty path or label cell: {row}")
        full = os.path.normpath(p if os.path.isabs(p) else os.path.join(folder, p))
        records.append(Record(full, label, split))
    if not records:
        raise DatasetError(f"{csv_path!r}: no rows after the header")
    has_split = {r.split is not None for r in records}
    if len(has_split) == 2:
        raise DatasetError(
            f"{csv_path!r}: some rows have a split and some do not; fill the split column "
            "for every row or leave it out"
        )
    odd = sorted({r.split for r in records if r.split is not None} - set(SPLIT_NAMES))
    if odd:
        found = sorted({r.split for r in records if r.split is not None})
        raise DatasetError(
            f"{csv_path!r}: unknown split value(s) {odd} in the split column (found {found}); "
            f"expected some of {list(SPLIT_NAMES)}"
        )
    _check_unique_and_present(records, csv_path)
    return records


def read_kaldi_table(path: str) -> list[tuple[str, str]]:
    rows = []
    for lineno, line in enumerate(_text_lines(path, "Kaldi table"), start=1):
        line = line.strip()
        if not line:
            continue
        parts = line.split(None, 1)
        if len(parts) != 2:
            raise DatasetError(f"{path!r} line {lineno}: expected '<key> <value>', got {line!r}")
        rows.append((parts[0], parts[1].strip()))
    return rows


def read_kaldi_dir(data_dir: PathLike) -> list[Record]:
    """Read a Kaldi data directory (``wav.scp`` + ``utt2spk``); the label is the speaker.

    Parameters
    ----------
    data_dir : str or os.PathLike
        Holds ``wav.scp`` (``<utt> <path>``) and ``utt2spk`` (``<utt> <spk>``).
        Relative paths in ``wav.scp`` are tried against *data_dir*, then against
        the current directory (Kaldi's convention: the recipe root).

    Returns
    -------
    list of Record
        Sorted by utterance id; ``split`` is ``None``.

    Raises
    ------
    DatasetError
        Missing ``utt2spk``, piped ``wav.scp`` entries (``... |``), archive
        entries, a ``segments`` file, utterances without a speaker, duplicate
        utterances or paths, or missing audio files.
    """
    base = os.path.abspath(os.fspath(data_dir))
    scp = os.path.join(base, "wav.scp")
    u2s = os.path.join(base, "utt2spk")
    if not os.path.isfile(scp):
        raise DatasetError(f"{base!r}: not a Kaldi data directory (no wav.scp)")
    if not os.path.isfile(u2s):
        raise DatasetError(f"{base!r}: wav.scp found but utt2spk is missing")
    if os.path.exists(os.path.join(base, "segments")):
        raise DatasetError(
            f"{base!r}: a 'segments' file is present, so its utterances are not files; "
            "`audiogmm train`, `evaluate` and `extract --format kaldi` honour segments, as "
            "does audiogmm.data.kaldi.read_segments"
        )
    wav = read_kaldi_table(scp)
    spk = dict(read_kaldi_table(u2s))
    utts = [u for u, _ in wav]
    dup_utts = sorted(u for u, c in Counter(utts).items() if c > 1)
    if dup_utts:
        raise DatasetError(f"{scp!r}: duplicate utterance id(s): {listing(dup_utts)}")
    records = []
    for utt, value in sorted(wav):
        if value.endswith("|"):
            raise DatasetError(
                f"{scp!r}: utterance {utt!r} is a command pipe ({value!r}); it would run a "
                "shell command written in a data file, so piped entries are unsupported here. "
                "If you trust this directory, `audiogmm extract DIR --format kaldi --allow-pipes "
                "-o OUT` turns them into feats.scp"
            )
        if value.startswith("ark:") or ".ark:" in value:
            raise DatasetError(f"{scp!r}: utterance {utt!r} points into an archive; unsupported")
        if utt not in spk:
            raise DatasetError(f"{u2s!r}: no speaker for utterance {utt!r}")
        if os.path.isabs(value):
            full = value
        else:
            cand = os.path.join(base, value)
            full = cand if os.path.exists(cand) else os.path.abspath(value)
        records.append(Record(os.path.normpath(full), spk[utt]))
    if not records:
        raise DatasetError(f"{scp!r}: no utterances")
    _check_unique_and_present(records, scp)
    return records


def read_manifest(source: PathLike, **kwargs: str) -> list[Record]:
    """Read a manifest, detecting its layout.

    Parameters
    ----------
    source : str or os.PathLike
        A Kaldi data directory (a directory holding ``wav.scp``), a folder of
        label sub-folders, or a CSV file ``path,label[,split]``.
    **kwargs
        Passed to :func:`read_csv` (``extra_columns``).

    Returns
    -------
    list of Record

    Raises
    ------
    DatasetError
        If *source* does not exist or its content is malformed.

    Examples
    --------
    >>> records = read_manifest("data_samples/speakers")  # doctest: +SKIP
    >>> records = split_records(records, train_fraction=0.7, seed=0)  # doctest: +SKIP
    >>> train = select(records, "train")  # doctest: +SKIP
    """
    p = os.path.abspath(os.fspath(source))
    if os.path.isdir(p):
        if os.path.isfile(os.path.join(p, "wav.scp")):
            return read_kaldi_dir(p)
        return read_folder(p)
    if os.path.isfile(p):
        return read_csv(p, **kwargs)  # type: ignore[arg-type]
    raise DatasetError(f"{p!r}: manifest not found (expected a folder, a CSV or a Kaldi data dir)")


def content_hash(records: Iterable[Record]) -> str:
    """A short hash of a manifest's content: each record's relative path, label and split.

    Paths are taken relative to the deepest folder that holds every file, so the
    same dataset copied or mounted elsewhere hashes the same; the order of the
    records does not matter. The audio bytes are not read (see
    :func:`audiogmm.data.splits.file_identity` for that).

    Parameters
    ----------
    records : iterable of Record
        As read by :func:`read_manifest` (before or after a split is assigned;
        the two hash differently, so hash what the manifest itself says).

    Returns
    -------
    str
        16 hex digits (the first 64 bits of a SHA-256).
    """
    records = list(records)
    root = os.path.commonpath([os.path.dirname(r.path) for r in records]) if records else ""
    rows = sorted(
        f"{os.path.relpath(r.path, root).replace(os.sep, '/')}\t{r.label}\t{r.split or ''}"
        for r in records
    )
    h = hashlib.sha256()
    for row in rows:
        h.update(row.encode("utf-8") + b"\n")
    return h.hexdigest()[:16]


def write_csv(records: Iterable[Record], path: PathLike) -> None:
    """Write records as a ``path,label[,split]`` CSV (paths absolute), atomically."""
    records = list(records)
    dst = os.path.abspath(os.fspath(path))
    with_split = any(r.split is not None for r in records)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "label", "split"] if with_split else ["path", "label"])
    for r in records:
        w.writerow([r.path, r.label, r.split or ""] if with_split else [r.path, r.label])
    data = buf.getvalue().encode("utf-8")
    atomic_write(dst, lambda f: f.write(data))
