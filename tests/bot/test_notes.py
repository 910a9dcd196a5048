"""Reading decisions and action items out of meeting notes."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

from bot.notes import ActionItemDraft, due_moment, next_working_day, read_notes

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
    read = read_notes(NOTES, today=date(2026, 11, 22))  # a Sunday
    assert read.decisions == ("ship on Monday", "keep the old API for a month")
    assert read.actions == (
        ActionItemDraft("bob", "write the migration guide", date(2026, 12, 1)),
        ActionItemDraft("carol", "ping security", date(2026, 11, 27)),
        ActionItemDraft("dave", "tidy the backlog", None),
        ActionItemDraft("erin", "fix it by someday", None),
    )


def test_default_due_is_next_working_day_ten_in_the_owners_zone() -> None:
    assert next_working_day(date(2026, 11, 27)) == date(2026, 11, 30)  # Friday -> Monday
    assert next_working_day(date(2026, 11, 23)) == date(2026, 11, 24)
    moment = due_moment(None, date(2026, 11, 27), "Asia/Tokyo")
    assert moment == datetime(2026, 11, 30, 10, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
