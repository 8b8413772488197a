"""`--dask`, `extract --shards` and `audiogmm ubm --resume` from the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from audiogmm.cli import main
from audiogmm.data.shards import open_store

pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[1]
SPEAKERS = ROOT / "data_samples" / "speakers"
PICK = ["ast_en", "flite_slt"]


def run(args, code=0):
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == code, r.output
    return r.output


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("spk")
    for spk in PICK:
        (d / spk).mkdir()
        for f in sorted((SPEAKERS / spk).glob("*.flac"))[:4]:
            shutil.copy(f, d / spk / f.name)
    return d


def _arrays(path):
    with np.load(path) as z:  # the model's arrays (the header holds the run's timings)
        return {k: z[k] for k in z.files if not k.startswith("__")}


def test_train_with_dask_local_1_and_2_writes_the_same_arrays(data, tmp_path):
    base = ["train", data, "--split", "all", "-k", "2", "--max-iter", "3", "-j", "2"]
    run(base + ["-o", tmp_path / "plain.npz"])
    run(base + ["-o", tmp_path / "d1.npz", "--dask", "local:1"])
    run(base + ["-o", tmp_path / "d2.npz", "--dask", "local:2"])
    ref = _arrays(tmp_path / "plain.npz")
    assert ref
    for name in ("d1.npz", "d2.npz"):
        got = _arrays(tmp_path / name)
        assert got.keys() == ref.keys()
        for k in ref:
            np.testing.assert_array_equal(got[k], ref[k], err_msg=f"{name}: {k}")


def test_extract_shards_then_ubm_resume(data, tmp_path):
    store = tmp_path / "store"
    run(["extract", data, "--cache", tmp_path / "cache", "--shards", store])
    st = open_store(store)
    assert st.n_clips == 8 and sorted(set(st.labels)) == PICK
    ubm = ["ubm", store, "-k", "4", "--seed", "1", "--json"]
    full = json.loads(run(ubm + ["-o", tmp_path / "full.npz", "--max-iter", "6"]))
    assert full["resumed_from"] is None
    # an interrupted run: 2 iterations, then resumed up to 6
    run(ubm + ["-o", tmp_path / "part.npz", "--max-iter", "2", "--checkpoint", tmp_path / "c"])
    out = json.loads(run(ubm + ["-o", tmp_path / "part.npz", "--max-iter", "6",
                                "--checkpoint", tmp_path / "c", "--resume"]))  # fmt: skip
    assert out["resumed_from"] == 2
    a, b = _arrays(tmp_path / "full.npz"), _arrays(tmp_path / "part.npz")
    for k in ("weights", "means", "variances"):
        np.testing.assert_array_equal(a[k], b[k])


def test_bad_dask_spec_is_a_usage_error(data, tmp_path):
    out = run(["train", data, "-o", tmp_path / "m.npz", "--dask", "local:zero"], code=2)
    assert "local:N" in out


def test_train_on_a_store_equals_train_on_the_audio(data, tmp_path):
    store = tmp_path / "store"
    run(["extract", data, "--cache", tmp_path / "cache", "--shards", store])
    base = ["-k", "2", "--max-iter", "3", "--seed", "0", "--json"]
    run(["train", data, "--split", "all", "-o", tmp_path / "audio.npz", *base])
    out = json.loads(run(["train", store, "-o", tmp_path / "store.npz", *base]))
    assert out["n_files"] == 8 and sorted(out["labels"]) == PICK
    a, b = _arrays(tmp_path / "audio.npz"), _arrays(tmp_path / "store.npz")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    run(["info", tmp_path / "store.npz"])  # a complete model bundle, front end included
