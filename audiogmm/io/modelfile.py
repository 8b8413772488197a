"""Save and load every object audiogmm keeps in a file, through one table per kind.

Each :class:`Kind` (DiagGMM, GMMClassifier, UBMClassifier, GSVClassifier,
IVectorClassifier, FusedClassifier, Stats) has a header table (:mod:`audiogmm.io.tables`),
a ``parts`` function (object to header and arrays) and a ``build`` function (checked header
and arrays to object, with the cross-field and array checks). :func:`save` runs ``build``
on what it is about to write, so a file that :func:`load` would refuse is never written.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..exceptions import ModelFileError, ParameterError
from ..mixture import DiagGMM, Stats
from ..mixture.checks import check_params, validate_param_arrays
from ..mixture.mstep import check_adapt
from ..models.classifier import GMMClassifier
from ..models.fusion import FusedClassifier
from ..models.ivector import IVectorClassifier
from ..models.supervector import GSVClassifier
from ..models.ubm import UBM_DEFAULTS, UBMClassifier
from . import tables
from .container import CONTAINER_KEYS, read_container, write_container
from .schema import Field, check

__all__ = ["KINDS", "Kind", "load", "save"]

_PARAMS = ("weights", "means", "variances")
_UBM_ARRAYS = ("ubm_weights", "ubm_means", "ubm_variances", "ubm_var_floor")
_ADAPTED = {"m": "means", "w": "weights", "v": "variances"}
#: Largest sum of |coefficients| of a GSV class: bounded terms keep a score finite.
_MAX_COEF = 1e100


def jsonable(obj: Any) -> Any:
    """``obj`` with NumPy scalars and arrays turned into plain Python, for JSON headers."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def _floor(name: str, f: np.ndarray | None, shape: tuple, what: str) -> np.ndarray:
    if (
        f is None
        or f.shape != shape
        or f.dtype != np.float64
        or not np.all(np.isfinite(f) & (f > 0))
    ):
        raise ModelFileError(f"{name}: invalid {what} array")
    return f


def _gmm(name: str, params: dict[str, Any], w, m, v, f) -> DiagGMM:
    """A fitted DiagGMM from checked parameters and arrays (one mixture)."""
    g = DiagGMM(**params)
    validate_param_arrays(name, w, m, v)
    if m.ndim != 2 or m.shape[0] != g.n_components:
        raise ModelFileError(f"{name}: n_components={g.n_components}, arrays have {m.shape[0]}")
    g.weights_, g.means_, g.variances_ = w, m, v
    g.var_floor_ = _floor(name, f, (m.shape[1],), "var_floor")
    return g


def _checked_params(name: str, gmm: DiagGMM, key: str) -> None:
    try:
        check_params(gmm)
    except ParameterError as e:
        raise ModelFileError(f"{name}: header field {key}: {e}") from None


# -- DiagGMM ---------------------------------------------------------------------------------


def _gmm_parts(g: DiagGMM) -> tuple[dict, dict]:
    params = {k: v for k, v in g.get_params().items() if not k.endswith("_init")}
    if not isinstance(g.random_state, (int, np.integer, type(None))):
        params["random_state"] = None  # a Generator's state is not kept
    params["verbose"] = int(params["verbose"])
    header = {"params": params, "training": getattr(g, "fit_report_", {})}
    return header, {"weights": g.weights_, "means": g.means_, "variances": g.variances_,
                    "var_floor": g.var_floor_}  # fmt: skip


def _gmm_build(name: str, h: dict, a: dict) -> DiagGMM:
    _checked_params(name, DiagGMM(**h["params"]), "params")
    g = _gmm(name, h["params"], *(a.get(k) for k in (*_PARAMS, "var_floor")))
    g.fit_report_ = h.get("training", {})
    g.history_ = list(g.fit_report_.get("history", []))
    return g


# -- classifiers -----------------------------------------------------------------------------


