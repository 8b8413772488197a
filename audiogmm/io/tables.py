"""The field tables of every file audiogmm writes, and their one vocabulary of checks.

A :class:`Field` declares what a JSON value must be, :func:`check` validates a value against
it (FeatureConfig's fields too); below, one table per file kind and header block, through
which every loader and writer checks. The tests tamper with every field declared
(tests/tamper.py): a new field needs an entry here."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from ..mixture.checks import MAX_VAR_FLOOR_ABS, MIN_VAR_FLOOR_ABS
from ..mixture.mstep import check_adapt

__all__ = [
    "CALIBRATION", "CHECKPOINT", "CLASSIFIER", "DIAG_GMM", "FEATURES", "FUSED", "GSV", "IVECTOR",
    "KALDI", "MAX_LABELS", "MAX_MEMBERS", "SELECTION", "SHARD_INDEX", "SPLIT", "STATS", "UBM",
    "Bool", "Field", "Int", "List", "Map", "Obj", "Real", "Str", "check",
]  # fmt: skip


@dataclass(frozen=True)
class Field:
    """What one JSON value must be (build it with :func:`Int`, :func:`Obj`, ...)."""

    type: str  # "int", "real", "bool", "str", "list", "obj" (fixed keys), "map" (any keys)
    lo: float | None = None  # a number's range
    hi: float | None = None
    finite: bool = True
    max_len: int | None = None  # characters of a str, items of a list or map
    item: Field | None = None  # a list's items (unchecked when None), a map's values
    keys: Mapping[str, Field] | None = None  # an obj's fields
    optional: frozenset = frozenset()  # an obj's keys that may be missing
    extra: bool = False  # an obj keeps keys it does not know (informational blocks)
    null: bool = False
    choices: tuple = ()
    pattern: str | None = None
    #: More checks on the checked value, ``then(value, what) -> value``; raises ValueError.
    then: Callable[[Any, str], Any] | None = None
    brackets: str = "[]"  # "(" or ")": that end of the range is excluded
    unit: str = ""  # a number's unit, in messages (" Hz")


#: A JSON integer (not a bool, not a float) in ``[lo, hi]``: ``Int(lo, hi, **kw)``.
Int = partial(Field, "int")
#: A JSON number (not a bool) in ``[lo, hi]``, finite unless ``finite=False``.
Real = partial(Field, "real")
#: ``true`` or ``false`` (not 0 or 1).
Bool = partial(Field, "bool")


def Str(max_len: int = 256, **kw: Any) -> Field:  # noqa: N802
    """A string of at most ``max_len`` characters (``choices``/``pattern`` narrow it)."""
    return Field("str", max_len=max_len, **kw)


def List(item: Field | None = None, max_len: int = 1 << 20, **kw: Any) -> Field:  # noqa: N802
    """A JSON array of at most ``max_len`` items, each an ``item``."""
    return Field("list", item=item, max_len=max_len, **kw)


def Obj(keys: Mapping[str, Field], optional: Any = (), **kw: Any) -> Field:  # noqa: N802
    """A JSON object with exactly ``keys`` (``optional`` ones, or ``all``, may be missing)."""
    opt = frozenset(keys) if optional is all else frozenset(optional)
    return Field("obj", keys=dict(keys), optional=opt, **kw)


def Map(item: Field, max_len: int = 1 << 20, **kw: Any) -> Field:  # noqa: N802
    """A JSON object with any string keys, every value an ``item``."""
    return Field("map", item=item, max_len=max_len, **kw)


_KIND = {"int": "an integer", "real": "a number", "bool": "true or false", "str": "a string",
         "list": "a list", "obj": "a JSON object", "map": "a JSON object"}  # fmt: skip
_SIZED = {"str": (str, "characters"), "list": (list, "items"), "map": (dict, "entries")}


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


def check(f: Field, v: Any, what: str) -> Any:
    """``v`` checked against ``f``; the value to keep (floats for reals, copies of containers).

    Raises
    ------
    ValueError
        ``"<what>: must be ..., got ..."``, naming the innermost field (``a.b[2].c``)."""
    if v is None and f.null:
        return None

    def bad(desc: str) -> ValueError:
        return ValueError(f"{what}: must be {desc}, got {_short(v)}")
    t, out = f.type, v
    if t in ("int", "real"):
        (lb, rb), lo, hi = f.brackets, f.lo, f.hi
        span = f" in {lb}{lo}, {hi}{rb}{f.unit}" if lo is not None or hi is not None else ""
        if isinstance(v, bool) or not isinstance(v, int if t == "int" else (int, float)):
            raise bad(_KIND[t] + span)
        try:
            out = v if t == "int" else float(v)
        except OverflowError:
            raise bad("a number of float range") from None
        if t == "real" and f.finite and not math.isfinite(out):
            raise bad("a finite number" + span)
        low = lo is None or (out > lo if lb == "(" else out >= lo)  # False for NaN
        if not (low and (hi is None or (out < hi if rb == ")" else out <= hi))):
            raise bad(_KIND[t] + span)
    elif t in _SIZED:
        cls, unit = _SIZED[t]
        if not isinstance(v, cls) or len(v) > f.max_len:
            raise bad(f"{_KIND[t]} of at most {f.max_len} {unit}")
        if f.pattern is not None and not re.fullmatch(f.pattern, v):
            raise bad(f"a string matching {f.pattern}")
        if t == "list" and f.item is not None:
            out = [check(f.item, x, f"{what}[{i}]") for i, x in enumerate(v)]
        elif t == "map":
            out = {k: check(f.item, x, f"{what}[{k!r}]") for k, x in v.items()}
    elif not isinstance(v, bool if t == "bool" else dict):
        raise bad(_KIND[t])
    elif t == "obj":
        missing = [k for k in f.keys if k not in v and k not in f.optional]
        unknown = [] if f.extra else sorted(k for k in v if k not in f.keys)
        if missing or unknown:
            raise ValueError(f"{what or 'header'}: missing field(s) {missing[:10]}, "
                             f"unknown field(s) {[k[:40] for k in unknown[:10]]}")  # fmt: skip
        out = {k: check(f.keys[k], x, f"{what}.{k}" if what else k) if k in f.keys else x
               for k, x in v.items()}  # fmt: skip
    if f.choices and out not in f.choices:
        raise bad(f"one of {list(f.choices)}")
    if f.then is not None:
        try:
            out = f.then(out, what)
        except (TypeError, ValueError) as e:  # name the field unless the hook did
            msg = str(e)
            raise ValueError(msg if msg.startswith(what) else f"{what}: {msg}") from None
    return out


#: Most classes a model file may hold.
MAX_LABELS = 100_000
#: Most members a fused model may hold (each costs one feature extraction per clip).
MAX_MEMBERS = 4

_COUNT = Int(0)
_FLOATS = List(Real(finite=False), max_len=1 << 16)
SEED = Int(0, 2**128 - 1, null=True)


def _must(ok: Callable[[Any], bool], desc: str) -> Callable[[Any, str], Any]:
    """A ``then`` hook: ValueError "must be ``desc``" unless ``ok(value)``."""

    def hook(v: Any, what: str) -> Any:
        if not ok(v):
            raise ValueError(f"must be {desc}, got {_short(v)}")
        return v
    return hook


_distinct = _must(lambda v: len(set(v)) == len(v), "distinct")


def _at_least(n: int) -> Callable[[Any, str], Any]:
    return _must(lambda v: len(v) >= n, f"at least {n} entries")


def _sorted_distinct(v: list, what: str) -> list:
    for i in range(1, len(v)):
        if v[i] <= v[i - 1]:
            raise ValueError(f"{what}[{i}]: must be sorted, distinct digests, got {v[i]!r}")
    return v


_GMM_PARAMS = {
    "n_components": Int(1), "max_iter": Int(0), "tol": Real(0.0), "var_floor": Real(0.0),
    "var_floor_abs": Real(MIN_VAR_FLOOR_ABS, MAX_VAR_FLOOR_ABS), "min_weight": Real(0.0, 1.0),
    "min_count": Real(0.0), "init": Str(choices=("kmeans++", "split")), "n_init": Int(1),
    "init_max_samples": Int(1), "split_iter": Int(0), "random_state": SEED,
    "chunk_size": Int(1, null=True), "n_jobs": Int(1, null=True), "verbose": Int(0),
}  # fmt: skip
#: Entries of a fit report (``DiagGMM.fit_report_``); other entries are kept as plain JSON.
FIT_REPORT = Obj({
    "n_frames": _COUNT, "n_dims": Int(1), "n_components": Int(1), "n_iter": _COUNT,
    "converged": Bool(), "final_mean_loglik": Real(finite=False), "history": _FLOATS,
    "best_init": _COUNT, "init_final_mean_logliks": _FLOATS, "reseeded": List(),
    "n_reseeded": _COUNT, "global_mean_norm": Real(0.0), "seconds": Real(0.0),
}, optional=all, extra=True)  # fmt: skip

_HEX16 = r"[0-9a-f]{16}"
SPLIT = Obj({
    "manifest_hash": Str(16, pattern=_HEX16), "n_manifest_files": _COUNT,
    "split": Str(pattern=r"(?s).+"), "from_column": Bool(), "seed": Int(),
    "train_fraction": Real(0.0, 1.0, brackets="()"),
    "identity": Str(choices=("blake2b-64 of the file bytes",)),
    "train_files": List(Str(16, pattern=_HEX16), then=_sorted_distinct),
})  # fmt: skip
_ROW = {
    "stage": Str(), "front_end": Str(), "components": Str(), "correct": _COUNT, "n": _COUNT,
    "accuracy": Real(0.0, 1.0, finite=False), "ci_low": Real(0.0, 1.0, finite=False),
    "ci_high": Real(0.0, 1.0, finite=False), "chosen": Bool(),
}  # fmt: skip
SELECTION = Obj({
    "front_end": Str(), "components_rule": Str(),
    "n_components": Map(Int(1, 1 << 16)), "n_folds": Int(2, 1000),
    "cv_max_iter": Int(0, 1 << 20), "cv_frame_step": Int(1), "folds_by": Str(choices=("clip",)),
    "seconds": Real(0.0), "table": List(Obj(_ROW, optional=("chosen",)), max_len=10_000),
    "backend": Str(),
}, optional=("backend",))  # fmt: skip
KALDI = Obj({
    "data": Str(4096), "split": Str(null=True), "train_fraction": Real(0.0, 1.0),
    "seed": Int(), "train_utts": List(Str(1024)),
})  # fmt: skip


def _feature_config(v: dict, what: str) -> Any:
    from ..features.config import FeatureConfig  # only files that hold one pay the import
    return FeatureConfig.from_dict(v)


#: A front end: an object that :meth:`FeatureConfig.from_dict` checks field by field.
FEATURES = Obj({}, extra=True, then=_feature_config)
#: A single mixture; a UBM from ``audiogmm ubm`` also records its front end.
DIAG_GMM = Obj(
    {"params": Obj(_GMM_PARAMS, optional=all), "training": FIT_REPORT, "feature_config": FEATURES},
    optional=("training", "feature_config"),
)
#: ``train --calibrate``: ``llr = slope * score + offset`` fitted on held-out training folds.
CALIBRATION = Obj({
    "slope": Real(-1e6, 1e6), "offset": Real(-1e6, 1e6),
    "p_target": Real(0.0, 1.0, brackets="()"), "n_target": _COUNT, "n_nontarget": _COUNT,
})  # fmt: skip
#: The blocks the pipeline adds to a classifier file (cross-checked in ``pipeline.classify``).
_BLOCKS = {"feature_config": FEATURES, "split": SPLIT, "selection": SELECTION, "kaldi": KALDI,
           "calibration": CALIBRATION}  # fmt: skip

LABELS = List(Str(1024, pattern=r"(?s).+"), max_len=MAX_LABELS, then=_distinct)
#: One class's training summary; other entries are kept as plain JSON.
CLASS_REPORT = Obj({
    "n_clips": _COUNT, "n_frames": _COUNT, "n_iter": _COUNT, "converged": Bool(),
    "final_mean_loglik": Real(finite=False), "n_reseeded": _COUNT,
    "compute_dtype": Str(choices=("float32", "float64")),
    "notes": List(Str(1024), max_len=64), "history": _FLOATS,
}, optional=all, extra=True)  # fmt: skip
# a class model's own parameters live in the classifier, not in gmm_params
_CLASS_GMM = {
    k: v for k, v in _GMM_PARAMS.items() if k not in ("n_components", "random_state", "n_jobs")
}
_MEMBER = {
    "n_components": Int(1), "priors": Map(Real(5e-324), max_len=MAX_LABELS, null=True),
    "random_state": SEED, "gmm_params": Obj(_CLASS_GMM, optional=all),
    "training": Map(CLASS_REPORT, max_len=MAX_LABELS),
}  # fmt: skip
_OPTIONAL = ("priors", "random_state", "gmm_params", "training")
CLASSIFIER = Obj({"labels": LABELS, **_MEMBER, **_BLOCKS}, optional=(*_OPTIONAL, *_BLOCKS))
#: The MAP block of a UBMClassifier (its constructor's own parameters).
MAP_BLOCK = Obj({
    "relevance": Real(0.0, finite=False), "relevance_weights": Real(0.0, finite=False, null=True),
    "relevance_variances": Real(0.0, finite=False, null=True),
    "adapt": Str(3, pattern="[mwv]+", then=lambda v, w: check_adapt(v) and v), "map_iter": Int(1),
    "subsample": Int(1), "top_c": Int(1, null=True),
    "reject_far": Real(0.0, 1.0, null=True, brackets="()"),
    "calibration_fraction": Real(0.0, 1.0, brackets="()"),
})  # fmt: skip
UBM = Obj({
    **CLASSIFIER.keys, "map": MAP_BLOCK, "threshold": Real(null=True),
    "training": Obj({"classes": _MEMBER["training"], "ubm": FIT_REPORT}, optional=all),
}, optional=(*_OPTIONAL, *_BLOCKS, "threshold"))  # fmt: skip
#: The back end of a GSVClassifier (its constructor's own parameters) and the slope and
#: offset that calibrate its scores to LLRs (null: too few clips to calibrate).
GSV_BLOCK = Obj({
    "relevance": Real(0.0), "C": Real(5e-324), "subsample": Int(1),
    "calibration": List(Real(-1e6, 1e6), max_len=2, null=True, then=_at_least(2)),
})  # fmt: skip
GSV = Obj({**CLASSIFIER.keys, "gsv": GSV_BLOCK}, optional=(*_OPTIONAL, *_BLOCKS))
#: The back end of an IVectorClassifier (its constructor's own parameters), the T-EM's
#: bound per frame at each iteration, and the calibration as in ``gsv``.
IVECTOR_BLOCK = Obj({
    "rank": Int(1), "n_iter": Int(0), "subsample": Int(1),
    "tv_history": List(Real(), max_len=1 << 16), "calibration": GSV_BLOCK.keys["calibration"],
})  # fmt: skip
IVECTOR = Obj({**CLASSIFIER.keys, "ivector": IVECTOR_BLOCK}, optional=(*_OPTIONAL, *_BLOCKS))
FUSED = Obj({
    "labels": LABELS,
    "members": List(Obj(_MEMBER, optional=_OPTIONAL), max_len=MAX_MEMBERS, then=_at_least(2)),
    "feature_configs": List(FEATURES, max_len=MAX_MEMBERS, then=_at_least(2)),
    "fusion_weights": List(Real(-1e6, 1e6), max_len=MAX_MEMBERS, null=True),
    **{k: v for k, v in _BLOCKS.items() if k != "feature_config"},
}, optional=("feature_configs", "fusion_weights", *_BLOCKS))  # fmt: skip


#: What a checkpoint must match to be resumed (:class:`audiogmm.io.EMCheckpoint`).
FINGERPRINT = Obj({
    "components": Int(1), "n_dims": Int(1), "store_frames": _COUNT, "store_index": Str(64),
    "config_hash": Str(), "init": Str(), "subsample": Int(1), "seed": SEED,
}, optional=all)  # fmt: skip
CHECKPOINT = Obj({
    "history": List(Real(), max_len=1 << 20, then=_at_least(1)),
    "n_iter": Int(1), "reseeded": Bool(), "fingerprint": FINGERPRINT,
})  # fmt: skip
STATS = Obj({})

SHARD_INDEX = Obj({
    "format": Str(choices=("audiogmm-shards",)), "version": Int(1, 1),
    "n_dims": Int(1, 100_000), "dtype": Str(choices=("float32",)),
    "config_hash": Str(), "config": Str(1 << 20),
    "shards": List(Obj({"file": Str(pattern=r"shard-[0-9]{5,}\.npy"), "n_frames": _COUNT}),
                   then=_at_least(1)),
    "clips": List(Obj({"clip": Str(4096), "label": Str(1024, pattern=r"(?s).+"), "shard": _COUNT,
                       "start": _COUNT, "stop": _COUNT})),
})  # fmt: skip
