"""Reading "when" the way people type it: `tomorrow 10:00`, `in 2 minutes`, `every weekday 09:30`.

Times are read in the invoker's IANA zone. A recurrence becomes an RFC 5545 RRULE whose start is a
local wall-clock time in that zone, so "every monday 10:00" stays 10:00 across daylight-saving
changes. Nothing here touches the clock: ``now`` is passed in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = {
    "monday": "MO",
    "mon": "MO",
    "tuesday": "TU",
    "tue": "TU",
    "tues": "TU",
    "wednesday": "WE",
    "wed": "WE",
    "thursday": "TH",
    "thu": "TH",
    "thurs": "TH",
    "friday": "FR",
    "fri": "FR",
    "saturday": "SA",
    "sat": "SA",
    "sunday": "SU",
    "sun": "SU",
}
RRULE_DAY_INDEX = {"MO": 0, "TU": 1, "WE": 2, "TH": 3, "FR": 4, "SA": 5, "SU": 6}
UNITS = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
}
CLOCK = re.compile(r"^(\d{1,2})(?::(\d{2}))?\s*(am|pm)?$")
DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+)m(?:in)?)?(?:(\d+)s)?$")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DEFAULT_DURATION = timedelta(minutes=30)
MAX_DURATION = timedelta(hours=12)


class WhenError(ValueError):
    """The time could not be read; the message says what would work."""


@dataclass(frozen=True)
class Schedule:
    """A meeting time as understood: first start (aware, in ``zone``) and maybe a recurrence."""

    start: datetime
    zone: str
    duration: timedelta = DEFAULT_DURATION
    rrule: str | None = None
    title: str = ""
    agenda: tuple[str, ...] = ()
    remind: timedelta | None = None
    #: Open the huddle with its waiting room on (the ``lobby`` option).
    lobby: bool = False
    words: list[str] = field(default_factory=list, compare=False, repr=False)


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (e.g. ``Europe/Berlin``) or a clear error."""
    if not re.match(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$", name) or ".." in name:
        raise WhenError(f"`{name[:40]}` is not a time zone. Use a name like `Europe/Berlin`.")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise WhenError(
            f"`{name[:40]}` is not a time zone I know. Use an IANA name like `America/New_York`."
        ) from exc


def _clock(word: str) -> time | None:
    match = CLOCK.match(word.lower())
    if not match:
        return None
    hour, minute, half = int(match[1]), int(match[2] or 0), match[3]
    if match[2] is None and half is None:
        return None  # a bare number is not a time ("in 2" / a title like "Q3 2026")
    if half:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if half == "pm" else 0)
    if hour > 23 or minute > 59:
        return None
    return time(hour, minute)


def _take_clock(words: list[str]) -> time:
    if words and words[0].lower() == "at":
        words.pop(0)
    if len(words) >= 2 and words[1].lower() in ("am", "pm"):
        words[0:2] = [words[0] + words[1]]
    if not words or (clock := _clock(words[0])) is None:
        raise WhenError("Give a time like `10:00`, `9:30am` or `14:15` after the day.")
    words.pop(0)
    return clock


def _local(day: date, clock: time, tz: ZoneInfo) -> datetime:
    # fold=0 picks the first of two repeated wall times; a wall time skipped by a DST jump is
    # moved forward by the round trip through UTC.
    naive = datetime.combine(day, clock)
    aware = naive.replace(tzinfo=tz)
    return aware.astimezone(ZoneInfo("UTC")).astimezone(tz)


def parse_when(text: str, now: datetime, tz_name: str) -> Schedule:
    """Read ``<when> [for <duration>] [remind <duration>] [lobby] [<title>] [agenda: a; b]``."""
    tz = zone(tz_name)
    local_now = now.astimezone(tz)
    if re.search(r"(?i)\bagenda:", text):
        body, agenda_text = re.split(r"(?i)\bagenda:", text, maxsplit=1)
    else:
        body, agenda_text = text, ""
    words = body.split()
    if not words:
        raise WhenError("When? For example `/meet schedule tomorrow 10:00 Design review`.")
    rrule: str | None = None
    head = words[0].lower()
    if head == "in":
        words.pop(0)
        amount, unit = _amount(words)
        start = local_now + timedelta(seconds=amount * UNITS[unit])
    elif head == "every":
        words.pop(0)
        start, rrule = _every(words, local_now, tz)
    else:
        start = _day_and_clock(words, local_now, tz)
    duration, remind, lobby = DEFAULT_DURATION, None, False
    while words and (
        # `lobby` as typed, lower case: "Lobby redesign" stays a title.
        words[0] == "lobby" or (len(words) >= 2 and words[0].lower() in ("for", "remind"))
    ):
        keyword = words.pop(0).lower()
        if keyword == "lobby":
            lobby = True
            continue
        span = _duration(words.pop(0))
        if keyword == "for":
            if span > MAX_DURATION:
                raise WhenError("Meetings can last up to 12 hours.")
            duration = span
        else:
            remind = span
    agenda = tuple(item.strip() for item in agenda_text.split(";") if item.strip())
    if start <= local_now - timedelta(seconds=1) and rrule is None:
        raise WhenError(f"{start:%a %d %b %H:%M} {tz_name} is in the past.")
    return Schedule(
        start=start,
        zone=tz_name,
        duration=duration,
        rrule=rrule,
        title=" ".join(words).strip(),
        agenda=agenda,
        remind=remind,
        lobby=lobby,
    )


