"""Scheduled meetings on Discord: agenda cards with RSVP buttons, local times, direct messages."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace

import pytest

from bot.delivery import Undeliverable
from bot.types import Button, ChannelRef, Post
from tests.discord.conftest import discord_adapter
from tests.fakes.discord import FakeDiscord
from tests.product import RunningHuddle

pytestmark = pytest.mark.timeout(60)


async def test_an_agenda_card_shows_local_times_and_takes_rsvps_by_button(
    huddle: RunningHuddle, fake_discord: FakeDiscord
) -> None:
    zone = await fake_discord.invoke("meet", {"text": "tz Europe/Paris"})
    await fake_discord.answered(zone)
    assert zone.ephemeral_texts[0].startswith("Your time zone is now Europe/Paris")
    scheduled = await fake_discord.invoke(
        "meet", {"text": "schedule tomorrow 10:00 Sync agenda: API; rollout"}
    )
    await fake_discord.answered(scheduled)
    await huddle.parts.publisher.flush()

    [agenda] = fake_discord.channel_messages(fake_discord.general_id)
    [embed] = agenda["embeds"]
    assert embed["title"] == "Scheduled: Sync"
    # A Discord timestamp: every reader sees it in their own zone and language.
    assert re.match(r"<t:\d+:F> · 30 min · host Alice", embed["description"])
    assert "1. API\n2. rollout" in embed["description"]
    labels = [b["label"] for row in agenda["components"] for b in row["components"]]
    assert labels == ["Going", "Not going", "Add to calendar"]
    assert fake_discord.channels[int(agenda["id"])]["name"] == "Scheduled: Sync"

    going = await fake_discord.click(agenda, "Going", user="Bob")
    await fake_discord.answered(going)
    assert going.ephemeral_texts == ["Noted: you are going to “Sync”."]
    await huddle.parts.publisher.flush()
    assert "Going: 1 (Bob)" in fake_discord.messages[int(agenda["id"])]["embeds"][0]["description"]


async def test_private_posts_go_by_direct_message(
    huddle: RunningHuddle, fake_discord: FakeDiscord
) -> None:
    adapter = discord_adapter(huddle)
    bob = fake_discord.user("Bob")
    reminder = Post(
        key="meeting/x/remind/bob",
        channel=ChannelRef("discord", str(fake_discord.general_id)),
        title="Reminder: Sync",
        text="Starts <t:1795424400|Tue 10 Nov 10:00 Europe/Paris>.",
        buttons=(Button("Join", "https://example.test/h/x"),),
        to_user=str(bob.id),
    )
    ref = await adapter.send(reminder, None)
    channel_id, message_id = (int(part) for part in ref.split("/"))
    assert fake_discord.channels[channel_id]["type"] == 1  # a DM with Bob
    [message] = fake_discord.channel_messages(channel_id)
    assert message["id"] == str(message_id)
    assert message["embeds"][0]["description"] == "Starts <t:1795424400:F>."
    assert fake_discord.channel_messages(fake_discord.general_id) == []
    # Sent twice (a retry after a crash): still one message.
    assert await adapter.send(reminder, None) == ref
    assert len(fake_discord.channel_messages(channel_id)) == 1

    # Carol accepts no DMs from server members: Discord will never take it, so it is tried once.
    carol = fake_discord.user("Carol")
    fake_discord.closed_dms.add(carol.id)
    refused = replace(reminder, key="meeting/x/remind/carol", to_user=str(carol.id))
    assert await huddle.parts.publisher.publish(refused, wait=1.0) is None
    # The outbox has settled it: a post it would try again keeps the outbox from draining.
    async with asyncio.timeout(30):
        await huddle.parts.publisher.flush()
    dm = fake_discord.dm_with(carol)
    assert dm is not None
    attempts = [r for r in fake_discord.requests if r.path == f"/channels/{dm['id']}/messages"]
    assert [r.status for r in attempts] == [403]
    assert await huddle.parts.store.post_ref(refused.key) is None
    with pytest.raises(Undeliverable, match="50007"):
        await adapter.send(refused, None)
