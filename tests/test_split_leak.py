"""Honest evaluation: the model stores its split, evaluate reuses it and refuses training files.

The leak this guards against (issue 11): ``train --seed 1 --train-fraction 0.5``
followed by a plain ``evaluate`` re-split DATA with the defaults (seed 0, 0.7)
and scored training files, reporting an inflated accuracy without a warning.
"""

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from audiogmm import ParameterError
from audiogmm.checks import check
from audiogmm.cli import main
from audiogmm.data import (
    Record,
    content_hash,
    read_manifest,
    select,
    split_records,
    split_spec,
    stored_training_paths,
    training_overlap,
)
from audiogmm.data.splits import file_identity
from audiogmm.io.container import CONTAINER_KEYS, read_container, write_container
from audiogmm.io.tables import SPLIT
from audiogmm.pipeline import load_model, save_model

ROOT = Path(__file__).resolve().parents[1]
SPEAKERS = ROOT / "data_samples" / "speakers"
PICK = ["ast_en", "flite_slt", "flite_awb"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """3 speakers x 8 real clips, a folder per label."""
    d = tmp_path_factory.mktemp("speakers")
    for spk in PICK:
        (d / spk).mkdir()
        for f in sorted((SPEAKERS / spk).glob("*.flac"))[:8]:
            shutil.copy(f, d / spk / f.name)
    return d


def run(args, code=0):
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == code, r.output
    return r


@pytest.fixture(scope="module")
def model(data, tmp_path_factory):
    """Trained exactly as in the issue: --seed 1 --train-fraction 0.5."""
    m = tmp_path_factory.mktemp("model") / "m.npz"
    run(["-q", "train", data, "-o", m, "-k", "2", "-j", "1", "--seed", "1",
         "--train-fraction", "0.5"])  # fmt: skip
    return m


def _split(data, seed, fraction):
    return split_records(read_manifest(data), seed=seed, train_fraction=fraction)


def test_the_two_splits_differ(data):
    # the premise of the leak: the default split's test part holds seed-1 training files
    train1 = {r.path for r in select(_split(data, 1, 0.5), "train")}
    test0 = {r.path for r in select(_split(data, 0, 0.7), "test")}
    assert train1 & test0


def test_plain_evaluate_scores_only_held_out_files(data, model):
    r = run(["evaluate", model, data, "-j", "1", "--json"])
    ev = json.loads(r.stdout)
    held_out = {r.path for r in select(_split(data, 1, 0.5), "test")}
    train = {r.path for r in select(_split(data, 1, 0.5), "train")}
    assert ev["n"] == len(held_out) == 12
    assert ev["split"] == {
        "source": "model",
        "split": "test",
        "seed": 1,
        "train_fraction": 0.5,
        "from_column": False,
        "manifest_matches": True,
    }
    assert ev["train_overlap"] == 0
    # and it says so, on stderr so that --json stays parseable
    assert "split stored in the model" in r.stderr and "seed 1" in r.stderr
    # exactly the held-out files were scored (the API's predictions list them)
    from audiogmm.pipeline import evaluate_classifier, evaluation_split

    bundle = load_model(model)
    records, info = evaluation_split(bundle, read_manifest(data), "test")
    assert {r.path for r in records} == held_out and not held_out & train
    res = evaluate_classifier(bundle, records)
    assert {p["path"] for p in res["predictions"]} == held_out


def test_training_files_are_refused(data, model):
    # the old default split (seed 0, 0.7) now scores training files: refused, with a count
    r = CliRunner().invoke(main, ["evaluate", str(model), str(data), "-j", "1", "--seed", "0",
                                  "--train-fraction", "0.7"])  # fmt: skip
    assert r.exit_code == 1
    train1 = {r.path for r in select(_split(data, 1, 0.5), "train")}
    test0 = [r.path for r in select(_split(data, 0, 0.7), "test")]
    n = len([p for p in test0 if p in train1])
    lines = [x for x in r.output.strip().splitlines() if x.startswith("Error")]
    assert len(lines) == 1
    assert f"{n} of {len(test0)} evaluation files were used to train this model" in lines[0]
    assert any(repr(p) in lines[0] for p in train1)
    assert "--allow-train-overlap" in lines[0] and "seed 1" in lines[0]
    # --split all contains every training file
    r = CliRunner().invoke(main, ["evaluate", str(model), str(data), "--split", "all"])
    assert r.exit_code == 1 and "12 of 24 evaluation files were used" in r.output


def test_allow_train_overlap_scores_them_and_says_so(data, model):
    r = run(["evaluate", model, data, "-j", "1", "--split", "all", "--allow-train-overlap"])
    assert "12 of these files were used in training" in r.stderr
    r = run(["-q", "evaluate", model, data, "-j", "1", "--split", "all",
             "--allow-train-overlap", "--json"])  # fmt: skip
    ev = json.loads(r.stdout)
    assert ev["n"] == 24 and ev["train_overlap"] == 12


def test_renamed_copy_of_a_training_file_is_caught(data, model, tmp_path):
    # identity is the audio bytes, so a copy under another name in another manifest is refused
    train1 = sorted(r.path for r in select(_split(data, 1, 0.5), "train"))
    test1 = sorted(r.path for r in select(_split(data, 1, 0.5), "test"))
    copy = tmp_path / "renamed.flac"
    shutil.copy(train1[0], copy)
    label = Path(train1[0]).parent.name
    rows = ["path,label,split", f"{copy},{label},test"]
    rows += [f"{p},{Path(p).parent.name},test" for p in test1]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    r = CliRunner().invoke(main, ["evaluate", str(model), str(tmp_path / "m.csv"), "-j", "1"])
    assert r.exit_code == 1 and "1 of 13 evaluation files" in r.output
    assert "renamed.flac" in r.output
    # another manifest: the stored seed is still used, and the mismatch is reported
    assert "DATA differs from the training manifest" in r.output


def test_duplicates_inside_the_training_manifest_are_scored_and_reported(data, tmp_path, caplog):
    # a dataset that lists one sample twice, once per split: the split is the user's, the
    # copy was not trained on, so it is scored (with a warning and a count), not refused
    rows = ["path,label,split"]
    for spk in PICK:
        for i, f in enumerate(sorted((data / spk).glob("*.flac"))):
            rows.append(f"{f},{spk},{'train' if i < 5 else 'test'}")
    first = sorted((data / PICK[0]).glob("*.flac"))[0]
    twin = tmp_path / "twin.flac"
    shutil.copy(first, twin)
    rows.append(f"{twin},{PICK[0]},test")
    csv = tmp_path / "dup.csv"
    csv.write_text("\n".join(rows) + "\n")
    m = tmp_path / "m.npz"
    run(["-q", "train", csv, "-o", m, "-k", "1", "-j", "1", "--max-iter", "3"])
    r = run(["evaluate", m, csv, "-j", "1", "--json"])
    ev = json.loads(r.stdout)
    assert ev["n"] == 10 and ev["train_duplicates"] == 1 and ev["train_overlap"] == 0
    # a logged warning: shown at the default verbosity (WARNING), on stderr
    assert "1 evaluation file(s) are byte-identical to training files" in caplog.text
    assert "twin.flac" in caplog.text
    # the same twin in another manifest cannot be told from a leak: refused
    (tmp_path / "other.csv").write_text(f"path,label\n{twin},{PICK[0]}\n")
    r = CliRunner().invoke(main, ["evaluate", str(m), str(tmp_path / "other.csv"), "--split",
                                  "all", "-j", "1"])  # fmt: skip
    assert r.exit_code == 1 and "1 of 1 evaluation files were used to train" in r.output


def test_split_block_in_the_model_and_info(data, model):
    spec = load_model(model).header["split"]
    train1 = select(_split(data, 1, 0.5), "train")
    assert spec == split_spec(read_manifest(data), train1, split="train", seed=1,
                              train_fraction=0.5)  # fmt: skip
    assert spec["train_files"] == sorted(file_identity(r.path) for r in train1)
    assert spec["manifest_hash"] == content_hash(read_manifest(data))
    out = json.loads(run(["info", model, "--json"]).stdout)
    assert out["split"]["seed"] == 1 and out["split"]["n_train_files"] == 12
    assert "train_files" not in out["split"]
    assert "seed 1, train fraction 0.5" in run(["info", model]).stdout


def test_model_without_split_block_says_it_is_unchecked(data, model, tmp_path, caplog):
    import logging

    from audiogmm.pipeline import evaluate_classifier

    caplog.set_level(logging.INFO, logger="audiogmm")

    bundle = load_model(model)
    path = tmp_path / "old.npz"
    save_model(path, bundle.classifier, bundle.config)  # no split block, as before this change
    old = load_model(path)
    assert "split" not in old.header
    recs = select(_split(data, 1, 0.5), "test")[:2]
    res = evaluate_classifier(old, recs)
    assert res["train_overlap"] is None
    assert "cannot be checked" in caplog.text
    r = run(["evaluate", path, data, "-j", "1", "--split", "all", "--json"])
    assert "the default split (the model records none)" in r.stderr
    assert json.loads(r.stdout)["train_overlap"] is None


# -- the split block's validator ---------------------------------------------------------


def _good():
    return {
        "manifest_hash": "0123456789abcdef",
        "n_manifest_files": 3,
        "split": "train",
        "from_column": False,
        "seed": 1,
        "train_fraction": 0.5,
        "identity": "blake2b-64 of the file bytes",
        "train_files": ["00000000000000aa", "00000000000000bb"],
    }


def test_validator_accepts_the_good_block():
    assert check(SPLIT, _good(), "split") == _good()


@pytest.mark.parametrize(
    "field, value",
    [
        ("manifest_hash", "XYZ"),
        ("manifest_hash", 12),
        ("n_manifest_files", -1),
        ("n_manifest_files", True),
        ("seed", 1.5),
        ("split", ""),
        ("from_column", "no"),
        ("train_fraction", 1.0),
        ("train_fraction", float("nan")),
        ("train_fraction", "0.5"),
        ("identity", "sha1"),
        ("train_files", "00000000000000aa"),
        ("train_files[1]", ["00000000000000bb", "00000000000000aa"]),
        ("train_files[1]", ["00000000000000aa", "00000000000000aa"]),
        ("train_files[0]", ["short"]),
    ],
)
def test_validator_names_the_bad_field(field, value):
    block = _good()
    block[field.split("[")[0]] = value
    with pytest.raises(ValueError, match=re.escape(f"split.{field}:")):
        check(SPLIT, block, "split")


def test_validator_refuses_missing_unknown_and_non_objects():
    block = _good()
    del block["seed"]
    with pytest.raises(ValueError, match=r"missing field\(s\) \['seed'\]"):
        check(SPLIT, block, "split")
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['x'\]"):
        check(SPLIT, {**_good(), "x": 1}, "split")
    with pytest.raises(ValueError, match="JSON object"):
        check(SPLIT, [1, 2], "split")


def test_bad_split_block_in_a_model_file_is_one_error(model, data, tmp_path):
    bundle = load_model(model)
    path = tmp_path / "bad.npz"
    # save refuses a bad block (the writer runs the loader's checks): tamper as an attacker
    with pytest.raises(ParameterError, match="split.seed"):
        bundle.classifier.save(path, extra={"split": {**_good(), "seed": "1"}})
    kind = type(bundle.classifier).__name__  # the default backend's (gsv)
    header, arrays = read_container(model, kind=kind)
    header = {k: v for k, v in header.items() if k not in CONTAINER_KEYS}
    write_container(path, kind=kind, arrays=arrays,
                    header={**header, "split": {**_good(), "seed": "1"}})  # fmt: skip
    for args in (["evaluate", str(path), str(data)], ["info", str(path)]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 1 and "Traceback" not in r.output
        lines = [x for x in r.output.strip().splitlines() if x]
        assert len(lines) == 1 and lines[0].startswith(f"Error: {path}: header field split.seed")


# -- the manifest's content hash ---------------------------------------------------------

_records = st.lists(
    st.tuples(
        st.text("abc/", min_size=1, max_size=6).filter(lambda s: not s.endswith("/")),
        st.sampled_from(["x", "y"]),
    ),
    min_size=1,
    max_size=8,
    unique_by=lambda t: t[0],
)


@given(_records, st.randoms(use_true_random=False))
def test_content_hash_ignores_order_and_location(rows, rnd):
    recs = [Record(f"/data/set/{p}.wav", y) for p, y in rows]
    moved = [Record(f"/elsewhere/deeper/set/{p}.wav", y) for p, y in rows]
    shuffled = list(recs)
    rnd.shuffle(shuffled)
    h = content_hash(recs)
    assert content_hash(shuffled) == h == content_hash(moved)
    relabelled = [Record(recs[0].path, recs[0].label + "z"), *recs[1:]]
    assert content_hash(relabelled) != h
    split = [Record(r.path, r.label, "train") for r in recs]
    assert content_hash(split) != h


# -- the mechanism, as an invariant over random manifests and splits -----------------------


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    """30 small files with distinct bytes (the split code never decodes them)."""
    d = tmp_path_factory.mktemp("tiny")
    paths = []
    for i in range(30):
        p = d / f"f{i:02d}.wav"
        p.write_bytes(f"clip {i}".encode() * (i + 1))
        paths.append(str(p))
    return paths


@settings(max_examples=40, deadline=None)
@given(
    n_labels=st.integers(1, 4),
    seeds=st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)),
    fractions=st.tuples(st.floats(0.1, 0.9), st.floats(0.1, 0.9)),
)
def test_overlap_is_exactly_the_training_files(tiny_files, n_labels, seeds, fractions):
    manifest = [Record(p, f"y{i % n_labels}") for i, p in enumerate(tiny_files)]
    trained = split_records(manifest, seed=seeds[0], train_fraction=fractions[0])
    train = select(trained, "train")
    spec = split_spec(manifest, train, split="train", seed=seeds[0], train_fraction=fractions[0])
    # the stored split's own test part never overlaps; its training part always does
    assert training_overlap(spec, select(trained, "test")) == []
    assert training_overlap(spec, train) == train
    assert stored_training_paths(spec, manifest) == {r.path for r in train}
    # any other split's test part overlaps in exactly its training files
    other = select(split_records(manifest, seed=seeds[1], train_fraction=fractions[1]), "test")
    train_paths = {r.path for r in train}
    assert training_overlap(spec, other) == [r for r in other if r.path in train_paths]
    # another manifest: paths are unknown, only contents can be compared
    assert stored_training_paths(spec, manifest[:-1]) is None


