"""``audiogmm plot`` and the mixture figures of ``evaluate --report``."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from audiogmm.cli import main
from audiogmm.exceptions import ParameterError
from audiogmm.features import FeatureConfig
from audiogmm.models import GMMClassifier
from audiogmm.pipeline import load_model
from audiogmm.pipeline.classify import Bundle
from audiogmm.pipeline.report import mixture_curves, mixture_figure, separating_dimension

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOUNDS = os.path.join(ROOT, "data_samples", "sounds")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """An ML and a MAP model of data_samples/sounds."""
    d = tmp_path_factory.mktemp("plot")
    out = {}
    for backend, extra in (("ml", ["-k", "4"]), ("map", ["--ubm-components", "8"])):
        out[backend] = str(d / f"{backend}.npz")
        r = CliRunner().invoke(main, ["-q", "train", SOUNDS, "-o", out[backend], "--backend",
                                      backend, "-j", "1", "--max-iter", "10", *extra])  # fmt: skip
        assert r.exit_code == 0, r.output
    return out


def _solid_and_dashed(fig):
    ax = fig.axes[0]
    solid = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    return solid, dashed


@pytest.mark.parametrize("backend", ["ml", "map"])
def test_the_mixture_curve_integrates_to_one_over_the_plotted_range(models, backend):
    bundle = load_model(models[backend])
    for label in ("piano", "kick"):
        for dim in (0, 5, 14, None):
            fig = mixture_figure(bundle, label, dim)
            solid, dashed = _solid_and_dashed(fig)
            assert len(solid) == (2 if backend == "map" else 1)  # the UBM with the class
            for ln in solid:
                x, y = ln.get_data()
                assert abs(np.trapezoid(y, x) - 1.0) <= 0.01
            # the dashed components are the weighted Gaussians: they add up to the solid line
            w = sum(np.trapezoid(ln.get_data()[1], ln.get_data()[0]) for ln in dashed)
            assert abs(w - len(solid)) <= 0.01 * len(solid)
            fig.clf()


def test_curves_of_a_known_mixture():
    x = np.linspace(-20, 20, 4001)
    comps, total = mixture_curves(
        np.array([0.25, 0.75]), np.array([-2.0, 3.0]), np.array([1.0, 4.0]), x
    )
    assert comps.shape == (2, 4001)
    assert np.isclose(
        total[2000],
        0.25 * np.exp(-2) / np.sqrt(2 * np.pi) + 0.75 * np.exp(-9 / 8) / np.sqrt(8 * np.pi),
    )
    assert np.isclose(np.trapezoid(comps[1], x), 0.75, atol=1e-4)


def test_default_dimension_is_where_the_classes_differ_most():
    rng = np.random.default_rng(0)
    config = FeatureConfig(n_mfcc=5, delta_order=0)
    clips, labels = [], []
    for i, y in enumerate("abc"):
        X = rng.normal(0, 1, (400, 5))
        X[:, 3] += 4 * i  # the classes differ along dimension 3 only
        X[:, 1] *= 3  # a wide dimension that does not separate them
        clips.append(X.astype(np.float32))
        labels.append(y)
    clf = GMMClassifier(2, max_iter=50).fit(clips, labels)
    assert separating_dimension(Bundle(clf, config)) == 3
    fig = mixture_figure(Bundle(clf, config), "b", frames=clips[1])
    assert fig.axes[0].get_xlabel() == "MFCC 3 (dB)"


def test_cli_plot_writes_a_png_with_named_axes(models, tmp_path):
    out = tmp_path / "fig.png"
    r = CliRunner().invoke(main, ["plot", models["map"], SOUNDS, "--class", "piano", "--dim", "14",
                                  "-o", str(out)])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert out.read_bytes().startswith(PNG)
    assert "dimension 14 (Δ MFCC 1, dB per frame)" in r.output
    r = CliRunner().invoke(main, ["plot", models["ml"], "-o", str(out)])
    assert r.exit_code == 0 and "class 'crash'" in r.output  # the first class, its best dim


@pytest.mark.parametrize(
    "args, match",
    [(["--class", "banjo"], "no class 'banjo' in the model; classes: crash"),
     (["--dim", "26"], r"dim must be in \[0, 25\]")],
)  # fmt: skip
def test_cli_plot_errors_are_one_line(models, tmp_path, args, match):
    r = CliRunner().invoke(main, ["plot", models["ml"], *args, "-o", str(tmp_path / "f.png")])
    assert r.exit_code == 1
    assert len(r.output.strip().splitlines()) == 1
    with pytest.raises(ParameterError, match=match):
        mixture_figure(
            load_model(models["ml"]), *(("banjo", None) if args[0] == "--class" else ("piano", 26))
        )


def test_without_matplotlib_plot_says_so(models, tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m.split(".")[0] == "matplotlib"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    r = CliRunner().invoke(main, ["plot", models["ml"], "-o", str(tmp_path / "f.png")])
    assert r.exit_code == 1 and "needs matplotlib" in r.output
    assert not (tmp_path / "f.png").exists()


def test_evaluate_report_draws_one_mixture_per_class(models, tmp_path):
    r = CliRunner().invoke(main, ["-q", "evaluate", models["ml"], SOUNDS, "-j", "1",
                                  "--report", str(tmp_path / "rep")])  # fmt: skip
    assert r.exit_code == 0, r.output
    pngs = sorted(p.name for p in (tmp_path / "rep").glob("mixture_*.png"))
    assert len(pngs) == 9 and pngs[0] == "mixture_00_crash.png"
    assert all((tmp_path / "rep" / p).read_bytes().startswith(PNG) for p in pngs)


@pytest.fixture(scope="module")
def vector_models(tmp_path_factory):
    """A gsv and an ivector model (no class mixtures: their UBM is drawn), and a fusion of gsv
    (speaker front end, first) with ml (general), of data_samples/sounds."""
    d = tmp_path_factory.mktemp("plot-vectors")
    out = {}
    for name, extra in (("gsv", ["--backend", "gsv", "-k", "8"]),
                        ("ivector", ["--backend", "ivector", "-k", "8"]),
                        ("fused", ["--backend", "gsv+ml", "--preset", "speaker+general"])):
        out[name] = str(d / f"{name}.npz")
        r = CliRunner().invoke(main, ["-q", "train", SOUNDS, "-o", out[name], "-j", "1", *extra])
        assert r.exit_code == 0, r.output
    return out


@pytest.mark.parametrize("name", ["gsv", "ivector"])
def test_a_model_without_class_mixtures_draws_its_ubm(vector_models, name, tmp_path):
    """They crashed `plot` and `evaluate --report` (AttributeError: no weights_)."""
    from audiogmm.pipeline.report import class_mixtures

    bundle = load_model(vector_models[name])
    got = class_mixtures(bundle, "kick")
    u = bundle.classifier.ubm_
    assert [n for n, *_ in got] == ["UBM"] and np.array_equal(got[0][2], u.means_[u.weights_ > 0])
    # the default dimension: where the UBM's components differ most (brute force)
    w = u.weights_ / u.weights_.sum()
    ratio = [np.cov(u.means_[:, j], aweights=w, bias=True) / (w @ u.variances_[:, j])
             for j in range(u.means_.shape[1])]  # fmt: skip
    assert separating_dimension(bundle) == int(np.argmax(ratio))
    r = CliRunner().invoke(main, ["plot", vector_models[name], SOUNDS, "--class", "kick",
                                  "-o", str(tmp_path / "u.png")])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert (tmp_path / "u.png").read_bytes().startswith(PNG)
    r = CliRunner().invoke(main, ["-q", "evaluate", vector_models[name], SOUNDS, "-j", "1",
                                  "--report", str(tmp_path / "rep")])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "rep").glob("mixture_*.png")) == ["mixture_ubm.png"]


def test_a_fusion_draws_its_first_member_with_class_mixtures_on_its_front_end(vector_models,
                                                                               tmp_path):  # fmt: skip
    from audiogmm.features import PRESETS
    from audiogmm.pipeline.report import drawn

    bundle = load_model(vector_models["fused"])
    clf, config = drawn(bundle)
    assert clf is bundle.classifier.members[1] and config == PRESETS["general"]
    r = CliRunner().invoke(main, ["plot", vector_models["fused"], SOUNDS, "--class", "kick",
                                  "--dim", "13", "-o", str(tmp_path / "f.png")])  # fmt: skip
    assert r.exit_code == 0, r.output
    name = PRESETS["general"].dimension_names()[13][0]  # the ml member's front end, not gsv's
    assert name != PRESETS["speaker"].dimension_names()[13][0] and f"({name}," in r.output
    r = CliRunner().invoke(main, ["-q", "evaluate", vector_models["fused"], SOUNDS, "-j", "1",
                                  "--report", str(tmp_path / "rep")])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "rep").glob("mixture_*.png"))) == 9
