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
