"""The feature shard store and EM over it: validation, canonical blocks, weights, subsampling."""

from __future__ import annotations

import json
import operator
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audiogmm.data.shards import INDEX_NAME, open_store, write_store
from audiogmm.engine import LocalExecutor
from audiogmm.engine.local import tree_fold
from audiogmm.exceptions import ModelFileError, ParameterError
from audiogmm.mixture.diag import DiagGMM
from audiogmm.mixture.estep import accumulate
from audiogmm.mixture.sources import ArraySource, ShardSource
from audiogmm.mixture.stats import Stats


def _clips(n=30, d=5, seed=0):
    rng = np.random.default_rng(seed)
    return [
        (f"clip{i}.wav", f"L{i % 3}",
         (rng.standard_normal((int(rng.integers(20, 900)), d)) + 2.0 * (i % 3)).astype(np.float32))
        for i in range(n)
    ]  # fmt: skip


def _arrays(g):
    return [g.weights_, g.means_, g.variances_]


def test_round_trip_and_read_rows_across_shards(tmp_path):
    clips = _clips()
    store = write_store(tmp_path / "s", clips, shard_frames=1000)
    assert len(store.files) > 3
    X = np.concatenate([c[2] for c in clips])
    assert store.n_frames == X.shape[0] and store.n_dims == 5
    for i, (name, label, Xc) in enumerate(clips):
        assert store.clips[i] == name and store.labels[i] == label
        np.testing.assert_array_equal(store.clip_frames(i), Xc)
    np.testing.assert_array_equal(store.read_rows(0, store.n_frames), X)
    np.testing.assert_array_equal(store.read_rows(990, 2345), X[990:2345])


@settings(max_examples=25, deadline=None)
@given(shard=st.integers(1, 3000), a=st.integers(0, 2000), n=st.integers(0, 2000))
def test_read_rows_does_not_depend_on_shard_size(tmp_path_factory, shard, a, n):
    clips = _clips(n=8, seed=1)
    X = np.concatenate([c[2] for c in clips])
    store = write_store(tmp_path_factory.mktemp("s"), clips, shard_frames=shard)
    a = min(a, X.shape[0])
    b = min(X.shape[0], a + n)
    np.testing.assert_array_equal(store.read_rows(a, b), X[a:b])


def _corrupt(folder, edit):
    p = os.path.join(folder, INDEX_NAME)
    with open(p) as f:
        index = json.load(f)
    edit(index)
    with open(p, "w") as f:
        json.dump(index, f)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda ix: ix.update(version=99), "version"),
        (lambda ix: ix.update(format="other"), "format: must be one of"),
        (lambda ix: ix.pop("clips"), r"missing field\(s\) \['clips'\]"),
        (lambda ix: ix.update(n_dims=7), "float32 \\(n, 7\\)"),
        (lambda ix: ix.update(n_dims=True), "n_dims"),
        (lambda ix: ix["shards"][0].update(file="../evil.npy"), r"shards\[0\].file: must be a string matching"),
        (lambda ix: ix["shards"][0].update(n_frames=5), "the index says 5"),
        (lambda ix: ix["clips"][1].update(start=3), "does not follow"),
        (lambda ix: ix["clips"][0].update(stop=-1), r"clips\[0\].stop: must be an integer in \[0"),
        (lambda ix: ix["clips"].pop(), "do not cover"),
        (lambda ix: ix["clips"][0].update(label=3), r"clips\[0\].label: must be a string"),
        (lambda ix: ix["clips"][0].update(label=""), r"clips\[0\].label: must be a string matching"),
        (lambda ix: ix.update(config=5), "config: must be a string"),
        (lambda ix: ix.update(extra=5), r"unknown field\(s\) \['extra'\]"),
    ],
)
def test_open_refuses_a_bad_index(tmp_path, edit, match):
    write_store(tmp_path, _clips(n=6), shard_frames=10**6)
    _corrupt(tmp_path, edit)
    with pytest.raises(ModelFileError, match=match):
        open_store(tmp_path)


def test_open_refuses_a_truncated_or_foreign_shard(tmp_path):
    store = write_store(tmp_path, _clips(n=6), shard_frames=10**6)
    with open(store.files[0], "r+b") as f:
        f.truncate(os.path.getsize(store.files[0]) - 4)
    with pytest.raises(ModelFileError, match="does not match its header"):
        open_store(tmp_path)
    np.save(store.files[0], np.zeros((3, 5), dtype=np.float64))
    with pytest.raises(ModelFileError, match="must be float32"):
        open_store(tmp_path)
    with open(os.path.join(tmp_path, INDEX_NAME), "wb") as f:
        f.write(b"\xff\x00")
    with pytest.raises(ModelFileError, match="not a readable shard index"):
        open_store(tmp_path)


