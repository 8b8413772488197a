"""Reviewer metrics (Wilson interval, balanced accuracy, macro-F1, per-class) and the report files."""

import json
import math
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audiogmm import ParameterError
from audiogmm.pipeline.report import format_metrics, write_report
from audiogmm.scoring.metrics import macro_f1, summary, wilson_interval

LABELS = ["a", "b", "c", "d"]


def _wilson_closed_form(k, n, z=1.959963984540054):
    p = k / n
    centre = (k + z * z / 2) / (n + z * z)
    half = z * math.sqrt(n) / (n + z * z) * math.sqrt(p * (1 - p) + z * z / (4 * n))
    return centre - half, centre + half


@settings(deadline=None)  # the first call imports scipy.stats
@given(st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_matches_the_closed_form_and_scipy(kn):
    from scipy.stats import binomtest

    k, n = kn
    lo, hi = wilson_interval(k, n)
    ref = _wilson_closed_form(k, n)
    assert lo == pytest.approx(max(ref[0], 0.0), abs=1e-12)
    assert hi == pytest.approx(min(ref[1], 1.0), abs=1e-12)
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert (lo, hi) == pytest.approx((ci.low, ci.high), abs=1e-9)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_wilson_known_values_and_edges():
    # Newcombe (1998), Stat. Med. 17:857, the score method's published intervals
    for (k, n), ref in {
        (81, 263): (0.2553, 0.3662),
        (15, 148): (0.0624, 0.1605),
        (0, 20): (0.0, 0.1611),
        (1, 29): (0.0061, 0.1718),
    }.items():
        assert wilson_interval(k, n) == pytest.approx(ref, abs=5e-5)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    for k, n in [(-1, 3), (4, 3), (0, -1)]:
        with pytest.raises(ParameterError, match="0 <= k <= n"):
            wilson_interval(k, n)


_labelled = st.lists(
    st.tuples(st.sampled_from(LABELS[:3]), st.sampled_from(LABELS)), min_size=1, max_size=60
)


@settings(max_examples=60, deadline=None)  # sklearn calls; a shared machine
@given(_labelled)
def test_summary_against_sklearn(pairs):
    from sklearn.metrics import (
        balanced_accuracy_score,
        f1_score,
        precision_recall_fscore_support,
    )

    t, p = [a for a, _ in pairs], [b for _, b in pairs]
    # the model knows class "d" and "e"; "e" is never true nor predicted
    s = summary(t, p, labels=sorted(set(LABELS) | {"e"}))
    assert s["n"] == len(t) and s["n_correct"] == sum(a == b for a, b in pairs)
    assert s["accuracy_ci95"] == list(wilson_interval(s["n_correct"], s["n"]))
    with warnings.catch_warnings():  # sklearn warns about ill-defined or unseen classes
        warnings.simplefilter("ignore")
        bal = balanced_accuracy_score(t, p)
        mf1 = f1_score(t, p, average="macro", zero_division=0)
        L = sorted(set(t) | set(p))
        pr, rc, f1, sup = precision_recall_fscore_support(t, p, labels=L, zero_division=0)
    assert s["balanced_accuracy"] == pytest.approx(bal)
    assert s["macro_f1"] == pytest.approx(mf1)
    for i, y in enumerate(L):
        got = s["per_class"][y]
        assert (got["precision"], got["recall"], got["f1"], got["support"]) == pytest.approx(
            (pr[i], rc[i], f1[i], sup[i])
        )


def test_macro_f1_counts_predicted_only_classes_as_zero():
    # "b" is predicted but never true: F1(b) = 0 pulls the mean down (as sklearn does)
    s = summary(["a", "a"], ["a", "b"])
    assert s["per_class"]["a"]["f1"] == pytest.approx(2 / 3)
    assert s["macro_f1"] == pytest.approx(1 / 3)
    assert s["balanced_accuracy"] == pytest.approx(0.5)
    assert math.isnan(macro_f1([], np.zeros((0, 0), int)))


def _metrics():
    s = summary(["a", "b", "b", "b"], ["a", "b", "a", "b"])
    s["skipped"] = []
    return s


def test_metrics_json_and_text(tmp_path):
    files = write_report(tmp_path / "rep", _metrics(), plot=False)
    names = sorted(Path(p).name for p in files)
    assert names == ["confusion.txt", "metrics.json", "metrics.txt"]
    m = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    for key in ("accuracy", "accuracy_ci95", "balanced_accuracy", "macro_f1", "n_correct"):
        assert key in m
    assert m["per_class"]["b"]["recall"] == pytest.approx(2 / 3)
    text = (tmp_path / "rep" / "metrics.txt").read_text()
    assert text == format_metrics(m)
    lo, hi = wilson_interval(3, 4)
    assert f"75.00% (3/4; 95% Wilson interval {100 * lo:.2f}% to {100 * hi:.2f}%)" in text
    assert "balanced accuracy: 83.33%" in text and "macro-F1:" in text
    assert re.search(r"^b +66\.7% +100\.0% +80\.0% +3$", text, re.M)


def test_confusion_figure_is_row_normalised_with_colour_bar_and_counts():
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    from audiogmm.pipeline.report import _confusion_figure

    C = np.array([[1, 0, 0], [1, 2, 0], [0, 0, 0]])
    fig = _confusion_figure(plt, ["a", "b", "c"], C, 0.75)
    try:
        ax, cbar = fig.axes  # the matrix and its colour bar
        img = ax.get_images()[0]
        np.testing.assert_allclose(img.get_array(), [[1, 0, 0], [1 / 3, 2 / 3, 0], [0, 0, 0]])
        assert img.get_clim() == (0.0, 1.0)
        assert "share" in cbar.get_ylabel()
        cells = sorted((t.get_position(), t.get_text()) for t in ax.texts)
        assert cells == [((0, 0), "1"), ((0, 1), "1"), ((1, 1), "2")]
    finally:
        plt.close(fig)


def test_png_written_when_matplotlib_is_there(tmp_path):
    pytest.importorskip("matplotlib")
    write_report(tmp_path, _metrics())
    assert (tmp_path / "confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_missing_matplotlib_is_said_in_normal_output(tmp_path):
    """A fresh CLI process where importing matplotlib fails: the report says so at -v 0."""
    root = Path(__file__).resolve().parents[1]
    data = root / "data_samples" / "speakers"
    model = tmp_path / "m.npz"
    code = "import sys; sys.modules['matplotlib'] = None\nfrom audiogmm.cli import main; main()"
    env = {"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-c", code, *map(str, args)],
            capture_output=True, text=True, env=env, cwd=tmp_path,
        )  # fmt: skip

    r = cli("-q", "train", data, "-o", model, "-k", "1", "-j", "1", "--max-iter", "2")
    assert r.returncode == 0, r.stderr
    r = cli("evaluate", model, data, "-j", "1", "--report", tmp_path / "rep")
    assert r.returncode == 0, r.stderr
    assert "matplotlib is not installed, so confusion.png was not written" in r.stderr
    assert not (tmp_path / "rep" / "confusion.png").exists()
    assert (tmp_path / "rep" / "metrics.json").exists()
    assert "95% Wilson interval" in r.stdout and "macro-F1" in r.stdout


def test_evaluate_json_has_the_new_metrics(tmp_path):
    from click.testing import CliRunner

    from audiogmm.cli import main

    data = Path(__file__).resolve().parents[1] / "data_samples" / "speakers"
    model = tmp_path / "m.npz"
    runner = CliRunner()
    r = runner.invoke(main, ["-q", "train", str(data), "-o", str(model), "-k", "1", "-j", "1"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["-q", "evaluate", str(model), str(data), "-j", "1", "--json"])
    assert r.exit_code == 0, r.output
    ev = json.loads(r.stdout)
    lo, hi = ev["accuracy_ci95"]
    assert lo <= ev["accuracy"] <= hi
    assert ev["n_correct"] == round(ev["accuracy"] * ev["n"])
    assert 0 <= ev["balanced_accuracy"] <= 1 and 0 <= ev["macro_f1"] <= 1
    assert all({"precision", "recall", "f1", "support"} <= set(v) for v in ev["per_class"].values())
