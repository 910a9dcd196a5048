"""Huddle passcodes: what the bot stores and the media core checks, never the code itself.

A passcode is a few characters people read out, so its strength is in the rate limits on wrong
tries (per address and per huddle, :class:`media.server.MediaFront`), not in the digest; the
digest only keeps the code out of the database and the worker control channel.
"""

from __future__ import annotations

import hashlib
import hmac
import re

#: Longest passcode accepted, in characters.
MAX_LENGTH = 32
_SPACES = re.compile(r"[\s-]+")


def normalize(code: str) -> str:
    """The code as compared: no spaces or dashes, case-insensitive ("12 34-56" is "123456")."""
    return _SPACES.sub("", code).lower()


def digest(huddle_id: str, code: str) -> str:
    """What is stored for ``code`` on ``huddle_id`` (the huddle id salts it)."""
    material = f"huddle-passcode:{huddle_id}:{normalize(code)}".encode()
    return hashlib.sha256(material).hexdigest()


def matches(stored: str, huddle_id: str, given: str) -> bool:
    """Whether ``given`` is the passcode whose digest is ``stored``."""
    return bool(stored) and hmac.compare_digest(stored, digest(huddle_id, given))
