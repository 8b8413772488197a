"""Speaker verification from files: trials in, LLR scores and EER/minDCF out, DET report.

A trials file is a CSV with the columns ``path,claim`` and optionally ``target``
(1 when the claim is true, 0 otherwise); relative paths are taken relative to
the CSV's folder. Each trial's score is the mean per-frame log-likelihood ratio
of the test file under the claimed class's MAP model against the UBM
(:meth:`~audiogmm.models.UBMClassifier.score_samples`). No maths and no printing here.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..container import atomic_write
from ..data import RunOptions, extract_many
from ..engine import LocalExecutor, resolve
from ..exceptions import DatasetError, ParameterError
from ..scoring import DCF_TARGETS, eer, min_dcf, snorm, tnorm, znorm
from ..scoring.calibration import act_dcf, cllr, min_cllr
from ..scoring.verification import operating_points
from .bundle import Bundle

__all__ = ["Trial", "read_trials", "verify_trials", "write_verification_report"]

logger = logging.getLogger(__name__)

NORMS = ("none", "z", "t", "s")


@dataclass(frozen=True)
class Trial:
    """One verification trial: is the speaker of ``path`` the class ``claim``?"""

    path: str
    claim: str
    target: int | None = None


def read_trials(path: str | os.PathLike) -> list[Trial]:
    """Read a ``path,claim[,target]`` CSV (header row required).

    Raises
    ------
    DatasetError
        Missing file or columns, an empty file, a bad ``target`` value (naming
        the row), or ``target`` given on some rows only.
    """
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise DatasetError(f"{name}: no such trials file")
    base = os.path.dirname(os.path.abspath(name))
    with open(name, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        cols = reader.fieldnames or []
        if "path" not in cols or "claim" not in cols:
            raise DatasetError(f"{name}: needs the columns path,claim[,target]; found {cols}")
        trials = []
        for i, row in enumerate(reader, start=2):
            p, claim = (row.get("path") or "").strip(), (row.get("claim") or "").strip()
            if not p or not claim:
                raise DatasetError(f"{name}: row {i} has an empty path or claim")
            t = (row.get("target") or "").strip() if "target" in cols else ""
            if t not in ("", "0", "1"):
                raise DatasetError(f"{name}: row {i}: target must be 0 or 1, got {t!r}")
            full = p if os.path.isabs(p) else os.path.join(base, p)
            trials.append(Trial(os.path.normpath(full), claim, int(t) if t else None))
    if not trials:
        raise DatasetError(f"{name}: no trials")
    given = {t.target is not None for t in trials}
    if len(given) > 1:
        raise DatasetError(f"{name}: target is given on some rows but not on others")
    return trials


def verify_trials(
    model: Bundle,
    trials: Sequence[Trial],
    *,
    norm: str = "none",
    cohort: Sequence[str] = (),
    options: RunOptions | None = None,
    executor: LocalExecutor | None = None,
) -> dict[str, Any]:
    """Score verification trials with a GMM-UBM bundle; metrics when targets are known.

    Parameters
    ----------
    model : Bundle
        A ``--backend map`` model (its classifier has ``score_samples``).
    trials : sequence of Trial
    norm : {"none", "z", "t", "s"}
        Score normalisation. ``z``: by the claimed model's scores on the
        ``cohort`` impostor files; ``t``: by the test file's scores on the
        model's other classes (impostor models); ``s``: the mean of both.
    cohort : sequence of path
        Impostor audio files for z-/s-norm (at least 2 usable).

    Returns
    -------
    dict
        ``trials`` (``path, claim, target, score`` each; skipped files left out),
        ``skipped``, ``norm``, and with targets ``metrics``: ``eer``,
        ``eer_threshold``, ``min_dcf_0.01``, ``min_dcf_0.05``, ``act_dcf_0.01``,
        ``act_dcf_0.05`` (C_miss = C_fa = 1), ``cllr``, ``min_cllr`` (bits), ``n_target``,
        ``n_nontarget``.

    Raises
    ------
    ParameterError
        Not a GMM-UBM model, unknown claims, a bad ``norm`` or too small a cohort.
    """
    clf = model.classifier
    if not hasattr(clf, "score_samples") or not hasattr(clf, "ubm_"):
        raise ParameterError(
            "verification needs a GMM-UBM or supervector model (train with --backend map or gsv)"
        )
    if norm not in NORMS:
        raise ParameterError(f"norm must be one of {NORMS}; got {norm!r}")
    index = {y: i for i, y in enumerate(clf.labels_)}
    unknown = sorted({t.claim for t in trials} - set(index))
    if unknown:
        raise ParameterError(f"claims {unknown[:10]} are not classes of the model {clf.labels_}")
    if norm in ("t", "s") and len(clf.labels_) < 3:
        raise ParameterError("t-/s-norm needs a model with >= 3 classes (impostor models)")
    if norm in ("z", "s") and len(cohort) < 2:
        raise ParameterError("z-/s-norm needs at least 2 --cohort impostor files")
    opts = options or RunOptions()
    with resolve(executor, opts.n_jobs) as ex:
        files = list(dict.fromkeys([t.path for t in trials] + [os.fspath(c) for c in cohort]))
        res = extract_many(files, config=model.config, options=opts, executor=ex)
        used = [p for p in files if p in res.features]
        S = clf.score_samples([res.features[p] for p in used], executor=ex) if used else None
    row = {p: i for i, p in enumerate(used)}
    kept = [t for t in trials if t.path in row]
    ti = np.array([row[t.path] for t in kept], dtype=np.int64)
    ci = np.array([index[t.claim] for t in kept], dtype=np.int64)
    scores = S[ti, ci] if len(kept) else np.zeros(0)
    if norm != "none" and len(kept):
        scores = _normalise(scores, S, ti, ci, [row[c] for c in cohort if c in row], norm)
    out: dict[str, Any] = {
        "trials": [
            {"path": t.path, "claim": t.claim, "target": t.target, "score": float(s)}
            for t, s in zip(kept, scores)
        ],
        "skipped": [{"path": s.path, "reason": s.reason} for s in res.skipped],
        "norm": norm,
    }
    if kept and kept[0].target is not None:
        out["metrics"] = verification_metrics([t.target for t in kept], scores)
    return out


def _normalise(scores, S, ti, ci, cohort_rows, norm):
    if norm in ("z", "s") and len(cohort_rows) < 2:
        raise ParameterError("fewer than 2 cohort files could be used for z-/s-norm")
    zc = S[cohort_rows][:, ci].T if norm in ("z", "s") else None  # (n_trials, n_cohort)
    if norm in ("t", "s"):
        M = S.shape[1]
        others = np.array([[j for j in range(M) if j != c] for c in ci])
        tc = np.take_along_axis(S[ti], others, 1)  # test file vs impostor models
    if norm == "z":
        return znorm(scores, zc)
    if norm == "t":
        return tnorm(scores, tc)
    return snorm(scores, zc, tc)


def verification_metrics(y_true: Sequence[int], scores: np.ndarray) -> dict[str, Any]:
    """EER, minDCF and actDCF at :data:`DCF_TARGETS`, Cllr, minCllr and trial counts, JSON-ready.

    Cllr and actDCF take the scores as log-likelihood ratios (nats); minCllr and
    minDCF do not depend on their calibration.
    """
    y = np.asarray(y_true)
    e, thr = eer(y, scores)
    out = {"eer": e, "eer_threshold": thr, "cllr": cllr(y, scores), "min_cllr": min_cllr(y, scores),
           "n_target": int((y == 1).sum()), "n_nontarget": int((y == 0).sum())}  # fmt: skip
    for p in DCF_TARGETS:
        out[f"min_dcf_{p:g}"] = min_dcf(y, scores, p_target=p)[0]
        out[f"act_dcf_{p:g}"] = act_dcf(y, scores, p_target=p)
    return out


def write_verification_report(folder: str | os.PathLike, result: dict[str, Any]) -> list[str]:
    """Write ``scores.csv``, ``metrics.json`` and (targets known, matplotlib installed) ``det.png``.

    Returns
    -------
    list of str
        The files written (each atomically).
    """
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    written = []
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "claim", "target", "score"])
    for t in result["trials"]:
        w.writerow([t["path"], t["claim"], "" if t["target"] is None else t["target"],
                    repr(t["score"])])  # fmt: skip
    for name, text in (
        ("scores.csv", buf.getvalue()),
        (
            "metrics.json",
            json.dumps({k: v for k, v in result.items() if k != "trials"}, indent=2, sort_keys=True)
            + "\n",
        ),  # fmt: skip
    ):
        path = os.path.join(folder, name)
        atomic_write(path, lambda f, text=text: f.write(text.encode("utf-8")))
        written.append(path)
    if "metrics" in result:
        y = [t["target"] for t in result["trials"]]
        png = det_png(y, [t["score"] for t in result["trials"]], result["metrics"])
        if png is not None:
            path = os.path.join(folder, "det.png")
            atomic_write(path, lambda f: f.write(png))
            written.append(path)
    return written


_TICKS = [0.001, 0.005, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.95, 0.99]


def det_png(y: Sequence[int], scores: Sequence[float], metrics: dict[str, Any]) -> bytes | None:
    """A DET plot (probit axes in %, EER point marked) as PNG bytes; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        logger.info("matplotlib is not installed; skipping det.png (pip install audiogmm[report])")
        return None
    from scipy.stats import norm

    p_miss, p_fa, _ = operating_points(y, scores)
    # 0 and 1 have no probit: draw them at the plot's edge (half a trial, at least 0.05%)
    lo = max(0.5 / max(len(y), 1), 0.0005)

    def probit(p):
        return norm.ppf(np.clip(p, lo, 1 - lo))

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.plot(probit(p_fa), probit(p_miss), label="DET")
    e = metrics["eer"]
    ax.plot([probit(e)], [probit(e)], "o", color="C3", label=f"EER {100 * e:.2f}%")
    ax.plot(probit([lo, 1 - lo]), probit([lo, 1 - lo]), ":", color="grey", lw=0.8)
    ticks = [t for t in _TICKS if lo <= t <= 1 - lo]
    labels = [f"{100 * t:g}" for t in ticks]
    ax.set_xticks(probit(ticks), labels)
    ax.set_yticks(probit(ticks), labels)
    ax.set_xlim(probit(lo), probit(1 - lo))
    ax.set_ylim(probit(lo), probit(1 - lo))
    ax.set_xlabel("false alarm rate (%)")
    ax.set_ylabel("miss rate (%)")
    dcf = ", ".join(f"minDCF({p:g}) {metrics[f'min_dcf_{p:g}']:.3f}" for p in DCF_TARGETS)
    ax.set_title(f"DET ({metrics['n_target']} target, {metrics['n_nontarget']} non-target)\n{dcf}",
                 fontsize=9)  # fmt: skip
    ax.grid(True, lw=0.3)
    ax.legend(loc="upper right")
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    plt.close(fig)
    return out.getvalue()
