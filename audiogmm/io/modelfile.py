"""Save and load every object audiogmm keeps in a file, through one table per kind.

Each :class:`Kind` (DiagGMM, the classifiers, Stats) has a header table (:mod:`.tables`),
``parts`` (object to header and arrays) and ``build`` (checked header and arrays to object,
with the cross-field and array checks). :func:`save` runs ``build`` on what it writes, so
a file that :func:`load` would refuse is never written. :class:`EMCheckpoint`: EM's state."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..checks import Field, check
from ..exceptions import ModelFileError, ParameterError
from ..mixture import DiagGMM, Stats
from ..mixture.checks import check_params, validate_param_arrays
from ..mixture.em import ConvergenceMonitor
from ..mixture.mstep import check_adapt
from ..mixture.stats import Params
from ..models.classifier import GMMClassifier
from ..models.fusion import FusedClassifier
from ..models.ivector import IVectorClassifier
from ..models.supervector import GSVClassifier
from ..models.ubm import UBMClassifier
from . import tables
from .container import checked, read_container, write_container

__all__ = ["KINDS", "EMCheckpoint", "Kind", "load", "save"]

_PARAMS = ("weights", "means", "variances")
_STACK = (*_PARAMS, "var_floors")  # a GMMClassifier's arrays
_UBM_ARRAYS = ("ubm_weights", "ubm_means", "ubm_variances", "ubm_var_floor")
_ADAPTED = {"m": "means", "w": "weights", "v": "variances"}
_CKPT = "EMCheckpoint"  # the kind of checkpoint files
#: Largest sum of |coefficients| of a GSV class: bounded terms keep a score finite.
_MAX_COEF = 1e100


def jsonable(obj: Any, *, finite: bool = False) -> Any:
    """``obj`` with NumPy scalars and arrays as plain Python, for JSON; with ``finite``,
    NaN and infinities as None (strict JSON has no such numbers)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v, finite=finite) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v, finite=finite) for v in obj]
    if isinstance(obj, (np.generic, np.ndarray)):
        return jsonable(obj.tolist(), finite=finite)
    return None if finite and isinstance(obj, float) and not math.isfinite(obj) else obj


def _floor(name: str, f: np.ndarray | None, shape: tuple, what: str) -> np.ndarray:
    if (f is None or f.shape != shape or f.dtype != np.float64
            or not np.all(np.isfinite(f) & (f > 0))):
        raise ModelFileError(f"{name}: invalid {what} array")
    return f


def _gmm(name: str, params: dict[str, Any], w, m, v, f) -> DiagGMM:
    """A fitted DiagGMM from checked parameters and arrays."""
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


def _gmm_parts(g: DiagGMM) -> tuple[dict, dict]:
    params = {k: v for k, v in g.get_params().items() if not k.endswith("_init")}
    if not isinstance(g.random_state, (int, np.integer, type(None))):
        params["random_state"] = None  # a Generator's state is not kept
    params["verbose"] = int(params["verbose"])
    header = {"params": params, "training": getattr(g, "fit_report_", {})}
    return header, {k: getattr(g, k + "_") for k in (*_PARAMS, "var_floor")}


def _gmm_build(name: str, h: dict, a: dict) -> DiagGMM:
    _checked_params(name, DiagGMM(**h["params"]), "params")
    g = _gmm(name, h["params"], *(a.get(k) for k in (*_PARAMS, "var_floor")))
    g.fit_report_ = h.get("training", {})
    g.history_ = list(g.fit_report_.get("history", []))
    return g


def _member_fields(c: GMMClassifier) -> dict[str, Any]:
    return {
        "n_components": c.n_components, "priors": c.priors, "random_state": c.random_state,
        "gmm_params": {k: v for k, v in c.gmm_params.items() if not k.endswith("_init")},
        "training": getattr(c, "fit_report_", {}),
    }  # fmt: skip


def _classifier_parts(c: GMMClassifier) -> tuple[dict, dict]:
    arrays = {k: getattr(c, k + "_") for k in _STACK}
    return {"labels": list(c.labels_), **_member_fields(c)}, arrays


