"""A huddle from /meet to its notes: people join and leave, the card follows, the notes land."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from media.contrib.client import HuddleClient
from tests.clock import ShiftedClock
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
    card, _host_link = (await huddle.say("general", "alice", "/meet Retro"))["posts"]
    url = card["buttons"][0]["url"]

    alice = HuddleClient(url, "Alice", width=320, height=240)
    bob = HuddleClient(url, "Bob", width=320, height=240)
    await alice.join()
    await card_text(huddle, "general", card["id"], "1 in the huddle: Alice")
    await bob.join()
    await card_text(huddle, "general", card["id"], "2 in the huddle: Alice, Bob")
    bob_id = next(iter(alice.participants))
    await alice.wait_for(lambda: alice.received_from(bob_id).frames_decoded > 5, within=10)

    await bob.send(
        {"type": "notes", "text": "DECISION: retro every sprint\nTODO @bob book the room by friday"}
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


def fixed_zone(offset: int) -> str:
    """The IANA name of UTC+``offset`` (Etc/GMT signs are inverted: Etc/GMT-3 is UTC+3)."""
    return f"Etc/GMT{-offset:+d}" if offset else "UTC"


def zones_on_other_dates(now: datetime) -> tuple[str, str]:
    """An owner's zone where 10:00 today has passed, and a channel's zone on another date."""
    for owner in range(-12, 15):
        owner_local = now + timedelta(hours=owner)
        if not 11 <= owner_local.hour <= 22:
            continue
        for channel in range(-12, 15):
            if (now + timedelta(hours=channel)).date() != owner_local.date():
                return fixed_zone(owner), fixed_zone(channel)
    raise AssertionError("from UTC-12 to UTC+14 some pair always works")


async def test_an_action_item_due_today_gets_its_follow_up_in_the_thread(
    tmp_path: Path, product_clock: ShiftedClock
) -> None:
    # Bob's "today" is not the channel's: the due day and its 10:00 are read on bob's calendar.
    bob_zone, channel_zone = zones_on_other_dates(product_clock())
    bob_today = product_clock().astimezone(ZoneInfo(bob_zone)).date()
    carol_zone = fixed_zone(0)
    carol_tomorrow = product_clock().date() + timedelta(days=1)
    async with running_huddle(tmp_path / "data", clock=product_clock, empty_grace=1.0) as huddle:
        await huddle.say("ops", "bob", f"/meet tz {bob_zone}")
        await huddle.say("ops", "carol", f"/meet tz {carol_zone}")
        await huddle.say("ops", "alice", f"/meet tz channel {channel_zone}")
        card, _host_link = (await huddle.say("ops", "alice", "/meet Incident review"))["posts"]
        async with HuddleClient(card["buttons"][0]["url"], "Alice", width=160, height=120) as alice:
            await alice.join()
            await card_text(huddle, "ops", card["id"], "1 in the huddle")
            await alice.send(
                {
                    "type": "notes",
                    "text": "TODO @bob send the timeline by today\n"
                    "TODO @carol check the alerts by tomorrow",
                }
            )
        notes = await thread_post(huddle, "ops", card["id"], "Meeting notes: Incident review")
        bob_due = f"{bob_today:%a %d %b} 10:00 {bob_zone}"
        carol_due = f"{carol_tomorrow:%a %d %b} 10:00 {carol_zone}"
        assert f"@bob: send the timeline (due {bob_due})" in notes["text"]
        assert f"@carol: check the alerts (due {carol_due})" in notes["text"]
        item_id = notes["text"].split("Action items:\n• `")[1].split("`")[0]
        follow_up = await thread_post(huddle, "ops", card["id"], "Follow-up")
        assert follow_up["text"].startswith(f"@bob: send the timeline was due {bob_due}.")
        assert f"/meet done {item_id}" in follow_up["text"]
        open_items = await thread_post(huddle, "ops", card["id"], "Action items")
        assert f"(due {bob_due})" in open_items["text"]


async def test_one_huddle_shared_into_another_channel_updates_and_notes_everywhere(
    huddle: RunningHuddle,
) -> None:
    home, _host_link = (await huddle.say("general", "alice", "/meet Roadmap"))["posts"]
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
