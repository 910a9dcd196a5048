"""Parse what follows `/meet` into one of a few typed requests, or a helpful error."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, replace

MAX_TITLE = 150
SUBCOMMANDS = (
    "help",
    "list",
    "end",
    "lock",
    "unlock",
    "host",
    "lobby",
    "invite",
    "passcode",
    "schedule",
    "tz",
    "cancel",
    "agenda",
    "rsvp",
    "done",
    "share",
)
HUDDLE_ID = re.compile(r"^[a-z0-9]{6,12}$")
#: Someone mentioned: ``<@ID>`` (what adapters turn a platform's mention into) or ``@id`` (the
#: web chat, whose user ids are names).
MENTION = re.compile(
    r"^(?:<@!?(?P<id>[A-Za-z0-9._-]{1,64})(?:\|[^>]*)?>|@(?P<name>[A-Za-z0-9._-]{1,64}))$"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")

USAGE = (
    "`/meet` starts a huddle here; `/meet <title>` names it.\n"
    "`/meet list` shows active huddles and upcoming meetings.\n"
    "`/meet end <id>` ends a huddle for everyone (its host can); `/meet lock <id>` and "
    "`/meet unlock <id>` keep newcomers out or let them in again; `/meet host <id>` sends its "
    "host your host link again.\n"
    "`/meet schedule <when> [<title>] [agenda: a; b]` schedules one, e.g. "
    "`/meet schedule tomorrow 10:00 Design review agenda: API; rollout`, "
    "`/meet schedule every weekday 09:30 for 15m Standup`, `/meet schedule in 10 minutes Sync`. "
    "Add `remind 5m` to change the 15-minute reminder, `lobby` to open it with a waiting room.\n"
    "`/meet cancel <id> [next|YYYY-MM-DD]` cancels a meeting, or one occurrence of a series.\n"
    "`/meet agenda <id> add <item>` adds to its agenda; `/meet rsvp <id> yes|no` answers.\n"
    "`/meet tz <Area/City>` sets your time zone; `/meet tz channel <Area/City>` the channel's.\n"
    "`/meet done <item id>` closes an action item from a meeting's notes.\n"
    "`/meet share <id>` posts a huddle here too (from any channel, Slack or Discord alike).\n"
    "`/meet help` shows this."
)


@dataclass(frozen=True)
class StartHuddle:
    """`/meet` or `/meet <title>`; `/meet lobby [<title>]` with the waiting room on."""

    title: str | None
    lobby: bool = False


@dataclass(frozen=True)
class ShowHelp:
    """`/meet help`."""


@dataclass(frozen=True)
class ListHuddles:
    """`/meet list`."""


@dataclass(frozen=True)
class EndHuddle:
    """`/meet end <id>`."""

    huddle_id: str


@dataclass(frozen=True)
class LockHuddle:
    """`/meet lock <id>` (``locked``) or `/meet unlock <id>`."""

    huddle_id: str
    locked: bool


@dataclass(frozen=True)
class SetLobby:
    """`/meet lobby on|off <id>`."""

    huddle_id: str
    on: bool


@dataclass(frozen=True)
class GuestLink:
    """`/meet invite <id>`: a link for people outside the channel."""

    huddle_id: str


@dataclass(frozen=True)
class SetPasscode:
    """`/meet passcode <id> [<code>|off]` (no code: one is made up; ``off``: none)."""

    huddle_id: str
    code: str | None
    off: bool = False


@dataclass(frozen=True)
class HostLink:
    """`/meet host <id> [@someone]`: the host's own link again, or one for ``to`` (a user id)."""

    huddle_id: str
    to: str | None = None


@dataclass(frozen=True)
class ScheduleMeeting:
    """`/meet schedule <when> [<title>] [agenda: ...]` (the time is read by :mod:`bot.when`)."""

    text: str


@dataclass(frozen=True)
class SetZone:
    """`/meet tz [channel] [<Area/City>]`; no zone means "show it"."""

    zone: str | None
    channel: bool = False


