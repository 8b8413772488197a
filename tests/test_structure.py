"""The shape of the package: layering, private names, module sizes (issue 20's acceptance)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "audiogmm"
MODULES = sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _absolute(path: Path, node: ast.ImportFrom) -> str:
    """The dotted module an ``ImportFrom`` names, resolved against ``path``'s package."""
    if not node.level:
        return node.module or ""
    pkg = list(path.relative_to(PKG.parent).with_suffix("").parts)[:-1]
    if path.name == "__init__.py":
        pkg = list(path.relative_to(PKG.parent).parts)[:-1]
    base = pkg[: len(pkg) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_no_module_imports_another_modules_private_names(path):
    bad = [
        f"{_absolute(path, n)}.{a.name}"
        for n in ast.walk(_tree(path))
        if isinstance(n, ast.ImportFrom)
        for a in n.names
        if a.name.startswith("_") and not a.name.startswith("__")
        and _absolute(path, n) != "audiogmm._version"
    ]
    assert bad == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_no_code_touches_another_objects_private_members(path):
    bad = []
    for n in ast.walk(_tree(path)):
        if (
            isinstance(n, ast.Attribute)
            and n.attr.startswith("_")
            and not n.attr.startswith("__")
            and not (isinstance(n.value, ast.Name) and n.value.id in ("self", "cls", "os", "sys"))
            and not (isinstance(n.value, ast.Call) and getattr(n.value.func, "id", "") == "super")
        ):
            bad.append(f"line {n.lineno}: .{n.attr}")
    assert bad == []


FORBIDDEN_FOR_MIXTURE = (
    "audiogmm.container", "audiogmm.io", "audiogmm.audio", "audiogmm.features", "audiogmm.data",
    "audiogmm.models", "audiogmm.pipeline", "audiogmm.cli",
)


@pytest.mark.parametrize(
    "path", sorted((PKG / "mixture").glob("*.py")), ids=lambda p: p.name
)
def test_mixture_imports_no_file_format_audio_feature_data_model_pipeline_or_cli(path):
    names = []
    for n in ast.walk(_tree(path)):
        if isinstance(n, ast.ImportFrom):
            names.append(_absolute(path, n))
        elif isinstance(n, ast.Import):
            names += [a.name for a in n.names]
    assert [m for m in names if m.startswith(FORBIDDEN_FOR_MIXTURE)] == []


def test_exactly_one_function_holds_the_em_loop_and_one_orchestrates_a_fit():
    from audiogmm.mixture import em, fit

    callers = {}
    for path in MODULES:
        for n in ast.walk(_tree(path)):
            if isinstance(n, ast.FunctionDef):
                for c in ast.walk(n):
                    if (
                        isinstance(c, ast.Call)
                        and isinstance(c.func, ast.Attribute)
                        and c.func.attr == "run"
                        and getattr(c.func.value, "id", "") == "em"
                    ):
                        callers.setdefault(str(path.relative_to(PKG)), set()).add(n.name)
    # em.run is called by the orchestration (and split initialisation, EM rounds of init)
    assert set(callers) <= {"mixture/fit.py"}, callers
    assert callable(em.run) and callable(fit.fit_mixtures)
