"""Neutral types between adapters and the core: a `Command` in, `Post`s and `Reply`s out."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ChannelRef:
    """A channel on one platform, e.g. ``ChannelRef("slack", "C024BE91L")``."""

    platform: str
    channel_id: str

    def __str__(self) -> str:
        return f"{self.platform}:{self.channel_id}"


@dataclass(frozen=True)
class User:
    """Who typed: the platform's id and the name to show."""

    id: str
    name: str


@dataclass(frozen=True)
class Command:
    """`/meet ...` as typed by someone in a channel; ``text`` is what follows `/meet`."""

    channel: ChannelRef
    user: User
    text: str


@dataclass(frozen=True)
class Button:
    """A link button: opens ``url`` in the browser."""

    label: str
    url: str


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
    thread_ref: str | None = None


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
