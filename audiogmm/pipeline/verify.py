"""Speaker verification from files: trials in, LLR scores and EER/minDCF out, DET report.

A trials file is a CSV ``path,claim[,target]`` (target 1 when the claim is true, 0 if not;
paths relative to the CSV's folder). A trial's score is the mean per-frame LLR of the test
file under the claimed class's MAP model against the UBM; a fused model's, each class's
posterior log odds."""

from __future__ import annotations

import logging
import os
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any, NamedTuple

import numpy as np

from ..data import Record, RunOptions, read_csv_rows
from ..engine import LocalExecutor
from ..exceptions import DatasetError, ParameterError
from ..io.atomic import atomic_write
from ..scoring import eer, min_dcf, snorm, tnorm, verification, znorm
from ..scoring.verification import DCF_TARGETS, act_dcf, cllr, min_cllr, operating_points
from .classify import Bundle, check_training_files, score_files
from .report import figure_png, json_dumps, pyplot

__all__ = ["Trial", "TrialScores", "iter_trials", "read_trials", "score_trials", "verify_trials",
           "write_verification_report"]  # fmt: skip

logger = logging.getLogger(__name__)

NORMS = ("none", "z", "t", "s")


class Trial(NamedTuple):
    """Is the speaker of ``path`` the class ``claim``? ``name``: the path as the trials
    file wrote it (what output shows)."""

    path: str
    claim: str
    target: int | None = None
    name: str | None = None


def iter_trials(path: str | os.PathLike) -> Iterator[Trial]:
    """The trials of a ``path,claim[,target]`` CSV (header row required), one at a time.
    DatasetError for a missing file or columns, a bad row (naming it), or ``target``
    given on some rows only."""
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise DatasetError(f"{name}: no such trials file")
    base = os.path.dirname(os.path.abspath(name))
    cols, rows = read_csv_rows(name, what="trials file")
    if "path" not in cols or "claim" not in cols:
        raise DatasetError(f"{name}: needs the columns path,claim[,target]; found {cols}")
    has_target = None
    resolved: dict[str, str] = {}  # one entry per distinct file, not per trial
    for i, row in rows:
        p, claim = row["path"], row["claim"]
        if not p or not claim:
            raise DatasetError(f"{name}: row {i} has an empty path or claim")
        t = row.get("target", "")
        if t not in ("", "0", "1"):
            raise DatasetError(f"{name}: row {i}: target must be 0 or 1, got {t!r}")
        if has_target not in (None, bool(t)):
            raise DatasetError(f"{name}: target is given on some rows but not on others")
        has_target = bool(t)
        full = resolved.get(p) or resolved.setdefault(p, os.path.normpath(os.path.join(base, p)))
        yield Trial(full, claim, int(t) if t else None, p)


def read_trials(path: str | os.PathLike) -> list[Trial]:
    """Every trial of :func:`iter_trials` (DatasetError as there, or for no trials)."""
    trials = list(iter_trials(path))
    if not trials:
        raise DatasetError(f"{os.fspath(path)}: no trials")
    return trials


@dataclass
class TrialScores:
    """Every usable trial as a few numbers, 17 bytes per trial (never a Python object):
    ``names`` (the distinct paths as the trials wrote them) and ``claims`` (the model's
    labels), indexed by ``name_index`` and ``claim_index`` (int32); ``targets`` (int8: 1, 0,
    -1 unknown) and ``scores`` (float64: the normalised mean per-frame LLR), all of shape
    (n_scored,); the ``norm``, the ``skipped`` files (``{path, reason}``) and
    :func:`verification_metrics` (None when the targets are unknown)."""

    names: list[str]
    claims: list[str]
    name_index: np.ndarray
    claim_index: np.ndarray
    targets: np.ndarray
    scores: np.ndarray
    norm: str
    skipped: list[dict[str, str]]
    metrics: dict[str, Any] | None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """``{path, claim, target, score}`` per scored trial, in file order."""
        for n, c, t, s in zip(self.name_index.tolist(), self.claim_index.tolist(),
                              self.targets.tolist(), self.scores.tolist()):  # fmt: skip
            yield {"path": self.names[n], "claim": self.claims[c],
                   "target": None if t < 0 else t, "score": s}  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """Everything but the trials (``norm``, ``skipped``, ``metrics``, ``n_trials``)."""
        out = {"norm": self.norm, "skipped": self.skipped, "n_trials": len(self.scores)}
        if self.metrics is not None:
            out["metrics"] = self.metrics
        return out


#: Trials scored per step: bounds the per-trial work arrays (normalisation included).
_CHUNK = 1 << 13


