import json

import numpy as np
import pytest

from audiogmm import ParameterError
from audiogmm.pipeline.report import write_report
from audiogmm.scoring.metrics import accuracy, confusion_matrix, summary


def test_metrics_against_sklearn():
    from sklearn.metrics import confusion_matrix as skcm
    from sklearn.metrics import precision_recall_fscore_support

    rng = np.random.default_rng(0)
    labs = ["a", "b", "c", "d"]
    t = list(rng.choice(labs, 200))
    p = [y if rng.random() < 0.7 else rng.choice(labs) for y in t]
    L, C = confusion_matrix(t, p)
    np.testing.assert_array_equal(C, skcm(t, p, labels=L))
    s = summary(t, p)
    pr, rc, f1, sup = precision_recall_fscore_support(t, p, labels=L, zero_division=0)
    for i, y in enumerate(L):
        assert s["per_class"][y]["precision"] == pytest.approx(pr[i])
        assert s["per_class"][y]["recall"] == pytest.approx(rc[i])
        assert s["per_class"][y]["f1"] == pytest.approx(f1[i])
    assert s["accuracy"] == pytest.approx(np.mean(np.array(t) == np.array(p)))
    with pytest.raises(ParameterError):
        accuracy(["a"], [])


def test_report_files(tmp_path):
    s = summary(["a", "b", "b"], ["a", "b", "a"])
    s["skipped"] = [{"path": "x.wav", "reason": "empty file"}]
    files = write_report(tmp_path / "rep", s)
    names = sorted(p.rsplit("/", 1)[1] for p in files)
    assert "metrics.json" in names and "confusion.txt" in names
    m = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert m["confusion"]["matrix"] == [[1, 0], [1, 1]] and m["skipped"][0]["path"] == "x.wav"
    assert "true \\ predicted" in (tmp_path / "rep" / "confusion.txt").read_text()
    pytest.importorskip("matplotlib")
    assert (tmp_path / "rep" / "confusion.png").read_bytes()[:4] == b"\x89PNG"
