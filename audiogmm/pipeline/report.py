"""Reports and their figures: ``metrics.json``, ``metrics.txt``, ``confusion.txt`` and (with
matplotlib, imported on first use by :func:`pyplot`) ``confusion.png``; per-class training
curves when the model recorded them; a fitted mixture along one feature dimension
(components dashed, the marginal density solid, frames as a density histogram, a UBM/MAP
model's UBM under the class)."""

from __future__ import annotations

import glob
import io
import json
import logging
import os
from typing import Any, Optional

import numpy as np

from ..exceptions import ParameterError
from ..io.atomic import atomic_write
from ..io.modelfile import jsonable
from .classify import Bundle

__all__ = ["class_mixtures", "drawn", "figure_png", "format_confusion", "format_metrics",
           "format_open_set", "has_class_mixtures", "json_dumps", "mixture_curves",
           "mixture_figure", "pyplot",
           "separating_dimension", "training_report", "write_report",
           "write_training_curves"]  # fmt: skip

logger = logging.getLogger(__name__)

_N_POINTS = 801  # samples of each curve across the plotted range
_TAIL = 2.5e-4  # mass of each mixture left out of the plotted range on each side


def json_dumps(obj: Any, *, indent: int | None = None) -> str:
    """``obj`` as strict JSON: sorted keys, NaN and infinities (which ``json.dumps`` would
    write as ``NaN``/``Infinity``, refused by JSON parsers) written as ``null``."""
    return json.dumps(jsonable(obj, finite=True), sort_keys=True, indent=indent, allow_nan=False,
                      default=str)  # fmt: skip


def format_confusion(labels: list[str], matrix: list[list[int]] | np.ndarray) -> str:
    """The confusion matrix as aligned text: rows are true classes, columns predictions."""
    C = np.asarray(matrix)
    w = max([len(y) for y in labels] + [len(str(C.max() if C.size else 0)), 4])
    head = " " * (w + 2) + " ".join(f"{y[:w]:>{w}}" for y in labels)
    rows = [f"{y[:w]:>{w}}  " + " ".join(f"{v:>{w}d}" for v in C[i]) for i, y in enumerate(labels)]
    return "true \\ predicted\n" + "\n".join([head, *rows]) + "\n"


def _pct(x: float, none: str = "n/a") -> str:
    """A rate as ``12.34%``; ``none`` for NaN (a rate over no clips)."""
    return f"{100 * x:.2f}%" if x == x else none


def format_open_set(o: dict[str, Any]) -> str:
    """The open-set line of ``evaluate --reject`` (``n/a`` for a rate over no clips)."""
    return (
        f"open set: false accept {_pct(o['false_accept'], 'n/a (no unknown clips)')} of "
        f"{o['n_unknown']} unknown, false reject {_pct(o['false_reject'], 'n/a (no known clips)')}"
        f" of {o['n_known']} known, misidentified {_pct(o['misidentified'], 'n/a')}"
    )


def format_metrics(metrics: dict[str, Any]) -> str:
    """The headline metrics and a per-class table of :func:`audiogmm.scoring.summary`'s
    ``metrics`` as text (what ``evaluate`` prints)."""
    lo, hi = metrics["accuracy_ci95"]
    pc = metrics["per_class"]
    w = max([len(y) for y in pc] + [5])
    lines = [
        f"accuracy:          {_pct(metrics['accuracy'])} ({metrics['n_correct']}/{metrics['n']}; "
        f"95% Wilson interval {_pct(lo)} to {_pct(hi)})",
        f"balanced accuracy: {_pct(metrics['balanced_accuracy'])} (mean per-class recall)",
        f"macro-F1:          {_pct(metrics['macro_f1'])}",
        f"{'class':<{w}}  recall  precision      F1  support",
    ]
    lines += [f"{y:<{w}}  {100 * r['recall']:5.1f}%  {100 * r['precision']:8.1f}%  "
              f"{100 * r['f1']:5.1f}%  {r['support']:7d}" for y, r in pc.items()]  # fmt: skip
    return "\n".join(lines) + "\n"


#: Every file :func:`write_report` may write.
REPORT_FILES = ("metrics.json", "metrics.txt", "confusion.txt", "confusion.png",
                "training_curves.json", "training_curves.png")  # fmt: skip


