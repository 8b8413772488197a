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
    for path in (ROOT / "audiogmm").rglob("*.py"):
        text = path.read_text()
        assert "import sklearn" not in text and "from sklearn" not in text, path
