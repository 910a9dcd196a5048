"""Behind a reverse proxy: X-Forwarded-Proto, -Host and -For, believed only with HUDDLE_TRUST_PROXY.

Anyone can send these headers; only a proxy in front that sets them makes them true. So without
``trust_proxy`` they are ignored (this middleware is not even installed) and a request's scheme,
host and client address are the connection's own. With it, each request is seen as the proxy
saw it: ``request.scheme`` (so ``request.secure``), ``request.host`` and ``request.remote`` carry
the forwarded values, for every handler and middleware after this one, and links follow the
proxy's origin when no public URL is configured (:class:`bot.public_url.LinkBase`).

Of a comma-separated list the last value counts: the one our proxy added, whatever a client put
before it. manifests/Caddyfile and manifests/nginx.conf set all three headers.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from multidict import CIMultiDictProxy

from bot.public_url import LinkBase

#: ``host``, ``host:port``, ``[v6]`` or ``[v6]:port``: nothing that could smuggle a path in.
HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$")


def _last(headers: CIMultiDictProxy[str], name: str) -> str | None:
    values = [part.strip() for value in headers.getall(name, []) for part in value.split(",")]
    values = [value for value in values if value]
    return values[-1] if values else None


@dataclass(frozen=True)
class Forwarded:
    """What a proxy says about a request; a field is None when absent or malformed."""

    proto: str | None
    host: str | None
    client: str | None

    @classmethod
    def of(cls, headers: CIMultiDictProxy[str]) -> Forwarded:
        """Read X-Forwarded-Proto (http/https), -Host and -For (an IP address) from ``headers``."""
        proto = (_last(headers, "X-Forwarded-Proto") or "").lower()
        host = _last(headers, "X-Forwarded-Host") or ""
        client = (_last(headers, "X-Forwarded-For") or "").strip("[]")
        try:
            client = str(ipaddress.ip_address(client))
        except ValueError:
            client = ""
        return cls(
            proto=proto if proto in ("http", "https") else None,
            host=host if HOST.match(host) else None,
            client=client or None,
        )


def proxy_middleware(link_base: LinkBase | None = None) -> Middleware:
    """Apply trusted X-Forwarded-* to each request (install only with HUDDLE_TRUST_PROXY)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        forwarded = Forwarded.of(request.headers)
        changes: dict[str, Any] = {}
        if forwarded.proto:
            changes["scheme"] = forwarded.proto
        if forwarded.host:
            changes["host"] = forwarded.host
        if forwarded.client:
            changes["remote"] = forwarded.client
        if changes:
            request = request.clone(**changes)
        if link_base is not None and forwarded.proto:
            link_base.proxy_reports(f"{request.scheme}://{request.host}")
        return await handler(request)

    return middleware