def _classifier(name: str, h: dict, cls: type, training: dict, **own: Any) -> Any:
    """A ``cls`` of a classifier file's labels, K, priors (checked with the per-class reports
    ``training`` against the labels), gmm_params (checked) and ``own`` parameters."""
    labels, K, gp = h["labels"], h["n_components"], h.get("gmm_params", {})
    priors = h.get("priors") or None
    if priors is not None:
        if set(priors) != set(labels):
            raise ModelFileError(f"{name}: header field priors: keys {sorted(priors)[:10]} are "
                                 "not the labels")  # fmt: skip
        total = sum(priors.values())
        if not np.isfinite(total) or min(priors.values()) / total < 1e-300:
            raise ModelFileError(f"{name}: header field priors: their sum overflows, or one is 0 "
                                 "relative to it")  # fmt: skip
    extra = sorted(set(training) - set(labels))
    if extra:
        raise ModelFileError(f"{name}: header field training: entries {extra[:5]} are not labels")
    _checked_params(name, DiagGMM(K, **gp), "gmm_params")
    clf = cls(K, priors=priors, random_state=h.get("random_state"), **own, **gp)
    clf.labels_, clf.fit_report_ = list(labels), training
    return clf


def _classifier_build(name: str, h: dict, a: dict) -> GMMClassifier:
    clf = _classifier(name, h, GMMClassifier, h.get("training", {}))
    labels, K = clf.labels_, clf.n_components
    w, m, v, f = (a.get(k) for k in _STACK)
    validate_param_arrays(name, w, m, v)
    if m.ndim != 3 or m.shape[0] != len(labels):
        raise ModelFileError(f"{name}: {len(labels)} labels but means of shape {m.shape}")
    if m.shape[1] != K:
        raise ModelFileError(f"{name}: header field n_components: {K}, arrays have {m.shape[1]}")
    _floor(name, f, (m.shape[0], m.shape[2]), "var_floors")
    clf.weights_, clf.means_, clf.variances_, clf.var_floors_ = w, m, v, f
    clf.models_ = {}
    for i, y in enumerate(labels):  # views of the stack, checked above
        g = clf.models_[y] = DiagGMM(K, **clf.gmm_params)
        g.weights_, g.means_, g.variances_, g.var_floor_ = w[i], m[i], v[i], f[i]
    return clf


def _ubm(name: str, clf: GMMClassifier, a: dict) -> DiagGMM:
    """The UBM of a UBM, GSV or i-vector file ``clf``, from its arrays ``a``."""
    params = {"n_components": clf.n_components, **clf.gmm_params}
    return _gmm(name, params, *(a[k] for k in _UBM_ARRAYS))


def _ubm_arrays(u: DiagGMM) -> dict[str, np.ndarray]:
    return dict(zip(_UBM_ARRAYS, (u.weights_, u.means_, u.variances_, u.var_floor_)))


def _ubm_parts(c: UBMClassifier) -> tuple[dict, dict]:
    header, _ = _classifier_parts(c)
    header["map"] = {k: getattr(c, k) for k in tables.MAP_BLOCK.keys}
    header["threshold"] = None if c.threshold_ is None else float(c.threshold_)
    header["training"] = {"classes": header["training"], "ubm": getattr(c, "ubm_report_", {})}
    adapted = {_ADAPTED[x]: getattr(c, _ADAPTED[x] + "_") for x in check_adapt(c.adapt)}
    return header, {**_ubm_arrays(c.ubm_), **adapted}


def _ubm_build(name: str, h: dict, a: dict) -> UBMClassifier:
    adapt = check_adapt(h["map"]["adapt"])
    expected = {*_UBM_ARRAYS, *(_ADAPTED[x] for x in adapt)}
    if set(a) != expected:
        raise ModelFileError(f"{name}: arrays {sorted(a)} but adapt={adapt!r} needs "
                             f"{sorted(expected)}")  # fmt: skip
    training = h.get("training", {})
    clf = _classifier(name, h, UBMClassifier, training.get("classes", {}), **h["map"])
    ubm = clf.ubm_ = _ubm(name, clf, a)
    M = len(clf.labels_)
    for key in _PARAMS:  # the UBM's for each class where not adapted
        u = getattr(ubm, key + "_")
        x = a[key] if key in a else np.tile(u, (M,) + (1,) * u.ndim)
        if x.shape != (M, *u.shape):
            raise ModelFileError(f"{name}: {key} has shape {x.shape}, expected {(M, *u.shape)}")
        setattr(clf, key + "_", x)
    validate_param_arrays(name, clf.weights_, clf.means_, clf.variances_)
    clf.var_floors_ = np.tile(ubm.var_floor_, (M, 1))
    clf.threshold_, clf.ubm_report_ = h.get("threshold"), training.get("ubm", {})
    return clf


