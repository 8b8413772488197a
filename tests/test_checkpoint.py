"""EM checkpoints: written atomically after every M-step; a resumed run equals an uninterrupted one."""

from __future__ import annotations

import numpy as np
import pytest

from audiogmm.data.shards import write_store
from audiogmm.exceptions import ModelFileError, ParameterError
from audiogmm.io import EMCheckpoint
from audiogmm.io.container import CONTAINER_KEYS, read_container, write_container
from audiogmm.mixture.diag import DiagGMM
from audiogmm.models.ubm import train_ubm


class _Crash(Exception):
    pass


def _store(folder):
    rng = np.random.default_rng(0)
    clips = [
        (f"c{i}", "x", (rng.standard_normal((400, 4)) + 4.0 * (i % 4)).astype(np.float32))
        for i in range(30)
    ]
    return write_store(folder, clips, shard_frames=3000)


def _arrays(g):
    return [g.weights_, g.means_, g.variances_]


KW = dict(n_components=6, random_state=0, max_iter=8, tol=0.0, init="split")


@pytest.mark.filterwarnings("ignore::audiogmm.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("crash_at", [1, 3, 7])
def test_resume_after_a_crash_gives_the_uninterrupted_model(tmp_path, monkeypatch, crash_at):
    store = _store(tmp_path / "s")
    ref = train_ubm(store, **KW)
    path = tmp_path / "em.ckpt.npz"
    fp = {"components": 6, "store_frames": store.n_frames, "store_index": store.index_digest}
    real = EMCheckpoint.save
    calls = {"n": 0}

    def crashing(self, params, monitor, reseeded):
        real(self, params, monitor, reseeded)
        calls["n"] += 1
        if calls["n"] == crash_at:  # the process dies right after its crash_at-th checkpoint
            raise _Crash

    monkeypatch.setattr(EMCheckpoint, "save", crashing)
    with pytest.raises(_Crash):
        train_ubm(store, checkpoint=EMCheckpoint(path, fingerprint=fp), **KW)
    header, _ = read_container(path, kind="EMCheckpoint")
    assert header["n_iter"] == crash_at and len(header["history"]) == crash_at
    monkeypatch.setattr(EMCheckpoint, "save", real)
    ck = EMCheckpoint(path, resume=True, fingerprint=fp)
    got = train_ubm(store, checkpoint=ck, **KW)
    assert ck.resumed_from == crash_at
    for a, b in zip(_arrays(got), _arrays(ref)):
        np.testing.assert_array_equal(a, b)
    assert got.history_ == ref.history_ and got.n_iter_ == ref.n_iter_


@pytest.mark.filterwarnings("ignore::audiogmm.exceptions.ConvergenceWarning")
def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    store = _store(tmp_path / "s")
    path = tmp_path / "em.ckpt.npz"
    train_ubm(store, checkpoint=EMCheckpoint(path, fingerprint={"components": 6}), **KW)
    with pytest.raises(ModelFileError, match="written for"):
        train_ubm(store, checkpoint=EMCheckpoint(path, resume=True, fingerprint={"seed": 7}), **KW)
    with open(path, "r+b") as f:  # a damaged checkpoint is refused, not half-read
        f.seek(200)
        f.write(b"\x00" * 16)
    with pytest.raises(ModelFileError):
        train_ubm(store, checkpoint=EMCheckpoint(path, resume=True, fingerprint={"components": 6}), **KW)
    with pytest.raises(ParameterError, match="n_init=1"):
        DiagGMM(2, n_init=2).fit_source(None, checkpoint=EMCheckpoint(path))


def _tamper(path, **header):
    h, arrays = read_container(path, kind="EMCheckpoint")
    h = {k: v for k, v in h.items() if k not in CONTAINER_KEYS}
    write_container(path, kind="EMCheckpoint", header={**h, **header}, arrays=arrays)


@pytest.mark.filterwarnings("ignore::audiogmm.exceptions.ConvergenceWarning")
def test_a_checkpoint_whose_arrays_disagree_with_its_fingerprint_is_refused(tmp_path):
    """Item 16: arrays of another size than the fingerprint says are refused, not resumed
    into a model of the wrong size."""
    store = _store(tmp_path / "s")
    path = tmp_path / "em.ckpt.npz"
    fp = {"components": 6, "n_dims": 4, "store_index": store.index_digest}
    train_ubm(store, checkpoint=EMCheckpoint(path, fingerprint=fp), **{**KW, "max_iter": 2})
    _tamper(path, fingerprint={**fp, "components": 3})
    with pytest.raises(ModelFileError, match="do not match"):
        EMCheckpoint(path, resume=True, fingerprint={**fp, "components": 3}).restore(None)
    for bad, match in [({"n_iter": 5}, "n_iter"), ({"history": [1.0, "x"]}, r"history\[1\]"),
                       ({"fingerprint": {**fp, "zz": 1}}, "unknown field"),
                       ({"reseeded": 0}, "reseeded")]:  # fmt: skip
        train_ubm(store, checkpoint=EMCheckpoint(path, fingerprint=fp), **{**KW, "max_iter": 2})
        _tamper(path, **bad)
        with pytest.raises(ModelFileError, match=match):
            EMCheckpoint(path, resume=True, fingerprint=fp).restore(None)


@pytest.mark.filterwarnings("ignore::audiogmm.exceptions.ConvergenceWarning")
def test_a_checkpoint_of_another_store_of_the_same_size_is_refused(tmp_path):
    """Item 16: the fingerprint covers a digest of the store's index, so a checkpoint from
    other data with the same sizes does not resume silently into a different model."""
    a, b = _store(tmp_path / "a"), _store(tmp_path / "b")
    _corrupt_labels = [("c", "y", np.ones((a.n_frames, 4), np.float32))]
    b = write_store(tmp_path / "b", _corrupt_labels)
    assert a.n_frames == b.n_frames and a.index_digest != b.index_digest
    path = tmp_path / "em.ckpt.npz"
    fp = {"components": 6, "store_frames": a.n_frames}
    train_ubm(a, checkpoint=EMCheckpoint(path, fingerprint={**fp, "store_index": a.index_digest}),
              **{**KW, "max_iter": 2})  # fmt: skip
    with pytest.raises(ModelFileError, match="written for"):
        EMCheckpoint(path, resume=True, fingerprint={**fp, "store_index": b.index_digest}).restore(
            None
        )


def test_a_fingerprint_with_an_unknown_key_is_a_parameter_error(tmp_path):
    with pytest.raises(ParameterError, match="fingerprint"):
        EMCheckpoint(tmp_path / "c.npz", fingerprint={"bogus": 1})
