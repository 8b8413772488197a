"""Figures: a fitted mixture along one feature dimension (components dashed, the marginal
density solid, frames as a density histogram, a UBM/MAP model's UBM under the class), and
:func:`pyplot`, matplotlib imported on first use for every report."""

from __future__ import annotations

import io
import logging
from typing import Any, Optional

import numpy as np

from ..exceptions import ParameterError
from .bundle import Bundle

__all__ = ["class_mixtures", "figure_png", "mixture_curves", "mixture_figure", "pyplot",
           "separating_dimension"]  # fmt: skip

logger = logging.getLogger(__name__)

_N_POINTS = 801  # samples of each curve across the plotted range
_TAIL = 2.5e-4  # mass of each mixture left out of the plotted range on each side


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
    """The figure as PNG bytes (and closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    pyplot().close(fig)
    return buf.getvalue()


def _classifier(bundle: Bundle) -> Any:
    """The classifier whose mixtures are drawn (a fused model's first member)."""
    return bundle.classifier.members[0] if bundle.fused else bundle.classifier


def class_mixtures(
    bundle: Bundle, label: str
) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """``(name, weights (K,), means (K, D), variances (K, D))`` to draw for ``label``: the
    UBM first for a UBM/MAP model, then the class's mixture, without weight-0 components
    (padding). ParameterError listing the classes when ``label`` is not one."""
    clf = _classifier(bundle)
    labels = [str(y) for y in clf.labels_]
    if label not in labels:
        raise ParameterError(f"no class {label!r} in the model; classes: {', '.join(labels)}")
    i = labels.index(label)
    ubm = getattr(clf, "ubm_", None)
    out = [] if ubm is None else [("UBM", ubm.weights_, ubm.means_, ubm.variances_)]
    out.append((label, clf.weights_[i], clf.means_[i], clf.variances_[i]))
    return [(n, w[w > 0], m[w > 0], v[w > 0]) for n, w, m, v in out]


def separating_dimension(bundle: Bundle) -> int:
    """The dimension where the classes' marginals differ most (largest Fisher ratio: the
    class means' variance over the mean class variance, from each class's mixture)."""
    clf = _classifier(bundle)
    w = clf.weights_[..., np.newaxis]  # (C, K, 1)
    mean = np.sum(w * clf.means_, axis=1)  # (C, D)
    var = np.sum(w * (clf.variances_ + clf.means_**2), axis=1) - mean**2
    ratio = mean.var(axis=0) / np.maximum(var.mean(axis=0), 1e-300)
    return int(np.argmax(ratio))


def mixture_curves(
    weights: np.ndarray, means: np.ndarray, variances: np.ndarray, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted component densities ``(K, n)`` and their sum ``(n,)`` at ``x`` (n,), from
    ``weights``, and one dimension's ``means`` and ``variances``, each (K,)."""
    w, m, v = (np.asarray(a, dtype=np.float64)[:, np.newaxis] for a in (weights, means, variances))
    comps = w * np.exp(-0.5 * (x - m) ** 2 / v) / np.sqrt(2 * np.pi * v)
    return comps, comps.sum(axis=0)


def mixture_figure(
    bundle: Bundle, label: str, dim: Optional[int] = None, frames: Optional[np.ndarray] = None
) -> Any:
    """A matplotlib figure of class ``label``'s mixture along dimension ``dim`` (0-based;
    default :func:`separating_dimension`), over the class's ``frames`` (n_frames, n_dims)
    as a density histogram if given. Its first axes hold, per mixture, dashed components
    and one solid line (the marginal density, label ``"<name> mixture"``).
    """
    config = bundle.configs[0]
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
    ax.set_title(f"class {label!r}, dimension {d}: components dashed, mixture solid", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
