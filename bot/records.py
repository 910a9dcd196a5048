"""What the store keeps, as plain dataclasses (rows become these in one place: bot/store.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.types import ChannelRef


@dataclass(frozen=True)
class Huddle:
    """A call started by `/meet` in a channel."""

    id: str
    title: str
    host_id: str
    host_name: str
    channel: ChannelRef
    state: str  # "open" | "ended"
    created_at: datetime
    first_joined_at: datetime | None = None
    ended_at: datetime | None = None
    end_reason: str | None = None
    meeting_id: str | None = None
    #: Locked by a host: only host links get in.
    locked: bool = False
    #: Waiting room on: a host lets newcomers in (guests always wait).
    lobby: bool = False
    #: The passcode's digest (media.passcodes), None without one.
    passcode: str | None = None
    #: Whether the in-call chat goes into the notes thread.
    chat_to_notes: bool = True

    @property
    def is_open(self) -> bool:
        return self.state == "open"

    @property
    def card_key(self) -> str:
        """The core's key for this huddle's card in its home channel."""
        return f"huddle/{self.id}/card"

    def card_key_in(self, channel: ChannelRef) -> str:
        """The key of this huddle's card in ``channel`` (its home or a channel it was shared to)."""
        if channel == self.channel:
            return self.card_key
        return f"{self.card_key}@{channel.platform}:{channel.channel_id}"


@dataclass(frozen=True)
class Attendance:
    """One stay of one participant in a huddle; ``left_at`` is None while they are in."""

    huddle_id: str
    participant_id: str
    name: str
    joined_at: datetime
    left_at: datetime | None
    #: The host who removed them, if one did.
    removed_by: str | None = None


@dataclass(frozen=True)
class PostRef:
    """Where a core post landed: platform message id in a channel."""

    key: str
    channel: ChannelRef
    ref: str


@dataclass(frozen=True)
class OutboxEntry:
    """A post waiting in the outbox: what it should say now and how far delivery got."""

    id: int
    key: str
    channel: ChannelRef
    thread_of: str | None
    payload: str  # JSON: title, text, buttons
    version: int
    delivered_version: int
    ref: str | None
    attempts: int
    #: A previous process began sending it and died before the outcome was recorded.
    sending: bool = False


@dataclass(frozen=True)
class ChatMessage:
    """A message in the built-in web chat."""

    id: int
    channel: str
    author: str
    is_bot: bool
    title: str
    text: str
    buttons: list[dict[str, str]]
    thread_of: int | None
    visible_to: str | None
    created_at: datetime
    edited_at: datetime | None


@dataclass(frozen=True)
class Meeting:
    """A scheduled meeting, one-off or recurring (``rrule``), anchored in its IANA ``zone``."""

    id: str
    title: str
    channel: ChannelRef
    host_id: str
    host_name: str
    zone: str
    local_start: datetime  # naive wall-clock DTSTART in ``zone``
    starts_at: datetime  # first occurrence, UTC
    duration_s: int
    rrule: str | None
    agenda: tuple[str, ...]
    remind_s: int
    state: str  # "scheduled" | "cancelled"
    created_at: datetime
    #: Its huddles open with the waiting room on.
    lobby: bool = False


@dataclass(frozen=True)
class Rsvp:
    """Someone's answer to a meeting invitation."""

    meeting_id: str
    user_id: str
    user_name: str
    answer: str  # "yes" | "no"
    zone: str | None = None


@dataclass(frozen=True)
class ActionItem:
    """A `TODO @owner ...` from a meeting's notes, followed up until done."""

    id: str
    huddle_id: str
    meeting_id: str | None
    channel: ChannelRef
    owner: str
    text: str
    due_at: datetime
    state: str  # "open" | "done"


@dataclass(frozen=True)
class ChatLine:
    """One message of a call's chat."""

    name: str
    text: str
    at: datetime