def _ivector_shapes(name: str, clf: IVectorClassifier, a: dict, M: int, KD: int) -> dict:
    R = a["T"].shape[-1] if a["T"].ndim == 2 else -1
    L = a["projection"].shape[-1] if a["projection"].ndim == 2 else -1
    if not 1 <= R <= clf.rank:
        raise ModelFileError(f"{name}: T has shape {a['T'].shape}, expected ({KD}, R <= "
                             f"{clf.rank})")  # fmt: skip
    if L != (1 if M < 2 else min(M - 1, R)):
        raise ModelFileError(f"{name}: projection has shape {a['projection'].shape}")
    return {"T": (KD, R), "centre": (R,), "projection": (R, L), "class_means": (M, L)}


@dataclass(frozen=True)
class Kind:
    """How one object kind (named as its class) is stored."""

    cls: type
    table: Field
    arrays: tuple[str, ...] | None  # None: the header's list (checked by ``build``)
    parts: Callable[[Any], tuple[dict, dict]]
    build: Callable[[str, dict, dict], Any]


def _back_end(cls: type, table: Field, block: str, fitted: tuple, names: tuple,
              shapes: Callable, per_row: bool, absent: dict | None = None) -> Kind:  # fmt: skip
    """The Kind of a supervector back end: own parameters and ``fitted`` in header ``block``
    (``absent``: the values of own parameters that older files do not hold); arrays
    ``names`` of ``shapes(name, clf, arrays, M, K * D)``, bounded (by row sums when
    ``per_row``)."""

    def parts(c):
        own = {k: getattr(c, k) for k in c.own_params}
        own.update({k: getattr(c, k + "_") for k in fitted})
        header = {"labels": list(c.labels_), **_member_fields(c), block: own,
                  "ubm_training": getattr(c, "ubm_report_", {})}
        return header, {**_ubm_arrays(c.ubm_), **{k: getattr(c, k + "_") for k in names}}

    def build(name, h, a):
        own = {**(absent or {}), **h[block]}
        done = {k: own.pop(k) for k in fitted}
        clf = _classifier(name, h, cls, h.get("training", {}), **own)
        clf.ubm_, clf.ubm_report_ = _ubm(name, clf, a), h.get("ubm_training", {})
        wants = shapes(name, clf, a, len(clf.labels_), clf.ubm_.means_.size)
        for key, want in wants.items():  # finite float64 of their shapes, bounded entries
            x = a[key]
            if x.dtype != np.float64 or x.shape != want or not np.all(np.isfinite(x)):
                raise ModelFileError(f"{name}: {key} must be finite float64 of shape {want}")
            size = np.abs(x).reshape(want[0], -1).sum(1) if per_row else np.abs(x)
            if np.any(size > _MAX_COEF):
                raise ModelFileError(f"{name}: {key} has magnitudes over {_MAX_COEF:g}")
            setattr(clf, key + "_", x)
        cal = done.pop("calibration")
        clf.calibration_ = None if cal is None else tuple(cal)
        for k, v in done.items():
            setattr(clf, k + "_", v)
        return clf
    return Kind(cls, table, (*_UBM_ARRAYS, *names), parts, build)


def _fused_parts(c: FusedClassifier) -> tuple[dict, dict]:
    """Each member's own header (without the labels; ``kind`` unless a GMMClassifier) and
    its arrays prefixed ``m<i>_``."""
    members, arrays = [], {}
    for i, m in enumerate(c.members):
        kind = next(k for k in KINDS if isinstance(m, k.cls))
        header, own = kind.parts(m)
        del header["labels"]
        members.append(header if kind.cls is GMMClassifier else {"kind": kind.cls.__name__,
                                                                  **header})  # fmt: skip
        arrays.update({f"m{i}_{k}": x for k, x in own.items()})
    return {"labels": list(c.labels_), "members": members, "fusion_weights": c.weights}, arrays


