"""A feature shard store: frames of many clips in a few ``.npy`` files, plus an index.

``<dir>/index.json`` (:data:`SHARD_INDEX`) and ``<dir>/shard-00000.npy``
... (n_frames, n_dims) float32, clips back to back, each a frame range ``[start, stop)`` of
one shard. The index is written last and atomically, so a store is complete or absent;
:func:`open_store` checks the index's size and fields and every shard's header against them
and the file size. Rows are read with ``os.preadv``: a worker holds one chunk of frames."""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import itertools
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..checks import Int, List, Obj, Str, at_least, check
from ..exceptions import ModelFileError, ParameterError
from ..io.atomic import atomic_write
from ..io.container import open_regular, parse_json, read_npy_header

__all__ = ["INDEX_NAME", "SHARD_INDEX", "ShardStore", "ShardWriter", "is_store", "open_store",
           "write_store"]

INDEX_NAME = "index.json"
#: Target frames per shard: 2^20 frames x 60 dims x 4 B = 240 MB.
SHARD_FRAMES = 1 << 20
_MAX_INDEX_BYTES = 1 << 30  # 1 GB of JSON: ~10 M clips; more is not an index we wrote
_MAX_NPY_HEADER = 1 << 16
_COUNT = Int(0)
#: The index's field table (io.tables lists it with the other files'; tests/test_fuzz_loader.py
#: fuzzes it).
SHARD_INDEX = Obj({
    "format": Str(choices=("audiogmm-shards",)), "version": Int(1, 1),
    "n_dims": Int(1, 100_000), "dtype": Str(choices=("float32",)),
    "config_hash": Str(), "config": Str(1 << 20),
    "shards": List(Obj({"file": Str(pattern=r"shard-[0-9]{5,}\.npy"), "n_frames": _COUNT}),
                   then=at_least(1)),
    "clips": List(Obj({"clip": Str(4096), "label": Str(1024, pattern=r"(?s).+"), "shard": _COUNT,
                       "start": _COUNT, "stop": _COUNT})),
})  # fmt: skip


