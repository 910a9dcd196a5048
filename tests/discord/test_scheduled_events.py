"""Scheduled meetings show up in the server's Events; who is interested there counts as an RSVP."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.discord.scheduled_events import event_location, meeting_of
from tests.clock import ShiftedClock
from tests.discord.conftest import discord_adapter, huddle_id, huddle_on
from tests.fakes.discord import (
    BOT_PERMISSIONS,
    CREATE_EVENTS,
    ENTITY_EXTERNAL,
    EVENT_ACTIVE,
    EVENT_SCHEDULED,
    MANAGE_EVENTS,
    PRIVACY_GUILD_ONLY,
    FakeDiscord,
)
from tests.product import RunningHuddle

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def discord_at(product_clock: ShiftedClock) -> AsyncIterator[FakeDiscord]:
    """Discord's REST API and gateway, whose "now" is the product's fixed instant."""
    fake = FakeDiscord(clock=product_clock)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
async def huddle_at(
    discord_at: FakeDiscord, tmp_path: Path, product_clock: ShiftedClock
) -> AsyncIterator[RunningHuddle]:
    """The product with its Discord bot online, at one of the fixed instants."""
    async with huddle_on(discord_at, tmp_path / "data", clock=product_clock) as running:
        yield running


async def meet(fake: FakeDiscord, text: str) -> list[str]:
    """Alice types `/meet <text>`; returns what only she sees in answer."""
    interaction = await fake.invoke("meet", {"text": text})
    await fake.answered(interaction)
    return interaction.ephemeral_texts


def card_text(fake: FakeDiscord, card: dict[str, Any]) -> str:
    """The card's embed description as the channel sees it now."""
    description: str = fake.messages[int(card["id"])]["embeds"][0]["description"]
    return description


def event_requests(fake: FakeDiscord, method: str) -> list[Any]:
    """The bot's ``method`` requests on scheduled events."""
    return [
        r
        for r in fake.requests
        if r.method == method and re.match(r"^/guilds/\d+/scheduled-events", r.path)
    ]


def next_weekday_at(weekday: int, hour: int, now: datetime) -> datetime:
    """The first ``weekday`` (0 = Monday) at ``hour``:00 UTC after ``now``."""
    for days in range(8):
        start = datetime.combine(now.date() + timedelta(days=days), time(hour), UTC)
        if start.weekday() == weekday and start > now:
            return start
    raise AssertionError("unreachable")


async def test_a_scheduled_meeting_creates_updates_and_cancels_its_scheduled_event(
    huddle_at: RunningHuddle, discord_at: FakeDiscord, product_clock: ShiftedClock
) -> None:
    huddle, fake_discord = huddle_at, discord_at
    # "Tomorrow" is read when the command is, by the product's clock (UTC: nobody set a zone).
    tomorrow = product_clock().date() + timedelta(days=1)
    await meet(fake_discord, "schedule tomorrow 10:00 Retro agenda: a; b")
    await fake_discord.wait_for(lambda: bool(fake_discord.live_events()))
    [card] = fake_discord.channel_messages(fake_discord.general_id)
    meeting_id = huddle_id(card)

    # One external event in the server's Events, at the meeting's time, pointing at its page.
    [event] = fake_discord.live_events()
    starts = datetime.combine(tomorrow, time(10), UTC)
    assert event["scheduled_start_time"] == starts.isoformat()
    assert event["scheduled_end_time"] == (starts + timedelta(minutes=30)).isoformat()
    assert event["name"] == "Retro"
    assert event["entity_type"] == ENTITY_EXTERNAL and event["channel_id"] is None
    assert event["privacy_level"] == PRIVACY_GUILD_ONLY and event["status"] == EVENT_SCHEDULED
    location = event["entity_metadata"]["location"]
    assert location.startswith(f"{huddle.url}/m/{meeting_id}?s=")
    async with huddle.http.get(location) as page:
        assert page.status == 200 and "Retro" in await page.text()
    assert "Agenda: a; b" in event["description"]
    assert "Host: Alice" in event["description"]
    # Nobody is interested on Discord yet: the card does not say so.
    await huddle.parts.publisher.flush()
    assert "Interested on discord" not in card_text(fake_discord, card)

    # Alice adds to the agenda: the event follows, edited in place.
    await meet(fake_discord, f"agenda {meeting_id} add c")
    event_id = int(event["id"])
    await fake_discord.wait_for(
        lambda: "Agenda: a; b; c" in fake_discord.scheduled_events[event_id]["description"]
    )
    [patch] = event_requests(fake_discord, "PATCH")
    assert patch.path.endswith(f"/scheduled-events/{event_id}")
    assert len(event_requests(fake_discord, "POST")) == 1

    # Bob and Carol mark it "interested" in Discord; Carol changes her mind.
    await fake_discord.subscribe(event_id, "Bob")
    await fake_discord.wait_for(lambda: "Interested on discord: 1" in card_text(fake_discord, card))
    await fake_discord.subscribe(event_id, "Carol")
    await fake_discord.wait_for(lambda: "Interested on discord: 2" in card_text(fake_discord, card))
    await fake_discord.unsubscribe(event_id, "Carol")
    await fake_discord.wait_for(lambda: "Interested on discord: 1" in card_text(fake_discord, card))

    # Alice cancels the meeting: the event goes from the server's Events.
    [answer] = await meet(fake_discord, f"cancel {meeting_id}")
    assert answer.startswith("Cancelled “Retro”")
    await fake_discord.wait_for(lambda: not fake_discord.scheduled_events)
    [delete] = event_requests(fake_discord, "DELETE")
    assert delete.path.endswith(f"/scheduled-events/{event_id}")
    await huddle.parts.publisher.flush()
    assert card_text(fake_discord, card).startswith("Cancelled.")


