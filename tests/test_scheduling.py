"""Scheduled meetings through the web chat: agenda card, RSVP, reminders, the start, calendars."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
from dateutil.rrule import rrulestr

from tests.product import RunningHuddle, running_huddle


@pytest.fixture
async def huddle(tmp_path: Path) -> AsyncIterator[RunningHuddle]:
    async with running_huddle(tmp_path / "data", empty_grace=1.0) as running:
        for _ in range(50):
            if running.parts.scheduler.is_leader:
                break
            await asyncio.sleep(0.1)
        assert running.parts.scheduler.is_leader
        yield running


async def wait_for_post(
    huddle: RunningHuddle, channel: str, user: str, predicate: Any, within: float = 15
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for post in await huddle.history(channel, user):
            if predicate(post):
                return post
        await asyncio.sleep(0.1)
    raise AssertionError(f"no matching post in #{channel} within {within}s")


async def test_a_meeting_in_seconds_gets_agenda_rsvp_reminder_and_starts(
    huddle: RunningHuddle,
) -> None:
    [zone_reply] = (await huddle.say("team", "alice", "/meet tz Europe/Berlin"))["posts"]
    assert "Europe/Berlin" in zone_reply["text"] and zone_reply["ephemeral"]

    body = await huddle.say(
        "team", "alice", "/meet schedule in 5 seconds remind 3s Standup agenda: wins; blockers"
    )
    [card] = body["posts"]
    assert card["title"] == "Scheduled: Standup"
    assert "Europe/Berlin" in card["text"] and "1. wins\n2. blockers" in card["text"]
    assert "<t:" in card["markup"]  # the page shows it in each reader's zone
    labels = {b["label"]: b for b in card["buttons"]}
    assert labels["Going"]["action"].startswith("rsvp:")
    ics_url = labels["Add to calendar"]["url"]
    meeting_id = card["text"].split("id `")[1].split("`")[0]

    async with huddle.http.post(
        f"{huddle.url}/api/chat/team/actions",
        json={"user": "bob", "action": labels["Going"]["action"]},
    ) as response:
        [noted] = (await response.json())["posts"]
    assert "you are going" in noted["text"]
    await wait_for_post(huddle, "team", "bob", lambda p: "Going: 1 (bob)" in p["text"])

    reminder = await wait_for_post(
        huddle, "team", "carol", lambda p: p["title"] == "Reminder: Standup", within=10
    )
    assert reminder["thread_of"] == card["id"]
    assert reminder["buttons"][0]["url"].startswith(f"{huddle.url}/m/{meeting_id}?s=")
    direct = await wait_for_post(
        huddle, "team", "bob", lambda p: p["ephemeral"] and "Reminder" in p["title"]
    )
    assert direct["buttons"][0]["label"] == "Join"
    assert not any(
        p["ephemeral"] and "Reminder" in p["title"] for p in await huddle.history("team", "carol")
    )

    started = await wait_for_post(
        huddle, "team", "carol", lambda p: p["title"] == "Standup" and p["buttons"], within=10
    )
    assert started["buttons"][0]["url"].startswith(f"{huddle.url}/h/")
    await wait_for_post(
        huddle, "team", "carol", lambda p: p["id"] == card["id"] and "Started." in p["text"]
    )
    # The reminder's meeting link now opens the call.
    async with huddle.http.get(reminder["buttons"][0]["url"], allow_redirects=False) as page:
        assert page.status == 302
        assert page.headers["Location"].startswith(f"{huddle.url}/h/")

    async with huddle.http.get(ics_url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/calendar")
        calendar = icalendar.Calendar.from_ical(await response.read())
    [event] = calendar.walk("VEVENT")
    assert str(event["summary"]) == "Standup"
    assert str(event["url"]).startswith(f"{huddle.url}/m/{meeting_id}")


async def test_recurring_meeting_calendar_expands_to_local_times_across_dst(
    huddle: RunningHuddle,
) -> None:
    await huddle.say("plan", "alice", "/meet tz America/New_York")
    [card] = (
        await huddle.say("plan", "alice", "/meet schedule every monday 10:00 for 45m Planning")
    )["posts"]
    ics_url = next(b["url"] for b in card["buttons"] if b["label"] == "Add to calendar")
    async with huddle.http.get(ics_url) as response:
        calendar = icalendar.Calendar.from_ical(await response.read())
    assert calendar.walk("VTIMEZONE"), "the zone travels with the event"
    [event] = calendar.walk("VEVENT")
    start = event.decoded("dtstart")
    assert (
        str(start.tzinfo) == "America/New_York"
        or getattr(start.tzinfo, "key", "") == "America/New_York"
    )
    rule = rrulestr(event["rrule"].to_ical().decode(), dtstart=start)
    new_york = ZoneInfo("America/New_York")
    # New York leaves daylight saving on 1 Nov 2026 and enters it on 14 Mar 2027.
    spring = list(rule.between(datetime(2027, 3, 1, tzinfo=UTC), datetime(2027, 3, 23, tzinfo=UTC)))
    # Mondays 1, 8 (EST, UTC-5) and 15, 22 March (EDT, UTC-4): 10:00 local every time.
    assert [o.astimezone(new_york).hour for o in spring] == [10, 10, 10, 10]
    assert [o.astimezone(UTC).hour for o in spring] == [15, 15, 14, 14]
    assert event.decoded("dtend") - start == timedelta(minutes=45)


async def test_cancel_rsvp_agenda_and_list(huddle: RunningHuddle) -> None:
    card, hint = (await huddle.say("ops", "alice", "/meet schedule every weekday 09:30 Standup"))[
        "posts"
    ]
    assert hint["ephemeral"] and "I read that time as UTC" in hint["text"]
    meeting_id = card["text"].split("id `")[1].split("`")[0]
    [listing] = (await huddle.say("ops", "bob", "/meet list"))["posts"]
    assert f"`{meeting_id}` Standup" in listing["text"] and "(repeats)" in listing["text"]
    feed_url = next(b["url"] for b in listing["buttons"] if b["label"].startswith("Subscribe"))
    async with huddle.http.get(feed_url) as response:
        assert response.status == 200
        feed = icalendar.Calendar.from_ical(await response.read())
    assert [str(e["summary"]) for e in feed.walk("VEVENT")] == ["Standup"]
    async with huddle.http.get(feed_url.replace("?s=", "?s=0")) as response:
        assert response.status == 403
    [added] = (await huddle.say("ops", "bob", f"/meet agenda {meeting_id} add incidents"))["posts"]
    assert "incidents" in added["text"]
    await wait_for_post(
        huddle, "ops", "bob", lambda p: p["id"] == card["id"] and "1. incidents" in p["text"]
    )
    [refused] = (await huddle.say("ops", "bob", f"/meet cancel {meeting_id}"))["posts"]
    assert "Only alice" in refused["text"]
    [one] = (await huddle.say("ops", "alice", f"/meet cancel {meeting_id} next"))["posts"]
    assert one["text"].startswith("Cancelled “Standup” on ")
    [bad] = (await huddle.say("ops", "alice", "/meet schedule someday Retro"))["posts"]
    assert "could not read when" in bad["text"]
    [whole] = (await huddle.say("ops", "alice", f"/meet cancel {meeting_id}"))["posts"]
    assert whole["text"] == f"Cancelled “Standup” (`{meeting_id}`)."
    [gone] = (await huddle.say("ops", "bob", f"/meet rsvp {meeting_id} yes"))["posts"]
    assert "was cancelled" in gone["text"]


async def test_open_action_items_carry_over_to_the_next_occurrences_agenda(
    huddle: RunningHuddle,
) -> None:
    [card] = (await huddle.say("ops", "alice", "/meet schedule every day 09:00 Daily"))["posts"][:1]
    meeting_id = card["text"].split("id `")[1].split("`")[0]
    meetings = huddle.parts.meetings
    meeting = await huddle.parts.store.meeting(meeting_id)
    assert meeting is not None
    first, second = meetings.occurrences(meeting, datetime.now(UTC), count=2)
    # The scheduler's start job at T (driven directly: waiting for 09:00 is not a test).
    huddle_id = await meetings.start(meeting_id, first)
    assert huddle_id is not None
    await huddle.parts.minutes.notes_changed(huddle_id, "TODO @bob fix the flaky deploy", "Bob")
    await huddle.parts.huddles.end(huddle_id, "ended by host")
    await huddle.parts.huddles.wait_idle()
    await meetings.post_agenda(meeting_id, second)
    async with asyncio.timeout(10):
        await huddle.parts.publisher.flush()
    agenda = [p for p in await huddle.history("ops") if p["title"] == "Scheduled: Daily"]
    assert len(agenda) == 2  # today's (now "Started.") and tomorrow's
    assert "Open from last time:" in agenda[-1]["text"]
    assert "@bob: fix the flaky deploy" in agenda[-1]["text"]
