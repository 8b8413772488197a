"""Hypothesis fuzzers of the model loader (reliability issue).

The only acceptable outcomes of loading a mutated real model file are:

* a model that loads AND is valid (finite parameters consistent with the header,
  finite scores and log posteriors summing to 1 on a probe, ``audiogmm info`` exits 0),
* or :class:`audiogmm.ModelFileError` naming the file.

Mutations: truncations, byte flips, header field mutations with a recomputed checksum
(through ``tamper_header``, the single place that knows the container format), and
array mutations with a consistent header, of every kind (classifier, UBM/MAP bundle,
fused, DiagGMM, EM checkpoint); and edits, truncations and flips of a shard store's
``index.json``. A few hundred examples run in CI;
``benchmarks/fuzz_models.py --examples N`` runs the same fuzzers for longer and counts
the outcomes.
"""

from __future__ import annotations

import atexit
import copy
import functools
import json
import math
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from audiogmm import ModelFileError
from audiogmm.cli import main
from audiogmm.data.shards import INDEX_NAME, open_store, write_store

from .test_model_file import LOADERS, base_model, memory_guard, read_model_file, tamper_header

CI = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_WORK = Path(tempfile.mkdtemp(prefix="audiogmm-fuzz-"))
atexit.register(shutil.rmtree, _WORK, True)

OK_MODEL = {"ok", "ModelFileError"}
KINDS = ["GMMClassifier", "UBMClassifier", "FusedClassifier", "DiagGMM", "EMCheckpoint",
         "GSVClassifier", "IVectorClassifier", "FusedMixed-0"]  # fmt: skip


def _problem_with_model(obj, kind: str, path) -> str | None:
    """Why a successfully loaded model is not valid, or None."""
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if kind == "ShardIndex":
            arrays = []
            for i, label in enumerate(obj.labels):
                X = obj.clip_frames(i)
                if not label or X.shape != (obj.clip_stop[i] - obj.clip_start[i], obj.n_dims):
                    return f"clip {i} disagrees with its index entry"
                arrays.append(X)
            if obj.read_rows(0, obj.n_frames).shape[0] != obj.n_frames:
                return "the frames do not add up"
        elif kind == "EMCheckpoint":
            params, mon = obj
            arrays = [params.weights, params.means, params.variances]
            if params.means.shape != (2, 3) or mon.n_iter != len(mon.history):
                return "resumed state disagrees with the fingerprint or the history"
            if not all(math.isfinite(x) for x in mon.history):
                return "non-finite history"
        elif kind == "DiagGMM":
            arrays = [obj.weights_, obj.means_, obj.variances_]
            if obj.means_.shape[0] != obj.n_components:
                return "n_components disagrees with the arrays"
            probe = rng.normal(0, 1, (16, obj.n_dims))
            if not np.all(np.isfinite(obj.score_samples(probe))):
                return "non-finite scores on a N(0,1) probe"
            obj.predict(probe)
        elif kind.startswith("Fused"):  # ml members, or one of each backend (FusedMixed)
            clf = obj.classifier
            owns = [m if hasattr(m, "means_") else m.ubm_ for m in clf.members]  # gsv, ivector
            arrays = [a for o in owns for a in (o.weights_, o.means_, o.variances_)]
            if len(obj.configs) != len(clf.members):
                return "feature configs disagree with the members"
            for m, o, c in zip(clf.members, owns, obj.configs):
                if o.means_.shape[-2] != m.n_components or c.n_dims != m.n_dims:
                    return "a member's sizes disagree with its arrays or config"
            S = clf.score_matrix([[rng.normal(0, 1, (16, m.n_dims))] for m in clf.members])
            lp = clf.log_proba_from_scores(S)
            if not np.all(np.isfinite(S)):
                return "non-finite fused scores on a N(0,1) probe"
            if np.any(np.isnan(lp)) or not np.allclose(np.exp(lp).sum(1), 1.0):
                return f"log posteriors do not sum to 1: {lp}"
            r = CliRunner().invoke(main, ["info", "--json", str(path)])
            if r.exit_code != 0:
                return f"`audiogmm info` failed on a file load() accepted: {r.output[-300:]}"
        else:
            clf, config = obj.classifier, obj.config
            own = clf.ubm_ if kind in ("GSVClassifier", "IVectorClassifier") else clf  # no classes
            arrays = [getattr(own, k + "_") for k in ("weights", "means", "variances")]
            if arrays[1].shape[-2] != clf.n_components:
                return "n_components disagrees with the arrays"
            if config.n_dims != clf.n_dims:
                return "feature config disagrees with the arrays"
            probe = rng.normal(0, 1, (16, clf.n_dims))
            S = clf.score_matrix([probe])
            lp = clf.predict_log_proba([probe])
            if not np.all(np.isfinite(S)):
                return "non-finite scores on a N(0,1) probe"
            if np.any(np.isnan(lp)) or not np.allclose(np.exp(lp).sum(1), 1.0):
                return f"log posteriors do not sum to 1: {lp}"
            if clf.predict([probe])[0] not in clf.labels_:
                return "prediction is not one of the labels"
            if hasattr(clf, "ubm_") and np.any(np.isnan(clf.score_samples([probe]))):
                return "NaN verification scores on a N(0,1) probe"
            r = CliRunner().invoke(main, ["info", "--json", str(path)])
            if r.exit_code != 0:
                return f"`audiogmm info` failed on a file load() accepted: {r.output[-300:]}"
        for a in arrays:
            if not np.all(np.isfinite(a)):
                return "non-finite parameters"
    return None