def score_trials(model: Bundle, trials: str | os.PathLike | Iterable[Trial], *, norm: str = "none",
                 cohort: Sequence[str] = (), allow_train_overlap: bool = False,
                 options: RunOptions | None = None,
                 executor: LocalExecutor | None = None) -> TrialScores:  # fmt: skip
    """Score trials (a CSV path, or Trial objects) with any classifier bundle (ml and fused:
    each class against the others; map: against the UBM; gsv, ivector: calibrated LLRs),
    streaming them: each distinct file is scored once against every class, then each
    trial's score looked up. ``norm``: ``"z"`` by the claimed model's scores on the
    ``cohort`` impostor files (at least 2 usable), ``"t"`` by the test file's scores on the
    other classes, ``"s"`` the mean of both, or ``"none"``. Training files are refused as by
    :func:`.classify.check_training_files`. ParameterError for another kind of model,
    unknown claims, a bad ``norm`` or too small a cohort."""
    clf = model.classifier
    if not model.fused and not hasattr(clf, "score_samples"):
        raise ParameterError(f"verification needs a classifier model; got a "
                             f"{type(clf).__name__}")  # fmt: skip
    if norm not in NORMS:
        raise ParameterError(f"norm must be one of {NORMS}; got {norm!r}")
    name = os.fspath(trials) if isinstance(trials, (str, os.PathLike)) else "the trials"
    source = iter_trials(trials) if isinstance(trials, (str, os.PathLike)) else trials
    index = {y: i for i, y in enumerate(clf.labels_)}
    names: dict[str, int] = {}  # the path as written -> its index
    paths: list[str] = []  # the file each written path names
    ni, ci, tg = array("i"), array("i"), array("b")
    unknown: set[str] = set()
    for t in source:
        k = names.setdefault(t.name or t.path, len(paths))
        if k == len(paths):
            paths.append(t.path)
        c = index.get(t.claim)
        if c is None:
            unknown.add(t.claim)
            continue
        ni.append(k)
        ci.append(c)
        tg.append(-1 if t.target is None else t.target)
    if not paths:
        raise DatasetError(f"{name}: no trials")
    if unknown:
        raise ParameterError(f"claims {sorted(unknown)[:10]} are not classes of the model "
                             f"{clf.labels_}")  # fmt: skip
    if norm in ("t", "s") and len(clf.labels_) < 3:
        raise ParameterError("t-/s-norm needs a model with >= 3 classes (impostor models)")
    if norm in ("z", "s") and len(cohort) < 2:
        raise ParameterError("z-/s-norm needs at least 2 --cohort impostor files")
    shown = {p: n for n, p in reversed(list(zip(names, paths)))}  # a file's first spelling
    opts = options or RunOptions()
    n_overlap, _ = check_training_files(model, [Record(p, "") for p in shown], what="trial",
                                        allow=allow_train_overlap, options=opts)  # fmt: skip
    if n_overlap:
        logger.warning("%d trial file(s) were used in training (--allow-train-overlap); the "
                       "error rates are optimistic", n_overlap)  # fmt: skip
    files = list(dict.fromkeys([*paths, *(os.fspath(c) for c in cohort)]))
    lost, used, _, S = score_files(model, files, opts, executor, verification=True)
    cal = model.header.get("calibration")
    if cal and norm == "none":  # `train --calibrate`: scores become LLRs
        S = verification.apply_calibration(S, cal["slope"], cal["offset"])
    elif cal:
        logger.info("the model's calibration fits raw scores, not %s-normed ones: not applied",
                    norm)  # fmt: skip
    skipped = [{**s, "path": shown.get(s["path"], s["path"])} for s in lost]
    row = {p: i for i, p in enumerate(used)}
    rows = np.array([row.get(p, -1) for p in paths], dtype=np.int64)
    n_idx, c_idx = np.frombuffer(ni, dtype=np.int32), np.frombuffer(ci, dtype=np.int32)
    keep = rows[n_idx] >= 0
    n_idx, c_idx, tg_kept = n_idx[keep], c_idx[keep], np.frombuffer(tg, dtype=np.int8)[keep]
    del ni, ci, tg
    cohort_rows = [row[c] for c in map(os.fspath, cohort) if c in row]
    scores = np.empty(len(n_idx))
    for lo in range(0, len(n_idx), _CHUNK):
        ti = rows[n_idx[lo : lo + _CHUNK]]
        cc = c_idx[lo : lo + _CHUNK].astype(np.int64)
        s = S[ti, cc]
        if norm != "none":
            s = _normalise(s, S, ti, cc, cohort_rows, norm)
        scores[lo : lo + len(s)] = s
    metrics = verification_metrics(tg_kept, scores) if len(tg_kept) and tg_kept[0] >= 0 else None
    return TrialScores(list(names), list(clf.labels_), n_idx, c_idx, tg_kept, scores, norm,
                       skipped, metrics)


