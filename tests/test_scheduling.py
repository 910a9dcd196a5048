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

from media.contrib.client import HuddleClient
from tests.clock import ShiftedClock
from tests.product import RunningHuddle, link_role, running_huddle


@pytest.fixture
async def huddle(tmp_path: Path, product_clock: ShiftedClock) -> AsyncIterator[RunningHuddle]:
    """The product, its clock at one of the fixed instants, once its scheduler leads."""
    async with running_huddle(tmp_path / "data", clock=product_clock, empty_grace=1.0) as running:
        for _ in range(300):  # up to 30 s on a loaded machine
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
        "team",
        "alice",
        "/meet schedule in 5 seconds remind 3s lobby Standup agenda: wins; blockers",
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
    assert "waiting room" in started["text"]  # scheduled with `lobby`
    await wait_for_post(
        huddle, "team", "carol", lambda p: p["id"] == card["id"] and "Started." in p["text"]
    )
    # Alice scheduled it, so she hosts it: her host link comes to her alone.
    host_link = await wait_for_post(
        huddle, "team", "alice", lambda p: p["ephemeral"] and p["title"] == "You host: Standup"
    )
    assert host_link["buttons"][0]["label"] == "Join as host"
    assert link_role(host_link["buttons"][0]["url"]) == "host"
    assert link_role(started["buttons"][0]["url"]) == "participant"
    assert not any("You host" in p["title"] for p in await huddle.history("team", "carol"))
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


def next_change(zone: ZoneInfo, after: datetime) -> datetime:
    """The first hour after ``after`` at which ``zone``'s UTC offset changes."""
    moment = after.replace(minute=0, second=0, microsecond=0)
    offset = moment.astimezone(zone).utcoffset()
    for _ in range(24 * 366):
        moment += timedelta(hours=1)
        if moment.astimezone(zone).utcoffset() != offset:
            return moment
    raise AssertionError(f"{zone} does not change its clocks")


async def test_recurring_meeting_calendar_expands_to_local_times_across_dst(
    huddle: RunningHuddle, product_clock: ShiftedClock
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
    # Two Mondays either side of New York's next clock change after the first meeting.
    change = next_change(new_york, max(start, product_clock()))
    around = list(rule.between(change - timedelta(days=14), change + timedelta(days=14)))
    assert len(around) == 4 and start <= around[0]
    assert [o.astimezone(new_york).hour for o in around] == [10, 10, 10, 10]
    # ... so in UTC the meeting moves by the hour the clocks moved.
    utc = [o.astimezone(UTC).hour for o in around]
    assert utc[0] == utc[1] and utc[2] == utc[3] and abs(utc[1] - utc[2]) == 1
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


async def test_a_date_given_to_cancel_is_read_on_the_cancellers_calendar(
    huddle: RunningHuddle, product_clock: ShiftedClock
) -> None:
    # Scheduled in UTC, cancelled from Tokyo: 23:30 UTC is 08:30 the next day there.
    [card, _] = (await huddle.say("ops", "alice", "/meet schedule every day 23:30 Late sync"))[
        "posts"
    ]
    meeting_id = card["text"].split("id `")[1].split("`")[0]
    await huddle.say("ops", "alice", "/meet tz Asia/Tokyo")
    meeting = await huddle.parts.store.meeting(meeting_id)
    assert meeting is not None
    second = huddle.parts.meetings.occurrences(meeting, product_clock(), count=2)[1]
    tokyo_day = second.astimezone(ZoneInfo("Asia/Tokyo")).date()
    [answer] = (await huddle.say("ops", "alice", f"/meet cancel {meeting_id} {tokyo_day}"))["posts"]
    assert answer["text"] == f"Cancelled “Late sync” on {second:%a %d %b} 23:30 UTC."


async def test_open_action_items_carry_over_to_the_next_occurrences_agenda(
    huddle: RunningHuddle, product_clock: ShiftedClock
) -> None:
    # A few seconds before a whole minute, a meeting every day at that minute: the scheduler
    # opens the first one itself, as it would at 09:00.
    at = product_clock.start.replace(second=0, microsecond=0) + timedelta(minutes=1)
    product_clock.set(at - timedelta(seconds=3))
    [card] = (await huddle.say("ops", "alice", f"/meet schedule every day {at:%H:%M} Daily"))[
        "posts"
    ][:1]
    meeting_id = card["text"].split("id `")[1].split("`")[0]
    started = await wait_for_post(
        huddle, "ops", "bob", lambda p: p["title"] == "Daily" and p["buttons"], within=30
    )
    async with HuddleClient(started["buttons"][0]["url"], "Bob", width=160, height=120) as bob:
        await bob.join()
        await bob.send({"type": "notes", "text": "TODO @bob fix the flaky deploy"})
    await wait_for_post(
        huddle, "ops", "bob", lambda p: p["title"] == "Meeting notes: Daily", within=30
    )
    # Tomorrow's agenda card (up since the first one started) now lists what is still open.
    tomorrow = await wait_for_post(
        huddle,
        "ops",
        "bob",
        lambda p: (
            p["title"] == "Scheduled: Daily"
            and p["id"] != card["id"]
            and "@bob: fix the flaky deploy" in p["text"]
        ),
        within=30,
    )
    assert "Open from last time:" in tomorrow["text"]
    meeting = await huddle.parts.store.meeting(meeting_id)
    assert meeting is not None
    second = huddle.parts.meetings.occurrences(meeting, at)[0]
    assert second == at + timedelta(days=1)
