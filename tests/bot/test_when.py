"""Reading meeting times as people type them, in their own time zone."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr

from bot.when import Schedule, WhenError, parse_when
from tests.clock import INSTANTS

BERLIN = ZoneInfo("Europe/Berlin")
# Sunday 22 Nov 2026, 15:42 UTC = 16:42 in Berlin.
NOW = datetime(2026, 11, 22, 15, 42, tzinfo=UTC)


def when(text: str, tz: str = "Europe/Berlin", now: datetime = NOW) -> Schedule:
    return parse_when(text, now, tz)


def test_tomorrow_at_ten_with_title_and_agenda() -> None:
    s = when("tomorrow 10:00 Design review agenda: API; rollout;  risks ;")
    assert s.start == datetime(2026, 11, 23, 10, 0, tzinfo=BERLIN)
    assert (s.title, s.agenda, s.rrule) == ("Design review", ("API", "rollout", "risks"), None)
    assert s.duration == timedelta(minutes=30)


def test_in_two_minutes() -> None:
    s = when("in 2 minutes Standup")
    assert s.start == NOW + timedelta(minutes=2)
    assert s.title == "Standup"
    assert when("in 30s").start == NOW + timedelta(seconds=30)
    assert when("in 1.5 hours").start == NOW + timedelta(minutes=90)


def test_every_weekday() -> None:
    s = when("every weekday 09:30 Standup")
    assert s.rrule == "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"
    assert s.start == datetime(2026, 11, 23, 9, 30, tzinfo=BERLIN)  # Monday
    assert s.title == "Standup"


def test_every_monday_for_45_minutes() -> None:
    s = when("every monday 10:00 for 45m Planning")
    assert s.rrule == "FREQ=WEEKLY;BYDAY=MO"
    assert s.start == datetime(2026, 11, 23, 10, 0, tzinfo=BERLIN)
    assert s.duration == timedelta(minutes=45)
    assert s.title == "Planning"


def test_weekday_names_and_clock_forms() -> None:
    assert when("friday 2:30pm Demo").start == datetime(2026, 11, 27, 14, 30, tzinfo=BERLIN)
    assert when("sunday 9am").start == datetime(2026, 11, 29, 9, 0, tzinfo=BERLIN)  # next week
    assert when("17:00").start == datetime(2026, 11, 22, 17, 0, tzinfo=BERLIN)  # later today
    assert when("16:00").start == datetime(2026, 11, 23, 16, 0, tzinfo=BERLIN)  # passed: tomorrow
    assert when("2026-12-01 at 09:00").start == datetime(2026, 12, 1, 9, 0, tzinfo=BERLIN)
    assert when("every tue, thu 08:15").rrule == "FREQ=WEEKLY;BYDAY=TU,TH"
    assert when("tomorrow 10:00 for 1h30m remind 5m").remind == timedelta(minutes=5)


def test_times_are_read_in_the_invokers_zone() -> None:
    s = when("tomorrow 10:00", tz="America/New_York")
    assert s.start.astimezone(UTC) == datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


def test_weekly_rule_keeps_wall_clock_across_daylight_saving() -> None:
    # Berlin leaves summer time on Sunday 25 Oct 2026.
    before = datetime(2026, 10, 17, 8, 0, tzinfo=UTC)
    s = when("every monday 10:00 Planning", now=before)
    occurrences = list(rrulestr(s.rrule or "", dtstart=s.start)[:3])
    assert [o.astimezone(BERLIN).hour for o in occurrences] == [10, 10, 10]
    assert [o.astimezone(UTC).hour for o in occurrences] == [8, 9, 9]


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("", "When?"),
        ("someday", "could not read when"),
        ("tomorrow", "Give a time"),
        ("tomorrow 25:00", "Give a time"),
        ("in lots", "In how long?"),
        ("in 5 fortnights", "Use seconds"),
        ("in 400 days", "more than a year"),
        ("2026-02-30 10:00", "is not a date"),
        ("2020-01-01 10:00", "in the past"),
        ("tomorrow 10:00 for 13h", "up to 12 hours"),
        ("tomorrow 10:00 for ever", "not a duration"),
        ("every blue moon 10:00", "Every what?"),
    ],
)
def test_mistakes_say_what_would_work(text: str, hint: str) -> None:
    with pytest.raises(WhenError, match=hint):
        when(text)


@pytest.mark.parametrize("name", ["Mars/Olympus", "../etc/passwd", "UTC+2", "", "Europe/"])
def test_unknown_zones_are_refused(name: str) -> None:
    with pytest.raises(WhenError, match="time zone"):
        when("tomorrow 10:00", tz=name)


@pytest.mark.parametrize("instant", list(INSTANTS))
@pytest.mark.parametrize("tz", ["Etc/GMT+12", "America/New_York", "Europe/Berlin", "Asia/Tokyo"])
def test_relative_days_are_the_invokers_at_every_instant(instant: str, tz: str) -> None:
    now = INSTANTS[instant]
    local = now.astimezone(ZoneInfo(tz))
    tomorrow = when("tomorrow 10:00", tz=tz, now=now).start
    assert (tomorrow.date(), tomorrow.hour) == (local.date() + timedelta(days=1), 10)
    weekday = when("every weekday 09:30", tz=tz, now=now).start
    assert weekday > now and weekday.weekday() < 5 and (weekday.hour, weekday.minute) == (9, 30)
    assert (weekday.date() - local.date()).days <= 3
    later = when("23:59", tz=tz, now=now).start
    assert later.date() == local.date() and later > now
    monday = when("monday 10:00", tz=tz, now=now).start
    assert monday.weekday() == 0 and monday.hour == 10 and now < monday <= now + timedelta(days=7)


def test_lobby_is_an_option_not_part_of_the_title() -> None:
    when = parse_when("tomorrow 10:00 for 30m lobby Interview", NOW, "Europe/Berlin")
    assert when.lobby is True and when.title == "Interview"
    assert parse_when("tomorrow 10:00 Lobby redesign", NOW, "Europe/Berlin").lobby is False
