"""The folders' one direction of imports: adapters -> bot -> media, never back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLATFORM_SDKS = {"slack_bolt", "slack_sdk", "discord"}
FORBIDDEN = {
    "bot": PLATFORM_SDKS | {"adapters"},
    "media": PLATFORM_SDKS | {"adapters", "bot"},
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_inner_packages_never_import_outward(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_roots(path) & FORBIDDEN[package])
        for path in (ROOT / package).rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_scan_sees_imports() -> None:
    # Guard the guard: the scanner must find a platform SDK where one is imported on purpose.
    sample = ROOT / "tests" / "test_layout.py"
    assert "ast" in imported_roots(sample)
