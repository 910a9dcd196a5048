"""iCalendar for scheduled meetings: one meeting's .ics, and a channel's subscribable feed.

Built with the icalendar package: DTSTART in the meeting's IANA zone (TZID) with a VTIMEZONE
for it, the RRULE as stored, cancelled occurrences as EXDATE, and the meeting link as URL and
LOCATION so any calendar can open the call.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vRecur

from bot.records import Meeting


def _event(meeting: Meeting, join_url: str, cancelled: Iterable[datetime], now: datetime) -> Event:
    zone = ZoneInfo(meeting.zone)
    start = meeting.local_start.replace(tzinfo=zone)
    event = Event()
    event.add("uid", f"{meeting.id}@huddle")
    event.add("dtstamp", now.astimezone(UTC))
    event.add("summary", meeting.title)
    event.add("dtstart", start)
    event.add("dtend", start + timedelta(seconds=meeting.duration_s))
    event.add("url", join_url)
    event.add("location", join_url)
    description = [f"Join: {join_url}", f"Host: {meeting.host_name}"]
    if meeting.agenda:
        description.append("Agenda:")
        description.extend(f"{n}. {item}" for n, item in enumerate(meeting.agenda, 1))
    event.add("description", "\n".join(description))
    if meeting.rrule:
        event.add("rrule", vRecur.from_ical(meeting.rrule))
        for occurrence in sorted(cancelled):
            event.add("exdate", occurrence.astimezone(zone))
    if meeting.state == "cancelled":
        event.add("status", "CANCELLED")
    return event


def calendar(
    name: str,
    meetings: Iterable[tuple[Meeting, str, Iterable[datetime]]],
    now: datetime,
) -> bytes:
    """A VCALENDAR with one VEVENT per ``(meeting, join url, cancelled occurrences)``."""
    cal = Calendar()
    cal.add("prodid", "-//huddle//meetings//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", name)
    for meeting, url, cancelled in meetings:
        cal.add_component(_event(meeting, url, cancelled, now))
    cal.add_missing_timezones()
    return bytes(cal.to_ical())
