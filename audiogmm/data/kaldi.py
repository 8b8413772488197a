"""Kaldi data directories beyond ``wav.scp``: feature archives (``feats.scp``; ``pip install
'audiogmm[kaldi]'``), ``segments`` cut from their recordings, and :func:`write_feats`.

A piped entry (``cmd |``) runs a shell command written in a data file: refused unless
``allow_pipes=True``. Only binary Kaldi matrices (``FM``, ``DM``, compressed ``CM``) are
read: kaldiio would also unpickle a ``PKL`` entry, and nothing here unpickles."""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import math
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Optional

import numpy as np
import soundfile as sf

from ..audio import PathLike, info, load
from ..exceptions import AudioError, DatasetError, FeatureError
from ..features import FeatureConfig, extract
from ..io.atomic import atomic_write
from ..io.container import open_regular
from . import manifests

__all__ = ["CONFIG_FILE", "Utterance", "is_kaldi_feats_dir", "needs_kaldi_reader", "read_feats",
           "read_feature_config", "read_kaldi_utterances", "read_segments", "utterance_ids",
           "wav_scp_ids", "write_feats"]  # fmt: skip

logger = logging.getLogger(__name__)

#: The FeatureConfig that made a feats.ark, written next to it by :func:`write_feats`.
CONFIG_FILE = "audiogmm_features.json"

# binary Kaldi matrices: float, double, and the three compressed formats
_MATRIX_FLAGS = (b"\0BFM ", b"\0BDM ", b"\0BCM")
_ARK_ENTRY = re.compile(r"^(?P<ark>.+):(?P<offset>\d+)$")


@dataclass(frozen=True)
class Utterance:
    """One utterance: id, speaker (``utt2spk``; None without it), features (n_frames, n_dims)."""

    utt: str
    label: Optional[str]
    features: np.ndarray


def is_kaldi_feats_dir(path: PathLike) -> bool:
    """True when ``path`` is a directory holding ``feats.scp``."""
    return os.path.isfile(os.path.join(os.fspath(path), "feats.scp"))


def needs_kaldi_reader(path: PathLike) -> bool:
    """True for ``feats.scp``, or ``wav.scp`` with ``segments``: no manifest reader takes them."""
    p = os.fspath(path)
    return is_kaldi_feats_dir(p) or all(os.path.isfile(os.path.join(p, f))
                                        for f in ("wav.scp", "segments"))  # fmt: skip


def _kaldiio():
    try:
        import kaldiio
    except ImportError:
        msg = "Kaldi feature archives need kaldiio: pip install 'audiogmm[kaldi]'"
        raise DatasetError(msg) from None
    return kaldiio


def _run_pipe(scp: str, key: str, value: str, allow_pipes: bool) -> bytes:
    manifests.refuse_pipe(scp, key, value, allow_pipes)
    r = subprocess.run(value.strip().strip("|"), shell=True, capture_output=True)
    if r.returncode != 0:
        err = r.stderr.decode("utf-8", "replace").strip()[-300:]
        raise DatasetError(f"{scp!r}: the command of {key!r} failed ({r.returncode}): {err}")
    return r.stdout


def _read_matrix(kaldiio, fd, where: str) -> np.ndarray:
    """A binary Kaldi matrix at ``fd``'s position (``where``: the entry, for errors)."""
    start = fd.tell()
    flag = fd.read(5)
    fd.seek(start)
    if not flag.startswith(_MATRIX_FLAGS):
        raise DatasetError(f"{where} is not a binary Kaldi matrix (starts {flag!r}); only FM, "
                           "DM and compressed CM entries are read")  # fmt: skip
    try:
        X = np.asarray(kaldiio.matio.read_kaldi(fd))
    except Exception as e:  # a truncated or damaged archive, whatever kaldiio raises
        raise DatasetError(f"{where} is unreadable ({type(e).__name__}: {e})") from None
    if X.ndim != 2 or X.shape[0] == 0 or X.dtype.kind != "f":
        raise DatasetError(f"{where} is not a feature matrix ({X.dtype} {X.shape})")
    if not np.isfinite(X).all():
        raise DatasetError(f"{where} has non-finite values (NaN or inf)")
    return X


