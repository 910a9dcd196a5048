"""manifests/slack.yaml stays true to what the adapter uses (no YAML library needed to check it)."""

from __future__ import annotations

import re
from pathlib import Path

from adapters.slack.adapter import COMMAND
from tests.fakes.slack import ALL_SCOPES, METHODS

MANIFEST = Path(__file__).resolve().parents[2] / "manifests" / "slack.yaml"


def bot_scopes(text: str) -> set[str]:
    block = text.split("\n    bot:\n", 1)[1].split("\nsettings:", 1)[0]
    return set(re.findall(r"^\s+- ([a-z:.]+)\s*$", block, flags=re.MULTILINE))


def test_manifest_asks_for_exactly_the_scopes_the_adapter_uses() -> None:
    text = MANIFEST.read_text()
    scopes = bot_scopes(text)
    assert scopes == ALL_SCOPES
    # Every Web API method the fake knows the adapter to call is covered (connections:write is
    # the app-level token's, made on the Basic Information page, not a bot scope).
    needed = {scope for scope, kind in METHODS.values() if scope and kind == "bot"}
    assert needed <= scopes


def test_manifest_is_the_socket_mode_app_with_meet_and_interactivity() -> None:
    text = MANIFEST.read_text()
    assert f"- command: {COMMAND}\n" in text
    assert "\n  socket_mode_enabled: true\n" in text
    assert "interactivity:\n    # " in text and "\n    is_enabled: true\n" in text
    # The HTTP variant is documented with the path the adapter serves.
    assert text.count("# url: https://huddle.example.com/slack/events") == 1
    assert text.count("# request_url: https://huddle.example.com/slack/events") == 1