def _amount(words: list[str]) -> tuple[float, str]:
    if not words:
        raise WhenError("In how long? For example `in 10 minutes`.")
    match = re.match(r"^(\d+(?:\.\d+)?)([a-z]*)$", words.pop(0).lower())
    if not match:
        raise WhenError("In how long? For example `in 10 minutes` or `in 2h`.")
    unit = match[2] or (words.pop(0).lower() if words else "")
    if unit not in UNITS:
        raise WhenError("Use seconds, minutes, hours or days: `in 10 minutes`.")
    amount = float(match[1])
    if amount * UNITS[unit] > 366 * 86400:
        raise WhenError("That is more than a year away.")
    return amount, unit


def _duration(word: str) -> timedelta:
    match = DURATION.match(word.lower())
    if not match or not (match[1] or match[2] or match[3]):
        raise WhenError(f"`{word[:20]}` is not a duration. Use `45m`, `1h` or `1h30m`.")
    return timedelta(
        hours=float(match[1] or 0), minutes=int(match[2] or 0), seconds=int(match[3] or 0)
    )


def _day_and_clock(words: list[str], local_now: datetime, tz: ZoneInfo) -> datetime:
    head = words[0].lower()
    today = local_now.date()
    if head in ("today", "tomorrow"):
        words.pop(0)
        day = today + timedelta(days=1 if head == "tomorrow" else 0)
        return _local(day, _take_clock(words), tz)
    if head in WEEKDAYS:
        words.pop(0)
        clock = _take_clock(words)
        ahead = (RRULE_DAY_INDEX[WEEKDAYS[head]] - today.weekday()) % 7
        candidate = _local(today + timedelta(days=ahead), clock, tz)
        return candidate if candidate > local_now else candidate + timedelta(days=7)
    if ISO_DATE.match(head):
        words.pop(0)
        try:
            day = date.fromisoformat(head)
        except ValueError as exc:
            raise WhenError(f"`{head}` is not a date.") from exc
        return _local(day, _take_clock(words), tz)
    if _clock(head) is not None or (len(words) > 1 and _clock(head + words[1].lower())):
        clock = _take_clock(words)
        candidate = _local(today, clock, tz)
        return candidate if candidate > local_now else _local(today + timedelta(1), clock, tz)
    raise WhenError(
        "I could not read when. Try `tomorrow 10:00`, `friday 14:30`, `in 15 minutes`, "
        "`2026-12-01 09:00` or `every weekday 09:30`."
    )


def _every(words: list[str], local_now: datetime, tz: ZoneInfo) -> tuple[datetime, str]:
    if not words:
        raise WhenError("Every what? For example `every weekday 09:30` or `every monday 10:00`.")
    head = words.pop(0).lower().rstrip(",")
    if head in ("day", "daily"):
        days = list(RRULE_DAY_INDEX)
        rule = "FREQ=DAILY"
    elif head in ("weekday", "weekdays"):
        days = ["MO", "TU", "WE", "TH", "FR"]
        rule = "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"
    else:
        names = [part for part in re.split(r"[,+]|\band\b", head) if part]
        while words and (words[0].lower().rstrip(",") in WEEKDAYS or words[0].lower() == "and"):
            word = words.pop(0).lower().rstrip(",")
            if word != "and":
                names.append(word)
        if not names or any(name not in WEEKDAYS for name in names):
            raise WhenError("Every what? Use `day`, `weekday` or day names like `monday`.")
        days = list(dict.fromkeys(WEEKDAYS[name] for name in names))
        rule = "FREQ=WEEKLY;BYDAY=" + ",".join(days)
    clock = _take_clock(words)
    today = local_now.date()
    for ahead in range(8):
        day = today + timedelta(days=ahead)
        candidate = _local(day, clock, tz)
        if candidate > local_now and any(RRULE_DAY_INDEX[d] == day.weekday() for d in days):
            return candidate, rule
    raise AssertionError("a weekly rule always has a day within 8 days")