def read_feats(data_dir: PathLike, *, allow_pipes: bool = False) -> list[Utterance]:
    """The utterances of ``data_dir/feats.scp`` (``<utt> <file.ark>:<byte offset>``, or
    ``<utt> <cmd> |`` with ``allow_pipes``) and ``utt2spk``, sorted by id, features as
    stored (float32 or float64, (n_frames, n_dims)); DatasetError naming file and entry."""
    kaldiio = _kaldiio()
    base = os.path.abspath(os.fspath(data_dir))
    scp = os.path.join(base, "feats.scp")
    rows = sorted(manifests.kaldi_table(base, "feats.scp"))
    labels = manifests.kaldi_labels(base, [u for u, _ in rows])
    out, handles = [], {}
    with contextlib.ExitStack() as stack:
        for utt, value in rows:
            where = f"{scp!r}: entry {utt!r}"
            if manifests.is_pipe(value):
                fd = io.BytesIO(_run_pipe(scp, utt, value, allow_pipes))
            else:
                m = _ARK_ENTRY.match(value)
                if m is None:
                    raise DatasetError(f"{where} is {value!r}; expected <file.ark>:<offset> (row "
                                       "or column ranges are unsupported)")  # fmt: skip
                ark = manifests.kaldi_path(base, m["ark"])
                if ark not in handles:
                    try:
                        handles[ark] = stack.enter_context(open_regular(ark))  # never a FIFO
                    except ValueError as e:
                        raise DatasetError(f"{where}: cannot open {ark!r} ({e})") from None
                fd = handles[ark]
                offset, size = int(m["offset"]), os.fstat(fd.fileno()).st_size
                if offset >= size:
                    raise DatasetError(f"{where}: offset {offset} is beyond the end of {ark!r} "
                                       f"({size} bytes)")  # fmt: skip
                fd.seek(offset)
            out.append(Utterance(utt, labels[utt], _read_matrix(kaldiio, fd, where)))
    widths = sorted({u.features.shape[1] for u in out})
    if len(widths) > 1:
        raise DatasetError(f"{scp!r}: matrices of different widths {widths}")
    return out


