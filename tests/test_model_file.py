"""The model loader trusts nothing (reliability issue): hostile model files are refused
with ModelFileError naming the file and the field, cheaply, whatever their header says.

Ported from the adversarial suite (tests/pending), plus the signature, the header
validator table and the save-side checks.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import io
import json
import os
import re
import resource
import shutil
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from audiogmm import DiagGMM, FeatureConfig, GMMClassifier, ModelFileError, ParameterError
from audiogmm.checks import List, Obj, Str
from audiogmm.checks import check as schema_check
from audiogmm.io import load, save, tables
from audiogmm.io.container import CONTAINER_KEYS
from audiogmm.models import FusedClassifier, GSVClassifier, IVectorClassifier, UBMClassifier
from audiogmm.pipeline import load_model, save_model

from .conftest_hostile import assert_one_line_error, invoke
from .conftest_hostile import run_guarded as guarded_child
from .tamper import tampered

ROOT = Path(__file__).resolve().parents[1]

SPEAKERS = ROOT / "data_samples" / "speakers"
MB = 1 << 20

# ======================================================================================
# Model-file container helpers: THE ONLY CODE IN THE TESTS THAT KNOWS THE ON-DISK LAYOUT.
# A model file is an .npz (zip, members stored): one ``<name>.npy`` member per array and
# ``__header__.npy``, a 1-D uint8 array holding UTF-8 JSON whose "checksum" is
#     sha256( json.dumps(header minus "checksum"/"signature", sort_keys=True,
#                        separators=(",", ":"))
#             + for each array name in sorted order: f"{name}|{dtype.str}|{shape}|" + bytes )
# ======================================================================================

HEADER_MEMBER = "__header__.npy"


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def container_checksum(header: dict, arrays: dict, raw: dict | None = None) -> str:
    """The checksum the writer stores; ``raw`` maps placeholder strings in ``header`` to raw
    JSON text put verbatim in their place (values json.dumps cannot produce)."""
    body = {k: v for k, v in header.items() if k not in ("checksum", "signature")}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    for placeholder, raw_text in (raw or {}).items():
        text = text.replace(json.dumps(placeholder), raw_text)
    h = hashlib.sha256(text.encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return "sha256:" + h.hexdigest()


def read_model_file(path) -> tuple[dict, dict]:
    """(header, arrays) of a trusted model file written by audiogmm (our own base files)."""
    with zipfile.ZipFile(path) as z:
        header = json.loads(np.load(io.BytesIO(z.read(HEADER_MEMBER))).tobytes().decode())
        arrays = {
            n[: -len(".npy")]: np.load(io.BytesIO(z.read(n)), allow_pickle=False)
            for n in z.namelist()
            if n != HEADER_MEMBER
        }
    return header, arrays


def write_model_file(path, header: dict, arrays: dict, *, raw=None, fix_checksum=True) -> None:
    """Write a model file; with ``fix_checksum`` the checksum is recomputed as the writer does."""
    header = dict(header)
    if fix_checksum:
        header["checksum"] = container_checksum(header, arrays, raw)
    text = json.dumps(header, sort_keys=True)
    for placeholder, raw_text in (raw or {}).items():
        text = text.replace(json.dumps(placeholder), raw_text)
    blob = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(HEADER_MEMBER, npy_bytes(blob))
        for k, v in arrays.items():
            z.writestr(k + ".npy", npy_bytes(v))


def tamper_header(src, dst, mutate=None, *, mutate_arrays=None, raw=None, fix_checksum=True):
    """Copy model file ``src`` to ``dst`` with ``mutate(header)`` / ``mutate_arrays(arrays)``
    applied and the checksum recomputed: it is plain SHA-256, so anyone can do this."""
    header, arrays = read_model_file(src)
    if mutate_arrays is not None:
        mutate_arrays(arrays)
        header["arrays"] = {
            k: {"dtype": v.dtype.str, "shape": list(v.shape)} for k, v in arrays.items()
        }
    if mutate is not None:
        mutate(header)
    write_model_file(dst, header, arrays, raw=raw, fix_checksum=fix_checksum)
    return dst


# ======================================================================================
# Shared fixtures and helpers
# ======================================================================================

_TMP = tempfile.mkdtemp(prefix="audiogmm-modelfile-")
atexit.register(shutil.rmtree, _TMP, True)


@functools.cache
def base_model(kind: str) -> str:
    """A small valid model file of ``kind`` ("GMMClassifier": a pipeline bundle, or
    "DiagGMM"); do not modify."""
    rng = np.random.default_rng(0)
    path = os.path.join(_TMP, f"base-{kind}.npz")
    if kind == "UBMClassifier":  # a MAP bundle written by audiogmm 0.1.0 (K=4, adapt="mw")
        shutil.copy(Path(__file__).parent / "fixtures" / "map_v1.npz", path)
    elif kind == "EMCheckpoint":
        from audiogmm.io import EMCheckpoint
        from audiogmm.mixture import ConvergenceMonitor, Params

        g = DiagGMM(2, random_state=0, n_jobs=1).fit(rng.normal(0, 1, (300, 3)))
        mon = ConvergenceMonitor(0.0, 5)
        mon.history, mon.n_iter = [-2.5, -2.4], 2
        EMCheckpoint(path, fingerprint=CHECKPOINT_FP).save(
            Params(g.weights_, g.means_, g.variances_), mon, False
        )
    elif kind == "GSVClassifier":  # a gsv bundle: UBM of 2, calibrated logistic regression
        cfg = FeatureConfig.preset("speech")
        clips = [rng.normal(m, 1.0, (120, cfg.n_dims)) for m in (0.0,) * 3 + (3.0,) * 3]
        save_model(path, GSVClassifier(2, n_jobs=1, max_iter=20).fit(clips, list("aaabbb")), cfg)
    elif kind == "IVectorClassifier":  # an ivector bundle: UBM of 2, rank 2, calibrated
        cfg = FeatureConfig.preset("speech")
        clips = [rng.normal(m, 1.0, (120, cfg.n_dims)) for m in (0.0,) * 3 + (3.0,) * 3]
        clf = IVectorClassifier(2, rank=2, n_iter=2, n_jobs=1, max_iter=20)
        save_model(path, clf.fit(clips, list("aaabbb")), cfg)
    elif kind.startswith("FusedMixed"):  # one member of each backend, weighted; "FusedMixed-i":
        # the i-th backend first (tampering goes into the first member of a list)
        cfgs = [FeatureConfig.preset("speech"), FeatureConfig()] * 2
        labels, members = ["a", "a", "a", "b", "b", "b"], []
        first = int(kind.partition("-")[2] or 0)
        kinds = (GMMClassifier, UBMClassifier, GSVClassifier, IVectorClassifier)
        for cfg, cls in zip(cfgs, kinds[first:] + kinds[:first]):
            clips = [rng.normal(m, 1.0, (120, cfg.n_dims)) for m in (0.0,) * 3 + (3.0,) * 3]
            own = {"rank": 2, "n_iter": 2} if cls is IVectorClassifier else {}
            members.append(cls(2, n_jobs=1, max_iter=20, **own).fit(clips, labels))
        save_model(path, FusedClassifier(members, [1.0, 0.5, 2.0, 0.25]), cfgs)
    elif kind in ("GMMClassifier", "FusedClassifier"):
        cfgs = [FeatureConfig.preset("speech"), FeatureConfig()]
        members = []
        for cfg in cfgs[: 1 if kind == "GMMClassifier" else 2]:
            clips = [rng.normal(m, 1.0, (120, cfg.n_dims)) for m in (0.0, 0.0, 3.0, 3.0)]
            clf = GMMClassifier(2, n_jobs=1, random_state=0, max_iter=20)
            members.append(clf.fit(clips, ["a", "a", "b", "b"]))
        if kind == "GMMClassifier":
            save_model(path, members[0], cfgs[0])
        else:
            save_model(path, FusedClassifier(members), cfgs)
    else:
        save(DiagGMM(2, random_state=0, n_jobs=1).fit(rng.normal(0, 1, (300, 3))), path)
    return path


#: The fingerprint of the base checkpoint (a run of K=2 on 3-dim frames).
CHECKPOINT_FP = {"components": 2, "n_dims": 3, "store_frames": 300, "store_index": "ab" * 16}


def _resume(path):
    from audiogmm.io import EMCheckpoint
    from audiogmm.mixture import ConvergenceMonitor

    mon = ConvergenceMonitor(0.0, 5)
    params, _ = EMCheckpoint(path, resume=True, fingerprint=CHECKPOINT_FP).restore(mon)
    return params, mon


#: kind -> loader. A classifier file users handle is a bundle: load_model validates it all.
LOADERS = {
    "UBMClassifier": load_model,
    "EMCheckpoint": _resume,
    "GMMClassifier": load_model,
    "FusedClassifier": load_model,
    "FusedMixed-0": load_model,
    "GSVClassifier": load_model,
    "IVectorClassifier": load_model,
    "DiagGMM": lambda p: load(p, DiagGMM),
}


def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


@contextlib.contextmanager
def memory_guard(extra: int = 2 << 30):
    """Cap this process's address space at its current size + ``extra`` for the block,
    so that a runaway allocation becomes a MemoryError instead of exhausting the host."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _status_bytes("VmSize") + extra
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


