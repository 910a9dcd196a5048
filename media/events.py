"""Events the media core emits for whoever listens (the bot core subscribes to them)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ParticipantJoined:
    """A participant entered a huddle (after `join`, before media flows)."""

    huddle_id: str
    participant_id: str
    name: str
    at: datetime


@dataclass(frozen=True)
class ParticipantLeft:
    """A participant left a huddle: said `leave`, closed the page, or lost the connection."""

    huddle_id: str
    participant_id: str
    name: str
    at: datetime


@dataclass(frozen=True)
class NotesChanged:
    """Someone edited the huddle's shared notes; ``text`` is the whole new text."""

    huddle_id: str
    text: str
    by: str
    at: datetime


MediaEvent = ParticipantJoined | ParticipantLeft | NotesChanged
MediaListener = Callable[[MediaEvent], Awaitable[None]]


@dataclass(frozen=True)
class HuddleAccess:
    """What the media core needs to know about a huddle before letting someone in."""

    huddle_id: str
    title: str
    open: bool
    #: Shown on the refusal page when ``open`` is false ("This huddle ended at 14:05 UTC.").
    closed_reason: str = ""
    #: The shared notes so far (they outlive the room: a reload or a rejoin finds them).
    notes: str = ""


#: Asked before every join page and signaling connection; ``None`` means "no such huddle".
HuddleGate = Callable[[str], Awaitable[HuddleAccess | None]]
