"""Security headers on every response the server sends.

* ``Content-Security-Policy``: only this server's own scripts, styles and connections; no inline
  script or style anywhere, no framing (clickjacking a Join or Admit button), no plugins, no
  ``<base>`` games. A page with needs of its own (the join page: media, WebSockets) sets its
  own policy, and that one is kept.
* ``X-Content-Type-Options: nosniff``: a file is run only as what its type says.
* ``Referrer-Policy: no-referrer``: join links carry their token in the query string.
* ``Permissions-Policy``: camera, microphone and screen capture for this origin only.
* ``Strict-Transport-Security`` over HTTPS: once a browser has seen it, it never falls back.
"""

from __future__ import annotations

from aiohttp import web

#: What every page gets unless it sets its own.
DEFAULT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": "camera=(self), microphone=(self), display-capture=(self)",
    "Cross-Origin-Opener-Policy": "same-origin",
}

#: Half a year: long enough to matter, as browsers' preload lists ask.
HSTS = "max-age=15552000"


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: runs for every response, streamed and static ones included."""
    headers = response.headers
    for name, value in HEADERS.items():
        headers.setdefault(name, value)
    headers.setdefault("Content-Security-Policy", DEFAULT_CSP)
    if request.secure:
        headers.setdefault("Strict-Transport-Security", HSTS)


def install(app: web.Application) -> None:
    """Add the headers to everything ``app`` answers."""
    app.on_response_prepare.append(add_security_headers)