_MODEL_SETUP = """
from audiogmm import DiagGMM
from audiogmm.pipeline import load_model
from audiogmm.io import load, save
call = {"DiagGMM": lambda p: load(p, DiagGMM), "GMMClassifier": load_model}[spec["kind"]]
call(spec["warm"])  # warm-up on a valid file: imports, first-use allocations
"""


def run_guarded(kind: str, path, *, cap: int = 3 << 30, timeout: float = 120) -> dict:
    """Load ``path`` in a fresh interpreter; return outcome, message and peak RSS growth."""
    spec = {"kind": kind, "path": str(path), "warm": base_model(kind)}
    return guarded_child(_MODEL_SETUP, spec, cap=cap, timeout=timeout)


def _set(path: list, value):
    def mutate(h):
        node = h
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value

    return mutate


def _update_config(**changes):
    def mutate(h):
        h["feature_config"].update(changes)

    return mutate


def _delete(path: list):
    def mutate(h):
        node = h
        for k in path[:-1]:
            node = node[k]
        del node[path[-1]]

    return mutate


# ======================================================================================
# Header fields: validated like constructor arguments
# ======================================================================================

# (kind, id, mutation): every one of these must be refused by load() with ModelFileError
HEADER_CASES = [
    # scoring-time chunking / threading parameters
    ("DiagGMM", "chunk_size_negative", _set(["params", "chunk_size"], -5)),
    ("DiagGMM", "chunk_size_fractional", _set(["params", "chunk_size"], 2.5)),
    ("DiagGMM", "chunk_size_zero", _set(["params", "chunk_size"], 0)),
    ("DiagGMM", "chunk_size_string", _set(["params", "chunk_size"], "big")),
    ("DiagGMM", "n_jobs_string", _set(["params", "n_jobs"], "two")),
    ("DiagGMM", "n_jobs_negative", _set(["params", "n_jobs"], -1)),
    ("DiagGMM", "n_jobs_fractional", _set(["params", "n_jobs"], 1.5)),
    ("DiagGMM", "tol_string", _set(["params", "tol"], "x")),
    ("DiagGMM", "var_floor_negative", _set(["params", "var_floor"], -1.0)),
    ("DiagGMM", "init_unknown", _set(["params", "init"], "evil")),
    ("DiagGMM", "params_list", _set(["params"], [1, 2])),
    ("DiagGMM", "params_missing", _delete(["params"])),
    ("DiagGMM", "params_unknown_key", _set(["params", "weights_init"], [0.5, 0.5])),
    ("DiagGMM", "random_state_string", _set(["params", "random_state"], "seed")),
    ("DiagGMM", "random_state_negative", _set(["params", "random_state"], -3)),
    ("DiagGMM", "verbose_string", _set(["params", "verbose"], "loud")),
    ("DiagGMM", "n_components_mismatch", _set(["params", "n_components"], 3)),
    ("DiagGMM", "training_string", _set(["training"], "oops")),
    ("DiagGMM", "training_list", _set(["training"], [1, 2, 3])),
    ("DiagGMM", "training_history_string", _set(["training", "history"], "abc")),
    ("DiagGMM", "training_history_number", _set(["training", "history"], 5)),
    ("DiagGMM", "training_history_items", _set(["training", "history"], ["x", None])),
    ("DiagGMM", "training_n_iter_float", _set(["training", "n_iter"], 2.5)),
    ("DiagGMM", "unknown_top_level", _set(["evil"], {"a": 1})),
    ("DiagGMM", "version_bool", _set(["format_version"], True)),
    ("DiagGMM", "audiogmm_version_list", _set(["audiogmm_version"], [1])),
    ("GMMClassifier", "chunk_size_negative", _set(["gmm_params", "chunk_size"], -5)),
    ("GMMClassifier", "chunk_size_fractional", _set(["gmm_params", "chunk_size"], 0.5)),
    ("GMMClassifier", "n_jobs_string", _set(["gmm_params", "n_jobs"], "two")),
    ("GMMClassifier", "gmm_params_string", _set(["gmm_params"], "abc")),
    ("GMMClassifier", "gmm_params_tol_nan", _set(["gmm_params", "tol"], float("nan"))),
    ("GMMClassifier", "gmm_params_min_weight_big", _set(["gmm_params", "min_weight"], 0.9)),
    # priors
    ("GMMClassifier", "priors_string", _set(["priors"], "ab")),
    ("GMMClassifier", "priors_list", _set(["priors"], ["a", "b"])),
    ("GMMClassifier", "priors_nan", _set(["priors"], {"a": float("nan"), "b": 1.0})),
    ("GMMClassifier", "priors_inf", _set(["priors"], {"a": float("inf"), "b": 1.0})),
    ("GMMClassifier", "priors_value_string", _set(["priors"], {"a": "x", "b": 1.0})),
    ("GMMClassifier", "priors_negative", _set(["priors"], {"a": -1.0, "b": 1.0})),
    ("GMMClassifier", "priors_zero_sum", _set(["priors"], {"a": 0.0, "b": 0.0})),
    ("GMMClassifier", "priors_overflow", _set(["priors"], {"a": 1e308, "b": 1e308})),
    ("GMMClassifier", "priors_missing_label", _set(["priors"], {"a": 1.0})),
    ("GMMClassifier", "priors_extra_label", _set(["priors"], {"a": 1.0, "b": 1.0, "c": 1.0})),
    ("GMMClassifier", "priors_bool", _set(["priors"], {"a": True, "b": 1.0})),
    # labels, sizes, seeds
    ("GMMClassifier", "labels_string", _set(["labels"], "ab")),
    ("GMMClassifier", "labels_nested", _set(["labels"], [["a"], ["b"]])),
    ("GMMClassifier", "labels_duplicate", _set(["labels"], ["a", "a"])),
    ("GMMClassifier", "labels_count", _set(["labels"], ["a", "b", "c"])),
    ("GMMClassifier", "labels_missing", _delete(["labels"])),
    ("GMMClassifier", "n_components_fractional", _set(["n_components"], 2.5)),
    ("GMMClassifier", "n_components_string", _set(["n_components"], "2")),
    ("GMMClassifier", "n_components_mismatch", _set(["n_components"], 7)),
    ("GMMClassifier", "random_state_string", _set(["random_state"], "seed")),
    ("GMMClassifier", "random_state_negative", _set(["random_state"], -1)),
    ("GMMClassifier", "random_state_huge", _set(["random_state"], 2**200)),
    # training block of the wrong type
    ("GMMClassifier", "training_list", _set(["training"], [1, 2])),
    ("GMMClassifier", "training_string", _set(["training"], "oops")),
    ("GMMClassifier", "training_entry_string", _set(["training", "a"], "x")),
    ("GMMClassifier", "training_loglik_string", _set(["training", "a", "final_mean_loglik"], "x")),
    ("GMMClassifier", "training_unknown_label", _set(["training", "zz"], {})),
    ("GMMClassifier", "training_converged_int", _set(["training", "a", "converged"], 1)),
    # blocks nobody validates are refused by the bundle loader
    ("GMMClassifier", "unknown_top_level", _set(["zz_notes"], {"train": ["x.wav"]})),
    # feature config: types and sane physical bounds on rates and windows
    ("GMMClassifier", "config_string", _set(["feature_config"], "speech")),
    ("GMMClassifier", "config_missing", _delete(["feature_config"])),
    ("GMMClassifier", "config_unknown_key", _update_config(evil=1)),
    ("GMMClassifier", "config_rate_string", _update_config(sample_rate="16000")),
    ("GMMClassifier", "config_win_string", _update_config(win_ms="25")),
    ("GMMClassifier", "config_vad_int", _update_config(vad=1)),
    ("GMMClassifier", "config_pad_mode_empty", _update_config(pad_mode="empty")),
    ("GMMClassifier", "config_window_list", _update_config(window=["hann"])),
    (
        "GMMClassifier",
        "config_rate_1GHz",
        _update_config(sample_rate=10**9, win_ms=0.025, hop_ms=0.01, n_fft=32768),
    ),
    (
        "GMMClassifier",
        "config_rate_8Hz",
        _update_config(sample_rate=8, win_ms=1000.0, hop_ms=500.0, n_fft=8, fmin=0.0, fmax=None),
    ),
    ("GMMClassifier", "config_n_fft_2G", _update_config(n_fft=2**31)),
    ("GMMClassifier", "config_hop_1e9ms", _update_config(hop_ms=1e9)),
    ("GMMClassifier", "config_n_mels_1e7", _update_config(n_mels=10**7)),
    ("GMMClassifier", "config_delta_width_1e7", _update_config(delta_width=10**7 + 1)),
    ("GMMClassifier", "config_cmvn_window_1e9", _update_config(cmvn_window=10**9)),
    ("GMMClassifier", "config_lifter_1e300", _update_config(lifter=1e300)),
    ("GMMClassifier", "config_vad_floor_1e300", _update_config(vad_floor_db=-1e300)),
    ("GMMClassifier", "config_n_dims_mismatch", _update_config(delta_order=1)),
]


