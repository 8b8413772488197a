"""Model files: exact round trip, and every kind of bad file refused with ModelFileError."""

import json
import zipfile

import numpy as np
import pytest

from audiogmm import DiagGMM, ModelFileError
from audiogmm.io import container as agio
from audiogmm.io import load, save

from .conftest import draw_mixture


@pytest.fixture(scope="module")
def fitted():
    X, _ = draw_mixture(2000, seed=4)
    return DiagGMM(3, random_state=0).fit(X), X


def _rewrite(src, dst, mutate_header=None, mutate_arrays=None, fix_checksum=True):
    header, arrays = agio.read_container(src, kind="DiagGMM")
    if mutate_arrays:
        mutate_arrays(arrays)
    body = {k: v for k, v in header.items() if k not in ("checksum",)}
    body["arrays"] = {k: {"dtype": v.dtype.str, "shape": list(v.shape)} for k, v in arrays.items()}
    if mutate_header:
        mutate_header(body)
    if fix_checksum:
        body["checksum"] = agio._checksum(body, arrays)
    else:
        body["checksum"] = header["checksum"]
    blob = np.frombuffer(json.dumps(body).encode(), dtype=np.uint8)
    np.savez(dst, __header__=blob, **arrays)


def test_round_trip_is_bit_exact(fitted, tmp_path):
    g, X = fitted
    p = tmp_path / "m.npz"
    save(g, p)
    h = load(p, DiagGMM)
    for a in ("weights_", "means_", "variances_", "var_floor_"):
        np.testing.assert_array_equal(getattr(g, a), getattr(h, a))
    np.testing.assert_array_equal(g.score_samples(X), h.score_samples(X))
    assert h.get_params()["n_components"] == 3
    assert h.history_ == g.history_
    assert not list(tmp_path.glob(".tmp-*"))  # atomic write left nothing behind


def test_header_is_plain_json(fitted, tmp_path):
    g, _ = fitted
    save(g, tmp_path / "m.npz")
    with zipfile.ZipFile(tmp_path / "m.npz") as z:
        assert sorted(z.namelist()) == sorted(
            ["__header__.npy", "weights.npy", "means.npy", "variances.npy", "var_floor.npy"]
        )
    header, _ = agio.read_container(tmp_path / "m.npz", kind="DiagGMM")
    assert header["format"] == "audiogmm" and header["format_version"] == agio.FORMAT_VERSION
    assert header["kind"] == "DiagGMM" and header["checksum"].startswith("sha256:")


def test_truncated_file(fitted, tmp_path):
    g, _ = fitted
    p = tmp_path / "m.npz"
    save(g, p)
    data = p.read_bytes()
    for cut in (0, 10, len(data) // 3, len(data) // 2, len(data) - 5):
        q = tmp_path / f"cut{cut}.npz"
        q.write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match=f"cut{cut}.npz"):
            load(q, DiagGMM)


def test_every_flipped_byte_is_refused(fitted, tmp_path):
    g, _ = fitted
    p = tmp_path / "m.npz"
    save(g, p)
    data = bytearray(p.read_bytes())
    q = tmp_path / "flip.npz"
    refused = 0
    positions = range(0, len(data), max(1, len(data) // 300))
    for i in positions:
        d = bytearray(data)
        d[i] ^= 0x5A
        q.write_bytes(bytes(d))
        try:
            h = load(q, DiagGMM)
        except ModelFileError as e:
            assert "flip.npz" in str(e)
            refused += 1
        else:
            # a flip in zip padding/metadata that changes no stored byte is harmless
            np.testing.assert_array_equal(h.means_, g.means_)
            np.testing.assert_array_equal(h.variances_, g.variances_)
    assert refused >= 0.8 * len(positions)


def test_pickled_object_array_refused(fitted, tmp_path):
    g, _ = fitted
    p = tmp_path / "m.npz"
    save(g, p)
    header, arrays = agio.read_container(p, kind="DiagGMM")
    evil = np.empty(1, dtype=object)
    evil[0] = {"payload": "would run code on load"}
    blob = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(tmp_path / "evil.npz", __header__=blob, evil=evil, **arrays)
    with pytest.raises(ModelFileError, match="pickle"):
        load(tmp_path / "evil.npz", DiagGMM)


def test_wrong_version_refused(fitted, tmp_path):
    g, _ = fitted
    save(g, tmp_path / "m.npz")
    _rewrite(
        tmp_path / "m.npz", tmp_path / "v2.npz", mutate_header=lambda h: h.update(format_version=99)
    )
    with pytest.raises(ModelFileError, match="format version 99 is not supported"):
        load(tmp_path / "v2.npz", DiagGMM)


def test_wrong_kind_and_foreign_npz(fitted, tmp_path):
    g, _ = fitted
    save(g, tmp_path / "m.npz")
    with pytest.raises(ModelFileError, match="expected a 'Stats'"):
        agio.read_container(tmp_path / "m.npz", kind="Stats")
    np.savez(tmp_path / "plain.npz", a=np.ones(3))
    with pytest.raises(ModelFileError, match="no audiogmm header"):
        load(tmp_path / "plain.npz", DiagGMM)
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ModelFileError, match="text.npz"):
        load(tmp_path / "text.npz", DiagGMM)
    with pytest.raises(ModelFileError, match="no such file"):
        load(tmp_path / "missing.npz", DiagGMM)


def _set(key, fn):
    def m(a):
        a[key] = fn(a[key].copy())

    return m


@pytest.mark.parametrize(
    "mutate, match",
    [
        (
            _set(
                "variances", lambda v: np.where(np.arange(v.size).reshape(v.shape) == 0, np.nan, v)
            ),
            "NaN",
        ),
        (_set("variances", lambda v: -v), "variances must be > 0"),
        (_set("weights", lambda w: w * 1.1), "sum to 1"),
        (_set("means", lambda m: m[:, :2]), "inconsistent shapes"),
    ],
)
def test_invalid_parameters_refused_even_with_valid_checksum(fitted, tmp_path, mutate, match):
    g, _ = fitted
    save(g, tmp_path / "m.npz")
    _rewrite(tmp_path / "m.npz", tmp_path / "bad.npz", mutate_arrays=mutate)
    with pytest.raises(ModelFileError, match=match):
        load(tmp_path / "bad.npz", DiagGMM)


def test_tampered_array_with_stale_checksum(fitted, tmp_path):
    g, _ = fitted
    save(g, tmp_path / "m.npz")
    _rewrite(
        tmp_path / "m.npz",
        tmp_path / "t.npz",
        mutate_arrays=_set("means", lambda m: m + 1e-9),
        fix_checksum=False,
    )
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        load(tmp_path / "t.npz", DiagGMM)


def test_interrupted_write_keeps_old_file(fitted, tmp_path):
    g, _ = fitted
    p = tmp_path / "m.npz"
    save(g, p)
    before = p.read_bytes()

    def boom(f):
        f.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        agio.atomic_write(p, boom)
    assert p.read_bytes() == before
    assert not list(tmp_path.glob(".tmp-*"))
