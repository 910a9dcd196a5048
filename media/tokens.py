"""Signed, expiring join tokens bound to one huddle.

A token is ``base64url(payload) + "." + base64url(hmac_sha256(secret, payload))`` where the
payload is ``huddle_id|expires_unix`` (a participant's link, the channel card's) or
``huddle_id|expires_unix|role`` (``host``: the link only the host gets; ``guest``). No library
needed: this is the whole of an HMAC token, and the standard library means nothing to configure.

The role a person has in a call comes from here and from the room's state, never from what a
client says: only the server can sign a host link.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Literal, cast, get_args

#: What a join link makes its holder: ``host`` (runs the meeting), ``participant`` (the card's
#: link) or ``guest`` (someone outside the channel).
Role = Literal["host", "participant", "guest"]
ROLES: frozenset[str] = frozenset(get_args(Role))


class TokenError(Exception):
    """The token is not valid; ``str(error)`` is a sentence fit to show the person holding it."""


@dataclass(frozen=True)
class JoinClaims:
    """What a valid token says."""

    huddle_id: str
    expires_at: float
    role: Role = "participant"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    # validate=True: characters outside the alphabet are damage, not something to skip over.
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def _mac(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, b"huddle-join:" + payload, hashlib.sha256).digest()


def issue(secret: bytes, huddle_id: str, expires_at: float, role: Role = "participant") -> str:
    """Return a token that admits its holder to ``huddle_id`` as ``role`` until ``expires_at``."""
    if role not in ROLES or "|" in huddle_id:
        raise ValueError(f"cannot sign a {role!r} link for {huddle_id!r}")
    suffix = "" if role == "participant" else f"|{role}"
    payload = f"{huddle_id}|{int(expires_at)}{suffix}".encode()
    return f"{_b64(payload)}.{_b64(_mac(secret, payload))}"


def verify(secret: bytes, token: str, huddle_id: str, now: float | None = None) -> JoinClaims:
    """Check ``token`` for ``huddle_id``; raise :class:`TokenError` with the reason if it fails."""
    if not token or len(token) > 512 or token.count(".") != 1:
        raise TokenError("This join link is incomplete or damaged. Ask for a new one.")
    body, signature = token.split(".")
    try:
        payload = _unb64(body)
        given = _unb64(signature)
    except ValueError as exc:
        raise TokenError("This join link is incomplete or damaged. Ask for a new one.") from exc
    if not hmac.compare_digest(given, _mac(secret, payload)):
        raise TokenError("This join link is not valid (it was changed or signed by someone else).")
    try:
        bound_to, expires_text, *rest = payload.decode().split("|")
        expires_at = float(int(expires_text))
    except ValueError as exc:
        raise TokenError("This join link is incomplete or damaged. Ask for a new one.") from exc
    role = rest[0] if rest else "participant"
    if len(rest) > 1 or role not in ROLES:
        raise TokenError("This join link is incomplete or damaged. Ask for a new one.")
    if bound_to != huddle_id:
        raise TokenError("This join link belongs to a different huddle.")
    if (time.time() if now is None else now) >= expires_at:
        raise TokenError("This join link has expired. Ask for a new one.")
    return JoinClaims(huddle_id=bound_to, expires_at=expires_at, role=cast(Role, role))