@pytest.mark.parametrize(
    "kind,mutate",
    [(k, m) for k, _, m in HEADER_CASES],
    ids=[f"{k}-{i}" for k, i, _ in HEADER_CASES],
)
def test_tampered_header_field_is_refused(kind, mutate, tmp_path):
    """A header edited with a recomputed checksum is validated field by field on load."""
    p = tamper_header(base_model(kind), tmp_path / "tampered.npz", mutate)
    with memory_guard():
        with pytest.raises(ModelFileError) as ei:
            LOADERS[kind](p)
    assert str(p) in str(ei.value)


@pytest.mark.parametrize(
    "kind,mutate,field",
    [
        ("DiagGMM", _set(["params", "chunk_size"], -5), "params"),
        ("GMMClassifier", _set(["priors"], "ab"), "priors"),
        ("GMMClassifier", _set(["training", "a"], "x"), "training"),
        ("GMMClassifier", _update_config(n_fft=2**31), "feature_config"),
        ("GMMClassifier", _set(["gmm_params", "tol"], -1.0), "gmm_params"),
    ],
)
def test_refusal_names_the_field(kind, mutate, field, tmp_path):
    """The message names the top-level field (validators may name a sub-field too)."""
    p = tamper_header(base_model(kind), tmp_path / "t.npz", mutate)
    with pytest.raises(ModelFileError, match=f"header field {field}"):
        LOADERS[kind](p)


