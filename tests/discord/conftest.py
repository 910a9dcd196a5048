"""A fake Discord and a real `huddle serve` whose Discord bot is connected to it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from adapters.discord import DiscordAdapter
from tests.fakes.discord import FakeDiscord
from tests.product import RunningHuddle, running_huddle


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """Discord's REST API and gateway on 127.0.0.1."""
    fake = FakeDiscord()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


@asynccontextmanager
async def huddle_on(
    fake: FakeDiscord, data_dir: Path, **overrides: Any
) -> AsyncIterator[RunningHuddle]:
    """The whole product with ``DISCORD_*`` pointed at ``fake``; returns once the bot is online."""
    settings: dict[str, Any] = {
        "discord_token": fake.token,
        "discord_api_url": fake.api_url,
        "discord_gateway_url": fake.gateway_url,
        "discord_guild_ids": (fake.guild_id,),
        **overrides,
    }
    async with running_huddle(data_dir, **settings) as running:
        if settings["discord_token"] == fake.token:
            await fake.wait_for(lambda: bool(fake.command_syncs) and bool(fake.sessions))
        yield running


@pytest.fixture
async def huddle(fake_discord: FakeDiscord, tmp_path: Path) -> AsyncIterator[RunningHuddle]:
    """`huddle serve` with its Discord bot logged in, commands synced, gateway identified."""
    async with huddle_on(fake_discord, tmp_path / "data", empty_grace=30.0) as running:
        yield running


def discord_adapter(running: RunningHuddle) -> DiscordAdapter:
    """The product's Discord adapter."""
    [adapter] = [p for p in running.parts.platforms if isinstance(p, DiscordAdapter)]
    return adapter


def huddle_id(card: dict[str, Any]) -> str:
    """The huddle id a card shows (``id `k3f9qz```)."""
    match = re.search(r"id `([a-z0-9]+)`", card["embeds"][0]["description"])
    assert match, card
    return match.group(1)


def join_url(card: dict[str, Any]) -> str:
    """The URL of the card's Join link button."""
    [row] = card["components"]
    [button] = row["components"]
    assert button["type"] == 2 and button["style"] == 5 and button["label"] == "Join"
    assert "custom_id" not in button
    url: str = button["url"]
    return url
