"""Per-class training curves (mean log-likelihood per EM iteration) in the report folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from audiogmm.cli import main
from audiogmm.models import GMMClassifier
from audiogmm.pipeline import load_model
from audiogmm.pipeline.report import write_report
from audiogmm.scoring import summary

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def fitted(tmp_path):
    rng = np.random.default_rng(0)
    clips = [rng.normal(m, 1, (300, 2)) for m in (0, 0, 4, 4)]
    return GMMClassifier(3, max_iter=15).fit(clips, ["a", "a", "b", "b"])


def test_histories_travel_in_the_model_file(tmp_path):
    clf = fitted(tmp_path)
    for y in ("a", "b"):
        assert clf.fit_report_[y]["history"] == clf.models_[y].history_
        assert len(clf.fit_report_[y]["history"]) == clf.fit_report_[y]["n_iter"] + 1
    clf.save(tmp_path / "m.npz")
    back = GMMClassifier.load(tmp_path / "m.npz")
    assert back.fit_report_["a"]["history"] == clf.fit_report_["a"]["history"]


def test_write_report_adds_the_curves(tmp_path):
    clf = fitted(tmp_path)
    metrics = summary(["a", "b"], ["a", "b"])
    files = write_report(tmp_path / "rep", metrics, training=clf.fit_report_)
    names = sorted(Path(f).name for f in files)
    assert "training_curves.json" in names and "training_curves.png" in names
    curves = json.loads((tmp_path / "rep" / "training_curves.json").read_text())
    assert curves == {y: clf.models_[y].history_ for y in ("a", "b")}
    assert all(np.all(np.diff(h) >= -1e-9) for h in curves.values())  # EM never goes down
    assert (tmp_path / "rep" / "training_curves.png").read_bytes().startswith(PNG)
    # without histories (an older model file) nothing extra is written, and nothing fails
    old = {y: {k: v for k, v in r.items() if k != "history"} for y, r in clf.fit_report_.items()}
    files = write_report(tmp_path / "rep2", metrics, training=old)
    assert not any("training_curves" in f for f in files)


@pytest.mark.parametrize("backend, curves", [("ml", ["ast_en", "flite_awb"]), (None, ["(UBM)"]),
                                             ("map", ["(UBM)"])])
def test_cli_evaluate_report_has_training_curves(tmp_path, backend, curves):
    # the default backend (gsv) and map: the UBM's EM curve, stored in the model file
    data = tmp_path / "d"
    for spk in ("ast_en", "flite_awb"):
        (data / spk).mkdir(parents=True)
        for f in sorted((ROOT / "data_samples" / "speakers" / spk).glob("*.flac"))[:4]:
            shutil.copy(f, data / spk / f.name)
    model, rep = tmp_path / "m.npz", tmp_path / "rep"
    for args in (
        ["train", data, "-o", model, "-k", "2", "--jobs", "1",
         *(["--backend", backend] if backend else [])],
        ["evaluate", model, data, "--jobs", "1", "--report", rep],
    ):
        r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
        assert r.exit_code == 0, r.output
    got = json.loads((rep / "training_curves.json").read_text())
    assert sorted(got) == curves
    assert all(len(h) >= 2 and np.all(np.diff(h) >= -1e-9) for h in got.values())
    info = CliRunner().invoke(main, ["info", str(model)]).output
    assert ("UBM fit:" in info) == (backend != "ml")
    if backend != "ml":
        ubm = load_model(model).classifier.ubm_report_
        assert got["(UBM)"] == ubm["history"] and "seconds" not in ubm  # the same bytes anywhere
        assert f"{ubm['n_frames']} frames, {ubm['n_iter']} it" in info
    assert (rep / "training_curves.png").read_bytes().startswith(PNG)