@pytest.mark.parametrize("kind", ["DiagGMM", "GMMClassifier"])
def test_deeply_nested_header_is_refused(kind, tmp_path):
    """100,000 nested lists in the header: ModelFileError, not RecursionError."""
    raw = {"@@DEEP@@": "[" * 100_000 + "]" * 100_000}
    p = tamper_header(
        base_model(kind), tmp_path / "deep.npz", _set(["training"], "@@DEEP@@"), raw=raw
    )
    with pytest.raises(ModelFileError, match="nests") as ei:
        LOADERS[kind](p)
    assert str(p) in str(ei.value)


def test_nesting_inside_strings_is_not_counted(tmp_path):
    """Brackets inside JSON strings are text, not nesting: such a header loads."""
    p = tamper_header(
        base_model("DiagGMM"), tmp_path / "s.npz", _set(["training", "note"], '[{"' * 500)
    )
    assert load(p, DiagGMM).fit_report_["note"] == '[{"' * 500


@pytest.mark.parametrize("close", [False, True])
def test_header_scan_is_linear(close, tmp_path):
    """300,000 escaped quotes in an unterminated (or terminated) string: a scan that
    restarts at every quote would take hours; the depth scan is linear."""
    text = '"' + '\\"' * 300_000 + ('"' if close else "")
    p = tamper_header(
        base_model("DiagGMM"), tmp_path / "q.npz", _set(["training", "q"], "@@Q@@"),
        raw={"@@Q@@": text},
    )  # fmt: skip
    t0 = time.perf_counter()
    try:
        load(p, DiagGMM)
    except ModelFileError:
        assert not close
    assert time.perf_counter() - t0 < 5


def test_deeply_nested_feature_config_json_is_a_parameter_error():
    with pytest.raises(ParameterError, match="not valid JSON"):
        FeatureConfig.from_json("[" * 100_000 + "]" * 100_000)


def test_duplicate_json_keys_are_refused(tmp_path):
    """Two values for one key: which one would a reader take? Refused."""
    p = tamper_header(
        base_model("DiagGMM"), tmp_path / "dup.npz", _set(["training"], "@@T@@"),
        raw={"@@T@@": '{"n_iter": 1, "n_iter": 2}'},
    )  # fmt: skip
    with pytest.raises(ModelFileError, match="duplicate key"):
        load(p, DiagGMM)


@pytest.mark.parametrize("kind", ["DiagGMM", "GMMClassifier"])
def test_oversized_header_is_refused(kind, tmp_path):
    """A 9 MB header (valid JSON, valid checksum) exceeds any sane header size."""

    def pad(h):
        h["training"] = dict(h.get("training") or {})
        h["training"]["notes"] = "x" * (9 * MB)

    p = tamper_header(base_model(kind), tmp_path / "big.npz", pad)
    assert os.path.getsize(p) < 10 * MB
    with pytest.raises(ModelFileError, match="header of") as ei:
        LOADERS[kind](p)
    assert str(p) in str(ei.value)


# ======================================================================================
# The container: names, sizes and shapes checked before any array byte is read
# ======================================================================================


def _zip_with_members(dst, src, extra: list[tuple[str, bytes]], *, drop=(), **zip_kw) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", **zip_kw) as zout:
        for info in zin.infolist():
            if info.filename not in drop:
                zout.writestr(info.filename, zin.read(info.filename))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Duplicate name"
            for name, data in extra:
                zout.writestr(name, data)
    return Path(dst)


@pytest.mark.parametrize(
    "case",
    [
        "duplicate_member", "suffixless_twin", "path_traversal_name", "directory_entry",
        "absolute_name", "backslash_name", "unlisted_member", "missing_member",
        "duplicate_header",
    ],
)  # fmt: skip
def test_ambiguous_zip_members_are_refused(case, tmp_path):
    """Member names are checked against the header: no duplicates, twins or odd names."""
    src = base_model("DiagGMM")
    other = npy_bytes(np.zeros((2, 3)))
    extra, drop = {
        "duplicate_member": ([("means.npy", other)], ()),
        "suffixless_twin": ([("means", other)], ()),
        "path_traversal_name": ([("../means.npy", other)], ()),
        "directory_entry": ([("means.npy/", b"")], ()),
        "absolute_name": ([("/tmp/means.npy", other)], ()),
        "backslash_name": ([("x\\means.npy", other)], ()),
        "unlisted_member": ([("extra.npy", other)], ()),
        "missing_member": ([], ("var_floor.npy",)),
        "duplicate_header": ([(HEADER_MEMBER, npy_bytes(np.zeros(3, np.uint8)))], ()),
    }[case]
    p = _zip_with_members(tmp_path / "odd.npz", src, extra, drop=drop)
    with pytest.raises(ModelFileError) as ei:
        load(p, DiagGMM)
    assert str(p) in str(ei.value)