def _recording(scp: str, rec: str, value: str, allow_pipes: bool):
    """(waveform float32 mono, sample rate) of one wav.scp entry."""
    if manifests.is_pipe(value):
        try:
            stream = io.BytesIO(_run_pipe(scp, rec, value, allow_pipes))
            y, sr = sf.read(stream, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise AudioError(f"{scp!r}: the output of {rec!r} is not audio ({e})") from None
        return y.mean(axis=1, dtype=np.float32), int(sr)
    path = manifests.wav_path(scp, rec, value)
    return load(path, sr=None), info(path).sample_rate  # native rate: exact times


def _segment_table(base: str, wav: Mapping[str, str], bad: dict[str, str]) -> dict:
    """Utterance -> (recording, start s, end s); unusable ones go into ``bad``."""
    rows = manifests.kaldi_table(base, "segments", required=False)
    if rows is None:
        return {rec: (rec, 0.0, -1.0) for rec in wav}
    where = os.path.join(base, "segments")
    segs = {}
    for utt, rest in rows:
        parts = rest.split()
        try:
            rec, start, end = parts[0], float(parts[1]), float(parts[2])
        except (IndexError, ValueError):
            raise DatasetError(f"{where!r}: utterance {utt!r}: expected "
                               "'<utt> <recording> <start> <end>'") from None  # fmt: skip
        segs[utt] = (rec, start, end)
        if rec not in wav:
            bad[utt] = f"{where!r}: utterance {utt!r}: no recording {rec!r} in wav.scp"
        elif (not (math.isfinite(start) and math.isfinite(end)) or start < 0
              or (end != -1 and end <= start)):  # fmt: skip
            bad[utt] = f"{where!r}: utterance {utt!r}: bad times {parts[1]}..{parts[2]}"
    return segs


def read_segments(data_dir: PathLike, *, config: Optional[FeatureConfig] = None,
                  allow_pipes: bool = False,
                  skipped: Optional[dict[str, str]] = None) -> list[Utterance]:  # fmt: skip
    """Features (``config``) of every utterance of a ``wav.scp`` directory, sorted by id:
    ``wav.scp`` (``<recording> <path>``, or a ``<cmd> |`` giving WAV or FLAC with
    ``allow_pipes``), ``segments`` (``<utt> <recording> <start_s> <end_s>``, end -1: the end;
    none: each recording is an utterance), ``utt2spk`` (optional). Unusable segments go into
    ``skipped`` as ``{utterance: reason}`` (else logged); DatasetError when none is usable."""
    base = os.path.abspath(os.fspath(data_dir))
    scp = os.path.join(base, "wav.scp")
    wav = dict(manifests.kaldi_table(base, "wav.scp"))
    bad: dict[str, str] = {}  # utterance -> why, like extract_many's skipped files
    segs = _segment_table(base, wav, bad)
    labels = manifests.kaldi_labels(base, sorted(segs))
    by_rec: dict[str, list[str]] = {}
    for utt in sorted(set(segs) - set(bad)):
        by_rec.setdefault(segs[utt][0], []).append(utt)
    feats = {}
    for rec in sorted(by_rec):
        try:
            y, sr = _recording(scp, rec, wav[rec], allow_pipes)
        except AudioError as e:  # every segment of an unreadable recording is skipped
            bad.update({u: f"utterance {u!r} of recording {rec!r}: {e}" for u in by_rec[rec]})
            continue
        duration = len(y) / sr
        for utt in by_rec[rec]:
            _, start, end = segs[utt]
            if start >= duration or end > duration + 0.01:  # Kaldi tolerates rounding at the end
                bad[utt] = (f"{os.path.join(base, 'segments')!r}: utterance {utt!r} ({start}.."
                            f"{end} s) is not inside recording {rec!r} ({duration:.3f} s)")
                continue
            a, b = int(round(start * sr)), (len(y) if end == -1 else int(round(end * sr)))
            try:
                feats[utt] = extract(y[a:b], config=config, sr=sr)
            except FeatureError as e:
                bad[utt] = f"utterance {utt!r} of {rec!r}: {e}"
    if skipped is not None:
        skipped.update(bad)  # the caller lists them (once)
    else:
        for utt in sorted(bad):
            logger.warning("skipped %s", bad[utt])
    if not feats:
        first = bad[min(bad)] if bad else "none listed"
        raise DatasetError(f"{base!r}: no usable utterance ({len(bad)} skipped; first: {first})")
    return [Utterance(u, labels[u], feats[u]) for u in sorted(feats)]


def read_kaldi_utterances(data_dir: PathLike, *, config: Optional[FeatureConfig] = None,
                          allow_pipes: bool = False,
                          skipped: Optional[dict[str, str]] = None) -> list[Utterance]:  # fmt: skip
    """:func:`read_feats` when ``data_dir`` has ``feats.scp``, else :func:`read_segments`."""
    if is_kaldi_feats_dir(data_dir):
        return read_feats(data_dir, allow_pipes=allow_pipes)
    return read_segments(data_dir, config=config, allow_pipes=allow_pipes, skipped=skipped)


def read_feature_config(data_dir: PathLike) -> Optional[FeatureConfig]:
    """The :data:`CONFIG_FILE` next to ``feats.scp``, or None when there is none."""
    path = os.path.join(os.fspath(data_dir), CONFIG_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        try:
            return FeatureConfig.from_json(f.read())
        except (ValueError, TypeError) as e:
            raise DatasetError(f"{path!r}: not a feature configuration ({e})") from None


def utterance_ids(paths: Sequence[str], labels: Sequence[str]) -> list[str]:
    """Kaldi utterance ids for audio files: ``<label>-<file stem>`` (sorting by id groups
    speakers, as Kaldi expects), unique, no spaces; when two stems collide within a label,
    the path relative to the files' common folder is used instead."""
    root = os.path.commonpath([os.path.abspath(p) for p in paths]) if paths else ""
    for stem in (os.path.basename, lambda p: os.path.relpath(p, root).replace(os.sep, "-")):
        ids = [re.sub(r"\s+", "_", f"{y}-{os.path.splitext(stem(p))[0]}")
               for p, y in zip(paths, labels)]  # fmt: skip
        if len(set(ids)) == len(ids):
            break
    return ids


def wav_scp_ids(data_dir: PathLike) -> dict[str, str]:
    """Audio path -> utterance id of a ``wav.scp`` (paths resolved as the manifest reader does)."""
    base = os.path.abspath(os.fspath(data_dir))
    rows = [(u, v) for u, v in manifests.kaldi_table(base, "wav.scp") if not manifests.is_pipe(v)]
    return {os.path.normpath(manifests.kaldi_path(base, v)): u for u, v in rows}


def _no_space(names, what: str) -> None:
    bad = sorted({n for n in names if not n or re.search(r"\s", n)})
    if bad:
        raise DatasetError(f"{what} must be non-empty with no spaces, tabs or newlines (Kaldi "
                           "splits its tables on whitespace): "
                           f"{manifests.listing(bad)}")  # fmt: skip


def write_feats(out_dir: PathLike, features: Mapping[str, np.ndarray], *,
                labels: Optional[Mapping[str, str]] = None,
                config: Optional[FeatureConfig] = None) -> tuple[str, str]:  # fmt: skip
    """Write ``out_dir/feats.ark`` and ``feats.scp`` atomically; return their paths.
    ``features``: utterance id -> float (n_frames, n_dims), written in id order; ``labels``
    (id -> speaker) gives ``utt2spk`` and ``spk2utt``; ``config`` goes to :data:`CONFIG_FILE`.
    DatasetError, nothing written, for an id or label empty or with whitespace, an
    utterance without a label, or features that are not 2-D float arrays."""
    kaldiio = _kaldiio()
    base = os.path.abspath(os.fspath(out_dir))
    utts = sorted(features)
    _no_space(utts, "utterance ids")
    if labels is not None:  # checked before anything is written
        missing = [u for u in utts if u not in labels]
        if missing:
            raise DatasetError(f"no label for utterance(s) {manifests.listing(missing)}")
        _no_space([labels[u] for u in utts], "labels")
    arrays = {u: np.asarray(features[u]) for u in utts}
    for u, X in arrays.items():
        if X.ndim != 2 or X.dtype not in (np.float32, np.float64):
            raise DatasetError(f"features of {u!r} must be a 2-D float array; "
                               f"got {X.dtype} {X.shape}")  # fmt: skip
    ark, scp = os.path.join(base, "feats.ark"), os.path.join(base, "feats.scp")
    buf, lines = io.BytesIO(), io.StringIO()
    buf.name = ark  # the scp names the archive by the file object's .name
    kaldiio.save_ark(buf, arrays, scp=lines)
    files = {"feats.scp": lines.getvalue()}
    if labels is not None:
        files["utt2spk"] = "".join(f"{u} {labels[u]}\n" for u in utts)
        spk = labels.__getitem__  # a stable sort: each speaker's utterances stay sorted
        by_spk = itertools.groupby(sorted(utts, key=spk), key=spk)
        files["spk2utt"] = "".join(f"{s} {' '.join(us)}\n" for s, us in by_spk)
    if config is not None:
        files[CONFIG_FILE] = config.to_json()
    atomic_write(ark, buf.getvalue())
    for name, text in files.items():
        atomic_write(os.path.join(base, name), text)
    return ark, scp
