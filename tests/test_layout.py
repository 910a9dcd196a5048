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


def imported_roots(path: Path, root: Path = ROOT) -> set[str]:
    """The top-level packages ``path`` (a module under ``root``) imports, relative imports
    resolved against the module's own package."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = path.relative_to(root).parent.parts
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base: tuple[str, ...] = ()
            elif node.level - 1 <= len(package):
                base = package[: len(package) - (node.level - 1)]
            else:
                raise AssertionError(f"{path}: relative import beyond the top level")
            module = base + tuple(node.module.split(".") if node.module else ())
            if module:
                roots.add(module[0])
            else:  # ``from .. import bot`` at the top level: the names are the packages
                roots.update(alias.name.split(".")[0] for alias in node.names)
    return roots


def offenders(root: Path, package: str) -> dict[str, list[str]]:
    """Modules of ``package`` (under ``root``) that import what it must not, and what."""
    found = {
        str(path.relative_to(root)): sorted(imported_roots(path, root) & FORBIDDEN[package])
        for path in sorted((root / package).rglob("*.py"))
    }
    return {path: names for path, names in found.items() if names}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_inner_packages_never_import_outward(package: str) -> None:
    assert offenders(ROOT, package) == {}


def test_the_scan_catches_every_kind_of_forbidden_import(tmp_path: Path) -> None:
    # Guard the guard: a tree with each forbidden import written each way Python allows.
    sources = {
        "media/__init__.py": "",
        "media/clean.py": "import asyncio\nfrom . import wire\nfrom .contrib import client\n",
        "media/absolute.py": "import bot.types\n",
        "media/from_absolute.py": "from bot import meetings\n",
        "media/relative.py": "from ..bot.types import Post\n",
        "media/relative_name.py": "from .. import bot\n",
        "media/contrib/__init__.py": "from ... import adapters\n",
        "media/contrib/deep.py": "def later() -> None:\n    from ...bot import store\n",
        "media/sdk.py": "import discord.ext.commands as commands\n",
        "bot/__init__.py": "from . import commands\n",
        "bot/adapter.py": "from adapters.slack import SlackAdapter\n",
        "bot/relative.py": "from ..adapters import server\n",
        "bot/bolt.py": "from slack_bolt.app.async_app import AsyncApp\n",
        "bot/sdk.py": "import os, slack_sdk\n",
        "bot/media_is_fine.py": "from media import events\nfrom ..media.rooms import Room\n",
    }
    for name, text in sources.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)

    assert offenders(tmp_path, "media") == {
        "media/absolute.py": ["bot"],
        "media/contrib/__init__.py": ["adapters"],
        "media/contrib/deep.py": ["bot"],
        "media/from_absolute.py": ["bot"],
        "media/relative.py": ["bot"],
        "media/relative_name.py": ["bot"],
        "media/sdk.py": ["discord"],
    }
    assert offenders(tmp_path, "bot") == {
        "bot/adapter.py": ["adapters"],
        "bot/bolt.py": ["slack_bolt"],
        "bot/relative.py": ["adapters"],
        "bot/sdk.py": ["slack_sdk"],
    }
