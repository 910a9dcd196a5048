"""Reading decisions and action items out of meeting notes."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.notes import ActionItemDraft, due_moment, next_working_day, read_notes
from tests.clock import INSTANTS

NOTES = """Talked about the rollout.
DECISION: ship on Monday
- decision: keep the old API for a month
TODO @bob write the migration guide by 2026-12-01
TODO @carol: ping security by friday
TODO @dave tidy the backlog
todo nobody here
TODO @erin fix it by someday
"""


def test_decisions_and_action_items_are_read() -> None:
    read = read_notes(NOTES)
    assert read.decisions == ("ship on Monday", "keep the old API for a month")
    assert read.actions == (
        ActionItemDraft("bob", "write the migration guide", "2026-12-01"),
        ActionItemDraft("carol", "ping security", "friday"),
        ActionItemDraft("dave", "tidy the backlog", None),
        ActionItemDraft("erin", "fix it by someday", None),
    )


def test_default_due_is_next_working_day_ten_in_the_owners_zone() -> None:
    assert next_working_day(date(2026, 11, 27)) == date(2026, 11, 30)  # Friday -> Monday
    assert next_working_day(date(2026, 11, 23)) == date(2026, 11, 24)
    friday_in_tokyo = datetime(2026, 11, 27, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    moment = due_moment(None, friday_in_tokyo, "Asia/Tokyo")
    assert moment == datetime(2026, 11, 30, 10, 0, tzinfo=ZoneInfo("Asia/Tokyo"))


def test_relative_due_words_are_read_on_the_owners_calendar() -> None:
    # The case: 04:37 UTC on Wed 2 Dec is 16:37 on Tue 1 Dec for an owner at UTC-12,
    # while the channel (UTC+14) is already on Wed 2 Dec.
    now = datetime(2026, 12, 2, 4, 37, tzinfo=UTC)
    owner = "Etc/GMT+12"
    assert due_moment("today", now, owner) == datetime(2026, 12, 1, 10, 0, tzinfo=ZoneInfo(owner))
    assert due_moment("tomorrow", now, owner).date() == date(2026, 12, 2)
    assert due_moment("wednesday", now, owner).date() == date(2026, 12, 2)
    assert due_moment("tuesday", now, owner).date() == date(2026, 12, 8)  # today is Tuesday
    assert due_moment("2026-12-05", now, owner).date() == date(2026, 12, 5)
    assert due_moment(None, now, owner).date() == date(2026, 12, 2)
    # The same instant on the other side of the date line.
    assert due_moment("today", now, "Etc/GMT-14").date() == date(2026, 12, 2)


@pytest.mark.parametrize("instant", list(INSTANTS))
@pytest.mark.parametrize(
    "zone", ["Etc/GMT+12", "America/New_York", "UTC", "Europe/Berlin", "Pacific/Kiritimati"]
)
def test_due_days_follow_the_owners_date_at_every_instant(instant: str, zone: str) -> None:
    now = INSTANTS[instant]
    today = now.astimezone(ZoneInfo(zone)).date()
    assert due_moment("today", now, zone).date() == today
    assert due_moment("tomorrow", now, zone).date() == today + timedelta(days=1)
    friday = due_moment("friday", now, zone).date()
    assert friday.weekday() == 4 and 1 <= (friday - today).days <= 7
    default = due_moment(None, now, zone)
    assert default.date() == next_working_day(today)
    assert default.astimezone(ZoneInfo(zone)).hour == 10