def _member_fields(c: GMMClassifier) -> dict[str, Any]:
    return {
        "n_components": c.n_components, "priors": c.priors, "random_state": c.random_state,
        "gmm_params": {k: v for k, v in c.gmm_params.items() if not k.endswith("_init")},
        "training": getattr(c, "fit_report_", {}),
    }  # fmt: skip


def _classifier_parts(c: GMMClassifier) -> tuple[dict, dict]:
    arrays = {k: getattr(c, k + "_") for k in (*_PARAMS, "var_floors")}
    return {"labels": list(c.labels_), **_member_fields(c)}, arrays


def _check_members(name: str, h: dict, labels: list[str], training: dict) -> dict | None:
    """The priors (None for equal ones), after the checks of priors and the per-class
    ``training`` reports against the labels."""
    priors = h.get("priors") or None
    if priors is not None:
        if set(priors) != set(labels):
            raise ModelFileError(
                f"{name}: header field priors: keys {sorted(priors)[:10]} are not the labels"
            )
        total = sum(priors.values())
        if not np.isfinite(total) or min(priors.values()) / total < 1e-300:
            raise ModelFileError(
                f"{name}: header field priors: their sum overflows, or one is 0 relative to it"
            )
    extra = sorted(set(training) - set(labels))
    if extra:
        raise ModelFileError(f"{name}: header field training: entries {extra[:5]} are not labels")
    return priors


def _classifier_build(name: str, h: dict, a: dict) -> GMMClassifier:
    labels = h["labels"]
    priors = _check_members(name, h, labels, h.get("training", {}))
    gp = h.get("gmm_params", {})
    clf = GMMClassifier(h["n_components"], priors=priors, random_state=h.get("random_state"), **gp)
    _checked_params(name, DiagGMM(clf.n_components, **gp), "gmm_params")
    w, m, v, f = (a.get(k) for k in (*_PARAMS, "var_floors"))
    validate_param_arrays(name, w, m, v)
    if m.ndim != 3 or m.shape[0] != len(labels):
        raise ModelFileError(f"{name}: {len(labels)} labels but means of shape {m.shape}")
    if m.shape[1] != clf.n_components:
        raise ModelFileError(
            f"{name}: header field n_components: {clf.n_components}, but the arrays hold {m.shape[1]}"
        )
    _floor(name, f, (m.shape[0], m.shape[2]), "var_floors")
    clf.labels_ = labels
    clf.weights_, clf.means_, clf.variances_, clf.var_floors_ = w, m, v, f
    clf.models_ = {}
    for i, y in enumerate(labels):  # views of the stack, checked above
        g = clf.models_[y] = DiagGMM(m.shape[1], **gp)
        g.weights_, g.means_, g.variances_, g.var_floor_ = w[i], m[i], v[i], f[i]
    clf.fit_report_ = h.get("training", {})
    return clf


def _ubm_arrays(u: DiagGMM) -> dict[str, np.ndarray]:
    return dict(zip(_UBM_ARRAYS, (u.weights_, u.means_, u.variances_, u.var_floor_)))


def _with_ubm(name: str, h: dict, a: dict, training: dict) -> tuple:
    """Labels, K, checked priors, gmm_params and the UBM of a UBM or GSV classifier file."""
    labels, K, gp = h["labels"], h["n_components"], h.get("gmm_params", {})
    priors = _check_members(name, h, labels, training)
    _checked_params(name, DiagGMM(K, **{**UBM_DEFAULTS, **gp}), "gmm_params")
    ubm = _gmm(name, {"n_components": K, **gp}, *(a[k] for k in _UBM_ARRAYS))
    return labels, K, priors, gp, ubm