async def test_a_recurring_meeting_has_an_event_for_its_next_occurrence(
    huddle_at: RunningHuddle, discord_at: FakeDiscord, product_clock: ShiftedClock
) -> None:
    huddle, fake_discord = huddle_at, discord_at
    now = product_clock()
    await meet(fake_discord, "schedule every monday 10:00 Standup")
    await fake_discord.wait_for(lambda: bool(fake_discord.live_events()))
    [card] = fake_discord.channel_messages(fake_discord.general_id)
    meeting_id = huddle_id(card)
    first = next_weekday_at(0, 10, now)
    [event] = fake_discord.live_events()
    assert event["scheduled_start_time"] == first.isoformat()

    # Alice calls off the first Monday only: the event moves to the Monday after.
    second = first + timedelta(days=7)
    await meet(fake_discord, f"cancel {meeting_id} next")
    await fake_discord.wait_for(
        lambda: event["scheduled_start_time"] == second.isoformat()  # edited in place
    )
    assert [e["id"] for e in fake_discord.live_events()] == [event["id"]]

    # That Monday at 10:00 Discord starts the event by itself, and the core opens the huddle. The
    # event under way is left to end on its own; the Monday after gets an event of its own.
    await fake_discord.begin_event(int(event["id"]))
    assert await huddle.parts.meetings.start(meeting_id, second) is not None
    await fake_discord.wait_for(lambda: len(fake_discord.live_events()) == 2)
    active, upcoming = fake_discord.live_events()
    assert active["id"] == event["id"] and active["status"] == EVENT_ACTIVE
    assert active["scheduled_start_time"] == second.isoformat()
    assert upcoming["status"] == EVENT_SCHEDULED
    assert upcoming["scheduled_start_time"] == (second + timedelta(days=7)).isoformat()
    assert upcoming["entity_metadata"] == active["entity_metadata"]

    # Cancelling the series takes the next event away.
    await meet(fake_discord, f"cancel {meeting_id}")
    await fake_discord.wait_for(lambda: int(upcoming["id"]) not in fake_discord.scheduled_events)
    assert [e["id"] for e in fake_discord.live_events()] == [active["id"]]


async def test_without_the_events_permission_meetings_still_work_and_the_log_says_why(
    huddle: RunningHuddle, fake_discord: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="huddle.discord")
    fake_discord.guild_permissions = BOT_PERMISSIONS & ~MANAGE_EVENTS & ~CREATE_EVENTS
    await meet(fake_discord, "schedule tomorrow 10:00 Retro")
    async with asyncio.timeout(10):
        await discord_adapter(huddle).events.wait_idle()
    assert [r.status for r in event_requests(fake_discord, "POST")] == [403]
    assert fake_discord.scheduled_events == {}
    assert len(fake_discord.channel_messages(fake_discord.general_id)) == 1  # the agenda card
    assert "give the bot Manage Events (or Create Events)" in caplog.text


async def test_an_event_missed_while_discord_was_down_is_created_when_it_is_back(
    huddle: RunningHuddle, fake_discord: FakeDiscord
) -> None:
    fake_discord.fail("GET", r"^/guilds/\d+/scheduled-events$", 503, times=2)
    await meet(fake_discord, "schedule tomorrow 10:00 Retro")
    await fake_discord.wait_for(lambda: bool(fake_discord.live_events()), within=15)
    statuses = [r.status for r in event_requests(fake_discord, "GET")]
    assert statuses == [503, 503, 200]
    assert len(fake_discord.live_events()) == 1


def test_a_long_public_url_still_fits_the_event_location_and_names_the_meeting() -> None:
    short = "https://huddle.example.com/m/k3f9qz?s=" + "0" * 32
    assert event_location(short) == short
    long = "https://" + "a" * 60 + ".example.com/m/k3f9qz?s=" + "0" * 32
    assert event_location(long) == long.partition("?")[0]
    longer = "https://" + "a" * 120 + ".example.com/huddle/m/k3f9qz?s=" + "0" * 32
    assert len(event_location(longer)) == 100
    for url in (short, long, longer):
        assert meeting_of(event_location(url)) == "k3f9qz"
