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


def _defining_module(module: str, name: str) -> str | None:
    """The listed module that ``from <module> import <name>`` depends on."""
    import importlib
    import inspect

    try:
        return importlib.import_module(f"{module}.{name}").__name__  # a submodule
    except ImportError:
        pass
    obj = getattr(importlib.import_module(module), name)
    found = inspect.getmodule(obj)
    if found is not None and found.__name__.startswith("audiogmm"):
        return found.__name__
    return module  # a constant: the module that holds it


def _module_level_imports(path: Path) -> set[str]:
    import ast

    rel = path.relative_to(ROOT).with_suffix("").parts
    package = rel[:-1] if rel[-1] != "__init__" else rel[:-1]
    out = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if not isinstance(node, ast.ImportFrom):
            continue
        base = list(package[: len(package) - node.level + 1]) if node.level else []
        module = ".".join(base + ([node.module] if node.module else []))
        if module.startswith("audiogmm"):
            out |= {_defining_module(module, a.name) for a in node.names}
    return out


def test_module_level_imports_point_up_the_design_list():
    # The Design section's claim: a module imports (at module level) only modules listed
    # above it. Imports inside functions defer optional or heavy modules and are not held to it.
    listed = [p for p in _listed() if "{" not in p]
    rank = {"audiogmm." + p[:-3].replace("/", "."): i for i, p in enumerate(listed)}
    rank["audiogmm.cli"] = rank.pop("audiogmm.cli.__init__")
    wrong = []
    for name, i in rank.items():
        tail = "/__init__.py" if name == "audiogmm.cli" else ".py"
        path = ROOT / (name.replace(".", "/") + tail)
        for dep in _module_level_imports(path):
            if dep in rank and dep != name and rank[dep] > i:
                wrong.append(f"{name} -> {dep}")
    assert not wrong, f"module-level imports that point down the README's Design list: {wrong}"


def test_each_package_exports_only_what_the_readme_documents():
    # issue 20's small public surface: a name in a package's __all__ is in the README
    import importlib

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    packages = ["audiogmm"] + [f"audiogmm.{p.parent.name}" for p in
                               sorted((ROOT / "audiogmm").glob("*/__init__.py"))]  # fmt: skip
    undocumented = [
        f"{pkg}.{name}" for pkg in packages for name in importlib.import_module(pkg).__all__
        if name != "__version__" and not re.search(rf"\b{re.escape(name)}\b", text)
    ]
    assert not undocumented, f"exported but not in the README: {undocumented}"
