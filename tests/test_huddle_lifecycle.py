"""A huddle from /meet to its notes: people join and leave, the card follows, the notes land."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from media.contrib.client import HuddleClient
from tests.product import RunningHuddle, running_huddle

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def huddle(tmp_path: Path) -> AsyncIterator[RunningHuddle]:
    async with running_huddle(tmp_path / "data", empty_grace=1.5) as running:
        yield running


async def card_text(huddle: RunningHuddle, channel: str, card_id: int, expected: str) -> str:
    deadline = time.monotonic() + 15
    text = ""
    while time.monotonic() < deadline:
        [card] = [p for p in await huddle.history(channel) if p["id"] == card_id]
        text = card["text"]
        if expected in text:
            return str(text)
        await asyncio.sleep(0.1)
    raise AssertionError(f"card never said {expected!r}; last: {text!r}")


async def thread_post(
    huddle: RunningHuddle, channel: str, parent: int, title: str
) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for post in await huddle.history(channel):
            if post["thread_of"] == parent and post["title"] == title:
                return post
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {title!r} reply under post {parent}")


async def test_card_counts_people_and_the_notes_thread_follows_the_end(
    huddle: RunningHuddle,
) -> None:
    [card] = (await huddle.say("general", "alice", "/meet Retro"))["posts"]
    url = card["buttons"][0]["url"]

    alice = HuddleClient(url, "Alice", width=320, height=240)
    bob = HuddleClient(url, "Bob", width=320, height=240)
    await alice.join()
    await card_text(huddle, "general", card["id"], "1 in the huddle: Alice")
    await bob.join()
    await card_text(huddle, "general", card["id"], "2 in the huddle: Alice, Bob")
    bob_id = next(iter(alice.participants))
    await alice.wait_for(lambda: alice.received_from(bob_id).frames_decoded > 5, within=10)

    await huddle.parts.minutes.notes_changed(
        huddle_id_of(card), "DECISION: retro every sprint\nTODO @bob book the room by friday", "Bob"
    )
    await bob.leave()
    await card_text(huddle, "general", card["id"], "1 in the huddle: Alice")
    await alice.leave()
    await card_text(huddle, "general", card["id"], "Everyone left")
    final = await card_text(huddle, "general", card["id"], "Ended, 1 min")
    assert "attended: Alice, Bob" in final
    ended = next(p for p in await huddle.history("general") if p["id"] == card["id"])
    assert ended["buttons"] == []

    notes = await thread_post(huddle, "general", card["id"], "Meeting notes: Retro")
    assert "Attendees: Alice (1 min), Bob (1 min)" in notes["text"]
    assert "Decisions:\n• retro every sprint" in notes["text"]
    assert "@bob: book the room" in notes["text"]
    item_id = notes["text"].split("Action items:\n• `")[1].split("`")[0]
    open_items = await thread_post(huddle, "general", card["id"], "Action items")
    assert item_id in open_items["text"]

    rating = await thread_post(huddle, "general", card["id"], "How was this call?")
    async with huddle.http.post(
        f"{huddle.url}/api/chat/general/actions",
        json={"user": "alice", "action": rating["buttons"][3]["action"]},
    ) as response:
        assert "4/5" in (await response.json())["posts"][0]["text"]

    [done] = (await huddle.say("general", "bob", f"/meet done {item_id}"))["posts"]
    assert done["text"].startswith("Done: book the room")
    await huddle.parts.huddles.wait_idle()
    closed = await thread_post(huddle, "general", card["id"], "Action items")
    assert "All 1 action items are done." in closed["text"]
    summary = await thread_post(huddle, "general", card["id"], "How was this call?")
    assert "4.0 / 5 from 1 person" in summary["text"]


def huddle_id_of(card: dict[str, Any]) -> str:
    return str(card["text"].split("id `")[1].split("`")[0])


def zone_past_ten_today() -> str:
    """A fixed-offset zone where it is now between 11:00 and 22:59, so 10:00 today has passed."""
    now = datetime.now(UTC)
    for offset in range(-12, 15):
        local_hour = (now + timedelta(hours=offset)).hour
        if 11 <= local_hour <= 22:
            # Etc/GMT signs are inverted: Etc/GMT-3 is UTC+3.
            return f"Etc/GMT{-offset:+d}" if offset else "UTC"
    raise AssertionError("some offset always works")


async def test_an_action_item_due_today_gets_its_follow_up_in_the_thread(
    huddle: RunningHuddle,
) -> None:
    zone = zone_past_ten_today()
    await huddle.say("ops", "bob", f"/meet tz {zone}")
    [card] = (await huddle.say("ops", "alice", "/meet Incident review"))["posts"]
    async with HuddleClient(card["buttons"][0]["url"], "Alice", width=160, height=120) as alice:
        await alice.join()
        await card_text(huddle, "ops", card["id"], "1 in the huddle")
        await huddle.parts.minutes.notes_changed(
            huddle_id_of(card), "TODO @bob send the timeline by today", "Alice"
        )
    notes = await thread_post(huddle, "ops", card["id"], "Meeting notes: Incident review")
    item_id = notes["text"].split("Action items:\n• `")[1].split("`")[0]
    follow_up = await thread_post(huddle, "ops", card["id"], "Follow-up")
    assert follow_up["text"].startswith("@bob: send the timeline was due")
    assert f"/meet done {item_id}" in follow_up["text"]


async def test_one_huddle_shared_into_another_channel_updates_and_notes_everywhere(
    huddle: RunningHuddle,
) -> None:
    [home] = (await huddle.say("general", "alice", "/meet Roadmap"))["posts"]
    huddle_id = huddle_id_of(home)
    [there] = (await huddle.say("design", "bob", f"/meet share {huddle_id}"))["posts"]
    assert there["channel"] == "design" and "shared from #general (web)" in there["text"]
    [again] = (await huddle.say("design", "bob", f"/meet share {huddle_id}"))["posts"]
    assert "already posted here" in again["text"]
    await huddle.parts.huddles.wait_idle()
    announced = await thread_post(huddle, "general", home["id"], "")
    assert announced["text"] == "bob shared this huddle to #design on web."

    async with HuddleClient(there["buttons"][0]["url"], "Carol", width=160, height=120) as carol:
        await carol.join()
        await card_text(huddle, "general", home["id"], "1 in the huddle: Carol")
        await card_text(huddle, "design", there["id"], "1 in the huddle: Carol")
    await card_text(huddle, "general", home["id"], "Ended")
    await card_text(huddle, "design", there["id"], "Ended")
    for channel, card in (("general", home), ("design", there)):
        notes = await thread_post(huddle, channel, card["id"], "Meeting notes: Roadmap")
        assert "Attendees: Carol" in notes["text"]