def test_fit_is_bit_identical_across_shard_sizes_and_workers(tmp_path):
    clips = _clips()
    models = []
    for shard in (700, 5000, 10**6):
        store = write_store(tmp_path / str(shard), clips, shard_frames=shard)
        for n in (1, 2, 4):
            g = DiagGMM(4, random_state=0, max_iter=4, tol=0, init="split")
            with LocalExecutor(n) as ex:
                g.fit_source(ShardSource(store, block_frames=2048), executor=ex)
            models.append(_arrays(g))
    g = DiagGMM(4, random_state=0, max_iter=4, tol=0, init="split")
    with LocalExecutor(2, processes=True) as ex:  # blocks in worker processes
        g.fit_source(ShardSource(store, block_frames=2048), executor=ex)
    models.append(_arrays(g))
    for m in models[1:]:
        for a, b in zip(m, models[0]):
            np.testing.assert_array_equal(a, b)


def test_stride_and_clip_weights_match_the_in_memory_statistics(tmp_path):
    clips = _clips()
    store = write_store(tmp_path, clips, shard_frames=1500)
    X = np.concatenate([c[2] for c in clips])
    cw = np.arange(1, len(clips) + 1, dtype=np.float64)
    w = np.concatenate([np.full(c[2].shape[0], cw[i]) for i, c in enumerate(clips)])
    g = DiagGMM(3, random_state=0, max_iter=2).fit(X.astype(np.float64))
    p = g.params_
    shift = p.weights @ p.means
    for stride in (1, 3):
        src = ShardSource(store, stride=stride, clip_weight=cw, block_frames=1024)
        assert src.n_frames == X[::stride].shape[0]
        got = src.stats(p, shift=shift)
        want = accumulate(X[::stride], p, sample_weight=w[::stride], shift=shift)
        assert got.allclose(want, rtol=1e-4)  # float32 GEMMs, other chunk cuts
        assert not got.allclose(accumulate(X[::stride], p, shift=shift), rtol=1e-3)
        idx = np.array([0, 5, src.n_frames - 1])
        np.testing.assert_array_equal(src.gather(idx), X[::stride][idx].astype(np.float64))


def test_shard_source_refuses_bad_arguments(tmp_path):
    store = write_store(tmp_path, _clips(n=4), shard_frames=10**6)
    with pytest.raises(ParameterError, match="stride"):
        ShardSource(store, stride=0)
    with pytest.raises(ParameterError, match="one per clip"):
        ShardSource(store, clip_weight=np.ones(3))
    with pytest.raises(ParameterError, match="finite"):
        ShardSource(store, clip_weight=-np.ones(4))
    with pytest.raises(ParameterError, match="clip_weight must sum to a finite number > 0"):
        ShardSource(store, clip_weight=np.zeros(4))


def test_block_sum_is_a_fixed_tree_not_a_left_fold():
    rng = np.random.default_rng(1)
    parts = [Stats(rng.random(2) * 10.0 ** rng.integers(-8, 8), rng.random((2, 1)),
                   rng.random((2, 1)), float(rng.random()), 1.0, np.zeros(1))
             for _ in range(13)]  # fmt: skip

    def ref(xs):  # the documented tree: complete pairs first, the remainder folded right to left
        sizes, out = [], []
        for x in xs:
            s, node = 1, x
            while sizes and sizes[-1] == s:
                sizes.pop()
                s, node = 2 * s, out.pop() + node
            sizes.append(s)
            out.append(node)
        total = out.pop()
        while out:
            total = out.pop() + total
        return total

    t = tree_fold(iter(parts), operator.add)
    r = ref(parts)
    np.testing.assert_array_equal(t.n, r.n)
    # ((((p0+p1)+(p2+p3))+((p4+p5)+(p6+p7))) + (((p8+p9)+(p10+p11)) + p12))
    first8 = ((parts[0] + parts[1]) + (parts[2] + parts[3])) + (
        (parts[4] + parts[5]) + (parts[6] + parts[7])
    )
    np.testing.assert_array_equal(
        t.n, (first8 + (((parts[8] + parts[9]) + (parts[10] + parts[11])) + parts[12])).n
    )
    left = parts[0]
    for x in parts[1:]:
        left = left + x
    assert not np.array_equal(t.n, left.n)  # this seed tells a tree from a left fold
    assert tree_fold([parts[0]], operator.add) is parts[0]
    with pytest.raises(ParameterError):
        tree_fold([], operator.add)
    assert isinstance(ArraySource(np.zeros((2, 1))).n_frames, int)


def test_map_tasks_carry_the_shard_list_not_the_clip_index(tmp_path):
    import pickle

    store = write_store(tmp_path, _clips(n=300), shard_frames=20000)
    light = store.reader()
    assert light.clips == () and light.clip_start.size == 0
    assert len(pickle.dumps(light)) < len(pickle.dumps(store)) / 4
    np.testing.assert_array_equal(light.read_rows(10, 5000), store.read_rows(10, 5000))
    assert store.reader(clip_ranges=True).clip_start is store.clip_start


