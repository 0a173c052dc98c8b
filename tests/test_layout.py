"""The layout rules of docs/architecture.md, checked: a newcomer finds their room because the
tree keeps its shape."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("monitor", "collectors", "detectors", "dashboards", "alerts")
MAX_LINES = 500


def _modules(*roots: str) -> list[Path]:
    return sorted(
        p
        for root in roots
        for p in (ROOT / root).rglob("*.py")
        if "__pycache__" not in p.parts and "build" not in p.parts
    )


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_no_module_over_500_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in _modules(*PACKAGES, "tests", "benchmarks")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, long


def test_monitor_top_level_is_folders_and_a_few_modules() -> None:
    entries = [p for p in (ROOT / "monitor").iterdir() if p.name != "__pycache__"]
    files = sorted(p.name for p in entries if p.is_file())
    assert len(files) <= 8, files
    for folder in (p for p in entries if p.is_dir()):
        init = folder / "__init__.py"
        if folder.name == "migrations":
            continue
        assert init.exists(), f"{folder.name}/ is not a package"
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc, f"monitor/{folder.name}/__init__.py has no docstring saying what it owns"


@pytest.mark.parametrize("package", ["alerts", "dashboards"])
def test_alerts_and_dashboards_take_only_the_vocabulary_from_monitor(package: str) -> None:
    for path in _modules(package):
        used = {m for m in _imports(path) if m == "monitor" or m.startswith("monitor.")}
        assert used <= {"monitor.vocabulary"} | {
            m for m in used if m.startswith("monitor.vocabulary.")
        }, (path, used)


def test_vocabulary_is_a_leaf() -> None:
    ours = {m.split(".")[0] for m in _imports(ROOT / "monitor" / "vocabulary.py")}
    assert not ours & set(PACKAGES)


def test_detectors_use_nobody_of_ours() -> None:
    for path in _modules("detectors"):
        ours = {m.split(".")[0] for m in _imports(path)} & set(PACKAGES)
        assert ours <= {"detectors"}, (path, ours)


def test_the_client_never_imports_the_service() -> None:
    for path in _modules("collectors"):
        heavy = {m.split(".")[0] for m in _imports(path)} & {
            "monitor",
            "detectors",
            "alerts",
            "dashboards",
            "torch",
            "pandas",
            "sqlalchemy",
        }
        assert not heavy, (path, heavy)
