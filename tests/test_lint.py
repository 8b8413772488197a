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
    # imports it (tests/test_sklearn_faces.py checks that `import audiogmm` stays clean)
    for path in (ROOT / "audiogmm").rglob("*.py"):
        if path == ROOT / "audiogmm" / "sklearn.py":
            continue
        text = path.read_text()
        assert "import sklearn" not in text and "from sklearn" not in text, path