def model_outcome(path, kind: str) -> tuple[str, str]:
    """("ok" | "ModelFileError" | "BAD:<why>", detail) for loading ``path`` as ``kind``."""
    try:
        obj = open_store(path) if kind == "ShardIndex" else LOADERS[kind](path)
    except ModelFileError as e:
        if str(path) not in str(e):
            return "BAD:error-does-not-name-the-file", str(e)[:300]
        return "ModelFileError", str(e)[:300]
    except Exception as e:  # MemoryError, RecursionError, TypeError, ...: all failures
        return f"BAD:{type(e).__name__}", str(e)[:300]
    try:
        problem = _problem_with_model(obj, kind, path)
    except Exception as e:
        return f"BAD:loaded-but-unusable:{type(e).__name__}", str(e)[:300]
    return ("ok", "") if problem is None else ("BAD:invalid-model", problem)


# ======================================================================================
# Model-file mutations
# ======================================================================================

_INTERESTING = [
    None, True, False, 0, -1, 1, 2, 3, 2**31, 2**63, -(2**63), 10**30, 0.5, -0.5, 1e-300,
    1e300, -1e300, math.nan, math.inf, -math.inf, "", "two", "a", "b", "speech", [], {},
    [1, 2], ["a", "b"], {"a": 1}, {"a": 0.5, "b": 0.5},
]  # fmt: skip
_SCALARS = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12)
)
JSON_VALUES = st.recursive(
    _SCALARS,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=10,
)

_CONTAINER_KEYS = {"format", "format_version", "kind", "audiogmm_version", "arrays"}


@functools.cache
def base_store() -> Path:
    """A valid shard store: 3 shards, 8 clips of 3 labels, 4-dim frames."""
    rng = np.random.default_rng(0)
    clips = [(f"c{i}.wav", "xyz"[i % 3], rng.normal(0, 1, (60 + 7 * i, 4)).astype(np.float32))
             for i in range(8)]  # fmt: skip
    return Path(write_store(_WORK / "base-store", clips, shard_frames=200).folder)


@functools.cache
def base_header(kind: str) -> dict:
    if kind == "ShardIndex":
        return json.loads((base_store() / INDEX_NAME).read_text())
    return read_model_file(base_model(kind))[0]


@functools.cache
def base_bytes(kind: str) -> bytes:
    return Path(base_model(kind)).read_bytes()


@st.composite
def header_edits(draw, kind: str):
    """(path, op, value, key): where in the header, what to do, with which JSON value."""
    header = base_header(kind)
    # the object's own metadata is where validation was missing: weight it 4:1 over the
    # container fields (format, version, kind, arrays)
    keys = sorted(k for k in header if k != "checksum")
    weighted = [k for k in keys for _ in range(1 if k in _CONTAINER_KEYS else 4)]
    path = [draw(st.sampled_from(weighted))]
    node = header[path[0]]
    while isinstance(node, (dict, list)) and node and draw(st.integers(0, 3)):
        keys = sorted(node) if isinstance(node, dict) else list(range(len(node)))
        path.append(draw(st.sampled_from(keys)))
        node = node[path[-1]]
    op = draw(st.sampled_from(["replace", "replace", "perturb", "delete", "add"]))
    if op == "perturb" and isinstance(node, (int, float)) and not isinstance(node, bool):
        factor = draw(st.sampled_from([-1, 0, 0.5, 1.5, 2, 10, 1e3, 1e6, 1e30, 1e-30]))
        value = node * factor + draw(st.sampled_from([0, 1, -1]))
        value = int(value) if isinstance(node, int) and abs(value) < 2**62 else value
    else:
        value = draw(st.sampled_from(_INTERESTING) | JSON_VALUES)
    key = draw(st.text(max_size=10)) if op == "add" else None
    return path, op, value, key