def _fused_build(name: str, h: dict, a: dict) -> FusedClassifier:
    n, kinds = len(h["members"]), {k.cls.__name__: k for k in KINDS}
    mine: list[dict] = [{} for _ in range(n)]
    for key, x in a.items():  # m<i>_<name>, i one digit (at most MAX_MEMBERS members)
        got = re.fullmatch(r"m([0-9])_(.+)", key, re.S)
        if got is None or int(got[1]) >= n:
            raise ModelFileError(f"{name}: array {key[:40]!r} belongs to none of its {n} members")
        mine[int(got[1])][got[2]] = x
    members = []
    for i, fields in enumerate(h["members"]):
        fields = dict(fields)
        kind = kinds[fields.pop("kind", "GMMClassifier")]  # a member kind (checked by the table)
        if kind.arrays is not None and set(mine[i]) != set(kind.arrays):
            raise ModelFileError(f"{name}: member {i} has arrays {sorted(mine[i])[:12]}, a "
                                 f"{kind.cls.__name__} needs {sorted(kind.arrays)}")  # fmt: skip
        members.append(kind.build(f"{name} (member {i})", {"labels": h["labels"], **fields},
                                  mine[i]))  # fmt: skip
    try:
        return FusedClassifier(members, h.get("fusion_weights"))  # none: the old sum rule
    except ParameterError as e:
        raise ModelFileError(f"{name}: {e}") from None


#: Every kind, most specific class first (a UBM, GSV or i-vector classifier is a GMMClassifier).
KINDS = (
    _back_end(IVectorClassifier, tables.IVECTOR, "ivector", ("tv_history", "calibration"),
              ("T", "centre", "projection", "class_means"), _ivector_shapes, per_row=False),
    _back_end(GSVClassifier, tables.GSV, "gsv", ("calibration",), ("coef", "intercept"),
              lambda name, clf, a, M, KD: {"coef": (M, KD), "intercept": (M,)}, per_row=True,
              absent={"length_norm": False}),
    Kind(UBMClassifier, tables.UBM, None, _ubm_parts, _ubm_build),
    Kind(GMMClassifier, tables.CLASSIFIER, _STACK, _classifier_parts, _classifier_build),
    Kind(FusedClassifier, tables.FUSED, None, _fused_parts, _fused_build),
    Kind(DiagGMM, tables.DIAG_GMM, (*_PARAMS, "var_floor"), _gmm_parts, _gmm_build),
    Kind(Stats, tables.STATS, ("n", "F", "S", "shift", "scalars"),
         lambda s: ({}, s.to_arrays()), lambda name, h, a: Stats.from_arrays(a, source=name)),
)  # fmt: skip


def save(obj: Any, path: str | os.PathLike, *, extra: dict[str, Any] | None = None) -> None:
    """Write a fitted ``obj`` (a DiagGMM, a classifier, Stats) to one ``.npz`` file, atomically;
    ``extra``: more header blocks declared in the kind's table (``feature_config``, ...).
    ParameterError, and no file, for an object or block :func:`load` would refuse."""
    kind = next((k for k in KINDS if isinstance(obj, k.cls)), None)
    if kind is None:
        raise ParameterError(f"audiogmm cannot store a {type(obj).__name__} in a model file")
    name = os.fspath(path)
    try:
        own, arrays = kind.parts(obj)
    except AttributeError:
        raise ParameterError(f"cannot save {name}: the {kind.cls.__name__} is not fitted") from None
    header = jsonable({**(extra or {}), **own})
    try:  # the loader's checks, so that every written file loads
        kind.build(name, checked(name, kind.table, header), arrays)
    except ModelFileError as e:
        raise ParameterError(f"cannot save {name}: {str(e).removeprefix(name + ': ')}") from None
    write_container(path, kind=kind.cls.__name__, header=header, arrays=arrays)


