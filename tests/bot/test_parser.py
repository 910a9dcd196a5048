"""What people type after /meet, and what the core understands."""

import pytest

from bot import parser
from bot.parser import EndHuddle, ListHuddles, ParseError, ShowHelp, StartHuddle


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", StartHuddle(None)),
        ("   ", StartHuddle(None)),
        ("Design review", StartHuddle("Design review")),
        ("  Design   review ", StartHuddle("Design   review")),
        ("help", ShowHelp()),
        ("HELP", ShowHelp()),
        ("list", ListHuddles()),
        ("end k3f9qz", EndHuddle("k3f9qz")),
        ("end K3F9QZ", EndHuddle("k3f9qz")),
        ('"list"', StartHuddle("list")),
        ("'end'", StartHuddle("end")),
        ("listening session", StartHuddle("listening session")),
        ("Retro\x00\x07 time", StartHuddle("Retro  time")),
        ("lobby", StartHuddle(None, lobby=True)),
        ("lobby Interview with Sam", StartHuddle("Interview with Sam", lobby=True)),
        ('"lobby"', StartHuddle("lobby")),
        ("lobby on k3f9qz", parser.SetLobby("k3f9qz", on=True)),
        ("lobby OFF K3F9QZ", parser.SetLobby("k3f9qz", on=False)),
        ("lock k3f9qz", parser.LockHuddle("k3f9qz", locked=True)),
        ("unlock k3f9qz", parser.LockHuddle("k3f9qz", locked=False)),
        ("host k3f9qz", parser.HostLink("k3f9qz")),
        ("invite k3f9qz", parser.GuestLink("k3f9qz")),
        ("passcode k3f9qz", parser.SetPasscode("k3f9qz", None)),
        ("passcode k3f9qz 24 68", parser.SetPasscode("k3f9qz", "24 68")),
        ("passcode k3f9qz off", parser.SetPasscode("k3f9qz", None, off=True)),
    ],
)
def test_understood(text: str, expected: parser.Request) -> None:
    assert parser.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("list everything", "takes nothing"),
        ("end", "Which huddle?"),
        ("end not-an-id!", "is not an id"),
        ("lsit", "Did you mean `/meet list`?"),
        ("hepl", "Did you mean `/meet help`?"),
        ("x" * 151, "keep it under 150"),
        ("lock", "Which huddle?"),
        ("unlock nope!", "is not an id"),
        ("lobby on", "/meet lobby on <id>"),
        ("invite", "/meet invite <id>"),
        ("passcode k3f9qz 12", "4 to 32"),
        ("passcode k3f9qz <script>", "4 to 32"),
    ],
)
def test_mistakes_get_a_helpful_reply(text: str, hint: str) -> None:
    result = parser.parse(text)
    assert isinstance(result, ParseError)
    assert hint in result.message


def test_typo_reply_says_how_to_use_the_word_as_a_title() -> None:
    result = parser.parse("lsit")
    assert isinstance(result, ParseError)
    assert '/meet "lsit"' in result.message
