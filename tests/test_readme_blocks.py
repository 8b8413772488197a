"""Every ```python block of README.md runs, in order, on data_samples/ (issue #14, item 4).

The blocks read as one session, as a reader types them: a later block may use the
names an earlier one defined. They run in a temporary folder where ``data_samples``
is a link to the bundled audio, so the files they write land there.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def readme_blocks() -> list[tuple[int, str]]:
    """(first line number, code) of each python block in README.md."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in BLOCK.finditer(text)]


def test_readme_has_python_blocks():
    assert len(readme_blocks()) >= 2


@pytest.mark.slow
def test_readme_python_blocks_run(tmp_path, monkeypatch):
    os.symlink(ROOT / "data_samples", tmp_path / "data_samples")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "readme"}
    for line, code in readme_blocks():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. ConvergenceWarning on the tiny samples
            try:
                exec(compile(code, f"README.md:{line}", "exec"), namespace)
            except Exception as e:
                pytest.fail(f"the README block at line {line} fails: {type(e).__name__}: {e}")