def load(path: str | os.PathLike, kind: type | None = None) -> Any:
    """Read a file written by :func:`save`, trusting nothing; ``kind``: the class expected (or
    a subclass), None: the file's. The header is kept in ``file_header_`` (not on Stats).
    ModelFileError naming the file and the first failed check."""
    kinds = {k.cls.__name__: k for k in KINDS if kind is None or issubclass(k.cls, kind)}
    if not kinds:
        raise ParameterError(f"audiogmm stores no {kind.__name__} files")
    name = os.fspath(path)
    header, arrays = read_container(name, kind=tuple(kinds),
                                    names={n: k.arrays for n, k in kinds.items()})
    k = kinds[header["kind"]]
    obj = k.build(name, checked(name, k.table, header), arrays)
    if not isinstance(obj, Stats):
        obj.file_header_ = header
    return obj


class EMCheckpoint:
    """EM's state (parameters, history, M-steps, re-seed flag) written atomically to ``path``
    after every M-step; with ``resume``, EM starts from it if it exists, with the same bits
    as an uninterrupted run. ``fingerprint`` (:data:`.tables.FINGERPRINT`) must match.

    Examples
    --------
    >>> ckpt = EMCheckpoint("ubm.ckpt.npz", resume=True)
    >>> gmm.fit_source(source, checkpoint=ckpt)  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike, *, resume: bool = False,
                 fingerprint: dict | None = None) -> None:  # fmt: skip
        self.path = os.fspath(path)
        self.resume = bool(resume)
        try:
            fp = dict(fingerprint or {})
            self.fingerprint = check(tables.FINGERPRINT, fp, "fingerprint")
        except ValueError as e:
            raise ParameterError(f"{self.path}: {e}") from None
        self.resumed_from: int | None = None  # M-steps already done when resumed

    def restore(self, monitor: ConvergenceMonitor) -> tuple[Params, bool] | None:
        """Saved parameters and re-seed flag, ``monitor``'s state restored; None: start afresh."""
        if not (self.resume and os.path.exists(self.path)):
            return None
        header, arrays = read_container(self.path, kind=_CKPT, names=_PARAMS)
        header = checked(self.path, tables.CHECKPOINT, header)
        w, m, v = (arrays[k] for k in _PARAMS)
        validate_param_arrays(self.path, w, m, v)
        fp = header["fingerprint"]
        if fp != self.fingerprint:
            raise ModelFileError(f"{self.path}: the checkpoint was written for {fp}, this run "
                                 f"is {self.fingerprint}; remove it or drop --resume")  # fmt: skip
        want = (fp.get("components", m.shape[0]), fp.get("n_dims", m.shape[-1]))
        if m.ndim != 2 or m.shape != want:
            raise ModelFileError(f"{self.path}: arrays of shape {m.shape} do not match its {fp}")
        if header["n_iter"] != len(header["history"]):
            raise ModelFileError(f"{self.path}: 'n_iter' does not match the history's length")
        monitor.history = list(header["history"])
        monitor.n_iter = self.resumed_from = header["n_iter"]
        return Params(w, m, v), header["reseeded"]

    def attach(self, monitor: ConvergenceMonitor, maximiser: Any,
               reseeded: bool = False) -> tuple[Any, Any]:  # fmt: skip
        """The monitor and maximiser for :func:`em.run` (``reseeded``: from :meth:`restore`)."""
        if reseeded:  # the first report after a resume carries the saved re-seed flag
            report = monitor.report

            def first(ll: float, *, reseeded: bool = False) -> None:
                del monitor.report  # later reports: the class's own method
                report(ll, reseeded=True)
            monitor.report = first

        def maximise(stats, params):
            new, events = maximiser(stats, params)
            self.save(new, monitor, bool(events))
            return new, events
        return monitor, maximise

    def save(self, params: Params, monitor: ConvergenceMonitor, reseeded: bool) -> None:
        """Write the state after an M-step (atomic: a crash leaves the previous checkpoint)."""
        header = {"history": list(monitor.history), "n_iter": monitor.n_iter,
                  "reseeded": bool(reseeded), "fingerprint": self.fingerprint}  # fmt: skip
        write_container(self.path, kind=_CKPT, header=header, arrays=dict(zip(_PARAMS, params)))
