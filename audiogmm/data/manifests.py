"""The tables users write, and the dataset manifests read from them.

One line reader (:func:`read_csv_rows` for CSVs, :func:`kaldi_table` for Kaldi ``<key>
<value>`` tables) refuses hostile input (not a regular file, UTF-16, Latin-1, NUL bytes,
overlong lines or fields) with one DatasetError naming the file and line. Three layouts give
a list of :class:`Record`: a folder with a sub-folder per label (audio found recursively,
hidden entries skipped), a CSV ``path,label[,split]``, and a Kaldi directory (``wav.scp`` +
``utt2spk``). Listings are sorted: the same everywhere."""

from __future__ import annotations

import codecs
import csv
import hashlib
import itertools
import os
import stat
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Optional

from ..audio import AUDIO_EXTENSIONS, PathLike
from ..exceptions import DatasetError, ParameterError
from ..io.atomic import atomic_write

__all__ = ["MAX_LINE_BYTES", "SPLIT_NAMES", "Record", "audio_files_under", "content_hash",
           "expand_paths", "is_pipe", "kaldi_labels", "kaldi_path", "kaldi_table", "listing",
           "read_csv", "read_csv_rows", "read_folder", "read_kaldi_dir", "read_manifest",
           "refuse_pipe", "wav_path", "write_csv"]  # fmt: skip

#: Longest line of a CSV or Kaldi table, in bytes (far beyond any path): bounds memory.
MAX_LINE_BYTES = 1 << 20
_CSV_COLUMNS = ("path", "label", "split")
#: The values a manifest's ``split`` column may hold (case matters): a typo such as
#: ``Train`` or ``trian`` would otherwise leave its files silently out of every split.
SPLIT_NAMES = ("train", "dev", "test", "enrol", "cohort")


def listing(items: Sequence[str], most: int = 5) -> str:
    """The first ``most`` items, quoted, and how many more there are."""
    more = f" and {len(items) - most} more" if len(items) > most else ""
    return ", ".join(repr(s) for s in items[:most]) + more


