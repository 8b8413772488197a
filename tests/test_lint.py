"""`ruff check` is part of the test suite."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_clean():
    ruff = shutil.which("ruff")
    cmd = [ruff] if ruff else [sys.executable, "-m", "ruff"]
    try:
        r = subprocess.run([*cmd, "check", "."], cwd=ROOT, capture_output=True, text=True)
    except FileNotFoundError:  # pragma: no cover
        pytest.fail("ruff is not installed; install the 'test' extra")
    assert r.returncode == 0, r.stdout + r.stderr


def test_library_never_imports_sklearn():
    # audiogmm/sklearn.py is the one opt-in face that needs the `sklearn` extra; nothing
    # imports it (tests/test_sklearn_faces.py checks that `import audiogmm` stays clean).
    # The gsv backend fits its logistic regression with scipy's L-BFGS-B, not scikit-learn.
    for path in (ROOT / "audiogmm").rglob("*.py"):
        if path == ROOT / "audiogmm" / "sklearn.py":
            continue
        lines = path.read_text().splitlines()
        uses = [ln for ln in lines if "import sklearn" in ln or "from sklearn" in ln]
        assert not uses, path