def verify_trials(model: Bundle, trials: Sequence[Trial], **options: Any) -> dict[str, Any]:
    """:func:`score_trials` (the same keyword options) of trials in memory as one dict:
    ``trials`` (``path, claim, target, score`` each; skipped files left out) and
    :meth:`TrialScores.to_dict`."""
    res = score_trials(model, trials, **options)
    return {**res.to_dict(), "trials": list(res)}


def _normalise(scores, S, ti, ci, cohort_rows, norm):
    if norm in ("z", "s") and len(cohort_rows) < 2:
        raise ParameterError("fewer than 2 cohort files could be used for z-/s-norm")
    zc = S[cohort_rows][:, ci].T if norm in ("z", "s") else None  # (n_trials, n_cohort)
    if norm in ("t", "s"):
        others = np.array([[j for j in range(S.shape[1]) if j != c] for c in ci])
        tc = np.take_along_axis(S[ti], others, 1)  # test file vs impostor models
    if norm == "z":
        return znorm(scores, zc)
    return tnorm(scores, tc) if norm == "t" else snorm(scores, zc, tc)


def verification_metrics(y_true: Sequence[int], scores: np.ndarray) -> dict[str, Any]:
    """EER, minDCF and actDCF at :data:`DCF_TARGETS`, Cllr, minCllr and trial counts, JSON-ready.
    Cllr and actDCF take the scores as LLRs (nats); minCllr and minDCF do not depend on
    their calibration."""
    y = np.asarray(y_true)
    e, thr = eer(y, scores)
    out = {"eer": e, "eer_threshold": thr, "cllr": cllr(y, scores), "min_cllr": min_cllr(y, scores),
           "n_target": int((y == 1).sum()), "n_nontarget": int((y == 0).sum())}  # fmt: skip
    for p in DCF_TARGETS:
        out[f"min_dcf_{p:g}"] = min_dcf(y, scores, p_target=p)[0]
        out[f"act_dcf_{p:g}"] = act_dcf(y, scores, p_target=p)
    return out


def write_verification_report(folder: str | os.PathLike,
                              result: TrialScores | dict[str, Any]) -> list[str]:  # fmt: skip
    """Write ``scores.csv``, ``metrics.json`` and (targets known, matplotlib installed)
    ``det.png``, each atomically, from :func:`score_trials`'s result (streamed to
    ``scores.csv``) or :func:`verify_trials`'s; return the files written."""
    if isinstance(result, dict):
        rows, head = result["trials"], {k: v for k, v in result.items() if k != "trials"}
        y, scores = [t["target"] for t in rows], [t["score"] for t in rows]
    else:
        rows, head, y, scores = result, result.to_dict(), result.targets, result.scores
    table = ([t["path"], t["claim"], "" if t["target"] is None else t["target"], repr(t["score"])]
             for t in rows)  # fmt: skip
    files = {"scores.csv": chain([["path", "claim", "target", "score"]], table),
             "metrics.json": json_dumps(head, indent=2) + "\n"}
    png = det_png(y, scores, head["metrics"]) if "metrics" in head else None
    if png is not None:
        files["det.png"] = png
    return [atomic_write(os.path.join(folder, name), data) for name, data in files.items()]


_TICKS = [0.001, 0.005, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.95, 0.99]


def det_png(y: Sequence[int], scores: Sequence[float], metrics: dict[str, Any]) -> bytes | None:
    """A DET plot (probit axes in %, EER point marked) as PNG bytes; None without matplotlib."""
    from scipy.stats import norm
    plt = pyplot("det.png")
    if plt is None:
        return None
    p_miss, p_fa, _ = operating_points(y, scores)
    # 0 and 1 have no probit: draw them at the plot's edge (half a trial, at least 0.05%)
    lo = max(0.5 / max(len(y), 1), 0.0005)

    def probit(p):
        return norm.ppf(np.clip(p, lo, 1 - lo))
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.plot(probit(p_fa), probit(p_miss), label="DET")
    e = metrics["eer"]
    ax.plot([probit(e)], [probit(e)], "o", color="C3", label=f"EER {100 * e:.2f}%")
    edge = probit([lo, 1 - lo])
    ax.plot(edge, edge, ":", color="grey", lw=0.8)
    ticks = [t for t in _TICKS if lo <= t <= 1 - lo]
    labels = [f"{100 * t:g}" for t in ticks]
    ax.set_xticks(probit(ticks), labels)
    ax.set_yticks(probit(ticks), labels)
    ax.set(xlim=edge, ylim=edge, xlabel="false alarm rate (%)", ylabel="miss rate (%)")
    dcf = ", ".join(f"minDCF({p:g}) {metrics[f'min_dcf_{p:g}']:.3f}" for p in DCF_TARGETS)
    ax.set_title(f"DET ({metrics['n_target']} target, {metrics['n_nontarget']} non-target)\n{dcf}",
                 fontsize=9)  # fmt: skip
    ax.grid(True, lw=0.3)
    ax.legend(loc="upper right")
    return figure_png(fig)