def _text_lines(path: str, what: str) -> Iterator[str]:
    """The lines of a UTF-8 text file (BOM dropped), each hostile input refused by line."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block open() forever
            raise DatasetError(f"{path!r}: {what} is not a regular file")
        f = open(path, "rb")
    except FileNotFoundError:
        raise DatasetError(f"{path!r}: {what} file not found") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path!r}: cannot read {what} ({exc})") from None
    with f:
        for lineno in itertools.count(1):
            where = f"{path!r} line {lineno}"
            try:
                raw = f.readline(MAX_LINE_BYTES + 1)
            except OSError as exc:
                raise DatasetError(f"{where}: cannot read {what} ({exc})") from None
            if not raw:
                return
            if len(raw) > MAX_LINE_BYTES:
                raise DatasetError(f"{where}: longer than {MAX_LINE_BYTES} bytes; not a {what}")
            if lineno == 1:
                if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                    raise DatasetError(f"{path!r}: {what} is UTF-16 text; save it as UTF-8")
                raw = raw.removeprefix(codecs.BOM_UTF8)
            if b"\0" in raw:
                raise DatasetError(f"{where}: NUL byte (UTF-16 or binary data?); save the "
                                   f"{what} as UTF-8 text")  # fmt: skip
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DatasetError(f"{where}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at "
                                   f"column {exc.start + 1}; Latin-1 or another encoding?); "
                                   f"save the {what} as UTF-8") from None  # fmt: skip


def read_csv_rows(path: PathLike, *,
                  what: str) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:  # fmt: skip
    """The CSV reader of manifests and trials files (``what`` names them in errors): the
    stripped column names, and an iterator of (the line where each non-blank row ends, its
    stripped cells by column, ``""`` for a missing one). DatasetError besides the text
    refusals: a field over :func:`csv.field_size_limit`, a repeated column, extra cells."""
    name = os.fspath(path)
    n_lines = 0  # lines read so far: csv's own line_num lags on some errors

    def counted() -> Iterator[str]:
        nonlocal n_lines
        for n_lines, line in enumerate(_text_lines(name, what), start=1):  # noqa: B007
            yield line

    def rows() -> Iterator[tuple[int, list[str]]]:
        try:
            for row in csv.reader(counted()):
                if any(row := [c.strip() for c in row]):
                    yield n_lines, row
        except csv.Error as exc:  # a field over the size limit, a stray quote
            raise DatasetError(f"{name!r} line {n_lines}: {exc}") from None
    raw = rows()
    header = next(raw, (0, []))[1]
    if len(set(header)) != len(header):
        raise DatasetError(f"{name!r}: repeated column names in header {header}")

    def cells() -> Iterator[tuple[int, dict[str, str]]]:
        for lineno, row in raw:
            if any(row[len(header) :]):
                raise DatasetError(f"{name!r} line {lineno}: {len(row)} cells but the header has "
                                   f"{len(header)} columns (an unquoted comma?)")  # fmt: skip
            yield lineno, dict(zip(header, row + [""] * (len(header) - len(row))))
    return header, cells()


def kaldi_table(base: str, name: str, *,
                required: bool = True) -> Optional[list[tuple[str, str]]]:  # fmt: skip
    """The ``(key, value)`` rows of the Kaldi table ``base/name``, refused when empty or
    with a repeated key; None when absent and not ``required``."""
    path = os.path.join(base, name)
    if not os.path.isfile(path):
        if required:
            raise DatasetError(f"{base!r}: {name} is missing")
        return None
    rows = []
    for lineno, line in enumerate(_text_lines(path, "Kaldi table"), start=1):
        parts = line.strip().split(None, 1)
        if len(parts) == 1:
            raise DatasetError(f"{path!r} line {lineno}: expected '<key> <value>', "
                               f"got {parts[0]!r}")  # fmt: skip
        if parts:
            rows.append((parts[0], parts[1].strip()))
    dups = sorted(k for k, c in Counter(k for k, _ in rows).items() if c > 1)
    if dups:
        raise DatasetError(f"{path!r}: duplicate id(s): {listing(dups)}")
    if not rows:
        raise DatasetError(f"{path!r}: empty (no utterances)")
    return rows


def kaldi_labels(base: str, utts: Sequence[str], *,
                 required: bool = False) -> dict[str, Optional[str]]:  # fmt: skip
    """Utterance -> speaker from ``base/utt2spk`` (None for every one without that file)."""
    rows = kaldi_table(base, "utt2spk", required=required)
    if rows is None:
        return dict.fromkeys(utts)
    spk = dict(rows)
    missing = [u for u in utts if u not in spk]
    if missing:
        path = os.path.join(base, "utt2spk")
        raise DatasetError(f"{path!r}: no speaker for utterance(s) {listing(missing)}")
    return {u: spk[u] for u in utts}


def kaldi_path(base: str, value: str) -> str:
    """A Kaldi table's path: against ``base``, else the current directory (Kaldi's recipe root)."""
    if os.path.isabs(value):
        return value
    cand = os.path.join(base, value)
    return cand if os.path.exists(cand) else os.path.abspath(value)


def wav_path(scp: str, key: str, value: str) -> str:
    """The audio file of a ``wav.scp`` entry (not a pipe); an archive entry is refused."""
    if value.startswith("ark:") or ".ark:" in value:
        raise DatasetError(f"{scp!r}: {key!r} points into an archive; unsupported")
    return kaldi_path(os.path.dirname(scp), value)


def is_pipe(value: str) -> bool:
    """Whether a table entry is a command pipe (``cmd |`` or ``| cmd``)."""
    v = value.strip()
    return v.endswith("|") or v.startswith("|")


def refuse_pipe(table: str, key: str, value: str, allow_pipes: bool = False) -> None:
    """Refuse a piped entry unless ``allow_pipes``: it runs a shell command from a data file."""
    if is_pipe(value) and not allow_pipes:
        raise DatasetError(f"{table!r}: entry {key!r} is a command pipe ({value!r}); reading it "
                           "would run a shell command written in the data file, so it is "
                           "unsupported unless you trust this directory: pass allow_pipes=True "
                           "(`audiogmm extract DIR --format kaldi --allow-pipes -o OUT` turns it "
                           "into feats.scp)")  # fmt: skip


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
        raise DatasetError(f"{source!r}: {len(missing)} file(s) listed in the manifest do "
                           f"not exist: {listing(missing)}")  # fmt: skip


def read_folder(root: PathLike) -> list[Record]:
    """Read ``root/<label>/**/<audio file>`` (files directly in *root* are ignored), sorted
    by label then path; DatasetError without a label sub-folder, or for one without audio."""
    base = os.path.abspath(os.fspath(root))
    if not os.path.isdir(base):
        raise DatasetError(f"{base!r}: expected a directory of label sub-folders")
    label_dirs = sorted(e.name for e in os.scandir(base)
                        if e.is_dir() and not e.name.startswith("."))  # fmt: skip
    if not label_dirs:
        raise DatasetError(f"{base!r}: no label sub-folders found; "
                           "expected <root>/<label>/<audio files>")  # fmt: skip
    found = {label: audio_files_under(os.path.join(base, label)) for label in label_dirs}
    empty = [label for label in label_dirs if not found[label]]
    if empty:
        raise DatasetError(f"{base!r}: label folder(s) with zero audio files: {listing(empty)} "
                           f"(audio extensions: {' '.join(AUDIO_EXTENSIONS)})")  # fmt: skip
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


def read_csv(path: PathLike, *,
             extra_columns: Literal["error", "ignore"] = "error") -> list[Record]:  # fmt: skip
    """The records of a CSV manifest ``path,label[,split]`` (paths relative to its folder),
    in file order (an empty ``split`` cell: None); ``extra_columns``: what to do with others.
    DatasetError naming the file (and line) for anything else."""
    csv_path = os.path.abspath(os.fspath(path))
    if extra_columns not in ("error", "ignore"):
        raise ParameterError(f"extra_columns must be 'error' or 'ignore', got {extra_columns!r}")
    header, rows = read_csv_rows(csv_path, what="manifest")
    if not header:
        raise DatasetError(f"{csv_path!r}: empty CSV; expected a header 'path,label[,split]'")
    missing_cols = [c for c in ("path", "label") if c not in header]
    if missing_cols:
        raise DatasetError(f"{csv_path!r}: missing column(s) {missing_cols}; expected "
                           f"'path,label[,split]', got {header}")  # fmt: skip
    unknown = [c for c in header if c not in _CSV_COLUMNS]
    if unknown and extra_columns == "error":
        raise DatasetError(f"{csv_path!r}: unknown column(s) {unknown}; "
                           "expected only 'path,label[,split]'")  # fmt: skip
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
        raise DatasetError(f"{csv_path!r}: some rows have a split and some do not; fill the "
                           "split column for every row or leave it out")  # fmt: skip
    odd = sorted(splits - {None, *SPLIT_NAMES})
    if odd:
        raise DatasetError(f"{csv_path!r}: unknown split value(s) {odd} in the split column "
                           f"(found {sorted(splits - {None})}); expected some of "
                           f"{list(SPLIT_NAMES)}")  # fmt: skip
    _check_unique_and_present(records, csv_path)
    return records


def read_kaldi_dir(data_dir: PathLike) -> list[Record]:
    """Read a Kaldi data directory (``wav.scp`` + ``utt2spk``: the label is the speaker),
    sorted by utterance id, paths as :func:`kaldi_path` resolves them; DatasetError for
    piped or archive entries or ``segments`` (see :mod:`audiogmm.data.kaldi`)."""
    base = os.path.abspath(os.fspath(data_dir))
    scp = os.path.join(base, "wav.scp")
    if os.path.exists(os.path.join(base, "segments")):
        raise DatasetError(f"{base!r}: a 'segments' file is present, so its utterances are not "
                           "files; `audiogmm train`, `evaluate` and `extract --format kaldi` "
                           "honour segments, as does audiogmm.data.kaldi.read_segments")
    wav = sorted(kaldi_table(base, "wav.scp"))
    spk = kaldi_labels(base, [u for u, _ in wav], required=True)
    for utt, value in wav:
        refuse_pipe(scp, utt, value)
    records = [Record(os.path.normpath(wav_path(scp, u, v)), spk[u]) for u, v in wav]
    _check_unique_and_present(records, scp)
    return records


def read_manifest(source: PathLike, **kwargs: str) -> list[Record]:
    """Read a Kaldi data directory, a folder of label sub-folders or a CSV manifest
    (``**kwargs`` go to :func:`read_csv`); a DatasetError when it is missing or malformed."""
    p = os.path.abspath(os.fspath(source))
    if os.path.isdir(p):
        return (read_kaldi_dir if os.path.isfile(os.path.join(p, "wav.scp")) else read_folder)(p)
    if os.path.isfile(p):
        return read_csv(p, **kwargs)  # type: ignore[arg-type]
    raise DatasetError(f"{p!r}: manifest not found (expected a folder, a CSV or a Kaldi data dir)")


def content_hash(records: Iterable[Record]) -> str:
    """16 hex digits of a SHA-256 of each record's path (relative to the deepest folder
    holding every file: a copy elsewhere hashes the same), label and split, in any order."""
    records = list(records)
    root = os.path.commonpath([os.path.dirname(r.path) for r in records]) if records else ""
    rows = sorted(f"{os.path.relpath(r.path, root).replace(os.sep, '/')}\t{r.label}\t"
                  f"{r.split or ''}" for r in records)  # fmt: skip
    return hashlib.sha256("".join(f"{row}\n" for row in rows).encode("utf-8")).hexdigest()[:16]


def write_csv(records: Iterable[Record], path: PathLike) -> None:
    """Write records as a ``path,label[,split]`` CSV (paths absolute), atomically."""
    records = list(records)
    n = 3 if any(r.split is not None for r in records) else 2
    rows = ([r.path, r.label, r.split or ""][:n] for r in records)
    atomic_write(os.path.abspath(os.fspath(path)), [_CSV_COLUMNS[:n], *rows])