@dataclass(frozen=True)
class CancelMeeting:
    """`/meet cancel <id> [next|YYYY-MM-DD]`."""

    meeting_id: str
    occurrence: str | None = None  # "next" or an ISO date


@dataclass(frozen=True)
class AddAgendaItem:
    """`/meet agenda <id> add <item>`."""

    meeting_id: str
    item: str


@dataclass(frozen=True)
class Answer:
    """`/meet rsvp <id> yes|no`."""

    meeting_id: str
    answer: str


@dataclass(frozen=True)
class ShareHuddle:
    """`/meet share <id>`."""

    huddle_id: str


@dataclass(frozen=True)
class CloseItem:
    """`/meet done <item id>`."""

    item_id: str


@dataclass(frozen=True)
class ParseError:
    """The input did not make sense; ``message`` says what to type instead."""

    message: str


Request = (
    StartHuddle
    | ShowHelp
    | ListHuddles
    | EndHuddle
    | LockHuddle
    | HostLink
    | SetLobby
    | GuestLink
    | SetPasscode
    | ScheduleMeeting
    | SetZone
    | CancelMeeting
    | AddAgendaItem
    | Answer
    | CloseItem
    | ShareHuddle
    | ParseError
)


def parse(text: str) -> Request:
    """Turn the text after `/meet` into a request. Never raises."""
    text = _CONTROL.sub(" ", text).strip()
    if not text:
        return StartHuddle(title=None)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        # A quoted title is always a title, even if it spells a subcommand.
        return _title(text[1:-1].strip())
    word, _, rest = text.partition(" ")
    rest = rest.strip()
    verb = word.lower()
    if verb == "help":
        return ShowHelp()
    if verb == "list":
        if rest:
            return ParseError("`/meet list` takes nothing after it. Try just `/meet list`.")
        return ListHuddles()
    if verb == "end":
        if not rest:
            return ParseError("Which huddle? Type `/meet end <id>`; `/meet list` shows the ids.")
        huddle_id = rest.lower()
        if not HUDDLE_ID.match(huddle_id):
            return _bad_id(rest)
        return EndHuddle(huddle_id=huddle_id)
    if verb == "lobby":
        args = rest.split()
        if len(args) == 2 and args[0].lower() in ("on", "off"):
            if not HUDDLE_ID.match(args[1].lower()):
                return _bad_id(args[1])
            return SetLobby(args[1].lower(), on=args[0].lower() == "on")
        if args and args[0].lower() in ("on", "off"):
            return ParseError("Type `/meet lobby on <id>` or `/meet lobby off <id>`.")
        started = _title(rest)
        return replace(started, lobby=True) if isinstance(started, StartHuddle) else started
    if verb == "invite":
        if not HUDDLE_ID.match(rest.lower()):
            return ParseError("Type `/meet invite <id>`; the id is on the huddle's card.")
        return GuestLink(rest.lower())
    if verb == "passcode":
        args = rest.split(None, 1)
        if not args or not HUDDLE_ID.match(args[0].lower()):
            return ParseError("Type `/meet passcode <id> [<code>|off]`; the id is on the card.")
        code = args[1].strip() if len(args) == 2 else None
        if code is not None and code.lower() == "off":
            return SetPasscode(args[0].lower(), None, off=True)
        if code is not None and not re.fullmatch(r"[A-Za-z0-9 -]{4,32}", code):
            return ParseError("A passcode is 4 to 32 letters or digits (spaces and dashes are ok).")
        return SetPasscode(args[0].lower(), code)
    if verb == "host" and len(rest.split()) == 2:
        huddle_text, who = rest.split()
        if not HUDDLE_ID.match(huddle_text.lower()):
            return _bad_id(huddle_text)
        mention = MENTION.match(who)
        if mention is None:
            return ParseError("Mention the person: `/meet host <id> @someone`.")
        return HostLink(huddle_text.lower(), to=mention["id"] or mention["name"])
    if verb in ("lock", "unlock", "host"):
        huddle_id = rest.lower()
        if not rest:
            return ParseError(
                f"Which huddle? Type `/meet {verb} <id>`; `/meet list` shows the ids."
            )
        if not HUDDLE_ID.match(huddle_id):
            return _bad_id(rest)
        if verb == "host":
            return HostLink(huddle_id)
        return LockHuddle(huddle_id, locked=verb == "lock")
    if verb == "schedule":
        if not rest:
            return ParseError(
                "When? For example `/meet schedule tomorrow 10:00 Design review` "
                "or `/meet schedule every monday 10:00 Planning`."
            )
        return ScheduleMeeting(rest)
    if verb == "tz":
        return _zone(rest)
    if verb == "cancel":
        return _cancel(rest)
    if verb == "agenda":
        args = rest.split(None, 2)
        if len(args) < 3 or args[1].lower() != "add" or not args[2].strip():
            return ParseError("Type `/meet agenda <id> add <item>`.")
        if not HUDDLE_ID.match(args[0].lower()):
            return _bad_id(args[0])
        if len(args[2]) > MAX_TITLE:
            return ParseError(f"Keep agenda items under {MAX_TITLE} characters.")
        return AddAgendaItem(args[0].lower(), args[2].strip())
    if verb == "share":
        if not HUDDLE_ID.match(rest.lower()):
            return ParseError("Type `/meet share <id>`; the id is on the huddle's card.")
        return ShareHuddle(rest.lower())
    if verb == "done":
        if not HUDDLE_ID.match(rest.lower()):
            return ParseError("Type `/meet done <item id>`; the ids are in the meeting notes.")
        return CloseItem(rest.lower())
    if verb == "rsvp":
        args = rest.lower().split()
        if len(args) != 2 or args[1] not in ("yes", "no"):
            return ParseError("Type `/meet rsvp <id> yes` or `/meet rsvp <id> no`.")
        if not HUDDLE_ID.match(args[0]):
            return _bad_id(args[0])
        return Answer(args[0], args[1])
    if not rest:
        close = difflib.get_close_matches(verb, SUBCOMMANDS, n=1, cutoff=0.7)
        if close:
            return ParseError(
                f"Did you mean `/meet {close[0]}`? To start a huddle called “{word}”, "
                f'type `/meet "{word}"`.'
            )
    return _title(text)