def write_report(
    folder: str | os.PathLike, metrics: dict[str, Any], *, plot: bool = True,
    training: dict[str, Any] | None = None, bundle: Any = None,
) -> list[str]:  # fmt: skip
    """Write a report folder (created if needed; what an earlier report left is removed)
    for one evaluation, each file atomically; return the files. ``metrics``
    (:func:`audiogmm.scoring.summary`) gives ``metrics.json``, ``metrics.txt`` and
    ``confusion.txt``; ``plot`` adds (matplotlib installed, else a warning)
    ``confusion.png`` and, with the evaluated ``bundle``, one ``mixture_*.png`` per class;
    ``training`` (a ``fit_report_``) adds :func:`write_training_curves`."""
    folder = os.fspath(folder)
    labels, C = metrics["confusion"]["labels"], metrics["confusion"]["matrix"]
    files = {"metrics.json": json_dumps(metrics, indent=2) + "\n",
             "metrics.txt": format_metrics(metrics), "confusion.txt": format_confusion(labels, C)}
    written = [atomic_write(os.path.join(folder, name), text) for name, text in files.items()]
    plt = pyplot("confusion.png") if plot else None
    if plt is not None:
        fig = _confusion_figure(plt, labels, np.asarray(C), metrics.get("accuracy"))
        written.append(atomic_write(os.path.join(folder, "confusion.png"), figure_png(fig)))
    if training:
        written += write_training_curves(folder, training, plot=plot)
    if plot and bundle is not None and pyplot("mixture_*.png") is not None:
        d = separating_dimension(bundle)  # every class along one dimension
        clf = drawn(bundle)[0]
        if not has_class_mixtures(clf):  # gsv, ivector: their one mixture, the UBM
            png = figure_png(mixture_figure(bundle, str(clf.labels_[0]), d))
            written.append(atomic_write(os.path.join(folder, "mixture_ubm.png"), png))
        for i, y in enumerate(str(v) for v in clf.labels_ if has_class_mixtures(clf)):
            safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in y)
            png = figure_png(mixture_figure(bundle, y, d))
            written.append(atomic_write(os.path.join(folder, f"mixture_{i:02d}_{safe}.png"), png))
    # the folder describes this evaluation only: drop what an earlier report left there
    stale = [os.path.join(folder, name) for name in REPORT_FILES]
    stale += glob.glob(os.path.join(glob.escape(folder), "mixture_*.png"))
    for path in stale:
        if path not in written and os.path.isfile(path):
            os.remove(path)
    return written


#: The name of a UBM's EM curve among the classes' in :func:`training_report`.
UBM_CURVE = "(UBM)"


def training_report(model: Any) -> dict[str, Any]:
    """The per-class training reports of a bundle's classifier, for :func:`write_report`,
    and its UBM's (map, gsv, ivector) as :data:`UBM_CURVE`; a fused model's members'
    labelled ``"label (front end)"``."""
    clf = model.classifier
    members = getattr(clf, "members", None)
    if not members:
        return {**clf.fit_report_, **_ubm_report(clf, UBM_CURVE)}
    sel = model.header.get("selection")
    names = sel["front_end"].split(" + ") if isinstance(sel, dict) else []
    if len(names) != len(members):
        names = [f"member {i + 1}" for i in range(len(members))]
    return {k: r for n, m in zip(names, members)
            for k, r in [*((f"{y} ({n})", r) for y, r in m.fit_report_.items()),
                         *_ubm_report(m, f"{UBM_CURVE} ({n})").items()]}  # fmt: skip


def _ubm_report(clf: Any, name: str) -> dict[str, Any]:
    """``{name: the UBM's fit report}`` when ``clf`` has a UBM whose report holds its curve."""
    rep = getattr(clf, "ubm_report_", None)
    return {name: rep} if isinstance(rep, dict) and rep.get("history") else {}


def write_training_curves(folder: str | os.PathLike, training: dict[str, Any], *,
                          plot: bool = True) -> list[str]:  # fmt: skip
    """Per-class (and UBM, :func:`training_report`) EM curves of a ``fit_report_``, mean
    log-likelihood per frame (nats) per iteration: ``training_curves.json`` and (``plot``,
    matplotlib) ``training_curves.png``, returned; entries without a ``history`` (older files,
    MAP-adapted and gsv or ivector classes) are left out."""
    curves = {
        str(y): [float(v) for v in r["history"]]
        for y, r in sorted(training.items())
        if isinstance(r, dict) and isinstance(r.get("history"), list) and r["history"]
    }
    if not curves:
        return []
    text = json_dumps(curves, indent=2) + "\n"
    written = [atomic_write(os.path.join(folder, "training_curves.json"), text)]
    plt = pyplot("training_curves.png") if plot else None
    if plt is not None:
        fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
        for y, h in curves.items():
            ax.plot(range(len(h)), h, marker=".", label=y)
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))  # iterations are whole
        ax.set(xlabel="EM iteration (0: after initialisation)", title="EM training curves",
               ylabel="mean log-likelihood per frame (nats)")  # fmt: skip
        if len(curves) <= 20:
            ax.legend(fontsize=7, ncol=2 if len(curves) > 8 else 1)
        written.append(atomic_write(os.path.join(folder, "training_curves.png"), figure_png(fig)))
    return written


