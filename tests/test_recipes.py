"""Each recipe end to end on the bundled real audio, with the accuracy it must reach."""

import importlib.util
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]


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
    r = CliRunner().invoke(recipe.main, ["--exp", str(exp)], catch_exceptions=False)
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
    ):
        assert (exp / f).exists(), f
    # stages talk through files: re-running only the last two reuses everything else
    r = CliRunner().invoke(recipe.main, ["--exp", str(exp), "--stage", "3"], catch_exceptions=False)
    assert r.exit_code == 0 and "[stage 0]" not in r.output and "ACCURACY" in r.output
