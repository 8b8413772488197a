"""Hypothesis fuzzers of the text tables users write: manifests, trials, Kaldi tables.

Each case starts from a valid table and mutates it: a cell replaced by a hostile token
(``nan``, ``inf``, ``2**64``, an empty cell, a quote, a pipe, Latin-1 or NUL bytes, a
200,000-character field, ...), random bytes inserted, a span deleted, a line repeated,
a truncation, or the whole text re-encoded (UTF-16, Latin-1, a BOM). The only acceptable
outcomes are:

* ``ok``: the reader returns rows that satisfy its contract (existing absolute paths,
  non-empty labels, known split values, targets 0/1, finite 2-D feature matrices);
* ``refused``: one :class:`~audiogmm.exceptions.DatasetError` naming the data file or
  folder.

Anything else (another exception, an unnamed file, a broken contract) is ``BAD:<what>``.
CI runs a few hundred examples; ``benchmarks/fuzz_tables.py --examples N`` runs the same
cases for longer and counts the outcomes.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from audiogmm.data.manifests import SPLIT_NAMES, read_csv, read_kaldi_dir
from audiogmm.exceptions import AudioGMMError, DatasetError
from audiogmm.features import FeatureConfig
from audiogmm.pipeline.verify import read_trials

from .conftest_audio import speech_like

kaldiio = pytest.importorskip("kaldiio")

from audiogmm.data.kaldi import read_feats, read_segments  # noqa: E402

CI = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_WORK = Path(tempfile.mkdtemp(prefix="audiogmm-fuzz-tables-"))
atexit.register(shutil.rmtree, _WORK, True)
#: A cheap front end for the segment cases: the fuzzer tests the tables, not the MFCCs.
_CONFIG = FeatureConfig(sample_rate=8000)

TOKENS = [
    "", " ", "nan", "inf", "-inf", "-1", "0", "1e308", str(2**63), str(2**64 + 1), "-0",
    "1.5", "99999", '"', '""', "a,b", "a b", "x\ty", "| echo hi", "echo hi |", "ark:x.ark:5",
    "feats.ark:0", "feats.ark:999999", "feats.ark:-5", "feats.ark", ":", "../../etc/passwd",
    "/", "Train", "trian", "test", "caf\xe9", "\u00e9\u00e8", "\ufeff", "x" * 200_000,
    "\\", "\r", "utt1", "spk0", "recA", "a.wav", "0.wav",
]  # fmt: skip
RAW = [b"\x00", b"\xff\xfe", b"\xe9", b"\r", b"\n", b'"', b",", b" ", b"\xef\xbb\xbf", b"\x80"]
KINDS = ("manifest", "trials", "wav_scp", "utt2spk", "segments", "feats_scp", "ark")


@functools.lru_cache(maxsize=1)
def _dataset() -> Path:
    """Two short WAVs, and a feats.ark of two utterances, in one folder (never mutated)."""
    d = _WORK / "base"
    d.mkdir(parents=True, exist_ok=True)
    for i in range(2):
        sf.write(d / f"{i}.wav", speech_like(8000, 1.0, seed=i), 8000)
    rng = np.random.default_rng(0)
    feats = {f"utt{i}": rng.normal(size=(20, 4)).astype(np.float32) for i in range(2)}
    kaldiio.save_ark(str(d / "feats.ark"), feats, scp=str(d / "feats.scp"))
    return d


def _base_text(kind: str, d: Path) -> bytes:
    if kind == "manifest":
        return b"path,label,split\n0.wav,a,train\n1.wav,b,test\n"
    if kind == "trials":
        return b"path,claim,target\n0.wav,a,1\n1.wav,a,0\n"
    if kind in ("wav_scp", "segments", "utt2spk"):  # one data dir with segments
        return {
            "wav_scp": b"recA 0.wav\nrecB 1.wav\n",
            "segments": b"utt1 recA 0.0 0.5\nutt2 recA 0.5 -1\nutt3 recB 0.1 0.9\n",
            "utt2spk": b"utt1 spk0\nutt2 spk0\nutt3 spk1\n",
        }[kind]
    scp = (d / "feats.scp").read_bytes().replace(str(d).encode() + b"/", b"")
    return scp if kind == "feats_scp" else (d / "feats.ark").read_bytes()


@st.composite
def table_cases(draw):
    """(kind, list of mutations) with mutations applied in order to the base bytes."""
    kind = draw(st.sampled_from(KINDS))
    size = len(_base_text(kind, _dataset()))
    ops = st.one_of(
        st.tuples(st.just("cell"), st.integers(0, 40), st.sampled_from(TOKENS)),
        st.tuples(st.just("insert"), st.integers(0, size), st.sampled_from(RAW)),
        st.tuples(st.just("flip"), st.integers(0, size - 1), st.integers(1, 255)),
        st.tuples(st.just("delete"), st.integers(0, size), st.integers(1, 40)),
        st.tuples(st.just("repeat"), st.integers(0, 10)),
        st.tuples(st.just("cut"), st.integers(0, size)),
        st.tuples(st.just("encode"), st.sampled_from(["utf-16", "utf-16-le", "latin-1", "bom"])),
    )
    return kind, draw(st.lists(ops, min_size=1, max_size=3))


def _cells(text: bytes) -> list[tuple[int, int]]:
    """(start, end) byte spans of the cells: split at commas, spaces and newlines."""
    spans, start = [], 0
    for i, b in enumerate(text + b"\n"):
        if b in b", \t\n":
            if i > start:
                spans.append((start, i))
            start = i + 1
    return spans


def mutate(data: bytes, ops) -> bytes:
    for op in ops:
        if op[0] == "cell":
            spans = _cells(data)
            if spans:
                a, b = spans[op[1] % len(spans)]
                data = data[:a] + op[2].encode("utf-8", "surrogatepass") + data[b:]
        elif op[0] == "insert":
            data = data[: op[1]] + op[2] + data[op[1] :]
        elif op[0] == "flip" and data:
            i = op[1] % len(data)
            data = data[:i] + bytes([data[i] ^ op[2]]) + data[i + 1 :]
        elif op[0] == "delete":
            data = data[: op[1]] + data[op[1] + op[2] :]
        elif op[0] == "repeat":
            lines = data.splitlines(keepends=True)
            if lines:
                data += lines[op[1] % len(lines)]
        elif op[0] == "cut":
            data = data[: op[1]]
        elif op[0] == "encode":
            text = data.decode("utf-8", "replace")
            if op[1] == "bom":
                data = b"\xef\xbb\xbf" + data
            else:
                data = text.encode(op[1], "replace")
    return data


def _problem(kind: str, rows, d: Path) -> str | None:
    """Why rows a reader returned break its contract, or None."""
    if kind == "manifest":
        for r in rows:
            if not (Path(r.path).is_absolute() and Path(r.path).is_file() and r.label.strip()):
                return f"bad record {r}"
            if r.split not in (None, *SPLIT_NAMES):
                return f"split {r.split!r} passed"
    elif kind == "trials":
        for t in rows:
            if not (Path(t.path).is_absolute() and t.claim.strip() and t.target in (None, 0, 1)):
                return f"bad trial {t}"
    elif kind in ("feats_scp", "ark", "wav_scp", "segments", "utt2spk"):
        for u in rows:
            X = u.features
            if X.ndim != 2 or X.shape[0] == 0 or not np.isfinite(X).all():
                return f"utterance {u.utt!r}: features {X.dtype} {X.shape}, finite={np.isfinite(X).all()}"
    return None


def run_table_case(case, folder: Path = _WORK) -> tuple[str, str]:
    """Write the mutated table of ``case`` into a fresh data folder and read it."""
    kind, ops = case
    base = _dataset()
    d = folder / "case"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    for name in ("0.wav", "1.wav", "feats.ark"):
        shutil.copy(base / name, d / name)
    names = {"manifest": "m.csv", "trials": "trials.csv", "wav_scp": "wav.scp",
             "segments": "segments", "utt2spk": "utt2spk", "feats_scp": "feats.scp",
             "ark": "feats.ark"}  # fmt: skip
    if kind in ("wav_scp", "segments", "utt2spk"):
        for k in ("wav_scp", "segments", "utt2spk"):
            (d / names[k]).write_bytes(_base_text(k, base))
    if kind in ("feats_scp", "ark"):
        (d / "feats.scp").write_bytes(_base_text("feats_scp", base))
    target = d / names[kind]
    target.write_bytes(mutate(_base_text(kind, base), ops))
    try:
        if kind == "manifest":
            rows = read_csv(target)
        elif kind == "trials":
            rows = read_trials(target)
        elif kind in ("feats_scp", "ark"):
            rows = read_feats(d)
        else:
            rows = read_segments(d, config=_CONFIG)
    except DatasetError as e:
        return ("refused", "") if str(d) in str(e) else ("BAD:unnamed", str(e)[:300])
    except AudioGMMError as e:
        return f"BAD:{type(e).__name__}", str(e)[:300]
    except Exception as e:  # what the fuzzer is for
        return f"BAD:{type(e).__name__}", f"{e!s}"[:300]
    why = _problem(kind, rows, d)
    return ("ok", "") if why is None else ("BAD:contract", why)


@settings(CI, max_examples=250)
@given(table_cases())
@example(("segments", [("cell", 2, "nan")]))
@example(("segments", [("cell", 3, "inf")]))
@example(("segments", [("cell", 6, "1e308")]))  # start * rate overflows to inf
@example(("feats_scp", [("cell", 1, "feats.ark:" + str(2**64 + 1))]))
@example(("trials", [("encode", "latin-1"), ("cell", 4, "caf\xe9")]))
@example(("manifest", [("encode", "utf-16")]))
@example(("manifest", [("cell", 2, "x" * 200_000)]))
@example(("manifest", [("cell", 5, "Train")]))
@example(("trials", [("encode", "bom")]))
@example(("ark", [("flip", 42, 0x79), ("flip", 43, 0x41)]))  # a NaN in utt0's floats
def test_fuzz_tables(case):
    outcome, detail = run_table_case(case)
    assert outcome in {"ok", "refused"}, f"{outcome}: {detail}"


@pytest.mark.parametrize("kind", KINDS)
def test_fuzz_bases_are_valid(kind):
    """The unmutated tables read (so the fuzzer starts from valid data)."""
    assert run_table_case((kind, []))[0] == "ok"


def test_read_kaldi_dir_shares_the_table_reader(tmp_path):
    """A Latin-1 utt2spk is one DatasetError naming the file and line (was UnicodeDecodeError)."""
    sf.write(tmp_path / "a.wav", speech_like(8000, 0.5), 8000)
    (tmp_path / "wav.scp").write_text("u1 a.wav\n")
    (tmp_path / "utt2spk").write_bytes("u1 caf\xe9\n".encode("latin-1"))
    with pytest.raises(DatasetError, match=r"utt2spk' line 1: not UTF-8"):
        read_kaldi_dir(tmp_path)