def is_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder holding a shard store index."""
    return os.path.isfile(os.path.join(os.fspath(path), INDEX_NAME))


class ShardWriter:
    """Write clips into shards of about ``shard_frames`` frames (a clip is never split), then
    the index, into ``folder`` (created if missing; an earlier store's shards are replaced).
    ``config_hash`` and ``config`` (the FeatureConfig's hash and JSON) let a model trained
    from the store carry its front end. A context manager: the index is written on exit."""

    def __init__(self, folder: str | os.PathLike, *, n_dims: int, shard_frames: int = SHARD_FRAMES,
                 config_hash: str = "", config: str = "") -> None:  # fmt: skip
        for name, v in (("n_dims", n_dims), ("shard_frames", shard_frames)):
            if not (isinstance(v, int) and v > 0):
                raise ParameterError(f"{name} must be an int > 0; got {v!r}")
        self.folder = os.fspath(folder)
        os.makedirs(self.folder, exist_ok=True)
        # one writer per store: a second one would write an index describing its own
        # shards over the first one's (released by close(), or when the process ends)
        self._lock = os.open(os.path.join(self.folder, ".lock"), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock)
            raise ParameterError(f"{self.folder}: another process is writing a shard store "
                                 "there; wait for it to finish or choose another folder") from None
        self.n_dims, self.shard_frames = n_dims, shard_frames
        self.config_hash, self.config = config_hash, config
        self._pending: list[np.ndarray] = []
        self._n_pending = 0
        self.shards: list[dict] = []  # the index's entries
        self.clips: list[dict] = []

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._unlock()

    def _unlock(self) -> None:
        if self._lock >= 0:
            os.close(self._lock)  # releases the flock
            self._lock = -1

    def add(self, clip: str, label: str, X: np.ndarray) -> None:
        """Append one clip's frames (n_frames >= 1, n_dims), as float32, under a non-empty label."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_dims:
            raise ParameterError(f"{clip}: frames must be (n, {self.n_dims}); got {X.shape}")
        if not np.isfinite(X).all():
            raise ParameterError(f"{clip}: frames contain NaN or inf")
        if X.shape[0] == 0:
            raise ParameterError(f"{clip}: no frames; a store holds clips of at least one frame")
        if not str(label):
            raise ParameterError(f"{clip}: empty label")
        start = self._n_pending
        self.clips.append({"clip": str(clip), "label": str(label), "shard": len(self.shards),
                           "start": start, "stop": start + X.shape[0]})  # fmt: skip
        self._pending.append(np.ascontiguousarray(X, dtype=np.float32))
        self._n_pending += X.shape[0]
        if self._n_pending >= self.shard_frames:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        name = f"shard-{len(self.shards):05d}.npy"
        n, pending = self._n_pending, self._pending

        def write(f) -> None:  # header, then the clips back to back: no shard-sized copy
            header = {"descr": "<f4", "fortran_order": False, "shape": (n, self.n_dims)}
            np.lib.format.write_array_header_1_0(f, header)
            for X in pending:
                f.write(memoryview(X).cast("B"))
        atomic_write(os.path.join(self.folder, name), write)
        self.shards.append({"file": name, "n_frames": int(n)})
        self._pending, self._n_pending = [], 0

    def close(self) -> None:
        """Write the last shard and the index (atomically), and drop stale shards."""
        self._flush()
        index = {
            "format": "audiogmm-shards", "version": 1, "n_dims": self.n_dims, "dtype": "float32",
            "config_hash": self.config_hash, "config": self.config,
            "shards": self.shards, "clips": self.clips,
        }  # fmt: skip
        body = json.dumps(index, separators=(",", ":"))
        atomic_write(os.path.join(self.folder, INDEX_NAME), body)
        keep = {s["file"] for s in self.shards}
        for name in os.listdir(self.folder):
            if name.startswith("shard-") and name.endswith(".npy") and name not in keep:
                os.remove(os.path.join(self.folder, name))
        self._unlock()


def write_store(folder: str | os.PathLike, clips: Iterable[tuple[str, str, np.ndarray]], *,
                shard_frames: int = SHARD_FRAMES, config_hash: str = "",
                config: str = "") -> ShardStore:  # fmt: skip
    """Write ``(clip, label, frames)`` triples as a store and open it."""
    clips = iter(clips)
    first = next(clips, None)
    if first is None:
        raise ParameterError(f"{os.fspath(folder)}: no clips to write")
    with ShardWriter(folder, n_dims=int(np.shape(first[2])[1]), shard_frames=shard_frames,
                     config_hash=config_hash, config=config) as writer:  # fmt: skip
        for clip, label, X in itertools.chain([first], clips):
            writer.add(clip, label, X)
    return open_store(folder)


@dataclass(frozen=True)
class ShardStore:
    """An opened, validated store; cheap to ship to workers (no frames inside)."""

    folder: str
    n_dims: int
    config_hash: str
    config: str
    files: tuple  # absolute shard paths
    offsets: tuple  # byte offset of each shard's first frame
    bounds: np.ndarray  # (n_shards + 1,) int64: global frame where each shard starts; total
    clips: tuple
    labels: tuple
    clip_start: np.ndarray  # (n_clips,) int64: global frame range of each clip
    clip_stop: np.ndarray
    index_digest: str = ""  # 32 hex digits of the index's SHA-256: checkpoints resume on it

    @property
    def n_frames(self) -> int:
        return int(self.bounds[-1])

    @property
    def n_clips(self) -> int:
        return len(self.clips)

    def _pread(self, f: Any, s: int, out: np.ndarray, frame: int) -> None:
        """Fill ``out`` from global frame ``frame`` on, in shard ``s`` (open as ``f``)."""
        buf = memoryview(out).cast("B")
        pos = self.offsets[s] + (frame - int(self.bounds[s])) * self.n_dims * 4
        if os.preadv(f.fileno(), [buf], pos) != buf.nbytes:
            raise ModelFileError(f"{self.files[s]}: shard is shorter than its index says")

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Global frames ``[start, stop)`` as float32 (stop - start, n_dims)."""
        out = np.empty((stop - start, self.n_dims), dtype=np.float32)
        s, pos = int(np.searchsorted(self.bounds, start, side="right")) - 1, start
        while pos < stop:
            end = min(stop, int(self.bounds[s + 1]))
            with open(self.files[s], "rb", buffering=0) as f:
                self._pread(f, s, out[pos - start : end - start], pos)
            pos, s = end, s + 1
        return out

    def read_index(self, idx: np.ndarray) -> np.ndarray:
        """Global frames ``idx`` (sorted ints) as float32 (len(idx), n_dims); one open a shard."""
        idx = np.asarray(idx, dtype=np.int64)
        out = np.empty((idx.size, self.n_dims), dtype=np.float32)
        shard = np.searchsorted(self.bounds, idx, side="right") - 1
        for s in np.unique(shard):
            with open(self.files[s], "rb", buffering=0) as f:
                for j in np.flatnonzero(shard == s):
                    self._pread(f, s, out[j], int(idx[j]))
        return out

    def reader(self, *, clip_ranges: bool = False) -> ShardStore:
        """This store without clip names and labels (and ranges unless asked): what map
        tasks need, a few hundred bytes per shard instead of the whole index."""
        ranges = {} if clip_ranges else dict(clip_start=np.zeros(0, np.int64),
                                             clip_stop=np.zeros(0, np.int64))  # fmt: skip
        return dataclasses.replace(self, clips=(), labels=(), config="", **ranges)

    def clip_frames(self, i: int) -> np.ndarray:
        """Frames of clip ``i`` (n_frames, n_dims), float32."""
        return self.read_rows(int(self.clip_start[i]), int(self.clip_stop[i]))


def _npy_header(path: str, n_dims: int, n_frames: int) -> int:
    """The data offset of a shard, checked: float32 (n_frames, n_dims), C order, file size."""
    try:
        with open_regular(path) as f:
            size = os.fstat(f.fileno()).st_size
            shape, fortran, dtype = read_npy_header(f, _MAX_NPY_HEADER)
            offset = f.tell()
    except (OSError, ValueError) as e:
        raise ModelFileError(f"{path}: not a readable shard ({e})") from None
    if dtype != np.dtype("<f4") or fortran or len(shape) != 2 or shape[1] != n_dims:
        order = " Fortran order" if fortran else ""
        raise ModelFileError(f"{path}: shard must be float32 (n, {n_dims}) in C order; "
                             f"got {dtype} {shape}{order}")  # fmt: skip
    if size != offset + shape[0] * n_dims * 4:
        raise ModelFileError(f"{path}: file size {size} does not match its header {shape}")
    if shape[0] != n_frames:
        raise ModelFileError(f"{path}: holds {shape[0]} frames, the index says {n_frames}")
    return offset


def open_store(folder: str | os.PathLike) -> ShardStore:
    """Open and check a :class:`ShardWriter` store (ModelFileError: the file, the first problem)."""
    folder = os.path.abspath(os.fspath(folder))
    ipath = os.path.join(folder, INDEX_NAME)
    try:
        with open_regular(ipath) as f:
            raw = f.read(_MAX_INDEX_BYTES + 1)
        if len(raw) > _MAX_INDEX_BYTES:
            raise ValueError(f"over {_MAX_INDEX_BYTES} bytes, too large to be ours")
        index = check(SHARD_INDEX, parse_json(raw), "")
    except ValueError as e:
        raise ModelFileError(f"{ipath}: not a readable shard index ({e})") from None
    n_dims, shards, clips = index["n_dims"], index["shards"], index["clips"]
    files = [os.path.join(folder, s["file"]) for s in shards]
    counts = [s["n_frames"] for s in shards]
    offsets = [_npy_header(path, n_dims, n) for path, n in zip(files, counts)]
    bounds = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
    cstart, cstop = np.empty((2, len(clips)), dtype=np.int64)
    next_start = [0] * len(shards)
    for i, c in enumerate(clips):
        s, a, b = c["shard"], c["start"], c["stop"]
        if s >= len(shards) or a != next_start[s] or not a < b <= counts[s]:
            raise ModelFileError(f"{ipath}: clips[{i}] ({c['clip'][:80]!r}): frame range [{a}, "
                                 f"{b}) of shard {s} is empty, does not follow the previous "
                                 "clip, or lies outside the shard")  # fmt: skip
        next_start[s] = b
        cstart[i], cstop[i] = bounds[s] + a, bounds[s] + b
    if next_start != counts:
        raise ModelFileError(f"{ipath}: the clips do not cover every frame of every shard")
    return ShardStore(folder, n_dims, index["config_hash"], index["config"], tuple(files),
                      tuple(offsets), bounds, tuple(c["clip"] for c in clips),
                      tuple(c["label"] for c in clips), cstart, cstop,
                      hashlib.sha256(raw).hexdigest()[:32])  # fmt: skip