# -- the identities kept in the feature cache (issue 24) -----------------------------------


def _spy(monkeypatch, module, name):
    """Count the calls of ``module.name`` (still calling it); returns the list of paths."""
    calls, real = [], getattr(module, name)
    monkeypatch.setattr(module, name, lambda p, *a, **k: calls.append(p) or real(p, *a, **k))
    return calls


def test_second_cached_train_and_evaluate_read_no_file_bytes(data, tmp_path, monkeypatch):
    import audiogmm.audio
    import audiogmm.data.splits as splits

    cache, m1, m2 = tmp_path / "C", tmp_path / "m1.npz", tmp_path / "m2.npz"
    train = ["-q", "train", data, "-k", "1", "--max-iter", "2", "-j", "2", "--cache", cache]
    run([*train, "-o", m1])
    run(["-q", "evaluate", m1, data, "-j", "2", "--cache", cache])
    hashed = _spy(monkeypatch, splits, "file_identity")
    headers = _spy(monkeypatch, audiogmm.audio, "info")  # the executor policy's durations
    run([*train, "-o", m2])
    run(["-q", "evaluate", m2, data, "-j", "2", "--cache", cache])
    assert hashed == [] and headers == []
    # and the kept identities are the files' own: the block equals a fresh hash's
    block = load_model(m2).header["split"]
    assert block == load_model(m1).header["split"]
    assert block["train_files"] == sorted(
        file_identity(r.path) for r in select(_split(data, 0, 0.7), "train")
    )


