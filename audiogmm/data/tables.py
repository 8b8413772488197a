"""The text tables users write: line-bounded UTF-8 lines, CSV rows, Kaldi ``<key> <value>`` tables.

One reader for manifests, trials files and Kaldi tables, so every one of them refuses the
same hostile input (not a regular file, UTF-16, Latin-1, NUL bytes, overlong lines or
fields) with one :class:`~audiogmm.exceptions.DatasetError` naming the file and line.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import os
import stat
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Optional, Union

from ..exceptions import DatasetError

__all__ = [
    "MAX_LINE_BYTES", "is_pipe", "kaldi_labels", "kaldi_path", "kaldi_table", "listing",
    "read_csv_rows", "refuse_pipe", "wav_path"
]  # fmt: skip

PathLike = Union[str, "os.PathLike[str]"]

#: Longest line of a CSV or Kaldi table, in bytes (far beyond any path): bounds memory.
MAX_LINE_BYTES = 1 << 20


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
                raise DatasetError(
                    f"{where}: NUL byte (UTF-16 or binary data?); save the {what} as UTF-8 text"
                )
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DatasetError(
                    f"{where}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column "
                    f"{exc.start + 1}; Latin-1 or another encoding?); save the {what} as UTF-8"
                ) from None


def read_csv_rows(
    path: PathLike, *, what: str
) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """The one CSV reader of manifests and trials files (``what``, e.g. ``"manifest"``, in
    the errors): besides the text refusals, a field over :func:`csv.field_size_limit`, a
    repeated column name and non-empty cells beyond the header's are a DatasetError.

    Returns
    -------
    header : list of str
        Column names, stripped.
    rows : iterator of (int, dict of str to str)
        The line where each non-blank row ends, and its stripped cells by column
        (``""`` for a missing cell).
    """
    name = os.fspath(path)
    n_lines = 0  # lines read so far: csv's own line_num lags on some errors

    def counted() -> Iterator[str]:
        nonlocal n_lines
        for n_lines, line in enumerate(_text_lines(name, what), start=1):  # noqa: B007
            yield line

    def rows() -> Iterator[tuple[int, list[str]]]:
        try:
            for row in csv.reader(counted()):
                if any(c.strip() for c in row):
                    yield n_lines, row
        except csv.Error as exc:  # a field over the size limit, a stray quote
            raise DatasetError(f"{name!r} line {n_lines}: {exc}") from None

    raw = rows()
    header = [h.strip() for h in next(raw, (0, []))[1]]
    if len(set(header)) != len(header):
        raise DatasetError(f"{name!r}: repeated column names in header {header}")

    def cells() -> Iterator[tuple[int, dict[str, str]]]:
        for lineno, row in raw:
            if any(c.strip() for c in row[len(header) :]):
                raise DatasetError(
                    f"{name!r} line {lineno}: {len(row)} cells but the header has "
                    f"{len(header)} columns (an unquoted comma?)"
                )
            row = [c.strip() for c in row[: len(header)]]
            yield lineno, dict(zip(header, row + [""] * (len(header) - len(row))))

    return header, cells()


def kaldi_table(
    base: str, name: str, *, required: bool = True
) -> Optional[list[tuple[str, str]]]:
    """The ``(key, value)`` rows of the Kaldi table ``base/name`` (``wav.scp``, ``utt2spk``,
    ...), refused when empty or with a repeated key; None when absent and not ``required``.
    """
    path = os.path.join(base, name)
    if not os.path.isfile(path):
        if required:
            raise DatasetError(f"{base!r}: {name} is missing")
        return None
    rows = []
    for lineno, line in enumerate(_text_lines(path, "Kaldi table"), start=1):
        parts = line.strip().split(None, 1)
        if len(parts) == 1:
            raise DatasetError(
                f"{path!r} line {lineno}: expected '<key> <value>', got {parts[0]!r}"
            )
        if parts:
            rows.append((parts[0], parts[1].strip()))
    dups = sorted(k for k, c in Counter(k for k, _ in rows).items() if c > 1)
    if dups:
        raise DatasetError(f"{path!r}: duplicate id(s): {listing(dups)}")
    if not rows:
        raise DatasetError(f"{path!r}: empty (no utterances)")
    return rows


def kaldi_labels(
    base: str, utts: Sequence[str], *, required: bool = False
) -> dict[str, Optional[str]]:
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
    """A path written in a Kaldi table: tried against ``base``, then the current directory
    (Kaldi's convention: the recipe root)."""
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
        raise DatasetError(
            f"{table!r}: entry {key!r} is a command pipe ({value!r}); reading it would run a "
            "shell command written in the data file, so it is unsupported unless you trust "
            "this directory: pass allow_pipes=True (`audiogmm extract DIR --format kaldi "
            "--allow-pipes -o OUT` turns it into feats.scp)"
        )