def apply_edit(header: dict, edit) -> None:
    """Apply one edit; an edit whose path an earlier edit removed is a no-op."""
    path, op, value, key = edit
    value = copy.deepcopy(value)  # drawn values may be shared objects (sampled_from)
    parent = header
    try:
        for k in path[:-1]:
            parent = parent[k]
        parent[path[-1]]
    except (KeyError, IndexError, TypeError):
        return
    if not isinstance(parent, (dict, list)):  # an earlier edit made it a string: indexable,
        return  # but not editable
    last = path[-1]
    if op == "delete":
        del parent[last]
    elif op == "add" and isinstance(parent[last], dict):
        parent[last][key] = value
    else:
        parent[last] = value


def write_header_edit(kind: str, edits, dst) -> Path:
    def mutate(h):
        for e in edits:
            apply_edit(h, e)

    return tamper_header(base_model(kind), dst, mutate)


_ARRAY_FACTORS = {
    "weights": [0.0, -1.0, 2.0, math.nan, math.inf, 1e-300],
    "means": [math.nan, math.inf, -math.inf, 1e100, -1e100, 0.0],
    "variances": [0.0, -1.0, math.nan, math.inf, 1e-100, 1e100],
    "var_floor": [0.0, -1.0, math.nan, math.inf, 1e-100, 1e100],
    "var_floors": [0.0, -1.0, math.nan, math.inf, 1e-100, 1e100],
}


@st.composite
def array_edits(draw, kind: str):
    """Scale one element of one array, or change an array's shape or dtype."""
    _, arrays = read_model_file(base_model(kind))
    name = draw(st.sampled_from(sorted(arrays)))
    a = arrays[name]
    how = draw(st.sampled_from(["scale", "scale", "reshape", "dtype", "empty"]))
    if how == "scale":
        idx = draw(st.integers(0, a.size - 1))
        return name, how, (idx, draw(st.sampled_from(_ARRAY_FACTORS.get(name, [0.0, math.nan]))))
    if how == "dtype":
        return name, how, draw(st.sampled_from(["<f4", "<i8", "|u1", "|b1", ">f8", "<f2"]))
    return name, how, None


def write_array_edit(kind: str, edit, dst) -> Path:
    name, how, arg = edit

    def mutate_arrays(arrays):
        a = arrays[name].copy()
        if how == "scale":
            idx, factor = arg
            with np.errstate(all="ignore"):
                a.flat[idx] = a.flat[idx] * factor
        elif how == "reshape":
            a = a.reshape(-1)
        elif how == "dtype":
            with np.errstate(all="ignore"):
                a = a.astype(arg)
        else:
            a = a[:0]
        arrays[name] = a

    return tamper_header(base_model(kind), dst, mutate_arrays=mutate_arrays)


def write_index(case, dst) -> Path:
    """A copy of the base store whose index has the ``case`` edits (or is ``case`` bytes)."""
    folder = Path(str(dst) + ".store")
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(base_store(), folder)
    if isinstance(case, bytes):
        (folder / INDEX_NAME).write_bytes(case)
    else:
        index = copy.deepcopy(base_header("ShardIndex"))
        for e in case:
            apply_edit(index, e)
        (folder / INDEX_NAME).write_text(json.dumps(index))
    return folder


def write_bytes(data: bytes, dst) -> Path:
    Path(dst).write_bytes(data)
    return Path(dst)


def flipped(data: bytes, flips) -> bytes:
    b = bytearray(data)
    for pos, x in flips:
        b[pos % len(b)] ^= x
    return bytes(b)


def _target(name: str) -> Path:
    return _WORK / name


# ======================================================================================
# The fuzzers
# ======================================================================================


def header_cases():
    """(kind, [edit, ...]): 1-3 header edits, checksum recomputed."""
    return st.sampled_from(KINDS).flatmap(
        lambda k: st.tuples(st.just(k), st.lists(header_edits(k), min_size=1, max_size=3))
    )


def array_cases():
    """(kind, edit): one array changed, header and checksum made consistent with it."""
    return st.sampled_from(KINDS).flatmap(lambda k: st.tuples(st.just(k), array_edits(k)))


def truncation_cases():
    """(kind, cut): the file cut after ``cut`` bytes."""
    return st.sampled_from(KINDS).flatmap(
        lambda k: st.tuples(st.just(k), st.integers(0, len(base_bytes(k)) - 1))
    )


def flip_cases():
    """(kind, [(position, xor), ...]): 1-6 bytes flipped anywhere."""
    return st.sampled_from(KINDS).flatmap(
        lambda k: st.tuples(
            st.just(k),
            st.lists(
                st.tuples(st.integers(0, len(base_bytes(k)) - 1), st.integers(1, 255)),
                min_size=1,
                max_size=6,
            ),
        )
    )