def _ubm_parts(c: UBMClassifier) -> tuple[dict, dict]:
    header, _ = _classifier_parts(c)
    header["map"] = {k: getattr(c, k) for k in tables.MAP_BLOCK.keys}
    header["threshold"] = None if c.threshold_ is None else float(c.threshold_)
    header["training"] = {"classes": header["training"], "ubm": getattr(c, "ubm_report_", {})}
    arrays = _ubm_arrays(c.ubm_)
    for x in check_adapt(c.adapt):
        arrays[_ADAPTED[x]] = getattr(c, _ADAPTED[x] + "_")
    return header, arrays


def _ubm_build(name: str, h: dict, a: dict) -> UBMClassifier:
    adapt = check_adapt(h["map"]["adapt"])
    expected = {*_UBM_ARRAYS, *(_ADAPTED[x] for x in adapt)}
    if set(a) != expected:
        raise ModelFileError(
            f"{name}: arrays {sorted(a)} but adapt={adapt!r} needs {sorted(expected)}"
        )
    training = h.get("training", {})
    labels, K, priors, gp, ubm = _with_ubm(name, h, a, training.get("classes", {}))
    clf = UBMClassifier(K, priors=priors, random_state=h.get("random_state"), **h["map"], **gp)
    M, D = len(labels), ubm.n_dims
    stacked = {"weights": np.tile(ubm.weights_, (M, 1)), "means": np.tile(ubm.means_, (M, 1, 1)),
               "variances": np.tile(ubm.variances_, (M, 1, 1))}  # fmt: skip
    for x in adapt:
        key = _ADAPTED[x]
        want = (M, K) if key == "weights" else (M, K, D)
        if a[key].shape != want:
            raise ModelFileError(f"{name}: {key} has shape {a[key].shape}, expected {want}")
        stacked[key] = a[key]
    validate_param_arrays(name, *(stacked[k] for k in _PARAMS))
    clf.ubm_, clf.labels_ = ubm, list(labels)
    clf.weights_, clf.means_, clf.variances_ = (stacked[k] for k in _PARAMS)
    clf.var_floors_ = np.tile(ubm.var_floor_, (M, 1))
    clf.threshold_ = h.get("threshold")
    clf.fit_report_ = training.get("classes", {})
    clf.ubm_report_ = training.get("ubm", {})
    return clf


def _check_back_end(name: str, a: dict, wants: dict[str, tuple], per_row: bool) -> None:
    """Arrays ``wants`` of ``a``: finite float64 of their shapes, bounded entries (row sums)."""
    for key, want in wants.items():
        x = a[key]
        if x.dtype != np.float64 or x.shape != want or not np.all(np.isfinite(x)):
            raise ModelFileError(f"{name}: {key} must be finite float64 of shape {want}")
        if np.any((np.abs(x).reshape(want[0], -1).sum(1) if per_row else np.abs(x)) > _MAX_COEF):
            raise ModelFileError(f"{name}: {key} has magnitudes over {_MAX_COEF:g}")


def _gsv_parts(c: GSVClassifier) -> tuple[dict, dict]:
    own = {k: getattr(c, k) for k in c.own_params}
    header = {"labels": list(c.labels_), **_member_fields(c),
              "gsv": {**own, "calibration": c.calibration_}}  # fmt: skip
    return header, {**_ubm_arrays(c.ubm_), "coef": c.coef_, "intercept": c.intercept_}


def _gsv_build(name: str, h: dict, a: dict) -> GSVClassifier:
    labels, K, priors, gp, ubm = _with_ubm(name, h, a, h.get("training", {}))
    own = dict(h["gsv"])
    calibration = own.pop("calibration")
    clf = GSVClassifier(K, priors=priors, random_state=h.get("random_state"), **own, **gp)
    M, KD = len(labels), K * ubm.n_dims
    _check_back_end(name, a, {"coef": (M, KD), "intercept": (M,)}, per_row=True)
    clf.ubm_, clf.labels_, clf.coef_, clf.intercept_ = ubm, list(labels), a["coef"], a["intercept"]
    clf.calibration_ = None if calibration is None else tuple(calibration)
    clf.fit_report_ = h.get("training", {})
    return clf


