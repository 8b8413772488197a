"""Experiment reports: ``metrics.json``, ``confusion.txt`` and (with matplotlib) ``confusion.png``."""

from __future__ import annotations

import io as _io
import json
import logging
import os
from typing import Any

import numpy as np

from ..container import atomic_write

__all__ = ["write_report", "format_confusion"]

logger = logging.getLogger(__name__)


def format_confusion(labels: list[str], matrix: list[list[int]] | np.ndarray) -> str:
    """The confusion matrix as aligned text: rows are true classes, columns predictions."""
    C = np.asarray(matrix)
    w = max([len(y) for y in labels] + [len(str(C.max() if C.size else 0)), 4])
    head = " " * (w + 2) + " ".join(f"{y[:w]:>{w}}" for y in labels)
    rows = [f"{y[:w]:>{w}}  " + " ".join(f"{v:>{w}d}" for v in C[i]) for i, y in enumerate(labels)]
    return "true \\ predicted\n" + "\n".join([head, *rows]) + "\n"


def write_report(
    folder: str | os.PathLike, metrics: dict[str, Any], *, plot: bool = True
) -> list[str]:
    """Write a report folder for one evaluation; every file is written atomically.

    Parameters
    ----------
    folder : path
        Created if needed.
    metrics : dict
        Output of :func:`audiogmm.metrics.summary`, optionally with extra keys
        (e.g. ``skipped``, timing); saved as ``metrics.json``.
    plot : bool
        Also write ``confusion.png`` when matplotlib is installed.

    Returns
    -------
    list of str
        The files written.
    """
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    written = []
    path = os.path.join(folder, "metrics.json")
    text = json.dumps(metrics, indent=2, sort_keys=True, default=str) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))
    written.append(path)
    labels, C = metrics["confusion"]["labels"], metrics["confusion"]["matrix"]
    path = os.path.join(folder, "confusion.txt")
    txt = format_confusion(labels, C)
    atomic_write(path, lambda f: f.write(txt.encode()))
    written.append(path)
    if plot:
        png = _plot_confusion(labels, np.asarray(C), metrics.get("accuracy"))
        if png is not None:
            path = os.path.join(folder, "confusion.png")
            atomic_write(path, lambda f: f.write(png))
            written.append(path)
    return written


def _plot_confusion(labels: list[str], C: np.ndarray, acc: float | None) -> bytes | None:
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        logger.info(
            "matplotlib is not installed; skipping confusion.png (pip install audiogmm[report])"
        )
        return None
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n, 0.8 + 0.5 * n), dpi=100)
    ax.imshow(C, cmap="Blues")
    ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = C.max() if C.size else 0
    for i in range(n):
        for j in range(n):
            if C[i, j]:
                color = "white" if C[i, j] > top / 2 else "black"
                ax.text(j, i, str(C[i, j]), ha="center", va="center", fontsize=7, color=color)
    if acc is not None:
        ax.set_title(f"accuracy {100 * acc:.1f}%")
    fig.tight_layout()
    buf = _io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