def test_compressed_members_are_refused(tmp_path):
    """audiogmm stores members; a deflated one could inflate past the file's size."""
    p = _zip_with_members(
        tmp_path / "z.npz", base_model("DiagGMM"), [], compression=zipfile.ZIP_DEFLATED
    )
    with pytest.raises(ModelFileError, match="compressed"):
        load(p, DiagGMM)


@pytest.mark.parametrize(
    "descr,shape",
    [
        ("<f8", (4, 3)), ("<f4", (2, 3)), ("<f8", (3, 2)), ("|O", (2, 3)), (">f8", (2, 3)),
        ("<f8", (-2, -3)), ("<f8", (6,)), ("<f8", (2**62, 2**62)),
    ],
)  # fmt: skip
def test_npy_header_must_agree_with_the_json_header(descr, shape, tmp_path):
    """A member whose .npy header disagrees with the JSON header (or with its own size)."""
    header, arrays = read_model_file(base_model("DiagGMM"))
    body = arrays["means"].tobytes()
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    header["checksum"] = container_checksum(header, arrays)
    blob = np.frombuffer(json.dumps(header).encode(), np.uint8)
    p = tmp_path / "npy.npz"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr(HEADER_MEMBER, npy_bytes(blob))
        for k, v in arrays.items():
            z.writestr(k + ".npy", buf.getvalue() + body if k == "means" else npy_bytes(v))
    with pytest.raises(ModelFileError) as ei:
        load(p, DiagGMM)
    assert str(p) in str(ei.value)


def test_many_members_are_refused_before_parsing_the_directory(tmp_path):
    p = tmp_path / "many.npz"
    with zipfile.ZipFile(p, "w") as z:
        for i in range(5000):
            z.writestr(f"a{i}.npy", b"")
    with pytest.raises(ModelFileError, match="too many"):
        load(p, DiagGMM)


def _write_bomb_member(z: zipfile.ZipFile, name: str, npy_header: dict, n_bytes: int, fill: bytes):
    """Stream a member of n_bytes (after the .npy header) of ``fill`` bytes, deflated."""
    with z.open(name, "w", force_zip64=True) as f:
        np.lib.format.write_array_header_1_0(f, npy_header)
        chunk = fill * (16 * MB // len(fill))
        left = n_bytes
        while left > 0:
            f.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)


