"""The field tables of every file audiogmm writes, in the vocabulary of
:mod:`audiogmm.checks`: one table per file kind and header block, through which every loader
and writer checks. The tests tamper with every field declared (tests/tamper.py): a new field
needs an entry here."""

from __future__ import annotations

from typing import Any

from ..checks import Bool, Int, List, Map, Obj, Real, Str, at_least, check, must
from ..data.shards import SHARD_INDEX
from ..mixture.checks import MAX_VAR_FLOOR_ABS, MIN_VAR_FLOOR_ABS
from ..mixture.mstep import check_adapt
from ..models.fusion import MAX_MEMBERS

__all__ = ["CALIBRATION", "CHECKPOINT", "CLASSIFIER", "DIAG_GMM", "FEATURES", "FUSED", "GSV",
           "IVECTOR", "KALDI", "MAX_LABELS", "SELECTION", "SHARD_INDEX", "SPLIT",
           "STATS", "UBM"]  # fmt: skip


#: Most classes a model file may hold.
MAX_LABELS = 100_000

_COUNT = Int(0)
_FLOATS = List(Real(finite=False), max_len=1 << 16)
SEED = Int(0, 2**128 - 1, null=True)
_distinct = must(lambda v: len(set(v)) == len(v), "distinct")


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
    "backend": Str(), "not_tried": Map(Str(4096), max_len=64),
}, optional=("backend", "not_tried"))  # fmt: skip
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
#: offset that calibrate its scores to LLRs (null: too few clips to calibrate). A file written
#: before ``length_norm`` existed has none: it was fitted without.
GSV_BLOCK = Obj({
    "relevance": Real(0.0), "C": Real(5e-324), "length_norm": Bool(), "subsample": Int(1),
    "calibration": List(Real(-1e6, 1e6), max_len=2, null=True, then=at_least(2)),
}, optional=("length_norm",))  # fmt: skip
#: ``ubm_training``: the UBM's fit report (its EM curve), in files written since session 19.
GSV = Obj({**CLASSIFIER.keys, "gsv": GSV_BLOCK, "ubm_training": FIT_REPORT},
          optional=(*_OPTIONAL, *_BLOCKS, "ubm_training"))  # fmt: skip
#: The back end of an IVectorClassifier (its constructor's own parameters), the T-EM's
#: bound per frame at each iteration, and the calibration as in ``gsv``.
IVECTOR_BLOCK = Obj({
    "rank": Int(1), "n_iter": Int(0), "subsample": Int(1),
    "tv_history": List(Real(), max_len=1 << 16), "calibration": GSV_BLOCK.keys["calibration"],
})  # fmt: skip
IVECTOR = Obj({**CLASSIFIER.keys, "ivector": IVECTOR_BLOCK, "ubm_training": FIT_REPORT},
              optional=(*_OPTIONAL, *_BLOCKS, "ubm_training"))  # fmt: skip
#: A fused model's member, by its ``kind`` (absent: a GMMClassifier, as in every file before
#: members of other backends): that kind's table without the labels and pipeline blocks.
MEMBER_KINDS = {
    cls: Obj({k: f for k, f in t.keys.items() if k not in ("labels", *_BLOCKS)}, optional=t.optional)
    for cls, t in [("GMMClassifier", CLASSIFIER), ("UBMClassifier", UBM), ("GSVClassifier", GSV),
                   ("IVectorClassifier", IVECTOR)]
}  # fmt: skip


def _member(v: dict, what: str) -> dict:
    kind = v.pop("kind", "GMMClassifier")
    out = check(MEMBER_KINDS[kind], v, what)
    return out if kind == "GMMClassifier" else {"kind": kind, **out}


#: Every field a member may have, then checked by its kind's own table (:func:`_member`; a
#: map member's ``training``, ``{classes, ubm}``, passes the ml one's map of reports first).
_ANY_MEMBER = Obj({"kind": Str(choices=tuple(MEMBER_KINDS)),
                   **{k: f for t in MEMBER_KINDS.values() for k, f in t.keys.items()
                      if k != "training"}, "training": _MEMBER["training"]},
                  optional=all, then=_member)  # fmt: skip
FUSED = Obj({
    "labels": LABELS,
    "members": List(_ANY_MEMBER, max_len=MAX_MEMBERS, then=at_least(2)),
    "feature_configs": List(FEATURES, max_len=MAX_MEMBERS, then=at_least(2)),
    "fusion_weights": List(Real(-1e6, 1e6), max_len=MAX_MEMBERS, null=True),
    **{k: v for k, v in _BLOCKS.items() if k != "feature_config"},
}, optional=("feature_configs", "fusion_weights", *_BLOCKS))  # fmt: skip


#: What a checkpoint must match to be resumed (:class:`audiogmm.io.EMCheckpoint`).
FINGERPRINT = Obj({
    "components": Int(1), "n_dims": Int(1), "store_frames": _COUNT, "store_index": Str(64),
    "config_hash": Str(), "init": Str(), "subsample": Int(1), "seed": SEED,
}, optional=all)  # fmt: skip
CHECKPOINT = Obj({
    "history": List(Real(), max_len=1 << 20, then=at_least(1)),
    "n_iter": Int(1), "reseeded": Bool(), "fingerprint": FINGERPRINT,
})  # fmt: skip
STATS = Obj({})

