"""`audiogmm info` describes every model file audiogmm writes, with re-seed counts."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from audiogmm import DiagGMM, GMMClassifier
from audiogmm.cli import main
from audiogmm.io import save


def run(args, code=0):
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == code, r.output
    return r.output


def test_info_reads_a_diaggmm_file(tmp_path):
    X = np.random.default_rng(0).normal(size=(400, 3))
    save(DiagGMM(2, random_state=0).fit(X), tmp_path / "g.npz")
    out = run(["info", tmp_path / "g.npz"])
    assert "one DiagGMM" in out and "2 diagonal components x 3 dims" in out
    assert "400 frames" in out and "0 re-seeded" in out
    info = json.loads(run(["info", tmp_path / "g.npz", "--json"]))
    assert info["kind"] == "DiagGMM" and info["n_components"] == 2
    assert info["training"]["n_frames"] == 400


def test_info_reads_a_bare_classifier_and_shows_reseeds(tmp_path):
    rng = np.random.default_rng(1)
    clips = [rng.normal(0, 1, (300, 2)), rng.normal(5, 1, (300, 2))]
    clf = GMMClassifier(2, max_iter=20).fit(clips, ["a", "b"])
    clf.save(tmp_path / "c.npz")
    out = run(["info", tmp_path / "c.npz"])
    assert "features:      none stored" in out
    n_reseeded = clf.fit_report_["a"]["n_reseeded"]
    assert f"{n_reseeded} re-seeded" in out
    info = json.loads(run(["info", tmp_path / "c.npz", "--json"]))
    assert info["kind"] == "GMMClassifier" and info["feature_config"] is None
    assert info["labels"] == ["a", "b"]


def test_info_still_refuses_what_is_no_model(tmp_path):
    (tmp_path / "x.npz").write_bytes(b"not a model")
    r = CliRunner().invoke(main, ["info", str(tmp_path / "x.npz")])
    assert r.exit_code == 1 and r.output.startswith("Error: ") and "x.npz" in r.output


def test_info_escapes_a_diaggmm_file_name_as_for_a_classifier(tmp_path):
    """One file is one line: a newline in a DiagGMM's name was printed raw."""
    X = np.random.default_rng(0).normal(size=(200, 2))
    path = tmp_path / "new\nline.npz"
    save(DiagGMM(1, random_state=0).fit(X), path)
    first = run(["info", path]).splitlines()[0]
    assert first.startswith("file:") and first.endswith("new\\nline.npz")