def make_bomb(dst, kind: str, where: str, n_bytes: int = 640 * MB) -> Path:
    """A < 10 MB model file that decompresses to ``n_bytes``.

    where = "array":    a listed member (means.npy) declares and holds a huge array;
            "unlisted": an extra member not in the header holds it;
            "header":   the JSON header itself is followed by n_bytes of whitespace
                        (still valid JSON, valid checksum).
    """
    header, arrays = read_model_file(base_model(kind))
    header["checksum"] = container_checksum(header, arrays)
    text = json.dumps(header, sort_keys=True).encode()
    with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        if where == "header":
            hdr = {"descr": "|u1", "fortran_order": False, "shape": (len(text) + n_bytes,)}
            with z.open(HEADER_MEMBER, "w", force_zip64=True) as f:
                np.lib.format.write_array_header_1_0(f, hdr)
                f.write(text)
                chunk = b" " * (16 * MB)
                left = n_bytes
                while left > 0:
                    f.write(chunk[: min(left, len(chunk))])
                    left -= len(chunk)
        else:
            z.writestr(HEADER_MEMBER, npy_bytes(np.frombuffer(text, np.uint8)))
        for k, v in arrays.items():
            if where == "array" and k == "means":
                hdr = {"descr": "<f8", "fortran_order": False, "shape": (n_bytes // 8,)}
                _write_bomb_member(z, "means.npy", hdr, n_bytes, b"\0")
            else:
                z.writestr(k + ".npy", npy_bytes(v))
        if where == "unlisted":
            hdr = {"descr": "<f8", "fortran_order": False, "shape": (n_bytes // 8,)}
            _write_bomb_member(z, "zz_extra.npy", hdr, n_bytes, b"\0")
    assert os.path.getsize(dst) < 10 * MB
    return Path(dst)


@pytest.mark.parametrize("where", ["array", "unlisted", "header"])
def test_zip_bomb_is_refused_cheaply(where, tmp_path):
    """A ~4 MB file inflating to 640 MB: refused before decompressing, peak growth < 300 MB."""
    p = make_bomb(tmp_path / f"bomb-{where}.npz", "GMMClassifier", where)
    out = run_guarded("GMMClassifier", p)
    assert out["outcome"] == "ModelFileError", out
    assert str(p) in out["message"]
    assert out["growth"] < 300 * MB, f"loading used {out['growth'] / MB:.0f} MB: {out}"


def _lie_about_size(src, dst, member: str, size: int) -> Path:
    """Copy ``src`` with the zip directory's sizes of ``member`` set to ``size`` bytes."""
    data = bytearray(Path(src).read_bytes())
    name = member.encode()
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        n_len = int.from_bytes(data[at + 28 : at + 30], "little")
        if data[at + 46 : at + 46 + n_len] == name:
            data[at + 20 : at + 28] = size.to_bytes(4, "little") * 2  # compressed, uncompressed
        at = data.find(b"PK\x01\x02", at + 4)
    Path(dst).write_bytes(bytes(data))
    return Path(dst)


@pytest.mark.parametrize("member", ["means.npy", HEADER_MEMBER])
def test_declared_sizes_beyond_the_file_are_refused_cheaply(member, tmp_path):
    """A stored member whose directory entry claims 4 GB: refused before reading it."""
    p = _lie_about_size(base_model("GMMClassifier"), tmp_path / "lie.npz", member, 2**32 - 1)
    out = run_guarded("GMMClassifier", p)
    assert out["outcome"] == "ModelFileError", out
    assert str(p) in out["message"]
    assert out["growth"] < 300 * MB, f"loading used {out['growth'] / MB:.0f} MB: {out}"


def test_read_kind_reads_only_the_bounded_header(tmp_path):
    """Peeking at the kind (to pick a loader) is as safe as loading: no inflating."""
    from audiogmm.io.container import read_kind

    assert read_kind(base_model("DiagGMM")) == "DiagGMM"
    assert read_kind(base_model("GMMClassifier")) == "GMMClassifier"
    p = make_bomb(tmp_path / "bomb.npz", "GMMClassifier", "header", n_bytes=64 * MB)
    with memory_guard(extra=32 * MB), pytest.raises(ModelFileError, match="compressed"):
        read_kind(p)
    (tmp_path / "t.txt").write_text("text")
    with pytest.raises(ModelFileError, match="not an audiogmm model file"):
        read_kind(tmp_path / "t.txt")


def test_largest_stored_file_under_10mb_costs_under_300mb(tmp_path):
    """A 9.9 MB stored (not compressed) array member declaring its true size: the bytes
    read never exceed the file, so even a valid-looking huge member stays cheap."""
    header, arrays = read_model_file(base_model("GMMClassifier"))
    big = np.zeros((9 * MB) // 8)
    arrays["zz_big"] = big
    header["arrays"]["zz_big"] = {"dtype": big.dtype.str, "shape": list(big.shape)}
    p = tmp_path / "big.npz"
    write_model_file(p, header, arrays)
    assert os.path.getsize(p) < 10 * MB
    out = run_guarded("GMMClassifier", p)
    assert out["outcome"] == "ModelFileError", out  # zz_big is not a classifier array
    assert out["growth"] < 300 * MB, f"loading used {out['growth'] / MB:.0f} MB: {out}"


def test_huge_window_config_costs_no_memory(tmp_path):
    """A feature config with a 2e7-sample window is refused without allocating it."""
    mutate = _update_config(win_ms=1.25e6, n_fft=20_000_000)
    p = tamper_header(base_model("GMMClassifier"), tmp_path / "window.npz", mutate)
    out = run_guarded("GMMClassifier", p)
    assert out["outcome"] == "ModelFileError", out
    assert str(p) in out["message"]
    assert out["growth"] < 300 * MB, f"loading used {out['growth'] / MB:.0f} MB: {out}"


@pytest.mark.parametrize("content", ["text", "empty", "folder", "npy", "gzip"])
def test_non_model_files_get_a_plain_reason(content, tmp_path):
    """A text file (or other non-archive) is never called "a pickled object array"."""
    p = tmp_path / "notes.txt"
    if content == "text":
        p.write_text("this is a text file, not a model\n" * 10)
    elif content == "empty":
        p.write_bytes(b"")
    elif content == "folder":
        p.mkdir()
    elif content == "npy":
        np.save(p, np.zeros(3), allow_pickle=False)
    else:
        p.write_bytes(b"\x1f\x8b\x08\x00" + b"\0" * 100)
    with pytest.raises(ModelFileError) as ei:
        GMMClassifier.load(p)
    msg = str(ei.value)
    assert str(p) in msg and "pickle" not in msg.lower(), msg


@pytest.mark.parametrize(
    "damage",
    ["text_file", "deep_nesting", "training_list", "training_entry", "priors_string", "n_jobs"],
)
@pytest.mark.parametrize("command", ["info", "predict"])
def test_cli_damaged_model_is_one_line_error(command, damage, tmp_path):
    """Every damaged model gives exit 1 and one line naming the model path, no traceback."""
    src, p = base_model("GMMClassifier"), tmp_path / "model.npz"
    if damage == "text_file":
        p.write_text("not a model\n")
    elif damage == "deep_nesting":
        tamper_header(
            src, p, _set(["training"], "@@D@@"), raw={"@@D@@": "[" * 50_000 + "]" * 50_000}
        )
    elif damage == "training_list":
        tamper_header(src, p, _set(["training"], [1, 2]))
    elif damage == "training_entry":
        tamper_header(src, p, _set(["training", "a"], "x"))
    elif damage == "priors_string":
        tamper_header(src, p, _set(["priors"], "ab"))
    else:
        tamper_header(src, p, _set(["gmm_params", "n_jobs"], "two"))
    clip = sorted((SPEAKERS / "ast_en").glob("*.flac"))[0]
    args = ["info", p] if command == "info" else ["predict", "-j", "1", p, clip]
    r = invoke(["-q", *args])
    assert_one_line_error(r, p)


def _arrays(**changes):
    def mutate(arrays):
        for name, fn in changes.items():
            arrays[name] = fn(arrays[name].copy())

    return mutate


@pytest.mark.parametrize(
    "kind,mutate",
    [
        # variances tiny for the means: every score would be inf or NaN
        ("DiagGMM", _arrays(variances=lambda v: v * 0 + 1e-320, means=lambda m: m + 1e100)),
        ("DiagGMM", _arrays(variances=lambda v: v * 0 + 5e-324)),
        ("GMMClassifier", _arrays(means=lambda m: m * 0 + 1e200)),
        # no dimensions, no components
        (
            "DiagGMM",
            _arrays(
                means=lambda m: m[:, :0], variances=lambda v: v[:, :0], var_floor=lambda f: f[:0]
            ),
        ),  # fmt: skip
        ("DiagGMM", _arrays(var_floor=lambda f: f.astype("<f4"))),
        ("GMMClassifier", _arrays(var_floors=lambda f: f.astype("<f2"))),
        ("GMMClassifier", _arrays(weights=lambda w: w.astype(bool))),
    ],
)
def test_arrays_that_cannot_score_are_refused(kind, mutate, tmp_path):
    """Arrays consistent with the header but unusable: refused, never NaN scores later."""
    p = tamper_header(base_model(kind), tmp_path / "a.npz", mutate_arrays=mutate)
    with pytest.raises(ModelFileError) as ei:
        LOADERS[kind](p)
    assert str(p) in str(ei.value)


@pytest.mark.parametrize("where", [["labels", 0], ["audiogmm_version"], ["training", "a", "x"]])
def test_lone_surrogates_are_refused(where, tmp_path):
    """JSON can carry "\\ud800"; a label or version holding it would crash whoever prints it."""
    p = tmp_path / "s.npz"
    tamper_header(base_model("GMMClassifier"), p, _set(where, "@@S@@"),
                  raw={"@@S@@": '"a\\ud800"'})  # fmt: skip
    with pytest.raises(ModelFileError, match="Unicode"):
        load_model(p)
    r = invoke(["-q", "info", p])
    assert_one_line_error(r, p)


# ======================================================================================
# Round trips, the validator table, save-side checks
# ======================================================================================


@pytest.mark.parametrize("kind", ["DiagGMM", "GMMClassifier"])
def test_tamper_helper_writes_files_the_loader_accepts(kind, tmp_path):
    """A no-op tampering loads: the tests above fail for their mutation, not the helper."""
    p = tamper_header(base_model(kind), tmp_path / "same.npz", lambda h: None)
    LOADERS[kind](p)
    q = tamper_header(
        base_model(kind), tmp_path / "stale.npz", _set(["kind"], kind), fix_checksum=False
    )
    LOADERS[kind](q)


def test_empty_priors_mean_equal_priors(tmp_path):
    b = load_model(base_model("GMMClassifier"))
    b.classifier.priors = {}
    save_model(tmp_path / "m.npz", b.classifier, b.config)
    assert load_model(tmp_path / "m.npz").classifier.priors is None


def test_unknown_training_entries_are_kept(tmp_path):
    """Training summaries are informational: newer writers may add entries to them."""
    p = tamper_header(
        base_model("GMMClassifier"), tmp_path / "t.npz", _set(["training", "a", "dtype"], "f8")
    )
    assert load_model(p).classifier.fit_report_["a"]["dtype"] == "f8"


def test_every_loader_refuses_an_unknown_field(tmp_path):
    """No layer keeps a field it cannot check: GMMClassifier.load and load_model alike."""
    p = tamper_header(base_model("GMMClassifier"), tmp_path / "t.npz", _set(["zz_notes"], [1]))
    for loader in (GMMClassifier.load, load_model, load):
        with pytest.raises(ModelFileError, match=r"unknown field\(s\) \['zz_notes'\]"):
            loader(p)


def test_a_new_header_block_needs_one_table_entry(monkeypatch, tmp_path):
    """Adding a block is one entry in the kind's table; save and load both check it."""
    b = load_model(base_model("GMMClassifier"))
    p = tmp_path / "m.npz"
    with pytest.raises(ParameterError, match=r"unknown field\(s\) \['zz_notes'\]"):
        save_model(p, b.classifier, b.config, extra={"zz_notes": {"train": ["x.wav"]}})
    assert not p.exists()
    monkeypatch.setitem(tables.CLASSIFIER.keys, "zz_notes", Obj({"train": List(Str())}))
    save_model(p, b.classifier, b.config, extra={"zz_notes": {"train": ["x.wav"]}})
    assert load_model(p).header["zz_notes"] == {"train": ["x.wav"]}
    tamper_header(p, tmp_path / "bad.npz", _set(["zz_notes"], {"test": 1}))
    with pytest.raises(ModelFileError, match=r"zz_notes: missing field\(s\) \['train'\]"):
        load_model(tmp_path / "bad.npz")
    with pytest.raises(ParameterError, match=r"zz_notes.train\[0\]: must be a string"):
        save_model(p, b.classifier, b.config, extra={"zz_notes": {"train": [1]}})


@pytest.mark.parametrize(
    "priors", [{"a": float("nan"), "b": 1.0}, {"a": 1.0}, {"a": -1.0, "b": 1.0}]
)
def test_save_refuses_what_load_would_refuse(priors, tmp_path):
    """A classifier with bad priors is never written (the file could not be loaded)."""
    b = load_model(base_model("GMMClassifier"))
    b.classifier.priors = priors
    with pytest.raises(ParameterError, match="cannot save"):
        save_model(tmp_path / "m.npz", b.classifier, b.config)
    assert not (tmp_path / "m.npz").exists()


def test_save_refuses_labels_that_are_not_unicode(tmp_path):
    """A label from an undecodable file name (surrogate escape) would make a file that
    cannot be loaded: refused at save, naming the label."""
    b = load_model(base_model("GMMClassifier"))
    b.classifier.labels_ = ["a\udcff", "b"]
    b.classifier.fit_report_ = {}
    with pytest.raises(ParameterError, match="not valid Unicode"):
        save_model(tmp_path / "m.npz", b.classifier, b.config)
    assert not (tmp_path / "m.npz").exists()


def test_diag_save_refuses_non_finite_parameters(tmp_path):
    g = load(base_model("DiagGMM"), DiagGMM)
    g.means_ = g.means_.copy()
    g.means_[0, 0] = np.nan
    with pytest.raises(ParameterError, match="cannot save"):
        save(g, tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


# ======================================================================================
# The optional keyed signature
# ======================================================================================

KEY = "AUDIOGMM_MODEL_KEY"


def test_signed_models_round_trip(monkeypatch, tmp_path):
    monkeypatch.delenv(KEY, raising=False)
    b = load_model(base_model("GMMClassifier"))
    monkeypatch.setenv(KEY, "team secret")
    p = tmp_path / "signed.npz"
    save_model(p, b.classifier, b.config)
    assert read_model_file(p)[0]["signature"].startswith("hmac-sha256:")
    back = load_model(p)
    np.testing.assert_array_equal(back.classifier.means_, b.classifier.means_)
    monkeypatch.delenv(KEY)
    load_model(p)  # without a key the checksum still protects against damage


@pytest.mark.parametrize("case", ["unsigned", "wrong_key", "tampered", "signature_dropped"])
def test_key_set_refuses_what_it_did_not_sign(case, monkeypatch, tmp_path):
    """With the key set, a header edited with a recomputed checksum no longer loads."""
    monkeypatch.delenv(KEY, raising=False)
    b = load_model(base_model("GMMClassifier"))
    p = tmp_path / "m.npz"
    if case != "unsigned":
        monkeypatch.setenv(KEY, "other key" if case == "wrong_key" else "team secret")
    save_model(p, b.classifier, b.config)
    if case == "tampered":
        tamper_header(p, p, _set(["priors"], {"a": 0.99, "b": 0.01}))
    elif case == "signature_dropped":
        tamper_header(p, p, _delete(["signature"]))
    monkeypatch.setenv(KEY, "team secret")
    with pytest.raises(ModelFileError, match="sign") as ei:
        load_model(p)
    assert str(p) in str(ei.value)


# ======================================================================================
# Tampering generated from the field tables: a new field is tampered with as declared
# ======================================================================================

FIXTURES = Path(__file__).parent / "fixtures"


def _tamper_all(src, table, tmp_path, loader) -> int:
    """Load ``src`` with each field of its header made invalid, as ``tampered`` derives it
    from ``table``; every variant must be refused with one ModelFileError naming the file."""
    header, _ = read_model_file(src)
    body = {k: v for k, v in header.items() if k not in CONTAINER_KEYS}
    bad_ones = list(tampered(table, body, ""))
    assert len(bad_ones) > 20
    accepted = []
    for i, (field, bad) in enumerate(bad_ones):
        dst = tmp_path / f"t{i}.npz"
        tamper_header(src, dst, lambda h, bad=bad: (h.clear(), h.update(
            {**{k: v for k, v in header.items() if k in CONTAINER_KEYS}, **bad})))
        try:
            loader(dst)
        except ModelFileError as e:
            assert str(e).startswith(str(dst)) and "\n" not in str(e), e
        else:
            accepted.append(field)
        dst.unlink()
    assert not accepted, f"accepted invalid values of {accepted}"
    return len(bad_ones)


@pytest.mark.parametrize(
    "src, table",
    [
        (FIXTURES / "diaggmm_v1.npz", "DIAG_GMM"),
        (FIXTURES / "classifier_v1.npz", "CLASSIFIER"),
        (FIXTURES / "map_v1.npz", "UBM"),
        ("FusedClassifier", "FUSED"),
        *((f"FusedMixed-{i}", "FUSED") for i in range(4)),
        ("GSVClassifier", "GSV"),
        ("IVectorClassifier", "IVECTOR"),
    ],
)
def test_every_declared_field_is_refused_when_tampered(src, table, tmp_path):
    """Item 14 and the one-table rule: each kind's loader refuses every invalid value its
    table declares (types, ranges, finiteness, unknown and missing keys), for UBM/MAP files
    as for the others."""
    src = base_model(src) if isinstance(src, str) else src
    _tamper_all(src, getattr(tables, table), tmp_path, load)


@pytest.mark.parametrize(
    "table, good",
    [
        ("KALDI", {"data": "/d", "split": "train", "train_fraction": 0.7, "seed": 0,
                   "train_utts": ["u"]}),
        ("SELECTION", {"front_end": "speech", "components_rule": "fixed",
                       "n_components": {"a": 4}, "n_folds": 3, "cv_max_iter": 10,
                       "cv_frame_step": 1, "folds_by": "clip", "seconds": 1.0,
                       "table": [{"stage": "k", "front_end": "speech", "components": "4",
                                  "correct": 3, "n": 4, "accuracy": 0.75, "ci_low": 0.2,
                                  "ci_high": 0.9, "chosen": True}], "backend": "ml",
                       "not_tried": {"gsv": "costly"}}),
    ],
)  # fmt: skip
def test_every_field_of_a_header_block_is_refused_when_tampered(table, good):
    t = getattr(tables, table)
    assert schema_check(t, good, "b") == good
    bad_ones = list(tampered(t, good, "b"))
    assert len(bad_ones) > 20
    for field, bad in bad_ones:
        with pytest.raises(ValueError, match=re.escape(field.split("[")[0].split(".")[-1])):
            schema_check(t, bad, "b")


def test_a_file_written_by_release_0_1_0_loads_and_predicts_the_same():
    """tests/fixtures/*_v1.npz were written by audiogmm 0.1.0 (before the io package) from
    data_samples; they load through today's loaders and give the same predictions on the
    features 0.1.0 extracted (features_v1.npz), bit for bit; today's front end gives those
    features within float32 rounding (its FFT now runs in float64)."""
    from audiogmm.features import extract

    root = Path(__file__).parent.parent / "data_samples"
    expected = json.loads((FIXTURES / "expected_v1.json").read_text())
    with np.load(FIXTURES / "features_v1.npz", allow_pickle=False) as z:
        stored = {name: z[name] for name in z.files}
    for name in ("classifier_v1.npz", "map_v1.npz"):
        b = load_model(FIXTURES / name)
        want = expected[name]
        X = [stored[f] for f in want["files"]]
        for f, x in zip(want["files"], X):
            np.testing.assert_allclose(extract(root / f, config=b.config), x, rtol=0, atol=1e-4)
        assert b.classifier.predict(X).tolist() == want["labels"]
        np.testing.assert_allclose(b.classifier.predict_log_proba(X), want["log_proba"],
                                   rtol=1e-9, atol=1e-9)  # fmt: skip
    g = load(FIXTURES / "diaggmm_v1.npz", DiagGMM)
    want = expected["diaggmm_v1.npz"]
    np.testing.assert_allclose(g.score_samples(stored[want["file"]])[:5],
                               want["score_samples_head"], rtol=1e-9)  # fmt: skip
    assert read_model_file(FIXTURES / "map_v1.npz")[0]["audiogmm_version"] == "0.1.0"