def _ivector_parts(c: IVectorClassifier) -> tuple[dict, dict]:
    own = {k: getattr(c, k) for k in c.own_params}
    header = {"labels": list(c.labels_), **_member_fields(c), "ivector": {
        **own, "tv_history": list(c.tv_history_), "calibration": c.calibration_}}  # fmt: skip
    return header, {**_ubm_arrays(c.ubm_), "T": c.T_, "centre": c.centre_,
                    "projection": c.projection_, "class_means": c.class_means_}  # fmt: skip


def _ivector_build(name: str, h: dict, a: dict) -> IVectorClassifier:
    labels, K, priors, gp, ubm = _with_ubm(name, h, a, h.get("training", {}))
    own = dict(h["ivector"])
    calibration, history = own.pop("calibration"), own.pop("tv_history")
    clf = IVectorClassifier(K, priors=priors, random_state=h.get("random_state"), **own, **gp)
    M, KD = len(labels), K * ubm.n_dims
    R = a["T"].shape[-1] if a["T"].ndim == 2 else -1
    L = a["projection"].shape[-1] if a["projection"].ndim == 2 else -1
    if not 1 <= R <= clf.rank:
        raise ModelFileError(f"{name}: T has shape {a['T'].shape}, expected ({KD}, R <= {clf.rank})")
    if L != (1 if M < 2 else min(M - 1, R)):
        raise ModelFileError(f"{name}: projection has shape {a['projection'].shape}")
    wants = {"T": (KD, R), "centre": (R,), "projection": (R, L), "class_means": (M, L)}
    _check_back_end(name, a, wants, per_row=False)
    clf.ubm_, clf.labels_, clf.T_ = ubm, list(labels), a["T"]
    clf.centre_, clf.projection_, clf.class_means_ = a["centre"], a["projection"], a["class_means"]
    clf.calibration_ = None if calibration is None else tuple(calibration)
    clf.tv_history_ = list(history)
    clf.fit_report_ = h.get("training", {})
    return clf


def _fused_parts(c: FusedClassifier) -> tuple[dict, dict]:
    arrays = {}
    for i, m in enumerate(c.members):
        arrays.update({f"m{i}_{k}": a for k, a in _classifier_parts(m)[1].items()})
    return {"labels": list(c.labels_), "members": [_member_fields(m) for m in c.members],
            "fusion_weights": c.weights}, arrays  # fmt: skip


def _fused_build(name: str, h: dict, a: dict) -> FusedClassifier:
    n = len(h["members"])
    keys = (*_PARAMS, "var_floors")
    if set(a) != {f"m{i}_{k}" for i in range(n) for k in keys}:
        raise ModelFileError(f"{name}: arrays {sorted(a)[:12]} are not those of {n} members")
    members = [
        _classifier_build(
            f"{name} (member {i})",
            {"labels": h["labels"], **fields},
            {k: a[f"m{i}_{k}"] for k in keys},
        )  # fmt: skip
        for i, fields in enumerate(h["members"])
    ]
    try:
        return FusedClassifier(members, h.get("fusion_weights"))  # none: the old sum rule
    except ParameterError as e:
        raise ModelFileError(f"{name}: {e}") from None


# -- the kinds -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """How one object kind is stored: its header table, arrays, and the two conversions."""

    name: str
    cls: type
    table: Field
    arrays: tuple[str, ...] | None  # None: the header's list (checked by ``build``)
    parts: Callable[[Any], tuple[dict, dict]]
    build: Callable[[str, dict, dict], Any]


