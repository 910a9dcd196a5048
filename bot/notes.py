"""Meeting notes: what people typed in the call, read for decisions and action items.

Lines starting ``DECISION:`` are decisions; ``TODO @name <text> [by <date>]`` lines are action
items with an owner and a due date (``by 2026-12-01``, ``by friday``, ``by tomorrow``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.cards import duration_text
from bot.records import Attendance, Huddle
from bot.when import RRULE_DAY_INDEX, WEEKDAYS

DECISION = re.compile(r"^\s*(?:[-*]\s*)?DECISION:\s*(?P<text>.+?)\s*$", re.IGNORECASE)
TODO = re.compile(
    r"^\s*(?:[-*]\s*)?TODO\s+@(?P<owner>[^\s]+)\s+(?P<text>.+?)"
    r"(?:\s+by\s+(?P<due>[\w-]+))?\s*$",
    re.IGNORECASE,
)
#: Follow-ups without a date are due the next working day at this hour, in the owner's zone.
DEFAULT_DUE_HOUR = time(10, 0)


@dataclass(frozen=True)
class ActionItemDraft:
    """An action item as read from the notes, before it is stored."""

    owner: str
    text: str
    due: date | None


@dataclass(frozen=True)
class ReadNotes:
    """Decisions and action items found in the notes."""

    decisions: tuple[str, ...]
    actions: tuple[ActionItemDraft, ...]


def read_notes(text: str, today: date) -> ReadNotes:
    """Find decisions and action items; ``today`` anchors relative due dates."""
    decisions: list[str] = []
    actions: list[ActionItemDraft] = []
    for line in text.splitlines():
        if match := DECISION.match(line):
            decisions.append(match["text"])
        elif match := TODO.match(line):
            due_word = match["due"]
            due = _due(due_word, today) if due_word else None
            item_text = match["text"] if due or not due_word else f"{match['text']} by {due_word}"
            actions.append(ActionItemDraft(match["owner"].rstrip(":,"), item_text, due))
    return ReadNotes(tuple(decisions), tuple(actions))


def _due(word: str, today: date) -> date | None:
    word = word.lower()
    if word == "today":
        return today
    if word == "tomorrow":
        return today + timedelta(days=1)
    if word in WEEKDAYS:
        ahead = (RRULE_DAY_INDEX[WEEKDAYS[word]] - today.weekday()) % 7 or 7
        return today + timedelta(days=ahead)
    try:
        return date.fromisoformat(word)
    except ValueError:
        return None


def next_working_day(after: date) -> date:
    """The next Monday-to-Friday day after ``after``."""
    day = after + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def due_moment(due: date | None, today: date, zone: str) -> datetime:
    """When a follow-up reminder fires: 10:00 on the due day (default: next working day)."""
    day = due or next_working_day(today)
    return datetime.combine(day, DEFAULT_DUE_HOUR, ZoneInfo(zone))


def time_in_call(stays: Sequence[Attendance], name: str, until: datetime) -> timedelta:
    """Total time ``name`` spent in the call (several stays add up)."""
    total = timedelta()
    for stay in stays:
        if stay.name == name:
            total += (stay.left_at or until) - stay.joined_at
    return total


def notes_text(
    huddle: Huddle,
    stays: Sequence[Attendance],
    zone: str,
    agenda: Sequence[str],
    notes: str,
    read: ReadNotes,
    action_ids: Sequence[str],
    recording_url: str | None,
) -> str:
    """The body of the meeting-notes reply posted under the huddle's card."""
    tz = ZoneInfo(zone)
    started = huddle.first_joined_at or huddle.created_at
    ended = huddle.ended_at or started
    lines = [
        f"{started.astimezone(tz):%a %d %b %H:%M}–{ended.astimezone(tz):%H:%M} {zone}"
        f" · {duration_text(ended - started)}"
    ]
    names = list(dict.fromkeys(s.name for s in stays))
    if names:
        lines.append(
            "Attendees: "
            + ", ".join(
                f"{name} ({duration_text(time_in_call(stays, name, ended))})" for name in names
            )
        )
    else:
        lines.append("Attendees: nobody joined")
    if agenda:
        lines.append("Agenda:")
        lines.extend(f"{n}. {item}" for n, item in enumerate(agenda, 1))
    if read.decisions:
        lines.append("Decisions:")
        lines.extend(f"• {decision}" for decision in read.decisions)
    if read.actions:
        lines.append("Action items:")
        for item_id, item in zip(action_ids, read.actions, strict=True):
            due = f" (due {item.due:%a %d %b})" if item.due else ""
            lines.append(f"• `{item_id}` @{item.owner}: {item.text}{due}")
    if notes.strip():
        lines.append("Notes:")
        lines.append(notes.strip())
    if recording_url:
        lines.append(f"Recording: {recording_url}")
    return "\n".join(lines)
