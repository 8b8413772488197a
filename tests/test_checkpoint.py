"""EM checkpoints: written atomically after every M-step; a resumed run equals an uninterrupted one."""

from __future__ import annotations

import numpy as np
import pytest

from audiogmm.container import read_container
from audiogmm.data.shards import write_store
from audiogmm.exceptions import ModelFileError, ParameterError
from audiogmm.io import EMCheckpoint
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