#: Every kind, most specific class first (a UBM, GSV or i-vector classifier is a GMMClassifier).
KINDS = (
    Kind("IVectorClassifier", IVectorClassifier, tables.IVECTOR,
         (*_UBM_ARRAYS, "T", "centre", "projection", "class_means"), _ivector_parts,
         _ivector_build),
    Kind("GSVClassifier", GSVClassifier, tables.GSV, (*_UBM_ARRAYS, "coef", "intercept"),
         _gsv_parts, _gsv_build),
    Kind("UBMClassifier", UBMClassifier, tables.UBM, None, _ubm_parts, _ubm_build),
    Kind("GMMClassifier", GMMClassifier, tables.CLASSIFIER, (*_PARAMS, "var_floors"),
         _classifier_parts, _classifier_build),
    Kind("FusedClassifier", FusedClassifier, tables.FUSED, None, _fused_parts, _fused_build),
    Kind("DiagGMM", DiagGMM, tables.DIAG_GMM, (*_PARAMS, "var_floor"), _gmm_parts, _gmm_build),
    Kind("Stats", Stats, tables.STATS, ("n", "F", "S", "shift", "scalars"),
         lambda s: ({}, s.to_arrays()), lambda name, h, a: Stats.from_arrays(a, source=name)),
)  # fmt: skip


def _kind_of(obj_or_cls: Any) -> Kind:
    """The :class:`Kind` of an object or class (ParameterError for one audiogmm cannot store)."""
    cls = obj_or_cls if isinstance(obj_or_cls, type) else type(obj_or_cls)
    for k in KINDS:
        if issubclass(cls, k.cls):
            return k
    raise ParameterError(f"audiogmm cannot store a {cls.__name__} in a model file")


def save(obj: Any, path: str | os.PathLike, *, extra: dict[str, Any] | None = None) -> None:
    """Write a fitted ``obj`` (a DiagGMM, a classifier, Stats) to one ``.npz`` file, atomically.

    ``extra``: more header blocks (the pipeline's ``feature_config``, ``split``, ...),
    each declared in the kind's table. ParameterError, and no file, when the object or a
    block holds something :func:`load` would refuse.
    """
    kind = _kind_of(obj)
    name = os.fspath(path)
    try:
        own, arrays = kind.parts(obj)
    except AttributeError:
        raise ParameterError(f"cannot save {name}: the {kind.name} is not fitted") from None
    header = jsonable({**(extra or {}), **own})
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    try:  # the loader's checks, so that every written file loads
        _build(kind, name, header, arrays)
    except ModelFileError as e:
        raise ParameterError(f"cannot save {name}: {str(e).removeprefix(name + ': ')}") from None
    write_container(path, kind=kind.name, header=header, arrays=arrays)


def _build(kind: Kind, name: str, header: dict, arrays: dict) -> Any:
    try:
        checked = check(kind.table, header, "")
    except ValueError as e:
        msg = str(e)
        raise ModelFileError(
            f"{name}: {'' if msg.startswith('header') else 'header field '}{msg}"
        ) from None
    obj = kind.build(name, checked, arrays)
    if isinstance(obj, (GMMClassifier, FusedClassifier, DiagGMM)):
        obj.file_header_ = header  # checked, as plain JSON
    return obj


def load(path: str | os.PathLike, kind: type | None = None) -> Any:
    """Read a file written by :func:`save`, trusting nothing.

    ``kind``: the class expected (a subclass's file is accepted, e.g. a UBMClassifier's
    for GMMClassifier); None takes the kind the file names. A classifier's checked header
    is kept in ``file_header_`` as plain JSON. ModelFileError naming the file and the
    first failed check (the container's, a header field's, an array's).
    """
    name = os.fspath(path)
    kinds = [k for k in KINDS if kind is None or issubclass(k.cls, kind)]
    if not kinds:
        raise ParameterError(f"audiogmm stores no {kind.__name__} files")
    header, arrays = read_container(
        path, kind=tuple(k.name for k in kinds), names={k.name: k.arrays for k in kinds}
    )
    k = next(k for k in kinds if k.name == header["kind"])
    own = {key: v for key, v in header.items() if key not in CONTAINER_KEYS}
    obj = _build(k, name, own, arrays)
    if hasattr(obj, "file_header_"):
        obj.file_header_ = header
    return obj
