"""audiogmm.data: folder / CSV / Kaldi manifests, stratified splits."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from audiogmm.data import Record, read_manifest, select, split_records
from audiogmm.data.manifests import read_csv, read_folder, read_kaldi_dir, write_csv
from audiogmm.exceptions import DatasetError, ParameterError

from .conftest_audio import DATA_SAMPLES


def _labels(records):
    return sorted({r.label for r in records})


def touch(p: Path) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"RIFF")  # content is irrelevant for manifests
    return p


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "data"
    for name in ["b.wav", "a.WAV", "sub/c.flac", ".hidden.wav", "notes.txt"]:
        touch(root / "dog" / name)
    for name in ["x.ogg", "y.mp3", "z.aiff", "w.au", "v.aif"]:
        touch(root / "cat" / name)
    touch(root / "stray.wav")  # not in a label folder: ignored
    (root / ".git").mkdir()
    return root


def test_read_folder(folder):
    recs = read_manifest(folder)
    assert [(os.path.relpath(r.path, folder), r.label) for r in recs] == [
        ("cat/v.aif", "cat"),
        ("cat/w.au", "cat"),
        ("cat/x.ogg", "cat"),
        ("cat/y.mp3", "cat"),
        ("cat/z.aiff", "cat"),
        ("dog/a.WAV", "dog"),
        ("dog/b.wav", "dog"),
        ("dog/sub/c.flac", "dog"),
    ]
    assert all(os.path.isabs(r.path) and r.split is None for r in recs)
    assert _labels(recs) == ["cat", "dog"]
    assert read_folder(folder) == recs


def test_folder_errors(tmp_path):
    touch(tmp_path / "a" / "x.wav")
    (tmp_path / "empty_label").mkdir()
    touch(tmp_path / "txt_only" / "readme.txt")
    with pytest.raises(DatasetError, match=r"zero audio files: 'empty_label', 'txt_only'"):
        read_manifest(tmp_path)
    with pytest.raises(DatasetError, match="no label sub-folders"):
        read_manifest(tmp_path / "a")
    with pytest.raises(DatasetError, match="manifest not found"):
        read_manifest(tmp_path / "nope")


def test_read_csv(tmp_path):
    touch(tmp_path / "audio" / "a.wav")
    touch(tmp_path / "audio" / "b c.wav")
    abs_file = touch(tmp_path / "elsewhere" / "d.flac")
    csv_path = tmp_path / "lists" / "m.csv"
    csv_path.parent.mkdir()
    csv_path.write_text(
        "\ufeffpath,label,split\n"
        "../audio/a.wav,dog,train\n"
        "\n"
        '"../audio/b c.wav",cat,test\n'
        f"{abs_file},cat,train\n",
        encoding="utf-8",
    )
    recs = read_manifest(csv_path)
    assert recs == [
        Record(str(tmp_path / "audio" / "a.wav"), "dog", "train"),
        Record(str(tmp_path / "audio" / "b c.wav"), "cat", "test"),
        Record(str(abs_file), "cat", "train"),
    ]
    assert split_records(recs) == recs  # an existing split column is kept


@pytest.mark.parametrize(
    "text,match",
    [
        ("path,label,speaker\na.wav,x,s\n", r"unknown column\(s\) \['speaker'\]"),
        ("path,split\na.wav,train\n", r"missing column\(s\) \['label'\]"),
        ("", "empty CSV"),
        ("path,label\n", "no rows"),
        ("path,label\na.wav,x\nmissing.wav,x\n", "do not exist: .*missing.wav"),
        ("path,label\na.wav,x\n./a.wav,y\n", "duplicate path"),
        ("path,label\na.wav,\n", "line 2: empty path or label"),
        ("path,label,split\na.wav,x,train\nb.wav,x,\n", "some rows have a split"),
        ("path,label,label\na.wav,x,y\n", "repeated column"),
    ],
)
def test_csv_errors(tmp_path, text, match):
    touch(tmp_path / "a.wav")
    touch(tmp_path / "b.wav")
    p = tmp_path / "m.csv"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(DatasetError, match=match) as err:
        read_csv(p)
    assert str(p) in str(err.value)


def test_csv_extra_columns_can_be_ignored(tmp_path):
    touch(tmp_path / "a.wav")
    p = tmp_path / "m.csv"
    p.write_text("path,group,label,duration_s\na.wav,g,x,1.0\n", encoding="utf-8")
    assert read_manifest(p, extra_columns="ignore") == [Record(str(tmp_path / "a.wav"), "x")]


def make_kaldi(tmp_path: Path, wav_scp: str, utt2spk: str) -> Path:
    d = tmp_path / "data" / "train"
    d.mkdir(parents=True, exist_ok=True)
    (d / "wav.scp").write_text(wav_scp, encoding="utf-8")
    if utt2spk is not None:
        (d / "utt2spk").write_text(utt2spk, encoding="utf-8")
    return d


def test_read_kaldi_dir(tmp_path):
    a = touch(tmp_path / "wav" / "a.flac")
    b = touch(tmp_path / "data" / "train" / "rel" / "b.wav")
    d = make_kaldi(
        tmp_path,
        f"spk2-u2 rel/b.wav\nspk1-u1 {a}\n",
        "spk1-u1 spk1\nspk2-u2 spk2\n",
    )
    assert read_manifest(d) == [Record(str(a), "spk1"), Record(str(b), "spk2")]
    assert read_kaldi_dir(d) == read_manifest(d)


@pytest.mark.parametrize(
    "wav_scp,utt2spk,match",
    [
        ("u1 sox a.wav -t wav - |\n", "u1 s\n", "command pipe.*unsupported"),
        ("u1 feats.ark:12\n", "u1 s\n", "archive"),
        ("u1 {a}\n", None, "utt2spk is missing"),
        ("u1 {a}\nu2 {a}\n", "u1 s\n", r"no speaker for utterance\(s\) 'u2'"),
        ("u1 {a}\nu1 {a}\n", "u1 s\n", r"duplicate id\(s\): 'u1'"),
        ("u1 {a}\nu2 {a}\n", "u1 s\nu2 s\n", "duplicate path"),
        ("u1 /nonexistent/x.wav\n", "u1 s\n", "do not exist"),
        ("u1\n", "u1 s\n", "expected '<key> <value>'"),
        ("", "", "no utterances"),
    ],
)
def test_kaldi_errors(tmp_path, wav_scp, utt2spk, match):
    a = touch(tmp_path / "a.wav")
    d = make_kaldi(tmp_path, wav_scp.format(a=a), utt2spk)
    with pytest.raises(DatasetError, match=match):
        read_manifest(d)


def test_kaldi_segments_unsupported(tmp_path):
    a = touch(tmp_path / "a.wav")
    d = make_kaldi(tmp_path, f"u1 {a}\n", "u1 s\n")
    (d / "segments").write_text("seg1 u1 0.0 1.0\n")
    with pytest.raises(DatasetError, match="segments"):
        read_manifest(d)


def synthetic_records(counts: dict[str, int]) -> list[Record]:
    return [Record(f"/d/{lab}/{i:03d}.wav", lab) for lab, n in counts.items() for i in range(n)]


def test_split_is_deterministic_and_stratified():
    recs = synthetic_records({"a": 10, "b": 7, "c": 2, "d": 1, "e": 3})
    s1 = split_records(recs, train_fraction=0.7, seed=0)
    s2 = split_records(list(reversed(recs)), train_fraction=0.7, seed=0)
    assert [r.path for r in s1] == [r.path for r in recs]  # order kept
    assert {r.path: r.split for r in s1} == {r.path: r.split for r in s2}  # order-independent
    n_train = Counter(r.label for r in s1 if r.split == "train")
    n_test = Counter(r.label for r in s1 if r.split == "test")
    assert dict(n_train) == {"a": 7, "b": 5, "c": 1, "d": 1, "e": 2}
    assert dict(n_test) == {"a": 3, "b": 2, "c": 1, "e": 1}
    s3 = split_records(recs, train_fraction=0.7, seed=1)
    assert {r.path: r.split for r in s3} != {r.path: r.split for r in s1}


def test_split_of_one_label_does_not_depend_on_the_others():
    a_only = split_records(synthetic_records({"a": 10}), seed=3)
    both = split_records(synthetic_records({"a": 10, "b": 5}), seed=3)
    assert [r for r in both if r.label == "a"] == a_only


@pytest.mark.parametrize("fraction", [0.01, 0.99])
def test_split_extremes_keep_one_of_each(fraction):
    s = split_records(synthetic_records({"a": 5}), train_fraction=fraction)
    splits = Counter(r.split for r in s)
    assert splits["train"] >= 1 and splits["test"] >= 1


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.5, 2])
def test_split_bad_fraction(fraction):
    with pytest.raises(ParameterError, match="train_fraction"):
        split_records(synthetic_records({"a": 3}), train_fraction=fraction)


def test_split_mixed_existing_split_is_an_error():
    recs = [Record("/a.wav", "x", "train"), Record("/b.wav", "x")]
    with pytest.raises(DatasetError, match="1 of 2 records already have a split"):
        split_records(recs)


def test_select():
    s = split_records(synthetic_records({"a": 4, "b": 4}), seed=0)
    train, test = select(s, "train"), select(s, "test")
    assert len(train) + len(test) == 8 and all(r.split == "train" for r in train)
    with pytest.raises(
        DatasetError, match=r"no record in split 'dev'; splits present: \['test', 'train'\]"
    ):
        select(s, "dev")
    with pytest.raises(DatasetError, match="call split_records first"):
        select(synthetic_records({"a": 2}), "train")


def test_write_csv_round_trip(tmp_path):
    files = [touch(tmp_path / "w" / f"{i}.wav") for i in range(4)]
    recs = split_records([Record(str(f), "ab"[i % 2]) for i, f in enumerate(files)], seed=0)
    out = tmp_path / "m.csv"
    write_csv(recs, out)
    assert read_manifest(out) == recs
    write_csv([Record(r.path, r.label) for r in recs], out)
    assert read_manifest(out) == [Record(r.path, r.label) for r in recs]


def test_data_samples_manifests():
    if not (DATA_SAMPLES / "speakers").is_dir():
        pytest.skip("data_samples/ not present")
    for group in ("speakers", "sounds"):
        recs = read_manifest(DATA_SAMPLES / group)
        assert len(_labels(recs)) >= 2 and all(r.path.endswith(".flac") for r in recs)
        s = split_records(recs, train_fraction=0.7, seed=0)
        for lab in _labels(s):
            assert any(r.split == "train" and r.label == lab for r in s)
            assert any(r.split == "test" and r.label == lab for r in s)


# ---------------------------------------------------------------------- hostile CSV text
def _trials(path):
    from audiogmm.pipeline.verify import read_trials

    return read_trials(path)


_BIG = "x" * 140_000  # over csv's default field-size limit of 131,072 characters

HOSTILE_CSV = {
    # name: (bytes after the header line, header encoding, message fragment)
    "latin1": ("a.wav,caf\xe9\n".encode("latin-1"), "line 2: not UTF-8 text"),
    "utf16": (None, "UTF-16 text; save it as UTF-8"),
    "utf16_no_bom": (None, "line 1: NUL byte"),
    "huge_field": (f'"{_BIG}",x\n'.encode(), "line 2: field larger than field limit"),
    "huge_line": (b"a.wav," + b"y" * (2 << 20) + b"\n", "line 2: longer than"),
    "extra_cells": (b"a.wav,x,more\n", "line 2: 3 cells but the header has 2"),
}


@pytest.mark.parametrize("kind", ["manifest", "trials"])
@pytest.mark.parametrize("case", sorted(HOSTILE_CSV))
def test_hostile_csv_gives_one_error_naming_file_and_line(tmp_path, kind, case):
    """Manifests and trials files share one reader: every case is one DatasetError with the
    path (and the line), never a UnicodeDecodeError or csv.Error."""
    header = "path,label\n" if kind == "manifest" else "path,claim\n"
    touch(tmp_path / "a.wav")
    body, match = HOSTILE_CSV[case]
    p = tmp_path / f"{kind}.csv"
    if case == "utf16":
        p.write_bytes((header + "a.wav,x\n").encode("utf-16"))
    elif case == "utf16_no_bom":
        p.write_bytes((header + "a.wav,x\n").encode("utf-16-le"))
    else:
        p.write_bytes(header.encode() + body)
    reader = read_csv if kind == "manifest" else _trials
    with pytest.raises(DatasetError, match=match) as ei:
        reader(p)
    assert str(p) in str(ei.value)


@pytest.mark.parametrize("kind", ["manifest", "trials"])
def test_utf8_bom_is_accepted_by_manifests_and_trials(tmp_path, kind):
    touch(tmp_path / "a.wav")
    p = tmp_path / "t.csv"
    col = "label" if kind == "manifest" else "claim"
    p.write_bytes(f"\ufeffpath,{col}\na.wav,x\n".encode())
    rows = read_csv(p) if kind == "manifest" else _trials(p)
    assert [os.path.basename(r.path) for r in rows] == ["a.wav"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_in_place_of_a_csv_is_refused_without_blocking(tmp_path):
    import signal

    p = tmp_path / "m.csv"
    os.mkfifo(p)

    def hung(*_):
        raise TimeoutError("read_csv blocked on a FIFO")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(10)
    try:
        with pytest.raises(DatasetError, match="not a regular file"):
            read_csv(p)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ---------------------------------------------------------------------- split values
@pytest.mark.parametrize("typo", ["Train", "trian", "TEST", "validation"])
def test_unknown_split_values_are_an_error_listing_found_and_expected(tmp_path, typo):
    for n in "abcd":
        touch(tmp_path / f"{n}.wav")
    p = tmp_path / "m.csv"
    p.write_text(f"path,label,split\na.wav,x,train\nb.wav,x,{typo}\nc.wav,y,train\nd.wav,y,test\n")
    with pytest.raises(DatasetError, match="unknown split value") as ei:
        read_csv(p)
    msg = str(ei.value)
    assert repr(typo) in msg and "'train'" in msg and "'test'" in msg and str(p) in msg
