"""The base of every link huddle hands out (Join buttons, meeting pages, calendar feeds).

With ``HUDDLE_PUBLIC_URL`` set, links are always on it. Without it they are on the address huddle
serves on, unless a trusted reverse proxy (``HUDDLE_TRUST_PROXY``) reports the origin people
reach huddle at (X-Forwarded-Proto and -Host): then links follow the latest origin it reported.
Links are made once and shown to everyone, so pinning the origin with HUDDLE_PUBLIC_URL stays the
recommended setup; following the proxy is for a proxy in front and nothing else configured.
"""

from __future__ import annotations

import logging

log = logging.getLogger("huddle.links")


class LinkBase:
    """Moves links made on ``built_on`` (what the link makers were given) to the current base."""

    def __init__(self, built_on: str, *, follows_proxy: bool = False) -> None:
        self.built_on = built_on.rstrip("/")
        #: The base links get now.
        self.current = self.built_on
        self.follows_proxy = follows_proxy

    def proxy_reports(self, origin: str) -> None:
        """A trusted proxy forwarded a request for ``origin`` (``https://host[:port]``)."""
        origin = origin.rstrip("/")
        if not self.follows_proxy or origin == self.current:
            return
        self.current = origin
        log.info("links follow the reverse proxy url=%s (set HUDDLE_PUBLIC_URL to pin it)", origin)

    def rebase(self, url: str) -> str:
        """``url`` on the current base (unchanged if it was not made on ``built_on``)."""
        if self.current == self.built_on:
            return url
        if url == self.built_on or url.startswith(self.built_on + "/"):
            return self.current + url[len(self.built_on) :]
        return url
