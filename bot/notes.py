"""Meeting notes: what people typed in the call, read for decisions and action items.

Lines starting ``DECISION:`` are decisions; ``TODO @name <text> [by <date>]`` lines are action
items with an owner and a due date (``by 2026-12-01``, ``by friday``, ``by tomorrow``). A relative
due word is about its owner, so it is kept as typed here and read on the owner's calendar
(:func:`due_moment`), never on the channel's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.cards import duration_text
from bot.records import ActionItem, Attendance, ChatLine, Huddle
from bot.types import time_markup
from bot.when import ISO_DATE, RRULE_DAY_INDEX, WEEKDAYS

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
    #: The due word as typed (``today``, ``friday``, ``2026-12-01``), read by :func:`due_date`.
    due: str | None


@dataclass(frozen=True)
class ReadNotes:
    """Decisions and action items found in the notes."""

    decisions: tuple[str, ...]
    actions: tuple[ActionItemDraft, ...]


def read_notes(text: str) -> ReadNotes:
    """Find decisions and action items (due words stay as typed: see :func:`due_moment`)."""
    decisions: list[str] = []
    actions: list[ActionItemDraft] = []
    for line in text.splitlines():
        if match := DECISION.match(line):
            decisions.append(match["text"])
        elif match := TODO.match(line):
            owner, due_word = match["owner"].rstrip(":,"), match["due"]
            if due_word and due_date(due_word, date.min) is None:
                # Not a date ("by someday"): part of the text, and the default due applies.
                actions.append(ActionItemDraft(owner, f"{match['text']} by {due_word}", None))
            else:
                actions.append(ActionItemDraft(owner, match["text"], due_word))
    return ReadNotes(tuple(decisions), tuple(actions))


def due_date(word: str, today: date) -> date | None:
    """The day ``word`` names, seen from ``today`` (the owner's), or None if it names none."""
    word = word.lower()
    if word == "today":
        return today
    if word == "tomorrow":
        return today + timedelta(days=1)
    if word in WEEKDAYS:
        ahead = (RRULE_DAY_INDEX[WEEKDAYS[word]] - today.weekday()) % 7 or 7
        return today + timedelta(days=ahead)
    try:
        return date.fromisoformat(word) if ISO_DATE.match(word) else None
    except ValueError:
        return None


def next_working_day(after: date) -> date:
    """The next Monday-to-Friday day after ``after``."""
    day = after + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def due_moment(due: str | None, now: datetime, zone: str) -> datetime:
    """When an item is due: 10:00 in the owner's ``zone`` on the day ``due`` names on the owner's
    calendar at ``now`` (default: the owner's next working day)."""
    tz = ZoneInfo(zone)
    today = now.astimezone(tz).date()
    day = (due_date(due, today) if due else None) or next_working_day(today)
    return datetime.combine(day, DEFAULT_DUE_HOUR, tz)


def action_line(item: ActionItem, owner_zone: str) -> str:
    """``• `id` @owner: text (due <when, in the owner's zone>)``, as the notes thread lists it."""
    return f"• `{item.id}` @{item.owner}: {item.text} (due {time_markup(item.due_at, owner_zone)})"


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
    items: Sequence[tuple[ActionItem, str]],
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
    lines.append(f"Host: {huddle.host_name}")
    names = list(dict.fromkeys(s.name for s in stays))
    removed = {s.name: s.removed_by for s in stays if s.removed_by}
    if names:
        lines.append(
            "Attendees: "
            + ", ".join(
                f"{name} ({duration_text(time_in_call(stays, name, ended))}"
                + (f", removed by {removed[name]})" if name in removed else ")")
                for name in names
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
    if items:
        lines.append("Action items:")
        lines.extend(action_line(item, owner_zone) for item, owner_zone in items)
    if notes.strip():
        lines.append("Notes:")
        lines.append(notes.strip())
    if recording_url:
        lines.append(f"Recording: {recording_url}")
    return "\n".join(lines)


#: Longest chat log posted, in characters (the platforms' message limits are a few thousand).
MAX_CHAT_TEXT = 3500


def chat_text(lines: Sequence[ChatLine], zone: str) -> str:
    """``HH:MM Name: text`` per message in ``zone``; the latest ones if it is too long."""
    tz = ZoneInfo(zone)
    rendered = [f"{line.at.astimezone(tz):%H:%M} {line.name}: {line.text}" for line in lines]
    kept: list[str] = []
    size = 0
    for line in reversed(rendered):
        size += len(line) + 1
        if size > MAX_CHAT_TEXT:
            break
        kept.append(line)
    left_out = len(rendered) - len(kept)
    head = [f"({left_out} earlier messages left out)"] if left_out else []
    return "\n".join([*head, *reversed(kept), f"(times in {zone})"])
