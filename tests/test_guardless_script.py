"""A plain script with no ``if __name__ == "__main__":`` guard can call every entry point.

Library functions start no processes unless asked; a spawn/forkserver pool would
re-import ``__main__`` and run the script's body again (issue #14, item 1).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPEAKERS = ROOT / "data_samples" / "speakers"

SCRIPT = """\
import os
import warnings

import numpy as np

from audiogmm import DiagGMM, GMMClassifier
from audiogmm.data import RunOptions, extract_many, read_manifest
from audiogmm.pipeline import (
    evaluate_classifier, load_model, predict_files, save_model, train_classifier,
)
from audiogmm.features import FeatureConfig

with open(os.environ["RUNS_FILE"], "a") as f:
    f.write("body\\n")
warnings.simplefilter("ignore")
records = [r for r in read_manifest({data!r}) if r.label in ("ast_en", "flite_awb")]
train, test = records[::2], records[1::2]
opts = RunOptions(n_jobs=2)
res = extract_many([r.path for r in records], options=opts)
assert len(res.features) == len(records), res.skipped
clf, _ = train_classifier(train, options=opts, n_components=2, max_iter=5)
save_model("model.npz", clf, FeatureConfig())
bundle = load_model("model.npz")
metrics = evaluate_classifier(bundle, test, options=opts)
assert "accuracy" in str(metrics), metrics
pred = predict_files(bundle, [r.path for r in test], options=opts)
assert len(pred["results"]) == len(test)
X = np.concatenate(list(res.features.values()))
DiagGMM(4, max_iter=5, n_jobs=2).fit(X)
GMMClassifier(2, max_iter=5, n_jobs=2).fit(list(res.features.values())[:4], ["a", "a", "b", "b"])
print("SCRIPT OK")
"""


def _processes_with(token: str) -> list[int]:
    """Pids of live processes whose environment carries ``token``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if token.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:  # gone, or not ours
            continue
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_guardless_script_runs_once_and_leaves_no_processes(tmp_path):
    script = tmp_path / "plain.py"
    script.write_text(textwrap.dedent(SCRIPT.format(data=str(SPEAKERS))))
    runs = tmp_path / "runs.txt"
    token = f"AUDIOGMM_GUARDLESS_{uuid.uuid4().hex}"
    env = {
        **os.environ,
        "RUNS_FILE": str(runs),
        token: "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    r = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "SCRIPT OK" in r.stdout
    assert runs.read_text() == "body\n"  # the body ran once: no worker re-imported it
    assert "Traceback" not in r.stderr and "leaked" not in r.stderr, r.stderr[-3000:]
    assert _processes_with(token) == []
