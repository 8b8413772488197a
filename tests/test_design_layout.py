"""The README's Design section lists the package as it is: every module, and no other."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Modules the layout leaves out on purpose: package markers and the version/entry stubs.
UNLISTED = {"__main__.py", "_version.py", "__init__.py"}


def _listed() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    design = text.split("\n## Design\n", 1)[1].split("\n## ", 1)[0]
    block = design.split("\naudiogmm/\n", 1)[1].split("```", 1)[0]
    names: list[str] = []
    for line in block.splitlines():
        m = re.match(r"  (\S+\.py)\s", line + " ")
        if not m:
            continue
        path = m.group(1)
        brace = re.match(r"(.*)\{(.*)\}\.py$", path)
        if brace:
            names += [f"{brace.group(1)}{name}.py" for name in brace.group(2).split(",")]
        else:
            names.append(path)
    return names


def test_the_design_section_lists_every_module_once_and_no_other():
    listed = _listed()
    assert len(listed) == len(set(listed)), "a module is listed twice"
    actual = {
        p.relative_to(ROOT / "audiogmm").as_posix()
        for p in (ROOT / "audiogmm").rglob("*.py")
        if p.name not in UNLISTED or p.parent.name == "cli" and p.name == "__init__.py"
    }
    assert set(listed) == actual, (
        f"missing from README: {sorted(actual - set(listed))}; "
        f"listed but absent: {sorted(set(listed) - actual)}"
    )