@settings(max_examples=20, deadline=None)
@given(picks=st.lists(st.integers(0, 10**6), min_size=1, max_size=40), stride=st.integers(1, 4))
def test_gather_reads_the_rows_asked_for(tmp_path_factory, picks, stride):
    clips = _clips(n=8, seed=2)
    X = np.concatenate([c[2] for c in clips])[::stride]
    store = write_store(tmp_path_factory.mktemp("g"), clips, shard_frames=700)
    src = ShardSource(store, stride=stride)
    idx = np.unique(np.array(picks) % src.n_frames)
    np.testing.assert_array_equal(src.gather(idx), X[idx].astype(np.float64))


# -- hardening (issue 21, items 15 and 16) -------------------------------------------------


def test_writer_refuses_a_zero_frame_clip_and_an_empty_label(tmp_path):
    """A store never holds what a model trained from it could not carry."""
    with pytest.raises(ParameterError, match="c0: no frames"):
        write_store(tmp_path / "a", [("c0", "x", np.zeros((0, 3), np.float32))])
    with pytest.raises(ParameterError, match="c0: empty label"):
        write_store(tmp_path / "b", [("c0", "", np.ones((4, 3), np.float32))])


def test_a_store_with_an_empty_label_is_refused_before_training(tmp_path):
    """Item 15: a store written by 0.1.0 with an empty label fails clearly, naming the
    index, instead of training a model that `info` then refuses."""
    write_store(tmp_path, _clips(n=6), shard_frames=10**6)
    _corrupt(tmp_path, lambda ix: ix["clips"][2].update(label=""))
    with pytest.raises(ModelFileError, match=r"index.json: .*clips\[2\].label"):
        open_store(tmp_path)


def test_a_deeply_nested_index_is_one_error(tmp_path):
    write_store(tmp_path, _clips(n=6), shard_frames=10**6)
    with open(tmp_path / INDEX_NAME, "w") as f:
        f.write("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ModelFileError, match="index.json: .*nests 200000 levels"):
        open_store(tmp_path)


@pytest.mark.parametrize("which", ["index", "shard"])
def test_a_fifo_in_a_store_is_refused_not_waited_on(tmp_path, which):
    store = write_store(tmp_path, _clips(n=6), shard_frames=10**6)
    victim = tmp_path / INDEX_NAME if which == "index" else store.files[0]
    os.remove(victim)
    os.mkfifo(victim)  # opening it for reading would block forever
    with pytest.raises(ModelFileError, match="not a regular file"):
        open_store(tmp_path)


def test_a_second_writer_into_the_same_store_is_refused(tmp_path):
    """Two concurrent `extract --shards` into one folder: the second one fails at once
    instead of writing an index that describes the other's shards."""
    from audiogmm.data.shards import ShardWriter

    first = ShardWriter(tmp_path, n_dims=3)
    with pytest.raises(ParameterError, match="another process is writing"):
        ShardWriter(tmp_path, n_dims=3)
    first.add("a", "x", np.ones((2, 3)))
    first.close()
    with ShardWriter(tmp_path, n_dims=3) as again:  # released by close()
        again.add("a", "x", np.ones((2, 3)))
    assert open_store(tmp_path).n_clips == 1


def test_the_index_digest_changes_with_the_data(tmp_path):
    a = write_store(tmp_path / "a", _clips(n=6, seed=1))
    b = write_store(tmp_path / "b", _clips(n=6, seed=2))
    assert len(a.index_digest) == 32 and a.index_digest != b.index_digest
    assert open_store(tmp_path / "a").index_digest == a.index_digest


def test_a_store_with_a_zero_frame_clip_is_refused_before_training(tmp_path):
    """Item 15: a store written by 0.1.0 with a 0-frame clip fails clearly, naming the
    index and the clip, instead of training a model with a class of no frames."""
    write_store(tmp_path, _clips(n=6), shard_frames=10**6)

    def add_empty(ix):
        n = ix["shards"][0]["n_frames"]
        ix["clips"].append({"clip": "empty.wav", "label": "L9", "shard": 0, "start": n, "stop": n})

    _corrupt(tmp_path, add_empty)
    with pytest.raises(ModelFileError, match=r"index.json: clips\[6\] \('empty.wav'\): .* is empty"):
        open_store(tmp_path)


@pytest.mark.parametrize("bad", ["empty-label", "zero-frames"])
def test_train_on_a_bad_store_is_one_error_and_writes_nothing(tmp_path, bad):
    """Item 15 through the CLI: exit 1, one line naming the index, no model written."""
    from .conftest_hostile import assert_one_line_error, invoke

    write_store(tmp_path / "s", _clips(n=6), shard_frames=10**6)

    def edit(ix):
        if bad == "empty-label":
            ix["clips"][1]["label"] = ""
        else:
            n = ix["shards"][0]["n_frames"]
            ix["clips"].append({"clip": "z", "label": "L0", "shard": 0, "start": n, "stop": n})

    _corrupt(tmp_path / "s", edit)
    r = invoke(["-q", "train", tmp_path / "s", "-o", tmp_path / "m.npz", "-k", "2"])
    assert_one_line_error(r, tmp_path / "s" / INDEX_NAME)
    assert not (tmp_path / "m.npz").exists()