def _title(title: str) -> Request:
    if not title:
        return StartHuddle(title=None)
    if len(title) > MAX_TITLE:
        return ParseError(f"That title is {len(title)} characters; keep it under {MAX_TITLE}.")
    return StartHuddle(title=title)


def _bad_id(text: str) -> ParseError:
    return ParseError(f"`{text[:40]}` is not an id. `/meet list` shows the ids (like `k3f9qz`).")


def _zone(rest: str) -> Request:
    args = rest.split()
    channel = bool(args) and args[0].lower() == "channel"
    if channel:
        args = args[1:]
    if len(args) > 1:
        return ParseError("Type `/meet tz Europe/Berlin` (or `/meet tz channel Europe/Berlin`).")
    return SetZone(zone=args[0] if args else None, channel=channel)


def _cancel(rest: str) -> Request:
    args = rest.split()
    if not args or len(args) > 2:
        return ParseError(
            "Type `/meet cancel <id>` for the whole meeting, or add `next` or a date "
            "(`/meet cancel <id> 2026-12-01`) for one occurrence."
        )
    if not HUDDLE_ID.match(args[0].lower()):
        return _bad_id(args[0])
    occurrence = args[1].lower() if len(args) == 2 else None
    if (
        occurrence is not None
        and occurrence != "next"
        and not re.match(r"^\d{4}-\d{2}-\d{2}$", occurrence)
    ):
        return ParseError("After the id, say `next` or a date like `2026-12-01`.")
    return CancelMeeting(args[0].lower(), occurrence)
