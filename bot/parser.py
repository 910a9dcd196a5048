"""Parse what follows `/meet` into one of a few typed requests, or a helpful error."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

MAX_TITLE = 150
SUBCOMMANDS = ("help", "list", "end")
HUDDLE_ID = re.compile(r"^[a-z0-9]{6,12}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")

USAGE = (
    "`/meet` starts a huddle here; `/meet <title>` names it.\n"
    "`/meet list` shows the active huddles with who is in them.\n"
    "`/meet end <id>` ends one (its host can).\n"
    "`/meet help` shows this."
)


@dataclass(frozen=True)
class StartHuddle:
    """`/meet` or `/meet <title>`."""

    title: str | None


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
class ParseError:
    """The input did not make sense; ``message`` says what to type instead."""

    message: str


Request = StartHuddle | ShowHelp | ListHuddles | EndHuddle | ParseError


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
            return ParseError(
                f"`{rest[:40]}` is not a huddle id. `/meet list` shows the ids (like `k3f9qz`)."
            )
        return EndHuddle(huddle_id=huddle_id)
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