def index_cases():
    """1-4 edits of a shard store's index.json (the shards are left as written)."""
    return st.lists(header_edits("ShardIndex"), min_size=1, max_size=4)


def index_byte_cases():
    """A shard index cut short, or with flipped bytes."""
    raw = (base_store() / INDEX_NAME).read_bytes()
    cut = st.integers(0, len(raw) - 1).map(lambda n: raw[:n])
    flips = st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(1, 255)), min_size=1,
                     max_size=6).map(lambda f: flipped(raw, f))  # fmt: skip
    return cut | flips


#: name -> (strategy factory, writer(case, dst) -> (path, kind), CI examples)
MODEL_FUZZERS = {
    "index": (index_cases, lambda c, dst: (write_index(c, dst), "ShardIndex"), 120),
    "index-bytes": (index_byte_cases, lambda c, dst: (write_index(c, dst), "ShardIndex"), 60),
    "header": (header_cases, lambda c, dst: (write_header_edit(c[0], c[1], dst), c[0]), 200),
    "arrays": (array_cases, lambda c, dst: (write_array_edit(c[0], c[1], dst), c[0]), 80),
    "truncate": (
        truncation_cases,
        lambda c, dst: (write_bytes(base_bytes(c[0])[: c[1]], dst), c[0]),
        60,
    ),
    "flips": (
        flip_cases,
        lambda c, dst: (write_bytes(flipped(base_bytes(c[0]), c[1]), dst), c[0]),
        100,
    ),
}


#: Known failure classes of the issue, always tried first (hypothesis @example).
KNOWN_MODEL_CASES = {
    "header": [
        ("DiagGMM", [(["params", "chunk_size"], "replace", -5, None)]),
        ("DiagGMM", [(["training"], "replace", [1, 2], None)]),
        ("GMMClassifier", [(["priors"], "replace", "ab", None)]),
        ("GMMClassifier", [(["gmm_params", "n_jobs"], "replace", "two", None)]),
        ("GMMClassifier", [(["training", "a"], "replace", "x", None)]),
        ("GMMClassifier", [(["feature_config", "n_fft"], "replace", 2**31, None)]),
        ("GMMClassifier", [(["feature_config", "extras"], "replace", [{"name": "eval"}], None)]),
        ("GMMClassifier", [(["feature_config", "extras"], "replace", ["rms"], None)]),
        ("GMMClassifier", [(["feature_config", "engine"], "replace", "librosa", None)]),
        ("GMMClassifier", [(["priors"], "replace", {"a": 1e308, "b": 1e308}, None)]),
        ("UBMClassifier", [(["zz"], "replace", 1, None)]),
        ("UBMClassifier", [(["priors"], "replace", {k: 1e308 for k in "ab"}, None)]),
        ("UBMClassifier", [(["training"], "replace", {"classes": [1]}, None)]),
        ("EMCheckpoint", [(["fingerprint", "components"], "replace", 3, None)]),
    ],
    "index": [[(["clips", 0, "label"], "replace", "", None)],
              [(["clips", 0, "stop"], "replace", 2**70, None)],
              [(["n_dims"], "replace", "[" * 50, None)]],
    "arrays": [("GMMClassifier", ("means", "scale", (189, -1e100)))],
}


def run_model_case(fuzzer: str, case) -> tuple[str, str]:
    """Write the mutated file of ``case`` and load it under the memory guard."""
    path, kind = MODEL_FUZZERS[fuzzer][1](case, _target(f"{fuzzer}.npz"))
    with memory_guard():
        return model_outcome(path, kind)


def _model_fuzz_test(fuzzer: str):
    strategy, _, n = MODEL_FUZZERS[fuzzer]

    def test(case):
        outcome, detail = run_model_case(fuzzer, case)
        assert outcome in OK_MODEL, f"{outcome}: {detail}"

    for case in KNOWN_MODEL_CASES.get(fuzzer, []):
        test = example(case)(test)
    test = settings(CI, max_examples=n)(given(strategy())(test))

    test.__name__ = f"test_fuzz_model_{fuzzer}"
    return test


test_fuzz_model_header = _model_fuzz_test("header")
test_fuzz_model_arrays = _model_fuzz_test("arrays")
test_fuzz_model_truncate = _model_fuzz_test("truncate")
test_fuzz_model_flips = _model_fuzz_test("flips")
test_fuzz_shard_index = _model_fuzz_test("index")
test_fuzz_shard_index_bytes = _model_fuzz_test("index-bytes")


def test_fuzz_bases_are_valid():
    """The unmutated inputs load (so the fuzzers start from real, valid files)."""
    for kind in KINDS:
        assert model_outcome(base_model(kind), kind)[0] == "ok"
    assert model_outcome(base_store(), "ShardIndex")[0] == "ok"