@pytest.mark.parametrize("damage", ["flip", "cut"])
def test_altered_or_torn_identity_record_is_recomputed(tiny_files, tmp_path, monkeypatch, damage):
    import audiogmm.data.splits as splits

    files = [shutil.copy(p, tmp_path) for p in tiny_files]  # one is changed below
    manifest = [Record(p, "y") for p in files]
    fresh = split_spec(manifest, manifest, split=None, seed=0, train_fraction=0.7)
    cache = tmp_path / "C"
    assert split_spec(manifest, manifest, split=None, seed=0, train_fraction=0.7,
                      cache_dir=cache) == fresh  # fmt: skip
    (pack,) = (cache / "files").glob("*.pack")
    raw = bytearray(pack.read_bytes())
    record = len(raw) // len(files)  # header (44 bytes), 8-byte identity, digest
    if damage == "flip":  # every identity altered: a trusted record would give a wrong hash
        for off in range(44, len(raw), record):
            raw[off] ^= 0xFF
    else:  # the last record torn, as by a kill mid-write
        raw = raw[:-3]
    pack.write_bytes(bytes(raw))
    hashed = _spy(monkeypatch, splits, "file_identity")
    again = split_spec(manifest, manifest, split=None, seed=0, train_fraction=0.7, cache_dir=cache)
    assert again == fresh
    assert sorted(hashed) == sorted(files) if damage == "flip" else len(hashed) == 1
    # a changed file is hashed again, not served its old identity
    Path(files[0]).write_bytes(b"changed")
    changed = split_spec(manifest, manifest, split=None, seed=0, train_fraction=0.7,
                         cache_dir=cache)  # fmt: skip
    assert file_identity(files[0]) in changed["train_files"] != fresh["train_files"]