def _confusion_figure(plt: Any, labels: list[str], C: np.ndarray, acc: float | None) -> Any:
    """Row-normalised proportions as colours (with a colour bar), counts as cell text."""
    n = len(labels)
    support = C.sum(axis=1, keepdims=True)
    # each true class's clips as shares: comparable across classes of different sizes
    P = np.divide(C, support, out=np.zeros(C.shape), where=support > 0)
    fig, ax = plt.subplots(figsize=(2.0 + 0.55 * n, 0.8 + 0.5 * n), dpi=100)
    im = ax.imshow(P, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true")
    for i, j in np.argwhere(C):
        color = "white" if P[i, j] > 0.5 else "black"
        ax.text(j, i, str(C[i, j]), ha="center", va="center", fontsize=7, color=color)
    acc_line = "" if acc is None else f"accuracy {100 * acc:.1f}%\n"
    ax.set_title(f"{acc_line}colour: share of row; numbers: counts", fontsize=9)
    return fig


def pyplot(what: Optional[str] = None) -> Any:
    """``matplotlib.pyplot`` on the Agg backend. Without matplotlib: ParameterError, or for
    a report file ``what`` a warning (the user asked for it) and None."""
    try:
        import matplotlib
        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        hint = "(pip install 'audiogmm[report]')"
        if what is None:
            msg = f"drawing needs matplotlib, which is not installed {hint}"
            raise ParameterError(msg) from None
        logger.warning("matplotlib is not installed, so %s was not written %s", what, hint)
        return None
    return plt


def figure_png(fig: Any) -> bytes:
    """The figure, laid out tight, as PNG bytes (and closed)."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    pyplot().close(fig)
    return buf.getvalue()


def drawn(bundle: Bundle) -> tuple[Any, Any]:
    """The classifier whose mixtures are drawn, and its front end: the model's own, or a fused
    model's first member with class mixtures (ml, map), else its first member."""
    if not bundle.fused:
        return bundle.classifier, bundle.configs[0]
    pairs = list(zip(bundle.classifier.members, bundle.configs))
    return next((p for p in pairs if has_class_mixtures(p[0])), pairs[0])


def has_class_mixtures(clf: Any) -> bool:
    """Whether each class has a mixture (ml, map); gsv and ivector classes are linear scores
    of a clip's vector, whose only mixture is the UBM."""
    return hasattr(clf, "means_")


def class_mixtures(bundle: Bundle,
                   label: str) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:  # fmt: skip
    """``(name, weights (K,), means (K, D), variances (K, D))`` to draw for ``label``: the
    UBM first for a model that has one, then the class's mixture (none for gsv and ivector:
    the UBM alone), without weight-0 components (padding). ParameterError listing the
    classes when ``label`` is not one."""
    clf = drawn(bundle)[0]
    labels = [str(y) for y in clf.labels_]
    if label not in labels:
        raise ParameterError(f"no class {label!r} in the model; classes: {', '.join(labels)}")
    i = labels.index(label)
    ubm = getattr(clf, "ubm_", None)
    out = [] if ubm is None else [("UBM", ubm.weights_, ubm.means_, ubm.variances_)]
    if has_class_mixtures(clf):
        out.append((label, clf.weights_[i], clf.means_[i], clf.variances_[i]))
    return [(n, w[w > 0], m[w > 0], v[w > 0]) for n, w, m, v in out]


def separating_dimension(bundle: Bundle) -> int:
    """The dimension where the classes' marginals differ most (largest Fisher ratio: the
    class means' variance over the mean class variance, from each class's mixture); for a
    model without class mixtures, where the UBM's components differ most (the same ratio
    over its components, weighted)."""
    clf = drawn(bundle)[0]
    if not has_class_mixtures(clf):
        u = clf.ubm_
        w = u.weights_[:, np.newaxis]  # (K, 1)
        mean = np.sum(w * u.means_, axis=0)
        ratio = np.sum(w * (u.means_ - mean) ** 2, axis=0) / np.maximum(
            np.sum(w * u.variances_, axis=0), 1e-300)  # fmt: skip
        return int(np.argmax(ratio))
    w = clf.weights_[..., np.newaxis]  # (C, K, 1)
    mean = np.sum(w * clf.means_, axis=1)  # (C, D)
    var = np.sum(w * (clf.variances_ + clf.means_**2), axis=1) - mean**2
    ratio = mean.var(axis=0) / np.maximum(var.mean(axis=0), 1e-300)
    return int(np.argmax(ratio))


def mixture_curves(weights: np.ndarray, means: np.ndarray, variances: np.ndarray,
                   x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Weighted component densities ``(K, n)`` and their sum ``(n,)`` at ``x`` (n,), from
    ``weights``, and one dimension's ``means`` and ``variances``, each (K,)."""
    w, m, v = (np.asarray(a, dtype=np.float64)[:, np.newaxis] for a in (weights, means, variances))
    comps = w * np.exp(-0.5 * (x - m) ** 2 / v) / np.sqrt(2 * np.pi * v)
    return comps, comps.sum(axis=0)


def mixture_figure(bundle: Bundle, label: str, dim: Optional[int] = None,
                   frames: Optional[np.ndarray] = None) -> Any:  # fmt: skip
    """A matplotlib figure of class ``label``'s mixture along dimension ``dim`` (0-based;
    default :func:`separating_dimension`), over the class's ``frames`` (n_frames, n_dims)
    as a density histogram if given. Its first axes hold, per mixture, dashed components
    and one solid line (the marginal density, label ``"<name> mixture"``)."""
    clf, config = drawn(bundle)
    d = separating_dimension(bundle) if dim is None else dim
    if not 0 <= d < config.n_dims:
        raise ParameterError(f"dim must be in [0, {config.n_dims - 1}] for this model, got {d}")
    mixtures = class_mixtures(bundle, label)
    lo = min(float(np.min(m[:, d] - 5 * np.sqrt(v[:, d]))) for _, _, m, v in mixtures)
    hi = max(float(np.max(m[:, d] + 5 * np.sqrt(v[:, d]))) for _, _, m, v in mixtures)
    # a fine grid under every component (narrow ones too), cut to where the mixtures hold
    # all but 5e-4 of their mass (a few wide tails would squash the picture)
    x = np.unique(np.concatenate(
        [np.linspace(lo, hi, _N_POINTS)]
        + [np.linspace(mu - 5 * s, mu + 5 * s, 41) for _, _, m, v in mixtures
           for mu, s in zip(m[:, d], np.sqrt(v[:, d]))]
    ))  # fmt: skip
    keep = np.zeros(x.size, dtype=bool)
    for _, w, m, v in mixtures:
        total = mixture_curves(w, m[:, d], v[:, d], x)[1]
        cdf = np.concatenate([[0.0], np.cumsum(np.diff(x) * (total[1:] + total[:-1]) / 2)])
        keep |= (cdf >= _TAIL * cdf[-1]) & (cdf <= (1 - _TAIL) * cdf[-1])
    i, j = np.flatnonzero(keep)[[0, -1]]
    x = x[max(i - 1, 0) : j + 2]
    lo, hi = float(x[0]), float(x[-1])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    if frames is not None and len(frames):
        col = frames[:, d]
        ax.hist(col[(col >= lo) & (col <= hi)], bins=60, range=(lo, hi), density=True,
                color="0.85", label=f"{label} frames ({len(col)})")  # fmt: skip
    for j, (name, w, m, v) in enumerate(mixtures):
        comps, total = mixture_curves(w, m[:, d], v[:, d], x)
        for c in comps:
            ax.plot(x, c, "--", color=f"C{j}", lw=0.8, alpha=0.7)
        ax.plot(x, total, "-", color=f"C{j}", lw=2, label=f"{name} mixture ({len(w)} components)")
    name, unit = config.dimension_names()[d]
    ax.set(xlabel=f"{name} ({unit})", ylabel=f"density (per {unit})")
    what = f"class {label!r}" if has_class_mixtures(clf) else "UBM (the classes have no mixtures)"
    ax.set_title(f"{what}, dimension {d}: components dashed, mixture solid", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
