"""Each recipe end to end on the bundled real audio, with the accuracy it must reach; the stage guard."""

import importlib.util
import json
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "recipes"))  # as when a recipe runs as a script

from _stages import Stages  # noqa: E402


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "recipes" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
@pytest.mark.parametrize("name, minimum", [("speaker_id", 0.95), ("sound_classes", 0.85)])
def test_recipe_reaches_accuracy(name, minimum, tmp_path):
    recipe = _load(name)
    exp = tmp_path / "exp"
    r = CliRunner().invoke(recipe.main, ["--exp", str(exp), "-j", "2"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    for stage in range(5):
        assert f"[stage {stage}]" in r.output
    res = json.loads((exp / "results.json").read_text())
    assert res["accuracy"] >= minimum, res["confusion"]
    assert res["n"] >= 30 and res["skipped"] == []
    for f in (
        "cmd.txt",
        "settings.json",
        "records.csv",
        "model.npz",
        "report/metrics.json",
        "report/confusion.txt",
        "report/training_curves.json",
    ):
        assert (exp / f).exists(), f
    # stages talk through files: re-running only the last two reuses everything else
    r = CliRunner().invoke(recipe.main, ["--exp", str(exp), "--stage", "3"], catch_exceptions=False)
    assert r.exit_code == 0 and "[stage 0]" not in r.output and "ACCURACY" in r.output
    # ... but not with other settings: the model was trained with K=16 (sounds: ml), or a
    # UBM of 64 (speakers: the default backend, gsv)
    r = CliRunner().invoke(recipe.main, ["--exp", str(exp), "--stage", "3", "-k", "4"])
    k = 64 if name == "speaker_id" else 16
    assert r.exit_code == 2 and f"components: {k} -> 4" in r.output and "--force" in r.output
    r = CliRunner().invoke(recipe.main, ["--exp", str(exp), "--stage", "7"])
    assert r.exit_code == 2 and "--stage" in r.output


def _stages(tmp_path, **kw):
    return Stages(str(tmp_path), ["a", "b", "c"], log=kw.pop("log", lambda m: None), **kw)


def test_stage_guard_runs_only_the_asked_range(tmp_path):
    lines = []
    st = _stages(tmp_path, stage=1, stop_stage=1, settings={"k": 1}, log=lines.append)
    ran = [n for n in range(3) if st(n) and (st.done("ok") or True)]
    assert ran == [1] and lines[0] == "[stage 1] b ..." and lines[1].startswith("[stage 1] b: ok (")
    assert json.loads((tmp_path / "settings.json").read_text()) == {"k": 1}
    assert (tmp_path / "cmd.txt").exists()


@pytest.mark.parametrize("stage, stop", [(-1, None), (3, None), (2, 1), (0, 3)])
def test_stage_guard_refuses_bad_ranges(tmp_path, stage, stop):
    with pytest.raises(click.BadParameter):
        _stages(tmp_path, stage=stage, stop_stage=stop, settings={})


def test_stage_guard_names_the_setting_that_differs(tmp_path):
    _stages(tmp_path, settings={"k": 16, "seed": 0})
    with pytest.raises(click.UsageError, match="k: 16 -> 4"):
        _stages(tmp_path, stage=1, settings={"k": 4, "seed": 0})
    _stages(tmp_path, stage=1, settings={"k": 4, "seed": 0}, force=True)  # reuse on purpose
    _stages(tmp_path, stage=0, settings={"k": 8, "seed": 0})  # starting over is always fine


@pytest.mark.parametrize("backend, k", [("ml", 16), ("map", 64)])
def test_speaker_recipe_k_means_what_train_k_means(backend, k, tmp_path):
    # -k left out is the backend's own default, as in `audiogmm train`: per class (ml), the
    # UBM's size (map); the recipe once trained a 16-component UBM where the CLI trains 64
    from audiogmm.models import BACKENDS, default_components

    recipe = _load("speaker_id")
    assert default_components(backend) == k
    assert {default_components(b) for b in BACKENDS} >= {16, 64}
    r = CliRunner().invoke(recipe.main, ["--exp", str(tmp_path), "--backend", backend,
                                         "--stop-stage", "0"], catch_exceptions=False)  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "settings.json").read_text())["components"] == k


def test_speaker_recipe_trains_a_fusion_of_backends_as_train_does(tmp_path):
    """--backend gsv+ml --preset speaker+general: the model `audiogmm train` makes with the
    same options (one fitting path), evaluated by the recipe; -k refused as by train."""
    import numpy as np

    from audiogmm.cli import main as cli

    recipe = _load("speaker_id")
    args = ["--backend", "gsv+ml", "--preset", "speaker+general"]
    r = CliRunner().invoke(recipe.main, ["--exp", str(tmp_path / "exp"), "-j", "2", *args],
                           catch_exceptions=False)  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "a fusion of gsv (speaker, weight" in r.output
    assert json.loads((tmp_path / "exp" / "results.json").read_text())["accuracy"] >= 0.95
    data = str(ROOT / "data_samples" / "speakers")
    r = CliRunner().invoke(cli, ["train", data, "-o", str(tmp_path / "m.npz"), *args])
    assert r.exit_code == 0, r.output
    a, b = np.load(tmp_path / "exp" / "model.npz"), np.load(tmp_path / "m.npz")
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
        if k != "__header__":
            np.testing.assert_array_equal(a[k], b[k])
    r = CliRunner().invoke(recipe.main, ["--exp", str(tmp_path / "e2"), *args, "-k", "8"])
    assert r.exit_code == 2 and "-k sets up a single model" in r.output
