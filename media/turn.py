"""ICE servers handed to browsers: STUN, and TURN with credentials that expire with the join link.

TURN credentials follow the TURN REST API scheme that coturn checks with ``use-auth-secret``
(draft-uberti-behave-turn-rest): the username is ``<unix expiry>:<who>``, the password is
base64(HMAC-SHA1(shared secret, username)). coturn refuses a username whose expiry has passed,
so a credential lives exactly as long as the join link it came with, and the secret itself never
leaves the servers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import NotRequired, TypedDict

_URL = re.compile(r"^(stun|stuns|turn|turns):[A-Za-z0-9.\-\[\]:]+(\?transport=(udp|tcp))?$")


class TurnConfigError(ValueError):
    """An ICE server setting cannot be used; ``str(error)`` says what would work."""


class IceServer(TypedDict):
    """One entry of RTCConfiguration.iceServers, as the browser takes it."""

    urls: list[str]
    username: NotRequired[str]
    credential: NotRequired[str]


def parse_urls(text: str, schemes: tuple[str, ...], name: str) -> tuple[str, ...]:
    """Comma- or space-separated ICE URLs, each with one of ``schemes``."""
    urls = tuple(part for part in text.replace(",", " ").split() if part)
    for url in urls:
        match = _URL.match(url)
        if match is None or match[1] not in schemes:
            wanted = " or ".join(f"{scheme}:" for scheme in schemes)
            raise TurnConfigError(
                f"{name}: {url!r} is not a {wanted} URL (like {schemes[0]}:turn.example.com:3478)"
            )
    return urls


@dataclass(frozen=True)
class IceServers:
    """STUN URLs (``HUDDLE_ICE_SERVERS``) and TURN URLs with their secret (``HUDDLE_TURN_*``)."""

    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        if self.turn_urls and not self.turn_secret:
            raise TurnConfigError(
                "HUDDLE_TURN_URLS needs HUDDLE_TURN_SECRET (coturn's static-auth-secret)"
            )

    def for_client(self, expires_at: float, who: str) -> list[IceServer]:
        """What the join page gives the browser: TURN credentials valid until ``expires_at``."""
        servers: list[IceServer] = []
        if self.stun_urls:
            servers.append({"urls": list(self.stun_urls)})
        if self.turn_urls:
            username, password = turn_credential(self.turn_secret, expires_at, who)
            servers.append(
                {"urls": list(self.turn_urls), "username": username, "credential": password}
            )
        return servers


def turn_credential(secret: bytes, expires_at: float, who: str) -> tuple[str, str]:
    """``(username, password)`` for coturn's ``use-auth-secret``, valid until ``expires_at``."""
    # The username's second part is only a label for coturn's logs: keep it to safe characters.
    label = re.sub(r"[^A-Za-z0-9_-]", "", who)[:32] or "huddle"
    username = f"{int(expires_at)}:{label}"
    digest = hmac.new(secret, username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()
