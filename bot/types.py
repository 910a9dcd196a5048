"""Neutral types between adapters and the core: a `Command` in, `Post`s and `Reply`s out."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

#: The product's clock: every date the core decides (due days, "tomorrow", expiry) comes from it.
#: One is made in ``adapters.server.build`` and handed to everything; tests pass their own.
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The system's time, in UTC: the clock of a running product."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class ChannelRef:
    """A channel on one platform, e.g. ``ChannelRef("slack", "C024BE91L")``."""

    platform: str
    channel_id: str

    def __str__(self) -> str:
        return f"{self.platform}:{self.channel_id}"


@dataclass(frozen=True)
class User:
    """Who typed: platform id, name to show, and their IANA zone if the platform knows it."""

    id: str
    name: str
    zone: str | None = None


@dataclass(frozen=True)
class Command:
    """`/meet ...` as typed by someone in a channel; ``text`` is what follows `/meet`."""

    channel: ChannelRef
    user: User
    text: str


@dataclass(frozen=True)
class Button:
    """A link button (opens ``url``) or, with ``action`` set, a button that sends an `Action`."""

    label: str
    url: str = ""
    action: str = ""


@dataclass(frozen=True)
class Post:
    """A message the core puts in a channel and may later edit.

    ``key`` names the post inside the core (stable across edits, e.g. ``huddle/k3f9qz/card``);
    adapters map it to the platform's own message id. ``thread_of`` is the key of the parent post
    when this one belongs in its thread.
    """

    key: str
    channel: ChannelRef
    text: str
    title: str = ""
    buttons: tuple[Button, ...] = ()
    thread_of: str | None = None
    #: Deliver privately to this user id (a direct message where the platform has them).
    to_user: str | None = None
    #: Set by the outbox when an earlier send's outcome is unknown (the process died mid-send):
    #: the adapter should look for the post (by ``key``) on the platform before sending again.
    resend: bool = False


@dataclass(frozen=True)
class Action:
    """Someone pressed an action button (RSVP, feedback, done) under a post in ``channel``."""

    channel: ChannelRef
    user: User
    action: str


@dataclass(frozen=True)
class Reply:
    """An answer only the person who typed the command sees (ephemeral where the platform can)."""

    text: str
    buttons: tuple[Button, ...] = ()


@dataclass(frozen=True)
class Delivered:
    """A post as it landed on its platform: ``ref`` is the platform's message id."""

    post: Post
    ref: str


@dataclass
class CommandResult:
    """What handling one command produced: private replies and the posts put in channels."""

    replies: list[Reply] = field(default_factory=list)
    posted: list[Delivered] = field(default_factory=list)


@dataclass(frozen=True)
class HuddleSnapshot:
    """A huddle's state as platforms may mirror it natively (Slack's Calls API, say).

    Sent to the platform of the huddle's channel each time the card changes; ``present`` holds
    ``(participant_id, name)`` pairs for who is in the call right now.
    """

    huddle_id: str
    title: str
    channel: ChannelRef
    host: User
    join_url: str | None
    is_open: bool
    present: tuple[tuple[str, str], ...]
    card_ref: str | None


@dataclass(frozen=True)
class MeetingSnapshot:
    """A scheduled meeting as platforms may mirror it natively (Discord's scheduled events).

    Sent to the platform of the meeting's channel when it is scheduled, changed, cancelled, and
    when an occurrence starts (``starts_at`` is then the next one, or None when none is left).
    """

    meeting_id: str
    title: str
    channel: ChannelRef
    description: str
    starts_at: datetime | None
    ends_at: datetime | None
    rrule: str | None
    zone: str
    url: str
    cancelled: bool


_TIME = re.compile(r"<t:(\d{1,12})\|([^>]*)>")


def time_markup(moment: datetime, zone: str) -> str:
    """A time that each reader's app may show in their own zone; the fallback names ``zone``.

    Adapters render ``<t:UNIX|fallback>`` natively (Slack ``<!date^...>``, Discord ``<t:...:f>``,
    the web chat in the browser's zone) or show the fallback text.
    """
    local = moment.astimezone(ZoneInfo(zone))
    fallback = f"{local:%a %d %b %H:%M} {zone}"
    return f"<t:{int(moment.timestamp())}|{fallback}>"


def render_times(text: str, render: Callable[[int, str], str]) -> str:
    """Replace every time markup in ``text`` with ``render(unix_seconds, fallback)``."""
    return _TIME.sub(lambda m: render(int(m[1]), m[2]), text)


def plain_times(text: str) -> str:
    """Time markup shown as its fallback text (for platforms with no local-time rendering)."""
    return render_times(text, lambda _, fallback: fallback)
